// supervise: start ./run and keep it running; obey svc through supervise/control.
import Core
import Glibc

public struct SuperviseCommand: Command {
    public static let name = "supervise"
    public static let installDirectory = InstallDirectory.sbin
    public static let summary = "start a service and keep it running"

    public static func run(_ context: CommandContext) -> Int32 {
        let operands = context.strings
        guard (1...2).contains(operands.count) else {
            return context.diagnostics.usage("supervise dir [parent_ident]")
        }
        let dir = operands[0]
        let parentIdent = operands.count == 2 ? operands[1] : nil
        let env = context.environment
        let prefix = (parentIdent.map { "\($0)/" } ?? "") + "\(dir): supervise"
        func fatal(_ code: Int32, _ message: String) -> Int32 {
            FD.writeAll(2, Array("\(prefix): fatal: \(message)\n".utf8))
            return code
        }
        // Service names are relative and not hidden, as the reference requires.
        guard !dir.isEmpty, !dir.hasPrefix("/"), !dir.hasPrefix(".") else {
            return fatal(ExitCode.permanent, "service name must be relative and not start with a dot: \(dir)")
        }
        guard chdir(dir) == 0 else { return fatal(ExitCode.temporary, SystemError("unable to chdir to", dir).description) }
        guard let servicePath = Path.currentDirectory() else {
            return fatal(ExitCode.temporary, SystemError("unable to get current directory").description)
        }
        guard Path.status("run") != nil else { return fatal(ExitCode.temporary, SystemError("unable to stat", "run").description) }
        let wantDown = Path.exists("down")

        // State under the run-state dir when one exists, else in the service dir.
        let locator = ServiceLocator(environment: env)
        let parentName = env.nonEmpty("SV_PWD") ?? parentIdent ?? Path.basename(Path.dirname(servicePath))
        var stateRoot = servicePath
        if let runState = locator.runStateDirectory(service: dir, parent: dir == "log" ? parentName : nil) {
            switch prepareRunState(runState, servicePath: servicePath, isLogger: dir == "log") {
            case .success: stateRoot = runState
            case .failure(let e): return fatal(ExitCode.temporary, e.description)
            }
        }
        let supervise = Path.join(stateRoot, SuperviseFiles.directory)
        if mkdir(supervise, 0o700) != 0 && errno != EEXIST {
            return fatal(ExitCode.temporary, SystemError("unable to create", supervise).description)
        }

        // One supervise per service: the lock is held for life (fds are close-on-exec).
        let lockPath = Path.join(supervise, SuperviseFiles.lock)
        guard case .success(let lockFD) = FD.openAppend(lockPath) else {
            return fatal(ExitCode.temporary, SystemError("unable to open", lockPath).description)
        }
        if case .failure = FileLock.exclusive(lockFD, wait: false) {
            return fatal(ExitCode.permanent, "unable to acquire \(lockPath): another supervise is running")
        }

        let signalSet: SignalFD
        do { signalSet = try SignalFD(SignalSet([SIGCHLD, SIGTERM])) } catch {
            return fatal(ExitCode.temporary, error.description)
        }
        Signals.ignore(SIGPIPE)

        for fifo in [SuperviseFiles.control, SuperviseFiles.ok, SuperviseFiles.up, SuperviseFiles.down,
                     SuperviseFiles.ready] {
            if case .failure(let e) = FIFO.make(Path.join(supervise, fifo)) {
                return fatal(ExitCode.temporary, e.description)
            }
        }
        let controlPath = Path.join(supervise, SuperviseFiles.control)
        guard case .success(let control) = FIFO.openRead(controlPath),
              case .success = FIFO.openWrite(controlPath) else {  // our own writer: never EOF
            return fatal(ExitCode.temporary, SystemError("unable to open", controlPath).description)
        }
        let statusPath = Path.join(supervise, SuperviseFiles.status)
        guard case .success(let statusFD) = FD.open(statusPath, O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644) else {
            return fatal(ExitCode.temporary, SystemError("unable to open", statusPath).description)
        }
        // ok last: once it has a reader, clients consider supervise up and may write commands.
        guard case .success = FIFO.openRead(Path.join(supervise, SuperviseFiles.ok)) else {
            return fatal(ExitCode.temporary, SystemError("unable to open", Path.join(supervise, "ok")).description)
        }

        var shutdownSignal = SIGTERM
        if let text = env.nonEmpty("SHUTDOWN_SIGNAL") {
            guard let n = Int32(text), (1...64).contains(n) else {
                return fatal(ExitCode.permanent, "SHUTDOWN_SIGNAL must be a signal number: \(text)")
            }
            shutdownSignal = n
        }
        let config = SupervisorConfig(
            name: dir, messagePrefix: prefix, servicePath: servicePath, stateSupervise: supervise,
            environment: env, verbose: env.contains("VERBOSE"), silent: env.contains("SILENT"),
            shutdownSignal: shutdownSignal, setProcessGroup: env.contains("SETPGID"),
            upFIFOName: env.nonEmpty("UPFIFO") ?? SuperviseFiles.up)
        return Supervisor(config: config, signals: signalSet, control: control, statusFD: statusFD,
                          wantDown: wantDown).run()
    }

    /// Creates R/<svc> (or R/<svc>/log) like the real directory (mode, owner), and removes
    /// stale state in the real directory so clients are not misled by it.
    static func prepareRunState(_ runState: String, servicePath: String, isLogger: Bool) -> Result<Void, SystemError> {
        if isLogger {
            let parent = Path.dirname(runState)
            if mkdir(parent, 0o755) != 0 && errno != EEXIST { return .failure(SystemError("unable to create", parent)) }
        }
        if let st = Path.status(servicePath) {
            if mkdir(runState, st.st_mode & 0o7777) != 0 && errno != EEXIST {
                return .failure(SystemError("unable to create", runState))
            }
            _ = chown(runState, st.st_uid, st.st_gid)
        }
        let stale = Path.join(servicePath, SuperviseFiles.directory)
        if access(stale, W_OK) == 0 {
            for name in [SuperviseFiles.control, SuperviseFiles.lock, SuperviseFiles.ok, SuperviseFiles.status,
                         SuperviseFiles.up, SuperviseFiles.down, SuperviseFiles.ready] {
                unlink(Path.join(stale, name))
            }
            rmdir(stale)
        }
        return .success(())
    }
}
