// The limited SMTP conversation rblsmtpd holds with a blocked client (spec §7.3): greet,
// accept the envelope sender, refuse every recipient and everything else, hang up on QUIT,
// at end of input or when the session time is up.
import Core
import Glibc

public struct RblsmtpdSession: Sendable {
    /// The error reply, e.g. `451 listed`, already cleaned (RblsmtpdVerdict.reply).
    public let refusal: [UInt8]
    /// The name in 220/250/221 replies.
    public let greeting: [UInt8]
    /// Answer EHLO with a multi-line capability list ($RBLEHLO).
    public let ehloExtensions: Bool

    /// Longest command line kept; the rest of a longer line is read and dropped.
    public static let maxLine = 1024
    /// Longest envelope address logged, as the reference.
    public static let maxAddress = 900
    public static let defaultGreeting = "rblsmtpd.indimail"

    public init(refusal: [UInt8], greeting: [UInt8], ehloExtensions: Bool) {
        self.refusal = refusal
        self.greeting = RblsmtpdSession.printable(greeting.prefix(200))
        self.ehloExtensions = ehloExtensions
    }

    public init(refusal: [UInt8], environment: Environment) {
        self.init(refusal: refusal,
                  greeting: environment.bytes("RBLGREETING") ?? Array(RblsmtpdSession.defaultGreeting.utf8),
                  ehloExtensions: environment.contains("RBLEHLO"))
    }

    /// What one command line gets.
    public struct Response: Equatable, Sendable {
        /// Reply lines, CRLF included.
        public var reply: [UInt8]
        /// Text for the log after the `rblsmtpd:  pid N from IP: ` prefix, if any.
        public var log: String?
        /// Hang up after the reply.
        public var quit = false
    }

    /// The reply to one command line (LF and one CR before it already removed). `overlong`
    /// says the line was cut at `maxLine` bytes.
    public func respond(to line: [UInt8], overlong: Bool = false) -> Response {
        // NUL cannot live in a C string: the reference turns it into LF.
        let line = line.map { $0 == 0 ? 10 : $0 }
        let space = line.firstIndex(of: 32) ?? line.count
        let verb = String(decoding: line[..<space].map { ($0 >= 65 && $0 <= 90) ? $0 + 32 : $0 }, as: UTF8.self)
        var argumentStart = space
        while argumentStart < line.count && line[argumentStart] == 32 { argumentStart += 1 }
        let argument = Array(line[argumentStart...])
        switch verb {
        case "quit": return Response(reply: reply("221 "), quit: true)
        case "helo", "rset", "noop": return Response(reply: reply("250 "))
        case "ehlo":
            guard ehloExtensions else { return Response(reply: reply("250 ")) }
            return Response(reply: reply("250-") + Array("250-PIPELINING\r\n250-8BITMIME\r\n250-STARTTLS\r\n250 HELP\r\n".utf8))
        case "vrfy": return Response(reply: reply("252 "))
        case "mail": return Response(reply: reply("250 "), log: logAddress("MAIL", "Sender", argument, overlong))
        case "rcpt": return Response(reply: refusal + [13, 10], log: logAddress("RCPT", "Recipient", argument, overlong))
        default: return Response(reply: refusal + [13, 10])
        }
    }

    private func reply(_ code: String) -> [UInt8] { Array(code.utf8) + greeting + [13, 10] }

    private func logAddress(_ verb: String, _ role: String, _ argument: [UInt8], _ overlong: Bool) -> String {
        guard !overlong, let address = RblsmtpdSession.address(in: argument), address.count <= RblsmtpdSession.maxAddress else {
            return "\(verb) with too long address"
        }
        return "\(role) <\(String(decoding: RblsmtpdSession.printable(address[...]), as: UTF8.self))>"
    }

    /// The address of a `FROM:<a@b>` / `TO:<a@b>` argument, as qmail-smtpd reads it: after
    /// `<` up to `>`, or after the colon up to a space when there are no brackets; a source
    /// route (`@x,@y:`) dropped; backslash escapes and double quotes removed.
    public static func address(in argument: [UInt8]) -> [UInt8]? {
        var rest = argument[...]
        var terminator = UInt8(ascii: ">")
        if let open = rest.firstIndex(of: UInt8(ascii: "<")) {
            rest = rest[(open + 1)...]
        } else {
            terminator = 32
            guard let colon = rest.firstIndex(of: UInt8(ascii: ":")) else { return [] }
            rest = rest[(colon + 1)...].drop { $0 == 32 }
        }
        if rest.first == UInt8(ascii: "@") {
            if let colon = rest.firstIndex(of: UInt8(ascii: ":")) { rest = rest[(colon + 1)...] } else { rest = [] }
        }
        var out: [UInt8] = []
        var escaped = false, quoted = false
        for c in rest {
            if escaped {
                out.append(c)
                escaped = false
            } else if !quoted && c == terminator {
                break
            } else if c == UInt8(ascii: "\\") {
                escaped = true
            } else if c == UInt8(ascii: "\"") {
                quoted.toggle()
            } else {
                out.append(c)
            }
            if out.count > maxAddress { return nil }
        }
        return out
    }

    /// Bytes outside printable ASCII become '?': client text never reaches a log or a
    /// reply raw.
    static func printable(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
        bytes.map { $0 < 32 || $0 > 126 ? UInt8(ascii: "?") : $0 }
    }

    // MARK: running on fds 0 and 1

    /// Holds the conversation on fd 0/1 and exits the process (always status 0, as the
    /// reference): after QUIT, at end of input, on an I/O error, or when `timeout` seconds
    /// have passed since the start (0: send the refusal once and stop).
    public func run(timeout: UInt32, log: (String) -> Void) -> Never {
        // A client that goes away must not kill us with SIGPIPE mid-reply.
        signal(SIGPIPE, SIG_IGN)
        if timeout == 0 {
            FD.writeAll(1, refusal + [13, 10])
            log("Session terminated: quitting")
            exit(0)
        }
        // One deadline for the whole session, as alarm(2) gives, covering blocked reads
        // and writes alike.
        signal(SIGALRM) { _ in _exit(0) }
        SignalSet([SIGALRM]).unblock()  // an inherited mask must not disarm the deadline
        alarm(timeout)
        guard case .success = FD.writeAll(1, reply("220 ")) else { exit(0) }
        let input = BufferedReader(fd: 0, capacity: 4096)
        var line: [UInt8] = []
        while true {
            line.removeAll(keepingCapacity: true)
            guard case .success(let more) = input.readLine(into: &line, limit: RblsmtpdSession.maxLine), more else { break }
            var overlong = false
            if line.last == 10 {
                line.removeLast()
            } else {
                // Cut at maxLine: drop the rest of this line, however long it is.
                overlong = true
                var sink: [UInt8] = []
                var complete = false
                while !complete {
                    sink.removeAll(keepingCapacity: true)
                    guard case .success(let more) = input.readLine(into: &sink, limit: 4096), more else {
                        log("Session terminated: quitting")
                        exit(0)
                    }
                    complete = sink.last == 10
                }
            }
            if line.last == 13 { line.removeLast() }
            let response = respond(to: line, overlong: overlong)
            if let text = response.log { log(text) }
            guard case .success = FD.writeAll(1, response.reply) else { break }
            if response.quit { exit(0) }
        }
        log("Session terminated: quitting")
        exit(0)
    }
}
