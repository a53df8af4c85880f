// qmail-inject's header work as a pure value: rewrite addresses (qmail-header.5), collect
// recipients and the envelope sender, and add the fields a message lacks. Time and pid
// come in as values, so the same input always gives the same bytes.

/// Why a message or an argument was refused; every case is permanent (exit 100).
public enum InjectError: Error, Equatable, Sendable, CustomStringConvertible {
    case unparsableLine([UInt8])
    case invalidField([UInt8])
    case unparsableAddress([UInt8])
    case tooManyRecipients

    public var description: String {
        switch self {
        case .unparsableLine(let line): return "unable to parse this line:\n" + String(decoding: line, as: UTF8.self)
        case .invalidField(let line): return "invalid header field: " + String(decoding: line, as: UTF8.self)
        case .unparsableAddress(let a): return "unable to parse address: " + String(decoding: a, as: UTF8.self)
        case .tooManyRecipients: return "max number of recipients exceeded"
        }
    }
}

/// Everything the rewriting depends on, read once from the environment and control files.
public struct InjectSettings: Equatable, Sendable {
    public var defaultHost: [UInt8]
    public var defaultDomain: [UInt8]
    public var plusDomain: [UInt8]
    public var idHost: [UInt8]
    /// From: user, host and full name (QMAILUSER…, QMAILHOST…, QMAILNAME…).
    public var mailUser: [UInt8]
    public var mailHost: [UInt8]?
    public var fullName: [UInt8]?
    /// The envelope sender's user and host when no Return-Path or -f gives one.
    public var senderUser: [UInt8]
    public var senderHost: [UInt8]?
    /// QMAILINJECT letters.
    public var nameAsComment = false      // c
    public var ignoreReturnPath = false   // s
    public var dropFrom = false           // f
    public var dropMessageID = false      // i
    public var verpPerRecipient = false   // r
    public var verpPerMessage = false     // m
    /// 0: no limit.
    public var maxRecipients = 0
    /// Addresses of QMAILMFTFILE: mailing lists that get a Mail-Followup-To.
    public var followupLists: Set<[UInt8]>? = nil

    public init(defaultHost: String, defaultDomain: String, plusDomain: String, idHost: String,
                mailUser: String = "anonymous", mailHost: String? = nil, fullName: String? = nil,
                senderUser: String? = nil, senderHost: String? = nil) {
        self.defaultHost = Array(defaultHost.utf8)
        self.defaultDomain = Array(defaultDomain.utf8)
        self.plusDomain = Array(plusDomain.utf8)
        self.idHost = Array(idHost.utf8)
        self.mailUser = Array(mailUser.utf8)
        self.mailHost = mailHost.map { Array($0.utf8) }
        self.fullName = fullName.map { Array($0.utf8) }
        self.senderUser = Array((senderUser ?? mailUser).utf8)
        self.senderHost = (senderHost ?? mailHost).map { Array($0.utf8) }
    }

    /// Applies the letters of QMAILINJECT; returns true when `n` (print, don't queue) was among them.
    public mutating func applyFlags(_ letters: some Sequence<UInt8>) -> Bool {
        var printOnly = false
        for c in letters {
            switch c {
            case UInt8(ascii: "c"): nameAsComment = true
            case UInt8(ascii: "s"): ignoreReturnPath = true
            case UInt8(ascii: "f"): dropFrom = true
            case UInt8(ascii: "i"): dropMessageID = true
            case UInt8(ascii: "r"): verpPerRecipient = true
            case UInt8(ascii: "m"): verpPerMessage = true
            case UInt8(ascii: "n"): printOnly = true
            default: break
            }
        }
        return printOnly
    }
}

/// Where recipients come from: qmail-inject's -a, -h and -H.
public enum RecipientSource: Equatable, Sendable {
    case arguments, header, both
}

public struct InjectSession: Sendable {
    public let settings: InjectSettings
    public let source: RecipientSource
    public let time: Int
    public let pid: Int

    private let hostTokens: [Token822]
    private let domainTokens: [Token822]
    private let plusTokens: [Token822]

    public private(set) var sender: [UInt8]? = nil
    private var seen = Set<HeaderFieldName>()
    private var saved: [[UInt8]] = []
    private var headerRecipients: [[UInt8]] = []
    private var resentRecipients: [[UInt8]] = []
    private var toCcRecipients: [[UInt8]] = []
    private var argumentRecipients: [[UInt8]] = []
    private var recipientCount = 0

    public init(settings: InjectSettings, source: RecipientSource, time: Int, pid: Int) throws(InjectError) {
        self.settings = settings
        self.source = source
        self.time = time
        self.pid = pid
        func tokens(_ prefix: String, _ value: [UInt8]) throws(InjectError) -> [Token822] {
            let line = Array(prefix.utf8) + value
            guard case .success(let t) = RFC822Tokens.parse(line) else { throw .unparsableLine(line) }
            return t
        }
        hostTokens = try tokens("@", settings.defaultHost)
        domainTokens = try tokens(".", settings.defaultDomain)
        plusTokens = try tokens(".", settings.plusDomain)
    }

    private var headerGivesRecipients: Bool { source != .arguments }

    /// Resent-* fields were seen: the message is being resent.
    public var isResent: Bool { seen.contains { $0.isResent } }

    /// The envelope: sender, argument recipients, then header recipients (Resent-* ones for
    /// a resent message).
    public var envelope: Envelope {
        var recipients = argumentRecipients
        if headerGivesRecipients { recipients += isResent ? resentRecipients : headerRecipients }
        return Envelope(sender: sender ?? [], recipients: recipients)
    }

    // MARK: address rewriting (tokens in reading order)

    /// qmail-header.5's rules for one address.
    func rewrite(_ a: inout [Token822]) {
        guard !a.isEmpty else { return }                          // <>
        if a.count >= 2, a[a.count - 1].kind == .literal, a[a.count - 1].text.isEmpty, a[a.count - 2].kind == .at {
            return                                                // foo@[]
        }
        if a[0].kind == .at {                                     // source route @a,@b:user@host
            if let colon = a.firstIndex(where: { $0.kind == .colon }) { a.removeSubrange(...colon) } else { a.removeAll() }
        }
        guard !a.isEmpty else { return }
        if a[a.count - 1].kind == .dot { a.removeLast() }
        guard !a.isEmpty else { return }
        if a[a.count - 1].kind == .at { a.removeLast() }
        guard !a.isEmpty else { return }
        if !a.contains(where: { $0.kind == .at }) { a += hostTokens }
        if let last = a.last, last.kind == .atom, last.text.last == UInt8(ascii: "+") {
            a[a.count - 1].text.removeLast()
            a += plusTokens
        }
        let domainStart = (a.lastIndex { $0.kind == .at }).map { $0 + 1 } ?? 0
        let domain = a[domainStart...]
        if domain.contains(where: { $0.kind == .dot || $0.kind == .literal }) { return }
        a += domainTokens
    }

    private mutating func rewriteField(_ line: [UInt8], collect: (inout InjectSession, [UInt8]) -> Void) throws(InjectError) -> [UInt8] {
        guard case .success(let tokens) = RFC822Tokens.parse(line) else { throw .unparsableLine(line) }
        var collected: [[UInt8]] = []
        let rewritten = RFC822Tokens.addressList(tokens) { address in
            rewrite(&address)
            collected.append(RFC822Tokens.unquote(address))
        }
        guard let rewritten else { throw .unparsableLine(line) }
        for a in collected { collect(&self, a) }
        return RFC822Tokens.unparse(rewritten)
    }

    private mutating func takeReturnPath(_ address: [UInt8]) {
        guard sender == nil else { return }
        sender = address + (settings.verpPerRecipient ? Array("-@[]".utf8) : [])
    }

    // MARK: inputs

    /// -f: the envelope sender, rewritten like any address.
    public mutating func setSender(_ argument: [UInt8]) throws(InjectError) {
        let quoted = AddressQuoting.quoteAddress(argument)
        guard case .success(var tokens) = RFC822Tokens.parse(quoted) else { throw .unparsableLine(quoted) }
        rewrite(&tokens)
        sender = RFC822Tokens.unquote(tokens)
    }

    /// A recipient given as an argument.
    public mutating func addRecipient(_ argument: [UInt8]) throws(InjectError) {
        let quoted = AddressQuoting.quoteAddress(argument)
        guard case .success(var tokens) = RFC822Tokens.parse(quoted) else { throw .unparsableAddress(argument) }
        recipientCount += 1
        if settings.maxRecipients > 0, recipientCount > settings.maxRecipients { throw .tooManyRecipients }
        rewrite(&tokens)
        argumentRecipients.append(RFC822Tokens.unquote(tokens))
    }

    /// One header field (continuation lines included, ending in a newline).
    public mutating func field(_ line: [UInt8]) throws(InjectError) {
        let kind = HeaderFieldName.known(line)
        if settings.dropFrom, kind == .from { return }
        if settings.dropMessageID, kind == .messageID { return }
        if settings.ignoreReturnPath, kind == .returnPath { return }
        if let kind { seen.insert(kind) } else if !HeaderFieldName.isValidField(line) { throw .invalidField(line) }
        var out = line
        switch kind {
        case .to?, .cc?:
            if headerGivesRecipients {
                out = try rewriteField(line) { s, a in s.headerRecipients.append(a); s.toCcRecipients.append(a) }
            }
        case .bcc?, .apparentlyTo?:
            if headerGivesRecipients { out = try rewriteField(line) { s, a in s.headerRecipients.append(a) } }
        case .resentTo?, .resentCc?, .resentBcc?:
            if headerGivesRecipients { out = try rewriteField(line) { s, a in s.resentRecipients.append(a) } }
        case .returnPath?:
            out = try rewriteField(line) { s, a in s.takeReturnPath(a) }
        case .sender?, .from?, .replyTo?, .returnReceiptTo?, .errorsTo?, .resentSender?, .resentFrom?, .resentReplyTo?:
            out = try rewriteField(line) { _, _ in }
        default:
            break
        }
        switch kind {
        case .bcc?, .resentBcc?, .returnPath?, .contentLength?: return
        default: saved.append(out)
        }
    }

    // MARK: completion

    private func rewritten(_ line: [UInt8], _ collect: (inout InjectSession, [UInt8]) -> Void) -> [UInt8] {
        var copy = self
        return (try? copy.rewriteField(line, collect: collect)) ?? line
    }

    /// `From: "Full Name" <user@host>` (or with the name as a comment), rewritten.
    func defaultFrom() -> [UInt8] {
        var t: [Token822] = [Token822(.atom, "From"), Token822(.colon)]
        let named = settings.fullName != nil && !settings.nameAsComment
        if let name = settings.fullName, named { t += [Token822(.quoted, name), Token822(.left)] }
        t.append(Token822(AddressQuoting.needsQuoting(settings.mailUser) ? .quoted : .atom, settings.mailUser))
        if let host = settings.mailHost { t += [Token822(.at), Token822(.atom, host)] }
        if named { t.append(Token822(.right)) }
        if let name = settings.fullName, settings.nameAsComment { t.append(Token822(.comment, name)) }
        return rewritten(RFC822Tokens.unparse(t)) { _, _ in }
    }

    /// The sender made from QMAILSUSER/QMAILSHOST when neither -f nor Return-Path gave one.
    private mutating func defaultReturnPath() {
        var user = settings.senderUser
        if settings.verpPerMessage { user += Array("-\(time).\(pid)".utf8) }
        if settings.verpPerRecipient { user += Array("-".utf8) }
        var t: [Token822] = [Token822(.atom, "Return-Path"), Token822(.colon), Token822(.quoted, user)]
        if let host = settings.senderHost { t += [Token822(.at), Token822(.atom, host)] }
        let line = RFC822Tokens.unparse(t)
        var copy = self
        _ = try? copy.rewriteField(line) { s, a in s.takeReturnPath(a) }
        sender = copy.sender ?? user
    }

    /// Ends the header: decides the sender and returns the header to write, new fields
    /// (Date, Message-ID, From, a Cc for hidden recipients; Resent- ones for a resent
    /// message) before the message's own. `returnPathLine` adds the Return-Path line that
    /// -n prints.
    public mutating func finishHeader(returnPathLine: Bool = false) -> [UInt8] {
        if sender == nil { defaultReturnPath() }
        var out: [UInt8] = []
        if returnPathLine {
            out += Array("Return-Path: <".utf8) + AddressQuoting.quoteAddress(sender ?? []) + Array(">\n".utf8)
        }
        let resent = isResent
        let prefix: [UInt8] = resent ? Array("Resent-".utf8) : []
        if !seen.contains(resent ? .resentDate : .date) {
            out += prefix + Array("Date: ".utf8) + Array(MessageDate.rfc822(time).utf8) + [10]
        }
        if !seen.contains(resent ? .resentMessageID : .messageID) {
            out += prefix + Array("Message-ID: <\(MessageDate.compact(time)).\(pid).indimail@".utf8) + settings.idHost + Array(">\n".utf8)
        }
        if !seen.contains(resent ? .resentFrom : .from) { out += prefix + defaultFrom() }
        if resent {
            if !seen.contains(.resentTo) && !seen.contains(.resentCc) { out += Array("Resent-Cc: recipient list not shown: ;\n".utf8) }
        } else {
            if !seen.contains(.to) && !seen.contains(.cc) { out += Array("Cc: recipient list not shown: ;\n".utf8) }
            out += followupField()
        }
        for field in saved { out += field }
        return out
    }

    /// Mail-Followup-To for a message sent to one of the QMAILMFTFILE lists.
    private func followupField() -> [UInt8] {
        guard let lists = settings.followupLists, !seen.contains(.mailFollowupTo),
              toCcRecipients.contains(where: { lists.contains($0) }) else { return [] }
        var out = Array("Mail-Followup-To: ".utf8)
        for (n, a) in toCcRecipients.reversed().enumerated() {
            if n > 0 { out += Array(",\n  ".utf8) }
            out += AddressQuoting.quoteAddress(a)
        }
        return out + [10]
    }
}

/// The reference's date forms, in GMT.
public enum MessageDate {
    static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// (year, month 1-12, day, hour, minute, second) of a Unix time.
    public static func civil(_ t: Int) -> (Int, Int, Int, Int, Int, Int) {
        let days = t >= 0 ? t / 86400 : (t - 86399) / 86400
        let secs = t - days * 86400
        // Howard Hinnant's days-from-civil inverse
        let z = days + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        return (y, m, d, secs / 3600, secs % 3600 / 60, secs % 60)
    }

    private static func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }

    /// `26 Sep 1995 04:46:53 -0000`
    public static func rfc822(_ t: Int) -> String {
        let (y, mo, d, h, mi, s) = civil(t)
        return "\(d) \(months[(mo - 1) % 12]) \(y) \(two(h)):\(two(mi)):\(two(s)) -0000"
    }

    /// `19950926044653`
    public static func compact(_ t: Int) -> String {
        let (y, mo, d, h, mi, s) = civil(t)
        return "\(y)\(two(mo))\(two(d))\(two(h))\(two(mi))\(two(s))"
    }
}
