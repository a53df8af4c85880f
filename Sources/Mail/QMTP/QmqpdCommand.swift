// qmail-qmqpd: receive one message over QMQP (a netstring of netstrings on fd 0) and queue
// it for any recipient: meant only for trusted clients (tcpserver rules decide who).
import Core
import Glibc

public struct QmqpdCommand: Command {
    public static let name = "qmail-qmqpd"
    public static let installDirectory = InstallDirectory.sbin
    public static let summary = "receive mail via QMQP"

    public static func run(_ context: CommandContext) -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        alarm(3600)
        let env = context.environment
        let input = BufferedReader(fd: 0, capacity: 65536)
        var outerLeft = 0
        var inOuter = false
        // Inside the outer netstring every byte counts against its length; running past it
        // is a protocol violation (exit 100), as the reference's getbyte.
        var overrun = false
        var stream = NetstringStream(source: {
            if inOuter {
                guard outerLeft > 0 else { overrun = true; return nil }
                outerLeft -= 1
            }
            if case .success(let b?) = input.readByte() { return b }
            return nil
        })
        func fail() -> Int32 { overrun ? ExitCode.permanent : 0 }

        guard case .success(let total) = stream.length() else { return fail() }
        outerLeft = total
        inOuter = true
        guard case .success(var messageLength) = stream.length() else { return fail() }
        var submission: QueueSubmission
        switch QueueSubmission.start(environment: env) {
        case .success(let s): submission = s
        case .failure(let e): return context.diagnostics.fatal(ExitCode.temporary, "unable to start the queue: \(e)")
        }
        let header = NetworkReceived(program: "qmqpd", protocolName: "QMQP", environment: env, pid: getpid(),
                                     date: ReceivedHeader.date822(seconds: time(nil)))
        submission.write(header.bytes)
        var chunk: [UInt8] = []
        while messageLength > 0 {
            guard case .success(let b) = stream.byte() else { submission.abandon(); return fail() }
            messageLength -= 1
            chunk.append(b)
            if chunk.count >= 65536 { submission.write(chunk); chunk.removeAll(keepingCapacity: true) }
        }
        submission.write(chunk)
        guard case .success = stream.comma() else { submission.abandon(); return fail() }

        // Sender, then recipients until the outer netstring is used up; an address of
        // 1000 bytes or more, or one holding a NUL, spoils the whole message.
        var addressesOK = true
        var addresses: [[UInt8]] = []
        repeat {
            guard case .success(let n) = stream.length() else { submission.abandon(); return fail() }
            var bytes: [UInt8] = []
            if n >= 1000 {
                guard case .success = stream.skip(n) else { submission.abandon(); return fail() }
                addressesOK = false
            } else {
                guard case .success(let b) = stream.bytes(n) else { submission.abandon(); return fail() }
                bytes = b
                if b.contains(0) { addressesOK = false }
            }
            guard case .success = stream.comma() else { submission.abandon(); return fail() }
            addresses.append(bytes)
        } while outerLeft > 0
        inOuter = false
        guard case .success = stream.comma() else { submission.abandon(); return fail() }

        var result: String
        if !addressesOK {
            submission.abandon()
            result = "Dsorry, I can't accept addresses like that (#5.1.3)"
        } else {
            let sender = addresses.first ?? []
            let verdict = submission.finish(Envelope(sender: sender, recipients: Array(addresses.dropFirst())))
            if case .accepted(let qp) = verdict { result = "Kok \(time(nil)) qp \(qp)" } else { result = verdict.replyText }
        }
        _ = FD.writeAll(1, Netstring.encode(result))
        return 0
    }
}
