// svscan at run time: the event loop over a signalfd, the scans, the children it starts and
// reaps, and the orderly shutdown. Decisions come from ScanPlanner; this file does the effects.
import CSupport
import Core
import Glibc

final class Svscan {
    let configuration: SvscanConfiguration
    var log: SvscanLog
    let myPID: pid_t
    /// PID 1 (a container's init): reaps everything, rescans on every child exit.
    let isInit: Bool
    /// Absolute scan directory; also svscan's working directory.
    let scanDirectory: String
    let runDirectory: String?
    let pidFile: String
    /// What every child inherits: PPID, SCANDIR, PWD, VERBOSE/SILENT, no NOTIFY_SOCKET.
    let childEnvironment: Environment
    let notifier: SystemdNotify?
    let signals: SignalFD
    let planner: ScanPlanner
    /// /proc shows this process's own pid namespace, so its pids can be signalled.
    let procUsable: Bool

    private var slots: [ServiceSlot] = []
    private var pipes: [ServiceIdentity: (read: Int32, write: Int32)] = [:]
    /// INITCMD and `.svscan/shutdown` while they run.
    private var helpers: [pid_t: String] = [:]
    private var ownLogIdentity: ServiceIdentity?
    private var scanDue = true
    private var nextScanAt: Double?
    private var retryAt: Double?
    private var announcedReady = false
    private var shutdown: ShutdownState?

    static let signalsHandled: [Int32] = [SIGCHLD, SIGHUP, SIGTERM, SIGINT, SIGUSR1, SIGUSR2, cs_sigrtmin() + 3]

    init(configuration: SvscanConfiguration, log: SvscanLog, myPID: pid_t, scanDirectory: String,
         runDirectory: String?, pidFile: String, childEnvironment: Environment, notifier: SystemdNotify?,
         signals: SignalFD) {
        self.configuration = configuration
        self.log = log
        self.myPID = myPID
        self.isInit = myPID == 1
        self.scanDirectory = scanDirectory
        self.runDirectory = runDirectory
        self.pidFile = pidFile
        self.childEnvironment = childEnvironment
        self.notifier = notifier
        self.signals = signals
        self.planner = ScanPlanner(capacity: configuration.capacity, restartDelay: 1,
                                   renamesRunState: runDirectory != nil)
        var buffer = [CChar](repeating: 0, count: 64)
        let n = readlink("/proc/self", &buffer, buffer.count - 1)
        let selfName = n > 0 ? String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
        self.procUsable = pid_t(selfName) == myPID
    }

    // MARK: - Startup helpers

    /// SCANLOG: start `.svscan/log` before anything else and send svscan's fds 1 and 2 (and so
    /// every child's, unless its service has a log) into its pipe.
    func startOwnLogger() {
        guard let entry = examine(ScanEntry.ownDirectory) else { return }
        guard case .service = entry.kind else { return }
        let plan = planner.plan(entries: [entry], slots: slots, now: MonotonicClock.now(), complete: false)
        apply(plan)
        guard let slot = slots.first(where: { $0.ownLogger }), slot.logPID != nil,
              let pipe = pipes[slot.identity] else { return }
        if dup2(pipe.write, 1) < 0 || dup2(pipe.write, 2) < 0 {
            log.warning("unable to dup descriptors for \(ScanEntry.ownDirectory): \(SystemError.describe(errno))")
            return
        }
        log.info("pid: \(myPID): starting...")
    }

    /// INITCMD: `.svscan/run` (empty value) or the named executable, through /bin/sh -c.
    func runInitCommand() {
        guard let value = configuration.initCommand else { return }
        let command = value.isEmpty ? Path.join(ScanEntry.ownDirectory, "run") : value
        guard access(command, X_OK) == 0 else { return }
        switch Spawn.start(["/bin/sh", "-c", command].map { Array($0.utf8) }, environment: childEnvironment) {
        case .failure(let e):
            log.warning("unable to run \(command): \(e.reason)")
        case .success(let pid):
            if configuration.waitInitCommand {
                if case .success(let status) = Wait.for(pid), status != .exited(0) {
                    log.warning("\(command) \(status)")
                }
            } else {
                helpers[pid] = command
            }
        }
    }

    // MARK: - Event loop

    /// Runs until an orderly shutdown completes; returns the exit code.
    func run() -> Int32 {
        // A stop requested during start-up (INITCMD) comes before the first scan.
        for signal in signals.drain() { handle(signal) }
        if shutdown != nil, let code = advanceShutdown() { return code }
        while true {
            let now = MonotonicClock.now()
            if shutdown == nil && (scanDue || due(nextScanAt, now) || due(retryAt, now)) {
                scan(now: now)
                if !announcedReady {
                    announcedReady = true
                    announceReady()
                }
            }
            let deadline: Double?
            if let shutdown {
                deadline = shutdown.wakeAt
            } else {
                deadline = [nextScanAt, retryAt].compactMap { $0 }.min()
            }
            var p = pollfd(fd: signals.fd, events: Int16(POLLIN), revents: 0)
            _ = poll(&p, 1, MonotonicClock.pollTimeout(until: deadline))
            for signal in signals.drain() { handle(signal) }
            if shutdown != nil, let code = advanceShutdown() { return code }
        }
    }

    private func due(_ time: Double?, _ now: Double) -> Bool {
        guard let time else { return false }
        return time <= now
    }

    private func handle(_ signal: Int32) {
        switch signal {
        case SIGCHLD:
            let slotExited = reap().slotExited
            if shutdown == nil && slotExited && (isInit || configuration.scanOnChildExit) { scanDue = true }
        case SIGHUP:
            guard shutdown == nil else { return }
            log.info("got sighup")
            scanDue = true
        case SIGUSR1:
            log.verbose.toggle()
        case SIGUSR2:
            log.silent.toggle()
        default:
            // TERM, INT and SIGRTMIN+3 (the stop signal of container managers).
            if shutdown == nil { beginShutdown() }
        }
    }

    // MARK: - Reaping

    /// Reaps every ended child; `none` when no child is left at all.
    @discardableResult
    private func reap() -> (slotExited: Bool, none: Bool) {
        var slotExited = false
        while true {
            var raw: Int32 = 0
            let pid = waitpid(-1, &raw, WNOHANG)
            if pid > 0 {
                if exited(pid, WaitStatus(raw: raw)) { slotExited = true }
                continue
            }
            if pid < 0 && errno == EINTR { continue }
            return (slotExited, pid < 0 && errno == ECHILD)
        }
    }

    /// Records an ended child; true when it was a supervise of a slot.
    private func exited(_ pid: pid_t, _ status: WaitStatus) -> Bool {
        var what: String?
        var isSlot = false
        for i in slots.indices {
            if slots[i].mainPID == pid {
                slots[i].mainPID = nil
                if case .signaled = status { shutdown?.relayToOrphans = true }
                what = "supervise \(slots[i].name)"
                isSlot = true
            } else if slots[i].logPID == pid {
                slots[i].logPID = nil
                what = "supervise \(slots[i].name)/log"
                isSlot = true
            }
        }
        if what == nil, let helper = helpers.removeValue(forKey: pid) { what = helper }
        switch status {
        case .exited(let code): log.info("pid: \(pid)\(what.map { " (\($0))" } ?? ""), exited with status=\(code)")
        case .signaled(let sig, _): log.info("pid: \(pid)\(what.map { " (\($0))" } ?? ""), killed by signal \(sig)")
        case .stopped: break
        }
        if what == nil { log.info("completed last rites for orphan \(pid)") }
        return isSlot
    }

    // MARK: - Scanning

    private func scan(now: Double) {
        reap()
        scanDue = false
        if !configuration.autoScan { log.info("Scanning directory \(scanDirectory)") }
        let names: [String]
        switch Path.entries(".") {
        case .success(let n): names = n
        case .failure(let e):
            log.warning("unable to read directory: \(e.reason)")
            nextScanAt = now + configuration.scanInterval
            return
        }
        let entries = names.compactMap { examine($0) }
        let plan = planner.plan(entries: entries, slots: slots, now: now)
        let applied = apply(plan)
        retryAt = plan.retryAt
        nextScanAt = (!applied || configuration.autoScan) ? now + configuration.scanInterval : nil
    }

    /// What the scan needs to know about one name of the scan directory.
    private func examine(_ name: String) -> ScanEntry? {
        if name.hasPrefix(".") && name != ScanEntry.ownDirectory {
            return ScanEntry(name: name, kind: .disabled)
        }
        guard let st = Path.status(name) else { return ScanEntry(name: name, kind: .unreadable(errno)) }
        guard (st.st_mode & S_IFMT) == S_IFDIR else { return ScanEntry(name: name, kind: .notDirectory) }
        let logEntry: ScanEntry.LogEntry
        if Path.status(Path.join(name, "log")) != nil {
            logEntry = .present
        } else {
            logEntry = errno == ENOENT || errno == ENOTDIR ? .absent : .unreadable(errno)
        }
        let down = access(Path.join(name, "down"), F_OK) == 0
        return ScanEntry(name: name, kind: .service(ServiceIdentity(st), log: logEntry, down: down))
    }

    /// Carries out a plan; false when something failed and a retry is due.
    @discardableResult
    private func apply(_ plan: ScanPlan) -> Bool {
        var ok = !plan.failed
        let now = MonotonicClock.now()
        for action in plan.actions {
            switch action {
            case .warning(let message):
                log.warning(message)
            case .hideRunState(let name):
                if !hideRunState(name) { ok = false }
            case .addSlot(let identity, let name, let hasLog, let ownLogger):
                if hasLog {
                    switch FD.pipe() {
                    case .success(let p): pipes[identity] = p
                    case .failure(let e):
                        log.warning("unable to create pipe for \(name): \(e.reason)")
                        ok = false
                        continue
                    }
                }
                slots.append(ServiceSlot(identity: identity, name: name, ownLogger: ownLogger, hasLog: hasLog))
                if ownLogger { ownLogIdentity = identity }
            case .startMain(let identity, let name, let wantUp):
                guard let i = slotIndex(identity) else { continue }
                slots[i].name = name
                slots[i].mainStartedAt = now
                if let pid = startMain(name: name, pipe: pipes[identity]) {
                    slots[i].mainPID = pid
                    slots[i].wantUp = wantUp
                } else {
                    ok = false
                }
            case .control(let identity, let name, let command):
                guard let i = slotIndex(identity) else { continue }
                if control(name: name, command) { slots[i].wantUp = command == .up }
            case .startLog(let identity, let name):
                guard let i = slotIndex(identity), let pipe = pipes[identity] else { continue }
                slots[i].logStartedAt = now
                if let pid = startLog(name: name, pipe: pipe) {
                    slots[i].logPID = pid
                } else {
                    ok = false
                }
            case .dropSlot(let identity):
                if let p = pipes.removeValue(forKey: identity) {
                    FD.close(p.read)
                    FD.close(p.write)
                }
                slots.removeAll { $0.identity == identity }
                if ownLogIdentity == identity { ownLogIdentity = nil }
            }
        }
        return ok
    }

    private func slotIndex(_ identity: ServiceIdentity) -> Int? {
        slots.firstIndex { $0.identity == identity }
    }

    /// `supervise <name>` (through `envdir <name>/.svars` when that is searchable), cwd the
    /// scan directory, stdout the log pipe when the service has a log.
    private func startMain(name: String, pipe: (read: Int32, write: Int32)?) -> pid_t? {
        log.info("Starting service \(name)")
        let svars = Path.join(name, ".svars")
        var argv = ["supervise", name]
        if access(svars, X_OK) == 0 { argv = ["envdir", svars, "supervise", name] }
        var env = childEnvironment
        env["MAIN_SV"] = name
        var options = SpawnOptions()
        if let pipe { options.fileMoves = [(pipe.write, 1)] }
        switch Spawn.start(argv.map { Array($0.utf8) }, environment: env, options: options) {
        case .success(let pid): return pid
        case .failure(let e):
            log.warning("unable to start supervise \(name): \(e.description)")
            return nil
        }
    }

    /// `supervise log <name>` in `<name>` (through `envdir log/.svars` when that is
    /// searchable), stdin the read end of the service's pipe.
    private func startLog(name: String, pipe: (read: Int32, write: Int32)) -> pid_t? {
        log.info("Starting service \(name)/log")
        var argv = ["supervise", "log", name]
        if access(Path.join(name, "log/.svars"), X_OK) == 0 { argv = ["envdir", "log/.svars"] + argv }
        var env = childEnvironment
        env["SV_PWD"] = name
        var options = SpawnOptions()
        options.fileMoves = [(pipe.read, 0)]
        options.workingDirectory = name
        switch Spawn.start(argv.map { Array($0.utf8) }, environment: env, options: options) {
        case .success(let pid): return pid
        case .failure(let e):
            log.warning("unable to start supervise \(name)/log: \(e.description)")
            return nil
        }
    }

    /// Writes one command letter to the service's control FIFO: under the run-state
    /// directory first (our supervise), then in the service directory (djb's supervise).
    private func control(name: String, _ command: ControlCommand) -> Bool {
        log.info(command == .down ? "Stopping service \(name) which was up"
                                  : "Starting service \(name) which was down")
        var candidates: [String] = []
        if let runDirectory { candidates.append(Path.join(runDirectory, "\(name)/supervise/control")) }
        candidates.append(Path.join(scanDirectory, "\(name)/supervise/control"))
        var lastError: Int32 = ENOENT
        for path in candidates {
            switch FIFO.openWrite(path) {
            case .failure(let e):
                lastError = e.errno
                continue
            case .success(let fd):
                defer { FD.close(fd) }
                FD.setNonBlocking(fd, false)
                if case .failure(let e) = FD.writeAll(fd, [command.rawValue]) {
                    log.warning("error writing commands to \(path): \(e.reason)")
                    return false
                }
                return true
            }
        }
        if lastError == ENXIO {
            log.warning("unable to control \(name): supervise not running")
        } else {
            log.warning("unable to control \(name): \(SystemError.describe(lastError))")
        }
        return false
    }

    /// A service renamed `.<name>` (disabled) takes its run state along: R/<name> → R/.<name>.
    private func hideRunState(_ name: String) -> Bool {
        guard let runDirectory else { return true }
        let hidden = Path.join(runDirectory, "." + name), plain = Path.join(runDirectory, name)
        if Path.status(hidden, followLinks: false) != nil { return true }
        guard Path.status(plain, followLinks: false) != nil else { return true }
        if rename(plain, hidden) != 0 {
            log.warning("unable to rename \(plain) to \(hidden): \(SystemError.describe(errno))")
            return false
        }
        return true
    }

    private func announceReady() {
        guard let notifier else { return }
        let services = slots.filter { !$0.ownLogger }.count
        let message = SystemdNotify.ready(status: "supervising \(services) service\(services == 1 ? "" : "s") in \(scanDirectory)",
                                          mainPID: myPID)
        if case .failure(let e) = notifier.send(message) { log.warning(e.description) }
    }

    // MARK: - Shutdown

    /// The stages of an orderly shutdown, each with the time it gives up waiting.
    struct ShutdownState {
        enum Stage {
            /// `.svscan/shutdown` runs (pid), waited until the time given.
            case script(pid_t, until: Double)
            /// TERM sent to the main supervise processes; the loggers' turn comes when those and
            /// their services are gone, or at `loggersAt`.
            case mains(loggersAt: Double, killAt: Double)
            /// svscan's write ends of the log pipes closed; waiting for the loggers to read
            /// what is left in them.
            case draining(until: Double, killAt: Double)
            /// Logger supervise processes (and anything else left) sent TERM.
            case loggers(killAt: Double)
            /// KILL sent; repeated for processes orphaned by the killed ones.
            case killing(until: Double)
            /// svscan's own logger told to finish.
            case ownLogger(until: Double)
            case ownLoggerKilling(until: Double)
        }
        var stage: Stage
        /// Processes already sent TERM.
        var termed: Set<pid_t> = []
        /// A main supervise died of the TERM instead of handling it (daemontools'): its
        /// service was not told, so svscan passes TERM on to the services it finds orphaned.
        var relayToOrphans = false

        /// When the loop must look again even without a signal: deadlines, and short polls
        /// where a change (an orphan handed over, a pipe drained) brings no signal.
        var wakeAt: Double {
            let soon = MonotonicClock.now() + 0.05
            switch stage {
            case .script(_, let until): return until
            case .mains(let loggersAt, _): return min(loggersAt, soon)
            case .draining(let until, _): return min(until, soon)
            case .loggers(let killAt): return min(killAt, soon)
            case .killing, .ownLoggerKilling: return soon
            case .ownLogger(let until): return min(until, soon)
            }
        }
    }

    private func beginShutdown() {
        let now = MonotonicClock.now()
        unlink(pidFile)
        log.notice("pid: \(myPID): shutdown in progress...")
        if let notifier {
            _ = notifier.send(SystemdNotify.stopping(status: "stopping services in \(scanDirectory)"))
        }
        let script = Path.join(ScanEntry.ownDirectory, "shutdown")
        if access(script, X_OK) == 0 {
            switch Spawn.start(["/bin/sh", "-c", script].map { Array($0.utf8) }, environment: childEnvironment) {
            case .success(let pid):
                helpers[pid] = script
                shutdown = ShutdownState(stage: .script(pid, until: now + configuration.timings.kill))
                return
            case .failure(let e):
                log.warning("unable to run \(script): \(e.reason)")
            }
        }
        shutdown = ShutdownState(stage: terminateMains(now: now))
    }

    private func terminateMains(now: Double) -> ShutdownState.Stage {
        log.info("pid: \(myPID): terminating svc sessions with TERM...")
        for slot in slots {
            if let pid = slot.mainPID { terminate(pid) }
        }
        return .mains(loggersAt: now + configuration.timings.loggers, killAt: now + configuration.timings.kill)
    }

    /// Processes of the services: children that are neither a logger's supervise nor svscan's
    /// own logger. Orphans handed over by a supervise that died count among them.
    private func serviceProcesses() -> [pid_t] {
        let loggers = Set(slots.compactMap { $0.logPID })
        return otherChildren().filter { !loggers.contains($0) }
    }

    /// Closes svscan's write ends of the log pipes (its own logger's aside): once the services
    /// are gone, the loggers read what is left and then see end of file.
    private func closeLogPipes(now: Double, killAt: Double) -> ShutdownState.Stage {
        for (identity, pipe) in pipes where identity != ownLogIdentity && pipe.write >= 0 {
            FD.close(pipe.write)
            pipes[identity] = (pipe.read, -1)
        }
        return .draining(until: min(killAt, now + max(configuration.timings.loggers, 0.5)), killAt: killAt)
    }

    /// True when no log pipe (svscan's own aside) holds unread bytes.
    private var logPipesDrained: Bool {
        pipes.allSatisfy { identity, pipe in
            var pending: Int32 = 0
            return identity == ownLogIdentity || cs_fionread(pipe.read, &pending) != 0 || pending == 0
        }
    }

    private func terminateLoggers(killAt: Double) -> ShutdownState.Stage {
        log.info("pid: \(myPID): terminating log sessions with TERM...")
        for pid in otherChildren() { terminate(pid) }
        return .loggers(killAt: killAt)
    }

    /// TERM, once per process.
    private func terminate(_ pid: pid_t) {
        guard shutdown?.termed.contains(pid) != true else { return }
        send(SIGTERM, to: pid)
        shutdown?.termed.insert(pid)
    }

    private var ownLogPID: pid_t? {
        slots.first { $0.identity == ownLogIdentity }?.logPID
    }

    /// Children other than svscan's own logger: from /proc when it is ours (orphans adopted
    /// as subreaper included), else the ones svscan started.
    private func otherChildren() -> [pid_t] {
        let own = ownLogPID
        if procUsable, let children = ProcFS.children(of: myPID) {
            return children.filter { $0 != own }
        }
        var tracked = slots.flatMap { [$0.mainPID, $0.logPID] }.compactMap { $0 }
        tracked += helpers.keys
        return tracked.filter { $0 != own }
    }

    private func killRemaining(includingOwnLogger: Bool) {
        if isInit && (includingOwnLogger || ownLogPID == nil) {
            _ = kill(-1, SIGKILL)
            return
        }
        for pid in otherChildren() { send(SIGKILL, to: pid) }
        if includingOwnLogger, let own = ownLogPID { send(SIGKILL, to: own) }
    }

    private func send(_ signal: Int32, to pid: pid_t) {
        if kill(pid, signal) != 0 && errno != ESRCH {
            log.warning("pid \(myPID) kill -\(Signals.name(signal)) \(pid): \(SystemError.describe(errno))")
        }
    }

    private func finishOwnLogger(now: Double) -> ShutdownState.Stage {
        log.notice("pid: \(myPID): exiting...")
        if let identity = ownLogIdentity, let pipe = pipes[identity] {
            // Nothing of ours may hold the pipe's write end, or the logger never sees its end.
            let null = Glibc.open("/dev/null", O_WRONLY | O_CLOEXEC)
            if null >= 0 {
                dup2(null, 1)
                dup2(null, 2)
                FD.close(null)
            }
            if pipe.write >= 0 { FD.close(pipe.write) }
            pipes[identity] = (pipe.read, -1)
            log.silent = true
        }
        if let own = ownLogPID { send(SIGTERM, to: own) }
        return .ownLogger(until: now + max(configuration.timings.loggers, 1))
    }

    /// Moves the shutdown on as far as it can go now; the exit code once it is complete.
    private func advanceShutdown() -> Int32? {
        while let state = shutdown {
            let gone = reap().none
            let now = MonotonicClock.now()
            let next: ShutdownState.Stage
            switch state.stage {
            case .script(let pid, let until):
                guard helpers[pid] == nil || now >= until else { return nil }
                next = terminateMains(now: now)
            case .mains(let loggersAt, let killAt):
                // Services outlive their supervise for a moment (it signals them and exits),
                // and as orphans they come back to svscan: the loggers wait for them too.
                let mains = Set(slots.compactMap { $0.mainPID })
                let orphans = serviceProcesses().filter { !mains.contains($0) }
                if state.relayToOrphans { for pid in orphans { terminate(pid) } }
                guard (mains.isEmpty && orphans.isEmpty) || now >= loggersAt else { return nil }
                next = closeLogPipes(now: now, killAt: killAt)
            case .draining(let until, let killAt):
                guard logPipesDrained || now >= until else { return nil }
                next = terminateLoggers(killAt: killAt)
            case .loggers(let killAt):
                let left = otherChildren()
                if gone || left.isEmpty {
                    next = finishOwnLogger(now: now)
                } else if now >= killAt {
                    log.warning("pid: \(myPID): terminating session with KILL...")
                    killRemaining(includingOwnLogger: false)
                    next = .killing(until: now + 2)
                } else {
                    for pid in left { terminate(pid) }
                    return nil
                }
            case .killing(let until):
                if gone || otherChildren().isEmpty || now >= until {
                    next = finishOwnLogger(now: now)
                } else {
                    killRemaining(includingOwnLogger: false)
                    return nil
                }
            case .ownLogger(let until):
                if gone { return ExitCode.success }
                guard now >= until else { return nil }
                killRemaining(includingOwnLogger: true)
                next = .ownLoggerKilling(until: now + 2)
            case .ownLoggerKilling(let until):
                if gone || now >= until { return ExitCode.success }
                killRemaining(includingOwnLogger: true)
                return nil
            }
            shutdown?.stage = next
        }
        return nil
    }
}
