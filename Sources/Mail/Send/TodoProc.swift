// todo-proc: turns each completed envelope in todo/ into info/, local/ and remote/ files,
// has its own qmail-clean remove the todo and intd files, and tells qmail-send the
// message is ready (§3.5, §6.1). Its log lines travel to qmail-send as `L` records.
import Core
import Glibc

/// Files a preprocessed message is written with, and how they reach the disk.
struct SyncSettings {
    var policy: QueueSyncPolicy
    var syncDirectories: Bool

    init(environment env: Environment) {
        policy = QueueSyncPolicy(environment: env)
        syncDirectories = env["USE_SYNCDIR"] != "0"
    }
}

/// The control files conf-fsync, conf-fdatasync and conf-syncdir, when present, decide
/// USE_FSYNC, USE_FDATASYNC and USE_SYNCDIR for this program and its children: a non-zero
/// number turns the setting on, 0 turns it off (USE_FSYNC=0, as our default is on).
public enum SyncControls {
    public static func apply(to env: inout Environment, control: ControlFiles) {
        for (file, variable) in [("conf-fsync", "USE_FSYNC"), ("conf-fdatasync", "USE_FDATASYNC"), ("conf-syncdir", "USE_SYNCDIR")] {
            guard case .success(let text?) = control.value(file) else { continue }
            let on = QueueLayout.leadingNumber(text) != 0
            if on {
                env.set(variable, Array("1".utf8))
            } else if variable == "USE_FDATASYNC" {
                env.unset(variable)
            } else {
                env.set(variable, Array("0".utf8))
            }
        }
    }
}

/// The classification settings todo-proc reads (and rereads on `H`).
struct TodoSettings {
    var rewriter: AddressRewriter

    static func load(_ env: Environment) -> Result<TodoSettings, MailConfigError> {
        let control = ControlFiles(paths: SuitePaths(environment: env))
        let identity: MailIdentity
        switch MailIdentity.load(control) {
        case .failure(let e): return .failure(e)
        case .success(let i): identity = i
        }
        do throws(MailConfigError) {
            let percent = try control.list("percenthack").mapError { MailConfigError.control($0) }.get() ?? []
            let virtual = try control.list("virtualdomains").mapError { MailConfigError.control($0) }.get() ?? []
            return .success(TodoSettings(rewriter: AddressRewriter(
                locals: identity.locals, percentHack: percent, virtualDomains: virtual,
                envNoAtHost: identity.envNoAtHost)))
        } catch {
            return .failure(error)
        }
    }
}

public struct TodoProcCommand: Command {
    public static let name = "todo-proc"
    public static let installDirectory = InstallDirectory.sbin
    public static let summary = "preprocess new messages in the queue for qmail-send"

    /// fds as qmail-start sets them up.
    static let fromSend: Int32 = 0, toSend: Int32 = 1, toClean: Int32 = 2, fromClean: Int32 = 3
    /// A scan at least this often even without a trigger (the reference's SLEEP_TODO).
    static let forcedScan: Double = 1500

    public static func run(_ context: CommandContext) -> Int32 {
        var processor = TodoProcessor(environment: context.environment)
        return processor.main()
    }
}

struct TodoProcessor {
    var env: Environment
    let layout: QueueLayout
    let log: ActivityLog
    var sync: SyncSettings
    var settings: TodoSettings?
    var detached = false
    var nextStaleScan = 0
    var trigger: Int32 = -1
    let cleanReplies = BufferedReader(fd: TodoProcCommand.fromClean, capacity: 64)
    let program = "todo-proc"

    init(environment original: Environment) {
        var env = original
        SyncControls.apply(to: &env, control: ControlFiles(paths: SuitePaths(environment: env)))
        self.env = env
        let queue = SuitePaths(environment: env).queueDirectory
        layout = QueueLayout(directory: ".", environment: env)
        log = ActivityLog(queueName: Path.basename(queue), qident: env.nonEmpty("QIDENT"))
        sync = SyncSettings(environment: env)
    }

    func send(_ records: [TodoRecord]) -> Bool {
        var out: [UInt8] = []
        for r in records { out += r.bytes }
        if case .failure = FD.writeAll(TodoProcCommand.toSend, out) { return false }
        return true
    }

    func say(_ text: String) { _ = send([.log(Array(text.utf8))]) }

    mutating func main() -> Int32 {
        Signals.ignore(SIGPIPE)
        umask(0o077)
        let queue = SuitePaths(environment: env).queueDirectory
        // qmail-send must be up before anything is classified.
        var byte: UInt8 = 0
        while true {
            let n = read(TodoProcCommand.fromSend, &byte, 1)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return ExitCode.temporary }
            if byte == UInt8(ascii: "C") { break }
        }
        guard chdir(queue) == 0 else {
            say(log.alert(program, "cannot start: unable to switch to queue directory \(queue)"))
            _ = send([.exit])
            return ExitCode.temporary
        }
        switch TodoSettings.load(env) {
        case .failure(let e):
            say(log.alert(program, "cannot start: \(e)"))
            _ = send([.exit])
            return ExitCode.temporary
        case .success(let s): settings = s
        }
        FD.setNonBlocking(TodoProcCommand.fromSend)
        reopenTrigger()
        let interval = Self.todoInterval(env)
        var nextScan = MonotonicClock.now()
        while true {
            let now = MonotonicClock.now()
            if !detached && now >= nextScan {
                if !scan() { break }
                nextScan = MonotonicClock.now() + (interval ?? TodoProcCommand.forcedScan)
            }
            var fds = [pollfd(fd: TodoProcCommand.fromSend, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: trigger, events: Int16(POLLIN), revents: 0)]
            let timeout = MonotonicClock.pollTimeout(until: nextScan)
            let r = poll(&fds, trigger >= 0 ? 2 : 1, detached ? -1 : timeout)
            if r < 0 && errno != EINTR { sleep(1); continue }
            if fds[0].revents != 0 {
                switch readCommands() {
                case .exit:
                    _ = send([.exit])
                    return ExitCode.success
                case .gone: return ExitCode.success
                case .scan: nextScan = MonotonicClock.now()
                case .nothing: break
                }
            }
            if trigger >= 0 && fds[1].revents != 0 {
                reopenTrigger()
                nextScan = MonotonicClock.now()
            }
        }
        _ = send([.exit])
        return ExitCode.temporary
    }

    /// TODO_INTERVAL, else the control file todointerval; nil (the 1500 s default) when
    /// neither gives a positive number.
    static func todoInterval(_ env: Environment) -> Double? {
        var text = env.nonEmpty("TODO_INTERVAL")
        if text == nil, case .success(let value?) = ControlFiles(paths: SuitePaths(environment: env)).value("todointerval") {
            text = value
        }
        guard let text else { return nil }
        let n = QueueLayout.leadingNumber(text)
        return n > 0 ? Double(n) : nil
    }

    mutating func reopenTrigger() {
        if trigger >= 0 { close(trigger) }
        trigger = Glibc.open("lock/trigger", O_RDONLY | O_NONBLOCK | O_CLOEXEC)
    }

    enum CommandOutcome { case nothing, scan, exit, gone }

    /// Reads whatever bytes qmail-send sent; the last decisive one wins.
    mutating func readCommands() -> CommandOutcome {
        var buffer = [UInt8](repeating: 0, count: 64)
        var outcome = CommandOutcome.nothing
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(TodoProcCommand.fromSend, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n == 0 { return .gone }
            if n < 0 { return outcome }
            for b in buffer[0..<n] {
                switch b {
                case UInt8(ascii: "X"): return .exit
                case UInt8(ascii: "D"):
                    detached = true
                    say("alert: \(program): pid \(getpid()) got 'D' command: todo-proc detached: \(log.queueName)\n")
                case UInt8(ascii: "A"):
                    detached = false
                    say("alert: \(program): pid \(getpid()) got 'A' command: todo-proc attached: \(log.queueName)\n")
                    outcome = .scan
                case UInt8(ascii: "H"):
                    say("alert: \(program): pid \(getpid()) got HUP: \(log.queueName)\n")
                    SyncControls.apply(to: &env, control: ControlFiles(paths: SuitePaths(environment: env)))
                    sync = SyncSettings(environment: env)
                    switch TodoSettings.load(env) {
                    case .success(let s): settings = s
                    case .failure(let e): say(log.alert(program, "unable to reread controls: \(e)"))
                    }
                    outcome = .scan
                case UInt8(ascii: "C"): break
                default: warn("qmail-send speaks an obscure dialect")
                }
            }
        }
    }

    /// Envelopes under construction whose qmail-queue died long ago (no todo, not touched
    /// for OSSIFIED seconds) are removed; qmail-send later removes their message file.
    mutating func removeStaleEnvelopes() -> Bool {
        let ossified = Int(env["OSSIFIED"].map(QueueLayout.leadingNumber).flatMap { $0 > 0 ? $0 : nil } ?? 129600)
        let now = Int(time(nil))
        let dirs = layout.bigTodo ? (0..<layout.split).map { "intd/\($0)" } : ["intd"]
        for dir in dirs {
            guard case .success(let names) = Path.entries(dir) else { continue }
            for name in names {
                guard let id = UInt64(name), let st = Path.status(dir + "/" + name),
                      now > Int(st.st_atim.tv_sec) + ossified, !Path.exists(layout.relativePath(.todo, id)) else { continue }
                let request = Array(layout.relativePath(.todo, id).utf8) + [0]
                guard case .success = FD.writeAll(TodoProcCommand.toClean, request),
                      case .success(let reply?) = cleanReplies.readByte() else { return false }
                if reply != UInt8(ascii: "+") { warn("qmail-clean unable to clean up \(dir)/\(name)") }
            }
        }
        return true
    }

    /// One pass over todo/: false when qmail-send or qmail-clean went away.
    mutating func scan() -> Bool {
        let now = Int(time(nil))
        if now >= nextStaleScan {
            nextStaleScan = now + 76431
            guard removeStaleEnvelopes() else {
                say(log.alert(program, "oh no! lost qmail-clean connection! dying..."))
                return false
            }
        }
        var ids: [UInt64] = []
        let dirs = layout.bigTodo ? (0..<layout.split).map { "todo/\($0)" } : ["todo"]
        for dir in dirs {
            guard case .success(let names) = Path.entries(dir) else { continue }
            for name in names {
                guard let id = UInt64(name) else { continue }
                ids.append(id)
            }
        }
        for id in ids.sorted() {
            if detached { return true }
            switch process(id) {
            case .done, .failed: break
            case .lostClean:
                say(log.alert(program, "oh no! lost qmail-clean connection! dying..."))
                return false
            case .lostSend: return false
            }
            // Stop between messages when qmail-send asked us to.
            var p = pollfd(fd: TodoProcCommand.fromSend, events: Int16(POLLIN), revents: 0)
            if poll(&p, 1, 0) > 0 {
                switch readCommands() {
                case .exit, .gone: return false
                default: break
                }
            }
        }
        return true
    }

    enum Outcome { case done, failed, lostClean, lostSend }

    func warn(_ text: String) { say(log.warn(program, text)) }

    mutating func process(_ id: UInt64) -> Outcome {
        guard let settings else { return .failed }
        let todoPath = layout.relativePath(.todo, id)
        let envelope: [UInt8]
        switch FD.readFile(todoPath) {
        case .failure(let e):
            if e.errno != ENOENT { warn("open \(todoPath): \(e.reason)") }
            return .failed
        case .success(let b): envelope = b
        }
        let messPath = layout.relativePath(.mess, id)
        guard let mess = Path.status(messPath) else {
            warn("unable to stat \(messPath): \(SystemError.describe(errno))")
            return .failed
        }
        let infoPath = layout.relativePath(.info, id)
        for path in [layout.relativePath(.local, id), layout.relativePath(.remote, id), infoPath] {
            if unlink(path) != 0 && errno != ENOENT {
                warn("unable to unlink \(path): \(SystemError.describe(errno))")
                return .failed
            }
        }
        // Build everything in memory first: an envelope is small.
        var info: [UInt8] = []
        var channels: [[UInt8]] = [[], []]
        var logs: [TodoRecord] = [.log(Array(log.newMessage(id).utf8))]
        var uid: UInt64 = 0, pid: UInt64 = 0
        var start = 0
        while start < envelope.count {
            guard let end = envelope[start...].firstIndex(of: 0) else { break }
            let record = Array(envelope[start..<end])
            start = end + 1
            switch record.first {
            case UInt8(ascii: "u"): uid = Self.number(record.dropFirst())
            case UInt8(ascii: "p"): pid = Self.number(record.dropFirst())
            case UInt8(ascii: "e"), UInt8(ascii: "h"): info += record + [0]
            case UInt8(ascii: "F"):
                info += record + [0]
                logs.append(.log(Array(log.info(id: id, bytes: Int64(mess.st_size), sender: Array(record.dropFirst()),
                                                qp: pid, uid: uid).utf8)))
            case UInt8(ascii: "T"):
                let (channel, address) = settings.rewriter.rewrite(Array(record.dropFirst()))
                channels[channel.rawValue] += [UInt8(ascii: "T")] + address + [0]
            default:
                warn("unknown record type in \(todoPath)")
                return .failed
            }
        }
        // Written first, then flushed together (files and the directories holding their
        // names): every flush is still waited for before todo goes.
        var written: [(path: String, fd: Int32)] = []
        func discard() {
            for file in written {
                close(file.fd)
                unlink(file.path)
            }
        }
        guard let infoFD = create(infoPath, info) else { return .failed }
        written.append((infoPath, infoFD))
        var has = [false, false]
        for c in DeliveryChannel.allCases where !channels[c.rawValue].isEmpty {
            let path = layout.relativePath(c.area, id)
            guard let fd = create(path, channels[c.rawValue]) else {
                discard()
                return .failed
            }
            written.append((path, fd))
            has[c.rawValue] = true
        }
        guard flush(written) else {
            discard()
            return .failed
        }
        for file in written { close(file.fd) }
        // The files are safe: todo and intd may go.
        let request = Array(todoPath.utf8) + [0]
        guard case .success = FD.writeAll(TodoProcCommand.toClean, request) else { return .lostClean }
        guard case .success(let reply?) = cleanReplies.readByte() else { return .lostClean }
        guard reply == UInt8(ascii: "+") else {
            warn("qmail-clean unable to clean up \(todoPath)")
            return .failed
        }
        // The log lines go first, then the news, as the reference batches them.
        logs.append(.done(id: id, local: has[0], remote: has[1]))
        return send(logs) ? .done : .lostSend
    }

    static func number(_ digits: some Collection<UInt8>) -> UInt64 {
        var n: UInt64 = 0
        for d in digits {
            guard d >= 48, d <= 57 else { break }
            let (m, o1) = n.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(UInt64(d - 48))
            if o1 || o2 { return n }
            n = s
        }
        return n
    }

    /// Creates `path` exclusively with `bytes`; the open descriptor, nil (after a warning,
    /// nothing left behind) on failure.
    func create(_ path: String, _ bytes: [UInt8]) -> Int32? {
        let fd: Int32
        switch FD.openExclusive(path, mode: 0o600) {
        case .failure(let e):
            warn("unable to create \(path): \(e.reason)")
            return nil
        case .success(let f): fd = f
        }
        if case .failure(let e) = FD.writeAll(fd, bytes) {
            warn("trouble writing to \(path): \(e.reason)")
            close(fd)
            unlink(path)
            return nil
        }
        return fd
    }

    /// Syncs the written files as configured, and the directories holding them, all at
    /// once. False (after a warning) when a file could not be synced; a directory that
    /// cannot be synced is not fatal.
    func flush(_ written: [(path: String, fd: Int32)]) -> Bool {
        let dataOnly: Bool
        switch sync.policy {
        case .none: return true
        case .fsync: dataOnly = false
        case .fdatasync: dataOnly = true
        }
        var requests = written.map { ConcurrentSync.Request($0.fd, dataOnly: dataOnly) }
        var directories: [Int32] = []
        if sync.syncDirectories {
            for file in written {
                let fd = open(Path.dirname(file.path), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                if fd >= 0 { directories.append(fd) }
            }
            requests += directories.map { ConcurrentSync.Request($0) }
        }
        let results = ConcurrentSync.flush(requests)
        for fd in directories { close(fd) }
        for (file, result) in zip(written, results) where result != 0 {
            warn("trouble fsyncing \(file.path): \(SystemError.describe(result))")
            return false
        }
        return true
    }
}
