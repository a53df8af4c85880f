// Running the program a network tool was given: in-process when it is one of this
// binary's own commands, through dlopen when it is a ".so" plugin (the reference's
// calling convention), else by exec. Used in forked children only.
import CSupport
import Core
import Glibc

public enum ProgramLauncher {
    /// The command of this binary that `program` names, if it resolves to our own
    /// executable (a bare name along PATH, or a path), nil otherwise.
    public static func ownCommand(_ program: String, context: CommandContext, searchPath: String?) -> (any Command.Type)? {
        guard let command = context.inProcessCommand(program) else { return nil }
        let resolved = program.contains("/") ? program : Exec.resolve(program, path: searchPath)
        guard let path = resolved, let ours = realPath("/proc/self/exe"), let target = realPath(path) else { return nil }
        if target == ours { return command }
        // indimail-tls holds every command of the base binary next to it: a link to the
        // base binary is ours too (tcpserver continues in indimail-tls for TLS services).
        if Path.basename(ours) == "indimail-tls", target == Path.join(Path.dirname(ours), "indimail") { return command }
        return nil
    }

    static func realPath(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }

    /// Runs `arguments` with `environment`; returns an exit code only on failure to start,
    /// or the in-process command's result. `prepared` is a preloaded in-process program.
    public static func run(_ arguments: [[UInt8]], environment: Environment, context: CommandContext,
                           prepared: PreparedCommand? = nil, diagnostics: Diagnostics) -> Int32 {
        guard let first = arguments.first else { return diagnostics.fatal(ExitCode.permanent, "no program given") }
        let program = String(decoding: first, as: UTF8.self)
        if let prepared, Path.basename(program) == prepared.name {
            return prepared.run(programContext(prepared, arguments, environment: environment, context: context))
        }
        if let command = ownCommand(program, context: context, searchPath: environment["PATH"]) {
            return PreparedCommand.prepare(command, context)
                .run(context.handingOver(to: command.name, arguments: Array(arguments.dropFirst()), environment: environment))
        }
        if program.contains("/") && program.hasSuffix(".so") {
            return runPlugin(program, arguments: arguments, environment: environment, diagnostics: diagnostics)
        }
        let error = Exec.replace(arguments: arguments, environment: environment)
        return diagnostics.fatal(ExitCode.temporary, error.description)
    }

    /// What a prepared in-process program runs with: its own arguments (argv[1...]) and
    /// the connection's environment. The parent's warm-up builds its rehearsal context here too.
    public static func programContext(_ prepared: PreparedCommand, _ arguments: [[UInt8]], environment: Environment,
                                      context: CommandContext) -> CommandContext {
        context.handingOver(to: prepared.name, arguments: Array(arguments.dropFirst()), environment: environment)
    }

    typealias PluginEntry = @convention(c) (Int32, UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
                                            UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32

    /// dlopen the object, call `<basename without extension>(argc, argv, envp)`, exit 0.
    static func runPlugin(_ path: String, arguments: [[UInt8]], environment: Environment,
                          diagnostics: Diagnostics) -> Int32 {
        let handle = dlopen(path, RTLD_NOW | RTLD_NOLOAD) ?? dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE)
        guard let handle else {
            let why = dlerror().map { String(cString: $0) } ?? "unknown error"
            return diagnostics.fatal(ExitCode.temporary, "dlopen: \(path): \(why)")
        }
        var symbol = Path.basename(path)
        if let dot = symbol.firstIndex(of: ".") { symbol = String(symbol[..<dot]) }
        guard let address = dlsym(handle, symbol) else {
            let why = dlerror().map { String(cString: $0) } ?? "unknown error"
            return diagnostics.fatal(ExitCode.temporary, "dlsym: \(path): \(why)")
        }
        let entry = unsafeBitCast(address, to: PluginEntry.self)
        let block = ExecBlock(arguments: arguments, environment: environment)
        _ = entry(Int32(arguments.count), block.argv, block.envp)
        dlclose(handle)
        return ExitCode.success
    }

    /// Preloads PLUGIN<n>=<path> objects (with PLUGIN<n>_dir and PLUGIN<n>_init) as the
    /// reference: init(0) at start-up, init(1) on reload (objects must already be loaded).
    public static func preloadPlugins(_ environment: Environment, reload: Bool) -> Result<[String], SystemError> {
        typealias InitEntry = @convention(c) (Int32) -> Int32
        var loaded: [String] = []
        for name in environment.names where name.hasPrefix("PLUGIN") {
            let suffix = name.dropFirst(6)
            guard !suffix.isEmpty, suffix.allSatisfy({ $0.isASCII && $0.isNumber }), let path = environment[name] else { continue }
            let flags = RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE | (reload ? RTLD_NOLOAD : 0)
            guard let handle = dlopen(path, flags) else {
                return .failure(SystemError("unable to load plugin", path, errno: ENOENT))
            }
            if let dir = environment[name + "_dir"], chdir(dir) != 0 {
                return .failure(SystemError("unable to chdir to", dir))
            }
            if let initName = environment[name + "_init"] {
                guard let address = dlsym(handle, initName) else {
                    return .failure(SystemError("unable to find \(initName) in", path, errno: ENOENT))
                }
                _ = unsafeBitCast(address, to: InitEntry.self)(reload ? 1 : 0)
            }
            loaded.append(path)
        }
        return .success(loaded)
    }
}
