// Header field names qmail-inject knows, the validity test for a header line, the
// header/body splitter, and RFC 821/822 local-part quoting (qmail-header.5).

public enum HeaderFieldName: Int, CaseIterable, Sendable {
    case sender = 1, from, replyTo, to, cc, bcc, date, messageID, subject
    case resentSender, resentFrom, resentReplyTo, resentTo, resentCc, resentBcc, resentDate, resentMessageID
    case returnReceiptTo, errorsTo, apparentlyTo, received, returnPath, deliveredTo, contentLength
    case contentType, contentTransferEncoding, noticeRequestedUponDeliveryTo, mailFollowupTo

    /// The lower-case name as it appears in headers.
    public var name: String {
        switch self {
        case .sender: "sender"
        case .from: "from"
        case .replyTo: "reply-to"
        case .to: "to"
        case .cc: "cc"
        case .bcc: "bcc"
        case .date: "date"
        case .messageID: "message-id"
        case .subject: "subject"
        case .resentSender: "resent-sender"
        case .resentFrom: "resent-from"
        case .resentReplyTo: "resent-reply-to"
        case .resentTo: "resent-to"
        case .resentCc: "resent-cc"
        case .resentBcc: "resent-bcc"
        case .resentDate: "resent-date"
        case .resentMessageID: "resent-message-id"
        case .returnReceiptTo: "return-receipt-to"
        case .errorsTo: "errors-to"
        case .apparentlyTo: "apparently-to"
        case .received: "received"
        case .returnPath: "return-path"
        case .deliveredTo: "delivered-to"
        case .contentLength: "content-length"
        case .contentType: "content-type"
        case .contentTransferEncoding: "content-transfer-encoding"
        case .noticeRequestedUponDeliveryTo: "notice-requested-upon-delivery-to"
        case .mailFollowupTo: "mail-followup-to"
        }
    }

    public var isResent: Bool { rawValue >= HeaderFieldName.resentSender.rawValue && rawValue <= HeaderFieldName.resentMessageID.rawValue }

    /// The known field a header line starts with: the name in either case (a hyphen must be
    /// a hyphen), optional blanks, then a colon.
    public static func known(_ line: some Collection<UInt8>) -> HeaderFieldName? {
        let s = Array(line)
        for field in allCases where matches(s, field.name) { return field }
        return nil
    }

    private static func matches(_ s: [UInt8], _ name: String) -> Bool {
        var i = 0
        for ch in name.utf8 {
            guard i < s.count else { return false }
            if ch != s[i] {
                if ch == UInt8(ascii: "-") { return false }
                if ch < 32 || ch &- 32 != s[i] { return false }
            }
            i += 1
        }
        while i < s.count {
            if s[i] == UInt8(ascii: ":") { return true }
            if s[i] != 32 && s[i] != 9 { return false }
            i += 1
        }
        return false
    }

    /// Whether a line can start a header field: a colon, and before it (trailing blanks
    /// aside) a non-empty name of printable characters without spaces.
    public static func isValidField(_ line: some Collection<UInt8>) -> Bool {
        let s = Array(line)
        guard var end = s.firstIndex(of: UInt8(ascii: ":")) else { return false }
        while end > 0, s[end - 1] == 32 || s[end - 1] == 9 { end -= 1 }
        guard end > 0 else { return false }
        return s[..<end].allSatisfy { $0 > 32 && $0 < 127 }
    }
}

/// What a message's first lines are: header fields (continuation lines joined, each ending
/// in a newline) and the body lines read so far.
public struct HeaderSplit: Equatable, Sendable {
    public var fields: [[UInt8]] = []
    /// Body lines already consumed while finding the end of the header: the blank line (or
    /// an inserted one) and the first non-header line. Empty when the message has no body.
    public var bodyStart: [[UInt8]] = []
    /// True when input ended inside the header.
    public var endedInHeader = false
}

public enum HeaderSplitter {
    /// Reads lines from `nextLine` (each with its newline; the last line may lack one, and
    /// gets one) until the header ends. An mbox `From ` line in the header becomes an
    /// `MBOX-Line:` field; a line that is neither a field nor a continuation ends the
    /// header and a blank line is put before it.
    public static func split(_ nextLine: () -> [UInt8]?) -> HeaderSplit {
        var result = HeaderSplit()
        var current: [UInt8]? = nil
        while var line = nextLine() {
            if line.isEmpty { continue }
            if line.last != 10 { line.append(10) }
            if current != nil, line[0] == 32 || line[0] == 9 {
                current?.append(contentsOf: line)
                continue
            }
            if let field = current { result.fields.append(field); current = nil }
            if line.count == 1 {
                result.bodyStart = [line]
                return result
            }
            if line.starts(with: Array("From ".utf8)) {
                current = Array("MBOX-Line: ".utf8) + line
            } else if HeaderFieldName.isValidField(line) {
                current = line
            } else {
                result.bodyStart = [[10], line]
                return result
            }
        }
        if let field = current { result.fields.append(field) }
        result.endedInHeader = true
        return result
    }
}

public enum AddressQuoting {
    private static func plain(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "a") ... UInt8(ascii: "z"), UInt8(ascii: "A") ... UInt8(ascii: "Z"),
             UInt8(ascii: "0") ... UInt8(ascii: "9"):
            return true
        default:
            return Array("!#$%&'*+-./=?^_`{|}~".utf8).contains(c)
        }
    }

    /// Whether a local part must be quoted: empty, a special or non-ASCII byte, or a dot at
    /// either end or doubled.
    public static func needsQuoting(_ s: [UInt8]) -> Bool {
        if s.isEmpty { return true }
        if !s.allSatisfy(plain) { return true }
        if s.first == UInt8(ascii: ".") || s.last == UInt8(ascii: ".") { return true }
        for i in 0 ..< s.count - 1 where s[i] == UInt8(ascii: ".") && s[i + 1] == UInt8(ascii: ".") { return true }
        return false
    }

    public static func quote(_ s: [UInt8]) -> [UInt8] {
        guard needsQuoting(s) else { return s }
        var out: [UInt8] = [UInt8(ascii: "\"")]
        for c in s {
            if c == 13 || c == 10 || c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\") { out.append(UInt8(ascii: "\\")) }
            out.append(c)
        }
        out.append(UInt8(ascii: "\""))
        return out
    }

    /// An address with its local part (everything before the last `@`) quoted when needed.
    public static func quoteAddress(_ s: [UInt8]) -> [UInt8] {
        if s.isEmpty { return s }
        guard let at = s.lastIndex(of: UInt8(ascii: "@")) else { return quote(s) }
        return quote(Array(s[..<at])) + s[at...]
    }
}
