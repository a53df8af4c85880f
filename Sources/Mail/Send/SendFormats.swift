// The pure parts of qmail-send and todo-proc: retry schedule, VERP, the spawner and
// todo-proc pipe records, log-safe text, bounce blocks and address classification.
// Nothing here touches a file descriptor, so all of it is unit tested directly.
import Core

/// The two delivery channels, in the reference's order.
public enum DeliveryChannel: Int, CaseIterable, Sendable {
    case local = 0, remote = 1

    public var area: QueueArea { self == .local ? .local : .remote }
    /// The retry schedule's constant (the reference's chanskip).
    public var skip: Int64 { self == .local ? 10 : 20 }
    public var name: String { self == .local ? "local" : "remote" }
}

/// When a message with a temporary failure is tried again.
public enum RetrySchedule {
    /// `birth + (floor(sqrt(max(0, now − birth))) + skip)²`.
    public static func next(birth: Int64, now: Int64, skip: Int64) -> Int64 {
        let age = now > birth ? now &- birth : 0
        let root = integerSquareRoot(age)
        let step = root &+ skip
        let (square, overflow) = step.multipliedReportingOverflow(by: step)
        if overflow { return Int64.max }
        let (due, o2) = birth.addingReportingOverflow(square)
        return o2 ? Int64.max : due
    }

    /// floor(sqrt(n)) without floating point rounding surprises.
    public static func integerSquareRoot(_ n: Int64) -> Int64 {
        guard n > 0 else { return 0 }
        var x = Int64(Double(n).squareRoot())
        while x > 0 && x > n / x { x -= 1 }
        while (x + 1) <= n / (x + 1) { x += 1 }
        return x
    }
}

public enum LogText {
    /// The reference's logsafe: NL becomes `/`, `%`, controls and non-ASCII become `_`.
    public static func safe(_ bytes: some Sequence<UInt8>) -> [UInt8] {
        bytes.map { c in
            if c == 10 { return UInt8(ascii: "/") }
            return c == UInt8(ascii: "%") || c < 33 || c > 126 ? UInt8(ascii: "_") : c
        }
    }

    public static func safeString(_ bytes: some Sequence<UInt8>) -> String {
        String(decoding: safe(bytes), as: UTF8.self)
    }
}

public enum VERP {
    /// `prefix@host-@[]` sent to `box@rhost` becomes `prefix` + `box=rhost@host`;
    /// every other sender is returned unchanged.
    public static func expand(sender: [UInt8], recipient: [UInt8]) -> [UInt8] {
        let marker = Array("-@[]".utf8)
        guard sender.count >= marker.count, Array(sender.suffix(marker.count)) == marker else { return sender }
        let stem = Array(sender.dropLast(marker.count))
        guard let at = stem.lastIndex(of: UInt8(ascii: "@")) else { return sender }
        let prefix = stem[..<at]
        let host = stem[(at + 1)...]
        var box = recipient
        if let rat = recipient.lastIndex(of: UInt8(ascii: "@")) {
            box = Array(recipient[..<rat]) + [UInt8(ascii: "=")] + Array(recipient[(rat + 1)...])
        }
        return Array(prefix) + box + [UInt8(ascii: "@")] + Array(host)
    }

    /// A VERP sender as the bounce goes to it: `prefix@host-@[]` → `prefix@host`.
    public static func plain(_ sender: [UInt8]) -> [UInt8] {
        let marker = Array("-@[]".utf8)
        guard sender.count >= marker.count, Array(sender.suffix(marker.count)) == marker else { return sender }
        return Array(sender.dropLast(marker.count))
    }
}

/// One command from qmail-send to a spawner (§6.3).
public struct SpawnCommand: Equatable, Sendable {
    public var slot: Int
    /// `<split>/<id>`, relative to the queue's mess/.
    public var messagePath: [UInt8]
    public var sender: [UInt8]
    public var qqeh: [UInt8]
    public var envelopeHeaders: [UInt8]
    public var recipient: [UInt8]

    public init(slot: Int, messagePath: [UInt8], sender: [UInt8], qqeh: [UInt8], envelopeHeaders: [UInt8], recipient: [UInt8]) {
        self.slot = slot
        self.messagePath = messagePath
        self.sender = sender
        self.qqeh = qqeh
        self.envelopeHeaders = envelopeHeaders
        self.recipient = recipient
    }

    public var bytes: [UInt8] {
        var out: [UInt8] = [UInt8(truncatingIfNeeded: slot), UInt8(truncatingIfNeeded: slot >> 8)]
        for field in [messagePath, sender, qqeh, envelopeHeaders, recipient] {
            out += field.map { $0 == 0 ? 10 : $0 }
            out.append(0)
        }
        return out
    }
}

/// One report from a spawner: slot, K/Z/D (anything else is "mangled") and text.
public struct SpawnReport: Equatable, Sendable {
    public var slot: Int
    public var status: UInt8
    public var text: [UInt8]

    public init(slot: Int, status: UInt8, text: [UInt8]) {
        self.slot = slot
        self.status = status
        self.text = text
    }

    /// The reference's treatment of a deferral once the message outlived its lifetime.
    public mutating func giveUp() {
        guard status == UInt8(ascii: "Z") else { return }
        status = UInt8(ascii: "D")
        text += Array("I'm not going to try again; this message has been in the queue too long.\n".utf8)
    }
}

/// Splits a spawner's report stream into reports: each is at least two slot bytes, a
/// status and text up to NUL; a report longer than 10000 bytes is cut there.
public struct SpawnReportReader: Sendable {
    public static let maximum = 10000
    private var line: [UInt8] = []

    public init() {}

    public mutating func feed(_ bytes: some Sequence<UInt8>) -> [SpawnReport] {
        var out: [SpawnReport] = []
        for b in bytes {
            if b == 0 && line.count > 2 {
                let slot = Int(line[0]) | Int(line[1]) << 8
                out.append(SpawnReport(slot: slot, status: line[2], text: Array(line[3...])))
                line.removeAll(keepingCapacity: true)
                continue
            }
            if line.count < SpawnReportReader.maximum { line.append(b) }
        }
        return out
    }
}

/// Records from todo-proc to qmail-send (§6.1).
public enum TodoRecord: Equatable, Sendable {
    /// `D<L|R|B|X><id>`: message preprocessed.
    case done(id: UInt64, local: Bool, remote: Bool)
    /// `L<text>`: a line for the log, written verbatim.
    case log([UInt8])
    /// `X`: todo-proc is going away.
    case exit
    /// Anything else (kept for a warning).
    case malformed([UInt8])

    public var bytes: [UInt8] {
        switch self {
        case .done(let id, let l, let r):
            let kind = l && r ? "B" : l ? "L" : r ? "R" : "X"
            return Array("D\(kind)\(id)".utf8) + [0]
        case .log(let text): return [UInt8(ascii: "L")] + text + [0]
        case .exit: return [UInt8(ascii: "X"), 0]
        case .malformed(let b): return b + [0]
        }
    }

    public static func parse(_ record: [UInt8]) -> TodoRecord {
        guard let first = record.first else { return .malformed(record) }
        switch first {
        case UInt8(ascii: "L"): return .log(Array(record.dropFirst()))
        case UInt8(ascii: "X"): return .exit
        case UInt8(ascii: "D"):
            guard record.count >= 3 else { return .malformed(record) }
            let digits = record.dropFirst(2)
            guard digits.count <= 19, digits.allSatisfy({ $0 >= 48 && $0 <= 57 }),
                  let id = UInt64(String(decoding: digits, as: UTF8.self)) else { return .malformed(record) }
            switch record[1] {
            case UInt8(ascii: "L"): return .done(id: id, local: true, remote: false)
            case UInt8(ascii: "R"): return .done(id: id, local: false, remote: true)
            case UInt8(ascii: "B"): return .done(id: id, local: true, remote: true)
            case UInt8(ascii: "X"): return .done(id: id, local: false, remote: false)
            default: return .malformed(record)
            }
        default: return .malformed(record)
        }
    }
}

/// NUL-terminated records from a byte stream, each capped at `limit` bytes.
public struct NulRecordReader: Sendable {
    private var record: [UInt8] = []
    private let limit: Int

    public init(limit: Int = 65536) { self.limit = limit }

    public mutating func feed(_ bytes: some Sequence<UInt8>) -> [[UInt8]] {
        var out: [[UInt8]] = []
        for b in bytes {
            if b == 0 {
                out.append(record)
                record.removeAll(keepingCapacity: true)
            } else if record.count < limit {
                record.append(b)
            }
        }
        return out
    }
}

/// A channel file (local/ or remote/): `T<addr>\0` to do, `D<addr>\0` done.
public struct ChannelFile: Equatable, Sendable {
    public struct Entry: Equatable, Sendable {
        /// Byte offset of the T/D letter (where "done" is written).
        public var offset: Int
        public var address: [UInt8]
        public var done: Bool
    }

    public var entries: [Entry]

    /// Unknown letters and an unterminated tail are skipped, as the reference does.
    public static func parse(_ bytes: [UInt8]) -> ChannelFile {
        var entries: [Entry] = []
        var start = 0
        while start < bytes.count {
            guard let end = bytes[start...].firstIndex(of: 0) else { break }
            if end > start {
                let letter = bytes[start]
                if letter == UInt8(ascii: "T") || letter == UInt8(ascii: "D") {
                    entries.append(Entry(offset: start, address: Array(bytes[(start + 1)..<end]),
                                         done: letter == UInt8(ascii: "D")))
                }
            }
            start = end + 1
        }
        return ChannelFile(entries: entries)
    }
}

/// The info file: `F<sender>\0`, optional `e…\0` and `h…\0`; other letters ignored.
public struct InfoFile: Equatable, Sendable {
    public var sender: [UInt8]
    public var qqeh: [UInt8]
    public var envelopeHeaders: [UInt8]

    public init(sender: [UInt8], qqeh: [UInt8], envelopeHeaders: [UInt8]) {
        self.sender = sender
        self.qqeh = qqeh
        self.envelopeHeaders = envelopeHeaders
    }

    public static func parse(_ bytes: [UInt8]) -> InfoFile? {
        var sender: [UInt8]?
        var e: [UInt8] = [], h: [UInt8] = []
        for record in bytes.split(separator: 0, omittingEmptySubsequences: true) {
            switch record.first {
            case UInt8(ascii: "F"): sender = Array(record.dropFirst())
            case UInt8(ascii: "e"): e = Array(record.dropFirst())
            case UInt8(ascii: "h"): h = Array(record.dropFirst())
            default: break
            }
        }
        guard let sender else { return nil }
        return InfoFile(sender: sender, qqeh: e, envelopeHeaders: h)
    }
}

/// Decides local or remote for each recipient and rewrites it (§3.5).
public struct AddressRewriter: Sendable {
    public var locals: Set<String>
    public var percentHack: Set<String>
    /// `virtualdomains` as key (lowercased) → prepend.
    public var virtualDomains: [String: String]
    public var envNoAtHost: String

    public init(locals: [String], percentHack: [String], virtualDomains: [String], envNoAtHost: String) {
        self.locals = Set(locals.map { $0.lowercased() })
        self.percentHack = Set(percentHack.map { $0.lowercased() })
        var map: [String: String] = [:]
        for line in virtualDomains {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = String(line[..<colon]).lowercased()
            if map[key] == nil { map[key] = String(line[line.index(after: colon)...]) }
        }
        self.virtualDomains = map
        self.envNoAtHost = envNoAtHost
    }

    /// The virtualdomains entry for `address` (keys: address, domain, `.`-suffixes, empty).
    public func virtualPrepend(_ address: [UInt8]) -> String? {
        guard let at = address.lastIndex(of: UInt8(ascii: "@")) else { return nil }
        let domain = String(decoding: address[(at + 1)...], as: UTF8.self).lowercased()
        let whole = String(decoding: address, as: UTF8.self).lowercased()
        if let v = virtualDomains[whole] { return v }
        if let v = virtualDomains[domain] { return v }
        var index = domain.startIndex
        while let dot = domain[index...].firstIndex(of: ".") {
            if let v = virtualDomains[String(domain[dot...])] { return v }
            index = domain.index(after: dot)
        }
        return virtualDomains[""]
    }

    /// (channel, rewritten address).
    public func rewrite(_ input: [UInt8]) -> (DeliveryChannel, [UInt8]) {
        var address = input
        if !address.contains(UInt8(ascii: "@")) { address += [UInt8(ascii: "@")] + Array(envNoAtHost.utf8) }
        while let at = address.lastIndex(of: UInt8(ascii: "@")) {
            let domain = String(decoding: address[(at + 1)...], as: UTF8.self).lowercased()
            guard percentHack.contains(domain), let pct = address[..<at].lastIndex(of: UInt8(ascii: "%")) else { break }
            address = Array(address[..<at])
            address[pct] = UInt8(ascii: "@")
        }
        guard let at = address.lastIndex(of: UInt8(ascii: "@")) else { return (.remote, address) }
        let domain = String(decoding: address[(at + 1)...], as: UTF8.self).lowercased()
        if locals.contains(domain) { return (.local, address) }
        if let prepend = virtualPrepend(address), !prepend.isEmpty {
            return (.local, Array(prepend.utf8) + [UInt8(ascii: "-")] + address)
        }
        return (.remote, address)
    }

    /// The recipient as the sender knew it: a virtual domain's `prepend-` removed.
    public func stripVirtualPrepend(_ recipient: [UInt8]) -> [UInt8] {
        guard let at = recipient.lastIndex(of: UInt8(ascii: "@")) else { return recipient }
        let local = recipient[..<at]
        guard let dash = local.firstIndex(of: UInt8(ascii: "-")) else { return recipient }
        let stripped = Array(recipient[(dash + 1)...])
        guard let prepend = virtualPrepend(stripped), !prepend.isEmpty,
              Array(local[..<dash]) == Array(prepend.utf8) else { return recipient }
        return stripped
    }
}

public enum BounceText {
    /// One block of bounce/<id> for a permanent failure (§8.1).
    public static func block(recipient: [UInt8], report: [UInt8]) -> [UInt8] {
        var text: [UInt8] = [UInt8(ascii: "<")] + recipient.map { $0 == 10 ? UInt8(ascii: "_") : $0 }
        text += Array(">:\n".utf8) + report
        if let last = report.last, last != 10 { text.append(10) }
        // No blank line inside a block: "\n\n" becomes "\n/" (from the end, as the reference).
        var pos = text.count - 2
        while pos > 0 {
            if text[pos] == 10 && text[pos - 1] == 10 { text[pos] = UInt8(ascii: "/") }
            pos -= 1
        }
        text.append(10)
        return text
    }

    /// The first recipient named in a bounce file (for X-Bounced-Address).
    public static func firstRecipient(_ bounce: [UInt8]) -> [UInt8]? {
        guard bounce.first == UInt8(ascii: "<"), let end = bounce.firstIndex(of: UInt8(ascii: ">")) else { return nil }
        return Array(bounce[1..<end])
    }
}

/// Settings that shape a bounce message (control files, §17.2).
public struct BounceSettings: Equatable, Sendable {
    public var from = "MAILER-DAEMON"
    public var host: String
    public var subject = "failure notice"
    public var doubleSubject = "failure notice"
    public var message: [UInt8] = []
    public var doubleMessage: [UInt8] = []
    public var maxBytes = 50000
    public var doubleBounceTo = "postmaster"
    public var doubleBounceHost: String
    public var program = "qmail-send"

    public init(me: String) {
        host = me
        doubleBounceHost = me
    }
}

/// What to do with a message's accumulated failures.
public enum BouncePlan: Equatable, Sendable {
    case discardTriple
    case discardDouble
    /// Inject a bounce from `sender` (empty or `#@[]`) to `recipient`.
    case send(sender: [UInt8], recipient: [UInt8], double: Bool)

    public static func plan(originalSender: [UInt8], settings: BounceSettings) -> BouncePlan {
        let s = VERP.plain(originalSender)
        if s == Array("#@[]".utf8) { return .discardTriple }
        if s.isEmpty {
            if settings.doubleBounceTo.isEmpty || settings.doubleBounceTo.hasPrefix("@") { return .discardDouble }
            return .send(sender: Array("#@[]".utf8),
                         recipient: Array("\(settings.doubleBounceTo)@\(settings.doubleBounceHost)".utf8), double: true)
        }
        return .send(sender: [], recipient: s, double: false)
    }

    /// The head of the bounce message up to and including the Return-Path line; the
    /// original message (at most maxBytes) and `truncationNotice` follow it.
    public static func head(settings: BounceSettings, date: String, originalSender: [UInt8],
                            bounceRecipient: [UInt8], double: Bool, report: [UInt8]) -> [UInt8] {
        var out = Array("Date: \(date)".utf8)
        if out.last != 10 { out.append(10) }
        // The reference writes the address as it appears in the bounce file, brackets kept.
        if let first = BounceText.firstRecipient(report) {
            out += Array("X-Bounced-Address: <".utf8) + first + Array(">\n".utf8)
        }
        out += Array("From: ".utf8) + LocalRecipient.quoteAddress(Array(settings.from.utf8))
            + Array("@\(settings.host)\nTo: ".utf8) + LocalRecipient.quoteAddress(bounceRecipient)
        out += Array("\nSubject: \(double ? settings.doubleSubject : settings.subject)\n\n".utf8)
        let custom = double ? settings.doubleMessage : settings.message
        if !custom.isEmpty {
            out += custom + [10]
        } else {
            out += Array("Hi. This is the \(settings.program) program at \(settings.host).\n".utf8)
            out += Array((double
                ? "I tried to deliver a bounce message to this address, but the bounce bounced!\n\n"
                : "I'm afraid I wasn't able to deliver your message to the following addresses.\nThis is a permanent error; I've given up. Sorry it didn't work out.\n\n").utf8)
        }
        out += report
        out += Array((double ? "--- Below this line is the original bounce.\n\n"
                             : "--- Below this line is a copy of the message.\n\n").utf8)
        out += Array("Return-Path: <".utf8) + LocalRecipient.quoteAddress(VERP.plain(originalSender)) + Array(">\n".utf8)
        return out
    }

    public static let truncationNotice = Array("\n\n--- End of message stripped.\n".utf8)
}

/// Activity log lines (§7.1), each ending with the queue's name and a newline.
public struct ActivityLog: Sendable {
    /// basename of QUEUEDIR (the reference's queuedesc).
    public var queueName: String
    /// QIDENT: appended to delivery numbers as `.<qident>`.
    public var qident: String?

    public init(queueName: String, qident: String?) {
        self.queueName = queueName
        self.qident = qident
    }

    func number(_ d: UInt64) -> String { qident.map { "\(d).\($0)" } ?? "\(d)" }

    public func starting(delivery: UInt64, id: UInt64, channel: DeliveryChannel, recipient: [UInt8]) -> String {
        "starting delivery \(number(delivery)): msg \(id) to \(channel.name) \(LogText.safeString(recipient)) \(queueName)\n"
    }

    public func report(delivery: UInt64, status: UInt8, text: [UInt8]) -> String {
        let word: String
        switch status {
        case UInt8(ascii: "K"): word = "success"
        case UInt8(ascii: "Z"): word = "deferral"
        case UInt8(ascii: "D"): word = "failure"
        default: return "delivery \(delivery): report mangled, will defer: \(queueName)\n"
        }
        return "delivery \(number(delivery)): \(word): \(LogText.safeString(text)) \(queueName)\n"
    }

    public func status(used: [Int], limits: [Int], held: [Bool], exiting: Bool) -> String {
        var line = "status:"
        for c in DeliveryChannel.allCases {
            line += " \(c.name) \(used[c.rawValue])/\(limits[c.rawValue])"
            if held[c.rawValue] { line += " (held)" }
        }
        line += " \(queueName)"
        if exiting { line += " exitasap" }
        return line + "\n"
    }

    public func newMessage(_ id: UInt64) -> String { "new msg \(id) \(queueName)\n" }

    public func info(id: UInt64, bytes: Int64, sender: [UInt8], qp: UInt64, uid: UInt64) -> String {
        "info msg \(id): bytes \(bytes) from <\(LogText.safeString(sender))> qp \(qp) uid \(uid) \(queueName)\n"
    }

    public func endMessage(_ id: UInt64, program: String) -> String { "end msg \(id) \(program): \(queueName)\n" }

    public func bounce(_ id: UInt64, qp: Int32) -> String { "bounce msg \(id) qp \(qp) \(queueName)\n" }

    public func warn(_ program: String, _ text: String) -> String { "warn: \(program): \(queueName): \(text)\n" }
    public func alert(_ program: String, _ text: String) -> String { "alert: \(program): \(queueName): \(text)\n" }
}
