// DNS packets: addresses and names in their text forms, messages built and parsed back,
// compression pointers, and the malformed packets a hostile server could send.
import Core
import Testing

@Suite("IP address text forms")
struct IPAddressTests {
    @Test func ipv4() throws {
        let ip = try #require(IPAddress("1.2.3.4"))
        #expect(ip.bytes == [1, 2, 3, 4])
        #expect(ip.description == "1.2.3.4")
        #expect(IPAddress("001.002.003.004")?.description == "1.2.3.4")
        for bad in ["1.2.3", "1.2.3.4.", "256.1.1.1", "1.2.3.4 ", "", "1..2.3", "1.2.3.1234", "a.b.c.d"] {
            #expect(IPAddress(bad) == nil, "\(bad)")
        }
    }

    @Test func ipv6Compact() {
        let cases: [(String, String)] = [
            ("::", "::"), ("::1", "::1"), ("1::", "1::"), ("2001:db8::1", "2001:db8::1"),
            ("fe80:0:0:0:a:b:cd:1234", "fe80::a:b:cd:1234"),
            ("2001:DB8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),  // the first run, not the longest
            ("1:0:2:0:0:0:0:3", "1:0:2::3"),
            ("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"),
            ("1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7"),
            ("::ffff:1.2.3.4", "::ffff:1.2.3.4"),
            ("::ffff:0102:0304", "::ffff:1.2.3.4"),
            ("64:ff9b::192.0.2.33", "64:ff9b::c000:221"),
        ]
        for (input, printed) in cases {
            #expect(IPAddress(input)?.description == printed, "\(input)")
        }
        for bad in [":", ":::", "1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", "1:2:3:4:5:6:7", ":1::", "1::2:", "g::1",
                    "::1.2.3", "1:2:3:4:5:6:7:1.2.3.4", "[::1]"] {
            #expect(IPAddress(bad) == nil, "\(bad)")
        }
    }

    @Test func expandedAndReversed() throws {
        let ip = try #require(IPAddress("2001:db8::1"))
        #expect(ip.expanded == "2001:0db8:0000:0000:0000:0000:0000:0001")
        #expect(ip.reversedLabels == "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2")
        #expect(IPAddress("fe80::1")?.reversedLabels == "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.e.f")
        #expect(IPAddress("1.2.3.4")?.reversedLabels == "4.3.2.1")
        #expect(IPAddress("::ffff:1.2.3.4")?.reversedLabels == "4.3.2.1")
        #expect(IPAddress("1.2.3.4")?.v4Mapped.description == "::ffff:1.2.3.4")
        #expect(IPAddress("::ffff:1.2.3.4")?.unmapped == IPAddress("1.2.3.4"))
        #expect(DNSResolver.reverseName(IPAddress("10.0.0.1")!).description == "1.0.0.10.in-addr.arpa")
        #expect(DNSResolver.reverseName(IPAddress("::1")!).description.hasSuffix(".0.ip6.arpa"))
    }
}

@Suite("domain names")
struct DNSNameTests {
    @Test func parsing() throws {
        let n = try #require(DNSName("www.Example.COM."))
        #expect(n.labels.count == 3)
        #expect(n.description == "www.example.com")
        #expect(n == DNSName("WWW.example.com"))
        #expect(n.hashValue == DNSName("WWW.EXAMPLE.COM")!.hashValue)
        #expect(DNSName("a..b") == DNSName("a.b"))
        #expect(DNSName("")?.isRoot == true)
        #expect(DNSName(".")?.description == ".")
        #expect(DNSName("a\\.b.c")?.labels == [Array("a.b".utf8), Array("c".utf8)])
        #expect(DNSName("a\\046b")?.labels == [Array("a.b".utf8)])
        #expect(DNSName("a\\046b")?.description == "a\\056b")  // djbdns prints octal
        #expect(DNSName("x\\") == nil)
        #expect(DNSName("x\\25") == nil)
        #expect(DNSName("x\\999") == nil)
        #expect(DNSName(String(repeating: "a", count: 63)) != nil)
        #expect(DNSName(String(repeating: "a", count: 64)) == nil)
        let long = Array(repeating: String(repeating: "b", count: 63), count: 4).joined(separator: ".")
        #expect(DNSName(long) == nil)  // 4 * 64 + 1 = 257 bytes
        let fits = Array(repeating: String(repeating: "b", count: 63), count: 3).joined(separator: ".") + "." + String(repeating: "c", count: 61)
        #expect(DNSName(fits)?.wireLength == 255)
    }

    @Test func escapesInDescription() {
        let n = DNSName(labels: [[0, 32, 65, 0xff, UInt8(ascii: "_"), UInt8(ascii: "-")]])!
        #expect(n.description == "\\000\\040a\\377_-")
    }
}

@Suite("DNS messages")
struct DNSMessageTests {
    static func name(_ s: String) -> DNSName { DNSName(s)! }

    static func sample(id: UInt16 = 0x1234) -> DNSMessage {
        var m = DNSMessage(id: id)
        m.isResponse = true
        m.recursionDesired = true
        m.recursionAvailable = true
        m.authoritative = true
        m.questions = [DNSQuestion(name("www.example.com"), .a)]
        m.answers = [
            DNSRecord(name: name("www.example.com"), ttl: 300, .cname(name("host.example.com"))),
            DNSRecord(name: name("host.example.com"), ttl: 60, .a(IPAddress("192.0.2.1")!)),
            DNSRecord(name: name("host.example.com"), ttl: 60, .aaaa(IPAddress("2001:db8::1")!)),
        ]
        m.authority = [DNSRecord(name: name("example.com"), ttl: 1, .ns(name("ns.example.com")))]
        m.additional = [
            DNSRecord(name: name("example.com"), .mx(preference: 10, exchange: name("mail.example.com"))),
            DNSRecord(name: name("example.com"), .txt([Array("v=spf1 -all".utf8), [], [0, 255]])),
            DNSRecord(name: name("1.2.0.192.in-addr.arpa"), .ptr(name("host.example.com"))),
            DNSRecord(name: name("example.com"), type: .soa, ttl: 5, data: .other([1, 2, 3])),
            DNSRecord(name: name("example.com"), type: .a, dnsClass: DNSClass(rawValue: 3), data: .other([9])),
        ]
        return m
    }

    @Test func roundTrip() throws {
        let m = Self.sample()
        for compress in [true, false] {
            let bytes = try m.encode(compress: compress).get()
            let back = try DNSMessage.decode(bytes).get()
            #expect(back == m)
        }
        #expect(try m.encode(compress: true).get().count < m.encode(compress: false).get().count)
    }

    @Test func queryShape() throws {
        let q = DNSMessage.query(id: 0xbeef, DNSQuestion(Self.name("a.b"), .txt))
        let bytes = try q.encode().get()
        // id, flags with RD only, one question, no records.
        #expect(Array(bytes[0..<12]) == [0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0])
        #expect(Array(bytes[12...]) == [1, 97, 1, 98, 0, 0, 16, 0, 1])
    }

    @Test func compressionPointers() throws {
        // Question name at 12, an answer owner pointing at it, and data pointing into the middle.
        var packet: [UInt8] = [0, 1, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0]
        packet += [3] + Array("www".utf8) + [7] + Array("example".utf8) + [3] + Array("com".utf8) + [0, 0, 5, 0, 1]
        // answer 1: owner -> 12, CNAME data "mail" + pointer to "example.com" (offset 16)
        packet += [0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 10, 0, 7, 4] + Array("mail".utf8) + [0xc0, 16]
        // answer 2: owner is a pointer to the CNAME target (offset of "mail" label)
        let mailOffset = packet.count - 7
        packet += [0xc0, UInt8(mailOffset), 0, 1, 0, 1, 0, 0, 0, 10, 0, 4, 10, 0, 0, 1]
        let m = try DNSMessage.decode(packet).get()
        #expect(m.questions.first?.name.description == "www.example.com")
        #expect(m.answers.count == 2)
        #expect(m.answers[0].data == .cname(Self.name("mail.example.com")))
        #expect(m.answers[1].name.description == "mail.example.com")
        #expect(m.answers[1].data == .a(IPAddress("10.0.0.1")!))
        #expect(DNSAnswer.extract(m, for: DNSQuestion(Self.name("WWW.example.com"), .a)) == .records([m.answers[1]]))
    }

    @Test func malformedPackets() {
        let header: [UInt8] = [0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0]
        let cases: [(String, [UInt8], DNSPacketError)] = [
            ("empty", [], .truncated),
            ("short header", Array(header[0..<11]), .truncated),
            ("question missing", header, .truncated),
            ("self pointer", header + [0xc0, 12, 0, 1, 0, 1], .pointerLoop),
            ("pointer pair loop", header + [0xc0, 14, 0xc0, 12, 0, 1, 0, 1], .pointerLoop),
            ("label then loop", header + [1, 97, 0xc0, 12], .nameTooLong),
            ("pointer past end", header + [0xc0, 0xff], .badPointer),
            ("pointer cut", header + [0xc0], .truncated),
            ("label past end", header + [5, 97, 98], .truncated),
            ("reserved label type", header + [0x40, 0], .badLabel),
            ("reserved label type 10", header + [0x80, 0], .badLabel),
            ("no type", header + [0, 0], .truncated),
        ]
        for (what, packet, expected) in cases {
            #expect(DNSMessage.decode(packet) == .failure(expected), "\(what)")
        }
        // Records whose data does not fit their type.
        let question: [UInt8] = [0, 0, 1, 0, 1]
        func answer(type: UInt8, data: [UInt8], length: Int? = nil) -> [UInt8] {
            var h = header
            h[7] = 1
            let n = length ?? data.count
            return h + question + [0, 0, type, 0, 1, 0, 0, 0, 0, UInt8(n >> 8), UInt8(n & 0xff)] + data
        }
        #expect(DNSMessage.decode(answer(type: 1, data: [1, 2, 3])) == .failure(.badRecordData(.a)))
        #expect(DNSMessage.decode(answer(type: 28, data: [1, 2, 3, 4])) == .failure(.badRecordData(.aaaa)))
        #expect(DNSMessage.decode(answer(type: 16, data: [5, 97])) == .failure(.badRecordData(.txt)))
        #expect(DNSMessage.decode(answer(type: 5, data: [0, 0])) == .failure(.badRecordData(.cname)))
        #expect(DNSMessage.decode(answer(type: 15, data: [0, 1])) == .failure(.badRecordData(.mx)))
        #expect(DNSMessage.decode(answer(type: 1, data: [1, 2, 3, 4], length: 9)) == .failure(.truncated))
        // Name data that runs past its record's length.
        #expect(DNSMessage.decode(answer(type: 12, data: [3, 97, 98, 99, 0], length: 3)) != .success(DNSMessage(id: 1)))
        // Counts larger than the packet.
        var lying = header
        lying[6] = 0xff; lying[7] = 0xff
        #expect(DNSMessage.decode(lying + question) == .failure(.truncated))
    }

    @Test func cnameLoopsAndChains() {
        var m = DNSMessage(id: 1)
        m.isResponse = true
        m.recursionAvailable = true
        m.answers = [
            DNSRecord(name: Self.name("a"), .cname(Self.name("b"))),
            DNSRecord(name: Self.name("b"), .cname(Self.name("a"))),
        ]
        if case .broken = DNSAnswer.extract(m, for: DNSQuestion(Self.name("a"), .a)) {} else { Issue.record("loop not caught") }
        m.answers = [DNSRecord(name: Self.name("a"), .cname(Self.name("b")))]
        #expect(DNSAnswer.extract(m, for: DNSQuestion(Self.name("a"), .a)) == .noData)
        m.recursionAvailable = false
        #expect(DNSAnswer.extract(m, for: DNSQuestion(Self.name("a"), .a)) == .alias(Self.name("b")))
        m.responseCode = .nameError
        #expect(DNSAnswer.extract(m, for: DNSQuestion(Self.name("a"), .a)) == .nameNotFound)
        // Asking for the CNAME itself returns it rather than following it.
        m.responseCode = .noError
        #expect(DNSAnswer.extract(m, for: DNSQuestion(Self.name("a"), .cname)) == .records(m.answers))
        #expect(DNSAnswer.extract(m, for: DNSQuestion(Self.name("a"), .any)) == .records(m.answers))
        // A long chain is cut.
        m.answers = (0..<40).map { DNSRecord(name: Self.name("n\($0)"), .cname(Self.name("n\($0 + 1)"))) }
        if case .broken = DNSAnswer.extract(m, for: DNSQuestion(Self.name("n0"), .a)) {} else { Issue.record("chain not cut") }
    }
}

@Suite("name server configuration")
struct DNSServersTests {
    @Test func parsingEntries() {
        #expect(DNSServer.parse("1.2.3.4") == DNSServer(IPAddress("1.2.3.4")!))
        #expect(DNSServer.parse("1.2.3.4:5353") == DNSServer(IPAddress("1.2.3.4")!, port: 5353))
        #expect(DNSServer.parse("::1") == DNSServer(IPAddress("::1")!))
        #expect(DNSServer.parse("[::1]:5353") == DNSServer(IPAddress("::1")!, port: 5353))
        #expect(DNSServer.parse("[::1]") == DNSServer(IPAddress("::1")!))
        #expect(DNSServer.parse("fe80::1%lo")?.scopeID != 0)
        #expect(DNSServer.parse("fe80::1%7")?.scopeID == 7)
        for bad in ["fe80::1%nosuchif0", "1.2.3.4:0", "1.2.3.4:70000", "1.2.3.4:", "[::1", "[::1]x", "host", "1.2.3.4%lo"] {
            #expect(DNSServer.parse(bad) == nil, "\(bad)")
        }
    }

    @Test func environmentAndResolvConf() throws {
        let dir = try TempDir(); defer { dir.remove() }
        let conf = dir.file("resolv.conf")
        try writeFile(conf, "# comment\nsearch example.com\nnameserver 10.0.0.1\nnameserver\t::1 # trailing\nnameserver bogus\n  nameserver 10.0.0.9\nnameserver 10.0.0.2")
        let fromFile = DNSServer.configured(environment: Environment(), resolvConf: conf)
        #expect(fromFile.map(\.description) == ["10.0.0.1", "::1", "10.0.0.2"])
        let env = Environment([("DNSCACHEIP", "127.0.0.1, 127.0.0.2:54 junk ::1")])
        #expect(DNSServer.configured(environment: env, resolvConf: conf).map(\.description) == ["127.0.0.1", "127.0.0.2:54", "::1"])
        let withPort = Environment([("DNSCACHEIP", "127.0.0.1 [::1]:99"), ("DNSPORT", "5353")])
        #expect(DNSServer.configured(environment: withPort, resolvConf: conf) == [
            DNSServer(IPAddress("127.0.0.1")!, port: 5353), DNSServer(IPAddress("::1")!, port: 99)])
        // Nothing usable anywhere: the local cache.
        let none = DNSServer.configured(environment: Environment([("DNSCACHEIP", "junk")]), resolvConf: dir.file("missing"))
        #expect(none == [DNSServer(IPAddress("127.0.0.1")!)])
        let many = (1...20).map { "10.0.0.\($0)" }.joined(separator: " ")
        #expect(DNSServer.parseList(many).count == DNSServer.maxServers)
        #expect(DNSResolver(environment: Environment([("DNSTIMEOUT", "2.5")])).timeout == 2.5)
        #expect(DNSResolver(environment: Environment([("DNSTIMEOUT", "x")])).timeout == DNSResolver.defaultTimeout)
    }
}
