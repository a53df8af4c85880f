// TAI64 / TAI64N labels (cr.yp.to/libtai): the time stamps of supervise, multilog and tai64n.
import Glibc

/// A TAI64N moment: seconds as a TAI64 label (2^62 + TAI seconds) plus nanoseconds.
/// Like the reference, no leap-second table: TAI = UNIX + 10.
public struct TAI64N: Equatable, Comparable, Hashable, Sendable {
    /// 2^62 + 10: the TAI64 label of the UNIX epoch as the reference computes it.
    public static let unixEpochLabel: UInt64 = 0x4000_0000_0000_000A

    public var seconds: UInt64
    public var nanoseconds: UInt32

    public init(seconds: UInt64, nanoseconds: UInt32) {
        self.seconds = seconds
        self.nanoseconds = nanoseconds
    }

    public init(unixSeconds: Int64, nanoseconds: UInt32 = 0) {
        self.seconds = UInt64(bitPattern: Int64(bitPattern: TAI64N.unixEpochLabel) &+ unixSeconds)
        self.nanoseconds = nanoseconds
    }

    public static func now() -> TAI64N {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return TAI64N(unixSeconds: Int64(ts.tv_sec), nanoseconds: UInt32(ts.tv_nsec))
    }

    public var unixSeconds: Int64 { Int64(bitPattern: seconds &- TAI64N.unixEpochLabel) }

    public static func < (a: TAI64N, b: TAI64N) -> Bool {
        (a.seconds, a.nanoseconds) < (b.seconds, b.nanoseconds)
    }

    // MARK: packed form (12 bytes, big-endian)

    public var packed: [UInt8] {
        var out = [UInt8](repeating: 0, count: 12)
        for i in 0..<8 { out[i] = UInt8(truncatingIfNeeded: seconds >> (56 - 8 * UInt64(i))) }
        for i in 0..<4 { out[8 + i] = UInt8(truncatingIfNeeded: nanoseconds >> (24 - 8 * UInt32(i))) }
        return out
    }

    /// Decodes 12 packed bytes; nil when fewer are given.
    public init?<Bytes: Collection>(packed bytes: Bytes) where Bytes.Element == UInt8 {
        guard bytes.count >= 12 else { return nil }
        var s: UInt64 = 0
        var n: UInt32 = 0
        for (i, b) in bytes.prefix(12).enumerated() {
            if i < 8 { s = s << 8 | UInt64(b) } else { n = n << 8 | UInt32(b) }
        }
        self.init(seconds: s, nanoseconds: n)
    }

    // MARK: external label "@" + 24 lowercase hex digits

    public var label: [UInt8] {
        var out: [UInt8] = [UInt8(ascii: "@")]
        out.reserveCapacity(25)
        for byte in packed {
            out.append(Hex.digits[Int(byte >> 4)])
            out.append(Hex.digits[Int(byte & 15)])
        }
        return out
    }

    public var labelString: String { String(decoding: label, as: UTF8.self) }

    /// Parses a label at the start of `line` the way tai64nlocal does: "@", then lowercase hex
    /// digits (uppercase stops the scan); extra digits keep shifting in, as djb's code does.
    /// Returns the moment and the index of the first byte after the digits, or nil when the
    /// line does not start with "@".
    public static func parseLabel<Bytes: Collection>(_ line: Bytes) -> (TAI64N, Bytes.Index)?
        where Bytes.Element == UInt8 {
        guard let first = line.first, first == UInt8(ascii: "@") else { return nil }
        var secs: UInt64 = 0
        var nanos: UInt32 = 0
        var index = line.index(after: line.startIndex)
        while index != line.endIndex, let value = Hex.lowercaseValue(line[index]) {
            // 96 bits of (secs, nanos) shift left by 4, the new digit entering nanos.
            secs = secs << 4 | UInt64(nanos >> 28)
            nanos = nanos << 4 | UInt32(value)
            index = line.index(after: index)
        }
        return (TAI64N(seconds: secs, nanoseconds: nanos), index)
    }

    // MARK: human forms

    /// "YYYY-MM-DD HH:MM:SS.nnnnnnnnn" in local time, as tai64nlocal prints; nil when the
    /// moment falls outside years 0–9999 (the reference crashes on such labels).
    public var localTimeString: String? {
        var t = time_t(unixSeconds)
        var parts = tm()
        guard localtime_r(&t, &parts) != nil, (0...9999).contains(Int(parts.tm_year) + 1900) else { return nil }
        return Format.pad(Int(parts.tm_year) + 1900, 4) + "-" + Format.pad(Int(parts.tm_mon) + 1, 2) + "-"
            + Format.pad(Int(parts.tm_mday), 2) + " " + Format.pad(Int(parts.tm_hour), 2) + ":"
            + Format.pad(Int(parts.tm_min), 2) + ":" + Format.pad(Int(parts.tm_sec), 2) + "."
            + Format.pad(Int(nanoseconds), 9)
    }

    /// "<unix seconds>.<9-digit nanoseconds>" as tai64nunix prints (seconds padded to 9 digits).
    public var unixTimeString: String {
        let secs = unixSeconds
        let sign = secs < 0 ? "-" : ""
        // The magnitude of Int64.min does not fit an Int: pad the unsigned digits directly.
        let digits = String(secs.magnitude)
        return sign + String(repeating: "0", count: max(0, 9 - digits.count)) + digits + "."
            + Format.pad(Int(nanoseconds), 9)
    }
}

public enum Hex {
    public static let digits: [UInt8] = Array("0123456789abcdef".utf8)

    public static func lowercaseValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        default: return nil
        }
    }
}

public enum Format {
    /// Decimal with leading zeros to at least `width` digits.
    public static func pad(_ value: Int, _ width: Int) -> String {
        let digits = String(value.magnitude)
        let zeros = String(repeating: "0", count: max(0, width - digits.count))
        return (value < 0 ? "-" : "") + zeros + digits
    }
}
