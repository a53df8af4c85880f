// sendmail: the sendmail command line that cron, mail user agents, git and PHP use,
// mapped onto qmail-inject (and qmail-qread for -bp / mailq, qmail-smtpd for -bs).
import Core
import Glibc

/// What a sendmail command line asks for.
public struct SendmailRequest: Equatable, Sendable {
    public enum Mode: Equatable, Sendable { case send, listQueue, smtp, newAliases }
    public var mode: Mode = .send
    /// -t: recipients from the header as well.
    public var headerRecipients = false
    public var sender: [UInt8]? = nil
    public var fullName: [UInt8]? = nil
    public var recipients: [[UInt8]] = []

    public enum Failure: Error, Equatable, Sendable { case usage, newAliases }

    /// Options taking a value (attached or as the next argument), per sendmail(8).
    static let withValue: Set<UInt8> = Set("ABbeFfNoprCRVX".utf8)
    /// Flags sendmail programs pass that mean nothing here.
    static let ignoredFlags: Set<UInt8> = Set("ULhnvimxGS".utf8)

    /// Parses a sendmail command line (`name` is how we were called: mailq, newaliases).
    public static func parse(name: String, arguments: [[UInt8]]) -> Result<SendmailRequest, Failure> {
        var request = SendmailRequest()
        if name == "mailq" { request.mode = .listQueue; return .success(request) }
        if name == "newaliases" { return .failure(.newAliases) }
        var i = 0
        argumentLoop: while i < arguments.count {
            let arg = arguments[i]
            if arg == Array("--".utf8) { i += 1; break }
            guard arg.count > 1, arg[0] == UInt8(ascii: "-") else { break }
            var j = 1
            while j < arg.count {
                let c = arg[j]
                j += 1
                if withValue.contains(c) {
                    var value: [UInt8]
                    if j < arg.count { value = Array(arg[j...]) } else if i + 1 < arguments.count {
                        i += 1
                        value = arguments[i]
                    } else { return .failure(.usage) }
                    switch c {
                    case UInt8(ascii: "f"), UInt8(ascii: "r"): request.sender = value
                    case UInt8(ascii: "F"): request.fullName = value
                    case UInt8(ascii: "A"):
                        guard value.first == UInt8(ascii: "m") || value.first == UInt8(ascii: "c") else { return .failure(.usage) }
                    case UInt8(ascii: "b"):
                        switch value.first {
                        case UInt8(ascii: "h"), UInt8(ascii: "H"), UInt8(ascii: "m"): break
                        case UInt8(ascii: "p"): request.mode = .listQueue; return .success(request)
                        case UInt8(ascii: "s"): request.mode = .smtp; return .success(request)
                        case UInt8(ascii: "i"): return .failure(.newAliases)
                        default: return .failure(.usage)
                        }
                    default: break // -o -B -e -p -N …: one delivery mode, one error mode
                    }
                    value.removeAll()
                    i += 1
                    continue argumentLoop
                }
                switch c {
                case UInt8(ascii: "t"): request.headerRecipients = true
                case UInt8(ascii: "I"): return .failure(.newAliases)
                case UInt8(ascii: "E"), UInt8(ascii: "J"): j = arg.count // the rest of the word is their argument
                case _ where ignoredFlags.contains(c): break
                default: return .failure(.usage)
                }
            }
            i += 1
        }
        request.recipients = Array(arguments[min(i, arguments.count)...])
        return .success(request)
    }

    /// qmail-inject's arguments for this request.
    public var injectArguments: [[UInt8]] {
        var argv: [[UInt8]] = [Array((headerRecipients ? "-H" : "-a").utf8)]
        if let sender { argv += [Array("-f".utf8), sender] }
        return argv + [Array("--".utf8)] + recipients
    }

    /// The environment qmail-inject sees: with -f the From: identity follows the sender;
    /// -F sets the full name.
    public func injectEnvironment(_ env: Environment) -> Environment {
        var env = env
        if let sender {
            if fullName == nil {
                for name in ["QMAILNAME", "MAILNAME", "NAME"] { env.unset(name) }
            }
            env.unset("QMAILHOST"); env.unset("MAILHOST")
            if let at = sender.lastIndex(of: UInt8(ascii: "@")) {
                env.set("QMAILHOST", Array(sender[(at + 1)...]))
                env.set("QMAILUSER", Array(sender[..<at]))
            } else {
                env.set("QMAILUSER", sender)
            }
        }
        if let fullName {
            env.unset("QMAILNAME")
            env.set("MAILNAME", fullName)
        }
        return env
    }
}

public struct SendmailCommand: Command {
    public static let name = "sendmail"
    public static let installDirectory = InstallDirectory.bin
    public static let summary = "send mail with the sendmail command line, through qmail-inject"

    static let usage = "sendmail [ -t ] [ -fsender ] [ -Fname ] [ -bp ] [ -bs ] [ arg ... ]"

    public static func run(_ context: CommandContext) -> Int32 {
        let diag = Diagnostics(program: "sendmail")
        if chdir("/") != 0 { return diag.fatal(ExitCode.temporary, "unable to switch to root directory") }
        let request: SendmailRequest
        switch SendmailRequest.parse(name: context.name, arguments: context.arguments) {
        case .success(let r): request = r
        case .failure(.newAliases): return diag.fatal(ExitCode.permanent, "please use fastforward/newaliases instead")
        case .failure(.usage): return diag.usage(usage)
        }
        switch request.mode {
        case .newAliases:
            return diag.fatal(ExitCode.permanent, "please use fastforward/newaliases instead")
        case .listQueue:
            return QmailQreadCommand.run(context.handingOver(to: QmailQreadCommand.name, arguments: [], environment: context.environment))
        case .smtp:
            var env = context.environment
            if !env.contains("PROTO") {
                for (k, v) in [("RELAYCLIENT", ""), ("DATABYTES", "0"), ("PROTO", "TCP"), ("TCPLOCALIP", "127.0.0.1"),
                               ("TCPLOCALHOST", "localhost"), ("TCPREMOTEIP", "127.0.0.1"),
                               ("TCPREMOTEHOST", "localhost"), ("TCPREMOTEINFO", "sendmail-bs")] {
                    env.set(k, Array(v.utf8))
                }
            }
            if let smtpd = context.inProcessCommand("qmail-smtpd") {
                let next = context.handingOver(to: smtpd.name, arguments: [], environment: env)
                return PreparedCommand.prepare(smtpd, next).run(next)
            }
            let installed = Path.join(SuitePaths(environment: env).prefix, "sbin/qmail-smtpd")
            let program = access(installed, X_OK) == 0 ? installed : "qmail-smtpd"
            let e = Exec.replace(program: Array(program.utf8), arguments: [Array("qmail-smtpd".utf8)], environment: env)
            return diag.fatal(ExitCode.temporary, "unable to run qmail-smtpd: \(e.description)")
        case .send:
            return QmailInjectCommand.run(context.handingOver(to: QmailInjectCommand.name, arguments: request.injectArguments,
                                                             environment: request.injectEnvironment(context.environment)))
        }
    }
}

/// mailq: sendmail -bp.
public struct MailqCommand: Command {
    public static let name = "mailq"
    public static let installDirectory = InstallDirectory.bin
    public static let summary = "list the mail queue (sendmail -bp)"
    public static func run(_ context: CommandContext) -> Int32 {
        QmailQreadCommand.run(context.handingOver(to: QmailQreadCommand.name, arguments: context.arguments, environment: context.environment))
    }
}
