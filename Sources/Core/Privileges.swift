// Taking on an account's identity (uid, gid, supplementary groups) before exec: the
// mechanism behind setuidgid, and later tcpserver -u/-g and the mail daemons' drop.
import Glibc

/// The identity a process is about to take on.
public struct Credentials: Equatable, Sendable {
    public var uid: uid_t
    public var gid: gid_t
    /// The supplementary group list, exactly as setgroups(2) receives it. `[gid]` is the
    /// daemontools default: no group beyond the primary one.
    public var groups: [gid_t]

    public init(uid: uid_t, gid: gid_t, groups: [gid_t]) {
        self.uid = uid
        self.gid = gid
        self.groups = groups
    }

    /// The account's uid and gid with no supplementary groups but the primary one.
    public init(account: Account) {
        self.init(uid: account.uid, gid: account.gid, groups: [account.gid])
    }
}

public enum Privileges {
    /// Every group the group database gives `account`: its primary gid first, then each
    /// group that lists the user as a member (what initgroups(3) would install).
    public static func memberships(of account: Account) -> Result<[gid_t], SystemError> {
        if Accounts.isStaticExecutable {
            var list = [account.gid]
            for group in FilesDatabase.groups() where group.members.contains(account.name) && !list.contains(group.gid) {
                list.append(group.gid)
            }
            return .success(list)
        }
        var capacity: Int32 = 64
        // getgrouplist reports the size it needs; a database that keeps growing under us
        // still ends, because each round asks for at least what was reported.
        for _ in 0..<8 {
            var list = [gid_t](repeating: 0, count: Int(capacity))
            var count = capacity
            if getgrouplist(account.name, account.gid, &list, &count) >= 0 {
                return .success(Array(list.prefix(Int(max(0, min(count, capacity))))))
            }
            guard count > capacity else { break }
            capacity = count
        }
        return .failure(SystemError("unable to get groups of", account.name, errno: ENOMEM))
    }

    /// Parses a comma-separated list of group names or numbers ("wheel,100"). A purely
    /// numeric entry is a gid as given; any other entry, the empty one included, must name
    /// a group.
    public static func parseGroups(_ text: String,
                                   lookup: (String) -> Result<gid_t, AccountError> = Accounts.group)
        -> Result<[gid_t], AccountError> {
        var result: [gid_t] = []
        for entry in text.split(separator: ",", omittingEmptySubsequences: false) {
            let name = String(entry)
            if !name.isEmpty, name.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
                guard let gid = gid_t(name) else { return .failure(.noSuchGroup(name)) }
                result.append(gid)
                continue
            }
            switch lookup(name) {
            case .success(let gid): result.append(gid)
            case .failure(let e): return .failure(e)
            }
        }
        return .success(result)
    }

    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        case groups(Int32)
        case gid(Int32)
        case uid(Int32)

        public var description: String {
            switch self {
            case .groups(let e): return "unable to set supplementary groups: \(SystemError.describe(e))"
            case .gid(let e): return "unable to set group id: \(SystemError.describe(e))"
            case .uid(let e): return "unable to set user id: \(SystemError.describe(e))"
            }
        }
    }

    /// Installs `credentials` for good: groups first, then gid, then uid (after setuid a
    /// non-root process could change neither).
    public static func become(_ credentials: Credentials) -> Result<Void, Failure> {
        let groups = credentials.groups
        let rc = groups.withUnsafeBufferPointer { setgroups(groups.count, $0.baseAddress) }
        guard rc == 0 else { return .failure(.groups(errno)) }
        guard setgid(credentials.gid) == 0 else { return .failure(.gid(errno)) }
        guard setuid(credentials.uid) == 0 else { return .failure(.uid(errno)) }
        return .success(())
    }
}
