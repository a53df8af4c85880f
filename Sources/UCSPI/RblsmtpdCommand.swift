// rblsmtpd: in front of an SMTP server, turn away clients listed in DNS blocklists or
// marked by $RBLSMTPD; run the server for everyone else.
import Core
import Glibc

public struct RblsmtpdCommand: Command {
    public static let name = "rblsmtpd"
    public static let installDirectory = InstallDirectory.bin
    public static let summary = "block mail from RBL-listed sites in front of an SMTP server"

    public static func run(_ context: CommandContext) -> Int32 {
        let diag = context.diagnostics
        let options: RblsmtpdOptions
        switch RblsmtpdOptions.parse(context.arguments) {
        case .failure(let problem):
            diag.warning(problem.description)
            return diag.usage(RblsmtpdOptions.synopsis)
        case .success(let o): options = o
        }
        let environment = context.environment
        let client = RemoteClient(environment: environment)
        let log = SessionLog(client: client)

        // Only ask the resolver (and read resolv.conf) when a lookup can happen.
        let needsDNS = environment.bytes("RBLSMTPD") == nil
        let lookups = needsDNS
            ? RBLLookups(resolver: DNSResolver(environment: environment))
            : RBLLookups(text: { _ in .success([]) }, hasAddress: { _ in .success(false) })
        let verdict = RblsmtpdPolicy.decide(options, environment: environment, client: client, lookups: lookups,
                                            warn: { diag.warning($0) })

        greetingDelay(options, environment: environment, diag: diag, log: log)

        if case .block = verdict {
            let refusal = verdict.reply
            log.write(String(decoding: refusal, as: UTF8.self))
            RblsmtpdSession(refusal: refusal, environment: environment).run(timeout: options.timeout, log: log.write)
        }
        let error = Exec.replace(arguments: options.program, environment: environment)
        return diag.fatal(error)
    }

    /// -w/-W: hold the greeting back. $GREETDELAY, when set and numeric, wins over -w.
    static func greetingDelay(_ options: RblsmtpdOptions, environment: Environment, diag: Diagnostics, log: SessionLog) {
        guard options.greetDelay != nil || options.greetDelayFromEnvironment else { return }
        var delay = options.greetDelay ?? 0
        if let text = environment["GREETDELAY"] {
            if let value = RblsmtpdOptions.seconds(text) {
                delay = value
            } else {
                diag.warning("ignoring GREETDELAY=\(text): not a number of seconds")
            }
        }
        guard delay > 0 else { return }
        log.write("greetdelay: \(delay)")
        var request = timespec(tv_sec: Int(delay), tv_nsec: 0)
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
    }
}

/// rblsmtpd's activity lines on fd 2: `rblsmtpd:  pid PID from IP: text` (the double
/// space is the reference's, kept for log parsers).
struct SessionLog {
    let prefix: String

    init(client: RemoteClient) {
        prefix = "rblsmtpd:  pid \(getpid()) from \(client.text): "
    }

    func write(_ text: String) {
        FD.writeAll(2, Array((prefix + text + "\n").utf8))
    }
}
