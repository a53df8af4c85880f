// The envelope in its two byte formats: what a client writes to qmail-queue's fd 1
// (F sender, T recipients, an extra NUL) and what qmail-queue stores in intd/ and todo/
// (u, p, F, T…, optional e and h records). Pure values and parsers, no I/O.

/// Sender and recipients as raw bytes (addresses need not be UTF-8).
public struct Envelope: Equatable, Sendable {
    public var sender: [UInt8]
    public var recipients: [[UInt8]]

    public init(sender: [UInt8], recipients: [[UInt8]]) {
        self.sender = sender
        self.recipients = recipients
    }

    public init(sender: String, recipients: [String]) {
        self.init(sender: Array(sender.utf8), recipients: recipients.map { Array($0.utf8) })
    }

    /// The longest address the reference accepts: 1002 bytes (ADDR = 1003 with the NUL).
    public static let maximumAddressLength = 1002

    /// The client format: `F<sender>\0` `T<rcpt>\0`… `\0`. Addresses must hold no NUL.
    public var clientBytes: [UInt8] {
        var out: [UInt8] = [UInt8(ascii: "F")] + sender + [0]
        for r in recipients { out += [UInt8(ascii: "T")] + r + [0] }
        out.append(0)
        return out
    }

    /// Parses a complete client envelope. Bytes after the terminating NUL are ignored, as
    /// the reference never reads them.
    public static func parse(_ bytes: [UInt8]) -> Result<Envelope, EnvelopeError> {
        var reader = EnvelopeReader()
        for b in bytes {
            switch reader.feed(b) {
            case .needMore: continue
            case .failed(let e): return .failure(e)
            case .complete: return .success(reader.envelope)
            }
        }
        return .failure(.truncated)
    }
}

/// Why a client envelope was refused; each maps to the reference's exit code.
public enum EnvelopeError: Error, Equatable, Sendable, CustomStringConvertible {
    /// First byte not `F`, or a recipient record not starting with `T` (exit 79).
    case format
    /// An address longer than 1002 bytes (exit 11).
    case addressTooLong
    /// End of input before the terminating NUL (exit 54, a read error).
    case truncated

    public var exitCode: Int32 {
        switch self {
        case .format: return QueueExit.envelopeFormat.rawValue
        case .addressTooLong: return QueueExit.envelopeTooLong.rawValue
        case .truncated: return QueueExit.readError.rawValue
        }
    }

    public var description: String {
        switch self {
        case .format: return "envelope format error"
        case .addressTooLong: return "envelope address too long"
        case .truncated: return "trouble reading envelope"
        }
    }
}

/// An incremental client-envelope parser fed one byte at a time, so qmail-queue stops
/// reading at the terminating NUL exactly as the reference does (a client may keep its
/// end open) and decides on the same byte the reference would.
public struct EnvelopeReader: Sendable {
    public enum Step: Equatable, Sendable {
        case needMore
        case complete
        case failed(EnvelopeError)
    }

    private enum State: Sendable { case start, sender, recordStart, recipient, done, failed }

    private var state = State.start
    private var current: [UInt8] = []
    public private(set) var envelope = Envelope(sender: [], recipients: [])

    public init() {}

    public var isComplete: Bool { state == .done }

    public mutating func feed(_ byte: UInt8) -> Step {
        switch state {
        case .done: return .complete
        case .failed: return .failed(.format)
        case .start:
            guard byte == UInt8(ascii: "F") else { state = .failed; return .failed(.format) }
            state = .sender
            return .needMore
        case .recordStart:
            if byte == 0 { state = .done; return .complete }
            guard byte == UInt8(ascii: "T") else { state = .failed; return .failed(.format) }
            state = .recipient
            return .needMore
        case .sender, .recipient:
            if byte == 0 {
                if state == .sender { envelope.sender = current } else { envelope.recipients.append(current) }
                current.removeAll(keepingCapacity: true)
                state = .recordStart
                return .needMore
            }
            guard current.count < Envelope.maximumAddressLength else {
                state = .failed
                return .failed(.addressTooLong)
            }
            current.append(byte)
            return .needMore
        }
    }
}

/// The envelope as stored in intd/ and todo/.
public struct QueuedEnvelope: Equatable, Sendable {
    public var uid: UInt64
    public var pid: UInt64
    public var envelope: Envelope
    /// `e` record: extra header text (QQEH), ending with a newline.
    public var extraHeaders: [UInt8]?
    /// `h` record: header lines captured for the spawners (envheaders).
    public var environmentHeaders: [UInt8]?

    public init(uid: UInt64, pid: UInt64, envelope: Envelope,
                extraHeaders: [UInt8]? = nil, environmentHeaders: [UInt8]? = nil) {
        self.uid = uid
        self.pid = pid
        self.envelope = envelope
        self.extraHeaders = extraHeaders
        self.environmentHeaders = environmentHeaders
    }

    /// `u` and `p` records: what qmail-queue writes before it reads the client envelope.
    public static func prefix(uid: UInt64, pid: UInt64) -> [UInt8] {
        [UInt8(ascii: "u")] + Array(String(uid).utf8) + [0] + [UInt8(ascii: "p")] + Array(String(pid).utf8) + [0]
    }

    /// The `e` record body for a QQEH value: a newline is added when missing; nil when empty.
    public static func extraHeaderRecord(_ qqeh: [UInt8]?) -> [UInt8]? {
        guard let qqeh, !qqeh.isEmpty else { return nil }
        return qqeh.last == 10 ? qqeh : qqeh + [10]
    }

    public var bytes: [UInt8] {
        var out = QueuedEnvelope.prefix(uid: uid, pid: pid)
        out += [UInt8(ascii: "F")] + envelope.sender + [0]
        for r in envelope.recipients { out += [UInt8(ascii: "T")] + r + [0] }
        if let e = extraHeaders { out += [UInt8(ascii: "e")] + e + [0] }
        if let h = environmentHeaders { out += [UInt8(ascii: "h")] + h + [0] }
        return out
    }

    public enum ParseError: Error, Equatable, Sendable {
        /// A record with a letter todo-proc does not know.
        case unknownRecord(UInt8)
        /// Bytes after the last NUL.
        case unterminated
        case badNumber
        case missingSender
    }

    /// Parses an intd/todo file. Records may come in any order; letters other than
    /// u p F T e h are refused, as todo-proc does.
    public static func parse(_ bytes: [UInt8]) -> Result<QueuedEnvelope, ParseError> {
        var uid: UInt64 = 0, pid: UInt64 = 0
        var sender: [UInt8]?
        var recipients: [[UInt8]] = []
        var e: [UInt8]?, h: [UInt8]?
        var start = 0
        while start < bytes.count {
            guard let end = bytes[start...].firstIndex(of: 0) else { return .failure(.unterminated) }
            let record = bytes[start..<end]
            start = end + 1
            guard let letter = record.first else { return .failure(.unknownRecord(0)) }
            let body = Array(record.dropFirst())
            switch letter {
            case UInt8(ascii: "u"), UInt8(ascii: "p"):
                guard !body.isEmpty, body.count <= 19, body.allSatisfy({ $0 >= 48 && $0 <= 57 }),
                      let n = UInt64(String(decoding: body, as: UTF8.self)) else { return .failure(.badNumber) }
                if letter == UInt8(ascii: "u") { uid = n } else { pid = n }
            case UInt8(ascii: "F"): sender = body
            case UInt8(ascii: "T"): recipients.append(body)
            case UInt8(ascii: "e"): e = body
            case UInt8(ascii: "h"): h = body
            default: return .failure(.unknownRecord(letter))
            }
        }
        guard let sender else { return .failure(.missingSender) }
        return .success(QueuedEnvelope(uid: uid, pid: pid, envelope: Envelope(sender: sender, recipients: recipients),
                                       extraHeaders: e, environmentHeaders: h))
    }
}
