// svscanboot: start svscan on the service directory (or several) at boot, with the
// environment of `.svscan/variables`, its output to readproctitle or to its own logger.
import Core
import Glibc

/// What svscanboot runs, decided without side effects.
public struct SvscanbootPlan: Equatable, Sendable {
    public var scanDirectory: String
    /// `[unshare --mount] [envdir V] <prefix>/sbin/svscan S`.
    public var command: [String]
    /// svscan's output goes to readproctitle (no SCANLOG file in the variables directory).
    public var useReadproctitle: Bool

    /// The PATH svscan and everything under it get: this suite's directories first, so that
    /// another daemontools on the system never stands in for ours.
    public static func searchPath(prefix: String) -> String {
        ["\(prefix)/bin", "\(prefix)/sbin", "/bin", "/usr/bin", "/usr/local/bin", "/sbin", "/usr/sbin"]
            .joined(separator: ":")
    }

    /// Service directories from the operands, else the first line of servicedir.conf, else
    /// the default (SERVICEDIR, /service).
    public static func scanDirectories(operands: [String], configured: [UInt8]?, fallback: String) -> [String] {
        if !operands.isEmpty { return operands }
        if let configured,
           let line = configured.split(separator: 10).first.map({ String(decoding: $0, as: UTF8.self) }) {
            let trimmed = String(line.drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" || $0 == "\r" }.reversed())
            if !trimmed.isEmpty { return [trimmed] }
        }
        return [fallback]
    }

    /// `variablesIsDirectory`: S/.svscan/variables is a directory; `scanLogFile`: it holds a
    /// SCANLOG file; `unshare`: its UNSHARE file is non-empty and unshare exists.
    public init(scanDirectory: String, prefix: String, variablesIsDirectory: Bool, scanLogFile: Bool,
                unshare: String?) {
        self.scanDirectory = scanDirectory
        var command: [String] = []
        if let unshare { command += [unshare, "--mount"] }
        if variablesIsDirectory { command += ["envdir", SvscanbootPlan.variables(scanDirectory)] }
        command += [Path.join(prefix, "sbin/svscan"), scanDirectory]
        self.command = command
        useReadproctitle = !scanLogFile
    }

    public static func variables(_ scanDirectory: String) -> String {
        Path.join(scanDirectory, ".svscan/variables")
    }

    /// readproctitle's arguments: the errors land in the dots, visible in `ps`.
    public static func readproctitle(_ path: String, scanDirectory: String) -> [String] {
        [path, scanDirectory, "errors:", String(repeating: ".", count: 400)]
    }

    /// The supervised directories whose leftover supervise processes are told `dx` first:
    /// S/*, S/*/log (names not starting with a dot) and S/.svscan/log.
    public static func leftovers(scanDirectory: String, names: [String]) -> [String] {
        var list: [String] = []
        for name in names.sorted() where !name.hasPrefix(".") {
            list.append(Path.join(scanDirectory, name))
        }
        for name in names.sorted() where !name.hasPrefix(".") {
            list.append(Path.join(scanDirectory, name + "/log"))
        }
        list.append(Path.join(scanDirectory, ".svscan/log"))
        return list
    }
}

public struct SvscanbootCommand: Command {
    public static let name = "svscanboot"
    public static let installDirectory = InstallDirectory.libexec
    public static let summary = "start svscan on the service directories at boot"

    public static func run(_ context: CommandContext) -> Int32 {
        let diag = context.diagnostics
        let paths = SuitePaths(environment: context.environment)
        if context.strings.first?.hasPrefix("-") == true && context.strings.first != "--" {
            return diag.usage("svscanboot [scandir ...]")
        }
        let operands = context.strings.first == "--" ? Array(context.strings.dropFirst()) : context.strings
        var env = context.environment
        env["PATH"] = SvscanbootPlan.searchPath(prefix: paths.prefix)

        let conf = try? FD.readFile(Path.join(paths.controlDirectory, "servicedir.conf")).get()
        let directories = SvscanbootPlan.scanDirectories(operands: operands, configured: conf,
                                                         fallback: paths.serviceDirectory)
        _ = chdir("/")
        let readproctitle = Path.join(paths.prefix, "sbin/readproctitle")
        let haveReadproctitle = access(readproctitle, X_OK) == 0
        let unshare = "/usr/bin/unshare"

        var plans: [SvscanbootPlan] = []
        for dir in directories {
            // With several directories, missing ones are skipped as the reference does.
            if directories.count > 1 && !Path.isDirectory(dir) { continue }
            let variables = SvscanbootPlan.variables(dir)
            let unshareFile = Path.status(Path.join(variables, "UNSHARE"))
            let wantsUnshare = unshareFile.map { $0.st_size > 0 } ?? false
            plans.append(SvscanbootPlan(
                scanDirectory: dir, prefix: paths.prefix, variablesIsDirectory: Path.isDirectory(variables),
                scanLogFile: Path.exists(Path.join(variables, "SCANLOG")),
                unshare: wantsUnshare && access(unshare, X_OK) == 0 ? unshare : nil))
            stopLeftovers(dir, environment: env)
        }
        guard !plans.isEmpty else { return diag.fatal(ExitCode.permanent, "no service directory to scan") }
        if plans.contains(where: { $0.useReadproctitle }) && !haveReadproctitle {
            diag.warning("\(readproctitle) not found: svscan writes to standard error")
        }

        // The reference points everything at /dev/null; svscan's errors go to readproctitle,
        // or (without it) stay on svscanboot's standard error.
        let null = Glibc.open("/dev/null", O_RDWR | O_CLOEXEC)
        if null >= 0 {
            dup2(null, 0)
            dup2(null, 1)
            if haveReadproctitle { dup2(null, 2) }
            FD.close(null)
        }

        // One svscan, no pipe: become it, so a service manager sees svscan as the main process.
        if plans.count == 1, let plan = plans.first, !(plan.useReadproctitle && haveReadproctitle) {
            let error = Exec.replace(arguments: plan.command.map { Array($0.utf8) }, environment: env)
            return diag.fatal(ExitCode.temporary, error.description)
        }
        return startAndWait(plans, readproctitle: haveReadproctitle ? readproctitle : nil,
                            environment: env, diag: diag)
    }

    /// Does what `svc -dx` does to leftovers of an earlier boot (`d` and `x` to every control
    /// FIFO that has a supervise reading it), then gives them up to `patience` seconds to exit,
    /// so that the new supervise processes find their locks free.
    static func stopLeftovers(_ scanDirectory: String, environment: Environment, patience: Double = 5) {
        guard case .success(let names) = Path.entries(scanDirectory) else { return }
        let locator = ServiceLocator(environment: environment)
        var told: [String] = []
        for dir in SvscanbootPlan.leftovers(scanDirectory: scanDirectory, names: names) {
            guard case .success(let (fd, state)) = locator.openForWriting(SuperviseFiles.control, of: dir) else { continue }
            let supervise = Path.join(state, SuperviseFiles.directory)
            FD.writeAll(fd, [ControlCommand.down.rawValue, ControlCommand.exit.rawValue])
            FD.close(fd)
            told.append(Path.join(supervise, SuperviseFiles.ok))
        }
        let deadline = MonotonicClock.now() + patience
        while !told.isEmpty && MonotonicClock.now() < deadline {
            told.removeAll { ok in
                guard case .success(let fd) = FIFO.openWrite(ok) else { return true }
                FD.close(fd)
                return false
            }
            if !told.isEmpty { usleep(20_000) }
        }
    }

    /// Starts every svscan (each piped into readproctitle when it has no own logger), passes
    /// TERM, INT and HUP on to them, and waits until all have ended.
    static func startAndWait(_ plans: [SvscanbootPlan], readproctitle: String?, environment: Environment,
                             diag: Diagnostics) -> Int32 {
        let signals: SignalFD
        do {
            signals = try SignalFD(SignalSet([SIGCHLD, SIGTERM, SIGINT, SIGHUP]))
        } catch {
            return diag.fatal(error)
        }
        var svscans: Set<pid_t> = []
        var others: Set<pid_t> = []
        var status: Int32 = 0
        for plan in plans {
            var options = SpawnOptions()
            var pipe: (read: Int32, write: Int32)?
            if plan.useReadproctitle, let readproctitle, case .success(let p) = FD.pipe() {
                pipe = p
                var titleOptions = SpawnOptions()
                titleOptions.fileMoves = [(p.read, 0)]
                let argv = SvscanbootPlan.readproctitle(readproctitle, scanDirectory: plan.scanDirectory)
                if case .success(let pid) = Spawn.start(argv.map { Array($0.utf8) }, environment: environment,
                                                        options: titleOptions) {
                    others.insert(pid)
                }
                options.fileMoves = [(p.write, 1), (p.write, 2)]
            }
            switch Spawn.start(plan.command.map { Array($0.utf8) }, environment: environment, options: options) {
            case .success(let pid): svscans.insert(pid)
            case .failure(let e):
                diag.warning(e.description)
                status = ExitCode.temporary
            }
            if let pipe {
                FD.close(pipe.read)
                FD.close(pipe.write)
            }
        }
        while !svscans.isEmpty || !others.isEmpty {
            var p = pollfd(fd: signals.fd, events: Int16(POLLIN), revents: 0)
            _ = poll(&p, 1, -1)
            for signal in signals.drain() where signal != SIGCHLD {
                for pid in svscans { kill(pid, signal) }
            }
            while let (pid, ended) = Wait.any() {
                if svscans.remove(pid) != nil, ended != .exited(0) { status = ended.shellStatus }
                others.remove(pid)
            }
        }
        return status
    }
}
