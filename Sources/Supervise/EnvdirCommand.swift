// envdir: run a program with environment variables taken from a directory.
import Core

public struct EnvdirCommand: Command {
    public static let name = "envdir"
    public static let installDirectory = InstallDirectory.bin
    public static let summary = "run a program with an environment modified by a directory"

    public static func run(_ context: CommandContext) -> Int32 {
        let diag = context.diagnostics
        let usage = "envdir [-cipw] dir child"
        let parsed: (items: [OptionParser.Item], operandIndex: Int)
        switch OptionParser("cipw").parse(context.strings) {
        case .success(let p): parsed = p
        case .failure(let e):
            diag.warning(e.description)
            return diag.usage(usage)
        }
        let operands = Array(context.arguments[parsed.operandIndex...])
        guard operands.count >= 2 else { return diag.usage(usage) }
        let flags = Set(parsed.items.compactMap { if case .flag(let c) = $0 { return c } else { return nil } })

        let original = context.environment
        let dir = String(decoding: operands[0], as: UTF8.self)
        var loader = EnvDirLoader(ignoreUnreadable: flags.contains("i"))
        var environment = flags.contains("c") ? Environment() : original
        // The program is looked up along envdir's own PATH unless -p says the new one.
        var searchPath = original["PATH"] ?? Exec.defaultPath
        switch loader.load(dir) {
        case .success:
            environment = loader.apply(to: environment)
            if flags.contains("p") { searchPath = environment["PATH"] ?? Exec.defaultPath }
        case .failure(let e):
            // -w: a broken directory must not keep the service down; run it untouched.
            guard flags.contains("w") else { return diag.fatal(ExitCode.temporary, e.description) }
            diag.warning(e.description)
            environment = original
        }
        let error = Exec.replace(arguments: Array(operands[1...]), environment: environment, searchPath: searchPath)
        return diag.fatal(ExitCode.temporary, error.description)
    }
}
