// qmail-remote's pure parts: reply parsing (with a fuzz pass), report texts, routes, the
// tcpto table and MX ordering.
import Core
import Mail
import Testing

@Suite("qmail-remote parts") struct RemotePartsTests {
    @Test func singleAndMultiLineReplies() {
        let (replies, used) = SMTPReplyParser.parseAll(Array("220 hi\r\n250-one\r\n250-SIZE 100\r\n250 AUTH=LOGIN PLAIN\r\n354".utf8))
        #expect(used == 53)
        #expect(replies.count == 2)
        #expect(replies[0] == SMTPReply(code: 220, text: Array("220 hi\n".utf8)))
        #expect(replies[1].code == 250)
        #expect(replies[1].text == Array("250-one\n250-SIZE 100\n250 AUTH=LOGIN PLAIN\n".utf8))
        #expect(replies[1].announces("size"))
        #expect(replies[1].authMechanisms == ["LOGIN", "PLAIN"])
        #expect(!replies[1].announces("STARTTLS"))
    }

    @Test func malformedRepliesCountAs400() {
        for bad in ["250ok\n", "099 low\n", "abc def\n", "250\n", "250-a\n250+b\n"] {
            let (replies, _) = SMTPReplyParser.parseAll(Array(bad.utf8))
            #expect(replies.first?.code == 400, "\(bad)")
        }
    }

    @Test func replyParserNeverTrapsOnNoise() {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        for _ in 0..<2000 {
            var bytes: [UInt8] = []
            for _ in 0..<Int(state % 300) {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                let pick = UInt8(truncatingIfNeeded: state >> 33)
                bytes.append([10, 13, 45, 32, 50, 53, 48, pick][Int(pick % 8)])
            }
            let (replies, used) = SMTPReplyParser.parseAll(bytes)
            #expect(used <= bytes.count)
            for r in replies { #expect(r.text.count <= SMTPReply.textLimit) }
        }
    }

    /// Random route lines, report streams and tcpto tables: parsers answer, never trap.
    @Test func parsersNeverTrapOnNoise() throws {
        var state: UInt64 = 0x2545_F491_4F6C_DD1D
        func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state >> 33
        }
        let alphabet = Array(":. /=,\\0123456789abz!@-[]\u{0}KZDrhs".utf8)
        for _ in 0..<3000 {
            let count = Int(next() % 60)
            let bytes = (0..<count).map { _ in alphabet[Int(next() % UInt64(alphabet.count))] }
            let text = String(decoding: bytes, as: UTF8.self)
            let route = RemoteRoute.parse(text, transport: .smtp)
            #expect(route.port > 0 && route.port < 65536)
            _ = RouteSources(smtp: RouteTable(lines: [text]), qmtp: RouteTable(lines: [])).route(host: text, senderIsNull: next() % 2 == 0)
            _ = RemoteSpawnReport.text(.exited(0), output: bytes)
            var env = Environment()
            EnvironmentAssignments.apply(text, to: &env)
            let raw = (0..<Int(next() % 2100)).map { _ in UInt8(truncatingIfNeeded: next()) }
            var table = TCPTimeoutTable(bytes: raw)
            _ = table.entries
            let ip = try #require(IPAddress("10.1.2.\(next() % 256)"))
            _ = table.shouldSkip(ip, now: UInt32(truncatingIfNeeded: next()), penalty: Int(next() % 7200) - 100, spread: 0)
            table.record(ip, failed: next() % 3 != 0, now: UInt32(truncatingIfNeeded: next()), tolerance: Int(next() % 300))
            #expect(table.bytes.count == raw.count - raw.count % 32 || raw.count > 2048)
        }
    }

    @Test func reportTexts() {
        let quit = RemoteReport.quit(.failure, prefix: "Connected to ", host: "192.0.2.1", [" but sender was rejected"],
                                     reply: Array("553 no\u{0}pe\n".utf8))
        #expect(quit.encoded == Array("DConnected to 192.0.2.1 but sender was rejected.\nRemote host said: 553 no?pe\n\u{0}".utf8))
        let rcpt = RemoteReport.recipient(code: 250, sender: Array("a b@x".utf8), recipient: Array("c@y".utf8), host: "h", reply: [])
        #expect(rcpt.encoded == Array("rFrom: <a?b@x> RCPT: <c@y> \u{0}".utf8))
        let none = RemoteReport.noConnection(protocolName: "SMTP", host: Array("x.test".utf8), tried: [], port: 25, bindIP: "")
        #expect(none.text == Array("Sorry, I wasn't able to establish a SMTP connection for x.test. (#4.4.1)\n".utf8))
        let dropped = RemoteReport.dropped(host: "h", critical: true, inGreeting: false, tcptoInterval: 120, tlsError: nil)
        #expect(dropped.text == Array("Connected to h but connection died. Possible duplicate! (#4.4.2)\n".utf8))
    }

    @Test func spawnReportConversion() {
        func convert(_ s: String, crashed: Bool = false, exit: Int32 = 0) -> String {
            String(decoding: RemoteSpawnReport.text(crashed ? .signaled(11, coreDumped: false) : .exited(exit), output: Array(s.utf8)), as: UTF8.self)
        }
        #expect(convert("rFrom: <a> RCPT: <b> \0K1.2.3.4 accepted message.\nok\n\0") == "KFrom: <a> RCPT: <b> 1.2.3.4 accepted message.\nok\n")
        #expect(convert("hFrom: x does not like recipient.\n\0DGiving up on 1.2.3.4.\n\0") == "DFrom: x does not like recipient.\nGiving up on 1.2.3.4.\n")
        #expect(convert("sFrom: x later.\n\0DGiving up.\n\0") == "ZFrom: x later.\nGiving up.\n")
        #expect(convert("ZConnected to 1.2.3.4 but sender was rejected.\n\0") == "ZConnected to 1.2.3.4 but sender was rejected.\n")
        #expect(convert("") == "Zqmail-remote produced no output.\n")
        #expect(convert("K", exit: 111) == "ZUnable to run qmail-remote.\n")
        #expect(convert("K", exit: 100) == "DUnable to run qmail-remote.\n")
        #expect(convert("K", crashed: true) == "Zqmail-remote crashed.\n")
        #expect(convert("rno terminator") == "D")
        #expect(convert("\0\0\0") == "D")
    }

    @Test func xtextAndQuoting() {
        #expect(smtpXtext(Array("a+b=c d".utf8)) == Array("a+2Bb+3Dc+3Fd".utf8))
        #expect(smtpQuotedAddress(Array("joe@x".utf8)) == Array("joe@x".utf8))
        #expect(smtpQuotedAddress(Array("j.o.e@x".utf8)) == Array("j.o.e@x".utf8))
        #expect(smtpQuotedAddress(Array("j..oe@x".utf8)) == Array("\"j..oe\"@x".utf8))
        #expect(smtpQuotedAddress(Array("a\"b c@x".utf8)) == Array("\"a\\\"b c\"@x".utf8))
        #expect(smtpQuotedAddress([]) == [])
    }

    @Test func routeForms() {
        let r = RemoteRoute.parse("relay.test:587:0:30 user pass A=1,B=2", transport: .smtp)
        #expect(r.relay == "relay.test")
        #expect(r.port == 587)
        #expect(r.penalty == 0)
        #expect(r.tolerance == 30)
        #expect(r.user == Array("user".utf8))
        #expect(r.password == Array("pass".utf8))
        #expect(r.environment == "A=1,B=2")
        #expect(RemoteRoute.parse("[10.0.0.1]", transport: .qmtp).port == 209)
        #expect(RemoteRoute.parse("relay:465", transport: .smtp).implicitTLS)
        #expect(RemoteRoute.parse("relay /s", transport: .smtp).credentialKey == "/s")
        #expect(RemoteRoute.parse("relay:99999", transport: .smtp).port == 25)
    }

    @Test func routeLookupOrder() {
        let smtp = RouteTable(lines: ["a.example.com:exact", ".example.com:suffix", ":default", "!@:bounces", "skip.example.com:"])
        let sources = RouteSources(smtp: smtp, qmtp: RouteTable(lines: ["q.example.com:qmtp.relay"]))
        #expect(sources.route(host: "A.Example.COM", senderIsNull: false)?.relay == "exact")
        #expect(sources.route(host: "b.example.com", senderIsNull: false)?.relay == "suffix")
        #expect(sources.route(host: "other.org", senderIsNull: false)?.relay == "default")
        #expect(sources.route(host: "other.org", senderIsNull: true)?.relay == "bounces")
        #expect(sources.route(host: "skip.example.com", senderIsNull: false) == nil)
        #expect(sources.route(host: "q.example.com", senderIsNull: false)?.transport == .qmtp)
        #expect(RouteTable.candidates(for: "a.b.c") == ["a.b.c", ".b.c", ".c", ""])
    }

    @Test func environmentAssignments() {
        var env = Environment([("GONE", "x"), ("KEEP", "k")])
        EnvironmentAssignments.apply("A=1, B=x\\,y,GONE=,=bad,noequals", to: &env)
        #expect(env["A"] == "1")
        #expect(env["B"] == "x,y")
        #expect(env["GONE"] == nil)
        #expect(env["KEEP"] == "k")
        #expect(RemoteRoute.credentials("u p").user == Array("u".utf8))
        #expect(RemoteRoute.credentials("u").user == nil)
    }

    @Test func timeoutTableRecords() throws {
        var table = TCPTimeoutTable(bytes: [UInt8](repeating: 0, count: 2048))
        let ip = try #require(IPAddress("192.0.2.7"))
        let v6 = try #require(IPAddress("2001:db8::1"))
        #expect(table.record(ip, failed: true, now: 1000, tolerance: 120) == 0)
        #expect(table.record(ip, failed: true, now: 1050, tolerance: 120) == nil)  // within tolerance
        #expect(table.record(ip, failed: true, now: 1200, tolerance: 120) == 0)
        #expect(Array(table.bytes[0..<12]) == [2, 0, 0, 0, 2, 0, 0, 0, 0xB0, 0x04, 0, 0])
        #expect(table.shouldSkip(ip, now: 1300, penalty: 3600, spread: 0))
        #expect(!table.shouldSkip(ip, now: 1200 + 3600, penalty: 3600, spread: 0))
        #expect(!table.shouldSkip(ip, now: 1300, penalty: 0, spread: 0))
        #expect(table.record(v6, failed: true, now: 5, tolerance: 120) == 1)
        #expect(table.entries.map(\.address) == [ip, v6])
        #expect(table.bytes[32] == 10)
        table.record(ip, failed: false, now: 2000, tolerance: 120)
        #expect(table.entries.map(\.address) == [v6])
        #expect(TCPTimeoutTable.spread(pid: 0) == 240)
        #expect(TCPTimeoutTable.spread(pid: 31) == 2224)
    }

    @Test func fullTableReplacesOldest() throws {
        var table = TCPTimeoutTable(bytes: [UInt8](repeating: 0, count: 2048))
        for i in 0..<64 {
            table.record(try #require(IPAddress("10.0.0.\(i)")), failed: true, now: UInt32(10_000 + i), tolerance: 0)
        }
        let r = table.record(try #require(IPAddress("10.0.1.1")), failed: true, now: 20_000, tolerance: 0)
        #expect(r == 0)
        #expect(table.entries.count == 64)
        #expect(TCPTimeoutTable(bytes: [1, 2, 3]).entries.isEmpty)
    }

    @Test func mxOrdering() throws {
        let a = RemoteTarget(address: try #require(IPAddress("192.0.2.1")), preference: 20, name: "a")
        let b = RemoteTarget(address: try #require(IPAddress("192.0.2.2")), preference: 10, name: "b")
        let c = RemoteTarget(address: try #require(IPAddress("192.0.2.3")), preference: 10, name: "c")
        var firsts = Set<String>()
        for seed in 0..<64 as Range<UInt64> {
            let ordered = RemoteHosts.ordered([a, b, c], random: seed * 7919)
            #expect(ordered.last == a)
            firsts.insert(ordered[0].name)
        }
        #expect(firsts == ["b", "c"])  // equal preferences are shuffled
        #expect(RemoteHosts.literal("[192.0.2.9]") == IPAddress("192.0.2.9"))
        #expect(RemoteHosts.literal("[IPv6:2001:db8::2]") == IPAddress("2001:db8::2"))
        #expect(RemoteHosts.literal("mx.example") == nil)
    }
}
