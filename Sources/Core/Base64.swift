// Base64 (RFC 4648) both ways, for SMTP AUTH and MIME: strict decoding, no line breaks.

public enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    public static func encode(_ bytes: some Collection<UInt8>) -> [UInt8] {
        let input = Array(bytes)
        var out: [UInt8] = []
        out.reserveCapacity((input.count + 2) / 3 * 4)
        var i = 0
        while i < input.count {
            let b0 = UInt32(input[i])
            let b1 = i + 1 < input.count ? UInt32(input[i + 1]) : 0
            let b2 = i + 2 < input.count ? UInt32(input[i + 2]) : 0
            let n = b0 << 16 | b1 << 8 | b2
            out.append(alphabet[Int(n >> 18 & 63)])
            out.append(alphabet[Int(n >> 12 & 63)])
            out.append(i + 1 < input.count ? alphabet[Int(n >> 6 & 63)] : 61)
            out.append(i + 2 < input.count ? alphabet[Int(n & 63)] : 61)
            i += 3
        }
        return out
    }

    private static func value(_ c: UInt8) -> UInt32? {
        switch c {
        case 65...90: return UInt32(c - 65)
        case 97...122: return UInt32(c - 97 + 26)
        case 48...57: return UInt32(c - 48 + 52)
        case 43: return 62
        case 47: return 63
        default: return nil
        }
    }

    /// Strict decoding (padding optional at the very end); nil for anything malformed.
    public static func decode(_ text: some Collection<UInt8>) -> [UInt8]? {
        var input = Array(text)
        while input.last == 13 || input.last == 10 || input.last == 32 { input.removeLast() }
        var padding = 0
        while input.last == 61 { input.removeLast(); padding += 1 }
        guard padding <= 2, input.count % 4 != 1 else { return nil }
        if padding > 0 && (input.count + padding) % 4 != 0 { return nil }
        var out: [UInt8] = []
        var accumulator: UInt32 = 0, bits = 0
        for c in input {
            guard let v = value(c) else { return nil }
            accumulator = accumulator << 6 | v
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
                accumulator &= (1 << UInt32(bits)) - 1
            }
        }
        return out
    }

    /// What a client accepts from a server: white space and `=` anywhere are skipped, so
    /// only a character outside the alphabet fails (nil).
    public static func decodeLeniently(_ text: some Collection<UInt8>) -> [UInt8]? {
        var out: [UInt8] = []
        var accumulator: UInt32 = 0, bits = 0
        for c in text where ![61, 32, 9, 13, 10].contains(c) {
            guard let v = value(c) else { return nil }
            accumulator = (accumulator << 6 | v) & 0xFFFFFF
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
            }
        }
        return out
    }
}
