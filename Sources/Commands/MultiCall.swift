// The entry point both binaries share: dispatch on argv[0], or on the first argument when
// the binary is called by its own name.
import Core
import Glibc

public enum MultiCall {
    /// Runs the command named by argv and returns the exit code.
    public static func main(binary: String, commands: [any Command.Type],
                            arguments rawArguments: [[UInt8]], environment: Environment,
                            tls: (any TLSLibrary.Type)? = nil,
                            idn: (any IDNConverter.Type)? = nil,
                            version: () -> String) -> Int32 {
        let diag = Diagnostics(program: binary)
        // A setuid/setgid copy of this binary would hand every command elevated rights;
        // setuid programs are built as their own minimal executables instead.
        if getuid() != geteuid() || getgid() != getegid() {
            return diag.fatal(ExitCode.permanent,
                              "refusing to run with real and effective ids differing: \(binary) must not be installed setuid or setgid")
        }
        let invokedAs = Path.basename(String(decoding: rawArguments.first ?? Array(binary.utf8), as: UTF8.self))
        if let command = CommandRegistry.lookup(invokedAs, in: commands) {
            var context = CommandContext(name: command.name, arguments: Array(rawArguments.dropFirst()),
                                         environment: environment)
            context.commands = commands
            context.tls = tls
            context.idn = idn
            return command.run(context)
        }
        guard rawArguments.count >= 2 else {
            return diag.usage("\(binary) command [argument ...] | --list | --install-list | --version | --help")
        }
        let first = String(decoding: rawArguments[1], as: UTF8.self)
        let out = BufferedWriter(fd: 1)
        defer { out.flush() }
        switch first {
        case "--list":
            for command in commands.sorted(by: { $0.name < $1.name }) {
                out.write(command.name + "\t" + command.summary + "\n")
            }
            return ExitCode.success
        case "--install-list":
            // Read by scripts/install: "<dir> <name>" per line.
            for command in commands.sorted(by: { $0.name < $1.name }) {
                out.write(command.installDirectory.rawValue + " " + command.name + "\n")
            }
            return ExitCode.success
        case "--version":
            out.write(version() + "\n")
            return ExitCode.success
        case "--help", "-h":
            out.write("usage: \(binary) command [argument ...]\n       \(binary) --list | --install-list | --version\n")
            return ExitCode.success
        default:
            guard let command = CommandRegistry.lookup(first, in: commands) else {
                return diag.fatal(ExitCode.permanent, "unknown command: \(first) (try \(binary) --list)")
            }
            var context = CommandContext(name: command.name, arguments: Array(rawArguments.dropFirst(2)),
                                         environment: environment)
            context.commands = commands
            context.tls = tls
            context.idn = idn
            return command.run(context)
        }
    }

    /// argv of this process, exact bytes.
    public static func processArguments() -> [[UInt8]] {
        (0..<Int(CommandLine.argc)).map { i in
            guard let p = CommandLine.unsafeArgv[i] else { return [] }
            return Array(UnsafeBufferPointer(start: UnsafeRawPointer(p).assumingMemoryBound(to: UInt8.self),
                                             count: strlen(p)))
        }
    }

    public static let version = "0.1.0"
}
