// qmail-smtpd's protocol state machine: command lines in, replies and requests for effects
// (start the queue, start TLS, check a password, close) out. No I/O, so it can be driven
// by tests and fuzzers directly.
import Core
import Glibc

/// What the driver must do after writing a step's reply.
public enum SMTPAction: Equatable, Sendable {
    case none
    /// Start qmail-queue; on success write "354 go ahead" and read the message, then call
    /// `dataFinished`; on failure call `queueUnavailable`.
    case beginData
    /// Reply written ("220 ready for tls"): drop buffered input, TLS handshake, `tlsStarted`.
    case startTLS
    /// Run the checkpassword chain, then call `authFinished`.
    case authenticate(AuthRequest)
    /// Flush and exit with this status.
    case close(Int32)
}

public struct AuthRequest: Equatable, Sendable {
    public var user: [UInt8]
    /// The password (LOGIN/PLAIN) or the challenge (CRAM-*).
    public var secret: [UInt8]
    /// The CRAM digest in hex; empty for LOGIN/PLAIN.
    public var response: [UInt8]
    public var mechanism: AuthMechanism

    /// fd 3's bytes: user NUL secret NUL response NUL method NUL.
    public var checkpasswordBytes: [UInt8] {
        user + [0] + secret + [0] + response + [0] + [mechanism.methodByte, 0]
    }
}

public struct SMTPStep: Equatable, Sendable {
    public var reply: [UInt8]
    public var action: SMTPAction
    /// Seconds to wait before writing the reply (tarpitting).
    public var delay: Int

    public init(_ reply: String, _ action: SMTPAction = .none, delay: Int = 0) {
        self.reply = Array(reply.utf8)
        self.action = action
        self.delay = delay
    }

    public init(bytes: [UInt8], _ action: SMTPAction = .none) {
        self.reply = bytes
        self.action = action
        self.delay = 0
    }
}

/// What the sender's domain looked like in the DNS.
public enum SenderDomainCheck: Equatable, Sendable {
    case exists
    /// No MX and no address, or the name does not exist.
    case missing
    /// The DNS could not say.
    case temporaryFailure
}

/// One SMTP conversation: call `greeting` once, then `command` for every line the client
/// sends, and the completion functions (`dataFinished`, `authFinished`, `tlsStarted`,
/// `queueUnavailable`) after the effects an SMTPAction asked for.
public struct SMTPSession {
    public var settings: SMTPSettings
    public let controls: SMTPControls
    /// Looks the sender's domain up (MX, then address records); the driver installs one
    /// backed by the resolver. Without one, every domain exists.
    public var senderDomainLookup: ((String) -> SenderDomainCheck)?
    /// CHECKSENDER's account test for a local part; nil looks in the system's passwd.
    public var localAccountExists: (([UInt8]) -> Bool)?
    /// Lines for the log (fd 2), collected for the driver to write.
    public var logLines: [String] = []
    /// SCRAM credentials and crypto: set by the driver when this binary has the digests
    /// and a credential file is configured; SCRAM-* are offered only then (and -PLUS only
    /// while `channelBinding` is known).
    public var scram: SCRAMSetup?

    public private(set) var seenHelo = false
    public private(set) var heloName: String?
    public private(set) var mailFrom: [UInt8]?
    public private(set) var recipients: [[UInt8]] = []
    public private(set) var parameters = MailParameters()
    public private(set) var authenticatedUser: [UInt8]?
    public private(set) var authenticatedMechanism: AuthMechanism?
    private var authRelay = false
    private var refusal: String?
    private var pendingAuth: PendingAuth?
    private var recipientErrors = 0
    private var protocolName = "ESMTP"

    private enum PendingAuth {
        case loginUser
        case loginPassword(user: [UInt8])
        case plain
        case cram(AuthMechanism, challenge: [UInt8])
        case scramFirst(SCRAMExchange, AuthMechanism)
        case scramFinal(SCRAMExchange, AuthMechanism)
        /// The proof verified and "334 v=…" went out: the client's empty line finishes.
        case scramDone(AuthRequest)
    }

    public init(settings: SMTPSettings, controls: SMTPControls) {
        self.settings = settings
        self.controls = controls
    }

    public var isAuthenticated: Bool { authenticatedUser != nil }
    public var inTransaction: Bool { mailFrom != nil }
    public var expectsAuthResponse: Bool { pendingAuth != nil }
    public var tlsActive: Bool { settings.tlsActive }

    // MARK: greeting

    /// `code` + the greeting lines, the first carrying the version banner for 220.
    func respond(_ code: String, suffix: String = "", extra: Bool = false) -> String {
        var text = ""
        let lines = settings.greeting.isEmpty ? [""] : settings.greeting
        for (i, line) in lines.enumerated() {
            let last = i == lines.count - 1
            text += code + (last ? " " : "-") + line
            if i == 0 && extra && settings.extraGreeting {
                text += " (NO UCE) ESMTP IndiMail \(settings.version) " + Self.date(settings.now)
            }
            if last { text += suffix }
            text += "\r\n"
        }
        return text
    }

    static func date(_ seconds: Int) -> String {
        var line = ReceivedHeader.date822(seconds: seconds)
        if line.last == "\n" { line.removeLast() }
        return line
    }

    /// The first reply; also decides whether every later command is refused.
    public mutating func greeting() -> SMTPStep {
        let ip = settings.remoteIP
        if let shutdown = settings.shutdown {
            refusal = "503 bad sequence of commands (#5.3.2)\r\n"
            let words = shutdown.split(separator: " ", maxSplits: 1).map(String.init)
            if let code = words.first, code.count == 3, code.allSatisfy(\.isNumber) {
                return SMTPStep(respond(code, suffix: words.count > 1 ? " " + words[1] : ""))
            }
            return SMTPStep(respond("421", suffix: " SMTP service unavailable (#4.3.2)"))
        }
        var line: String?
        if settings.openRelay {
            line = "553 No mail accepted from an open relay (\(ip)); check your server configs (#5.7.1)"
        } else if let paranoid = settings.paranoid {
            line = "553 sorry, your IP address (\(ip)) PTR (reverse DNS) record points to wrong hostname"
                + (paranoid.isEmpty ? "" : " [\(paranoid)]") + " (#5.7.1)"
        } else if let ptr = settings.requirePTR {
            line = ptr.isEmpty ? "553 Sorry, no PTR (reverse DNS) record for (\(ip)) (#5.7.1)" : "553 \(ptr): from \(ip): (#5.7.1)"
        }
        if let line {
            refusal = line + "\r\n"
            return SMTPStep(line + "\r\n")
        }
        return SMTPStep(respond("220", extra: true))
    }

    // MARK: commands

    /// One command line (without its LF). While an AUTH exchange is under way the line is
    /// the client's response to the last 334.
    public mutating func command(_ line: [UInt8]) -> SMTPStep {
        if pendingAuth != nil { return authResponse(line) }
        let parsed = SMTPCommandLine.parse(line)
        if settings.maxCommandLength > 0 && line.count > settings.maxCommandLength {
            return SMTPStep("553 sorry, the given command is too long! (#5.5.2)\r\n", .close(1))
        }
        let verb = parsed.verb, arg = parsed.argument
        guard Self.accepts(verb, settings.personality) else { return unrecognised(verb) }
        if let refusal, Self.refusable(verb) { return SMTPStep(refusal) }
        switch verb {
        case "helo": return helo(arg)
        case "ehlo": return ehlo(arg)
        case "mail": return mail(arg)
        case "rcpt": return rcpt(arg)
        case "data": return data()
        case "rset":
            guard arg.isEmpty else { return SMTPStep("501 invalid parameter syntax (#5.3.2)\r\n") }
            resetTransaction()
            return SMTPStep("250 flushed\r\n")
        case "noop":
            guard arg.isEmpty else { return SMTPStep("501 invalid parameter syntax (#5.3.2)\r\n") }
            return SMTPStep("250 ok\r\n")
        case "vrfy":
            if settings.disableVRFY { return unrecognised(verb) }
            return SMTPStep("252 Cannot VRFY user, but will accept message and attempt delivery (#2.7.0)\r\n")
        case "help": return help()
        case "quit": return SMTPStep(respond("221", suffix: " closing connection"), .close(0))
        case "auth": return auth(arg)
        case "starttls": return startTLS(arg)
        default: return SMTPStep("502 command \(verb) not implemented (#5.5.1)\r\n")
        }
    }

    /// The verbs each personality knows (a switch: no set built per command).
    static func accepts(_ verb: String, _ personality: SMTPPersonality) -> Bool {
        switch verb {
        case "helo", "ehlo", "auth", "help", "quit": return true
        case "mail", "rcpt", "data", "rset", "noop", "vrfy", "starttls": return personality != .odmr
        case "etrn", "atrn": return personality != .submission
        default: return false
        }
    }

    /// The verbs a refused session (greeting refusal) answers with the refusal.
    static func refusable(_ verb: String) -> Bool {
        switch verb {
        case "helo", "ehlo", "mail", "rcpt", "data", "auth", "starttls", "vrfy", "etrn", "atrn": return true
        default: return false
        }
    }

    private func unrecognised(_ verb: String) -> SMTPStep {
        let safe = String(verb.unicodeScalars.prefix(64).map { $0.isASCII && $0.value >= 32 && $0.value < 127 ? Character($0) : "?" })
        return SMTPStep("502 command \(safe) not recognized (#5.5.2)\r\n")
    }

    private mutating func resetTransaction() {
        mailFrom = nil
        recipients = []
        parameters = MailParameters()
    }

    private mutating func recordHelo(_ arg: [UInt8]) -> SMTPStep? {
        let name = arg.isEmpty ? (settings.remoteHost ?? settings.remoteIP) : String(decoding: arg, as: UTF8.self)
        if settings.badHeloCheck && !arg.isEmpty {
            if case .success(true) = controls.badHelo.matches(arg) {
                logLines.append("Invalid HELO greeting: HELO <\(name)>")
                return SMTPStep("553 sorry, your HELO/EHLO greeting is in my badhelo list (#5.7.1)\r\n")
            }
        }
        if settings.enforceFQDNHelo && !arg.contains(46) {
            return SMTPStep("451 unable to accept non-FQDN HELO (#4.3.0)\r\n")
        }
        resetTransaction()
        seenHelo = true
        heloName = name
        return nil
    }

    private mutating func helo(_ arg: [UInt8]) -> SMTPStep {
        if let refused = recordHelo(arg) { return refused }
        return SMTPStep(respond("250", suffix: arg.isEmpty ? " [\(settings.remoteIP)]" : ""))
    }

    /// The mechanisms EHLO offers right now.
    public var offeredMechanisms: [AuthMechanism] {
        settings.mechanisms.filter { m in
            if settings.secureAuth && !settings.tlsActive && m.sendsPassword { return false }
            if let s = m.scram {
                guard let scram, !scram.credentials.isEmpty else { return false }
                if s.plus && scram.channelBinding == nil { return false }
            }
            return true
        }
    }

    private mutating func ehlo(_ arg: [UInt8]) -> SMTPStep {
        if let refused = recordHelo(arg) { return refused }
        // Appended in place: no array of lines to join per EHLO.
        var text = "250-" + (settings.greeting.first ?? "") + "\r\n"
        let offered = offeredMechanisms
        if !offered.isEmpty {
            var names = ""
            for m in offered { names += (names.isEmpty ? "" : " ") + m.rawValue }
            text += "250-AUTH " + names + "\r\n"
            if settings.oldClient { text += "250-AUTH=" + names + "\r\n" }
        }
        text += "250-PIPELINING\r\n250-8BITMIME\r\n"
        if settings.databytes > 0 { text += "250-SIZE " + String(settings.databytes) + "\r\n" }
        if settings.personality != .submission { text += "250-ETRN\r\n" }
        if settings.startTLSAvailable && !settings.tlsActive { text += "250-STARTTLS\r\n" }
        if settings.smtputf8 { text += "250-SMTPUTF8\r\n" }
        text += "250 HELP\r\n"
        return SMTPStep(text)
    }

    private func help() -> SMTPStep {
        if settings.disableHelp { return SMTPStep("502 disabled by the lord in her infinite wisdom (#5.5.1)\r\n") }
        let auth = settings.authHostname != nil ? "AUTH " : ""
        var last = "214 HELO EHLO RSET NOOP MAIL RCPT DATA " + auth
        switch settings.personality {
        case .submission: last += settings.disableVRFY ? "HELP QUIT" : "VRFY HELP QUIT"
        default: last += settings.disableVRFY ? "ETRN HELP QUIT" : "VRFY ETRN HELP QUIT"
        }
        return SMTPStep("214-This is IndiMail SMTP Version \(settings.version)\r\n"
                        + "214-https://github.com/indimail/indimail-mta\r\n"
                        + "214-This server supports the following commands:\r\n" + last + "\r\n")
    }

    private mutating func mail(_ arg: [UInt8]) -> SMTPStep {
        guard seenHelo else { return SMTPStep("503 Polite people say hello first (#5.5.4)\r\n") }
        if settings.forceTLS && !settings.tlsActive { return SMTPStep("530 must issue STARTTLS first (#5.7.0)\r\n") }
        guard var address = SMTPAddress.parse(arg) else { return SMTPStep("555 syntax error in address (#5.1.3)\r\n") }
        address = localIPHostRewrite(address)
        let params = MailParameters.parse(arg)
        if settings.requireAuth && !isAuthenticated { return SMTPStep("530 authentication required (#5.7.1)\r\n") }
        var badSender = controls.badMailFrom.matches(address)
        if case .success(false) = badSender, controls.badMailPatterns.matches(address) { badSender = .success(true) }
        switch badSender {
        case .success(true):
            logLines.append("Invalid SENDER address: BAD MAIL from <\(printable(address))>")
            return SMTPStep("553 sorry, your envelope sender has been denied (#5.7.1)\r\n")
        case .success(false): break
        case .failure(let e):
            logLines.append("badmailfrom: \(e)")
            return SMTPStep("451 Sorry, there is a local system failure (#4.3.0)\r\n")
        }
        if settings.senderDNSCheck, !address.isEmpty, let refused = senderDNS(address) { return refused }
        if settings.checkSender, let refused = checkSender(address) { return refused }
        if let reason = settings.bounceMail {
            logLines.append("Blackholed SENDER address: MAIL from <\(printable(address))> Reason \(reason)")
            return SMTPStep("553 \(reason) (#5.7.1)\r\n", .close(1))
        }
        resetTransaction()
        mailFrom = address
        parameters = params
        // The SMTPUTF8 parameter counts only when the extension is offered.
        protocolName = (params.smtputf8 && settings.smtputf8 ? "UTF8ESMTP" : "ESMTP") + (settings.tlsActive ? "S" : "") + (isAuthenticated ? "A" : "")
        if let tls = settings.tlsDescription { protocolName += " (" + tls + ")" }
        if !isAuthenticated, let info = params.auth { settings.remoteInfo = String(decoding: info, as: UTF8.self) }
        return SMTPStep("250 ok\r\n")
    }

    /// CHECKSENDER (the reference's check_sender without its virtual-user database): when
    /// the sender, or the authenticated user, is in one of our domains (rcpthosts) and in
    /// `chksenderdomains` if that exists, the address must be a local account, the session
    /// must be authenticated (or a RELAYCLIENT), and the sender must be the authenticated
    /// user or MASQUERADE's address.
    private mutating func checkSender(_ sender: [UInt8]) -> SMTPStep? {
        func ours(_ address: [UInt8]) -> Bool? {
            switch controls.recipientAllowed(address) {
            case .success(let allowed): return allowed
            case .failure(let e): logLines.append("rcpthosts: \(e)"); return nil
            }
        }
        let failure = SMTPStep("451 Sorry, there is a local system failure (#4.3.0)\r\n")
        var subject: [UInt8]? = nil
        if !sender.isEmpty {
            guard let senderOurs = ours(sender) else { return failure }
            if senderOurs { subject = sender }
        }
        if subject == nil, let user = authenticatedUser {
            guard let userOurs = ours(user) else { return failure }
            if userOurs { subject = user }
        }
        guard let address = subject else { return nil }
        if let domains = controls.senderChecks.domains {
            switch domains.matches(address) {
            case .success(false): return nil
            case .success(true): break
            case .failure(let e): logLines.append("chksenderdomains: \(e)"); return failure
            }
        }
        let at = address.lastIndex(of: 64)
        var isLocal = true
        if let at, at + 1 < address.count {
            switch controls.senderChecks.locals?.contains(String(decoding: address[(at + 1)...], as: UTF8.self).lowercased()) ?? .success(false) {
            case .success(let listed): isLocal = listed
            case .failure(let e): logLines.append("locals: \(e)"); return failure
            }
        }
        let denied = SMTPStep("553 authorization failure (#5.7.1)\r\n")
        guard isLocal else {
            logLines.append("CHECKSENDER: SMTP Access denied to <\(printable(address))>: user not local")
            return denied
        }
        let localPart = at.map { Array(address[..<$0]) } ?? address
        let exists = localAccountExists?(localPart) ?? Self.systemAccountExists(localPart)
        guard exists else {
            logLines.append("CHECKSENDER: SMTP Access denied to <\(printable(address))>: user does not exist")
            return denied
        }
        guard let user = authenticatedUser else {
            if settings.relayClient != nil { return nil }
            logLines.append("CHECKSENDER: unauthenticated local SENDER address: MAIL from <\(printable(sender))>")
            return SMTPStep("530 authentication required (#5.7.1)\r\n")
        }
        // MASQUERADE set and empty: any sender once authenticated.
        if let masquerade = settings.masquerade, masquerade.isEmpty { return nil }
        let allowed = [settings.masquerade.map { Array($0.utf8) }, user].compactMap { $0 }
        let forged: Bool
        if let senderAt = sender.lastIndex(of: 64) {
            guard let senderOurs = ours(sender) else { return failure }
            let senderLocal = sender[..<senderAt], senderDomain = sender[(senderAt + 1)...]
            forged = !senderOurs || !allowed.contains { candidate in
                if let a = candidate.lastIndex(of: 64) {
                    return candidate[..<a].elementsEqual(senderLocal) && candidate[(a + 1)...].elementsEqual(senderDomain)
                }
                guard candidate.elementsEqual(senderLocal) else { return false }
                return settings.defaultDomain.map { Array($0.utf8).elementsEqual(senderDomain) } ?? true
            }
        } else {
            forged = !(allowed.first ?? user).elementsEqual(sender)
        }
        guard forged else { return nil }
        var line = "Invalid SENDER: MAIL from <\(printable(sender))>, Auth <\(printable(user))>"
        if let m = settings.masquerade, !m.isEmpty { line += ", MASQUERADE <\(m)>" }
        logLines.append(line)
        return SMTPStep("553 sorry, this MTA does not accept masquerading/forging, auth <\(printable(user))> #5.7.1\r\n")
    }

    private static func systemAccountExists(_ name: [UInt8]) -> Bool {
        guard !name.isEmpty, !name.contains(0) else { return false }
        if case .success = Accounts.user(String(decoding: name, as: UTF8.self)) { return true }
        return false
    }

    /// The reference's dnscheck: skipped for `nodnscheck` entries and domain literals; an
    /// address without a domain counts as missing.
    private mutating func senderDNS(_ address: [UInt8]) -> SMTPStep? {
        if case .success(true) = controls.noDNSCheck.matches(address) { return nil }
        guard let at = address.lastIndex(of: 64), at + 1 < address.count else {
            logLines.append("Non-existing DNS_MX: MAIL \(printable(address))")
            return SMTPStep("553 Bad sender's system address (#5.1.8)\r\n")
        }
        let domain = String(decoding: address[(at + 1)...], as: UTF8.self)
        if domain.hasPrefix("[") && domain.hasSuffix("]") { return nil }
        switch senderDomainLookup?(domain) ?? .exists {
        case .exists: return nil
        case .missing:
            logLines.append("Non-existing DNS_MX: MAIL \(printable(address))")
            return SMTPStep("553 Bad sender's system address (#5.1.8)\r\n")
        case .temporaryFailure:
            return SMTPStep("451 Sorry, there is a DNS temporary failure (#4.4.3)\r\n")
        }
    }

    /// `user@[a.b.c.d]` naming one of our own addresses becomes `user@localiphost`.
    private func localIPHostRewrite(_ address: [UInt8]) -> [UInt8] {
        guard let at = address.lastIndex(of: 64), let localIP = settings.localIP else { return address }
        let domain = address[(at + 1)...]
        guard domain.first == 91, domain.last == 93 else { return address }
        let literal = String(decoding: domain.dropFirst().dropLast(), as: UTF8.self)
        guard literal == localIP else { return address }
        return Array(address[...at]) + Array(settings.localIPHost.utf8)
    }

    private mutating func rcpt(_ arg: [UInt8]) -> SMTPStep {
        guard let sender = mailFrom else { return SMTPStep("503 MAIL first (#5.5.1)\r\n") }
        if settings.forceTLS && !settings.tlsActive { return SMTPStep("530 must issue STARTTLS first (#5.7.0)\r\n") }
        guard var address = SMTPAddress.parse(arg) else { return SMTPStep("555 syntax error in address (#5.1.3)\r\n") }
        address = localIPHostRewrite(address)
        if SMTPAddress.isRelayProbe(address) {
            logLines.append("Invalid RELAY client: MAIL from <\(printable(sender))> RCPT <\(printable(address))>")
            return SMTPStep("550 we don't relay (#5.7.1)\r\n")
        }
        var good = false
        if case .success(true) = controls.goodRcptTo.matches(address) { good = true }
        if controls.goodRcptPatterns.matches(address) { good = true }
        if !good {
            var bad = controls.badRcptTo.matches(address)
            if case .success(false) = bad, controls.badRcptPatterns.matches(address) { bad = .success(true) }
            switch bad {
            case .success(true):
                logLines.append("Invalid RECIPIENT address: MAIL from <\(printable(sender))> RCPT \(printable(address))")
                return SMTPStep("553 sorry, your envelope recipient has been denied (#5.7.1)\r\n")
            case .success(false): break
            case .failure(let e):
                logLines.append("badrcptto: \(e)")
                return SMTPStep("451 Sorry, there is a local system failure (#4.3.0)\r\n")
            }
        }
        let allowed: Bool
        switch controls.recipientAllowed(address) {
        case .success(let a): allowed = a
        case .failure(let e):
            logLines.append("rcpthosts: \(e)")
            return SMTPStep("451 Sorry, there is a local system failure (#4.3.0)\r\n")
        }
        var stored = address
        if let relay = settings.relayClient {
            stored += relay
        } else if !allowed && !(isAuthenticated && authRelay) {
            logLines.append("Invalid RELAY client: MAIL from <\(printable(sender))> RCPT <\(printable(address))>")
            var text = "553 sorry, that domain isn't allowed to be relayed thru this MTA without authentication"
            if let user = authenticatedUser { text += ", auth <\(printable(user))>" }
            return SMTPStep(text + " #5.7.1\r\n")
        }
        if allowed && settings.checkRecipient && !good {
            var check = true
            if let domains = controls.checkRecipientDomains, case .success(false) = domains.matches(address) { check = false }
            if check {
                switch controls.recipientListed(address) {
                case .absent:
                    recipientErrors += 1
                    logLines.append("Invalid RECIPIENT address: MAIL from <\(printable(sender))> RCPT <\(printable(address))>")
                    if settings.maxRecipientErrors >= 0 && recipientErrors >= settings.maxRecipientErrors {
                        return SMTPStep("421 too many invalid addresses, goodbye (#4.7.1)\r\n", .close(1))
                    }
                    return SMTPStep("550 sorry, \(printable(sender)) mailbox <\(printable(address))> is absent on this domain (#5.1.1)\r\n")
                case .failed:
                    return SMTPStep("451 unable to check recipients (#4.3.2)\r\n", .close(1))
                case .found, .notConfigured: break
                }
            }
        }
        if settings.maxRecipients > 0 && recipients.count + 1 > settings.maxRecipients {
            logLines.append("Too many RECIPIENTS: MAIL from <\(printable(sender))> Last RCPT <\(printable(address))>")
            return SMTPStep("557 sorry, too many recipients (#5.7.1)\r\n")
        }
        let delay = settings.tarpitCount > 0 && recipients.count + 1 >= settings.tarpitCount ? max(0, settings.tarpitDelay) : 0
        if sender.isEmpty && recipients.count + 1 > 1 {
            return SMTPStep("553 sorry, bounce messages should have a single envelope recipient (#5.7.1)\r\n", delay: delay)
        }
        recipients.append(stored)
        return SMTPStep("250 ok\r\n", delay: delay)
    }

    private mutating func data() -> SMTPStep {
        guard mailFrom != nil else { return SMTPStep("503 MAIL first (#5.5.1)\r\n") }
        guard !recipients.isEmpty else { return SMTPStep("503 RCPT first (#5.5.1)\r\n") }
        if settings.databytes > 0, let size = parameters.size, size > settings.databytes {
            resetTransaction()
            return SMTPStep("552 sorry, that message size exceeds my databytes limit (#5.3.4)\r\n")
        }
        return SMTPStep("", .beginData)
    }

    /// qmail-queue could not be started.
    public mutating func queueUnavailable() -> SMTPStep {
        resetTransaction()
        return SMTPStep("451 Sorry, I got a temporary queue failure (#4.3.0)\r\n")
    }

    /// The envelope for qmail-queue.
    public var envelope: Envelope { Envelope(sender: mailFrom ?? [], recipients: recipients) }

    /// The reply once the message was read (and, unless rejected, handed to the queue).
    public mutating func dataFinished(_ receiver: SMTPDataReceiver, verdict: QueueVerdict?, now: Int) -> SMTPStep {
        defer { resetTransaction() }
        if receiver.tooBig { return SMTPStep("552 sorry, that message size exceeds my databytes limit (#5.3.4)\r\n") }
        if receiver.hops >= settings.maxHops { return SMTPStep("554 too many hops, this message is looping (#5.4.6)\r\n") }
        guard let verdict else { return SMTPStep("451 Sorry, I got a temporary queue failure (#4.3.0)\r\n") }
        switch verdict {
        case .accepted(let pid):
            logLines += recipients.map { transactionLine($0, size: receiver.size) }
            return SMTPStep("250 ok \(now) qp \(pid)\r\n")
        default:
            var text = verdict.replyText
            let code = text.hasPrefix("D") ? "554" : "451"
            if text.hasPrefix("D") || text.hasPrefix("Z") { text.removeFirst() }
            if let lastLine = text.split(separator: "\n").last { text = String(lastLine) }
            logLines.append("qmail-queue: \(text)")
            return SMTPStep("\(code) \(text)\r\n")
        }
    }

    /// The reference's per-recipient log line, which log analysers parse:
    /// `HELO <h> MAIL from <s> RCPT <r> AUTH <user: AUTH method: local-rcpt> Size: n TLS=v`.
    func transactionLine(_ recipient: [UInt8], size: Int) -> String {
        var auth = ""
        if let user = authenticatedUser {
            auth = printable(user) + ": AUTH " + (authenticatedMechanism?.rawValue ?? "")
        }
        if case .success(true) = controls.recipientAllowed(recipient) {
            auth += (auth.isEmpty ? "" : ": ") + "local-rcpt"
        } else if authenticatedUser == nil {
            auth = "auth-ip/pop"
        }
        let tls = settings.tlsDescription.map { String($0.prefix { $0 != " " }) } ?? settings.tlsProvider ?? "No"
        return "HELO <\(heloName ?? "")> MAIL from <\(printable(mailFrom ?? []))> RCPT <\(printable(recipient))> AUTH <\(auth)> Size: \(size) TLS=\(tls)"
    }

    /// The Received: line this server adds on top of the message.
    public func receivedHeader(pid: Int32, date: String) -> [UInt8] {
        // One '?' per character (Unicode scalar) outside [A-Za-z0-9.@%+/=:-_[] ], in UTF-8
        // bytes: a scalar's continuation bytes add nothing.
        func safe(_ s: String) -> String {
            var out: [UInt8] = []
            out.reserveCapacity(s.utf8.count)
            for c in s.utf8 {
                switch c {
                case 97...122, 65...90, 48...57, 46, 64, 37, 43, 47, 61, 58, 45, 95, 91, 93, 32: out.append(c)
                case 0x80...0xbf: continue
                default: out.append(63)
                }
            }
            return String(decoding: out, as: UTF8.self)
        }
        var text = "Received: indimail-mta smtpd \(pid)"
        if !settings.hideHost {
            if let host = settings.remoteHost { text += " from " + safe(host) }
            if let helo = heloName, helo != settings.remoteHost { text += " (HELO " + safe(helo) + ")" }
            if let info = authenticatedUser.map({ String(decoding: $0, as: UTF8.self) }) ?? settings.remoteInfo {
                text += " (" + safe(info) + "@" + safe(settings.remoteIP) + ")"
            } else {
                text += " ([" + safe(settings.remoteIP) + "])"
            }
            text += "\n  by " + safe(settings.localHost)
        } else {
            text += "\n "
        }
        text += " with " + protocolName + "; " + date
        if !text.hasSuffix("\n") { text += "\n" }
        return Array(text.utf8)
    }

    // MARK: AUTH

    private mutating func auth(_ arg: [UInt8]) -> SMTPStep {
        guard settings.authHostname != nil, !settings.mechanisms.isEmpty else { return SMTPStep("503 auth not available (#5.3.3)\r\n") }
        if settings.forceTLS && !settings.tlsActive { return SMTPStep("530 must issue STARTTLS first (#5.7.0)\r\n") }
        if isAuthenticated { return SMTPStep("503 you're already authenticated (#5.5.0)\r\n") }
        if inTransaction { return SMTPStep("503 no auth during mail transaction (#5.5.0)\r\n") }
        let words = arg.split(separator: 32, maxSplits: 1)
        let name = String(decoding: SMTPAddress.lowercased(words.first ?? []), as: UTF8.self).uppercased()
        let initial = words.count > 1 ? Array(words[1]) : nil
        guard let mechanism = offeredMechanisms.first(where: { $0.rawValue == name }) else {
            return SMTPStep("504 auth type unimplemented (#5.5.1)\r\n")
        }
        switch mechanism {
        case .login:
            if let initial, initial != [61] {
                guard let user = Base64.decode(initial), !user.isEmpty else { return SMTPStep("501 malformed auth input (#5.5.4)\r\n") }
                pendingAuth = .loginPassword(user: user)
                return SMTPStep("334 UGFzc3dvcmQ6\r\n")
            }
            pendingAuth = .loginUser
            return SMTPStep("334 VXNlcm5hbWU6\r\n")
        case .plain:
            if let initial { return plainResponse(initial) }
            pendingAuth = .plain
            return SMTPStep("334 \r\n")
        case _ where mechanism.scram != nil:
            guard let kind = mechanism.scram, let setup = scram else { return SMTPStep("504 auth type unimplemented (#5.5.1)\r\n") }
            let plusOffered = offeredMechanisms.contains { $0.scram?.algorithm == kind.algorithm && $0.scram?.plus == true }
            let exchange = SCRAMExchange(kind.algorithm, plus: kind.plus, plusOffered: plusOffered, setup: setup)
            if let initial, initial != [61] { return scramResponse(.scramFirst(exchange, mechanism), initial) }
            pendingAuth = .scramFirst(exchange, mechanism)
            return SMTPStep("334 \r\n")
        default:
            let challenge = Array("<\(settings.pid).\(settings.now)@\(settings.authHostname ?? "")>".utf8)
            pendingAuth = .cram(mechanism, challenge: challenge)
            return SMTPStep(bytes: Array("334 ".utf8) + Base64.encode(challenge) + [13, 10])
        }
    }

    private mutating func authResponse(_ line: [UInt8]) -> SMTPStep {
        var text = line
        if text.last == 13 { text.removeLast() }
        guard let pending = pendingAuth else { return SMTPStep("503 bad sequence of commands (#5.3.2)\r\n") }
        pendingAuth = nil
        if text == [42] { return SMTPStep("501 auth exchange cancelled (#5.0.0)\r\n") }
        switch pending {
        case .loginUser:
            guard let user = Base64.decode(text), !user.isEmpty else { return SMTPStep("501 malformed auth input (#5.5.4)\r\n") }
            pendingAuth = .loginPassword(user: user)
            return SMTPStep("334 UGFzc3dvcmQ6\r\n")
        case .loginPassword(let user):
            guard let password = Base64.decode(text), !password.isEmpty else { return SMTPStep("501 malformed auth input (#5.5.4)\r\n") }
            return SMTPStep("", .authenticate(AuthRequest(user: user, secret: password, response: [], mechanism: .login)))
        case .plain:
            return plainResponse(text)
        case .cram(let mechanism, let challenge):
            guard let decoded = Base64.decode(text), let space = decoded.lastIndex(of: 32), space > 0,
                  space + 1 < decoded.count else { return SMTPStep("501 malformed auth input (#5.5.4)\r\n") }
            return SMTPStep("", .authenticate(AuthRequest(user: Array(decoded[..<space]), secret: challenge,
                                                          response: Array(decoded[(space + 1)...]), mechanism: mechanism)))
        case .scramFirst, .scramFinal:
            return scramResponse(pending, text)
        case .scramDone(let request):
            return authFinished(request, status: 0)
        }
    }

    /// One SCRAM client message: server-first after client-first, "334 v=…" after a
    /// client-final whose proof verifies, else 501 (syntax) or 535.
    private mutating func scramResponse(_ pending: PendingAuth, _ text: [UInt8]) -> SMTPStep {
        guard let message = Base64.decode(text), !message.isEmpty else { return SMTPStep("501 malformed auth input (#5.5.4)\r\n") }
        func failed(_ failure: SCRAMFailure, _ mechanism: AuthMechanism, _ user: [UInt8]) -> SMTPStep {
            switch failure {
            case .malformed(let why):
                logLines.append("AUTH \(mechanism.rawValue) malformed: \(why)")
                return SMTPStep("501 malformed auth input (#5.5.4)\r\n")
            case .refused(let why):
                logLines.append("AUTH \(mechanism.rawValue) user <\(printable(user))> failed: \(why)")
                return SMTPStep("535 authorization failure (#5.7.8)\r\n")
            }
        }
        switch pending {
        case .scramFirst(var exchange, let mechanism):
            switch exchange.clientFirst(message) {
            case .failure(let f): return failed(f, mechanism, exchange.userName)
            case .success(let serverFirst):
                pendingAuth = .scramFinal(exchange, mechanism)
                return SMTPStep(bytes: Array("334 ".utf8) + Base64.encode(serverFirst) + [13, 10])
            }
        case .scramFinal(var exchange, let mechanism):
            switch exchange.clientFinal(message) {
            case .failure(let f): return failed(f, mechanism, exchange.userName)
            case .success(let result):
                pendingAuth = .scramDone(AuthRequest(user: result.user, secret: [], response: [], mechanism: mechanism))
                return SMTPStep(bytes: Array("334 ".utf8) + Base64.encode(result.serverFinal) + [13, 10])
            }
        default:
            return SMTPStep("503 bad sequence of commands (#5.3.2)\r\n")
        }
    }

    private func plainResponse(_ text: [UInt8]) -> SMTPStep {
        guard let decoded = Base64.decode(text) else { return SMTPStep("501 malformed auth input (#5.5.4)\r\n") }
        let parts = decoded.split(separator: 0, maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[1].isEmpty, !parts[2].isEmpty else { return SMTPStep("501 malformed auth input (#5.5.4)\r\n") }
        return SMTPStep("", .authenticate(AuthRequest(user: Array(parts[1]), secret: Array(parts[2]), response: [], mechanism: .plain)))
    }

    /// The checkpassword chain's exit status (nil: it could not be run or crashed).
    public mutating func authFinished(_ request: AuthRequest, status: Int32?) -> SMTPStep {
        switch status {
        case 0, 3:
            authenticatedUser = request.user
            authenticatedMechanism = request.mechanism
            authRelay = status == 0 && settings.authAllowsRelay
            settings.remoteInfo = String(decoding: request.user, as: UTF8.self)
            logLines.append("AUTH \(request.mechanism.rawValue) user <\(printable(request.user))> ok\(status == 3 ? " (no relay)" : "")")
            return SMTPStep("235 ok, go ahead (#2.0.0)\r\n")
        case 111, nil:
            return SMTPStep("454 temporary authentication failure (#4.3.0)\r\n")
        default:
            logLines.append("AUTH \(request.mechanism.rawValue) user <\(printable(request.user))> failed")
            return SMTPStep("535 authorization failure (#5.7.8)\r\n")
        }
    }

    // MARK: STARTTLS

    private func startTLS(_ arg: [UInt8]) -> SMTPStep {
        guard arg.isEmpty else { return SMTPStep("501 Syntax error (no parameters allowed) (#5.5.4)\r\n") }
        if settings.tlsActive || !settings.startTLSAvailable { return SMTPStep("502 command starttls not implemented (#5.5.1)\r\n") }
        return SMTPStep("220 ready for tls\r\n", .startTLS)
    }

    /// The handshake succeeded: the session starts over (RFC 3207), now encrypted.
    public mutating func tlsStarted(_ description: String? = nil) {
        settings.tlsActive = true
        settings.tlsDescription = description
        seenHelo = false
        heloName = nil
        resetTransaction()
    }

    func printable(_ bytes: [UInt8]) -> String {
        String(decoding: bytes.prefix(1024).map { $0 < 32 || $0 == 127 ? 63 : $0 }, as: UTF8.self)
    }
}
