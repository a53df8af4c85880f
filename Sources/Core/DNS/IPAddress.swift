// IP addresses in the suite's text forms (spec §0): dotted quads, compact and expanded IPv6.

/// An IPv4 (4 bytes) or IPv6 (16 bytes) address, in network byte order.
public struct IPAddress: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    /// The first 12 bytes of an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`).
    public static let v4MappedPrefix: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]

    /// nil unless `bytes` holds exactly 4 or 16 bytes.
    public init?(bytes: [UInt8]) {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    /// Parses a dotted quad, else an IPv6 address (compact forms, `::`, a trailing
    /// dotted quad). The whole text must be used; no scope suffix, no brackets.
    public init?(_ text: some StringProtocol) {
        let utf8 = Array(text.utf8)
        if let v4 = IPAddress.scanIPv4(utf8[...]), v4.used == utf8.count {
            self.bytes = v4.bytes
        } else if let v6 = IPAddress.scanIPv6(utf8[...]) {
            self.bytes = v6
        } else {
            return nil
        }
    }

    public var isIPv4: Bool { bytes.count == 4 }
    public var isIPv6: Bool { bytes.count == 16 }
    public var isV4Mapped: Bool { bytes.count == 16 && Array(bytes[0..<12]) == IPAddress.v4MappedPrefix }

    /// An IPv4-mapped IPv6 address as plain IPv4; any other address unchanged.
    public var unmapped: IPAddress {
        isV4Mapped ? IPAddress(uncheckedBytes: Array(bytes[12..<16])) : self
    }

    /// An IPv4 address as `::ffff:a.b.c.d`; IPv6 addresses unchanged.
    public var v4Mapped: IPAddress {
        isIPv4 ? IPAddress(uncheckedBytes: IPAddress.v4MappedPrefix + bytes) : self
    }

    private init(uncheckedBytes: [UInt8]) { self.bytes = uncheckedBytes }

    /// Dotted quad for IPv4; for IPv6 lowercase hex groups without leading zeros where the
    /// first run of two or more zero groups becomes `::` (the reference's ip6_fmt, which is
    /// not always RFC 5952's longest run), and `::ffff:a.b.c.d` for v4-mapped addresses.
    public var description: String {
        // Bytes appended by hand: per connection in every tcpserver child, where generic
        // map/joined would cost runtime type lookups the parent never made.
        var out: [UInt8] = []
        out.reserveCapacity(45)
        if isIPv4 {
            IPAddress.appendDottedQuad(bytes, at: 0, to: &out)
            return String(decoding: out, as: UTF8.self)
        }
        if isV4Mapped {
            out += Array("::ffff:".utf8)
            IPAddress.appendDottedQuad(bytes, at: 12, to: &out)
            return String(decoding: out, as: UTF8.self)
        }
        func group(_ g: Int) -> UInt16 { UInt16(bytes[2 * g]) << 8 | UInt16(bytes[2 * g + 1]) }
        var runStart = -1, runLength = 0
        var i = 0
        while i < 8 {
            if group(i) == 0 {
                var j = i
                while j < 8 && group(j) == 0 { j += 1 }
                if j - i >= 2 { runStart = i; runLength = j - i; break }
                i = j
            } else {
                i += 1
            }
        }
        func appendGroups(_ range: Range<Int>) {
            for g in range {
                if g != range.lowerBound { out.append(58) }
                IPAddress.appendHex(group(g), to: &out)
            }
        }
        if runStart < 0 {
            appendGroups(0..<8)
        } else {
            appendGroups(0..<runStart)
            out += [58, 58]
            appendGroups((runStart + runLength)..<8)
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `a.b.c.d` from the four bytes at `start`.
    private static func appendDottedQuad(_ bytes: [UInt8], at start: Int, to out: inout [UInt8]) {
        for k in 0..<4 {
            if k > 0 { out.append(46) }
            let b = bytes[start + k]
            if b >= 100 { out.append(48 + b / 100) }
            if b >= 10 { out.append(48 + b / 10 % 10) }
            out.append(48 + b % 10)
        }
    }

    /// Lowercase hex without leading zeros ("0" for zero).
    private static func appendHex(_ value: UInt16, to out: inout [UInt8]) {
        var shift = 12
        while shift > 0 && (value >> UInt16(shift)) & 15 == 0 { shift -= 4 }
        while shift >= 0 {
            let d = UInt8((value >> UInt16(shift)) & 15)
            out.append(d < 10 ? 48 + d : 87 + d)
            shift -= 4
        }
    }

    /// IPv6 as 8 groups of exactly 4 lowercase hex digits (the rules-key form); IPv4 is
    /// expanded as its v4-mapped address.
    public var expanded: String {
        let v6 = v4Mapped.bytes
        return (0..<8).map { g in
            let value = UInt16(v6[2 * g]) << 8 | UInt16(v6[2 * g + 1])
            let digits = String(value, radix: 16)
            return String(repeating: "0", count: 4 - digits.count) + digits
        }.joined(separator: ":")
    }

    /// The labels a reverse or DNSBL lookup puts in front of its zone: `d.c.b.a` for IPv4
    /// (v4-mapped addresses count as IPv4), 32 dot-separated nibbles, last first, for IPv6.
    public var reversedLabels: String {
        let address = unmapped
        if address.isIPv4 { return address.bytes.reversed().map { String($0) }.joined(separator: ".") }
        var parts: [String] = []
        parts.reserveCapacity(32)
        for byte in address.bytes.reversed() {
            parts.append(String(byte & 15, radix: 16))
            parts.append(String(byte >> 4, radix: 16))
        }
        return parts.joined(separator: ".")
    }

    // MARK: scanning

    /// A dotted quad at the start of `text` (leading zeros allowed, each part 0...255).
    /// Returns the bytes and how many characters were used.
    static func scanIPv4(_ text: ArraySlice<UInt8>) -> (bytes: [UInt8], used: Int)? {
        var out: [UInt8] = []
        var i = text.startIndex
        for part in 0..<4 {
            if part > 0 {
                guard i < text.endIndex, text[i] == UInt8(ascii: ".") else { return nil }
                i += 1
            }
            var value = 0, digits = 0
            while i < text.endIndex, text[i] >= 48, text[i] <= 57, digits < 3 {
                value = value * 10 + Int(text[i] - 48)
                digits += 1
                i += 1
            }
            guard digits > 0, value <= 255 else { return nil }
            if i < text.endIndex, text[i] >= 48, text[i] <= 57 { return nil }  // a fourth digit
            out.append(UInt8(value))
        }
        return (out, i - text.startIndex)
    }

    /// An IPv6 address filling all of `text`.
    static func scanIPv6(_ text: ArraySlice<UInt8>) -> [UInt8]? {
        guard !text.isEmpty, text.count <= 45 else { return nil }
        var head: [UInt16] = [], tail: [UInt16] = []
        var sawGap = false
        var tailV4: [UInt8]? = nil
        var i = text.startIndex
        let end = text.endIndex
        if text.starts(with: [58, 58]) {  // leading "::"
            sawGap = true
            i += 2
            if i == end { return [UInt8](repeating: 0, count: 16) }
        } else if text[i] == 58 {
            return nil
        }
        while i < end {
            // A dotted quad may end the address.
            if let v4 = scanIPv4(text[i...]), i + v4.used == end {
                tailV4 = v4.bytes
                i = end
                break
            }
            var value: UInt16 = 0, digits = 0
            while i < end, digits < 5, let d = hexValue(text[i]) {
                value = value &<< 4 | UInt16(d)
                digits += 1
                i += 1
            }
            guard digits >= 1, digits <= 4 else { return nil }
            if sawGap { tail.append(value) } else { head.append(value) }
            if i == end { break }
            guard text[i] == 58 else { return nil }
            i += 1
            if i < end, text[i] == 58 {
                guard !sawGap else { return nil }
                sawGap = true
                i += 1
                if i == end { break }
            } else if i == end {
                return nil  // a trailing single ':'
            }
        }
        let groupsUsed = head.count + tail.count + (tailV4 == nil ? 0 : 2)
        if sawGap {
            guard groupsUsed <= 7 else { return nil }
        } else {
            guard groupsUsed == 8 else { return nil }
        }
        let groups = head + [UInt16](repeating: 0, count: 8 - groupsUsed) + tail
        var out: [UInt8] = []
        out.reserveCapacity(16)
        for g in groups { out.append(UInt8(g >> 8)); out.append(UInt8(g & 0xff)) }
        if let tailV4 { out += tailV4 }
        return out.count == 16 ? out : nil
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 48...57: return c - 48
        case 97...102: return c - 87
        case 65...70: return c - 55
        default: return nil
        }
    }
}
