// pgrphack: run a program as the leader of a new session and process group.
import Core
import Glibc

public struct PgrphackCommand: Command {
    public static let name = "pgrphack"
    public static let installDirectory = InstallDirectory.sbin
    public static let summary = "run a program in a new session and process group"

    public static func run(_ context: CommandContext) -> Int32 {
        let diag = context.diagnostics
        guard !context.arguments.isEmpty else { return diag.usage("pgrphack child") }
        // Fails only when we already lead a process group; the child then runs where we are,
        // as the reference does.
        _ = setsid()
        let error = Exec.replace(arguments: context.arguments, environment: context.environment)
        return diag.fatal(error)
    }
}
