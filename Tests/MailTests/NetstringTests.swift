// Netstrings, the QMQP request/verdict of qmail-qmqpc, rcpthosts and the Received line of the
// QMTP/QMQP front ends: pure values, fuzzed where they parse peer input.
import Core
@testable import Mail
import Testing

@Suite struct NetstringTests {
    @Test func encodesAndParsesBack() throws {
        let pieces: [[UInt8]] = [[], Array("hello".utf8), [0, 44, 58, 255], Array(repeating: 65, count: 1000)]
        var all: [UInt8] = []
        for p in pieces { all += Netstring.encode(p) }
        #expect(Netstring.encode("abc") == Array("3:abc,".utf8))
        #expect(Netstring.encode("") == Array("0:,".utf8))
        let parsed = try Netstring.parseAll(all).get()
        #expect(parsed == pieces)
    }

    @Test(arguments: [
        ("", NetstringError?.none),
        ("3:abc", NetstringError.truncated),
        ("3:abcd", NetstringError.missingComma),
        (":abc,", NetstringError.badLength),
        ("x:abc,", NetstringError.badLength),
        ("4:abc,", NetstringError.truncated),
        ("999999999999:a,", NetstringError.tooLong),
        ("3", NetstringError.truncated),
    ])
    func refusesMalformedInput(input: String, expected: NetstringError?) {
        let result = Netstring.parseAll(Array(input.utf8))
        switch result {
        case .success(let v): #expect(expected == nil && v.isEmpty)
        case .failure(let e): #expect(e == expected)
        }
    }

    @Test func randomInputNeverTraps() {
        var generator = SystemRandomNumberGenerator()
        let alphabet: [UInt8] = Array("0123456789:,ab".utf8) + [0, 255]
        for _ in 0..<3000 {
            let count = Int.random(in: 0...40, using: &generator)
            let bytes = (0..<count).map { _ in alphabet.randomElement(using: &generator) ?? 0 }
            _ = Netstring.parseAll(bytes)
            var index = 0
            var stream = NetstringStream(source: {
                guard index < bytes.count else { return nil }
                defer { index += 1 }
                return bytes[index]
            })
            if case .success(let n) = stream.length() { _ = stream.bytes(min(n, 100)); _ = stream.comma() }
        }
    }

    @Test func streamReadsPieceByPiece() throws {
        let bytes = Array("5:hello,12:".utf8)
        var index = 0
        var stream = NetstringStream(source: {
            guard index < bytes.count else { return nil }
            defer { index += 1 }
            return bytes[index]
        })
        #expect(try stream.length().get() == 5)
        #expect(try stream.bytes(5).get() == Array("hello".utf8))
        #expect(throws: Never.self) { try stream.comma().get() }
        #expect(try stream.length().get() == 12)
        #expect(stream.bytes(1) == .failure(.truncated))
    }

    @Test func qmqpRequestFromQueueEnvelope() throws {
        let envelope = Array("Fa@b.c\0Tx@y.z\0Tq@r.s\0\0".utf8)
        let request = try QmqpcCommand.request(message: Array("Subject: x\n\nhi\n".utf8), envelope: envelope).get()
        let outer = try Netstring.parseAll(request).get()
        #expect(outer.count == 1)
        let inner = try Netstring.parseAll(outer[0]).get().map { String(decoding: $0, as: UTF8.self) }
        #expect(inner == ["Subject: x\n\nhi\n", "a@b.c", "x@y.z", "q@r.s"])
    }

    @Test(arguments: ["", "Xa@b\0\0", "Fa@b\0Xq\0\0", "Fa@b\0Tq\0"])
    func qmqpRequestRefusesBadEnvelopes(envelope: String) {
        let result = QmqpcCommand.request(message: [], envelope: Array(envelope.utf8))
        #expect(result == .failure(QueueExitCode(79)))
    }

    @Test func qmqpVerdicts() {
        #expect(QmqpcCommand.verdict(Array("23:Kok 123 qp 4,".utf8)) == 0)
        #expect(QmqpcCommand.verdict(Array("5:Zbusy,".utf8)) == 71)
        #expect(QmqpcCommand.verdict(Array("5:Dnope,".utf8)) == 31)
        #expect(QmqpcCommand.verdict(Array("12:".utf8)) == nil)
    }

    @Test func rcpthostsRules() throws {
        let hosts = RcptHosts(hosts: ["example.org", ".example.net"])
        #expect(try hosts.allows(Array("a@example.org".utf8)).get())
        #expect(try hosts.allows(Array("a@EXAMPLE.ORG".utf8)).get())
        #expect(try hosts.allows(Array("a@mx.example.net".utf8)).get())
        #expect(try !hosts.allows(Array("a@example.net".utf8)).get())
        #expect(try !hosts.allows(Array("a@other.com".utf8)).get())
        #expect(try hosts.allows(Array("postmaster".utf8)).get())
        #expect(try RcptHosts(hosts: nil).allows(Array("a@any.where".utf8)).get())
    }

    @Test func receivedLineForQMTP() {
        var env = Environment()
        env["TCPREMOTEIP"] = "192.0.2.7"
        env["TCPREMOTEHOST"] = "client.example"
        env["TCPLOCALHOST"] = "mx.example"
        let line = NetworkReceived(program: "qmtpd", protocolName: "QMTP", environment: env, pid: 42, date: "1 Jan 2026 00:00:00 +0000\n")
        #expect(String(decoding: line.bytes, as: UTF8.self)
                == "Received: indimail-mta qmtpd 42 from client.example (192.0.2.7)\n  by mx.example with QMTP; 1 Jan 2026 00:00:00 +0000\n")
        env["HIDE_HOST"] = "1"
        let hidden = NetworkReceived(program: "qmtpd", protocolName: "QMTP", environment: env, pid: 42, date: "D\n")
        #expect(String(decoding: hidden.bytes, as: UTF8.self) == "Received: indimail-mta qmtpd 42 with QMTP; D\n")
    }
}
