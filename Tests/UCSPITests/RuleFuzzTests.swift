// No input crashes the parser, the value decoder or the lookup: seeded random lines, values
// and corrupted databases (a trap would kill the test process).
import Core
import Testing
import UCSPI

@Suite struct RuleFuzzTests {
    static let alphabet = bytes(":,=!@-./#\"' \t\r0123456789abcdefABCDEFxyzallowdeny_^") + [0, 0xff, 0x80, 10]
    static let fragments = [":allow", ":deny", ",A=/x/", ",!B", "::", "/24", "/0", "/129", "-", "1.2.3.", "@", "=",
                            "2001:db8::", "::ffff:1.2.3.4", "255", "999", ",X=", ",!", ",,", "\"", "10.0-5."].map(bytes)

    /// Random bytes and fragments; half the time shaped `address:action,instructions` so
    /// the parser gets past the separator often.
    static func randomLine(_ g: inout SeededGenerator) -> [UInt8] {
        if Bool.random(using: &g) {
            return randomText(&g, 4) + [bytes(":allow"), bytes(":deny")].randomElement(using: &g)!
                + (0..<Int.random(in: 0...3, using: &g)).flatMap { _ in
                    [bytes(",A=/x/"), bytes(",!B"), bytes(",C=\"1,2\""), bytes(",=++")].randomElement(using: &g)! }
                + (Int.random(in: 0..<4, using: &g) == 0 ? randomText(&g, 3) : [])
        }
        return randomText(&g, 12)
    }

    static func randomText(_ g: inout SeededGenerator, _ pieces: Int) -> [UInt8] {
        var line: [UInt8] = []
        for _ in 0..<Int.random(in: 0...pieces, using: &g) {
            if Bool.random(using: &g) {
                line += fragments.randomElement(using: &g)!
            } else {
                line.append(alphabet.randomElement(using: &g)!)
            }
        }
        return line
    }

    @Test func parserNeverCrashes() {
        var g = SeededGenerator(seed: 5)
        var parsed = 0, failed = 0
        for _ in 0..<20000 {
            let line = Self.randomLine(&g)
            switch RuleSyntax.parse(line) {
            case .success(let rule?):
                parsed += 1
                // What the parser accepts encodes to a value that decodes to the same changes.
                let m = RuleValue.match(key: [], value: rule.value)
                #expect(m.action == rule.action)
                if !rule.environment.contains(where: { $0.name.contains(0) || $0.name.contains(UInt8(ascii: "=")) || ($0.value ?? []).contains(0) }) {
                    #expect(m.environment == rule.environment, "\(line)")
                }
                #expect(rule.keys.count <= 256)
            case .success(nil): break
            case .failure: failed += 1
            }
        }
        #expect(parsed > 1000 && failed > 1000)
    }

    @Test func cidrAndAddressesNeverCrash() {
        var g = SeededGenerator(seed: 11)
        let pieces = bytes("0123456789abcdefABCDEF:./%")
        for _ in 0..<20000 {
            let t = (0..<Int.random(in: 0...50, using: &g)).map { _ in pieces.randomElement(using: &g)! }
            if let a = IPAddressText.parseIPv6(t) {
                #expect(IPAddressText.parseIPv6(IPAddressText.formatIPv6Compact(a)) == a)
                #expect(IPAddressText.parseIPv6(IPAddressText.formatIPv6Expanded(a)) == a)
            }
            _ = IPAddressText.parseIPv4(t)
            _ = CIDRKeys.keys(for: t)
            _ = RuleCandidates.keys(ip: t, host: Bool.random(using: &g) ? t : nil, info: t)
        }
        // Random addresses round-trip through both text forms.
        for _ in 0..<5000 {
            var a = (0..<16).map { _ in UInt8.random(in: 0...255, using: &g) }
            for i in 0..<16 where Int.random(in: 0..<3, using: &g) == 0 { a[i] = 0 }
            #expect(IPAddressText.parseIPv6(IPAddressText.formatIPv6Compact(a)) == a)
            #expect(IPAddressText.parseIPv6(IPAddressText.formatIPv6Expanded(a)) == a)
        }
    }

    @Test func decoderNeverCrashes() {
        var g = SeededGenerator(seed: 7)
        for _ in 0..<20000 {
            let value = (0..<Int.random(in: 0...40, using: &g)).map { _ in
                Bool.random(using: &g) ? [0, UInt8(ascii: "D"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "=")].randomElement(using: &g)!
                    : UInt8.random(in: 0...255, using: &g)
            }
            let records = RuleValue.records(value)
            #expect(records.count == value.filter { $0 == 0 }.count)
            _ = RuleValue.match(key: value, value: value)
            _ = RuleValue.rawRecords(value)
        }
    }

    @Test func lookupOnCorruptDatabasesNeverCrashes() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let path = dir.file("r.cdb")
        try compileRules("""
            1.2.3.4:deny
            10.0.0.0/8:allow,A=/b/
            2001:db8::/32:deny
            =.example.com:allow,!X
            joe@1.2.3.5:allow
            :allow
            """, into: path)
        let good = try FD.readFile(path).get()
        var g = SeededGenerator(seed: 3)
        var errors = 0
        for round in 0..<3000 {
            var b = good
            for _ in 0..<Int.random(in: 1...8, using: &g) {
                b[Int.random(in: 0..<b.count, using: &g)] = UInt8.random(in: 0...255, using: &g)
            }
            if round % 10 == 0 { b = Array(b.prefix(Int.random(in: 0...b.count, using: &g))) }
            let r = TCPRules(cdb: CDB(bytes: b))
            for (ip, host) in [("1.2.3.4", nil), ("10.1.1.1", "a.example.com"), ("2001:db8::9", nil), ("9.9.9.9", "x")] as [(String, String?)] {
                if case .failure = r.lookup(ip: ip, host: host, info: "joe") { errors += 1 }
            }
        }
        #expect(errors > 0)
    }
}
