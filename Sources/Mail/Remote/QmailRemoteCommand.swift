// qmail-remote: delivers one message to the recipients at one remote domain and reports to
// qmail-rspawn on stdout (RemoteReport).
import Core
import Glibc

public struct QmailRemoteCommand: Command {
    public static let name = "qmail-remote"
    public static let installDirectory = InstallDirectory.libexec
    public static let summary = "send a message to a remote mail server by SMTP or QMTP"

    public static func run(_ context: CommandContext) -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        let env = context.environment
        let delivery: RemoteDelivery
        switch RemoteSettings.load(arguments: context.arguments, environment: env) {
        case .failure(let failure):
            return finish(failure.report, reports: [])
        case .success(let settings):
            delivery = RemoteDelivery(settings: settings, tls: context.tls)
        }
        let paths = SuitePaths(environment: env)
        let control = ControlFiles(paths: paths)
        let more = (try? control.list("moreipme").get()) ?? nil
        let not = (try? control.list("notipme").get()) ?? nil
        let local = LocalAddresses.current(more: more ?? [], not: not ?? [])
        let report = delivery.run(resolver: DNSResolver(environment: env), local: local)
        return finish(report, reports: delivery.output)
    }

    /// Writes the reports and the final one; exit 0 once anything was written, as the
    /// reference (qmail-rspawn reads the reports, not the status).
    static func finish(_ report: RemoteReport, reports: [UInt8]) -> Int32 {
        switch FD.writeAll(1, reports + report.encoded) {
        case .success: return 0
        case .failure: return 111
        }
    }
}
