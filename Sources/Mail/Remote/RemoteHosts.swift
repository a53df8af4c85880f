// Where a message for a domain goes: its MX hosts by preference (equal ones shuffled),
// the domain's own addresses when it has no MX, or an artificial route's relay.
import Core
import Glibc

/// One address to try, with the preference and name of the MX host it came from.
public struct RemoteTarget: Equatable, Sendable {
    public var address: IPAddress
    public var preference: Int
    /// The MX host's name (the relay's for a route, the literal for `[ip]`): the name TLS
    /// checks and tlshosts/ files are named after.
    public var name: String

    public init(address: IPAddress, preference: Int, name: String) {
        self.address = address
        self.preference = preference
        self.name = name
    }
}

public enum RemoteHostError: Error, Equatable, Sendable {
    /// The name does not exist (NXDOMAIN): a permanent failure.
    case noSuchHost
    /// DNS did not answer properly: try later.
    case temporary
}

public enum RemoteHosts {
    /// An address literal as qmail accepts it: `[1.2.3.4]`, `[IPv6:…]`, or bare.
    public static func literal(_ host: String) -> IPAddress? {
        var text = Substring(host)
        if text.hasPrefix("[") && text.hasSuffix("]") {
            text = text.dropFirst().dropLast()
            if text.lowercased().hasPrefix("ipv6:") { text = text.dropFirst(5) }
        }
        return IPAddress(text)
    }

    /// Addresses of one host (A/AAAA), preference 0.
    public static func addresses(of host: String, resolver: DNSResolver) -> Result<[RemoteTarget], RemoteHostError> {
        if let ip = literal(host) { return .success([RemoteTarget(address: ip, preference: 0, name: host)]) }
        switch resolver.addresses(for: host) {
        case .success(let ips): return .success(ips.map { RemoteTarget(address: $0, preference: 0, name: host) })
        case .failure(.nameNotFound), .failure(.noData): return .success([])
        case .failure(.permanent): return .failure(.noSuchHost)
        case .failure: return .failure(.temporary)
        }
    }

    /// The MX targets of `domain`, best preference first, equal preferences in an order
    /// that depends on `random`. No MX records: the domain's own addresses (implicit MX).
    public static func exchangers(of domain: String, resolver: DNSResolver, random: UInt64) -> Result<[RemoteTarget], RemoteHostError> {
        if let ip = literal(domain), domain.hasPrefix("[") { return .success([RemoteTarget(address: ip, preference: 0, name: domain)]) }
        let records: [MXRecord]
        switch resolver.mx(for: domain) {
        case .success(let list): records = list
        case .failure(.nameNotFound): return .failure(.noSuchHost)
        case .failure(.noData): return addresses(of: domain, resolver: resolver)
        case .failure(.permanent): return .failure(.noSuchHost)
        case .failure: return .failure(.temporary)
        }
        var targets: [RemoteTarget] = []
        var soft = false
        for mx in records {
            let name = mx.exchange.description.hasSuffix(".") ? String(mx.exchange.description.dropLast()) : mx.exchange.description
            switch addresses(of: name, resolver: resolver) {
            case .success(let found):
                targets += found.map { RemoteTarget(address: $0.address, preference: Int(mx.preference), name: name) }
            case .failure(.temporary): soft = true
            case .failure: break
            }
        }
        if targets.isEmpty && soft { return .failure(.temporary) }
        return .success(ordered(targets, random: random))
    }

    /// Sorted by preference; within one preference, shuffled by `random` (deterministic for a seed).
    public static func ordered(_ targets: [RemoteTarget], random: UInt64) -> [RemoteTarget] {
        var state = random | 1
        func next() -> UInt64 {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return state
        }
        let keyed = targets.map { ($0, next()) }
        return keyed.sorted { a, b in
            a.0.preference != b.0.preference ? a.0.preference < b.0.preference : a.1 < b.1
        }.map { $0.0 }
    }
}

/// The addresses that mean "this host": every interface address, 0.0.0.0 and 127.0.0.1,
/// plus `moreipme`, minus `notipme`.
public struct LocalAddresses: Sendable {
    public var addresses: Set<IPAddress>

    public init(addresses: Set<IPAddress>) { self.addresses = addresses }

    public static func current(more: [String], not: [String]) -> LocalAddresses {
        var set: Set<IPAddress> = [.v4(0, 0, 0, 0), .v4(127, 0, 0, 1)]
        var list: UnsafeMutablePointer<ifaddrs>?
        if getifaddrs(&list) == 0 {
            var p = list
            while let entry = p {
                if let sa = entry.pointee.ifa_addr {
                    let family = Int32(sa.pointee.sa_family)
                    if family == AF_INET || family == AF_INET6 {
                        var storage = sockaddr_storage()
                        let length = family == AF_INET ? MemoryLayout<sockaddr_in>.size : MemoryLayout<sockaddr_in6>.size
                        withUnsafeMutableBytes(of: &storage) { dst in
                            dst.copyMemory(from: UnsafeRawBufferPointer(start: UnsafeRawPointer(sa), count: length))
                        }
                        if let address = SocketAddress(storage: storage, length: socklen_t(length))?.ip {
                            set.insert(address.unmapped)
                        }
                    }
                }
                p = entry.pointee.ifa_next
            }
            freeifaddrs(list)
        }
        for text in more { if let ip = IPAddress(text) { set.insert(ip.unmapped) } }
        for text in not { if let ip = IPAddress(text) { set.remove(ip.unmapped) } }
        return LocalAddresses(addresses: set)
    }

    public func contains(_ ip: IPAddress) -> Bool { addresses.contains(ip.unmapped) }
}
