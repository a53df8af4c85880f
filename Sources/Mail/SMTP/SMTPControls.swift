// qmail-smtpd's control files, read once (by tcpserver's parent when preloaded) and the
// lookups the session makes in them: rcpthosts/morercpthosts, bad* lists, relayclients,
// relaydomains and the recipients list.
import Core
import Glibc

/// A list of addresses matched as the reference's badmailfrom: the whole address, or its
/// `@domain`, lower-cased. Backed by `<name>.cdb` when present, else the text file.
public struct AddressList {
    let set: ControlSet?

    public static var empty: AddressList { AddressList(set: nil) }

    public static func load(_ name: String, in control: ControlFiles) -> Result<AddressList, ControlError> {
        ControlSet.load(name, in: control).map { AddressList(set: $0.isEmpty ? nil : $0) }
    }

    public func matches(_ address: [UInt8]) -> Result<Bool, ControlError> {
        guard let set else { return .success(false) }
        let lower = SMTPAddress.lowercased(address)
        switch set.contains(String(decoding: lower, as: UTF8.self)) {
        case .failure(let e): return .failure(e)
        case .success(true): return .success(true)
        case .success(false): break
        }
        guard let at = lower.lastIndex(of: 64) else { return .success(false) }
        return set.contains(String(decoding: lower[at...], as: UTF8.self))
    }
}

/// A `*patterns` file: shell wildcards tried in order against the whole address, case
/// ignored; a pattern led by '!' takes a match back (so "*@isp.net" then "!fred@isp.net"
/// refuses everyone at isp.net but fred).
public struct PatternList: Sendable {
    public var patterns: [String]

    public init(_ patterns: [String]) { self.patterns = patterns }

    /// glibc's FNM_CASEFOLD (a GNU extension the Glibc module does not import).
    static let caseFold: Int32 = 1 << 4

    public func matches(_ address: [UInt8]) -> Bool {
        var matched = false
        let subject = String(decoding: address, as: UTF8.self)
        for pattern in patterns {
            let negated = pattern.hasPrefix("!")
            let body = negated ? String(pattern.dropFirst()) : pattern
            if fnmatch(body, subject, PatternList.caseFold) == 0 { matched = !negated }
        }
        return matched
    }
}

/// `key:value` lines (relayclients, relaydomains): the value is what RELAYCLIENT would be.
public struct PrefixRules: Sendable {
    public var rules: [(key: String, value: String)] = []

    public init(lines: [String]) {
        for line in lines {
            if let colon = line.firstIndex(of: ":") {
                rules.append((String(line[..<colon]).lowercased(), String(line[line.index(after: colon)...])))
            } else {
                rules.append((line.lowercased(), ""))
            }
        }
    }

    /// relayclients: an entry ending in '.' (or ':' for IPv6) is a prefix, else the whole IP.
    public func matchIP(_ ip: String) -> String? {
        for rule in rules where ip == rule.key || (rule.key.last.map { $0 == "." || $0 == ":" } == true && ip.hasPrefix(rule.key)) {
            return rule.value
        }
        return nil
    }

    /// relaydomains: the host itself, or an entry ".suffix" the host ends with.
    public func matchHost(_ host: String) -> String? {
        let lower = host.lowercased()
        for rule in rules where lower == rule.key || (rule.key.hasPrefix(".") && lower.hasSuffix(rule.key)) {
            return rule.value
        }
        return nil
    }
}

/// CHECKSENDER's files: `chksenderdomains` (when present, the check applies only to the
/// addresses it lists) and `locals` (domains whose users are system accounts).
public struct SenderCheckControls {
    public var domains: AddressList?
    public var locals: ControlSet?
    public init() {}
}

/// Everything qmail-smtpd reads from CONTROLDIR.
public struct SMTPControls {
    public var controlDirectory: String
    /// Relative names in `recipients` are under SYSCONFDIR (the reference's cwd).
    public var sysconfDirectory = "/"
    public var greeting: [String] = []
    public var me = ""
    public var localIPHost = ""
    public var databytes = 0
    public var maxHops = 100
    public var maxRecipients = 0
    public var maxCommandLength = 0
    public var timeout = 1200
    public var greetDelay = 0
    public var tarpitCount = 0
    public var tarpitDelay = 5
    /// nil when rcpthosts is missing (the reference then accepts every recipient).
    public var rcpthosts: ControlSet?
    public var moreRcpthosts: CDB?
    public var badMailFrom = AddressList.empty
    public var badRcptTo = AddressList.empty
    public var goodRcptTo = AddressList.empty
    public var badHelo = AddressList.empty
    public var relayClients = PrefixRules(lines: [])
    public var relayDomains = PrefixRules(lines: [])
    public var badMailPatterns = PatternList([])
    public var badRcptPatterns = PatternList([])
    public var goodRcptPatterns = PatternList([])
    /// Senders (or `@domain`) exempt from the sender DNS check.
    public var noDNSCheck = AddressList.empty
    /// The `recipients` file's lines; nil when it does not exist.
    public var recipients: [String]?
    public var checkRecipientDomains: AddressList?
    /// What CHECKSENDER reads.
    public var senderChecks = SenderCheckControls()
    /// The first control file that could not be read: the session answers 421/451 and ends.
    public var problem: String?

    public init(controlDirectory: String) { self.controlDirectory = controlDirectory }

    /// Reads the files. Environment variables that name other files (BADMAILFROM, BADRCPTTO,
    /// GOODRCPTTO, BADHELO, RELAYCLIENTS) are honoured here and again per connection.
    public static func load(_ env: Environment) -> SMTPControls {
        let control = ControlFiles(paths: SuitePaths(environment: env))
        var c = SMTPControls(controlDirectory: control.directory)
        c.sysconfDirectory = SuitePaths(environment: env).sysconfDirectory
        do throws(ControlError) {
            c.me = try control.value("me").get() ?? ""
            if let text = try control.contents("smtpgreeting").get() {
                c.greeting = text.split(separator: 10).map { line in
                    var l = Array(line)
                    while let last = l.last, last == 13 || last == 32 || last == 9 { l.removeLast() }
                    return String(decoding: l, as: UTF8.self)
                }.filter { !$0.isEmpty }
            }
            if c.greeting.isEmpty, !c.me.isEmpty { c.greeting = [c.me] }
            c.localIPHost = try control.value("localiphost").get() ?? c.me
            c.databytes = try control.integer("databytes", default: 0).get()
            c.maxHops = try control.integer("maxhops", default: 100).get()
            c.maxRecipients = try control.integer("maxrecipients", default: 0).get()
            c.maxCommandLength = try control.integer("maxcmdlen", default: 0).get()
            c.timeout = try control.integer("timeoutsmtpd", default: 1200).get()
            c.tarpitCount = try control.integer("tarpitcount", default: 0).get()
            c.tarpitDelay = try control.integer("tarpitdelay", default: 5).get()
            if let text = try control.value("greetdelay").get(), let n = Int(text) { c.greetDelay = n }
            if try control.contents("rcpthosts").get() != nil || access(control.path("rcpthosts.cdb"), F_OK) == 0 {
                c.rcpthosts = try ControlSet.load("rcpthosts", in: control).get()
            }
            switch CDB.open(control.path("morercpthosts.cdb")) {
            case .success(let db): c.moreRcpthosts = db
            case .failure(.system(let e)) where e.errno == ENOENT: break
            case .failure(let e): throw ControlError.cdb(path: control.path("morercpthosts.cdb"), e)
            }
            c.badMailFrom = try AddressList.load(env.nonEmpty("BADMAILFROM") ?? "badmailfrom", in: control).get()
            c.badRcptTo = try AddressList.load(env.nonEmpty("BADRCPTTO") ?? "badrcptto", in: control).get()
            c.goodRcptTo = try AddressList.load(env.nonEmpty("GOODRCPTTO") ?? "goodrcptto", in: control).get()
            c.badHelo = try AddressList.load(env.nonEmpty("BADHELO") ?? "badhelo", in: control).get()
            c.relayClients = PrefixRules(lines: try control.list(env.nonEmpty("RELAYCLIENTS") ?? "relayclients").get() ?? [])
            c.relayDomains = PrefixRules(lines: try control.list("relaydomains").get() ?? [])
            c.noDNSCheck = try AddressList.load("nodnscheck", in: control).get()
            // The wildcard files are the reference's, and off when QREGEX asks for regexes.
            if !env.contains("QREGEX") {
                c.badMailPatterns = PatternList(try control.list(env.nonEmpty("BADMAILPATTERNS") ?? "badmailpatterns").get() ?? [])
                c.badRcptPatterns = PatternList(try control.list(env.nonEmpty("BADRCPTPATTERNS") ?? "badrcptpatterns").get() ?? [])
                c.goodRcptPatterns = PatternList(try control.list(env.nonEmpty("GOODRCPTPATTERNS") ?? "goodrcptpatterns").get() ?? [])
            }
            c.recipients = try control.list("recipients").get()
            if try control.contents("chksenderdomains").get() != nil || access(control.path("chksenderdomains.cdb"), F_OK) == 0 {
                c.senderChecks.domains = try AddressList.load("chksenderdomains", in: control).get()
            }
            if try control.contents("locals").get() != nil || access(control.path("locals.cdb"), F_OK) == 0 {
                c.senderChecks.locals = try ControlSet.load("locals", in: control).get()
            }
            if try control.contents("chkrcptdomains").get() != nil {
                c.checkRecipientDomains = try AddressList.load("chkrcptdomains", in: control).get()
            }
        } catch {
            c.problem = error.description
        }
        if c.problem == nil && c.greeting.isEmpty { c.problem = "unable to read controls: no me or smtpgreeting in \(control.directory)" }
        return c
    }

    /// The reference's addrallowed: no domain, the domain, or a ".suffix" of it listed.
    public func recipientAllowed(_ address: [UInt8]) -> Result<Bool, ControlError> {
        guard let rcpthosts else { return .success(true) }
        guard let domain = SMTPAddress.domain(address) else { return .success(true) }
        var candidates = [domain]
        for (i, c) in domain.enumerated() where c == 46 { candidates.append(Array(domain[i...])) }
        for key in candidates {
            switch rcpthosts.contains(String(decoding: key, as: UTF8.self)) {
            case .failure(let e): return .failure(e)
            case .success(true): return .success(true)
            case .success(false): break
            }
            if let more = moreRcpthosts {
                switch more.find(key) {
                case .failure(let e): return .failure(.cdb(path: "morercpthosts.cdb", e))
                case .success(let v): if v != nil { return .success(true) }
                }
            }
        }
        return .success(false)
    }

    public enum RecipientCheck: Equatable, Sendable { case found, absent, notConfigured, failed(String) }

    /// The reference's `recipients` lookup (cdb sources only; `dom|program` entries are
    /// not run and count as no match): key ":user@domain" lower-cased, and the VERP base
    /// ("user-@domain") when the local part has a '-', '=' or '+'.
    public func recipientListed(_ address: [UInt8]) -> RecipientCheck {
        guard let lines = recipients else { return .notConfigured }
        var full = SMTPAddress.lowercased(address)
        let domain: [UInt8]
        if let at = full.lastIndex(of: 64) { domain = Array(full[(at + 1)...]) } else { domain = Array("localhost".utf8); full += [64] + domain }
        let key = [58] + full
        var verpKey: [UInt8]? = nil
        if let at = full.lastIndex(of: 64), let cut = full[..<at].firstIndex(where: { $0 == 45 || $0 == 61 || $0 == 43 }) {
            verpKey = [58] + full[...cut] + [64] + domain
        }
        let host = String(decoding: domain, as: UTF8.self)
        func lookup(_ path: String) -> Bool? {
            let resolved = path.hasPrefix("/") ? path : Path.join(sysconfDirectory, path)
            guard case .success(let db) = CDB.open(resolved) else { return nil }
            if case .success(let v) = db.find(key), v != nil { return true }
            if let verpKey, case .success(let v) = db.find(verpKey), v != nil { return true }
            return false
        }
        for line in lines {
            if line.hasPrefix("!") {
                if line == "!*" || String(line.dropFirst()) == host { return .found }
                continue
            }
            guard let colon = line.firstIndex(of: ":") else {
                if !line.contains("|"), lookup(line) == true { return .found }
                continue
            }
            let pattern = String(line[..<colon]), source = String(line[line.index(after: colon)...])
            let applies = pattern == "*" || pattern == "@" + host || (!pattern.hasPrefix("@") && (host == pattern || host.hasSuffix("." + pattern)))
            if applies, lookup(source) == true { return .found }
        }
        return .absent
    }
}
