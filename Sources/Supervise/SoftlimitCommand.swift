// softlimit: run a program with lower (or raised-to-the-hard-limit) soft resource limits.
import Core

public struct SoftlimitCommand: Command {
    public static let name = "softlimit"
    public static let installDirectory = InstallDirectory.bin
    public static let summary = "run a program with new soft resource limits"

    static let usage = "softlimit [-a allbytes] [-c corebytes] [-d databytes] [-f filebytes] [-l lockbytes] "
        + "[-m membytes] [-o openfiles] [-p processes] [-q mqbytes] [-r residentbytes] [-s stackbytes] "
        + "[-t cpusecs] child"

    enum ParseFailure: Error, Equatable {
        case option(OptionParser.Failure)
        case badLimit(Character, String)
        case noChild
    }

    /// The changes in command-line order, and the child.
    static func parse(_ context: CommandContext) -> Result<([LimitChange], [[UInt8]]), ParseFailure> {
        let parsed: (items: [OptionParser.Item], operandIndex: Int)
        switch OptionParser(Resource.flagSpec).parse(context.strings) {
        case .success(let p): parsed = p
        case .failure(let e): return .failure(.option(e))
        }
        var changes: [LimitChange] = []
        for case .value(let flag, let text) in parsed.items {
            guard let value = LimitValue(text) else { return .failure(.badLimit(flag, text)) }
            changes += Resource.forFlag(flag).map { LimitChange(resource: $0, value: value) }
        }
        let child = Array(context.arguments[parsed.operandIndex...])
        guard !child.isEmpty else { return .failure(.noChild) }
        return .success((changes, child))
    }

    public static func run(_ context: CommandContext) -> Int32 {
        let diag = context.diagnostics
        let changes: [LimitChange], child: [[UInt8]]
        switch parse(context) {
        case .success(let p): (changes, child) = p
        case .failure(.option(let e)):
            diag.warning(e.description)
            return diag.usage(usage)
        case .failure(.badLimit(let flag, let text)):
            diag.warning("bad limit for -\(flag): \(text)")
            return diag.usage(usage)
        case .failure(.noChild):
            return diag.usage(usage)
        }
        for change in changes {
            if case .failure(let e) = change.apply() { return diag.fatal(ExitCode.temporary, e.description) }
        }
        let error = Exec.replace(arguments: child, environment: context.environment)
        return diag.fatal(error)
    }
}
