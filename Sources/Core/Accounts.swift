// The suite's users and groups: reference names by default, each overridable, and
// lookups through the C library (NSS) — except in a fully static executable, where NSS
// would dlopen modules built for the dynamic libc (libnss_systemd crashes there on any
// name that /etc/passwd does not have): that one reads /etc/passwd and /etc/group itself.
import CSupport
import Glibc

public struct Account: Equatable, Sendable {
    public let name: String
    public let uid: uid_t
    public let gid: gid_t
    public let home: String

    public init(name: String, uid: uid_t, gid: gid_t, home: String) {
        (self.name, self.uid, self.gid, self.home) = (name, uid, gid, home)
    }
}

public enum AccountError: Error, Equatable, Sendable, CustomStringConvertible {
    case noSuchUser(String)
    case noSuchGroup(String)
    case lookupFailed(String, Int32)

    public var description: String {
        switch self {
        case .noSuchUser(let n): return "unknown account \(n)"
        case .noSuchGroup(let n): return "unknown group \(n)"
        case .lookupFailed(let n, let e): return "unable to look up \(n): \(SystemError.describe(e))"
        }
    }
}

public enum Accounts {
    /// True in a fully static executable (no dynamic loader mapped: AT_BASE is 0).
    public static let isStaticExecutable = cs_interpreter_base() == 0

    public static func user(_ name: String) -> Result<Account, AccountError> {
        if isStaticExecutable {
            return FilesDatabase.users().first { $0.name == name }.map { .success($0) } ?? .failure(.noSuchUser(name))
        }
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16384)
        let rc = getpwnam_r(name, &entry, &buffer, buffer.count, &result)
        guard rc == 0 else { return .failure(.lookupFailed(name, rc)) }
        guard let found = result else { return .failure(.noSuchUser(name)) }
        return .success(Account(name: name, uid: found.pointee.pw_uid, gid: found.pointee.pw_gid,
                                home: found.pointee.pw_dir.map { String(cString: $0) } ?? "/"))
    }

    /// The uid of account `name`, nil when there is none.
    public static func uid(of name: String) -> uid_t? {
        if case .success(let account) = user(name) { return account.uid }
        return nil
    }

    public static func user(uid: uid_t) -> Account? {
        if isStaticExecutable { return FilesDatabase.users().first { $0.uid == uid } }
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16384)
        guard getpwuid_r(uid, &entry, &buffer, buffer.count, &result) == 0, let found = result,
              let name = found.pointee.pw_name else { return nil }
        return Account(name: String(cString: name), uid: uid, gid: found.pointee.pw_gid,
                       home: found.pointee.pw_dir.map { String(cString: $0) } ?? "/")
    }

    public static func group(_ name: String) -> Result<gid_t, AccountError> {
        if isStaticExecutable {
            return FilesDatabase.groups().first { $0.name == name }.map { .success($0.gid) } ?? .failure(.noSuchGroup(name))
        }
        var entry = Glibc.group()
        var result: UnsafeMutablePointer<Glibc.group>?
        var buffer = [CChar](repeating: 0, count: 16384)
        let rc = getgrnam_r(name, &entry, &buffer, buffer.count, &result)
        guard rc == 0 else { return .failure(.lookupFailed(name, rc)) }
        guard let found = result else { return .failure(.noSuchGroup(name)) }
        return .success(found.pointee.gr_gid)
    }
}

/// /etc/passwd and /etc/group read directly (static executables only; see the top).
/// Malformed lines are skipped, as the C library's files module does.
public enum FilesDatabase {
    public struct Group: Equatable, Sendable {
        public let name: String
        public let gid: gid_t
        public let members: [String]

        public init(name: String, gid: gid_t, members: [String]) {
            (self.name, self.gid, self.members) = (name, gid, members)
        }
    }

    public static func users(path: String = "/etc/passwd") -> [Account] {
        records(path).compactMap { f in
            guard f.count >= 7, !f[0].isEmpty, let uid = uid_t(f[2]), let gid = gid_t(f[3]) else { return nil }
            return Account(name: f[0], uid: uid, gid: gid, home: f[5])
        }
    }

    public static func groups(path: String = "/etc/group") -> [Group] {
        records(path).compactMap { f in
            guard f.count >= 4, !f[0].isEmpty, let gid = gid_t(f[2]) else { return nil }
            return Group(name: f[0], gid: gid, members: f[3].split(separator: ",").map(String.init))
        }
    }

    private static func records(_ path: String) -> [[String]] {
        guard case .success(let bytes) = FD.readFile(path) else { return [] }
        return bytes.split(separator: 10).compactMap { line in
            guard let first = line.first, first != UInt8(ascii: "#"), first != UInt8(ascii: "+"),
                  first != UInt8(ascii: "-") else { return nil }
            return line.split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false)
                .map { String(decoding: $0, as: UTF8.self) }
        }
    }
}

/// The accounts each daemon runs as. Defaults are the reference's; `QMAILD_USER=name`
/// style variables override one each, so a test prefix can map them all to one user.
public struct SuiteAccounts: Equatable, Sendable {
    public var alias = "alias", qmaild = "qmaild", qmaill = "qmaill", qmailp = "qmailp"
    public var qmailq = "qmailq", qmailr = "qmailr", qmails = "qmails", indimail = "indimail"
    public var qmailGroup = "qmail", nofilesGroup = "nofiles"

    public init(environment env: Environment) {
        alias = env.nonEmpty("ALIAS_USER") ?? alias
        qmaild = env.nonEmpty("QMAILD_USER") ?? qmaild
        qmaill = env.nonEmpty("QMAILL_USER") ?? qmaill
        qmailp = env.nonEmpty("QMAILP_USER") ?? qmailp
        qmailq = env.nonEmpty("QMAILQ_USER") ?? qmailq
        qmailr = env.nonEmpty("QMAILR_USER") ?? qmailr
        qmails = env.nonEmpty("QMAILS_USER") ?? qmails
        indimail = env.nonEmpty("INDIMAIL_USER") ?? indimail
        qmailGroup = env.nonEmpty("QMAIL_GROUP") ?? qmailGroup
        nofilesGroup = env.nonEmpty("NOFILES_GROUP") ?? nofilesGroup
    }
}
