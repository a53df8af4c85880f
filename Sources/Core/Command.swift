// What every program of the suite is: a named function from (arguments, environment) to an exit code.

/// Where the installer puts a command's link, as the reference places it.
public enum InstallDirectory: String, Sendable, CaseIterable {
    case bin, sbin, libexec
}

/// Everything a command receives. Arguments stay as raw bytes so file names and child
/// argv pass through unchanged; `strings` is the decoded view for option parsing.
public struct CommandContext {
    /// The name the command was invoked under (basename of argv[0]).
    public let name: String
    /// argv[1...], exact bytes.
    public let arguments: [[UInt8]]
    public var environment: Environment
    public let diagnostics: Diagnostics
    /// Every command of the running binary: programs such as tcpserver run one of these
    /// in-process instead of exec'ing it.
    public var commands: [any Command.Type] = []
    /// The TLS library, when the running binary links one (indimail-tls).
    public var tls: (any TLSLibrary.Type)? = nil
    /// The IDN converter, when the running binary links one (indimail-tls: libidn2).
    public var idn: (any IDNConverter.Type)? = nil

    public init(name: String, arguments: [[UInt8]], environment: Environment) {
        self.name = name
        self.arguments = arguments
        self.environment = environment
        self.diagnostics = Diagnostics(program: name)
    }

    public init(name: String, arguments: [String], environment: Environment) {
        self.init(name: name, arguments: arguments.map { Array($0.utf8) }, environment: environment)
    }

    /// The same binary's context for running another command with other arguments.
    public func handingOver(to name: String, arguments: [[UInt8]], environment: Environment) -> CommandContext {
        var next = CommandContext(name: name, arguments: arguments, environment: environment)
        next.commands = commands
        next.tls = tls
        next.idn = idn
        return next
    }

    /// The registered command called `name` (a path's basename counts), if any.
    public func inProcessCommand(_ program: String) -> (any Command.Type)? {
        let base = program.split(separator: "/").last.map(String.init) ?? program
        return commands.first { $0.name == base }
    }

    public var strings: [String] { arguments.map { String(decoding: $0, as: UTF8.self) } }
}

public protocol Command {
    static var name: String { get }
    static var installDirectory: InstallDirectory { get }
    /// One line for `--list` and the man page's NAME section.
    static var summary: String { get }
    /// Runs the command; the return value is the process exit code.
    static func run(_ context: CommandContext) -> Int32
}

/// A command whose configuration can be read once by a long-lived parent (tcpserver) and
/// reused by every connection child: init at start-up, again on SIGHUP.
public protocol PreloadingCommand: Command {
    associatedtype Preloaded
    /// Reads configuration (control files, …) in the parent, after it dropped privileges.
    static func preload(_ context: CommandContext) -> Preloaded
    /// Runs with what `preload` produced, in a forked child.
    static func run(_ context: CommandContext, preloaded: Preloaded) -> Int32
    /// Rehearses, in the parent right after `preload`, what a connection child runs, with
    /// none of its effects: no file written, no socket, no log line, no process, no signal
    /// disposition changed. The Swift runtime builds type metadata, conformance and
    /// one-time caches lazily, per process: built here once, every forked child inherits
    /// them instead of building them again. `context` is what a connection would get
    /// (the program's arguments, tcpserver's environment with connection variables).
    static func warmUp(_ context: CommandContext, preloaded: Preloaded)
}

extension PreloadingCommand {
    public static func warmUp(_ context: CommandContext, preloaded: Preloaded) {}
}

/// A program ready to run in-process: plain commands as they are, preloading ones with
/// their preloaded state captured.
public struct PreparedCommand {
    public let name: String
    public let run: (CommandContext) -> Int32
    /// The command's warm-up with the preloaded state (nothing for plain commands): a
    /// long-lived parent calls it after `prepare` and after every re-preload.
    public let warmUp: (CommandContext) -> Void

    public static func prepare(_ command: any Command.Type, _ context: CommandContext) -> PreparedCommand {
        if let preloading = command as? any PreloadingCommand.Type {
            return preparePreloading(preloading, context)
        }
        return PreparedCommand(name: command.name, run: { command.run($0) }, warmUp: { _ in })
    }

    private static func preparePreloading<C: PreloadingCommand>(_ command: C.Type, _ context: CommandContext) -> PreparedCommand {
        let state = C.preload(context)
        return PreparedCommand(name: C.name, run: { C.run($0, preloaded: state) },
                               warmUp: { C.warmUp($0, preloaded: state) })
    }
}

/// POSIX getopt over decoded arguments: clustered flags, `x:` takes a value, `--` or the
/// first operand ends option parsing (no permutation, as the reference's sgetopt).
public struct OptionParser: Sendable {
    public enum Item: Equatable, Sendable {
        case flag(Character)
        case value(Character, String)
    }

    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        case unknown(Character)
        case missingValue(Character)
        public var description: String {
            switch self {
            case .unknown(let c): return "illegal option -- \(c)"
            case .missingValue(let c): return "option requires an argument -- \(c)"
            }
        }
    }

    private let takesValue: Set<Character>
    private let known: Set<Character>

    /// `spec` in getopt form, e.g. "cipw" or "u:g:v".
    public init(_ spec: String) {
        var takes = Set<Character>(), all = Set<Character>()
        var chars = Array(spec)
        var i = 0
        while i < chars.count {
            all.insert(chars[i])
            if i + 1 < chars.count, chars[i + 1] == ":" { takes.insert(chars[i]); i += 1 }
            i += 1
        }
        chars.removeAll()
        takesValue = takes
        known = all
    }

    /// Parses `arguments`; returns the options in order and the index of the first operand.
    public func parse(_ arguments: [String]) -> Result<(items: [Item], operandIndex: Int), Failure> {
        var items: [Item] = []
        var index = 0
        while index < arguments.count {
            let arg = arguments[index]
            if arg == "--" { return .success((items, index + 1)) }
            guard arg.hasPrefix("-"), arg.count > 1 else { break }
            var rest = Substring(arg.dropFirst())
            while let c = rest.first {
                rest = rest.dropFirst()
                guard known.contains(c) else { return .failure(.unknown(c)) }
                if takesValue.contains(c) {
                    if !rest.isEmpty {
                        items.append(.value(c, String(rest)))
                    } else if index + 1 < arguments.count {
                        index += 1
                        items.append(.value(c, arguments[index]))
                    } else {
                        return .failure(.missingValue(c))
                    }
                    break
                }
                items.append(.flag(c))
            }
            index += 1
        }
        return .success((items, index))
    }
}
