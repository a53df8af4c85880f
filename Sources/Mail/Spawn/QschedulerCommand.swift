// qscheduler -s: one qmail-start per queue of a static multi-queue set, each restarted
// when it dies, signals passed on to all of them.
import Core
import Glibc

public struct QschedulerCommand: Command {
    public static let name = "qscheduler"
    public static let installDirectory = InstallDirectory.sbin
    public static let summary = "run and watch one qmail-start per queue of a multi-queue set"

    /// Restart attempts while the dead instance's lock/sendmutex is still held.
    static let lockAttempts = 20
    /// More queues than this is a configuration mistake, not a plan.
    static let maximumQueues = 1000

    public static func run(_ context: CommandContext) -> Int32 {
        let diag = context.diagnostics
        let parsed: (items: [OptionParser.Item], operandIndex: Int)
        switch OptionParser("cdsn").parse(context.strings) {
        case .failure(let e): diag.warning(e.description); return diag.usage("qscheduler [ -s | -cdn ] [ defaultdelivery [ logger arg ... ] ]")
        case .success(let p): parsed = p
        }
        if parsed.items.contains(.flag("d")) || parsed.items.contains(.flag("c")) {
            FD.writeAll(2, Array("alert: qscheduler: cannot start: dynamic mode not supported\n".utf8))
            return 111
        }
        let env = context.environment
        let paths = SuitePaths(environment: env)
        guard chdir(paths.qmailHome) == 0 else {
            FD.writeAll(2, Array("alert: qscheduler: unable to switch to \(paths.qmailHome): \(SystemError.describe(errno))\n".utf8))
            return 111
        }
        // Only one qscheduler at a time.
        guard case .success(let lockFD) = FD.open("queue/qscheduler", O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644) else {
            FD.writeAll(2, Array("alert: qscheduler: cannot start: unable to open queue/qscheduler: \(SystemError.describe(errno))\n".utf8))
            return 111
        }
        guard case .success = FileLock.exclusive(lockFD, wait: false) else {
            FD.writeAll(2, Array("alert: cannot start: qscheduler is already running\n".utf8))
            return 111
        }
        var base = env["QUEUE_BASE"]
        if base == nil {
            switch ControlFiles(paths: paths).value("queue_base") {
            case .failure(let e):
                FD.writeAll(2, Array("alert: qscheduler: unable to read control file queue_base: \(e)\n".utf8))
                return 111
            case .success(let v): base = (v?.isEmpty == false) ? v : Path.join(paths.qmailHome, "queue")
            }
        }
        let operands = Array(context.arguments[parsed.operandIndex...])
        let start = env["QUEUE_START"].map(QueueLayout.leadingNumber) ?? QueueSelection.defaultStart
        let count = env["QUEUE_COUNT"].map(QueueLayout.leadingNumber) ?? QueueSelection.defaultCount
        guard (0...1_000_000).contains(start), (1...maximumQueues).contains(count) else {
            FD.writeAll(2, Array("alert: qscheduler: cannot start: QUEUE_START must be 0 to 1000000 and QUEUE_COUNT 1 to \(maximumQueues)\n".utf8))
            return 111
        }
        let split = QueueLayout.clampSplit(env["CONFSPLIT"].map(QueueLayout.leadingNumber) ?? QueueLayout.compiledSplit)
        var scheduler = StaticScheduler(
            program: env.bytes("QMAILSTART") ?? Array("qmail-start".utf8),
            arguments: [Array("-s".utf8), operands.first ?? Array("./Mailbox".utf8)] + operands.dropFirst(),
            environment: env, base: base ?? "queue", queues: Array(start..<(start + count)))
        let code = scheduler.run(announce: "static queues qStart/qCount \(start)/\(count) conf split=\(split)")
        FD.close(lockFD)
        return code
    }
}

struct StaticScheduler {
    struct Instance {
        var number: Int
        var directory: String
        var pid: pid_t = 0
        /// When dead: the next start attempt (monotonic seconds) and attempts made.
        var due: Double? = nil
        var attempts = 0
    }

    let program: [UInt8]
    let arguments: [[UInt8]]
    let environment: Environment
    var instances: [Instance]
    let selfPid = getpid()

    init(program: [UInt8], arguments: [[UInt8]], environment: Environment, base: String, queues: [Int]) {
        self.program = program
        self.arguments = arguments
        self.environment = environment
        instances = queues.map { Instance(number: $0, directory: base + "/queue" + String($0)) }
    }

    func out(_ text: String) { FD.writeAll(1, Array(text.utf8)) }
    func alert(_ text: String) { FD.writeAll(2, Array(text.utf8)) }

    /// Is no qmail-send holding the queue's lock/sendmutex?
    func sendIsStopped(_ instance: Instance) -> Bool {
        let path = instance.directory + "/lock/sendmutex"
        guard case .success(let fd) = FD.open(path, O_WRONLY) else {
            alert("alert: qscheduler: cannot start: unable to open \(path): \(SystemError.describe(errno))\n")
            return false
        }
        defer { FD.close(fd) }
        guard case .success = FileLock.exclusive(fd, wait: false) else {
            alert("alert: qscheduler: cannot start: qmail-send with queue \(instance.directory) is already running\n")
            return false
        }
        return true
    }

    mutating func launch(_ i: Int) -> Bool {
        var env = environment
        env["QUEUEDIR"] = instances[i].directory
        env["QIDENT"] = String(instances[i].number)
        switch Spawn.start([program] + arguments, environment: env) {
        case .failure(let e):
            alert("alert: qscheduler: unable to start \(String(decoding: program, as: UTF8.self)): \(e.reason)\n")
            return false
        case .success(let pid):
            instances[i].pid = pid
            instances[i].due = nil
            instances[i].attempts = 0
            out("info: qscheduler: pid \(pid), queue \(instances[i].directory) started\n")
            return true
        }
    }

    mutating func run(announce: String) -> Int32 {
        let signals: SignalFD
        do {
            signals = try SignalFD(SignalSet([SIGCHLD, SIGTERM, SIGHUP, SIGINT, SIGALRM, SIGUSR1, SIGUSR2]))
        } catch {
            alert("alert: qscheduler: \(error)\n")
            return 111
        }
        out("info: qscheduler: pid \(selfPid) \(announce)\n")
        for i in instances.indices {
            guard sendIsStopped(instances[i]), launch(i) else { return shutdown(failed: true, signals) }
        }
        while true {
            let now = MonotonicClock.now()
            let next = instances.compactMap(\.due).min()
            let timeout = next.map { Int32(max(0, min(($0 - now) * 1000, 60_000)).rounded(.up)) } ?? -1
            var p = pollfd(fd: signals.fd, events: Int16(POLLIN), revents: 0)
            _ = poll(&p, 1, timeout)
            for signal in signals.drain() {
                switch signal {
                case SIGCHLD: break
                case SIGTERM:
                    alert("alert: qscheduler: pid \(selfPid) got TERM\n")
                    return shutdown(failed: false, signals)
                default:
                    forward(signal)
                }
            }
            while let (pid, _) = Wait.any() {
                guard let i = instances.firstIndex(where: { $0.pid == pid }) else { continue }
                out("info: qscheduler: pid \(pid), queue \(instances[i].directory) died\n")
                instances[i].pid = 0
                instances[i].due = MonotonicClock.now() + 1
            }
            for i in instances.indices {
                guard let due = instances[i].due, due <= MonotonicClock.now() else { continue }
                if sendIsStopped(instances[i]) {
                    if !launch(i) { instances[i].due = MonotonicClock.now() + 5 }
                } else {
                    instances[i].attempts += 1
                    if instances[i].attempts >= QschedulerCommand.lockAttempts {
                        alert("alert: qscheduler: could not restart queue \(instances[i].directory)\n")
                        return shutdown(failed: true, signals)
                    }
                    instances[i].due = MonotonicClock.now() + 5
                }
            }
        }
    }

    func forward(_ signal: Int32) {
        alert("alert: qscheduler: pid \(selfPid) got \(Signals.name(signal))\n")
        for instance in instances where instance.pid > 0 {
            out("info: qscheduler: issue SIG\(Signals.name(signal)) to \(instance.pid), queue \(instance.directory)\n")
            kill(instance.pid, signal)
        }
    }

    /// TERM to every instance, wait for all, exit 0 (asked to) or 111 (trouble).
    mutating func shutdown(failed: Bool, _ signals: SignalFD) -> Int32 {
        if failed { alert("alert: qscheduler: pid \(selfPid) ARGH!! Committing suicide\n") }
        for instance in instances where instance.pid > 0 {
            out("info: qscheduler: issue SIGTERM to \(instance.pid), queue \(instance.directory)\n")
            kill(instance.pid, SIGTERM)
        }
        while instances.contains(where: { $0.pid > 0 }) {
            var raw: Int32 = 0
            let pid = waitpid(-1, &raw, 0)
            if pid < 0 {
                if errno == EINTR { continue }
                break
            }
            if let i = instances.firstIndex(where: { $0.pid == pid }) {
                out("info: qscheduler: pid \(pid), queue \(instances[i].directory) killed\n")
                instances[i].pid = 0
            }
        }
        alert("info: qscheduler: pid \(selfPid) exiting\n")
        return failed ? 111 : 0
    }
}
