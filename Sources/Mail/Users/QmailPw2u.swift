// qmail-pw2u: turns a V7 passwd file into users/assign lines, with the include, exclude,
// mailnames, subusers and append files of the assign directory.
import Core
import Glibc

public struct Pw2uOptions: Equatable, Sendable {
    /// 2: skip users whose home is missing or not theirs; 1: stop on a missing home;
    /// 0: do not look at homes.
    public var homeStrategy = 2
    public var allowUppercase = false
    /// The user-extension delimiter (nil: no extensions).
    public var breakCharacter: UInt8? = 45
    /// `-:` or, with -/, `-/:`.
    public var dashColon: [UInt8] = Array("-:".utf8)
    public init() {}
}

/// The tables qmail-pw2u reads from the assign directory. Keys compare case-insensitively
/// and a later line wins, as the reference's constmap.
public struct Pw2uTables: Sendable {
    public var include: [String]? = nil
    public var exclude: [String]? = nil
    /// user → the text after the first colon ("name1:name2:").
    public var mailnames: [(String, [UInt8])]? = nil
    public var subusers: [UInt8]? = nil
    public var append: [UInt8]? = nil
    public init() {}

    static func matches(_ list: [String]?, _ key: [UInt8]) -> Bool {
        let k = String(decoding: UserAssignments.lowercased(key[...]), as: UTF8.self)
        return list?.contains { $0.lowercased() == k } ?? false
    }
}

public enum Pw2uError: Error, Equatable, Sendable, CustomStringConvertible {
    case home(String), noAlias(String), subuser(String)
    public var description: String {
        switch self {
        case .home(let h): return "unable to stat \(h)"
        case .noAlias(let a): return "unable to find \(a) user"
        case .subuser(let u): return "unable to find \(u) user for subuser"
        }
    }
}

public enum Pw2u {
    /// The whole assign text for `passwd`, ending with the `.` line.
    public static func convert(passwd: [UInt8], tables: Pw2uTables, options: Pw2uOptions, alias: String,
                               homeOwner: (String) -> (uid_t?, Int32)) -> Result<[UInt8], Pw2uError> {
        var out: [UInt8] = []
        var sawAlias = false
        var users: [([UInt8], [UInt8])] = []     // lower-cased user → ":user:uid:gid:home:"
        for line in lines(passwd) {
            guard !line.contains(0) else { continue }
            let f = line.split(separator: 58, maxSplits: 6, omittingEmptySubsequences: false)
            guard f.count == 7 else { continue }
            let user = Array(f[0]), uidText = Array(f[2]), gidText = Array(f[3]), home = Array(f[5])
            let uid = LocalAccount.leadingNumber(uidText)
            if uid == 0 { continue }
            if !options.allowUppercase && user.contains(where: { $0 >= 65 && $0 <= 90 }) { continue }
            if tables.include != nil && !Pw2uTables.matches(tables.include, user) { continue }
            if Pw2uTables.matches(tables.exclude, user) { continue }
            if options.homeStrategy != 0 {
                let homePath = String(decoding: home, as: UTF8.self)
                let (owner, error) = homeOwner(homePath)
                guard let owner else {
                    if error != ENOENT || options.homeStrategy == 1 { return .failure(.home(homePath)) }
                    continue
                }
                if UInt64(owner) != uid { continue }
            }
            let uugh: [UInt8] = [58] + user + [58] + uidText + [58] + gidText + [58] + home + [58]
            users.append((UserAssignments.lowercased(user[...]), uugh))
            if String(decoding: user, as: UTF8.self) == alias {
                out += [43] + uugh + options.dashColon + Array(":\n".utf8)
                sawAlias = true
            }
            var names = user
            if let table = tables.mailnames {
                let key = String(decoding: UserAssignments.lowercased(user[...]), as: UTF8.self)
                if let hit = table.last(where: { $0.0.lowercased() == key }) { names = hit.1 }
            }
            for name in names.split(separator: 58) {
                out += [61] + name + uugh + Array("::\n".utf8)
                if let b = options.breakCharacter {
                    out += [43] + name + [b] + uugh + options.dashColon + Array(":\n".utf8)
                }
            }
        }
        guard sawAlias else { return .failure(.noAlias(alias)) }
        if let subusers = tables.subusers {
            for line in lines(subusers) {
                let f = line.split(separator: 58, maxSplits: 3, omittingEmptySubsequences: false)
                guard f.count == 4 else { continue }
                let sub = Array(f[0]), owner = Array(f[1]), pre = Array(f[2])
                let key = UserAssignments.lowercased(owner[...])
                guard let u = users.last(where: { $0.0 == key })?.1 else {
                    return .failure(.subuser(String(decoding: owner, as: UTF8.self)))
                }
                out += [61] + sub + u + options.dashColon + pre + Array(":\n".utf8)
                if let b = options.breakCharacter {
                    out += [43] + sub + [b] + u + options.dashColon + pre + Array("-:\n".utf8)
                }
            }
        }
        if let append = tables.append { out += append }
        out += Array(".\n".utf8)
        return .success(out)
    }

    /// Lines without their newline; a last line without one counts too.
    static func lines(_ text: [UInt8]) -> [ArraySlice<UInt8>] {
        var out = text.split(separator: 10, omittingEmptySubsequences: false)
        if out.last?.isEmpty == true { out.removeLast() }
        return out
    }

    /// Reads the optional tables from `dir`.
    public static func loadTables(_ dir: String) -> Result<Pw2uTables, ControlError> {
        let control = ControlFiles(directory: dir)
        var t = Pw2uTables()
        do {
            t.include = try control.list("include").get()
            t.exclude = try control.list("exclude").get()
            if let lines = try control.list("mailnames").get() {
                t.mailnames = lines.compactMap { line in
                    guard let colon = line.firstIndex(of: ":") else { return nil }
                    return (String(line[..<colon]), Array(line[line.index(after: colon)...].utf8))
                }
            }
            t.subusers = try control.contents("subusers").get()
            t.append = try control.contents("append").get()
        } catch {
            return .failure(error)
        }
        return .success(t)
    }
}

public struct QmailPw2uCommand: Command {
    public static let name = "qmail-pw2u"
    public static let installDirectory = InstallDirectory.sbin
    public static let summary = "build address assignments from a passwd file"

    public static func run(_ context: CommandContext) -> Int32 {
        let diag = context.diagnostics
        var options = Pw2uOptions()
        let parsed: (items: [OptionParser.Item], operandIndex: Int)
        switch OptionParser("/ohHuUc:C").parse(context.strings) {
        case .failure(let e): diag.warning(e.description); return diag.usage("qmail-pw2u [ -/ohHuUC ] [ -cchar ]")
        case .success(let p): parsed = p
        }
        for item in parsed.items {
            switch item {
            case .flag("/"): options.dashColon = Array("-/:".utf8)
            case .flag("o"): options.homeStrategy = 2
            case .flag("h"): options.homeStrategy = 1
            case .flag("H"): options.homeStrategy = 0
            case .flag("u"): options.allowUppercase = true
            case .flag("U"): options.allowUppercase = false
            case .flag("C"): options.breakCharacter = nil
            case .value("c", let v): options.breakCharacter = v.utf8.first
            default: break
            }
        }
        let dir = SuitePaths(environment: context.environment).assignDirectory
        let tables: Pw2uTables
        switch Pw2u.loadTables(dir) {
        case .failure(let e): return diag.fatal(ExitCode.temporary, "unable to read controls: \(e)")
        case .success(let t): tables = t
        }
        guard case .success(let passwd) = FD.readAll(0) else { return diag.fatal(ExitCode.temporary, "unable to read input") }
        let alias = SuiteAccounts(environment: context.environment).alias
        switch Pw2u.convert(passwd: passwd, tables: tables, options: options, alias: alias,
                            homeOwner: PasswdResolver.systemHomeOwner) {
        case .failure(let e): return diag.fatal(ExitCode.temporary, e.description)
        case .success(let out):
            guard case .success = FD.writeAll(1, out) else { return diag.fatal(ExitCode.temporary, "unable to write output") }
            return 0
        }
    }
}
