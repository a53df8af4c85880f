// tcprulescheck: says what tcpserver would do for the client described by the environment.
import Core

public struct TCPRulesCheckCommand: Command {
    public static let name = "tcprulescheck"
    public static let installDirectory = InstallDirectory.bin
    public static let summary = "show which tcprules rule applies to a client"

    public static func run(_ context: CommandContext) -> Int32 {
        let diag = context.diagnostics
        guard let path = context.strings.first else { return diag.usage("tcprulescheck rules.cdb") }
        let env = context.environment
        let ip = env.bytes("TCPREMOTEIP") ?? Array("0.0.0.0".utf8)

        let found: (key: [UInt8], value: [UInt8])?
        switch TCPRules.open(path).flatMap({
            $0.lookupValue(ip: ip, host: env.bytes("TCPREMOTEHOST"), info: env.bytes("TCPREMOTEINFO"))
        }) {
        case .failure(let e):
            let reason: String
            switch e {
            case .system(let s): reason = s.reason
            case .corrupt, .tooBig: reason = e.description
            }
            return diag.fatal(ExitCode.temporary, "unable to read \(path): \(reason)")
        case .success(let f):
            found = f
        }

        let out = BufferedWriter(fd: 1)
        _ = out.write(report(found))
        guard case .success = out.flush() else { return ExitCode.temporary }
        return ExitCode.success
    }

    /// The reference's report: `rule KEY:` and one line per record up to a deny, or
    /// `default:` when no rule matched.
    public static func report(_ found: (key: [UInt8], value: [UInt8])?) -> [UInt8] {
        guard let found else { return Array("default:\nallow connection\n".utf8) }
        var text = Array("rule ".utf8) + found.key + Array(":\n".utf8)
        for record in RuleValue.rawRecords(found.value) {
            switch record.first {
            case UInt8(ascii: "D"):
                return text + Array("deny connection\n".utf8)
            case UInt8(ascii: "+"):
                text += Array("set environment variable ".utf8) + record.dropFirst() + [10]
            case UInt8(ascii: "-"):
                text += Array("unset environment variable ".utf8) + record.dropFirst() + [10]
            default:
                break
            }
        }
        return text + Array("allow connection\n".utf8)
    }
}
