// Conveniences over IPAddress for the socket code and tcpserver: constructors, the 16-byte
// (v4-mapped) view, and ucspi-tcp's two presentations.

extension IPAddress {
    public static func v4(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) -> IPAddress {
        IPAddress(bytes: [a, b, c, d]) ?? IPAddress.any6
    }

    /// Sixteen bytes, network order (anything else gives ::).
    public static func v6(_ bytes: [UInt8]) -> IPAddress {
        IPAddress(bytes: bytes.count == 16 ? bytes : [UInt8](repeating: 0, count: 16)) ?? IPAddress.any6
    }

    static let any6 = IPAddress(bytes: [UInt8](repeating: 0, count: 16))!

    public static func parse(_ text: some StringProtocol) -> IPAddress? { IPAddress(text) }

    /// The 16-byte form: IPv4 becomes ::ffff:a.b.c.d.
    public var mapped16: [UInt8] { v4Mapped.bytes }

    public var isV4: Bool { isIPv4 }

    /// True for IPv4 and v4-mapped IPv6 addresses.
    public var unmappedIsV4: Bool { unmapped.isIPv4 }

    /// Compact IPv6 text for any address (IPv4 as ::ffff:a.b.c.d): the TCP6* form.
    public var compactV6: String { v4Mapped.description }

    /// Eight groups of four hex digits: the tcprules key form.
    public var expandedV6: String { expanded }
}
