// Drives qmail-lspawn / qmail-rspawn as qmail-send does: commands written to its fd 0,
// the handshake and the slot reports read from its fd 1, everything under a deadline.
import Core
import Glibc

/// One report: the two slot bytes and the text between them and the NUL.
struct SpawnReport: Equatable, CustomStringConvertible {
    var slot: Int
    var text: String
    var description: String { "\(slot):\(text.debugDescription)" }
}

final class SpawnerProcess {
    let pid: pid_t
    private var input: Int32
    private var output: Int32
    private let errors: Int32
    private var buffer: [UInt8] = []
    private var status: WaitStatus?
    private(set) var stderrText: [UInt8] = []

    init?(_ argv: [String], environment: [String: String]) {
        var env = Environment()
        for (k, v) in environment { env[k] = v }
        guard case .success(let i) = FD.pipe(), case .success(let o) = FD.pipe(), case .success(let e) = FD.pipe() else { return nil }
        var options = SpawnOptions()
        options.fileMoves = [(i.read, 0), (o.write, 1), (e.write, 2)]
        let started = Spawn.start(argv.map { Array($0.utf8) }, environment: env, options: options)
        close(i.read); close(o.write); close(e.write)
        guard case .success(let p) = started else { close(i.write); close(o.read); close(e.read); return nil }
        pid = p
        input = i.write
        output = o.read
        errors = e.read
        FD.setNonBlocking(output)
        FD.setNonBlocking(errors)
        signal(SIGPIPE, SIG_IGN)
    }

    deinit {
        if status == nil { kill(pid, SIGKILL); _ = waitWithDeadline(pid, seconds: 5) }
        if input >= 0 { close(input) }
        if output >= 0 { close(output) }
        close(errors)
    }

    /// Stops reading reports, as a qmail-send that went away.
    func closeOutput() { if output >= 0 { close(output); output = -1 } }

    /// One delivery command.
    static func command(slot: Int, id: String, sender: String = "alice@sender.net", qqeh: String = "",
                        envh: String = "", recipient: String) -> [UInt8] {
        [UInt8(slot & 255), UInt8((slot >> 8) & 255)] + Array(id.utf8) + [0] + Array(sender.utf8) + [0]
            + Array(qqeh.utf8) + [0] + Array(envh.utf8) + [0] + Array(recipient.utf8) + [0]
    }

    func send(_ bytes: [UInt8]) { if input >= 0 { FD.writeAll(input, bytes) } }

    func closeInput() { if input >= 0 { close(input); input = -1 } }

    /// Reads until `count` bytes are buffered or the deadline passes.
    private func fill(_ count: Int, deadline: Double) -> Bool {
        var chunk = [UInt8](repeating: 0, count: 4096)
        while buffer.count < count {
            drainErrors()
            guard FD.waitUntil(output, events: Int16(POLLIN), deadline: deadline) else { return false }
            let n = chunk.withUnsafeMutableBytes { read(output, $0.baseAddress, $0.count) }
            if n == 0 { return false }
            if n > 0 { buffer += chunk[0..<n] }
        }
        return true
    }

    private func drainErrors() {
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(errors, $0.baseAddress, $0.count) }
            if n <= 0 { return }
            stderrText += chunk[0..<n]
        }
    }

    /// The 2-byte little-endian concurrency, or nil.
    func handshake(within seconds: Double = 10) -> Int? {
        guard fill(2, deadline: monotonicSeconds() + seconds) else { return nil }
        let value = Int(buffer[0]) | Int(buffer[1]) << 8
        buffer.removeFirst(2)
        return value
    }

    /// The next report, raw (slot bytes, text bytes), or nil at the deadline.
    func nextRaw(within seconds: Double = 15) -> (slot: Int, text: [UInt8])? {
        let deadline = monotonicSeconds() + seconds
        while true {
            if buffer.count > 2, let nul = buffer[2...].firstIndex(of: 0) {
                let report = (Int(buffer[0]) | Int(buffer[1]) << 8, Array(buffer[2..<nul]))
                buffer.removeFirst(nul + 1)
                return report
            }
            guard fill(buffer.count + 1, deadline: deadline) else { return nil }
        }
    }

    func next(within seconds: Double = 15) -> SpawnReport? {
        nextRaw(within: seconds).map { SpawnReport(slot: $0.slot, text: String(decoding: $0.text, as: UTF8.self)) }
    }

    /// Reports until `count` have come (in arrival order).
    func reports(_ count: Int, within seconds: Double = 15) -> [SpawnReport] {
        var out: [SpawnReport] = []
        let deadline = monotonicSeconds() + seconds
        while out.count < count, let r = next(within: max(0.01, deadline - monotonicSeconds())) { out.append(r) }
        return out
    }

    /// Closes fd 0 and waits for the exit.
    func finish(within seconds: Double = 10) -> WaitStatus {
        closeInput()
        if let status { return status }
        let s = waitWithDeadline(pid, seconds: seconds)
        status = s
        drainErrors()
        return s
    }

    var stderrString: String { String(decoding: stderrText, as: UTF8.self) }
}

/// A queue with a mess directory, stub programs and the environment a spawner needs. The
/// message files belong to the running user, who is named as qmailq.
final class SpawnFixture {
    let box = Sandbox()
    let queue: String
    let bin: String
    let dump: String
    let me: String
    var environment: [String: String]

    init() {
        chmod(box.path, 0o755)
        queue = box.directory("queue")
        box.directory("queue/mess/0")
        box.directory("queue/lock")
        bin = box.commandLinks(["qmail-lspawn", "qmail-rspawn", "qmail-local", "qmail-getpw", "qmail-newu"])
        chmod(bin, 0o755)
        dump = box.directory("dump")
        chmod(dump, 0o777)
        box.directory("etc/control")
        box.directory("etc/users")
        me = Accounts.user(uid: geteuid())?.name ?? "root"
        environment = [
            "PATH": "/usr/bin:/bin",
            "QUEUEDIR": queue,
            "SYSCONFDIR": box.at("etc"),
            "CONTROLDIR": "control",
            "ASSIGNDIR": box.at("etc/users"),
            "QMAILQ_USER": me,
            "QMAILP_USER": "nobody",
            "NOFILES_GROUP": "nogroup",
            "QMAILLOCAL": Path.join(bin, "qmail-local"),
            "QMAILGETPW": Path.join(bin, "qmail-getpw"),
        ]
    }

    /// Writes mess/0/<id> and returns "0/<id>".
    @discardableResult
    func message(_ id: Int, _ text: String = "Subject: test\n\nhello\n") -> String {
        box.write("queue/mess/0/\(id)", text)
        return "0/\(id)"
    }

    /// A stub program in bin/ (a shell script), readable and runnable by anyone.
    @discardableResult
    func stub(_ name: String, _ script: String) -> String {
        box.write("bin/\(name)", "#!/bin/sh\n" + script, mode: 0o755)
    }

    /// A home directory owned by nobody, with a .qmail.
    func home(_ name: String, dotQmail: String) -> String {
        let h = box.directory("homes/\(name)")
        chmod(box.at("homes"), 0o755)
        box.write("homes/\(name)/.qmail", dotQmail)
        for sub in ["", "/Maildir", "/Maildir/tmp", "/Maildir/new", "/Maildir/cur"] {
            _ = Path.makeDirectories(h + sub, mode: 0o700)
            chown(h + sub, QueueTest.nobody, QueueTest.nogroup)
        }
        chown(h + "/.qmail", QueueTest.nobody, QueueTest.nogroup)
        return h
    }

    /// users/assign written and compiled with our qmail-newu.
    func assign(_ text: String) -> Outcome {
        box.write("etc/users/assign", text)
        return run([Path.join(bin, "qmail-newu")], environment: environment, inheritEnvironment: false)
    }

    func start(_ program: String, _ arguments: [String] = [], extra: [String: String] = [:]) -> SpawnerProcess? {
        var env = environment
        for (k, v) in extra { env[k] = v }
        return SpawnerProcess([Path.join(bin, program)] + arguments, environment: env)
    }

    func read(_ relative: String) -> String? {
        guard case .success(let bytes) = FD.readFile(box.at(relative)) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }
}
