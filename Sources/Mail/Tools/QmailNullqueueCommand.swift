// qmail-nullqueue: a queue program that accepts every message and keeps none: it reads
// the message (fd 0) and the envelope (fd 1) to their ends and exits 0.
import Core
import Glibc

public struct QmailNullqueueCommand: Command {
    public static let name = "qmail-nullqueue"
    public static let installDirectory = InstallDirectory.sbin
    public static let summary = "accept a message as qmail-queue does, and discard it"

    public static func run(_ context: CommandContext) -> Int32 {
        // DEATH: seconds before giving up on a stalled client (exit 52, as qmail-queue).
        let death = context.environment["DEATH"].map(QueueLayout.leadingNumber) ?? 86400
        signal(SIGALRM) { _ in _exit(52) }
        if death > 0 { alarm(UInt32(clamping: death)) }
        var buffer = [UInt8](repeating: 0, count: 8192)
        for fd: Int32 in [0, 1] {
            while true {
                let n = buffer.withUnsafeMutableBytes { FD.read(fd, $0) }
                switch n {
                case .failure: return QueueExit.readError.rawValue
                case .success(let count) where count <= 0: break
                case .success: continue
                }
                break
            }
        }
        alarm(0)
        return 0
    }
}
