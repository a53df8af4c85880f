// envuidgid: run a program with $UID and $GID set to an account's ids.
import Core

public struct EnvuidgidCommand: Command {
    public static let name = "envuidgid"
    public static let installDirectory = InstallDirectory.bin
    public static let summary = "run a program with UID and GID set to an account's ids"

    public static func run(_ context: CommandContext) -> Int32 {
        let diag = context.diagnostics
        // No options, as the reference: "-x" is an account name like any other.
        guard context.arguments.count >= 2 else { return diag.usage("envuidgid account child") }
        let name = String(decoding: context.arguments[0], as: UTF8.self)
        let account: Account
        switch Accounts.user(name) {
        case .success(let a): account = a
        case .failure(let e): return diag.fatal(ExitCode.temporary, e.description)
        }
        var environment = context.environment
        environment["GID"] = String(account.gid)
        environment["UID"] = String(account.uid)
        let error = Exec.replace(arguments: Array(context.arguments[1...]), environment: environment)
        return diag.fatal(error)
    }
}
