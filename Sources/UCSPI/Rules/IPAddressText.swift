// Text forms of IP addresses as ucspi-tcp writes and reads them, and the CIDR bit strings
// of the rules keys (spec §0 address formats, §4.2).

public enum IPAddressText {
    // MARK: IPv4

    /// A dotted quad `a.b.c.d`, each part 1 to 3 decimal digits up to 255 (leading zeros
    /// allowed, as the reference's scanner takes them). Nil for anything else.
    public static func parseIPv4<Text: Collection>(_ text: Text) -> [UInt8]? where Text.Element == UInt8 {
        guard let octets = parseIPv4Octets(text), octets.count == 4 else { return nil }
        return octets
    }

    /// One to four dotted decimal octets (`10`, `172.16`, `192.168.1`, `10.1.2.3`): the
    /// address part of an IPv4 CIDR rule, whose prefix need not be written out in full.
    public static func parseIPv4Octets<Text: Collection>(_ text: Text) -> [UInt8]? where Text.Element == UInt8 {
        var octets: [UInt8] = []
        var value = 0, digits = 0
        for c in text {
            if c == UInt8(ascii: ".") {
                guard digits > 0, octets.count < 3 else { return nil }
                octets.append(UInt8(value))
                value = 0; digits = 0
            } else if c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") {
                digits += 1
                guard digits <= 3 else { return nil }
                value = value * 10 + Int(c - UInt8(ascii: "0"))
                guard value <= 255 else { return nil }
            } else {
                return nil
            }
        }
        guard digits > 0 else { return nil }
        octets.append(UInt8(value))
        return octets
    }

    public static func formatIPv4(_ address: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        for (i, octet) in address.prefix(4).enumerated() {
            if i > 0 { out.append(UInt8(ascii: ".")) }
            out.append(contentsOf: String(octet).utf8)
        }
        return out
    }

    // MARK: IPv6

    /// Any RFC 4291 text form: up to eight groups of 1 to 4 hex digits (either case), one
    /// `::` standing for one or more zero groups, and optionally a dotted quad as the last
    /// 32 bits. A bare dotted quad is *not* accepted here (callers decide what a colon-less
    /// address means). Returns the 16 bytes, or nil.
    public static func parseIPv6<Text: Collection>(_ text: Text) -> [UInt8]? where Text.Element == UInt8 {
        let s = Array(text)
        guard s.count >= 2, s.count <= 45 else { return nil }
        var doubleColon: Int?
        var i = 0
        while i + 1 < s.count {
            if s[i] == UInt8(ascii: ":") && s[i + 1] == UInt8(ascii: ":") {
                guard doubleColon == nil else { return nil }
                doubleColon = i
                i += 2
                continue
            }
            i += 1
        }
        let headText: ArraySlice<UInt8>, tailText: ArraySlice<UInt8>
        if let dc = doubleColon {
            headText = s[..<dc]
            tailText = s[(dc + 2)...]
        } else {
            headText = s[...]
            tailText = []
        }
        guard let head = groups(headText, last: doubleColon == nil),
              let tail = groups(tailText, last: true) else { return nil }
        if doubleColon == nil {
            guard head.count == 8 else { return nil }
        } else {
            guard head.count + tail.count <= 7 else { return nil }
        }
        let all = head + [UInt16](repeating: 0, count: 8 - head.count - tail.count) + tail
        var bytes: [UInt8] = []
        bytes.reserveCapacity(16)
        for g in all {
            bytes.append(UInt8(g >> 8))
            bytes.append(UInt8(g & 0xff))
        }
        return bytes
    }

    /// The groups of one side of `::`; a dotted quad may end the side that ends the address.
    private static func groups(_ text: ArraySlice<UInt8>, last: Bool) -> [UInt16]? {
        guard !text.isEmpty else { return [] }
        var result: [UInt16] = []
        let pieces = text.split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false)
        for (n, piece) in pieces.enumerated() {
            guard !piece.isEmpty else { return nil }
            if piece.contains(UInt8(ascii: ".")) {
                guard last, n == pieces.count - 1, let v4 = parseIPv4(piece) else { return nil }
                result.append(UInt16(v4[0]) << 8 | UInt16(v4[1]))
                result.append(UInt16(v4[2]) << 8 | UInt16(v4[3]))
                continue
            }
            guard piece.count <= 4 else { return nil }
            var value: UInt16 = 0
            for c in piece {
                guard let d = hexValue(c) else { return nil }
                value = value << 4 | UInt16(d)
            }
            result.append(value)
        }
        guard result.count <= 8 else { return nil }
        return result
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// The 39-character form the rules lookup tries first for IPv6 clients: eight groups
    /// of four lowercase hex digits, e.g. `2001:0db8:0000:0000:0000:0000:0000:0001`.
    public static func formatIPv6Expanded(_ address: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(39)
        for (i, byte) in address.prefix(16).enumerated() {
            if i > 0 && i % 2 == 0 { out.append(UInt8(ascii: ":")) }
            out.append(hexDigits[Int(byte >> 4)])
            out.append(hexDigits[Int(byte & 15)])
        }
        return out
    }

    /// The compact form tcpserver puts in TCPREMOTEIP (the reference's ip6_fmt): lowercase
    /// groups without leading zeros, the *first* run of two or more zero groups written as
    /// `::` (not necessarily the longest, unlike RFC 5952), and a v4-mapped address as
    /// `::ffff:a.b.c.d`.
    public static func formatIPv6Compact(_ address: [UInt8]) -> [UInt8] {
        guard address.count == 16 else { return [] }
        var groups = [Int](repeating: 0, count: 8)
        for g in 0..<8 { groups[g] = Int(address[2 * g]) << 8 | Int(address[2 * g + 1]) }
        let v4Mapped = groups[0..<5].allSatisfy { $0 == 0 } && groups[5] == 0xffff
        let count = v4Mapped ? 6 : 8
        var runStart = -1, runLength = 0
        var g = 0
        while g < count {
            if groups[g] == 0 {
                var end = g
                while end < count && groups[end] == 0 { end += 1 }
                if end - g >= 2 { runStart = g; runLength = end - g; break }
                g = end
            } else {
                g += 1
            }
        }
        var parts: [[UInt8]] = groups[0..<count].map { Array(String($0, radix: 16).utf8) }
        if v4Mapped { parts.append(formatIPv4(Array(address[12..<16]))) }
        let colon: [UInt8] = [UInt8(ascii: ":")]
        guard runStart >= 0 else { return Array(parts.joined(separator: colon)) }
        return Array(parts[..<runStart].joined(separator: colon)) + colon + colon
            + Array(parts[(runStart + runLength)...].joined(separator: colon))
    }

    // MARK: CIDR bit strings (spec §4.2)

    private static let ipv4Letters = Array("abcdefghijklmnopqrstuvwxyz123456".utf8)

    /// 32 bytes, most significant bit first: `0` for a 0 bit, and for a 1 bit the letter
    /// of its position in `abcdefghijklmnopqrstuvwxyz123456`. 127.0.0.0/8 begins `0bcdefgh`.
    public static func ipv4Bits(_ address: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(32)
        for k in 0..<32 {
            let byte = k / 8 < address.count ? address[k / 8] : 0
            out.append(byte & (0x80 >> UInt8(k % 8)) != 0 ? ipv4Letters[k] : UInt8(ascii: "0"))
        }
        return out
    }

    /// 128 bytes, most significant bit first: `0` for a 0 bit, and for the j-th 1 bit
    /// (counting from 0) the byte 0x60 + j. Bytes above 0x7f occur after 32 one bits.
    public static func ipv6Bits(_ address: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(128)
        var ones: UInt8 = 0
        for k in 0..<128 {
            let byte = k / 8 < address.count ? address[k / 8] : 0
            if byte & (0x80 >> UInt8(k % 8)) != 0 {
                out.append(0x60 &+ ones)
                ones &+= 1
            } else {
                out.append(UInt8(ascii: "0"))
            }
        }
        return out
    }
}
