// rblsmtpd's decision: $RBLSMTPD, then the -r/-a sources in command-line order (spec §7.2).
// Pure apart from the lookups it is handed, so it can be tested without a name server.
import Core

/// rblsmtpd's command line, parsed.
public struct RblsmtpdOptions: Equatable, Sendable {
    /// The options that act in order: flags change how later sources are treated.
    public enum Step: Equatable, Sendable {
        /// -b (true: 553 for listed sites) / -B (false: 451, the default).
        case bounce(Bool)
        /// -c (true: a failed lookup blocks) / -C (false: it lets through, the default).
        case failClosed(Bool)
        /// -r base (TXT lookup, the record is the message) or -r base:text (address
        /// lookup, `text` is the message).
        case rbl(base: String, message: String?)
        /// -a base: an address record means "accept, stop looking".
        case antiRBL(base: String)
    }

    public var steps: [Step] = []
    /// -t: seconds a blocked session may last; 0 sends the error once and hangs up.
    public var timeout: UInt32 = 60
    /// -w: greeting delay in seconds.
    public var greetDelay: UInt32?
    /// -W: take the greeting delay from $GREETDELAY.
    public var greetDelayFromEnvironment = false
    /// The program to run when the client is not blocked, exact bytes.
    public var program: [[UInt8]] = []

    public init() {}

    public static let synopsis =
        "rblsmtpd [ -b | -B ] [ -c | -C ] [ -t timeout ] [ -w delay ] [ -W ] -r base[:text] [ -r ... ] [ -a base ] smtpd [ arg ... ]"

    /// Parses argv[1...]. Fails (usage) on unknown options, a non-numeric -t or -w, no -r
    /// at all, or no program.
    public static func parse(_ arguments: [[UInt8]]) -> Result<RblsmtpdOptions, UsageProblem> {
        let strings = arguments.map { String(decoding: $0, as: UTF8.self) }
        let parsed: (items: [OptionParser.Item], operandIndex: Int)
        switch OptionParser("bBcCt:r:a:w:W").parse(strings) {
        case .failure(let f): return .failure(UsageProblem(f.description))
        case .success(let p): parsed = p
        }
        var options = RblsmtpdOptions()
        var sawRBL = false
        for item in parsed.items {
            switch item {
            case .flag("b"): options.steps.append(.bounce(true))
            case .flag("B"): options.steps.append(.bounce(false))
            case .flag("c"): options.steps.append(.failClosed(true))
            case .flag("C"): options.steps.append(.failClosed(false))
            case .flag("W"): options.greetDelayFromEnvironment = true
            case .value("t", let v):
                guard let t = seconds(v) else { return .failure(UsageProblem("bad timeout: \(v)")) }
                options.timeout = t
            case .value("w", let v):
                guard let d = seconds(v) else { return .failure(UsageProblem("bad delay: \(v)")) }
                options.greetDelay = d
            case .value("r", let v):
                sawRBL = true
                if let colon = v.firstIndex(of: ":") {
                    options.steps.append(.rbl(base: String(v[..<colon]), message: String(v[v.index(after: colon)...])))
                } else {
                    options.steps.append(.rbl(base: v, message: nil))
                }
            case .value("a", let v): options.steps.append(.antiRBL(base: v))
            default: return .failure(UsageProblem("unexpected option"))
            }
        }
        guard sawRBL else { return .failure(UsageProblem("at least one -r base is required")) }
        options.program = Array(arguments[min(parsed.operandIndex, arguments.count)...])
        guard !options.program.isEmpty else { return .failure(UsageProblem("no program to run")) }
        return .success(options)
    }

    /// Decimal seconds, digits only, at most a year (what alarm(2) and sleep take easily).
    static func seconds(_ text: String) -> UInt32? {
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
        guard let value = UInt64(text.prefix(12)), text.count <= 12 else { return nil }
        return UInt32(min(value, 366 * 86400))
    }
}

public struct UsageProblem: Error, Equatable, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Who is connecting, as rblsmtpd sees it: $TCPREMOTEIP as text (an IPv4-mapped address
/// shown as plain IPv4) and, when it is a valid address, the address itself.
public struct RemoteClient: Equatable, Sendable {
    public var text: String
    public var address: IPAddress?

    public init(environment: Environment) {
        let raw = environment["TCPREMOTEIP"] ?? ""
        var text = raw
        if raw.lowercased().hasPrefix("::ffff:"), IPAddress(raw.dropFirst(7))?.isIPv4 == true {
            text = String(raw.dropFirst(7))
        }
        self.text = text
        self.address = IPAddress(text)?.unmapped
    }

    /// Every `%IP%` in `template` replaced by the client's address.
    public func substitute(_ template: [UInt8]) -> [UInt8] {
        let marker = Array("%IP%".utf8)
        let ip = Array(text.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(template.count)
        var i = 0
        while i < template.count {
            if template[i] == marker[0], template.count - i >= 4, Array(template[i..<(i + 4)]) == marker {
                out += ip
                i += 4
            } else {
                out.append(template[i])
                i += 1
            }
        }
        return out
    }
}

/// What rblsmtpd does with a connection.
public enum RblsmtpdVerdict: Equatable, Sendable {
    /// Run the program.
    case accept
    /// Hold the limited SMTP conversation, answering with `code` (451 or 553) and `text`.
    case block(code: Int, text: [UInt8])

    /// The SMTP reply line for a blocked client (no CRLF): the code, a space, the text cut
    /// to 200 bytes, with every byte outside printable ASCII turned into '?'.
    public var reply: [UInt8] {
        guard case .block(let code, let text) = self else { return [] }
        return Array("\(code) ".utf8) + text.prefix(200).map { $0 < 32 || $0 > 126 ? UInt8(ascii: "?") : $0 }
    }
}

/// The DNS questions the decision needs, so tests can answer them without a server.
public struct RBLLookups {
    /// TXT records of a name, all their strings joined; empty when there are none.
    public var text: (DNSName) -> Result<[UInt8], DNSError>
    /// Whether a name has an address record.
    public var hasAddress: (DNSName) -> Result<Bool, DNSError>

    public init(text: @escaping (DNSName) -> Result<[UInt8], DNSError>,
                hasAddress: @escaping (DNSName) -> Result<Bool, DNSError>) {
        self.text = text
        self.hasAddress = hasAddress
    }

    /// Lookups through a resolver. NXDOMAIN and empty answers mean "not listed".
    /// Address lookups ask for A, and for AAAA only when the name exists without an A
    /// record (a DNSBL answers with A records; this keeps the load on it to one query).
    public init(resolver: DNSResolver) {
        text = { name in
            switch resolver.query(name, .txt) {
            case .success(let records):
                return .success(records.flatMap { record -> [UInt8] in
                    if case .txt(let strings) = record.data { return strings.flatMap { $0 } }
                    return []
                })
            case .failure(.nameNotFound), .failure(.noData): return .success([])
            case .failure(let e): return .failure(e)
            }
        }
        hasAddress = { name in
            switch resolver.query(name, .a) {
            case .success: return .success(true)
            case .failure(.nameNotFound): return .success(false)
            case .failure(.noData):
                switch resolver.query(name, .aaaa) {
                case .success: return .success(true)
                case .failure(.nameNotFound), .failure(.noData): return .success(false)
                case .failure(let e): return .failure(e)
                }
            case .failure(let e): return .failure(e)
            }
        }
    }
}

public enum RblsmtpdPolicy {
    public static let lookupFailureText = "temporary RBL lookup error"

    /// The reference's decision procedure. `warn` receives problems worth logging (an
    /// unusable client address or zone name).
    public static func decide(_ options: RblsmtpdOptions, environment: Environment, client: RemoteClient,
                              lookups: RBLLookups, warn: (String) -> Void = { _ in }) -> RblsmtpdVerdict {
        enum Decision { case undecided, accept, temporary, permanent }
        var decision = Decision.undecided
        var text: [UInt8] = []
        // Set by any failed lookup: a block then always uses 451, even with -b.
        var mustNotBounce = false

        if let value = environment.bytes("RBLSMTPD") {
            if value.isEmpty {
                decision = .accept
            } else if value[0] == UInt8(ascii: "-") {
                decision = .permanent
                text = client.substitute(Array(value.dropFirst()))
            } else {
                decision = .temporary
                text = client.substitute(value)
            }
        }

        var bounce = false
        var failClosed = false
        var warnedAboutAddress = false
        enum Target { case name(DNSName), noClient, badZone }
        func target(under base: String) -> Target {
            guard let ip = client.address else {
                if !warnedAboutAddress {
                    warn("TCPREMOTEIP is missing or not an IP address: no RBL lookups")
                    warnedAboutAddress = true
                }
                return .noClient
            }
            guard let n = DNSName(ip.reversedLabels + "." + base), !base.isEmpty else {
                warn("unusable RBL zone name: \(base)")
                return .badZone
            }
            return .name(n)
        }
        /// A lookup that failed (or a zone name that cannot exist): -c blocks with 451.
        func rblFailed() {
            mustNotBounce = true
            if failClosed { text = Array(lookupFailureText.utf8); decision = .temporary }
        }

        for step in options.steps {
            switch step {
            case .bounce(let b): bounce = b
            case .failClosed(let c): failClosed = c
            case .rbl(let base, let message):
                guard decision == .undecided else { continue }
                let name: DNSName
                switch target(under: base) {
                case .noClient: continue
                case .badZone: rblFailed(); continue
                case .name(let n): name = n
                }
                if let message {
                    switch lookups.hasAddress(name) {
                    case .failure: rblFailed()
                    case .success(false): break
                    case .success(true):
                        text = client.substitute(Array(message.utf8))
                        decision = bounce ? .permanent : .temporary
                    }
                } else {
                    switch lookups.text(name) {
                    case .failure: rblFailed()
                    case .success(let record):
                        // An empty TXT record lists nobody, as in the reference.
                        if !record.isEmpty {
                            text = record
                            decision = bounce ? .permanent : .temporary
                        }
                    }
                }
            case .antiRBL(let base):
                guard decision == .undecided else { continue }
                let name: DNSName
                switch target(under: base) {
                case .noClient: continue
                case .badZone:
                    mustNotBounce = true
                    if !failClosed { decision = .accept }
                    continue
                case .name(let n): name = n
                }
                switch lookups.hasAddress(name) {
                case .failure:
                    mustNotBounce = true
                    if !failClosed { decision = .accept }
                case .success(true): decision = .accept
                case .success(false): break
                }
            }
        }

        switch decision {
        case .undecided, .accept: return .accept
        case .temporary: return .block(code: 451, text: text)
        case .permanent: return .block(code: mustNotBounce ? 451 : 553, text: text)
        }
    }
}
