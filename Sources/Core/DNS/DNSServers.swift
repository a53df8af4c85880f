// Which name servers to ask: $DNSCACHEIP, else resolv.conf's nameserver lines, else 127.0.0.1.
import Glibc

/// One recursive name server (a dnscache, unbound, a router's forwarder...).
public struct DNSServer: Hashable, Sendable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16
    /// Interface index for link-local IPv6 servers (`fe80::1%eth0`), 0 otherwise.
    public var scopeID: UInt32

    public static let defaultPort: UInt16 = 53

    public init(_ address: IPAddress, port: UInt16 = DNSServer.defaultPort, scopeID: UInt32 = 0) {
        self.address = address
        self.port = port
        self.scopeID = scopeID
    }

    public var description: String {
        let host = address.isIPv4 ? address.description : "[\(address)]"
        return port == DNSServer.defaultPort ? address.description : "\(host):\(port)"
    }

    /// One server as written in $DNSCACHEIP or resolv.conf: `1.2.3.4`, `::1`,
    /// `fe80::1%eth0`, and (our extension, for servers on another port) `1.2.3.4:5353` or
    /// `[::1]:5353`. nil when it is none of these or names an unknown interface.
    public static func parse(_ text: some StringProtocol, defaultPort: UInt16 = DNSServer.defaultPort) -> DNSServer? {
        var host = Substring(text)
        var port = defaultPort
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return nil }
            let after = host[host.index(after: close)...]
            host = host[host.index(after: host.startIndex)..<close]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let p = parsePort(after.dropFirst()) else { return nil }
                port = p
            }
        } else if let colon = host.firstIndex(of: ":"), !host[host.index(after: colon)...].contains(":") {
            // Exactly one colon: IPv4 with a port (an IPv6 address has at least two).
            guard let p = parsePort(host[host.index(after: colon)...]) else { return nil }
            port = p
            host = host[..<colon]
        }
        var scope: UInt32 = 0
        if let percent = host.firstIndex(of: "%") {
            let name = String(host[host.index(after: percent)...])
            host = host[..<percent]
            if let number = UInt32(name) {
                scope = number
            } else {
                scope = if_nametoindex(name)
                guard scope != 0 else { return nil }
            }
        }
        guard let address = IPAddress(host) else { return nil }
        if scope != 0 && address.isIPv4 { return nil }
        return DNSServer(address, port: port, scopeID: scope)
    }

    private static func parsePort(_ text: Substring) -> UInt16? {
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let p = UInt16(text), p > 0 else { return nil }
        return p
    }

    /// The djbdns limit on servers consulted.
    public static let maxServers = 16

    /// $DNSCACHEIP (addresses separated by spaces, tabs or commas; unusable entries are
    /// skipped), else the `nameserver` lines of `resolvConf`, else 127.0.0.1. `$DNSPORT`
    /// sets the port of entries that give none.
    public static func configured(environment: Environment, resolvConf: String = "/etc/resolv.conf") -> [DNSServer] {
        var port = DNSServer.defaultPort
        if let text = environment.nonEmpty("DNSPORT"), let p = UInt16(text), p > 0 { port = p }
        if let list = environment.nonEmpty("DNSCACHEIP") {
            let servers = parseList(list, defaultPort: port)
            if !servers.isEmpty { return servers }
        }
        if case .success(let bytes) = FD.readFile(resolvConf) {
            let servers = parseResolvConf(bytes.prefix(65536), defaultPort: port)
            if !servers.isEmpty { return servers }
        }
        return [DNSServer(IPAddress("127.0.0.1")!, port: port)]
    }

    public static func parseList(_ text: String, defaultPort: UInt16 = DNSServer.defaultPort) -> [DNSServer] {
        let tokens = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "," || $0 == "\n" })
        return Array(tokens.compactMap { parse($0, defaultPort: defaultPort) }.prefix(maxServers))
    }

    /// `nameserver ADDRESS` lines (the keyword at the start of the line, as the C library
    /// wants it, blanks, the address, anything after ignored).
    public static func parseResolvConf(_ bytes: some Collection<UInt8>, defaultPort: UInt16 = DNSServer.defaultPort) -> [DNSServer] {
        var servers: [DNSServer] = []
        for line in bytes.split(separator: 10) where line.first != 32 && line.first != 9 {
            let words = line.split(whereSeparator: { $0 == 32 || $0 == 9 || $0 == 13 })
            guard words.count >= 2, Array(words[0]) == Array("nameserver".utf8) else { continue }
            let text = String(decoding: words[1], as: UTF8.self)
            if let server = parse(text, defaultPort: defaultPort) { servers.append(server) }
            if servers.count == maxServers { break }
        }
        return servers
    }
}
