// qmail-remote: delivers one message to the recipients at one remote domain and reports to
// qmail-rspawn on stdout (RemoteReport).
import Core
import Glibc

public struct QmailRemoteCommand: Command {
    public static let name = "qmail-remote"
    public static let installDirectory = InstallDirectory.sbin
    public static let summary = "send a message to a remote mail server by SMTP or QMTP"

    public static func run(_ context: CommandContext) -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        let env = context.environment
        let delivery: RemoteDelivery
        switch RemoteSettings.load(arguments: context.arguments, environment: env) {
        case .failure(let failure):
            return finish(failure.report, reports: [], context: context)
        case .success(let settings):
            delivery = RemoteDelivery(settings: settings, tls: context.tls, idn: context.idn)
        }
        let paths = SuitePaths(environment: env)
        let control = ControlFiles(paths: paths)
        let more = (try? control.list("moreipme").get()) ?? nil
        let not = (try? control.list("notipme").get()) ?? nil
        let local = LocalAddresses.current(more: more ?? [], not: not ?? [])
        let report = delivery.run(resolver: DNSResolver(environment: env), local: local)
        return finish(report, reports: delivery.output, context: context, host: delivery.partnerAddress)
    }

    /// Writes the reports and the final one; exit 0 once anything was written, as the
    /// reference (qmail-rspawn reads the reports, not the status).
    static func finish(_ report: RemoteReport, reports: [UInt8], context: CommandContext, host: String = "") -> Int32 {
        guard case .success = FD.writeAll(1, reports + report.encoded) else { return 111 }
        return runScript(report, context: context, host: host)
    }

    /// ONSUCCESS_REMOTE / ONFAILURE_REMOTE / ONTEMPORARY_REMOTE: the program named by the
    /// variable for this outcome runs with qmail-remote's arguments and the result in
    /// SMTPSTATUS, SMTPTEXT, SMTPCODE, SMTPHOST; its exit status becomes ours.
    static func runScript(_ report: RemoteReport, context: CommandContext, host: String) -> Int32 {
        let variables = ["ONSUCCESS_REMOTE", "ONFAILURE_REMOTE", "ONTEMPORARY_REMOTE"]
        let chosen: String
        switch report.letter {
        case .success: chosen = variables[0]
        case .failure: chosen = variables[1]
        default: chosen = variables[2]
        }
        guard let program = context.environment.nonEmpty(chosen) else { return 0 }
        var env = context.environment
        for v in variables where v != chosen { env.unset(v) }
        let text = RemoteScriptResult(report)
        env.set("SMTPSTATUS", [report.letter.rawValue])
        env.set("SMTPTEXT", text.text)
        env.set("SMTPCODE", Array(text.code.utf8))
        if !host.isEmpty { env.set("SMTPHOST", Array(host.utf8)) }
        switch Spawn.run([Array(program.utf8)] + context.arguments, environment: env) {
        case .success(.exited(let code)): return code
        case .success:
            context.diagnostics.warning("alert: \(program) crashed")
            return 1
        case .failure(let e):
            context.diagnostics.warning("alert: \(e)")
            return 1
        }
    }
}

/// What the ON*_REMOTE program is told: the remote server's last words when there were
/// any (and their code), else the report's own text with code 0.
struct RemoteScriptResult {
    var text: [UInt8]
    var code: String

    init(_ report: RemoteReport) {
        let marker = Array("Remote host said: ".utf8)
        var body = report.text
        if let start = RemoteScriptResult.find(marker, in: body) {
            body = Array(body[(start + marker.count)...])
            let digits = body.prefix(3)
            code = digits.count == 3 && digits.allSatisfy({ $0 >= 48 && $0 <= 57 }) ? String(decoding: digits, as: UTF8.self) : "0"
        } else {
            code = "0"
        }
        while body.last == 10 { body.removeLast() }
        text = body.map { $0 == 0 ? UInt8(ascii: "?") : $0 }
    }

    static func find(_ needle: [UInt8], in hay: [UInt8]) -> Int? {
        guard hay.count >= needle.count else { return nil }
        for i in 0...(hay.count - needle.count) where hay[i..<(i + needle.count)].elementsEqual(needle) { return i }
        return nil
    }
}
