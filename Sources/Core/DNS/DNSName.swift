// Domain names: parsed from dotted text, kept as wire labels, compared without case.

/// A domain name as a list of labels (the root is implied). Labels keep their bytes as
/// received; equality and hashing ignore ASCII case, as DNS does.
public struct DNSName: Hashable, Sendable, CustomStringConvertible {
    public let labels: [[UInt8]]

    public static let root = DNSName(unchecked: [])
    public static let maxLabelLength = 63
    /// Wire length limit, the final zero byte included.
    public static let maxWireLength = 255

    /// nil if a label is empty or longer than 63 bytes, or the name is too long.
    public init?(labels: [[UInt8]]) {
        guard labels.allSatisfy({ !$0.isEmpty && $0.count <= DNSName.maxLabelLength }),
              labels.reduce(1, { $0 + $1.count + 1 }) <= DNSName.maxWireLength else { return nil }
        self.labels = labels
    }

    init(unchecked labels: [[UInt8]]) { self.labels = labels }

    /// Parses dotted text. `\ddd` (three decimal digits, as in zone files) and `\c` put a
    /// byte into a label verbatim, so a label may hold a dot. Empty labels ("a..b", a
    /// leading or trailing dot) are skipped, as djbdns does. nil when a label or the whole
    /// name is too long or an escape is malformed.
    public init?(_ text: some StringProtocol) {
        var labels: [[UInt8]] = []
        var label: [UInt8] = []
        var utf8 = Array(text.utf8)[...]
        while let c = utf8.popFirst() {
            if c == UInt8(ascii: ".") {
                if !label.isEmpty { labels.append(label); label = [] }
                continue
            }
            if c == UInt8(ascii: "\\") {
                guard let next = utf8.popFirst() else { return nil }
                if next >= 48 && next <= 57 {
                    guard utf8.count >= 2, let d2 = utf8.popFirst(), let d3 = utf8.popFirst(),
                          d2 >= 48, d2 <= 57, d3 >= 48, d3 <= 57 else { return nil }
                    let value = Int(next - 48) * 100 + Int(d2 - 48) * 10 + Int(d3 - 48)
                    guard value <= 255 else { return nil }
                    label.append(UInt8(value))
                } else {
                    label.append(next)
                }
            } else {
                label.append(c)
            }
            if label.count > DNSName.maxLabelLength { return nil }
        }
        if !label.isEmpty { labels.append(label) }
        self.init(labels: labels)
    }

    /// The name in wire form, uncompressed, with the terminating zero.
    public var wire: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(wireLength)
        for label in labels {
            out.append(UInt8(label.count))
            out += label
        }
        out.append(0)
        return out
    }

    public var wireLength: Int { labels.reduce(1) { $0 + $1.count + 1 } }

    public var isRoot: Bool { labels.isEmpty }

    /// `label.rest`; nil if the result would be too long.
    public func prepending(_ prefix: DNSName) -> DNSName? {
        DNSName(labels: prefix.labels + labels)
    }

    /// The name without its first label (the root stays the root).
    public var parent: DNSName { DNSName(unchecked: Array(labels.dropFirst())) }

    /// Lowercased and dot-separated, as djbdns prints names: bytes other than a-z, 0-9,
    /// '-' and '_' become `\ooo` (three octal digits). The root prints as ".".
    public var description: String {
        guard !labels.isEmpty else { return "." }
        var out: [UInt8] = []
        for (i, label) in labels.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ".")) }
            for var c in label {
                if c >= 65 && c <= 90 { c += 32 }
                if (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c == UInt8(ascii: "-") || c == UInt8(ascii: "_") {
                    out.append(c)
                } else {
                    out.append(UInt8(ascii: "\\"))
                    out.append(48 + (c >> 6))
                    out.append(48 + ((c >> 3) & 7))
                    out.append(48 + (c & 7))
                }
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Labels folded to lowercase ASCII: the comparison key.
    public var lowercased: [[UInt8]] {
        labels.map { $0.map { ($0 >= 65 && $0 <= 90) ? $0 + 32 : $0 } }
    }

    public static func == (a: DNSName, b: DNSName) -> Bool {
        guard a.labels.count == b.labels.count else { return false }
        for (x, y) in zip(a.labels, b.labels) {
            guard x.count == y.count else { return false }
            for (p, q) in zip(x, y) where p != q {
                let lp = (p >= 65 && p <= 90) ? p + 32 : p
                let lq = (q >= 65 && q <= 90) ? q + 32 : q
                if lp != lq { return false }
            }
        }
        return true
    }

    public func hash(into hasher: inout Hasher) { hasher.combine(lowercased) }

    /// `in-addr.arpa` or `ip6.arpa` name for a reverse (PTR) lookup of `ip`; v4-mapped
    /// IPv6 addresses use the IPv4 form.
    public static func reverse(_ ip: IPAddress) -> DNSName {
        let address = ip.unmapped
        let zone = address.isIPv4 ? "in-addr.arpa" : "ip6.arpa"
        // Always short enough: 4 or 32 short labels plus the zone.
        return DNSName(address.reversedLabels + "." + zone) ?? .root
    }
}
