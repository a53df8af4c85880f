// qmail-queued: qmail-queue as a resident pool. Workers running as qmailq take requests on
// a local stream socket (QueueService's format) and put each message into the queue with
// exactly qmail-queue's steps, syncs and exit codes, so a client that would start
// qmail-queue per message (qmail-smtpd, qmail-inject, ...) pays a connect instead of an exec.
// Clients find it through QUEUE_SOCKET and fall back to qmail-queue when it is not there.
import CSupport
import Core
import Glibc

public struct QmailQueuedCommand: Command {
    public static let name = "qmail-queued"
    public static let installDirectory = InstallDirectory.sbin
    public static let summary = "resident qmail-queue: queue messages handed over a local socket"

    static let synopsis = "qmail-queued [ -c workers ] [ -n requests ] [ -m mode ] [ -t seconds ] socket"

    struct Settings {
        var path = ""
        var workers = 10
        /// A worker exits after this many requests (0: never) and is replaced.
        var requestsPerWorker = 10000
        var mode: mode_t = 0o666
        /// How long a worker waits for a whole request.
        var requestSeconds = QueueService.requestSeconds
    }

    public static func run(_ context: CommandContext) -> Int32 {
        let diag = context.diagnostics
        var settings = Settings()
        let parsed: (items: [OptionParser.Item], operandIndex: Int)
        switch OptionParser("c:n:m:t:").parse(context.strings) {
        case .failure(let e): diag.warning(e.description); return diag.usage(synopsis)
        case .success(let p): parsed = p
        }
        for item in parsed.items {
            switch item {
            case .value("c", let v):
                guard let n = Int(v), (1...1000).contains(n) else { return diag.fatal(ExitCode.permanent, "workers must be 1 to 1000: \(v)") }
                settings.workers = n
            case .value("n", let v):
                guard let n = Int(v), n >= 0 else { return diag.fatal(ExitCode.permanent, "bad request count: \(v)") }
                settings.requestsPerWorker = n
            case .value("m", let v):
                guard let m = mode_t(v, radix: 8), m <= 0o777 else { return diag.fatal(ExitCode.permanent, "bad mode: \(v)") }
                settings.mode = m
            case .value("t", let v):
                guard let t = Int(v), (1...86400).contains(t) else { return diag.fatal(ExitCode.permanent, "bad timeout: \(v)") }
                settings.requestSeconds = Double(t)
            default: return diag.usage(synopsis)
            }
        }
        let operands = Array(context.strings[parsed.operandIndex...])
        guard operands.count == 1, !operands[0].isEmpty else { return diag.usage(synopsis) }
        settings.path = operands[0]

        // A TERM that arrives while the socket is being set up waits for the loop, which
        // removes the socket; unblocked, it would kill us and leave the name behind.
        WorkerPool.signals.block()

        // As root the pool runs as qmailq, the owner qmail-queue's setuid bit would give.
        var identity: Credentials? = nil
        if geteuid() == 0 {
            let user = SuiteAccounts(environment: context.environment).qmailq
            switch Accounts.user(user) {
            case .failure(let e): return diag.fatal(ExitCode.temporary, "unable to look up \(user): \(e)")
            case .success(let account): identity = Credentials(account: account)
            }
        }
        let listener: Int32
        switch bindSocket(settings) {
        case .failure(let e): return diag.fatal(ExitCode.temporary, e.description)
        case .success(let fd): listener = fd
        }
        if let identity, case .failure(let e) = Privileges.become(identity) {
            unlink(settings.path)
            return diag.fatal(ExitCode.temporary, "unable to become qmailq: \(e)")
        }
        var pool = WorkerPool(settings: settings, listener: listener, diagnostics: diag)
        return pool.run()
    }

    /// Binds the socket, replacing a stale one (a socket nobody answers on) but never a
    /// live server or a file of another kind.
    static func bindSocket(_ settings: Settings) -> Result<Int32, BindFailure> {
        var st = stat()
        if lstat(settings.path, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFSOCK else { return .failure(BindFailure(description: "\(settings.path) exists and is not a socket")) }
            if case .success(let fd) = Socket.connect(to: .unix(settings.path), timeout: 1) {
                FD.close(fd)
                return .failure(BindFailure(description: "another qmail-queued answers on \(settings.path)"))
            }
            unlink(settings.path)
        }
        let old = umask(0o077)
        defer { umask(old) }
        switch Socket.listenUnix(path: settings.path, backlog: 128) {
        case .failure(let e): return .failure(BindFailure(description: e.description))
        case .success(let fd):
            guard chmod(settings.path, settings.mode) == 0 else {
                let e = SystemError("unable to chmod", settings.path)
                FD.close(fd)
                unlink(settings.path)
                return .failure(BindFailure(description: e.description))
            }
            return .success(fd)
        }
    }
}

struct BindFailure: Error, CustomStringConvertible {
    let description: String
}

/// The parent: keeps `workers` workers alive, replaces them on HUP, stops them on TERM/INT.
struct WorkerPool {
    let settings: QmailQueuedCommand.Settings
    let listener: Int32
    let diagnostics: Diagnostics
    /// pid → start time (monotonic seconds).
    var workers: [pid_t: Double] = [:]
    /// Workers that died young wait this long before being replaced (no fork loop).
    static let restartDelay = 1.0
    /// What the parent waits for; blocked from the start (see QmailQueuedCommand.run).
    static let signals = SignalSet([SIGCHLD, SIGTERM, SIGINT, SIGHUP])

    init(settings: QmailQueuedCommand.Settings, listener: Int32, diagnostics: Diagnostics) {
        self.settings = settings
        self.listener = listener
        self.diagnostics = diagnostics
    }

    mutating func run() -> Int32 {
        let signals: SignalFD
        do {
            signals = try SignalFD(Self.signals)
        } catch {
            unlink(settings.path)
            return diagnostics.fatal(error)
        }
        Signals.ignore(SIGPIPE)
        FD.writeAll(2, Array("qmail-queued: listening on \(settings.path), \(settings.workers) workers\n".utf8))
        var nextStart = 0.0
        while true {
            let now = MonotonicClock.now()
            if workers.count < settings.workers && now >= nextStart {
                while workers.count < settings.workers {
                    guard let pid = startWorker(signals) else {
                        nextStart = now + Self.restartDelay  // fork failed: not in a loop
                        break
                    }
                    workers[pid] = now
                }
            }
            let waitFor = workers.count < settings.workers ? max(0.05, nextStart - now) : -1
            _ = FD.waitUntil(signals.fd, events: Int16(POLLIN), timeout: waitFor < 0 ? -1 : Int32(waitFor * 1000))
            for signal in signals.drain() {
                switch signal {
                case SIGCHLD:
                    while let (pid, status) = Wait.any() {
                        guard let started = workers.removeValue(forKey: pid) else { continue }
                        if status != .exited(0) {
                            diagnostics.warning("worker \(pid) \(status.description)")
                        }
                        if MonotonicClock.now() - started < Self.restartDelay {
                            nextStart = MonotonicClock.now() + Self.restartDelay
                        }
                    }
                case SIGHUP:
                    // Fresh workers (a new binary, new accounts): each finishes its request first.
                    for pid in workers.keys { kill(pid, SIGTERM) }
                default:
                    return stop()
                }
            }
        }
    }

    /// Stops accepting (the socket goes, so clients use qmail-queue), lets every worker end
    /// its current request, and exits.
    mutating func stop() -> Int32 {
        unlink(settings.path)
        for pid in workers.keys { kill(pid, SIGTERM) }
        while !workers.isEmpty {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, 0)
            if pid < 0 {
                if errno == EINTR { continue }
                break
            }
            workers.removeValue(forKey: pid)
        }
        return 0
    }

    func startWorker(_ signals: SignalFD) -> pid_t? {
        let pid = fork()
        if pid < 0 {
            diagnostics.warning(SystemError("unable to fork").description)
            return nil
        }
        if pid > 0 { return pid }
        FD.close(signals.fd)
        var worker = QueueWorker(listener: listener, requests: settings.requestsPerWorker, requestSeconds: settings.requestSeconds)
        _exit(worker.run())
    }
}

/// One worker: accept, read a whole request, queue it, reply; again.
struct QueueWorker {
    let listener: Int32
    let requests: Int
    let requestSeconds: Double
    let accounts = AccountCache()
    /// mess, intd and mess/ are flushed together: two helpers beside the worker's thread.
    let flushThreads = FlushThreads(helpers: 2)

    mutating func run() -> Int32 {
        QmailQueue.prepareSignals()
        // TERM ends an idle worker at once; during a request it waits until the reply.
        Signals.setDefault(SIGTERM)
        cs_set_parent_death_signal(SIGTERM)
        umask(0o033)
        let term = SignalSet([SIGTERM])
        var served = 0
        while requests == 0 || served < requests {
            term.unblock()
            let accepted = Socket.accept(listener)
            term.block()
            guard case .success(let (client, _)) = accepted else { return 111 }
            serve(client)
            FD.close(client)
            served += 1
            if Self.termPending() { return 0 }
        }
        return 0
    }

    static func termPending() -> Bool {
        var pending = sigset_t()
        sigpending(&pending)
        return sigismember(&pending, SIGTERM) == 1
    }

    func serve(_ client: Int32) {
        var uid: UInt32 = 0
        var peerPID: Int32 = 0
        guard cs_peer_credentials(client, &uid, &peerPID) == 0 else { return }
        let deadline = MonotonicClock.now() + requestSeconds
        let code: Int32
        switch QueueService.readRequest(client, deadline: deadline) {
        case .failure:
            code = QueueExit.readError.rawValue
        case .success(let request):
            // Every request starts from / so a relative path means the same each time.
            _ = chdir("/")
            var env = request.environment
            // MIN_FREE as qmail-multi applies it in front of qmail-queue (the services
            // svctool makes set it): the queue is chosen first, then it must have room.
            if env["MIN_FREE"] != nil, let refusal = QueueFrontEnd.chooseQueue(&env) {
                code = refusal
                break
            }
            accounts.refresh()
            var injection = Injection(environment: env, callerUID: uid_t(uid),
                                      input: RequestInput(message: request.message, envelope: request.envelope))
            injection.uidOf = accounts.uid
            injection.flush = flushThreads.flush
            code = injection.run()
            if code != 0 { injection.cleanup() }
            alarm(0)
        }
        let reply = QueueService.reply(code: code, pid: getpid())
        _ = reply.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }
}

/// Account name → uid for a worker: qmail-queue looks two names up per message (the
/// Received line's "alias" and "bounce" cases); a worker keeps the answers while the
/// password file is unchanged, and for a minute at most (other NSS sources).
final class AccountCache {
    private var uids: [String: uid_t?] = [:]
    private var stamp: [Int] = []
    private var expires = 0.0
    static let lifetime = 60.0

    /// Forgets every answer when /etc/passwd changed or the minute is over; once per request.
    func refresh() {
        var st = stat()
        let current = stat("/etc/passwd", &st) == 0
            ? [Int(st.st_ino), Int(st.st_size), st.st_mtim.tv_sec, st.st_mtim.tv_nsec] : []
        let now = MonotonicClock.now()
        if current != stamp || now >= expires {
            uids = [:]
            stamp = current
            expires = now + Self.lifetime
        }
    }

    func uid(_ name: String) -> uid_t? {
        if let known = uids[name] { return known }
        let found = Accounts.uid(of: name)
        uids[name] = found
        return found
    }
}
