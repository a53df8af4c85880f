// SMTP replies as qmail-remote reads them: a code from the first line, the whole text kept
// (CRs dropped) for the "Remote host said:" part of a report, and the EHLO keywords.

/// One complete reply. `code` is 400 when the reply was malformed (code below 200, or a
/// line whose fourth character is neither space nor dash), as the reference does.
public struct SMTPReply: Equatable, Sendable {
    public var code: Int
    /// Every line with its LF, CRs removed, at most `SMTPReply.textLimit` bytes.
    public var text: [UInt8]

    public static let textLimit = 5000
    /// Lines accepted in one reply before it counts as malformed and ends.
    public static let lineLimit = 1000

    public init(code: Int, text: [UInt8]) {
        self.code = code
        self.text = text
    }

    /// Text lines without their LF.
    public var lines: [ArraySlice<UInt8>] {
        var result = text.split(separator: 10, omittingEmptySubsequences: false)
        if result.last?.isEmpty == true { result.removeLast() }
        return result
    }

    /// Keywords a 250 EHLO reply announces, upper-cased, one per line after the first,
    /// each with its parameters (a broken `AUTH=LOGIN` counts as `AUTH LOGIN`).
    public var ehloKeywords: [(keyword: String, parameters: [String])] {
        lines.dropFirst().compactMap { line in
            guard line.count > 4 else { return nil }
            var words = line.dropFirst(4).split(whereSeparator: { $0 == 32 || $0 == 9 }).map { String(decoding: $0, as: UTF8.self) }
            guard !words.isEmpty else { return nil }
            var keyword = words.removeFirst()
            if let eq = keyword.firstIndex(of: "=") {
                let rest = String(keyword[keyword.index(after: eq)...])
                keyword = String(keyword[..<eq])
                if !rest.isEmpty { words.insert(rest, at: 0) }
            }
            return (keyword.uppercased(), words)
        }
    }

    public func announces(_ keyword: String) -> Bool {
        ehloKeywords.contains { $0.keyword == keyword.uppercased() }
    }

    /// Mechanisms of the AUTH line, upper-cased.
    public var authMechanisms: [String] {
        ehloKeywords.first { $0.keyword == "AUTH" }.map { $0.parameters.map { $0.uppercased() } } ?? []
    }
}

/// Builds a reply from lines as they arrive: feed each line (with or without its CR LF)
/// until `add` returns the finished reply.
public struct SMTPReplyParser: Sendable {
    private var code = 0
    private var malformed = false
    private var text: [UInt8] = []
    private var lineCount = 0

    public init() {}

    public mutating func add(_ rawLine: some Collection<UInt8>) -> SMTPReply? {
        var line = rawLine.filter { $0 != 13 }
        if line.last == 10 { line.removeLast() }
        if text.count < SMTPReply.textLimit {
            text += line.prefix(SMTPReply.textLimit - text.count)
            if text.count < SMTPReply.textLimit { text.append(10) }
        }
        if lineCount == 0 {
            let digits = line.prefix(3).prefix { $0 >= 48 && $0 <= 57 }
            code = digits.reduce(0) { $0 * 10 + Int($1 - 48) }
            if code < 200 { malformed = true }
        }
        lineCount += 1
        let separator: UInt8? = line.count > 3 ? line[line.index(line.startIndex, offsetBy: 3)] : nil
        if separator != 32 && separator != 45 { malformed = true }
        if separator == 45 && lineCount < SMTPReply.lineLimit { return nil }
        if separator == 45 { malformed = true }
        let finished = SMTPReply(code: malformed ? 400 : code, text: text)
        self = SMTPReplyParser()
        return finished
    }

    /// Parses a whole buffer of replies (for tests and fuzzing): the complete replies and
    /// how many bytes they used.
    public static func parseAll(_ bytes: [UInt8]) -> (replies: [SMTPReply], used: Int) {
        var parser = SMTPReplyParser()
        var replies: [SMTPReply] = []
        var start = 0
        var used = 0
        for i in bytes.indices where bytes[i] == 10 {
            if let reply = parser.add(bytes[start...i]) {
                replies.append(reply)
                used = i + 1
            }
            start = i + 1
        }
        return (replies, used)
    }
}
