// docker-entrypoint: a container's first process; becomes svscan on the service directory
// (PID 1: reaping, clean stop) or runs the program given after `--`.
import Core
import Glibc

public struct DockerEntrypointCommand: Command {
    public static let name = "docker-entrypoint"
    public static let installDirectory = InstallDirectory.sbin
    public static let summary = "container entry point running svscan as PID 1"

    static let usage = "docker-entrypoint [-r|--repair] [-t|--timezone zone] [-d|--domain domain] [--] [svscan|indimail|indimail-mta|webmail|program [argument ...]]"

    /// Options and program, parsed as the reference's GNU getopt call.
    public struct Invocation: Equatable, Sendable {
        public var repair = false
        public var timezone: String?
        public var domain: String?
        public var program: [String] = []

        /// The programs that mean "run svscan".
        public static let svscanNames: Set<String> = ["svscan", "indimail", "indimail-mta", "webmail"]

        public var runsSvscan: Bool { program.isEmpty || Invocation.svscanNames.contains(program[0]) }

        public static func parse(_ arguments: [String]) -> Invocation? {
            var result = Invocation()
            var i = 0
            func value(_ arg: String, long: String) -> String? {
                if arg.hasPrefix(long + "=") { return String(arg.dropFirst(long.count + 1)) }
                guard i + 1 < arguments.count else { return nil }
                i += 1
                return arguments[i]
            }
            while i < arguments.count {
                let arg = arguments[i]
                switch arg {
                case "--":
                    result.program = Array(arguments[(i + 1)...])
                    return result
                case "-r", "--repair", "-repair":
                    result.repair = true
                case _ where arg == "-t" || arg == "--timezone" || arg.hasPrefix("--timezone="):
                    guard let v = value(arg, long: "--timezone") else { return nil }
                    result.timezone = v
                case _ where arg == "-d" || arg == "--domain" || arg.hasPrefix("--domain="):
                    guard let v = value(arg, long: "--domain") else { return nil }
                    result.domain = v
                case _ where arg.hasPrefix("-t") && arg.count > 2:
                    result.timezone = String(arg.dropFirst(2))
                case _ where arg.hasPrefix("-d") && arg.count > 2:
                    result.domain = String(arg.dropFirst(2))
                case _ where arg.hasPrefix("-"):
                    return nil
                default:
                    // The first operand starts the program (GNU getopt would permute; the
                    // program's own options must not be taken for ours).
                    result.program = Array(arguments[i...])
                    return result
                }
                i += 1
            }
            return result
        }
    }

    public static func run(_ context: CommandContext) -> Int32 {
        let diag = context.diagnostics
        guard let invocation = Invocation.parse(context.strings) else { return diag.usage(usage) }
        let env = context.environment
        let out = BufferedWriter(fd: 1)

        if let zone = invocation.timezone {
            let zoneinfo = env.nonEmpty("ZONEINFO") ?? "/usr/share/zoneinfo"
            let file = Path.join(zoneinfo, zone)
            guard Path.isRegularFile(file) else {
                FD.writeAll(2, Array("ERROR: unable to open \(file)\nWARNING: unable to set timezone \(zone)\n".utf8))
                return 1
            }
            unlink("/etc/localtime")
            if symlink(file, "/etc/localtime") != 0 {
                diag.warning("unable to link /etc/localtime to \(file): \(SystemError.describe(errno))")
            }
            if case .success(let fd) = FD.openTrunc("/etc/timezone") {
                FD.writeAll(fd, Array("\(zone)\n".utf8))
                FD.close(fd)
            }
        }
        if invocation.repair {
            _ = Spawn.run([Array("/bin/sh".utf8)], environment: env)
        }
        if let domain = invocation.domain {
            // The mail layer owns the control files: svctool rewrites them for the new domain
            // when it differs from control/defaultdomain.
            let paths = SuitePaths(environment: env)
            let current = (try? ControlFiles(paths: paths).value("defaultdomain").get()) ?? nil
            if current != domain {
                let svctool = Path.join(paths.prefix, "sbin/svctool")
                let status = Spawn.run([svctool, "--config=recontrol", "--default-domain=\(domain)", "--silent"].map { Array($0.utf8) },
                                       environment: env)
                if case .success(.exited(0)) = status {} else {
                    diag.warning("unable to reconfigure the mail domain to \(domain) with \(svctool)")
                }
            }
        }

        guard invocation.runsSvscan else {
            out.write("docker-entrypoint: executing \(invocation.program.joined(separator: " "))\n")
            out.flush()
            let error = Exec.replace(arguments: invocation.program.map { Array($0.utf8) }, environment: env)
            return diag.fatal(ExitCode.temporary, error.description)
        }
        let program = invocation.program.first ?? "svscan"
        if program == "webmail" {
            diag.warning("webmail services are not set up by this entry point; starting svscan")
        }
        // Tools that read /etc/mtab (df, mount) find the mount table there.
        if Path.status("/etc/mtab", followLinks: false) == nil {
            for table in ["/proc/self/mounts", "/proc/mounts"] where Path.exists(table) {
                FD.writeAll(2, Array("Warning  linking /etc/mtab to \(table)\n".utf8))
                _ = symlink(table, "/etc/mtab")
                break
            }
        }
        _ = chdir("/")
        let paths = SuitePaths(environment: env)
        let scanDirectory = paths.serviceDirectory
        let svscan = Path.join(paths.prefix, "sbin/svscan")
        let variables = Path.join(scanDirectory, ".svscan/variables")
        var argv = [svscan, scanDirectory]
        if Path.isDirectory(variables) {
            argv = [Path.join(paths.prefix, "bin/envdir"), variables] + argv
        }
        out.write("docker-entrypoint: [\(program)] executing \(argv.joined(separator: " "))\n")
        out.flush()
        let error = Exec.replace(arguments: argv.map { Array($0.utf8) }, environment: env)
        return diag.fatal(ExitCode.temporary, error.description)
    }
}
