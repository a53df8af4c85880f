// The suite's users and groups: reference names by default, each overridable, and
// lookups through the C library (NSS), never by parsing /etc/passwd ourselves.
import Glibc

public struct Account: Equatable, Sendable {
    public let name: String
    public let uid: uid_t
    public let gid: gid_t
    public let home: String
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
    public static func user(_ name: String) -> Result<Account, AccountError> {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16384)
        let rc = getpwnam_r(name, &entry, &buffer, buffer.count, &result)
        guard rc == 0 else { return .failure(.lookupFailed(name, rc)) }
        guard let found = result else { return .failure(.noSuchUser(name)) }
        return .success(Account(name: name, uid: found.pointee.pw_uid, gid: found.pointee.pw_gid,
                                home: found.pointee.pw_dir.map { String(cString: $0) } ?? "/"))
    }

    public static func user(uid: uid_t) -> Account? {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16384)
        guard getpwuid_r(uid, &entry, &buffer, buffer.count, &result) == 0, let found = result,
              let name = found.pointee.pw_name else { return nil }
        return Account(name: String(cString: name), uid: uid, gid: found.pointee.pw_gid,
                       home: found.pointee.pw_dir.map { String(cString: $0) } ?? "/")
    }

    public static func group(_ name: String) -> Result<gid_t, AccountError> {
        var entry = Glibc.group()
        var result: UnsafeMutablePointer<Glibc.group>?
        var buffer = [CChar](repeating: 0, count: 16384)
        let rc = getgrnam_r(name, &entry, &buffer, buffer.count, &result)
        guard rc == 0 else { return .failure(.lookupFailed(name, rc)) }
        guard let found = result else { return .failure(.noSuchGroup(name)) }
        return .success(found.pointee.gr_gid)
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
