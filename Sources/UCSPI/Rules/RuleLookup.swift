// The rule lookup shared by tcpserver and tcprulescheck: candidate keys in the reference order.
import Core

extension TCPRules {
    /// The rule tcpserver follows for a client (spec §4.1), first key found wins:
    /// 1. `info@ip` (for IPv6 the expanded ip, then the ip as given), 2. `info@=host`,
    /// 3. the expanded IPv6 ip, 4. `ip`, 5. `=host`, 6. IPv4 prefixes `a.b.c.`, `a.b.`,
    /// `a.`, 7. CIDR keys from /32 (/128) down to /2, 8. host suffixes `=.b.c`, `=.c`,
    /// 9. `=`, 10. the empty key. `host` is nil when unknown (tcpserver -H, no PTR);
    /// `info` is nil when there is no remote info (-R, failed ident lookup).
    /// A nil result means nothing matched: allow, environment unchanged.
    public func lookup(ip: String, host: String?, info: String?) -> Result<RuleMatch?, CDBError> {
        lookup(ip: Array(ip.utf8), host: host.map { Array($0.utf8) }, info: info.map { Array($0.utf8) })
    }

    /// Same as `lookup(ip:host:info:)` on raw bytes (ident replies need not be UTF-8).
    public func lookup(ip: [UInt8], host: [UInt8]?, info: [UInt8]?) -> Result<RuleMatch?, CDBError> {
        lookupValue(ip: ip, host: host, info: info).map { found in
            found.map { RuleValue.match(key: $0.key, value: $0.value) }
        }
    }

    /// The key that decided and its raw value (tcprulescheck prints the records as stored).
    public func lookupValue(ip: [UInt8], host: [UInt8]?, info: [UInt8]?)
        -> Result<(key: [UInt8], value: [UInt8])?, CDBError> {
        var result: Result<(key: [UInt8], value: [UInt8])?, CDBError> = .success(nil)
        RuleCandidates.forEach(ip: ip, host: host, info: info) { key in
            switch cdb.find(key) {
            case .failure(let e): result = .failure(e); return false
            case .success(nil): return true
            case .success(let value?): result = .success((key, value)); return false
            }
        }
        return result
    }
}

/// The keys a lookup tries, in order.
public enum RuleCandidates {
    /// Every candidate key in order (tests, diagnostics).
    public static func keys(ip: [UInt8], host: [UInt8]?, info: [UInt8]?) -> [[UInt8]] {
        var all: [[UInt8]] = []
        forEach(ip: ip, host: host, info: info) { all.append($0); return true }
        return all
    }

    /// Calls `body` with each candidate key until it returns false.
    public static func forEach(ip: [UInt8], host: [UInt8]?, info: [UInt8]?, _ body: ([UInt8]) -> Bool) {
        let at = UInt8(ascii: "@"), equals = UInt8(ascii: "="), dot = UInt8(ascii: ".")
        let v6 = ip.contains(UInt8(ascii: ":"))
        let v6Bytes = v6 ? IPAddressText.parseIPv6(ip) : nil
        let expanded = v6Bytes.map(IPAddressText.formatIPv6Expanded)

        if let info {
            // The reference looks up info@expanded only; tcpserver's own compact form
            // follows so that a rule written as tcpserver prints the address matches too.
            if let expanded {
                guard body(info + [at] + expanded) else { return }
                if expanded != ip { guard body(info + [at] + ip) else { return } }
            } else {
                guard body(info + [at] + ip) else { return }
            }
            if let host { guard body(info + [at, equals] + host) else { return } }
        }
        if let expanded { guard body(expanded) else { return } }
        if expanded != ip { guard body(ip) else { return } }
        if let host { guard body([equals] + host) else { return } }
        if !v6 {
            var length = ip.count
            while length > 0 {
                if ip[length - 1] == dot { guard body(Array(ip[..<length])) else { return } }
                length -= 1
            }
            // CIDR keys need a well-formed dotted quad (tcpserver always gives one).
            if let v4 = IPAddressText.parseIPv4(ip) {
                let bits = IPAddressText.ipv4Bits(v4)
                for n in stride(from: 32, through: 2, by: -1) {
                    guard body([UInt8(ascii: "_")] + bits[..<n]) else { return }
                }
            }
        } else if let v6Bytes {
            // The reference converts the wrong buffer here (spec §4.3); this converts the ip.
            let bits = IPAddressText.ipv6Bits(v6Bytes)
            for n in stride(from: 128, through: 2, by: -1) {
                guard body([UInt8(ascii: "^")] + bits[..<n]) else { return }
            }
        }
        if let host {
            for (i, c) in host.enumerated() where c == dot {
                guard body([equals] + host[i...]) else { return }
            }
            guard body([equals]) else { return }
        }
        _ = body([])
    }
}
