// Property tests for the DNS parser: random messages survive a round trip, and thousands of
// random or mutated packets give a message or an error, never a trap or a hang.
// Seeded, so a failure reproduces.
import Core
import Testing

@Suite("DNS parser against random and mutated packets")
struct DNSFuzzTests {
    static func randomName(_ g: inout SeededGenerator) -> DNSName {
        let pool: [[UInt8]] = [Array("a".utf8), Array("example".utf8), Array("COM".utf8), Array("in-addr".utf8),
                               Array("arpa".utf8), [0, 46, 255], Array("mail".utf8)]
        var labels: [[UInt8]] = []
        for _ in 0..<Int.random(in: 0...5, using: &g) {
            if Bool.random(using: &g) {
                labels.append(pool.randomElement(using: &g)!)
            } else {
                labels.append((0..<Int.random(in: 1...63, using: &g)).map { _ in UInt8.random(in: 0...255, using: &g) })
            }
        }
        while DNSName(labels: labels) == nil { labels.removeLast() }
        return DNSName(labels: labels)!
    }

    static func randomRecord(_ g: inout SeededGenerator) -> DNSRecord {
        let owner = randomName(&g)
        let ttl = UInt32.random(in: 0...UInt32.max, using: &g)
        func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8.random(in: 0...255, using: &g) } }
        switch Int.random(in: 0...8, using: &g) {
        case 0: return DNSRecord(name: owner, ttl: ttl, .a(IPAddress(bytes: bytes(4))!))
        case 1: return DNSRecord(name: owner, ttl: ttl, .aaaa(IPAddress(bytes: bytes(16))!))
        case 2: return DNSRecord(name: owner, ttl: ttl, .txt((0..<Int.random(in: 0...3, using: &g)).map { _ in bytes(Int.random(in: 0...255, using: &g)) }))
        case 3: return DNSRecord(name: owner, ttl: ttl, .ptr(randomName(&g)))
        case 4: return DNSRecord(name: owner, ttl: ttl, .cname(randomName(&g)))
        case 5: return DNSRecord(name: owner, ttl: ttl, .ns(randomName(&g)))
        case 6: return DNSRecord(name: owner, ttl: ttl, .mx(preference: UInt16.random(in: 0...UInt16.max, using: &g), exchange: randomName(&g)))
        case 7: return DNSRecord(name: owner, type: .soa, ttl: ttl, data: .other(bytes(Int.random(in: 0...40, using: &g))))
        default: return DNSRecord(name: owner, type: .a, dnsClass: DNSClass(rawValue: 3), ttl: ttl, data: .other(bytes(Int.random(in: 0...9, using: &g))))
        }
    }

    static func randomMessage(_ g: inout SeededGenerator) -> DNSMessage {
        var m = DNSMessage(id: UInt16.random(in: 0...UInt16.max, using: &g))
        m.isResponse = Bool.random(using: &g)
        m.opcode = UInt8.random(in: 0...15, using: &g)
        m.truncated = Bool.random(using: &g)
        m.recursionDesired = Bool.random(using: &g)
        m.recursionAvailable = Bool.random(using: &g)
        m.authoritative = Bool.random(using: &g)
        m.responseCode = DNSResponseCode(rawValue: UInt8.random(in: 0...15, using: &g))
        m.questions = (0..<Int.random(in: 0...2, using: &g)).map { _ in
            DNSQuestion(randomName(&g), DNSType(UInt16.random(in: 0...300, using: &g)))
        }
        m.answers = (0..<Int.random(in: 0...6, using: &g)).map { _ in randomRecord(&g) }
        m.authority = (0..<Int.random(in: 0...2, using: &g)).map { _ in randomRecord(&g) }
        m.additional = (0..<Int.random(in: 0...3, using: &g)).map { _ in randomRecord(&g) }
        return m
    }

    @Test func randomMessagesRoundTrip() throws {
        var g = SeededGenerator(seed: 1)
        for _ in 0..<2000 {
            let m = Self.randomMessage(&g)
            for compress in [true, false] {
                let bytes = try m.encode(compress: compress).get()
                #expect(try DNSMessage.decode(bytes).get() == m)
            }
        }
    }

    /// What decode gave: a message must survive its own round trip; errors are fine.
    static func check(_ packet: [UInt8], _ tally: inout (ok: Int, bad: Int)) {
        switch DNSMessage.decode(packet) {
        case .failure: tally.bad += 1
        case .success(let m):
            tally.ok += 1
            if case .success(let again) = m.encode(compress: true) {
                #expect(DNSMessage.decode(again) == .success(m))
            }
            for q in m.questions {
                _ = DNSAnswer.extract(m, for: q)
                _ = DNSAnswer.extract(m, for: DNSQuestion(q.name, .cname))
            }
        }
        _ = DNSMessage.decodeHeaderAndQuestions(packet)
    }

    @Test func mutatedPackets() throws {
        var g = SeededGenerator(seed: 7)
        var tally = (ok: 0, bad: 0)
        for _ in 0..<1500 {
            let base = try Self.randomMessage(&g).encode(compress: Bool.random(using: &g)).get()
            for _ in 0..<6 {
                var p = base
                switch Int.random(in: 0...5, using: &g) {
                case 0:  // flip some bytes
                    for _ in 0..<Int.random(in: 1...4, using: &g) where !p.isEmpty {
                        p[Int.random(in: 0..<p.count, using: &g)] = UInt8.random(in: 0...255, using: &g)
                    }
                case 1:  // cut it short
                    p = Array(p.prefix(Int.random(in: 0...p.count, using: &g)))
                case 2:  // plant a compression pointer anywhere
                    if p.count > 13 {
                        let at = Int.random(in: 12..<(p.count - 1), using: &g)
                        p[at] = 0xc0 | UInt8.random(in: 0...0x3f, using: &g) & 0x01
                        p[at + 1] = UInt8.random(in: 0...255, using: &g)
                    }
                case 3:  // inflate the counts
                    if p.count >= 12 { for i in 4..<12 { p[i] = UInt8.random(in: 0...255, using: &g) } }
                case 4:  // insert junk
                    let at = Int.random(in: 0...p.count, using: &g)
                    p.insert(contentsOf: (0..<Int.random(in: 1...20, using: &g)).map { _ in UInt8.random(in: 0...255, using: &g) }, at: at)
                default:  // point a pointer at itself or the next pointer
                    if p.count > 14 {
                        let at = Int.random(in: 12..<(p.count - 1), using: &g)
                        p[at] = 0xc0 | UInt8(at >> 8)
                        p[at + 1] = UInt8(truncatingIfNeeded: at + Int.random(in: 0...2, using: &g))
                    }
                }
                Self.check(p, &tally)
            }
        }
        #expect(tally.ok > 0 && tally.bad > 0)
    }

    @Test func randomBytes() {
        var g = SeededGenerator(seed: 99)
        var tally = (ok: 0, bad: 0)
        for _ in 0..<5000 {
            var p = (0..<Int.random(in: 0...200, using: &g)).map { _ in UInt8.random(in: 0...255, using: &g) }
            // Small counts make it past the header more often.
            if p.count >= 12 { p[4] = 0; p[6] = 0; p[8] = 0; p[10] = 0; p[5] &= 3; p[7] &= 3; p[9] &= 1; p[11] &= 1 }
            Self.check(p, &tally)
        }
        #expect(tally.bad > 0)
    }

    @Test func textParsersNeverTrap() {
        var g = SeededGenerator(seed: 5)
        let alphabet = Array("0123456789abcdefABCDEF:.%[]\\ ,x".utf8)
        for _ in 0..<20000 {
            let text = String(decoding: (0..<Int.random(in: 0...50, using: &g)).map { _ in
                Bool.random(using: &g) ? alphabet.randomElement(using: &g)! : UInt8.random(in: 0...127, using: &g)
            }, as: UTF8.self)
            if let ip = IPAddress(text) {
                // Whatever parses prints as something that parses to the same address.
                #expect(IPAddress(ip.description) == ip, "\(text)")
                _ = ip.expanded
                _ = DNSName.reverse(ip)
            }
            if let name = DNSName(text) { _ = name.description; _ = name.wire }
            _ = DNSServer.parse(text)
            _ = DNSServer.parseList(text)
        }
    }
}
