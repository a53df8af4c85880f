// What one qmail-smtpd connection runs with: the preloaded controls overridden by the
// connection's environment (set by tcpserver and tcprules), as plain values.
import Core

public enum SMTPPersonality: Equatable, Sendable {
    case smtp, submission, odmr
}

/// The AUTH mechanisms qmail-smtpd knows, with the method byte the checkpassword
/// program receives after the user, secret and response.
public enum AuthMechanism: String, CaseIterable, Sendable {
    case login = "LOGIN", plain = "PLAIN"
    case cramMD5 = "CRAM-MD5", cramSHA1 = "CRAM-SHA1", cramSHA224 = "CRAM-SHA224", cramSHA256 = "CRAM-SHA256"
    case cramSHA384 = "CRAM-SHA384", cramSHA512 = "CRAM-SHA512", cramRIPEMD = "CRAM-RIPEMD"
    /// Verified by qmail-smtpd itself against the SCRAM credential file (never fd 3).
    case scramSHA1 = "SCRAM-SHA-1", scramSHA1Plus = "SCRAM-SHA-1-PLUS"
    case scramSHA256 = "SCRAM-SHA-256", scramSHA256Plus = "SCRAM-SHA-256-PLUS"

    public var methodByte: UInt8 {
        switch self {
        case .login: return 1
        case .plain: return 2
        case .cramMD5: return 3
        case .cramSHA1: return 4
        case .cramSHA224: return 5
        case .cramSHA256: return 6
        case .cramSHA384: return 7
        case .cramSHA512: return 8
        case .cramRIPEMD: return 9
        case .scramSHA1: return 10
        case .scramSHA256: return 11
        case .scramSHA1Plus: return 12
        case .scramSHA256Plus: return 13
        }
    }

    /// The DISABLE_* variable that removes it.
    public var disableVariable: String {
        switch self {
        case .login: return "DISABLE_AUTH_LOGIN"
        case .plain: return "DISABLE_AUTH_PLAIN"
        case .cramMD5: return "DISABLE_CRAM_MD5"
        case .cramSHA1: return "DISABLE_CRAM_SHA1"
        case .cramSHA224: return "DISABLE_CRAM_SHA224"
        case .cramSHA256: return "DISABLE_CRAM_SHA256"
        case .cramSHA384: return "DISABLE_CRAM_SHA384"
        case .cramSHA512: return "DISABLE_CRAM_SHA512"
        case .cramRIPEMD: return "DISABLE_CRAM_RIPEMD"
        case .scramSHA1: return "DISABLE_SCRAM_SHA1"
        case .scramSHA1Plus: return "DISABLE_SCRAM_SHA1_PLUS"
        case .scramSHA256: return "DISABLE_SCRAM_SHA256"
        case .scramSHA256Plus: return "DISABLE_SCRAM_SHA256_PLUS"
        }
    }

    /// The SCRAM algorithm and whether it binds the TLS channel; nil for the others.
    public var scram: (algorithm: SCRAMAlgorithm, plus: Bool)? {
        switch self {
        case .scramSHA1: return (.sha1, false)
        case .scramSHA1Plus: return (.sha1, true)
        case .scramSHA256: return (.sha256, false)
        case .scramSHA256Plus: return (.sha256, true)
        default: return nil
        }
    }

    /// Clear-text mechanisms, hidden before TLS under SECURE_AUTH.
    public var sendsPassword: Bool { self == .login || self == .plain }
}

public struct SMTPSettings: Sendable {
    public var greeting: [String] = ["localhost"]
    public var extraGreeting = true
    public var version = "1.0"
    public var remoteIP = "unknown"
    public var remoteHost: String?
    public var remoteInfo: String?
    public var localHost = "localhost"
    public var localIP: String?
    public var localIPHost = "localhost"
    /// RELAYCLIENT (or a relayclients/relaydomains match): appended to every recipient.
    public var relayClient: [UInt8]?
    public var authAllowsRelay = true
    public var databytes = 0
    public var maxHops = 100
    public var maxRecipients = 0
    public var maxCommandLength = 0
    public var tarpitCount = 0
    public var tarpitDelay = 5
    public var personality = SMTPPersonality.smtp
    /// The hostname argument: AUTH is offered only with hostname and checkpassword program.
    public var authHostname: String?
    public var mechanisms: [AuthMechanism] = []
    public var oldClient = false
    public var secureAuth = false
    public var requireAuth = false
    public var forceTLS = false
    public var startTLSAvailable = false
    /// The session already runs under TLS (SMTPS, or tcpserver -s: TLS_PROVIDER set).
    public var tlsActive = false
    /// "TLSv1.3 CIPHER bits=N" once this process did the handshake, for the Received line.
    public var tlsDescription: String?
    /// TLS_PROVIDER up to its first comma (who did the TLS when tcpserver did), for the log.
    public var tlsProvider: String?
    public var smtputf8 = false
    public var disableVRFY = false
    public var disableHelp = false
    public var allowBareLF = false
    public var hideHost = false
    public var checkRecipient = false
    /// CHECKSENDER: senders in our own domains must exist, authenticate and not forge.
    public var checkSender = false
    /// MASQUERADE: nil when unset (the sender must be the authenticated user), "" (any
    /// sender after AUTH), or the one other address allowed.
    public var masquerade: String?
    /// DEFAULT_DOMAIN: the domain a bare authenticated user name stands for.
    public var defaultDomain: String?
    /// The sender's domain must resolve (MX or address) unless NODNSCHECK is set.
    public var senderDNSCheck = true
    /// BOUNCEMAIL: every sender is refused with this reason and the session ends.
    public var bounceMail: String?
    public var maxRecipientErrors = -1
    /// SHUTDOWN: nil, or the reply text ("" = the default 421).
    public var shutdown: String?
    public var openRelay = false
    public var paranoid: String?
    public var requirePTR: String?
    public var badHeloCheck = false
    public var enforceFQDNHelo = false
    /// CRAM challenge material: pid and time.
    public var pid: Int32 = 0
    public var now: Int = 0

    public init() {}

    /// From the environment a connection runs in and the preloaded controls.
    public static func make(_ env: Environment, controls: SMTPControls, authHostname: String?) -> SMTPSettings {
        var s = SMTPSettings()
        s.greeting = controls.greeting.isEmpty ? [controls.me] : controls.greeting
        s.extraGreeting = !env.contains("DISABLE_EXTRA_GREET")
        s.remoteIP = env.nonEmpty("TCPREMOTEIP") ?? "unknown"
        s.remoteHost = env.nonEmpty("TCPREMOTEHOST").flatMap { $0 == "unknown" ? nil : $0 }
        s.remoteInfo = env.nonEmpty("TCPREMOTEINFO")
        s.localHost = env.nonEmpty("TCPLOCALHOST") ?? controls.me
        s.localIP = env.nonEmpty("TCPLOCALIP")
        s.localIPHost = controls.localIPHost.isEmpty ? controls.me : controls.localIPHost
        if let relay = env.bytes("RELAYCLIENT") {
            s.relayClient = relay
        } else if let value = controls.relayClients.matchIP(s.remoteIP) {
            s.relayClient = Array(value.utf8)
        } else if let host = s.remoteHost, let value = controls.relayDomains.matchHost(host) {
            s.relayClient = Array(value.utf8)
        }
        func number(_ name: String, _ fallback: Int) -> Int {
            guard let text = env[name], let n = Int(text.smtpTrimmed()) else { return fallback }
            return n
        }
        s.databytes = max(0, number("DATABYTES", controls.databytes))
        s.maxHops = controls.maxHops
        s.maxRecipients = number("MAXRECIPIENTS", controls.maxRecipients)
        s.maxCommandLength = controls.maxCommandLength
        s.tarpitCount = number("TARPITCOUNT", controls.tarpitCount)
        s.tarpitDelay = number("TARPITDELAY", controls.tarpitDelay)
        let port = env.nonEmpty("TCPLOCALPORT") ?? env.nonEmpty("TCP6LOCALPORT") ?? "25"
        if port == "587" { s.personality = .submission } else if port == "366" || env.contains("ODMR") { s.personality = .odmr }
        s.authHostname = authHostname
        if authHostname != nil {
            s.mechanisms = AuthMechanism.allCases.filter { !env.contains($0.disableVariable) }
        }
        s.oldClient = env.contains("OLD_CLIENT")
        s.secureAuth = env.contains("SECURE_AUTH")
        s.requireAuth = env.contains("REQUIREAUTH")
        s.forceTLS = env.contains("FORCE_TLS")
        s.tlsActive = env.contains("TLS_PROVIDER")
        s.tlsProvider = env["TLS_PROVIDER"].map { String($0.prefix { $0 != "," }) }
        s.smtputf8 = env.contains("SMTPUTF8")
        s.disableVRFY = env.contains("DISABLE_VRFY")
        s.disableHelp = env.contains("DISABLE_HELP")
        s.allowBareLF = env.contains("ALLOW_BARELF")
        s.hideHost = env.contains("HIDE_HOST")
        s.checkRecipient = env.contains("CHECKRECIPIENT")
        s.checkSender = env.contains("CHECKSENDER")
        s.defaultDomain = env.nonEmpty("DEFAULT_DOMAIN")
        s.masquerade = env.contains("MASQUERADE") ? (env.bytes("MASQUERADE").map { String(decoding: $0, as: UTF8.self) } ?? "") : nil
        s.senderDNSCheck = !env.contains("NODNSCHECK")
        s.bounceMail = env["BOUNCEMAIL"]
        s.maxRecipientErrors = number("MAX_RCPT_ERRCOUNT", -1)
        s.shutdown = env["SHUTDOWN"]
        // ODMR is only for authenticated clients: without AUTH there is no service.
        if s.personality == .odmr && authHostname == nil && s.shutdown == nil { s.shutdown = "" }
        s.openRelay = env.contains("OPENRELAY")
        s.paranoid = env["TCPPARANOID"]
        s.requirePTR = s.remoteHost == nil ? env["REQPTR"] : nil
        s.badHeloCheck = env.contains("BADHELOCHECK") || env.contains("BADHELO")
        s.enforceFQDNHelo = env.contains("ENFORCE_FQDN_HELO")
        return s
    }
}

extension String {
    func smtpTrimmed() -> String {
        var bytes = Array(utf8)
        while let l = bytes.last, l == 32 || l == 9 || l == 10 || l == 13 { bytes.removeLast() }
        while let f = bytes.first, f == 32 || f == 9 { bytes.removeFirst() }
        return String(decoding: bytes, as: UTF8.self)
    }
}
