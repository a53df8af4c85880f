// The whole mail core in a sandbox, with the real programs: qmail-inject / sendmail ->
// qmail-queue (or qmail-multi) -> a collection of queues -> qscheduler / qmail-start ->
// qmail-send + todo-proc + qmail-clean -> qmail-lspawn -> qmail-local -> Maildir / mbox.
// Remote recipients go to a stub qmail-remote (QMAILREMOTE). Every qmail account is mapped
// to nobody; mailbox owners are nobody too, with homes in the sandbox (users/assign).
import Core
import Glibc

/// Stub qmail-remote (host sender qqeh size recipient): refuses recipients starting with
/// `reject` for good; otherwise appends host, sender and recipient to $E2E_OUT/remote and accepts.
let e2eRemoteStub = """
#!/bin/sh
host="$1"; sender="$2"; shift 4
cat > /dev/null
for r in "$@"; do
  case "$r" in
    reject*) printf 'h192.0.2.1 does not like recipient.\\nRemote host said: 550 5.1.1 no such user\\n\\0'
             printf 'DGiving up on 192.0.2.1.\\n\\0'; exit 0;;
  esac
  echo "$host $sender $r" >> "$E2E_OUT/remote"; printf 'r\\0K%s accepted by stub.\\0' "$r"
done

"""

final class MailWorld {
    let sandbox = Sandbox()
    let bin: String
    let sbin: String
    let base: String
    let out: String
    let queues: [Int]
    var environment: [String: String]
    private(set) var tree: BackgroundChild?
    let logFile: String

    /// Users with a home (owned by nobody) and, when given, a .qmail.
    static let defaultUsers: [String: String?] = ["alice": nil, "bob": nil, "sender": nil, "postmaster": nil,
                                                  "mboxer": "./mbox\n", "later": "|echo busy right now; exit 111\n"]

    init(queues: [Int] = [1, 2, 3], users: [String: String?] = MailWorld.defaultUsers, controls: [String: String] = [:]) {
        self.queues = queues
        chmod(sandbox.path, 0o755)
        let programs = ["qmail-start", "qmail-send", "qmail-clean", "todo-proc", "qmail-lspawn", "qmail-rspawn",
                        "qmail-local", "qmail-getpw", "qmail-newu", "qmail-inject", "sendmail", "qmail-multi",
                        "queue-fix", "qmail-qread", "qscheduler"]
        bin = sandbox.commandLinks(programs)
        sbin = sandbox.directory("sbin")
        chmod(sbin, 0o755)
        for name in programs { symlink(Build.indimail, Path.join(sbin, name)) }
        // Installed as the reference installs it: setuid to the queue owner (qmailq, here nobody).
        _ = run(["/bin/cp", Build.qmailQueue, Path.join(sbin, "qmail-queue")])
        chown(Path.join(sbin, "qmail-queue"), QueueTest.nobody, QueueTest.nogroup)
        chmod(Path.join(sbin, "qmail-queue"), 0o4711)
        sandbox.write("sbin/qmail-remote", e2eRemoteStub, mode: 0o755)  // the only stand-in
        base = sandbox.directory("queue")
        chmod(base, 0o755)
        for q in queues {
            _ = QueueTest.queueFix(["-s", "3", "-b", "0", Path.join(base, "queue\(q)")])
        }
        out = sandbox.directory("out")
        chmod(out, 0o777)
        logFile = sandbox.at("log")
        sandbox.write("etc/control/me", "test.local\n")
        sandbox.write("etc/control/locals", "test.local\n")
        for (name, text) in controls { sandbox.write("etc/control/" + name, text) }
        environment = QueueTest.accounts.merging([
            "QMAILL_USER": "nobody", "QMAILP_USER": "nobody", "NOFILES_GROUP": "nogroup",
            "PREFIX": sandbox.path, "QMAILHOME": sandbox.path, "SYSCONFDIR": sandbox.at("etc"),
            "CONTROLDIR": "control", "ASSIGNDIR": sandbox.at("etc/users"),
            "QUEUE_BASE": base, "QUEUE_START": String(queues.first ?? 1), "QUEUE_COUNT": String(queues.count),
            "CONFSPLIT": "3", "BIGTODO": "0", "USE_FSYNC": "0",
            // No QMAILQUEUE, QMAILLOCAL, QMAILGETPW, QMAILSTART, ...: every real program is found as
            // installed, under PREFIX (sbin/qmail-queue, sbin/qmail-local, ...) or along PATH.
            // Only the stub qmail-remote is named explicitly.
            "PATH": bin + ":" + sbin + ":/usr/bin:/bin", "E2E_OUT": out, "QMAILREMOTE": Path.join(sbin, "qmail-remote"),
        ]) { $1 }
        var assign = ""
        chmod(sandbox.directory("homes"), 0o755)
        for (user, dotQmail) in users.sorted(by: { $0.key < $1.key }) {
            let home = sandbox.directory("homes/\(user)")
            for sub in ["", "/Maildir", "/Maildir/tmp", "/Maildir/new", "/Maildir/cur"] {
                _ = Path.makeDirectories(home + sub, mode: 0o700)
                chmod(home + sub, 0o700)
                chown(home + sub, QueueTest.nobody, QueueTest.nogroup)
            }
            if let dotQmail {
                sandbox.write("homes/\(user)/.qmail", dotQmail)
                chown(home + "/.qmail", QueueTest.nobody, QueueTest.nogroup)
            }
            assign += "=\(user):nobody:\(QueueTest.nobody):\(QueueTest.nogroup):\(home):::\n"
        }
        // Everything else: the alias account, whose home has no .qmail-default (unknown user).
        let alias = sandbox.directory("homes/.alias")
        chmod(alias, 0o755)
        chown(alias, QueueTest.nobody, QueueTest.nogroup)
        assign += "+:nobody:\(QueueTest.nobody):\(QueueTest.nogroup):\(alias):-::\n"
        sandbox.write("etc/users/assign", assign + ".\n")
        _ = run([Path.join(bin, "qmail-newu")], environment: environment, inheritEnvironment: false)
    }

    deinit { stop() }

    func queue(_ n: Int) -> String { Path.join(base, "queue\(n)") }
    func home(_ user: String) -> String { sandbox.at("homes/\(user)") }

    // MARK: running the delivery side

    /// qscheduler -s over every queue (its own process group); true once each queue's
    /// qmail-send holds its lock.
    func startScheduler() -> Bool {
        tree = BackgroundChild([Path.join(sbin, "qscheduler"), "-s", "./Maildir/"], output: logFile,
                               environment: environment, newProcessGroup: true)
        return tree != nil && eventually(within: 15) { self.queues.allSatisfy { self.sendRunning(self.queue($0)) } }
    }

    /// One qmail-start on queue `n`; true once qmail-send announced itself.
    func startQueue(_ n: Int) -> Bool {
        var env = environment
        env["QUEUEDIR"] = queue(n)
        let before = SendFixture.occurrences(of: "status:", in: log)
        tree = BackgroundChild([Path.join(sbin, "qmail-start"), "./Maildir/"], output: logFile, environment: env,
                               newProcessGroup: true)
        return tree != nil && eventually(within: 15) { SendFixture.occurrences(of: "status:", in: self.log) > before }
    }

    /// Is some process holding queue's lock/sendmutex?
    func sendRunning(_ queue: String) -> Bool {
        let fd = open(Path.join(queue, "lock/sendmutex"), O_RDWR)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        if flock(fd, LOCK_EX | LOCK_NB) == 0 { flock(fd, LOCK_UN); return false }
        return true
    }

    /// TERM to the top process: an orderly stop. Returns how it ended.
    @discardableResult
    func terminate() -> WaitStatus? {
        defer { tree = nil }
        return tree.flatMap { DeliveryTree.terminate($0, within: 20) }
    }

    /// kill -9 of the whole tree.
    func stop() {
        if let tree { DeliveryTree.kill(tree) }
        tree = nil
    }

    var treePid: pid_t? { tree?.pid }

    /// Living members of the tree whose argv[0] (base name) is `name`.
    func members(named name: String) -> [pid_t] {
        guard let tree else { return [] }
        return SendFixture.liveMembers(of: tree.pid).filter {
            SendProcessTree.commandLine($0).first.map { Path.basename($0) == name || $0 == name } ?? false
        }
    }

    func signal(_ name: String, _ s: Int32) { for pid in members(named: name) { kill(pid, s) } }

    var log: String { String(decoding: contents(logFile) ?? [], as: UTF8.self) }

    // MARK: injecting

    enum Injector { case inject, sendmail }

    /// One message through qmail-inject (-f sender, recipients as arguments) or sendmail
    /// (-f sender, recipients as arguments). Returns the injector's outcome.
    @discardableResult
    func send(_ via: Injector, from sender: String, to recipients: [String], message: [UInt8],
              environment extra: [String: String] = [:]) -> Outcome {
        var env = environment
        for (k, v) in extra { env[k] = v }
        let program = via == .inject ? "qmail-inject" : "sendmail"
        return run([Path.join(bin, program), "-f", sender] + recipients, stdin: message, environment: env,
                   inheritEnvironment: false, timeout: 20)
    }

    /// Message files left in all queues (lock/ excluded), prefixed with the queue number.
    var leftovers: [String] {
        queues.flatMap { q in QueueTest.messageFiles(queue(q)).map { "queue\(q)/\($0)" } }
    }

    // MARK: reading mailboxes with Python's mailbox module

    /// Every message in `user`'s Maildir (new and cur), through mailbox.Maildir: its
    /// Message-ID header, Subject, Return-Path, and body. Sorted by Message-ID.
    func maildir(_ user: String) -> [MailboxMessage] {
        python("import mailbox\nbox = mailbox.Maildir(sys.argv[1], factory=None, create=False)\nmsgs = list(box)\n",
               Path.join(home(user), "Maildir"))
    }

    /// Every message of an mbox file, through mailbox.mbox (From_ line in `fromLine`).
    func mbox(_ path: String) -> [MailboxMessage] {
        python("import mailbox\nbox = mailbox.mbox(sys.argv[1], create=False)\nmsgs = list(box)\n", path)
    }

    private func python(_ opening: String, _ path: String) -> [MailboxMessage] {
        let script = "import sys, json\n" + opening + """
            res = []
            for m in msgs:
                f = m.get_from() if hasattr(m, 'get_from') else ''
                res.append({'id': m.get('Message-ID', ''), 'subject': m.get('Subject', ''),
                            'rp': m.get('Return-Path', ''), 'dt': m.get('Delivered-To', ''),
                            'from_': f or '', 'body': m.get_payload(), 'raw': m.as_string()})
            for r in res:
                sys.stdout.write(json.dumps(r) + "\\n")

            """
        let r = run(["/usr/bin/python3", "-c", script, path], timeout: 60)
        return r.out.split(separator: "\n").compactMap { MailboxMessage(json: String($0)) }
    }
}

/// One message as Python's mailbox module saw it (decoded from its JSON line).
struct MailboxMessage {
    var id = "", subject = "", returnPath = "", deliveredTo = "", fromLine = "", body = "", raw = ""

    init?(json: String) {
        // The tiny subset of JSON that json.dumps writes for a flat object of strings,
        // scanned as bytes (bodies run to megabytes).
        var fields: [String: String] = [:]
        let bytes = Array(json.utf8)
        var i = 0
        func string() -> String? {
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { return nil }
            i += 1
            var out: [UInt8] = []
            while i < bytes.count {
                let c = bytes[i]
                i += 1
                if c == UInt8(ascii: "\"") { return String(decoding: out, as: UTF8.self) }
                guard c == UInt8(ascii: "\\") else { out.append(c); continue }
                guard i < bytes.count else { return nil }
                let e = bytes[i]
                i += 1
                switch e {
                case UInt8(ascii: "n"): out.append(10)
                case UInt8(ascii: "t"): out.append(9)
                case UInt8(ascii: "r"): out.append(13)
                case UInt8(ascii: "b"): out.append(8)
                case UInt8(ascii: "f"): out.append(12)
                case UInt8(ascii: "u"):
                    guard i + 4 <= bytes.count,
                          let v = UInt32(String(decoding: bytes[i..<(i + 4)], as: UTF8.self), radix: 16) else { return nil }
                    i += 4
                    out += Array(String(Unicode.Scalar(v).map(Character.init) ?? "?").utf8)
                default: out.append(e)
                }
            }
            return nil
        }
        func skip(_ set: String) { while i < bytes.count, set.utf8.contains(bytes[i]) { i += 1 } }
        guard bytes.first == UInt8(ascii: "{") else { return nil }
        i = 1
        while true {
            skip(" ,")
            if i >= bytes.count || bytes[i] == UInt8(ascii: "}") { break }
            guard let key = string() else { return nil }
            skip(": ")
            guard let value = string() else { return nil }
            fields[key] = value
        }
        id = fields["id"] ?? ""
        subject = fields["subject"] ?? ""
        returnPath = fields["rp"] ?? ""
        deliveredTo = fields["dt"] ?? ""
        fromLine = fields["from_"] ?? ""
        body = fields["body"] ?? ""
        raw = fields["raw"] ?? ""
    }
}

/// A test message with a unique token in its Message-ID, Subject and body.
func e2eMessage(_ token: String, extraHeaders: String = "") -> [UInt8] {
    Array("Message-ID: <\(token)@e2e.test>\nSubject: message \(token)\n\(extraHeaders)\nbody of \(token)\nsecond line\n".utf8)
}
