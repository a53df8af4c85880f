// Environment rules (from.envrules, domainqueue, …): lines `pattern:VAR=value,VAR2=,…`
// that set or unset variables for one transaction when an address matches the pattern.
import Core
import Glibc

public struct EnvRules: Equatable, Sendable {
    public enum Setting: Equatable, Sendable {
        case set(String, String)
        case unset(String)
    }

    public struct Rule: Equatable, Sendable {
        public var pattern: String
        public var settings: [Setting]
    }

    /// How patterns match: shell wildcards (the default), fnmatch with case folding
    /// (USE_FNMATCH), or POSIX extended regular expressions (QREGEX).
    public enum Matching: Equatable, Sendable {
        case wildcard, caseFoldedWildcard, regex

        public init(environment env: Environment) {
            if let q = env["QREGEX"], QueueLayout.leadingNumber(q) != 0 { self = .regex }
            else if env.contains("USE_FNMATCH") { self = .caseFoldedWildcard }
            else { self = .wildcard }
        }
    }

    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        case unreadable(String, ControlError)
        case badPattern(String)
        public var description: String {
            switch self {
            case .unreadable(let name, _): return "unable to read control file \(name)"
            case .badPattern: return "regex compilation failed"
            }
        }
    }

    public var rules: [Rule]

    public init(rules: [Rule]) { self.rules = rules }

    /// `VAR=value,VAR2=,…`: a trailing `=` unsets; `\,` keeps a comma in a value.
    public static func settings(_ text: String) -> [Setting] {
        var items: [String] = []
        var current = ""
        var escaped = false
        for ch in text {
            if escaped { current.append(ch == "," ? "," : "\\"); if ch != "," { current.append(ch) }; escaped = false; continue }
            if ch == "\\" { escaped = true; continue }
            if ch == "," { items.append(current); current = ""; continue }
            current.append(ch)
        }
        if escaped { current.append("\\") }
        items.append(current)
        return items.compactMap { raw in
            let item = String(raw.drop { $0 == " " || $0 == "\t" })
            guard !item.isEmpty else { return nil }
            if item.hasSuffix("=") { return .unset(String(item.dropLast())) }
            guard let eq = item.firstIndex(of: "=") else { return nil }
            return .set(String(item[..<eq]), String(item[item.index(after: eq)...]))
        }
    }

    /// Rules from the lines of a control file; lines without a colon are skipped.
    public static func parse(_ lines: [String]) -> EnvRules {
        EnvRules(rules: lines.compactMap { line in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return Rule(pattern: String(line[..<colon]), settings: settings(String(line[line.index(after: colon)...])))
        })
    }

    /// The rules of control file `name` (or of the file named by `$variable`, relative to
    /// the control directory unless absolute); nil when the file does not exist.
    public static func load(_ name: String, variable: String, environment env: Environment) -> Result<EnvRules?, Failure> {
        let file = env[variable] ?? name
        let control = file.hasPrefix("/") ? ControlFiles(directory: Path.dirname(file))
                                           : ControlFiles(paths: SuitePaths(environment: env))
        switch control.list(file.hasPrefix("/") ? Path.basename(file) : file) {
        case .failure(let e): return .failure(.unreadable(file, e))
        case .success(nil): return .success(nil)
        case .success(let lines?): return .success(parse(lines))
        }
    }

    static func matches(_ text: String, _ pattern: String, _ how: Matching) -> Result<Bool, Failure> {
        switch how {
        case .wildcard: return .success(fnmatch(pattern, text, 0) == 0)
        case .caseFoldedWildcard: return .success(fnmatch(pattern, text, FNM_PATHNAME | 1 << 4 /* GNU FNM_CASEFOLD */) == 0)
        case .regex:
            var re = regex_t()
            guard regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB) == 0 else { return .failure(.badPattern(pattern)) }
            defer { regfree(&re) }
            return .success(regexec(&re, text, 0, nil, 0) == 0)
        }
    }

    /// Applies every rule whose pattern matches `address` (an empty address also matches
    /// an empty or `<>` pattern), in file order. Returns the 1-based line of the last match, 0 for none.
    public func apply(to address: String, matching how: Matching, environment env: inout Environment) -> Result<Int, Failure> {
        var last = 0
        for (n, rule) in rules.enumerated() {
            var hit = address.isEmpty && (rule.pattern.isEmpty || rule.pattern == "<>")
            if !hit {
                switch Self.matches(address, rule.pattern, how) {
                case .failure(let e): return .failure(e)
                case .success(let m): hit = m
                }
            }
            guard hit else { continue }
            for s in rule.settings {
                switch s {
                case .set(let k, let v): env.set(k, Array(v.utf8))
                case .unset(let k): env.unset(k)
                }
            }
            last = n + 1
        }
        return .success(last)
    }
}
