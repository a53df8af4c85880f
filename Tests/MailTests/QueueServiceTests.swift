// qmail-queued's wire format: requests round-trip, replies parse strictly, and arbitrary
// bytes from a client end in a clear failure, never a trap or a hang.
import Core
import Glibc
@testable import Mail
import Testing

@Suite("qmail-queued wire format")
struct QueueServiceTests {
    /// Feeds `bytes` through a pipe (closed after) and reads one request from it.
    func read(_ bytes: [UInt8], seconds: Double = 5) -> Result<QueueService.Request, QueueService.RequestError> {
        guard case .success(let p) = FD.pipe() else { return .failure(.readFailed("no pipe")) }
        // A writer thread would be needed above the pipe's capacity; keep inputs below it.
        precondition(bytes.count < 60_000)
        FD.writeAll(p.write, bytes)
        close(p.write)
        defer { close(p.read) }
        return QueueService.readRequest(p.read, deadline: MonotonicClock.now() + seconds)
    }

    @Test("a request round-trips: environment entries, message and envelope as sent")
    func roundTrip() throws {
        let env = Environment([("QUEUEDIR", "/var/q/queue1"), ("QQEH", "X-A: b\n"), ("EMPTY", "")])
        let request = QueueService.Request(environment: env, message: Array("Subject: x\n\nbody\n".utf8),
                                           envelope: Array("Fa@b\0Tc@d\0\0".utf8))
        let back = try read(request.bytes).get()
        #expect(back == request)
        #expect(back.environment["QQEH"] == "X-A: b\n" && back.environment["EMPTY"] == "")
    }

    @Test("environment entries without a name or '=' are dropped, as exec would never pass them")
    func environmentDecoding() {
        let env = QueueService.environment(Array("A=1\0=x\0noequals\0B=2=3\0C=".utf8))
        #expect(env.entries == [Array("A=1".utf8), Array("B=2=3".utf8)])
    }

    @Test("replies: code and pid, nothing else", arguments: [
        ("0 123", true), ("79 4", true), ("255 1", true), ("256 1", false), ("0", false), ("0 1 2", false),
        (" 0 1", false), ("0 -1", false), ("x 1", false), ("0 99999999999", false), ("", false),
    ])
    func replies(_ text: String, _ valid: Bool) {
        let parsed = QueueService.parseReply(Array(text.utf8))
        #expect((parsed != nil) == valid, "\(text)")
        if valid, let parsed {
            #expect(QueueService.reply(code: parsed.code, pid: parsed.pid) == Netstring.encode(text))
        }
    }

    @Test("limits: an oversized part is refused before it is read")
    func limits() {
        let big = Array("0:,\(QueueService.maximumMessage + 1):".utf8)
        #expect(read(big) == .failure(.tooLarge("message")))
        let env = Array("\(QueueService.maximumEnvironment + 1):".utf8)
        #expect(read(env) == .failure(.tooLarge("environment")))
    }

    @Test("truncated and malformed requests fail with a reason")
    func malformed() {
        #expect(read([]) == .failure(.framing(.truncated)))
        #expect(read(Array("3:abc,".utf8)) == .failure(.framing(.truncated)))
        #expect(read(Array("3:abcd".utf8)) == .failure(.framing(.missingComma)))
        #expect(read(Array("x:".utf8)) == .failure(.framing(.badLength)))
        #expect(read(Array(":,".utf8)) == .failure(.framing(.badLength)))
    }

    @Test("a client that stops mid-request runs into the deadline")
    func deadline() {
        guard case .success(let p) = FD.pipe() else { Issue.record("no pipe"); return }
        defer { close(p.read); close(p.write) }
        FD.writeAll(p.write, Array("5:ab".utf8))
        #expect(QueueService.readRequest(p.read, deadline: MonotonicClock.now() + 0.2) == .failure(.timeout))
    }

    @Test("fuzz: random and mutated requests never trap")
    func fuzz() {
        var rng = SystemRandomNumberGenerator()
        let valid = QueueService.Request(environment: Environment([("A", "1")]), message: Array("m\n".utf8),
                                         envelope: Array("Fa\0Tb\0\0".utf8)).bytes
        for round in 0..<400 {
            var bytes: [UInt8]
            if round % 2 == 0 {
                bytes = (0..<Int.random(in: 0...64, using: &rng)).map { _ in
                    Bool.random(using: &rng) ? UInt8.random(in: 48...58, using: &rng) : UInt8.random(in: 0...255, using: &rng)
                }
            } else {
                bytes = valid
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    let i = Int.random(in: 0..<bytes.count, using: &rng)
                    bytes[i] = UInt8.random(in: 0...255, using: &rng)
                }
                if Bool.random(using: &rng) { bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &rng))) }
            }
            if case .success(let r) = read(bytes, seconds: 1) {
                #expect(r.bytes.count <= bytes.count)
            }
        }
    }
}
