// IP addresses as ucspi-tcp writes them: dotted quad, compact IPv6 (first run of zero
// groups shortened, v4-mapped as ::ffff:a.b.c.d) and the 39-character expanded form.
import Glibc

public enum IPAddress: Hashable, Sendable, CustomStringConvertible {
    case v4(UInt8, UInt8, UInt8, UInt8)
    /// Sixteen bytes, network order.
    case v6([UInt8])

    // MARK: parsing

    /// Dotted quad with 4 decimal parts, each 0–255, no sign or spaces.
    public static func parseV4(_ text: some StringProtocol) -> IPAddress? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard (1...3).contains(part.count), part.allSatisfy({ $0.isASCII && $0.isNumber }),
                  let n = Int(part), n <= 255 else { return nil }
            bytes.append(UInt8(n))
        }
        return .v4(bytes[0], bytes[1], bytes[2], bytes[3])
    }

    /// Compact or full IPv6, with "::" and an optional trailing dotted quad.
    public static func parseV6(_ text: some StringProtocol) -> IPAddress? {
        let s = String(text)
        guard !s.isEmpty, s.count <= 45 else { return nil }
        let halves = s.components(separatedByDoubleColon: ())
        guard halves.count <= 2 else { return nil }
        func groups(_ part: String) -> [UInt16]? {
            if part.isEmpty { return [] }
            var out: [UInt16] = []
            let fields = part.split(separator: ":", omittingEmptySubsequences: false)
            for (i, f) in fields.enumerated() {
                if i == fields.count - 1, f.contains("."), let v4 = parseV4(f), case .v4(let a, let b, let c, let d) = v4 {
                    out.append(UInt16(a) << 8 | UInt16(b))
                    out.append(UInt16(c) << 8 | UInt16(d))
                    continue
                }
                guard (1...4).contains(f.count), let g = UInt16(f, radix: 16) else { return nil }
                out.append(g)
            }
            return out
        }
        guard let head = groups(halves[0]) else { return nil }
        var all: [UInt16]
        if halves.count == 2 {
            guard let tail = groups(halves[1]), head.count + tail.count <= 7 else { return nil }
            all = head + [UInt16](repeating: 0, count: 8 - head.count - tail.count) + tail
        } else {
            guard head.count == 8 else { return nil }
            all = head
        }
        return .v6(all.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xff)] })
    }

    /// IPv4 or IPv6 text.
    public static func parse(_ text: some StringProtocol) -> IPAddress? {
        parseV4(text) ?? parseV6(text)
    }

    // MARK: views

    /// The 16-byte form: IPv4 becomes ::ffff:a.b.c.d.
    public var mapped16: [UInt8] {
        switch self {
        case .v4(let a, let b, let c, let d): return [UInt8](repeating: 0, count: 10) + [0xff, 0xff, a, b, c, d]
        case .v6(let bytes): return bytes
        }
    }

    /// An IPv4 address, or the IPv4 inside a v4-mapped IPv6 one.
    public var unmapped: IPAddress {
        if case .v6(let b) = self, b.count == 16, b[0..<10].allSatisfy({ $0 == 0 }), b[10] == 0xff, b[11] == 0xff {
            return .v4(b[12], b[13], b[14], b[15])
        }
        return self
    }

    public var isV4: Bool { if case .v4 = self { return true } else { return false } }

    // MARK: text

    /// ucspi-tcp's text: dotted quad for IPv4, compact form for IPv6.
    public var description: String {
        switch self {
        case .v4(let a, let b, let c, let d): return "\(a).\(b).\(c).\(d)"
        case .v6: return compactV6
        }
    }

    /// Compact IPv6 as ip6_fmt: the FIRST run of two or more zero groups becomes "::";
    /// v4-mapped addresses end in a dotted quad.
    public var compactV6: String {
        let b = mapped16
        if case .v4(let x, let y, let z, let w) = unmapped { return "::ffff:\(x).\(y).\(z).\(w)" }
        let groups = (0..<8).map { UInt16(b[2 * $0]) << 8 | UInt16(b[2 * $0 + 1]) }
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

    /// Eight groups of four lowercase hex digits: the form tcprules keys use.
    public var expandedV6: String {
        let b = mapped16
        return (0..<8).map { i -> String in
            let g = String(UInt16(b[2 * i]) << 8 | UInt16(b[2 * i + 1]), radix: 16)
            return String(repeating: "0", count: 4 - g.count) + g
        }.joined(separator: ":")
    }
}

private extension String {
    /// Splits at "::" (at most once matters; more is an error for the caller).
    func components(separatedByDoubleColon _: ()) -> [String] {
        var parts: [String] = []
        var current = ""
        var chars = Array(self)[...]
        while let c = chars.first {
            if c == ":", chars.dropFirst().first == ":" {
                parts.append(current)
                current = ""
                chars = chars.dropFirst(2)
            } else {
                current.append(c)
                chars = chars.dropFirst()
            }
        }
        parts.append(current)
        return parts
    }
}
