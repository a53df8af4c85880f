// svscan: start and watch a supervise process for every service directory of a scan directory.
import CSupport
import Core
import Glibc

public struct SvscanCommand: Command {
    public static let name = "svscan"
    public static let installDirectory = InstallDirectory.sbin
    public static let summary = "start and monitor a collection of services"

    public static func run(_ context: CommandContext) -> Int32 {
        let diag = context.diagnostics
        let configuration: SvscanConfiguration
        switch SvscanConfiguration.parse(context.strings, environment: context.environment) {
        case .success(let c): configuration = c
        case .failure(let e):
            diag.warning(e.description)
            return diag.usage(SvscanConfiguration.usage)
        }
        let log = SvscanLog(verbose: configuration.verbose, silent: configuration.silent)

        // Descriptors 0-2 must exist before any pipe is made, or a pipe end would become one.
        for fd: Int32 in 0...2 {
            var st = stat()
            if fstat(fd, &st) != 0 && errno == EBADF {
                _ = Glibc.open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY)
            }
        }
        Signals.ignore(SIGPIPE)
        // Found by name in `ps` and by the pid-file check of another svscan (ours or the
        // reference's), even when started as `indimail svscan`.
        _ = cs_set_name("svscan")

        // Signals become events before anything can send one.
        let signals: SignalFD
        do {
            signals = try SignalFD(SignalSet(Svscan.signalsHandled))
        } catch {
            return diag.fatal(error)
        }

        let myPID = getpid()
        let runDirectory = configuration.runDirectory(exists: Path.exists)
        if let runDirectory, !Path.isDirectory(runDirectory) {
            if case .failure(let e) = Path.makeDirectories(runDirectory, mode: 0o755) {
                return diag.fatal(ExitCode.temporary, "unable to mkdir \(runDirectory): \(e.reason)")
            }
        }
        if let dir = configuration.scanDirectory, chdir(dir) != 0 {
            return diag.fatal(ExitCode.temporary, "unable to chdir to \(dir): \(SystemError.describe(errno))")
        }
        guard let scanDirectory = Path.currentDirectory() else {
            return diag.fatal(ExitCode.temporary, "unable to get current working directory: \(SystemError.describe(errno))")
        }
        let pidFile = Path.join(runDirectory ?? scanDirectory, SvscanPidFile.name)
        if let failure = acquire(pidFile, myPID: myPID) {
            return diag.fatal(ExitCode.temporary, failure)
        }

        var env = context.environment
        env["PPID"] = String(myPID)
        env["SCANDIR"] = scanDirectory
        env["PWD"] = scanDirectory
        if configuration.exportVerbose { env["VERBOSE"] = "1" }
        if configuration.exportSilent { env["SILENT"] = "1" }
        // Readiness is svscan's to report; services get their own socket from supervise.
        let notifier = SystemdNotify(environment: env)
        env.unset(SystemdNotify.variable)

        if configuration.newSession && setsid() < 0 {
            unlink(pidFile)
            return diag.fatal(ExitCode.temporary, "unable to become session leader: \(SystemError.describe(errno))")
        }
        // Orphans of the supervised tree come back to svscan: it reaps them while it runs and
        // kills them at shutdown, so stopping svscan leaves nothing behind (PID 1 is so anyway).
        if myPID != 1 { _ = cs_set_child_subreaper(1) }

        let svscan = Svscan(configuration: configuration, log: log, myPID: myPID, scanDirectory: scanDirectory,
                            runDirectory: runDirectory, pidFile: pidFile, childEnvironment: env,
                            notifier: notifier, signals: signals)
        if configuration.scanLog { svscan.startOwnLogger() }
        svscan.runInitCommand()
        return svscan.run()
    }

    /// Takes `.svscan.pid` (the reference's single-instance rule); nil on success, else the
    /// fatal message.
    static func acquire(_ pidFile: String, myPID: pid_t) -> String? {
        // A container's init restarts with the same pid 1 and finds its own old file.
        if myPID == 1 && unlink(pidFile) != 0 && errno != ENOENT {
            return "unable to delete lock: \(SystemError.describe(errno))"
        }
        for _ in 0..<100 {
            switch FD.openExclusive(pidFile, mode: 0o644) {
            case .success(let fd):
                defer { FD.close(fd) }
                if case .failure(let e) = FD.writeAll(fd, SvscanPidFile.encode(myPID)) {
                    unlink(pidFile)
                    return "unable to write pid to lock file: \(e.reason)"
                }
                return nil
            case .failure(let e) where e.errno != EEXIST:
                return "unable to obtain lock for \(pidFile): \(e.reason)"
            case .failure:
                break
            }
            let bytes: [UInt8]
            switch FD.readFile(pidFile) {
            case .success(let b): bytes = b
            case .failure(let e) where e.errno == ENOENT: continue
            case .failure(let e): return "unable to read \(pidFile): \(e.reason)"
            }
            let stored = SvscanPidFile.decode(bytes)
            var alive = false
            if let stored, stored != myPID {
                alive = kill(stored, 0) == 0 || errno == EPERM
                if alive && !Path.isDirectory("/proc/self") {
                    return "chdir: /proc: \(SystemError.describe(ENOENT))"
                }
            }
            let holder = SvscanPidFile.holder(
                stored: stored, ours: myPID, alive: alive,
                comm: stored.flatMap { alive ? ProcFS.commandName($0) : nil },
                commandLine: stored.flatMap { alive ? ProcFS.commandLine($0) : nil })
            switch holder {
            case .ours: return nil
            case .running: return "[svscan] already running"
            case .stale:
                if unlink(pidFile) != 0 && errno != ENOENT {
                    return "unable to delete lock: \(SystemError.describe(errno))"
                }
            }
        }
        return "unable to obtain lock for \(pidFile): too many stale lock files"
    }
}
