// rcpthosts/morercpthosts: which recipient domains a network front end accepts mail for.
import Core
import Glibc

/// qmail's rule: an address without `@` is always accepted; otherwise its domain (lower
/// case) must be listed in `rcpthosts`, or one of its `.suffix` forms, or be a key of
/// `morercpthosts.cdb`. No rcpthosts file at all accepts everything, as the reference does.
public struct RcptHosts {
    private let hosts: Set<String>?
    private let more: CDB?

    public static func load(_ control: ControlFiles) -> Result<RcptHosts, ControlError> {
        let list: [String]?
        switch control.list("rcpthosts") {
        case .success(let l): list = l
        case .failure(let e): return .failure(e)
        }
        var more: CDB? = nil
        let morePath = control.path("morercpthosts.cdb")
        switch CDB.open(morePath) {
        case .success(let db): more = db
        case .failure(.system(let e)) where e.errno == ENOENT: break
        case .failure(let e): return .failure(.cdb(path: morePath, e))
        }
        return .success(RcptHosts(hosts: list.map { Set($0.map { $0.lowercased() }) }, more: more))
    }

    public init(hosts: Set<String>?, more: CDB? = nil) {
        self.hosts = hosts
        self.more = more
    }

    public func allows(_ address: [UInt8]) -> Result<Bool, ControlError> {
        guard let hosts else { return .success(true) }
        guard let at = address.lastIndex(of: UInt8(ascii: "@")) else { return .success(true) }
        let domain = String(decoding: address[(at + 1)...], as: UTF8.self).lowercased()
        if hosts.contains(domain) { return .success(true) }
        var rest = Substring(domain)
        while let dot = rest.firstIndex(of: ".") {
            if hosts.contains(String(rest[dot...])) { return .success(true) }
            rest = rest[rest.index(after: dot)...]
        }
        if let more {
            switch more.find(domain) {
            case .success(let v): return .success(v != nil)
            case .failure(let e): return .failure(.cdb(path: "morercpthosts.cdb", e))
            }
        }
        return .success(false)
    }
}
