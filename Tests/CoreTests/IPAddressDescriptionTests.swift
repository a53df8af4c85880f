// IPAddress.description is built byte by byte (it runs in every tcpserver child): checked
// against the straightforward generic formatting it replaced, on random and edge addresses.
import Core
import Testing

@Suite("IP address description against a reference model")
struct IPAddressDescriptionTests {
    /// The former implementation, kept as the model: map, joined, String(radix:).
    static func model(_ bytes: [UInt8]) -> String {
        if bytes.count == 4 { return bytes.map { String($0) }.joined(separator: ".") }
        if Array(bytes[0..<12]) == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff] {
            return "::ffff:" + bytes[12...].map { String($0) }.joined(separator: ".")
        }
        let groups = (0..<8).map { UInt16(bytes[2 * $0]) << 8 | UInt16(bytes[2 * $0 + 1]) }
        var runStart = -1, runLength = 0
        var i = 0
        while i < 8 {
            if groups[i] == 0 {
                var j = i
                while j < 8 && groups[j] == 0 { j += 1 }
                if j - i >= 2 { runStart = i; runLength = j - i; break }
                i = j
            } else {
                i += 1
            }
        }
        func hex(_ range: Range<Int>) -> String { range.map { String(groups[$0], radix: 16) }.joined(separator: ":") }
        guard runStart >= 0 else { return hex(0..<8) }
        return hex(0..<runStart) + "::" + hex((runStart + runLength)..<8)
    }

    @Test("random IPv4, IPv6 (zero-heavy) and v4-mapped addresses print as the model does")
    func random() throws {
        var generator = SystemRandomNumberGenerator()
        var mismatches: [String] = []
        for round in 0..<20000 {
            var bytes: [UInt8]
            switch round % 4 {
            case 0: bytes = (0..<4).map { _ in UInt8.random(in: 0...255, using: &generator) }
            case 1: bytes = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff] + (0..<4).map { _ in UInt8.random(in: 0...255, using: &generator) }
            default:
                // Mostly zero groups, some with small or large values: runs in every position.
                bytes = []
                for _ in 0..<8 {
                    let value: UInt16 = Bool.random(using: &generator) ? 0 : [1, 0xf, 0x10, 0xff, 0x100, 0xfff, 0x1000, 0xffff,
                                                                             UInt16.random(in: 0...0xffff, using: &generator)].randomElement(using: &generator) ?? 1
                    bytes += [UInt8(value >> 8), UInt8(value & 0xff)]
                }
            }
            let ip = try #require(IPAddress(bytes: bytes))
            if ip.description != Self.model(bytes) { mismatches.append("\(bytes): \(ip.description) != \(Self.model(bytes))") }
            if IPAddress(ip.description) != ip { mismatches.append("\(bytes): \(ip.description) does not parse back") }
        }
        #expect(mismatches.isEmpty, "\(mismatches.prefix(5))")
    }

    @Test("edges: all zeros, all ones, loopbacks, every single-digit, two- and three-digit octet")
    func edges() throws {
        var cases: [[UInt8]] = [[0, 0, 0, 0], [255, 255, 255, 255], [127, 0, 0, 1], [9, 10, 99, 100],
                                [UInt8](repeating: 0, count: 16), [UInt8](repeating: 255, count: 16),
                                [UInt8](repeating: 0, count: 15) + [1], [0, 1] + [UInt8](repeating: 0, count: 14)]
        for octet in 0...255 { cases.append([UInt8(octet), 0, UInt8(255 - octet), 7]) }
        let wrong = try cases.filter { try #require(IPAddress(bytes: $0)).description != Self.model($0) }
        #expect(wrong.isEmpty, "\(wrong)")
    }
}
