// argv0: run a program under a zeroth argument of one's choosing.
import Core

public struct Argv0Command: Command {
    public static let name = "argv0"
    public static let installDirectory = InstallDirectory.bin
    public static let summary = "run a program with a chosen zeroth argument"

    public static func run(_ context: CommandContext) -> Int32 {
        let diag = context.diagnostics
        let args = context.arguments
        guard args.count >= 2 else { return diag.usage("argv0 realname program [ arg ... ]") }
        // args[0] is what runs (PATH search); args[1...] is its argv, zeroth included.
        return diag.fatal(Exec.replace(program: args[0], arguments: Array(args[1...]),
                                       environment: context.environment))
    }
}
