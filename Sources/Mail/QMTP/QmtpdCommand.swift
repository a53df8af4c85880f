// qmail-qmtpd: receive mail over QMTP (netstrings on fd 0, replies on fd 1) and queue it.
import Core
import Glibc

public struct QmtpdCommand: Command {
    public static let name = "qmail-qmtpd"
    public static let installDirectory = InstallDirectory.sbin
    public static let summary = "receive mail via QMTP"

    /// Why a recipient was refused: the reference's one-letter failure codes.
    enum RecipientFailure: Equatable {
        case tooLong, notAllowedHost, nul
        var reply: String {
            switch self {
            case .notAllowedHost: return "66:Dsorry, that domain isn't in my list of allowed rcpthosts (#5.7.1),"
            case .tooLong, .nul: return "46:Dsorry, I can't handle that recipient (#5.1.3),"
            }
        }
    }

    public static func run(_ context: CommandContext) -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        alarm(3600)
        let env = context.environment
        let diag = context.diagnostics
        let control = ControlFiles(paths: SuitePaths(environment: env))
        let rcpthosts: RcptHosts
        switch RcptHosts.load(control) {
        case .success(let r): rcpthosts = r
        case .failure(let e): return diag.fatal(ExitCode.temporary, "unable to read controls: \(e)")
        }
        var databytes = 0
        if let x = env["DATABYTES"] {
            databytes = Int(x.prefix { $0.isNumber }) ?? 0
        } else {
            switch control.integer("databytes", default: 0) {
            case .success(let n): databytes = max(0, n)
            case .failure(let e): return diag.fatal(ExitCode.temporary, "unable to read controls: \(e)")
            }
        }
        let relayClient = env.bytes("RELAYCLIENT")
        let input = BufferedReader(fd: 0, capacity: 65536)
        let output = BufferedWriter(fd: 1)
        var sawEOF = false
        var stream = NetstringStream(source: {
            switch input.readByte() {
            case .success(let b?): return b
            default: sawEOF = true; return nil
            }
        })

        while true {
            // A message starts: the peer may also simply hang up here.
            let length: Int
            switch stream.length() {
            case .success(let n): length = n
            case .failure: return sawEOF ? 0 : ExitCode.permanent
            }
            guard length > 0 else { return ExitCode.permanent }
            var submission: QueueSubmission
            switch QueueSubmission.start(environment: env) {
            case .success(let s): submission = s
            case .failure(let e): return diag.fatal(ExitCode.temporary, "unable to start the queue: \(e)")
            }
            var remaining = length
            guard case .success(let marker) = stream.byte() else { submission.abandon(); return 0 }
            remaining -= 1
            guard marker == 10 || marker == 13 else { submission.abandon(); return ExitCode.permanent }
            let dos = marker == 13
            let header = NetworkReceived(program: "qmtpd", protocolName: "QMTP", environment: env, pid: getpid(),
                                         date: ReceivedHeader.date822(seconds: time(nil)))
            submission.write(header.bytes)
            var failed = false
            var written = 0
            var chunk: [UInt8] = []
            chunk.reserveCapacity(65536)
            var pendingCR = false
            while remaining > 0 {
                guard case .success(let b) = stream.byte() else { submission.abandon(); return 0 }
                remaining -= 1
                if dos {
                    if pendingCR {
                        pendingCR = false
                        if b == 10 { chunk.append(10); continue }
                        chunk.append(13)
                    }
                    if b == 13 { pendingCR = true } else { chunk.append(b) }
                } else {
                    chunk.append(b)
                }
                if chunk.count >= 65536 {
                    written += chunk.count
                    submission.write(chunk)
                    chunk.removeAll(keepingCapacity: true)
                }
            }
            if pendingCR { chunk.append(13) }
            written += chunk.count
            submission.write(chunk)
            let tooBig = databytes > 0 && written > databytes
            guard case .success = stream.comma() else { submission.abandon(); return sawEOF ? 0 : ExitCode.permanent }

            // Sender.
            var senderOK = true
            var sender: [UInt8] = []
            switch stream.length() {
            case .failure: submission.abandon(); return sawEOF ? 0 : ExitCode.permanent
            case .success(let n) where n >= 1000:
                guard case .success = stream.skip(n) else { submission.abandon(); return 0 }
                senderOK = false
            case .success(let n):
                guard case .success(let bytes) = stream.bytes(n) else { submission.abandon(); return 0 }
                if bytes.contains(0) { senderOK = false } else { sender = bytes }
            }
            guard case .success = stream.comma() else { submission.abandon(); return sawEOF ? 0 : ExitCode.permanent }

            // Recipients: a netstring of netstrings.
            var failures: [RecipientFailure?] = []
            var recipients: [[UInt8]] = []
            var bigLength: Int
            switch stream.length() {
            case .failure: submission.abandon(); return sawEOF ? 0 : ExitCode.permanent
            case .success(let n): bigLength = n
            }
            while bigLength > 0 {
                var len = 0
                var digits = 0
                while true {
                    guard bigLength > 0 else { submission.abandon(); return ExitCode.permanent }
                    guard case .success(let ch) = stream.byte() else { submission.abandon(); return 0 }
                    bigLength -= 1
                    if ch == UInt8(ascii: ":") { break }
                    guard ch >= 48, ch <= 57 else { submission.abandon(); return ExitCode.permanent }
                    len = len * 10 + Int(ch - 48)
                    digits += 1
                    guard len <= Netstring.maximumLength else { submission.abandon(); return ExitCode.temporary }
                }
                guard digits > 0, len < bigLength else { submission.abandon(); return ExitCode.permanent }
                var failure: RecipientFailure? = nil
                var address: [UInt8] = []
                if len + (relayClient?.count ?? 0) >= 1000 {
                    guard case .success = stream.skip(len) else { submission.abandon(); return 0 }
                    failure = .tooLong
                } else {
                    guard case .success(let bytes) = stream.bytes(len) else { submission.abandon(); return 0 }
                    address = bytes
                }
                if failure == nil {
                    if address.contains(0) {
                        failure = .nul
                    } else if let relayClient {
                        recipients.append(address + relayClient)
                    } else {
                        switch rcpthosts.allows(address) {
                        case .failure(let e): submission.abandon(); return diag.fatal(ExitCode.temporary, "\(e)")
                        case .success(false): failure = .notAllowedHost
                        case .success(true): recipients.append(address)
                        }
                    }
                }
                failures.append(failure)
                guard case .success = stream.comma() else { submission.abandon(); return sawEOF ? 0 : ExitCode.permanent }
                bigLength -= len + 1
            }
            guard case .success = stream.comma() else { submission.abandon(); return sawEOF ? 0 : ExitCode.permanent }
            if recipients.isEmpty || !senderOK || tooBig { failed = true }

            var result: String
            if failed {
                submission.abandon()
                result = "Zqq write error or disk full (#4.3.0)"
            } else {
                let verdict = submission.finish(Envelope(sender: sender, recipients: recipients))
                if case .accepted(let qp) = verdict {
                    result = "Kok \(time(nil)) qp \(qp)"
                } else {
                    result = verdict.replyText
                }
            }
            if !senderOK { result = "Dunacceptable sender (#5.1.7)" }
            if tooBig { result = "Dsorry, that message size exceeds my databytes limit (#5.3.4)" }
            let accepted = Netstring.encode(result)
            for failure in failures {
                if let failure { _ = output.write(failure.reply) } else { _ = output.write(accepted) }
            }
            if case .failure = output.flush() { return 0 }
        }
    }
}
