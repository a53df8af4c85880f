// A whole qmail-start tree in a sandbox for the qmail-send tests: a queue from queue-fix,
// control files, our commands on PATH, and stand-in spawners (Python, speaking §6.3) that
// deliver by appending to files, so the scheduler is tested without qmail-lspawn/rspawn.
import Core
import Glibc

/// The stand-in spawner. Hello with STANDIN_MAX (default 500), then per command: a local
/// part containing "defer" → Z, "fail" → D (two lines of text), "slow" → the first time
/// leave a `<rcpt>.started` marker and hang, "nap" → a 1 s pause; otherwise K after
/// appending the message (led by `From <sender>`) to `$STANDIN_DIR/<rcpt>`, the qqeh and
/// envheader fields to `<rcpt>.fields`, and a line to `$STANDIN_DIR/deliveries`.
let sendStandInSpawner = #"""
#!/usr/bin/python3
import fcntl, os, random, signal, sys, time
os.umask(0)
# STANDIN_FORK: each delivery in its own child with a random pause, so reports come back
# out of order and several slots are busy at once.
forking = "STANDIN_FORK" in os.environ
if forking:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
chan = "local" if "lspawn" in os.path.basename(sys.argv[0]) else "remote"
out = os.environ.get("STANDIN_DIR", ".")
queue = os.environ.get("QUEUEDIR", "queue")
limit = int(os.environ.get("STANDIN_MAX", "500"))
os.write(1, bytes([limit & 255, limit >> 8]))
buf = b""
while True:
    data = os.read(0, 65536)
    if not data:
        break
    buf += data
    while len(buf) >= 2:
        fields = buf[2:].split(b"\0")
        if len(fields) < 6:
            break
        slot = buf[:2]
        mess, sender, qqeh, envh, rcpt = fields[:5]
        buf = buf[2 + sum(len(f) + 1 for f in fields[:5]):]
        if forking and os.fork() != 0:
            continue
        if forking:
            time.sleep(random.random() * 0.02)
        local = rcpt.split(b"@")[0].lower()
        marker = os.path.join(out, rcpt.decode() + ".started")
        if b"slow" in local and not os.path.exists(marker):
            open(marker, "w").close()
            time.sleep(3600)
        if b"nap" in local:
            time.sleep(1)
        if b"defer" in local:
            report = b"Zdeferred by stand-in.\n"
        elif b"fail" in local:
            report = b"Dno mailbox here by that name.\nSecond line.\n"
        else:
            with open(os.path.join(queue, "mess", mess.decode()), "rb") as f:
                body = f.read()
            # The mailbox is appended through a rename, last, so a reader that sees it also
            # sees the fields and the deliveries line, and never a half-written delivery.
            target = os.path.join(out, rcpt.decode())
            lock = open(os.path.join(out, ".lock"), "ab")
            fcntl.flock(lock, fcntl.LOCK_EX)
            with open(os.path.join(out, rcpt.decode() + ".fields"), "wb") as f:
                f.write(b"qqeh=" + qqeh + b"\nenvh=" + envh + b"\n")
            with open(os.path.join(out, "deliveries"), "ab") as f:
                f.write(chan.encode() + b" " + mess + b" <" + sender + b"> " + rcpt + b"\n")
            try:
                with open(target, "rb") as f: before = f.read()
            except FileNotFoundError:
                before = b""
            with open(target + ".tmp", "wb") as f:
                f.write(before + b"From <" + sender + b">\n" + body)
            os.rename(target + ".tmp", target)
            lock.close()
            report = b"Kdelivered by stand-in."
        os.write(1, slot + report + b"\0")
        if forking:
            os._exit(0)
"""#

final class SendFixture {
    let sandbox = Sandbox()
    let queue: String
    let bin: String
    let out: String
    let logFile: String
    var environment: [String: String]
    private(set) var send: BackgroundChild?

    init(controls: [String: String] = [:], environment extra: [String: String] = [:], bigTodo: Bool = false) {
        queue = QueueTest.makeQueue(sandbox, bigTodo: bigTodo)
        bin = sandbox.commandLinks(["qmail-start", "qmail-send", "qmail-clean", "todo-proc", "queue-fix"])
        _ = QueueTest.copy(Build.qmailQueue, to: sandbox, name: "qmail-queue")
        for name in ["qmail-lspawn", "qmail-rspawn"] { sandbox.write("bin/" + name, sendStandInSpawner, mode: 0o755) }
        out = sandbox.directory("out")
        chmod(out, 0o777)
        logFile = sandbox.at("log")
        sandbox.write("etc/control/me", "test.local\n")
        sandbox.write("etc/control/locals", "test.local\n")
        for (name, text) in controls { sandbox.write("etc/control/" + name, text) }
        environment = QueueTest.accounts.merging([
            "QMAILL_USER": "nobody", "NOFILES_GROUP": "nogroup",
            "QMAILHOME": sandbox.path, "SYSCONFDIR": sandbox.at("etc"), "CONTROLDIR": "control",
            "QUEUEDIR": queue, "CONFSPLIT": "3", "BIGTODO": bigTodo ? "1" : "0", "USE_FSYNC": "0",
            "PATH": bin + ":/usr/bin:/bin", "STANDIN_DIR": out, "QMAILQUEUE": Path.join(bin, "qmail-queue"),
        ]) { $1 }
        for (k, v) in extra { environment[k] = v }
    }

    deinit { stopAll() }

    /// qmail-start in its own process group, its output (qmail-send's log) to `logFile`;
    /// returns once qmail-send wrote its first status line (it then handles signals).
    @discardableResult
    /// With a logger in `arguments`, `activityLog` names the file it writes to.
    /// `asUser` runs it unprivileged (through setpriv), as an unprivileged install would.
    func start(_ arguments: [String] = ["./Maildir/"], activityLog: String? = nil, asUser: uid_t? = nil) -> BackgroundChild? {
        let activity = { String(decoding: contents(activityLog ?? self.logFile) ?? [], as: UTF8.self) }
        let before = SendFixture.occurrences(of: "status:", in: activity())
        let prefix = asUser.map { ["/usr/bin/setpriv", "--reuid=\($0)", "--regid=\($0)", "--clear-groups", "--"] } ?? []
        send = BackgroundChild(prefix + [Path.join(bin, "qmail-start")] + arguments, output: logFile,
                               environment: environment, newProcessGroup: true)
        guard send != nil, eventually(within: 15, { SendFixture.occurrences(of: "status:", in: activity()) > before }) else { return nil }
        return send
    }

    /// Kills every process of the tree at once (a crash) and waits until they are gone.
    func stopAll() {
        if let send { DeliveryTree.kill(send) }
        send = nil
    }

    /// SIGTERM and the exit status (nil if it did not stop in time).
    func terminate() -> WaitStatus? {
        defer { send = nil }
        return send.flatMap { DeliveryTree.terminate($0, within: 15) }
    }

    func signal(_ s: Int32) { if let send { kill(send.pid, s) } }

    var log: String { String(decoding: contents(logFile) ?? [], as: UTF8.self) }

    func delivered(_ recipient: String) -> String? {
        contents(Path.join(out, recipient)).map { String(decoding: $0, as: UTF8.self) }
    }

    var deliveries: [String] {
        String(decoding: contents(Path.join(out, "deliveries")) ?? [], as: UTF8.self).split(separator: "\n").map(String.init)
    }

    /// Injects with our qmail-queue; returns the message id (its mess inode), learnt from
    /// the log line starting the delivery to the first recipient (so it must be unique in
    /// the test), or nil.
    @discardableResult
    func inject(from sender: String, to recipients: [String], body: String = "Subject: test\n\nhello\n") -> UInt64? {
        guard submit(from: sender, to: recipients, body: body), let first = recipients.first else { return nil }
        var id: UInt64?
        eventually(within: 15) {
            id = self.messageID(recipient: first)
            return id != nil
        }
        return id
    }

    /// The id in the log's `starting delivery N: msg ID to local|remote <recipient> ` line.
    func messageID(recipient: String) -> UInt64? {
        for line in log.split(separator: "\n") where line.hasPrefix("starting delivery ") {
            let words = line.split(separator: " ")
            guard words.count >= 9, words[3] == "msg", words[7] == Substring(recipient) else { continue }
            return UInt64(words[4])
        }
        return nil
    }

    /// Injects with our qmail-queue; true when it accepted the message.
    func submit(from sender: String, to recipients: [String], body: String = "Subject: test\n\nhello\n",
                environment extra: [String: String] = [:]) -> Bool {
        var envelope = "F" + sender + "\0"
        for r in recipients { envelope += "T" + r + "\0" }
        envelope += "\0"
        let r = QueueTest.inject(sandbox, message: Array(body.utf8), envelope: Array(envelope.utf8), queue: queue,
                                 environment: ["USE_FSYNC": "0", "BIGTODO": environment["BIGTODO"] ?? "0"].merging(extra) { $1 })
        return r.exitCode == 0
    }

    /// `area` is one of the split areas (mess, info, local, remote) or bounce.
    func path(_ area: String, _ id: UInt64) -> String {
        area == "bounce" ? Path.join(queue, "bounce/\(id)") : Path.join(queue, "\(area)/\(id % 3)/\(id)")
    }

    /// Message files left in the queue (everything but lock/).
    var leftovers: [String] { QueueTest.messageFiles(queue) }

    func mtime(_ path: String) -> Int64? { Path.status(path).map { Int64($0.st_mtim.tv_sec) } }

    func setMtime(_ path: String, _ seconds: Int64) {
        var times = [timespec(tv_sec: Int(seconds), tv_nsec: 0), timespec(tv_sec: Int(seconds), tv_nsec: 0)]
        _ = utimensat(AT_FDCWD, path, &times, 0)
    }

    /// Waits until the log has at least `count` lines containing `text`.
    @discardableResult
    func waitForLog(_ text: String, count: Int = 1, within seconds: Double = 15) -> Bool {
        eventually(within: seconds) { SendFixture.occurrences(of: text, in: self.log) >= count }
    }

    /// Processes of process group `group` that have not exited (zombies waiting for
    /// init to reap them do not count).
    static func liveMembers(of group: pid_t) -> [pid_t] {
        guard case .success(let names) = Path.entries("/proc") else { return [] }
        return names.compactMap { name -> pid_t? in
            guard let pid = pid_t(name), let stat = contents("/proc/\(name)/stat"),
                  let close = stat.lastIndex(of: UInt8(ascii: ")")), close + 2 < stat.count else { return nil }
            let fields = stat[(close + 2)...].split(separator: 32)
            guard fields.count > 2, fields[0].first != UInt8(ascii: "Z"),
                  pid_t(String(decoding: fields[2], as: UTF8.self)) == group else { return nil }
            return pid
        }
    }

    /// How many times `needle` occurs in `haystack` (non-overlapping).
    static func occurrences(of needle: String, in haystack: String) -> Int {
        let h = Array(haystack.utf8), n = Array(needle.utf8)
        guard !n.isEmpty, h.count >= n.count else { return 0 }
        var count = 0, i = 0
        while i + n.count <= h.count {
            if h[i] == n[0] && Array(h[i..<(i + n.count)]) == n { count += 1; i += n.count } else { i += 1 }
        }
        return count
    }
}

/// A qmail-start tree (its own process group) stopped the two ways the tests need, each
/// waiting until no member of the group is left.
enum DeliveryTree {
    /// kill -9 of the whole group at once: a crash.
    static func kill(_ top: BackgroundChild) {
        Glibc.kill(-top.pid, SIGKILL)
        _ = top.waitExit(within: 5)
        eventually(within: 10) { SendFixture.liveMembers(of: top.pid).isEmpty }
    }

    /// TERM to the top process: an orderly stop. Returns how it ended (nil: not in time).
    static func terminate(_ top: BackgroundChild, within seconds: Double) -> WaitStatus? {
        Glibc.kill(top.pid, SIGTERM)
        let status = top.waitExit(within: seconds)
        eventually(within: 10) { SendFixture.liveMembers(of: top.pid).isEmpty }
        return status
    }
}
