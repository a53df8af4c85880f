// svps: the status of every service of a scan directory as one table, plus a few
// operations on svscan (HUP, TERM) and on all services at once (stop, resume).
import Core
import Glibc

public struct SvpsCommand: Command {
    public static let name = "svps"
    public static let installDirectory = InstallDirectory.bin
    public static let summary = "print the status of all services started by svscan"

    static let usage = "svps [-a|--all | -m|--main | -l|--logs | -h|--hup | -t|--term | -s|--stop | -r|--resume] [-d|--days] [-n|--no-pager] [-T|--tree] [--servicedir=dir]"

    public enum Mode: Equatable, Sendable {
        case list(main: Bool, logs: Bool)
        case hangup, terminate, stop, resume
    }

    public struct Options: Equatable, Sendable {
        public var mode = Mode.list(main: true, logs: false)
        public var tree = false
        public var days = false
        public var pager = true
        public var scanDirectories: [String] = []
    }

    public struct UsageError: Error, Equatable, Sendable {
        public var message: String
        init(_ message: String) { self.message = message }
    }

    /// One option per argument as the reference, plus clustered short options ("-an").
    /// The last of the mode options wins.
    public static func parse(_ arguments: [String]) -> Result<Options, UsageError> {
        var options = Options()
        var index = 0
        func apply(_ c: Character) -> Bool {
            switch c {
            case "a": options.mode = .list(main: true, logs: true)
            case "m": options.mode = .list(main: true, logs: false)
            case "l": options.mode = .list(main: false, logs: true)
            case "h": options.mode = .hangup
            case "t": options.mode = .terminate
            case "s": options.mode = .stop
            case "r": options.mode = .resume
            case "T": options.tree = true
            case "d": options.days = true
            case "n": options.pager = false
            default: return false
            }
            return true
        }
        let long: [String: Character] = ["--all": "a", "--main": "m", "--logs": "l", "--hup": "h", "--term": "t",
                                         "--stop": "s", "--resume": "r", "--tree": "T", "--days": "d",
                                         "--no-pager": "n"]
        while index < arguments.count {
            let arg = arguments[index]
            index += 1
            if arg.hasPrefix("--servicedir=") {
                let dir = String(arg.dropFirst("--servicedir=".count))
                guard !dir.isEmpty else { return .failure(UsageError("empty --servicedir")) }
                options.scanDirectories.append(dir)
            } else if arg == "--servicedir" {
                guard index < arguments.count, !arguments[index].isEmpty else {
                    return .failure(UsageError("option requires an argument -- servicedir"))
                }
                options.scanDirectories.append(arguments[index])
                index += 1
            } else if let c = long[arg] {
                _ = apply(c)
            } else if arg.hasPrefix("-") && !arg.hasPrefix("--") && arg.count > 1 {
                for c in arg.dropFirst() where !apply(c) { return .failure(UsageError("invalid option -- \(c)")) }
            } else {
                return .failure(UsageError("invalid option [\(arg)]"))
            }
        }
        return .success(options)
    }

    public static func run(_ context: CommandContext) -> Int32 {
        let diag = context.diagnostics
        let options: Options
        switch parse(context.strings) {
        case .success(let o): options = o
        case .failure(let e):
            diag.warning(e.message)
            return diag.usage(usage)
        }
        Signals.ignore(SIGPIPE)
        let environment = context.environment
        let locator = ServiceLocator(environment: environment)
        let scanDirectories = options.scanDirectories.isEmpty
            ? [SuitePaths(environment: environment).serviceDirectory] : options.scanDirectories
        var scans: [(directory: String, services: [String], svscan: SvscanProcess?)] = []
        for dir in scanDirectories {
            switch Path.entries(dir) {
            case .failure(let e): return diag.fatal(e)
            case .success(let names):
                let services = names.filter { !$0.hasPrefix(".") && Path.isDirectory(Path.join(dir, $0)) }
                    .sorted().map { Path.join(dir, $0) }
                scans.append((dir, services, SvscanProcess.find(scanDirectory: dir, locator: locator)))
            }
        }

        switch options.mode {
        case .hangup, .terminate:
            let (signal, word) = options.mode == .hangup ? (SIGHUP, "HUP") : (SIGTERM, "TERM")
            for scan in scans {
                guard let svscan = scan.svscan else {
                    return diag.fatal(1, "svscan not running for \(scan.directory)")
                }
                FD.writeAll(1, Array("Sending \(word) to svscan with PID \(svscan.pid)\n".utf8))
                if kill(svscan.pid, signal) != 0 {
                    let e = errno
                    let hint = e == EPERM ? " (not root?)" : ""
                    return diag.fatal(1, "unable to send \(word) to svscan pid \(svscan.pid): \(SystemError.describe(e))\(hint)")
                }
            }
            return ExitCode.success
        case .stop:
            return stopAll(scans.flatMap { $0.services }, environment: environment, locator: locator, diag: diag)
        case .resume:
            return resumeAll(scans.flatMap { $0.services }, environment: environment, locator: locator, diag: diag)
        case .list(let main, let logs):
            var table = SvpsTable()
            table.days = options.days
            let now = TAI64N.now()
            for scan in scans {
                if let svscan = scan.svscan {
                    table.svscans.append(.init(name: svscan.commandLine, pid: svscan.pid,
                                               uptime: Interval.between(svscan.started, now)))
                } else {
                    table.svscans.append(.init(name: "svscan " + scan.directory, pid: nil,
                                               uptime: Interval(seconds: 0, nanoseconds: 0)))
                }
                guard !options.tree else { continue }
                if main {
                    table.services += scan.services.map { ($0, ServiceProbe.probe($0, locator: locator, now: now)) }
                }
                if logs {
                    let own = Path.join(scan.directory, ".svscan/log")
                    if Path.isDirectory(own) {
                        table.svscanLogs.append((own, ServiceProbe.probe(own, locator: locator, now: now)))
                    }
                    for service in scan.services {
                        let log = Path.join(service, "log")
                        guard Path.isDirectory(log) else { continue }
                        table.logs.append((log, ServiceProbe.probe(log, locator: locator, now: now)))
                    }
                }
            }
            var sections: SvpsTable.Sections = []
            if main && !options.tree { sections.insert(.main) }
            if logs && !options.tree { sections.insert(.logs) }
            let text = table.render(sections)
            Output.write(usingPager: options.pager, environment: environment) { out in
                out.write(text)
                guard options.tree else { return }
                for svscan in scans.compactMap({ $0.svscan }) {
                    out.write("\nProcess Tree for PID " + String(repeating: " ", count: max(0, 10 - String(svscan.pid).count))
                              + String(svscan.pid) + "\n===============================\n")
                    out.flush()
                    showTree(svscan.pid, fd: out.fd, environment: environment, diag: diag)
                }
            }
            return scans.contains { $0.svscan == nil } ? 1 : ExitCode.success
        }
    }

    static func showTree(_ pid: pid_t, fd: Int32, environment: Environment, diag: Diagnostics) {
        var options = SpawnOptions()
        options.fileMoves = [(fd, 1)]
        let argv = ["pstree", "-aAcpglnsTu", String(pid)].map { Array($0.utf8) }
        if case .failure(let e) = Spawn.run(argv, environment: environment, options: options) {
            diag.warning(e.description)
        }
    }

    /// Where -s remembers what it stopped: SVPS_STOPDIR (default /var/tmp) + the service path.
    static func stopMarker(_ service: String, environment: Environment) -> String? {
        guard let absolute = ServiceLocator.absolute(service) else { return nil }
        return (environment.nonEmpty("SVPS_STOPDIR") ?? "/var/tmp") + absolute
    }

    static func stopAll(_ services: [String], environment: Environment, locator: ServiceLocator,
                        diag: Diagnostics) -> Int32 {
        var stopped = false
        for service in services {
            guard case .report(let r) = ServiceProbe.probe(service, locator: locator), r.exitCode == 0,
                  let marker = stopMarker(service, environment: environment) else { continue }
            if case .failure(let e) = Path.makeDirectories(marker) {
                diag.warning(e.description)
                continue
            }
            if !stopped { FD.writeAll(1, Array("Stopping all running services\n".utf8)) }
            stopped = true
            switch SvcCommand.send([ControlCommand.down.rawValue], to: service, locator: locator) {
            case .success:
                if case .success(let fd) = FD.open(Path.join(marker, "down"), O_WRONLY | O_CREAT, mode: 0o644) {
                    FD.close(fd)
                }
            case .failure(let f):
                diag.warning(f.message)
            }
        }
        if !stopped { FD.writeAll(2, Array("No running services found\n".utf8)) }
        return ExitCode.success
    }

    static func resumeAll(_ services: [String], environment: Environment, locator: ServiceLocator,
                          diag: Diagnostics) -> Int32 {
        var resumed = false
        for service in services {
            guard let marker = stopMarker(service, environment: environment),
                  Path.exists(Path.join(marker, "down")) else { continue }
            if !resumed { FD.writeAll(1, Array("Starting all stopped services\n".utf8)) }
            resumed = true
            if case .failure(let f) = SvcCommand.send([ControlCommand.up.rawValue], to: service, locator: locator) {
                diag.warning(f.message)
            }
            unlink(Path.join(marker, "down"))
            rmdir(marker)
        }
        if !resumed { FD.writeAll(2, Array("No stopped services found\n".utf8)) }
        return ExitCode.success
    }
}

/// The svscan running for a scan directory, found through its pid file.
struct SvscanProcess: Equatable {
    var pid: pid_t
    var commandLine: String
    /// Modification time of the pid file: when svscan started.
    var started: TAI64N

    /// Looks at `<scandir>/.svscan.pid`, then at the run-state directory's `.svscan.pid`
    /// (accepted there only when that svscan's working directory is the scan directory,
    /// as far as /proc tells). The pid is the file's last line, in decimal.
    static func find(scanDirectory: String, locator: ServiceLocator) -> SvscanProcess? {
        var candidates = [(Path.join(scanDirectory, ".svscan.pid"), false)]
        if let run = locator.existingRunDirectory { candidates.append((Path.join(run, ".svscan.pid"), true)) }
        for (file, checkDirectory) in candidates {
            guard case .success(let bytes) = FD.readFile(file, flags: O_NONBLOCK),
                  let pid = lastLinePid(bytes), pid > 0,
                  kill(pid, 0) == 0 || errno == EPERM,
                  let st = Path.status(file) else { continue }
            if checkDirectory, let cwd = resolved("/proc/\(pid)/cwd"), let scan = resolved(scanDirectory), cwd != scan {
                continue
            }
            return SvscanProcess(pid: pid, commandLine: commandLine(pid) ?? "svscan " + scanDirectory,
                                 started: TAI64N(unixSeconds: Int64(st.st_mtim.tv_sec),
                                                 nanoseconds: UInt32(clamping: st.st_mtim.tv_nsec)))
        }
        return nil
    }

    /// The pid in the last non-empty line (the file starts with the raw binary pid, whose
    /// bytes may include a newline).
    static func lastLinePid(_ bytes: [UInt8]) -> pid_t? {
        guard let line = bytes.split(separator: 10).last, !line.isEmpty, line.count <= 10,
              line.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return pid_t(String(decoding: line, as: UTF8.self))
    }

    static func commandLine(_ pid: pid_t) -> String? {
        guard case .success(let bytes) = FD.readFile("/proc/\(pid)/cmdline") else { return nil }
        let words = bytes.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        return words.isEmpty ? nil : words.joined(separator: " ")
    }

    static func resolved(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }
}

/// Standard output, or a pager's input when one applies (a terminal, no -n).
enum Output {
    static func write(usingPager: Bool, environment: Environment, _ body: (BufferedWriter) -> Void) {
        if usingPager, isatty(1) == 1, let pager = pagerCommand(environment),
           case .success(let pipe) = FD.pipe() {
            var options = SpawnOptions()
            options.fileMoves = [(pipe.read, 0)]
            let argv = ["/bin/sh", "-c", pager].map { Array($0.utf8) }
            if case .success(let pid) = Spawn.start(argv, environment: environment, options: options) {
                FD.close(pipe.read)
                let out = BufferedWriter(fd: pipe.write)
                body(out)
                out.flush()
                FD.close(pipe.write)
                _ = Wait.for(pid)
                return
            }
            FD.close(pipe.read)
            FD.close(pipe.write)
        }
        let out = BufferedWriter(fd: 1)
        body(out)
        out.flush()
    }

    static func pagerCommand(_ environment: Environment) -> String? {
        if let pager = environment.nonEmpty("PAGER") { return pager }
        return ["/usr/bin/less", "/usr/bin/more"].first { access($0, X_OK) == 0 }
    }
}
