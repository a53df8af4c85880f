// svctool's command line: the reference's long options (`--name=value`, `--name`), one
// action per run, parsed into a value without touching the system.

public enum SvctoolAction: Equatable, Sendable {
    case smtp(port: String)
    case qmtp(port: String)
    case qmqp(port: String)
    case delivery(ident: String)
    case queueParam(name: String)
    case svscanlog
    case slowq
    case queued
    case config(String)
    case rmsvc([String])
    case ensvc([String])
    case refreshsvc(String)
    case autorefresh(String)
    case setVariable(String)
    case modifyVariable(String)
    case unsetVariable(String)
    case removeVariable(String)
    case importVariables(String)
    case exportVariables(String)
    case printVariables
    case printAllVariables
    case saveVariables
    case restoreVariables
    case restoreAllVariables
    case dumpconfig
    case backup(String)
    case queuefix(String)
    case template(String)
    case help
    case version
}

public enum SvctoolOptionError: Error, Equatable, CustomStringConvertible {
    case unknown(String)
    case needsValue(String)
    case takesNoValue(String)
    case conflicting(String, String)
    case noAction
    case invalid(String)

    public var description: String {
        switch self {
        case .unknown(let o): return "invalid option [\(o)]"
        case .needsValue(let o): return "option --\(o) needs a value (--\(o)=...)"
        case .takesNoValue(let o): return "option --\(o) takes no value"
        case .conflicting(let a, let b): return "conflicting options --\(a) and --\(b): give one action at a time"
        case .noAction: return "no action given (try --help)"
        case .invalid(let why): return why
        }
    }
}

public struct SvctoolOptions: Equatable, Sendable {
    public var action: SvctoolAction
    /// The action's own option name, e.g. "smtp".
    public var actionName: String
    public var values: [String: String] = [:]
    public var flags: Set<String> = []
    /// The arguments as given, for variables/.options.
    public var arguments: [String]

    public func value(_ name: String) -> String? { values[name] }
    public func flag(_ name: String) -> Bool { flags.contains(name) }

    /// Options that choose what svctool does.
    static let actionsWithValue: Set<String> = [
        "smtp", "qmtp", "qmqp", "delivery", "queueParam", "config", "rmsvc", "ensvc", "refreshsvc",
        "autorefresh", "set-variable", "modify-variable", "unset-variable", "remove-variable",
        "import-variables", "export-variables", "backup", "template", "queuefix",
    ]
    static let actionFlags: Set<String> = ["svscanlog", "slowq", "queued", "print-variables", "print-all-variables", "save-variables",
                                           "restore-variables", "restore-all-variables", "dumpconfig", "help", "version"]
    /// Settings that take a value.
    static let valued: Set<String> = [
        "servicedir", "qbase", "qcount", "qstart", "cntrldir", "sysconfdir", "localip", "maxdaemons", "maxperip",
        "memory", "dmemory", "min-free", "qtype", "remote-authsmtp", "servicetag", "service-name",
        "variable-value", "envdir", "default-domain", "spamfilter", "rbl", "routes", "initcmd", "scanint",
        "postmaster", "common_name", "validity_days", "certdir", "owner", "group", "mode", "msgqsize",
        "deliverylimit-count", "deliverylimit-size", "overquota_mailsize", "logfilter", "hostname", "unitdir",
        "qhpsi", "viruscheck", "databytes", "qmailqueue", "qmailsmtpd", "dkverify", "dksign", "private_key", "death", "altroot",
        "queue-socket", "workers",
    ]
    /// Switches.
    static let switches: Set<String> = [
        "ssl", "starttls", "forcetls", "fsync", "fdatasync", "syncdir", "persistdb", "chkrecipient", "chksender",
        "chkrelay", "cugmail", "masquerade", "antispoof", "authsmtp", "forceauthsmtp", "secureauth", "authall",
        "enablecram", "no-multi", "skipsend", "down", "force", "silent", "run-file-only", "hidehost", "utf8",
        "helofqdn", "helocheck", "qregex", "barelf", "setgroups", "dnscheck", "remotefilter", "localfilter",
        "enable-cname-lookup", "update-certs", "wipe", "unshare", "stdout", "odmr", "use-queued",
    ]

    public static func parse(_ arguments: [String]) -> Result<SvctoolOptions, SvctoolOptionError> {
        var action: SvctoolAction? = nil
        var actionName = ""
        var values: [String: String] = [:]
        var flags: Set<String> = []
        for argument in arguments {
            guard argument.hasPrefix("--"), argument.count > 2 else { return .failure(.unknown(argument)) }
            let body = argument.dropFirst(2)
            let name: String
            let value: String?
            if let eq = body.firstIndex(of: "=") {
                name = String(body[..<eq])
                value = String(body[body.index(after: eq)...])
            } else {
                name = String(body)
                value = nil
            }
            var chosen: SvctoolAction? = nil
            if actionsWithValue.contains(name) {
                guard let value, !value.isEmpty else { return .failure(.needsValue(name)) }
                switch name {
                case "smtp": chosen = .smtp(port: value)
                case "qmtp": chosen = .qmtp(port: value)
                case "qmqp": chosen = .qmqp(port: value)
                case "delivery": chosen = .delivery(ident: value)
                case "queueParam":
                    guard !value.contains("/") else { return .failure(.invalid("queuedef cannot be an absolute path")) }
                    chosen = .queueParam(name: value)
                case "config": chosen = .config(value)
                case "rmsvc": chosen = .rmsvc(value.split(separator: " ").map(String.init))
                case "ensvc": chosen = .ensvc(value.split(separator: " ").map(String.init))
                case "refreshsvc": chosen = .refreshsvc(value)
                case "autorefresh": chosen = .autorefresh(value)
                case "set-variable": chosen = .setVariable(value)
                case "modify-variable": chosen = .modifyVariable(value)
                case "unset-variable": chosen = .unsetVariable(value)
                case "remove-variable": chosen = .removeVariable(value)
                case "import-variables": chosen = .importVariables(value)
                case "export-variables": chosen = .exportVariables(value)
                case "backup": chosen = .backup(value)
                case "queuefix": chosen = .queuefix(value)
                default: chosen = .template(value)
                }
            } else if actionFlags.contains(name) {
                guard value == nil else { return .failure(.takesNoValue(name)) }
                switch name {
                case "svscanlog": chosen = .svscanlog
                case "slowq": chosen = .slowq
                case "queued": chosen = .queued
                case "print-variables": chosen = .printVariables
                case "print-all-variables": chosen = .printAllVariables
                case "save-variables": chosen = .saveVariables
                case "restore-variables": chosen = .restoreVariables
                case "restore-all-variables": chosen = .restoreAllVariables
                case "dumpconfig": chosen = .dumpconfig
                case "help": chosen = .help
                default: chosen = .version
                }
            } else if valued.contains(name) {
                guard let value else { return .failure(.needsValue(name)) }
                // --rbl may be repeated: each adds rblsmtpd arguments.
                if name == "rbl", let earlier = values[name] { values[name] = earlier + " " + value } else { values[name] = value }
            } else if switches.contains(name) {
                guard value == nil else { return .failure(.takesNoValue(name)) }
                flags.insert(name)
            } else {
                return .failure(.unknown(argument))
            }
            if let chosen {
                if action != nil, actionName != name { return .failure(.conflicting(actionName, name)) }
                action = chosen
                actionName = name
            }
        }
        guard let action else { return .failure(.noAction) }
        var options = SvctoolOptions(action: action, actionName: actionName, values: values, flags: flags,
                                     arguments: arguments)
        if case .failure(let e) = options.validate() { return .failure(e) }
        options.values = values
        return .success(options)
    }

    /// Numbers must be numbers, ports ports, and switches must not contradict each other.
    func validate() -> Result<Void, SvctoolOptionError> {
        func number(_ name: String) -> Result<Void, SvctoolOptionError> {
            guard let v = values[name] else { return .success(()) }
            guard !v.isEmpty, v.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), Int(v) != nil else {
                return .failure(.invalid("--\(name) wants a number: \(v)"))
            }
            return .success(())
        }
        for name in ["qcount", "qstart", "maxdaemons", "maxperip", "memory", "dmemory", "min-free", "scanint",
                     "validity_days", "msgqsize", "databytes", "death", "workers"] {
            if case .failure(let e) = number(name) { return .failure(e) }
        }
        if let c = values["qcount"], Int(c) == 0 { return .failure(.invalid("--qcount must be at least 1")) }
        switch action {
        case .smtp(let p), .qmtp(let p), .qmqp(let p):
            guard let port = Int(p), port > 0, port < 65536 else { return .failure(.invalid("invalid port: \(p)")) }
        case .delivery(let ident):
            guard !ident.contains("/") else { return .failure(.invalid("invalid delivery ident: \(ident)")) }
        default: break
        }
        if flag("ssl") && flag("starttls") {
            return .failure(.invalid("--ssl and --starttls cannot be combined: SMTPS starts TLS at once"))
        }
        if let q = values["qtype"], !["static", "dynamic", "compat"].contains(q) {
            return .failure(.invalid("--qtype must be static, dynamic or compat: \(q)"))
        }
        if let d = values["dkverify"], !["dkim", "dkimstrict", "none"].contains(d) {
            return .failure(.invalid("invalid --dkverify=\(d) (dkim, dkimstrict or none)"))
        }
        if let d = values["dksign"] {
            guard ["dkim", "none"].contains(d) else { return .failure(.invalid("invalid --dksign=\(d) (dkim or none)")) }
            if d == "dkim" && values["private_key"] == nil { return .failure(.invalid("--dksign=dkim needs --private_key")) }
        }
        if let w = values["workers"], let n = Int(w), !(1...1000).contains(n) {
            return .failure(.invalid("--workers must be 1 to 1000: \(w)"))
        }
        if let socket = values["queue-socket"] {
            // sun_path holds 108 bytes with the terminating NUL; a relative path would mean
            // each service's own directory.
            guard socket.hasPrefix("/"), socket.utf8.count < 108, !socket.hasSuffix("/") else {
                return .failure(.invalid("--queue-socket wants an absolute path shorter than 108 bytes: \(socket)"))
            }
        }
        if let tag = values["servicetag"], tag.contains("/") || tag.isEmpty {
            return .failure(.invalid("invalid --servicetag: \(tag)"))
        }
        return .success(())
    }
}

/// Splits a stored command line (variables/.options) into words: blanks separate, single and
/// double quotes group, backslash escapes the next character.
public func shellWords(_ line: String) -> [String] {
    var words: [String] = []
    var current = ""
    var inWord = false
    var quote: Character? = nil
    var escape = false
    for c in line {
        if escape { current.append(c); escape = false; inWord = true; continue }
        if let q = quote {
            if c == q { quote = nil } else if c == "\\" && q == "\"" { escape = true } else { current.append(c) }
            continue
        }
        switch c {
        case "\\": escape = true; inWord = true
        case "'", "\"": quote = c; inWord = true
        case " ", "\t", "\n":
            if inWord { words.append(current); current = ""; inWord = false }
        default: current.append(c); inWord = true
        }
    }
    if inWord { words.append(current) }
    return words
}

/// Quotes a word for a shell command line when it needs it.
public func shellQuote(_ word: String) -> String {
    let safe = word.utf8.allSatisfy { b in
        (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || "-_=./,:@%+".utf8.contains(b)
    }
    if safe && !word.isEmpty { return word }
    var out = "'"
    for c in word { if c == "'" { out += "'\\''" } else { out.append(c) } }
    return out + "'"
}
