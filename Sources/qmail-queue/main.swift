// qmail-queue as its own small executable: installed setuid qmailq, it must not carry the
// multi-call binary's other commands (DESIGN.md). It links only Core and Mail.
import Core
import Glibc
import Mail

exit(QmailQueue.main(environment: Environment.current()))
