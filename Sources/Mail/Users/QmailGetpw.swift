// qmail-getpw: the passwd-based answer to "which account owns this local part?".
import Core
import Glibc

/// The decision qmail-getpw makes, over an injectable account look-up so it can be tested
/// without a passwd file of our own.
public enum PasswdResolver {
    public struct Entry: Equatable, Sendable {
        public var name: String, uid: uid_t, gid: gid_t, home: String
        public init(name: String, uid: uid_t, gid: gid_t, home: String) {
            (self.name, self.uid, self.gid, self.home) = (name, uid, gid, home)
        }
    }

    public enum Failure: Error, Equatable, Sendable {
        case noAlias        // 116
        case busy           // 118: the passwd look-up said ETXTBSY
        case homeTemporary  // 115: stat of a home failed with a temporary error
    }

    /// Cut points from the end of `local` towards its start, at its end and at each `-`:
    /// the first lower-cased candidate (under 32 bytes) naming an account with uid ≠ 0
    /// whose home exists and is owned by it wins; else the alias account with dash `-` and
    /// the whole local part as extension. Returns user, uid, gid, home, dash, ext.
    public static func resolve(_ local: [UInt8], alias: String,
                               lookup: (String) -> (Entry?, Int32),
                               homeOwner: (String) -> (uid_t?, Int32)) -> Result<LocalAccount, Failure> {
        var cut = local.count
        while true {
            if cut < 32 && (cut == local.count || local[cut] == 45) {
                let candidate = String(decoding: UserAssignments.lowercased(local[..<cut]), as: UTF8.self)
                let (entry, error) = lookup(candidate)
                if error == ETXTBSY { return .failure(.busy) }
                if let entry, entry.uid != 0 {
                    let (owner, statError) = homeOwner(entry.home)
                    if let owner {
                        if owner == entry.uid {
                            let atEnd = cut == local.count
                            return .success(LocalAccount(user: Array(entry.name.utf8), uid: entry.uid, gid: entry.gid,
                                                         home: Array(entry.home.utf8), dash: atEnd ? [] : [45],
                                                         ext: atEnd ? [] : Array(local[(cut + 1)...])))
                        }
                    } else if TemporaryErrno.contains(statError) {
                        return .failure(.homeTemporary)
                    }
                }
            }
            if cut == 0 { break }
            cut -= 1
        }
        guard let entry = lookup(alias).0 else { return .failure(.noAlias) }
        return .success(LocalAccount(user: Array(entry.name.utf8), uid: entry.uid, gid: entry.gid,
                                     home: Array(entry.home.utf8), dash: [45], ext: local))
    }

    /// The system's account database (NSS).
    public static func systemLookup(_ name: String) -> (Entry?, Int32) {
        switch Accounts.user(name) {
        case .success(let a): return (Entry(name: a.name, uid: a.uid, gid: a.gid, home: a.home), 0)
        case .failure(.lookupFailed(_, let code)): return (nil, code)
        case .failure: return (nil, 0)
        }
    }

    public static func systemHomeOwner(_ path: String) -> (uid_t?, Int32) {
        var st = stat()
        return stat(path, &st) == 0 ? (st.st_uid, 0) : (nil, errno)
    }
}

public struct QmailGetpwCommand: Command {
    public static let name = "qmail-getpw"
    public static let installDirectory = InstallDirectory.sbin
    public static let summary = "give addresses to users"

    public static func run(_ context: CommandContext) -> Int32 {
        guard let local = context.arguments.first else { return 100 }
        let alias = SuiteAccounts(environment: context.environment).alias
        switch PasswdResolver.resolve(local, alias: alias, lookup: PasswdResolver.systemLookup,
                                      homeOwner: PasswdResolver.systemHomeOwner) {
        case .failure(.noAlias): return 116
        case .failure(.busy): return 118
        case .failure(.homeTemporary): return 115
        case .success(let a):
            var out = a.user + [0] + Array(String(a.uid).utf8) + [0] + Array(String(a.gid).utf8) + [0]
            out += a.home + [0] + a.dash + [0] + a.ext + [0]
            guard case .success = FD.writeAll(1, out) else { return 111 }
            return 0
        }
    }
}
