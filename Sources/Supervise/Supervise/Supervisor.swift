// supervise's state machine: one service, its ./run child, the control FIFO, helper scripts
// (init, shutdown, alert), dependency waits, readiness, and the status file.
import CSupport
import Core
import Glibc

/// What a finished helper script was for.
enum HelperRole: Equatable {
    case initScript
    case shutdownBeforeStop   // svc -d / -r: the stop signal waits for it
    case shutdownDetached     // supervise's own SIGTERM: not waited for
    case alert                // the restart waits for it
}

struct SupervisorConfig {
    var name: String              // the dir argument, used in messages and run arguments
    var messagePrefix: String     // "<dir>: supervise" or "<svc>/log: supervise"
    var servicePath: String       // absolute real service directory (our cwd)
    var stateSupervise: String    // absolute .../supervise directory for FIFOs and status
    var environment: Environment
    var verbose: Bool
    var silent: Bool
    var shutdownSignal: Int32
    var setProcessGroup: Bool
    var upFIFOName: String
}

final class Supervisor {
    private let config: SupervisorConfig
    private let signals: SignalFD
    private let control: Int32
    private let statusFD: Int32
    private let myPID = getpid()

    // Service state.
    private var child: pid_t?
    private var childGroup: pid_t?
    private var grandchildMode = false
    private var subreaper = false
    private var want: ServiceStatus.Want
    private var paused = false
    private var exitRequested = false
    private var restartRequested = false
    private var groupNextSignal = false
    private var changed = TAI64N.now()
    private var lastStart = -Double.infinity
    private var waitSeconds: Int16 = 0
    private var readiness = ServiceStatus.Readiness.notTracked

    // Pending work.
    private var pendingStart: (how: String, notBefore: Double)?
    private var dependencyCleared = false
    private var helpers: [pid_t: HelperRole] = [:]
    private var initDone = true
    private var nextInitAt: Double?
    private var lastDeath: WaitStatus = .exited(0)

    // FIFOs held open for reading while their condition holds.
    private var upFD: Int32?
    private var downFD: Int32?
    private var readyFD: Int32?
    private var notifyPipe: Int32?
    private var notifySocket: Int32?
    private var notifySocketName: String?
    private var readinessProtocol = ReadinessProtocol.none

    init(config: SupervisorConfig, signals: SignalFD, control: Int32, statusFD: Int32, wantDown: Bool) {
        self.config = config
        self.signals = signals
        self.control = control
        self.statusFD = statusFD
        self.want = wantDown ? .down : .up
    }

    // MARK: messages

    private func info(_ text: String) {
        guard config.verbose else { return }
        FD.writeAll(2, Array("\(config.messagePrefix): info: \(text)\n".utf8))
    }

    private func warn(_ text: String) {
        guard !config.silent else { return }
        FD.writeAll(2, Array("\(config.messagePrefix): warning: \(text)\n".utf8))
    }

    // MARK: status

    private func writeStatus() {
        let status = ServiceStatus(changed: changed, pid: child ?? myPID, paused: paused, want: want,
                                   waitSeconds: waitSeconds, running: child != nil, readiness: readiness)
        let bytes = status.encoded()
        let written = bytes.withUnsafeBytes { pwrite(statusFD, $0.baseAddress, $0.count, 0) }
        if written != bytes.count { warn("unable to write \(config.stateSupervise)/status: \(SystemError.describe(errno))") }
    }

    private func fifoPath(_ name: String) -> String { Path.join(config.stateSupervise, name) }

    private func openReader(_ name: String) -> Int32? {
        switch FD.openRead(fifoPath(name)) {
        case .success(let fd): return fd
        case .failure(let e):
            warn(e.description)
            return nil
        }
    }

    private func closeFD(_ fd: inout Int32?) {
        if let f = fd { FD.close(f) }
        fd = nil
    }

    // MARK: start-up

    /// Runs the service loop until supervise should exit; returns the exit code.
    func run() -> Int32 {
        if let initScript = runnable("init") {
            initDone = false
            startInit(initScript)
        }
        if want == .down { downFD = openReader(SuperviseFiles.down) }
        writeStatus()
        if want == .up { scheduleStart("auto startup") }
        return loop()
    }

    private func runnable(_ script: String) -> String? {
        let path = Path.join(config.servicePath, script)
        return access(path, X_OK) == 0 && Path.isRegularFile(path) ? path : nil
    }

    private func startInit(_ path: String) {
        if let pid = spawnHelper([path], role: .initScript) {
            info("started init, pid \(pid)")
        } else {
            nextInitAt = MonotonicClock.now() + 60
        }
    }

    // MARK: the loop

    private func loop() -> Int32 {
        while true {
            if exitRequested && child == nil {
                writeStatus()
                info("exiting")
                return ExitCode.success
            }
            maybeStart()
            var fds = [pollfd(fd: signals.fd, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: control, events: Int16(POLLIN), revents: 0)]
            if let p = notifyPipe { fds.append(pollfd(fd: p, events: Int16(POLLIN), revents: 0)) }
            if let s = notifySocket { fds.append(pollfd(fd: s, events: Int16(POLLIN), revents: 0)) }
            let ready = poll(&fds, nfds_t(fds.count), timeoutMilliseconds())
            if ready < 0 && errno != EINTR { warn("poll failed: \(SystemError.describe(errno))") }
            for p in fds where p.revents != 0 {
                if p.fd == signals.fd {
                    for signal in signals.drain() {
                        if signal == SIGCHLD { reap() }
                        if signal == SIGTERM { return terminate() }
                    }
                } else if p.fd == control {
                    readControl()
                } else if p.fd == notifyPipe {
                    readNotificationPipe()
                } else if p.fd == notifySocket {
                    readNotifySocket()
                }
            }
            if let at = nextInitAt, MonotonicClock.now() >= at, let script = runnable("init") {
                nextInitAt = nil
                startInit(script)
            }
        }
    }

    private func timeoutMilliseconds() -> Int32 {
        let now = MonotonicClock.now()
        var deadline = now + 3600
        if let start = pendingStart { deadline = min(deadline, start.notBefore) }
        if let at = nextInitAt { deadline = min(deadline, at) }
        return Int32(max(0, min(3_600_000, (deadline - now) * 1000).rounded(.up)))
    }

    // MARK: starting ./run

    private func scheduleStart(_ how: String) {
        let notBefore = max(MonotonicClock.now(), lastStart + 1)  // at most one start per second
        pendingStart = (how, notBefore)
        dependencyCleared = false
        let delay = notBefore - MonotonicClock.now()
        if delay > 0.001 {
            waitSeconds = Int16(delay.rounded(.up))
            writeStatus()
        }
    }

    private func maybeStart() {
        guard let pending = pendingStart, child == nil, initDone,
              !helpers.values.contains(.alert) else { return }
        let now = MonotonicClock.now()
        guard now >= pending.notBefore else { return }
        if !dependencyCleared, let waitFile = try? FD.readFile(Path.join(config.servicePath, "wait")).get(),
           let dependency = DependencyWait.parse(waitFile) {
            switch dependencyState(dependency) {
            case .absent, .up:
                dependencyCleared = true
                if dependency.delay > 0 && dependencyStateWasUp(dependency) {
                    waitSeconds = dependency.delay
                    changed = TAI64N.now()
                    pendingStart = (pending.how, now + Double(dependency.delay))
                    info("\(dependency.service) is up, starting in \(dependency.delay) seconds")
                    writeStatus()
                    return
                }
            case .notUp:
                if waitSeconds != -2 {
                    waitSeconds = -2
                    changed = TAI64N.now()
                    info("waiting for \(dependency.service) to come up")
                    writeStatus()
                }
                pendingStart = (pending.how, now + 1)
                return
            }
        }
        pendingStart = nil
        waitSeconds = 0
        start(pending.how)
    }

    private enum DependencyState { case absent, notUp, up }

    private func dependencyStateWasUp(_ dependency: DependencyWait) -> Bool {
        Path.isDirectory(dependency.serviceDirectory(relativeTo: config.servicePath))
    }

    /// Up = a supervise runs it (its up FIFO has a reader) and its status says running,
    /// not paused, not wanted down.
    private func dependencyState(_ dependency: DependencyWait) -> DependencyState {
        let dir = dependency.serviceDirectory(relativeTo: config.servicePath)
        guard Path.isDirectory(dir) else { return .absent }
        let locator = ServiceLocator(environment: config.environment)
        guard case .success(let (fd, state)) = locator.openForWriting(config.upFIFOName, of: dir) else { return .notUp }
        FD.close(fd)
        guard case .success(let status) = ServiceStatus.read(Path.join(state, "supervise/status")) else {
            return .notUp
        }
        return status.running && !status.paused && status.want != .down ? .up : .notUp
    }

    private func start(_ how: String) {
        var environment = config.environment
        environment.set("PPID", Array(String(myPID).utf8))
        let variables = Path.join(config.servicePath, "variables")
        if let st = Path.status(variables, followLinks: false), (st.st_mode & S_IFMT) == S_IFDIR {
            // World-executable variables/ adds to the environment; otherwise it replaces it.
            let base = (st.st_mode & S_IXOTH) != 0 ? environment : Environment([("PPID", String(myPID))])
            switch EnvDirLoader.load(variables, into: base) {
            case .success(let loaded): environment = loaded
            case .failure(let e):
                warn("unable to load variables: \(e)")
                lastStart = MonotonicClock.now()
                died(.exited(ExitCode.temporary))
                return
            }
        }
        if !subreaper { checkSubreaper() }

        switch ReadinessProtocol.configured(in: config.servicePath) {
        case .success(let p): readinessProtocol = p
        case .failure(let why):
            warn(why.description)
            readinessProtocol = .none
        }
        var options = SpawnOptions()
        var pipeWrite: Int32?
        if let target = readinessProtocol.descriptor, case .success(let p) = FD.pipe() {
            notifyPipe = p.read
            FD.setNonBlocking(p.read)
            pipeWrite = p.write
            options.fileMoves = [(p.write, target)]
        }
        if readinessProtocol.usesSocket, let name = ensureNotifySocket() {
            environment.set("NOTIFY_SOCKET", Array(name.utf8))
        }
        if config.setProcessGroup || subreaper { options.processGroup = 0 }

        let result = Spawn.start([Array("./run".utf8), Array(config.name.utf8), Array(how.utf8)],
                                 environment: environment, options: options)
        if let w = pipeWrite { FD.close(w) }
        lastStart = MonotonicClock.now()
        switch result {
        case .failure(let e):
            warn("unable to start ./run: \(e.reason)")
            closeFD(&notifyPipe)
            died(.exited(ExitCode.temporary))
        case .success(let pid):
            child = pid
            childGroup = options.processGroup == nil ? nil : pid
            grandchildMode = false
            paused = false
            changed = TAI64N.now()
            info("started ./run (\(how)) pid \(pid)\(childGroup == nil ? "" : " pgid \(pid)")\(subreaper ? " subreaper" : "")")
            upFD = openReader(SuperviseFiles.up)
            closeFD(&downFD)
            if readinessProtocol.isTracked {
                readiness = .pending
            } else {
                readiness = .notTracked
                readyFD = openReader(SuperviseFiles.ready)
            }
            writeStatus()
        }
    }

    private func checkSubreaper() {
        guard let st = Path.status(Path.join(config.servicePath, "run")), (st.st_mode & S_ISVTX) != 0 else { return }
        if cs_set_child_subreaper(1) == 0 {
            subreaper = true
            info("sticky bit on run: subreaper mode")
        } else {
            warn("unable to become a subreaper: \(SystemError.describe(errno))")
        }
    }

    // MARK: readiness

    private func ensureNotifySocket() -> String? {
        if let name = notifySocketName { return name }
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        let random = UInt64(ts.tv_nsec) ^ (UInt64(ts.tv_sec) << 20)
        let name = "@indimail-supervise/\(myPID)/\(String(random, radix: 16))"
        let fd = cs_abstract_dgram_socket(name)
        guard fd >= 0 else {
            warn("unable to create notify socket: \(SystemError.describe(errno))")
            return nil
        }
        notifySocket = fd
        notifySocketName = name
        return name
    }

    private func becameReady() {
        guard child != nil, readiness == .pending else { return }
        readiness = .ready(TAI64N.now())
        readyFD = openReader(SuperviseFiles.ready)
        info("service is ready")
        writeStatus()
    }

    private func readNotificationPipe() {
        guard let fd = notifyPipe else { return }
        var buffer = [UInt8](repeating: 0, count: 512)
        let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        if n > 0 {
            if buffer[0..<n].contains(10) {
                becameReady()
                closeFD(&notifyPipe)
            }
        } else if n == 0 || (errno != EAGAIN && errno != EINTR) {
            closeFD(&notifyPipe)  // the service closed it without saying it is ready
        }
    }

    private func readNotifySocket() {
        guard let fd = notifySocket else { return }
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            var sender: Int32 = 0
            let n = buffer.withUnsafeMutableBytes { cs_recv_with_pid(fd, $0.baseAddress, UInt($0.count), &sender) }
            guard n >= 0 else { return }
            // Only the service's own processes may declare it ready.
            guard let service = child, sender > 0, ProcFS.isDescendant(sender, of: service)
                    || (childGroup != nil && getpgid(sender) == childGroup) else { continue }
            if NotifyMessage.saysReady(buffer[0..<n]) { becameReady() }
        }
    }

    // MARK: children

    private func spawnHelper(_ arguments: [String], role: HelperRole) -> pid_t? {
        var environment = config.environment
        environment.set("PPID", Array(String(myPID).utf8))
        switch Spawn.start(arguments.map { Array($0.utf8) }, environment: environment) {
        case .success(let pid):
            helpers[pid] = role
            return pid
        case .failure(let e):
            warn("unable to run \(arguments[0]): \(e.reason)")
            return nil
        }
    }

    private func reap() {
        while let (pid, status) = Wait.any() {
            if let role = helpers.removeValue(forKey: pid) {
                helperFinished(role, status)
            } else if pid == child || grandchildMode {
                if pid == child { lastDeath = status }
                if subreaper, descendantsRemain() {
                    if !grandchildMode { info("pid \(pid) did a double fork; following its process group") }
                    grandchildMode = true
                    continue
                }
                died(grandchildMode ? lastDeath : status)
            }
        }
    }

    private func descendantsRemain() -> Bool {
        guard let children = ProcFS.children(of: myPID) else { return false }
        return children.contains { helpers[$0] == nil }
    }

    private func helperFinished(_ role: HelperRole, _ status: WaitStatus) {
        switch role {
        case .initScript:
            if status == .exited(0) {
                initDone = true
                info("init done")
            } else {
                warn("init \(status); trying again in 60 seconds")
                nextInitAt = MonotonicClock.now() + 60
            }
        case .shutdownBeforeStop:
            sendStopSignals()
        case .shutdownDetached, .alert:
            break
        }
    }

    /// The service process is gone (or, after a double fork, its whole tree).
    private func died(_ status: WaitStatus) {
        let deadPID = child ?? 0
        child = nil
        childGroup = nil
        grandchildMode = false
        paused = false
        readiness = .notTracked
        changed = TAI64N.now()
        closeFD(&upFD)
        closeFD(&readyFD)
        closeFD(&notifyPipe)
        info("./run pid \(deadPID) \(status)")
        defer { writeStatus() }
        if exitRequested { return }
        switch want {
        case .up where restartRequested:
            restartRequested = false
            scheduleStart("manual restart")
        case .up:
            if let alert = runnable("alert") {
                let (code, kind): (Int32, String)
                switch status {
                case .exited(let c): (code, kind) = (c, "exited")
                case .signaled(let s, _): (code, kind) = (s, "stopped/signalled")
                case .stopped: (code, kind) = (0, "unknown")
                }
                _ = spawnHelper([alert, config.name, String(deadPID), String(code), kind], role: .alert)
            }
            scheduleStart("abnormal startup")
        case .down, .once:
            if downFD == nil { downFD = openReader(SuperviseFiles.down) }
        }
    }

    // MARK: control

    private func readControl() {
        var buffer = [UInt8](repeating: 0, count: 64)
        let n = buffer.withUnsafeMutableBytes { Glibc.read(control, $0.baseAddress, $0.count) }
        guard n > 0 else { return }
        for byte in buffer[0..<n] {
            guard let command = ControlCommand(rawValue: byte) else { continue }
            apply(command)
        }
    }

    private func apply(_ command: ControlCommand) {
        switch command {
        case .up:
            want = .up
            restartRequested = false
            if child == nil && pendingStart == nil { scheduleStart("manual startup") }
        case .down:
            want = .down
            restartRequested = false
            cancelPendingStart()
            if child != nil { beginStop() } else if downFD == nil { downFD = openReader(SuperviseFiles.down) }
        case .restart:
            want = .up
            if child != nil {
                restartRequested = true
                beginStop()
            } else if pendingStart == nil {
                scheduleStart("manual restart")
            }
        case .once:
            want = .once
            if child == nil && pendingStart == nil { scheduleStart("one-time startup") }
        case .exit:
            exitRequested = true
            cancelPendingStart()
        case .pause:
            paused = child != nil
            send(SIGSTOP)
        case .resume:
            paused = false
            send(SIGCONT)
        case .group:
            groupNextSignal = true
            return
        default:
            if let signal = command.signal { send(signal) }
        }
        groupNextSignal = false
        writeStatus()
    }

    private func cancelPendingStart() {
        pendingStart = nil
        if waitSeconds != 0 {
            waitSeconds = 0
            changed = TAI64N.now()
        }
    }

    /// svc -d / -r: the shutdown script first (waited for), then the stop signal.
    private func beginStop() {
        guard let pid = child else { return }
        if helpers.values.contains(.shutdownBeforeStop) { return }  // a stop is already under way
        if let script = runnable("shutdown"),
           spawnHelper([script, config.name, String(pid)], role: .shutdownBeforeStop) != nil {
            info("running shutdown for pid \(pid)")
            return
        }
        sendStopSignals()
    }

    private func sendStopSignals() {
        guard child != nil else { return }
        send(config.shutdownSignal)
        send(SIGCONT)
        paused = false
        if want == .down && downFD == nil { downFD = openReader(SuperviseFiles.down) }
        writeStatus()
    }

    private func send(_ signal: Int32) {
        guard let pid = child else { return }
        let toGroup = groupNextSignal || grandchildMode
        let target = childGroup ?? pid
        info("sending \(Signals.name(signal)) to \(toGroup ? "process group " : "pid ")\(toGroup ? target : pid)")
        if toGroup {
            if killpg(target, signal) != 0 && errno == ESRCH { kill(pid, signal) }
        } else {
            kill(pid, signal)
        }
    }

    /// SIGTERM to supervise: stop the service without waiting for it, then exit.
    private func terminate() -> Int32 {
        info("got TERM")
        guard let pid = child else { return ExitCode.success }
        if let script = runnable("shutdown") {
            _ = spawnHelper([script, config.name, String(pid)], role: .shutdownDetached)
        }
        want = .down
        exitRequested = true
        paused = false
        let group = childGroup ?? pid
        if killpg(group, config.shutdownSignal) != 0 { kill(pid, config.shutdownSignal) }
        if killpg(group, SIGCONT) != 0 { kill(pid, SIGCONT) }
        writeStatus()
        return ExitCode.success
    }
}
