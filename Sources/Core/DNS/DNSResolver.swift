// The stub resolver: blocking lookups by type, CNAME chains followed, and the helpers the
// suite needs (addresses, MX, TXT, PTR). No libresolv, no getaddrinfo: the base binary is
// static, and glibc's NSS cannot be loaded there.

public struct MXRecord: Hashable, Sendable {
    public var preference: UInt16
    public var exchange: DNSName
    public init(preference: UInt16, exchange: DNSName) {
        self.preference = preference
        self.exchange = exchange
    }
}

/// What one response says about a question once CNAMEs inside it are followed.
public enum DNSAnswer: Equatable, Sendable {
    /// Records of the asked type, owned by the name or the end of its CNAME chain.
    case records([DNSRecord])
    case nameNotFound
    case noData
    /// The chain leads to a name this response says nothing about: ask again for it.
    case alias(DNSName)
    /// CNAMEs that loop or go on too long.
    case broken(String)

    /// Longest CNAME chain followed, within one response or across queries.
    public static let maxChain = 16

    public static func extract(_ message: DNSMessage, for question: DNSQuestion) -> DNSAnswer {
        var owner = question.name
        var seen: Set<DNSName> = [owner]
        var followed = false
        while true {
            let matching = message.answers.filter {
                $0.name == owner && ($0.type == question.type || question.type == .any) && $0.dnsClass == question.dnsClass
            }
            if !matching.isEmpty { return .records(matching) }
            guard question.type != .cname, question.type != .any,
                  let alias = message.answers.first(where: { $0.name == owner && $0.type == .cname }),
                  case .cname(let target) = alias.data else { break }
            guard seen.count <= maxChain, seen.insert(target).inserted else { return .broken("CNAME loop at \(target)") }
            owner = target
            followed = true
        }
        if message.responseCode == .nameError { return .nameNotFound }
        // A recursive server that gave a chain has already chased it: its silence about
        // the target is the answer. Only a non-recursive one leaves us to ask again.
        if followed && !message.recursionAvailable { return .alias(owner) }
        return .noData
    }
}

public struct DNSResolver: Sendable {
    public var servers: [DNSServer]
    /// Seconds a whole lookup may take (every server, every retry, CNAME re-queries).
    public var timeout: Double
    /// The UDP retransmission schedule (seconds per try, one round per element).
    public var udpTimeouts: [Double]

    public static let defaultTimeout: Double = 60

    public init(servers: [DNSServer], timeout: Double = DNSResolver.defaultTimeout,
                udpTimeouts: [Double] = DNSQuery.udpTimeouts) {
        self.servers = servers
        self.timeout = timeout
        self.udpTimeouts = udpTimeouts
    }

    /// Servers from $DNSCACHEIP, `resolvConf` or 127.0.0.1 (see `DNSServer.configured`);
    /// `$DNSTIMEOUT` (seconds, our extension) limits each lookup, 60 by default.
    public init(environment: Environment, resolvConf: String = "/etc/resolv.conf") {
        var timeout = DNSResolver.defaultTimeout
        if let text = environment.nonEmpty("DNSTIMEOUT"), let t = Double(text), t > 0, t.isFinite { timeout = t }
        self.init(servers: DNSServer.configured(environment: environment, resolvConf: resolvConf), timeout: timeout)
    }

    /// Starts one query without waiting: for event loops (see DNSQuery). CNAMEs are the
    /// caller's business here (`DNSAnswer.extract`).
    public func start(_ name: DNSName, _ type: DNSType, timeout: Double? = nil) -> DNSQuery {
        DNSQuery(DNSQuestion(name, type), servers: servers, timeout: timeout ?? self.timeout, udpTimeouts: udpTimeouts)
    }

    /// Records of `type` for `name` (dotted text, `\ddd` escapes allowed). Success always
    /// holds at least one record; NXDOMAIN and empty answers are `.nameNotFound`/`.noData`.
    public func query(_ name: String, _ type: DNSType, timeout: Double? = nil) -> Result<[DNSRecord], DNSError> {
        guard let parsed = DNSName(name), !parsed.isRoot else { return .failure(.permanent("invalid name: \(name)")) }
        return query(parsed, type, timeout: timeout)
    }

    public func query(_ name: DNSName, _ type: DNSType, timeout: Double? = nil) -> Result<[DNSRecord], DNSError> {
        let deadline = MonotonicClock.now() + (timeout ?? self.timeout)
        var current = name
        var seen: Set<DNSName> = [name]
        while true {
            let remaining = deadline - MonotonicClock.now()
            guard remaining > 0 else { return .failure(.temporary("timed out")) }
            let question = DNSQuestion(current, type)
            let message: DNSMessage
            switch DNSQuery(question, servers: servers, timeout: remaining, udpTimeouts: udpTimeouts).wait() {
            case .failure(let error): return .failure(error)
            case .success(let m): message = m
            }
            switch DNSAnswer.extract(message, for: question) {
            case .records(let records): return .success(records)
            case .nameNotFound: return .failure(.nameNotFound)
            case .noData: return .failure(.noData)
            case .broken(let why): return .failure(.permanent(why))
            case .alias(let target):
                guard seen.count < DNSAnswer.maxChain, seen.insert(target).inserted else {
                    return .failure(.permanent("CNAME chain too long or looping at \(target)"))
                }
                current = target
            }
        }
    }

    /// IPv6 then IPv4 addresses of `name` (AAAA and A asked in turn). An address literal
    /// is returned as it is, without a query.
    public func addresses(for name: String, timeout: Double? = nil) -> Result<[IPAddress], DNSError> {
        if let literal = IPAddress(name) { return .success([literal]) }
        let deadline = MonotonicClock.now() + (timeout ?? self.timeout)
        let v6 = query(name, .aaaa, timeout: deadline - MonotonicClock.now())
        if case .failure(.permanent(let why)) = v6, why.hasPrefix("invalid name") { return .failure(.permanent(why)) }
        if case .failure(.nameNotFound) = v6 { return .failure(.nameNotFound) }
        let v4 = query(name, .a, timeout: max(0.001, deadline - MonotonicClock.now()))
        var found: [IPAddress] = []
        for result in [v6, v4] {
            if case .success(let records) = result {
                for r in records {
                    if case .aaaa(let ip) = r.data { found.append(ip) }
                    if case .a(let ip) = r.data { found.append(ip) }
                }
            }
        }
        if !found.isEmpty { return .success(found) }
        return .failure(DNSResolver.worst(v6, v4))
    }

    /// Mail exchangers by ascending preference (the server's order among equals).
    public func mx(for name: String, timeout: Double? = nil) -> Result<[MXRecord], DNSError> {
        query(name, .mx, timeout: timeout).map { records in
            let list: [MXRecord] = records.compactMap {
                if case .mx(let p, let x) = $0.data { return MXRecord(preference: p, exchange: x) }
                return nil
            }
            return list.enumerated().sorted { ($0.element.preference, $0.offset) < ($1.element.preference, $1.offset) }
                .map { $0.element }
        }
    }

    /// One entry per TXT record: its character-strings joined.
    public func txt(for name: String, timeout: Double? = nil) -> Result<[[UInt8]], DNSError> {
        query(name, .txt, timeout: timeout).map { records in
            records.compactMap {
                if case .txt(let strings) = $0.data { return strings.flatMap { $0 } }
                return nil
            }
        }
    }

    /// Names for `ip` from its in-addr.arpa / ip6.arpa PTR records.
    public func ptr(for ip: IPAddress, timeout: Double? = nil) -> Result<[DNSName], DNSError> {
        query(DNSName.reverse(ip), .ptr, timeout: timeout).map { records in
            records.compactMap {
                if case .ptr(let name) = $0.data { return name }
                return nil
            }
        }
    }

    /// The reverse-lookup name of `ip`, e.g. `4.3.2.1.in-addr.arpa`.
    public static func reverseName(_ ip: IPAddress) -> DNSName { DNSName.reverse(ip) }

    /// The failure that matters most when two lookups both came back empty: a temporary
    /// one (the other might have answered), then a permanent one, then NXDOMAIN.
    static func worst<T>(_ a: Result<T, DNSError>, _ b: Result<T, DNSError>) -> DNSError {
        let errors: [DNSError] = [a, b].compactMap { if case .failure(let e) = $0 { return e } else { return nil } }
        if let t = errors.first(where: { $0.isTemporary }) { return t }
        if let p = errors.first(where: { if case .permanent = $0 { return true } else { return false } }) { return p }
        if errors.contains(.nameNotFound) { return .nameNotFound }
        return .noData
    }
}
