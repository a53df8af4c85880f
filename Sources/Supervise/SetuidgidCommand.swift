// setuidgid: run a program under an account's uid and gid (and, on request, its groups).
import Core
import Glibc

public struct SetuidgidCommand: Command {
    public static let name = "setuidgid"
    public static let installDirectory = InstallDirectory.bin
    public static let summary = "run a program under the uid and gid of an account"

    static let usage = "setuidgid [-e] [-s] [-g gid_list] account child"

    /// What the command line asks for, before anything touches the process.
    struct Request: Equatable {
        var setEnvironment = false
        var memberships = false
        var extraGroups: String? = nil
        var account: String
        var child: [[UInt8]]
    }

    enum ParseFailure: Error, Equatable {
        case option(OptionParser.Failure)
        case missingOperands
    }

    static func parse(_ context: CommandContext) -> Result<Request, ParseFailure> {
        let parsed: (items: [OptionParser.Item], operandIndex: Int)
        switch OptionParser("esg:").parse(context.strings) {
        case .success(let p): parsed = p
        case .failure(let e): return .failure(.option(e))
        }
        let operands = Array(context.arguments[parsed.operandIndex...])
        guard operands.count >= 2 else { return .failure(.missingOperands) }
        var request = Request(account: String(decoding: operands[0], as: UTF8.self), child: Array(operands[1...]))
        for item in parsed.items {
            switch item {
            case .flag("e"): request.setEnvironment = true
            case .flag("s"): request.memberships = true
            case .value("g", let list): request.extraGroups = list
            default: break
            }
        }
        return .success(request)
    }

    public static func run(_ context: CommandContext) -> Int32 {
        let diag = context.diagnostics
        let request: Request
        switch parse(context) {
        case .success(let r): request = r
        case .failure(.option(let e)):
            diag.warning(e.description)
            return diag.usage(usage)
        case .failure(.missingOperands):
            return diag.usage(usage)
        }

        let account: Account
        switch Accounts.user(request.account) {
        case .success(let a): account = a
        case .failure(let e): return diag.fatal(ExitCode.temporary, e.description)
        }

        // As the reference: only -s and -g replace the bare primary group; with -g alone
        // the list is exactly the groups named.
        var credentials = Credentials(account: account)
        if request.memberships || request.extraGroups != nil {
            var groups: [gid_t] = []
            if request.memberships {
                switch Privileges.memberships(of: account) {
                case .success(let list): groups = list
                case .failure(let e): return diag.fatal(e)
                }
            }
            if let extra = request.extraGroups {
                switch Privileges.parseGroups(extra) {
                case .success(let list): groups += list
                case .failure(.noSuchGroup("")): return diag.fatal(ExitCode.temporary, "empty group name in \(extra)")
                case .failure(let e): return diag.fatal(ExitCode.temporary, e.description)
                }
            }
            credentials.groups = groups
        }

        if case .failure(let e) = Privileges.become(credentials) {
            return diag.fatal(ExitCode.temporary, e.description)
        }
        var environment = context.environment
        if request.setEnvironment {
            environment["HOME"] = account.home
            environment["USER"] = request.account
            environment["LOGNAME"] = request.account
        }
        let error = Exec.replace(arguments: request.child, environment: environment)
        return diag.fatal(error)
    }
}
