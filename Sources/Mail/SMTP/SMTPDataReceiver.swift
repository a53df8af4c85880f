// The DATA phase as a byte-stream transformer: CRLF becomes LF, a leading dot is removed,
// CRLF.CRLF ends the message; Received/Delivered-To header lines are counted for loop
// detection and the stored size is counted against databytes. Pure, streaming, O(1) memory.

public struct SMTPDataReceiver: Sendable {
    public enum Outcome: Equatable, Sendable {
        /// Need more input.
        case more
        /// The terminating dot line was seen; that many bytes of the last chunk were used
        /// (the rest is the client's next, pipelined, command).
        case end(consumed: Int)
        /// An LF without CR and bare LFs are not allowed; that many bytes were used.
        case bareLF(consumed: Int)
    }

    private enum State: Sendable { case lineStart, inLine, carriageReturn, dotStart, dotCarriageReturn }

    public let allowBareLF: Bool
    /// 0 = unlimited.
    public let databytes: Int
    private var state = State.lineStart
    /// Bytes of the message as stored (LF line ends, dots removed).
    public private(set) var size = 0
    public private(set) var tooBig = false
    /// Header lines starting "Received" or "Delivered" (case-insensitive).
    public private(set) var hops = 0
    private var inHeader = true
    private var lineLength = 0
    private var linePrefix: [UInt8] = []

    public init(allowBareLF: Bool, databytes: Int) {
        self.allowBareLF = allowBareLF
        self.databytes = databytes
        linePrefix.reserveCapacity(9)
    }

    /// Feeds client bytes; appends the message bytes to store to `output` (nothing once the
    /// message is over the size limit).
    public mutating func feed(_ input: UnsafeRawBufferPointer, into output: inout [UInt8]) -> Outcome {
        var index = 0
        while index < input.count {
            let c = input[index]
            index += 1
            switch state {
            case .lineStart:
                switch c {
                case 46: state = .dotStart
                case 13: state = .carriageReturn
                case 10:
                    guard allowBareLF else { return .bareLF(consumed: index) }
                    emit(10, &output)
                default: emit(c, &output); state = .inLine
                }
            case .inLine:
                switch c {
                case 13: state = .carriageReturn
                case 10:
                    guard allowBareLF else { return .bareLF(consumed: index) }
                    emit(10, &output); state = .lineStart
                default: emit(c, &output)
                }
            case .carriageReturn:
                switch c {
                case 10: emit(10, &output); state = .lineStart
                case 13: emit(13, &output)
                default: emit(13, &output); emit(c, &output); state = .inLine
                }
            case .dotStart:
                switch c {
                case 13: state = .dotCarriageReturn
                case 10:
                    guard allowBareLF else { return .bareLF(consumed: index) }
                    return .end(consumed: index)
                default: emit(c, &output); state = .inLine
                }
            case .dotCarriageReturn:
                switch c {
                case 10: return .end(consumed: index)
                case 13: emit(13, &output); state = .carriageReturn
                default: emit(13, &output); emit(c, &output); state = .inLine
                }
            }
        }
        return .more
    }

    private mutating func emit(_ c: UInt8, _ output: inout [UInt8]) {
        size += 1
        if databytes > 0 && size > databytes { tooBig = true }
        if !tooBig { output.append(c) }
        guard inHeader else { return }
        if c == 10 {
            if lineLength == 0 { inHeader = false }
            lineLength = 0
            linePrefix.removeAll(keepingCapacity: true)
            return
        }
        lineLength += 1
        guard linePrefix.count < 9 else { return }
        linePrefix.append(c >= 65 && c <= 90 ? c + 32 : c)
        if linePrefix.count == 8 && linePrefix == Self.received { hops += 1 }
        if linePrefix.count == 9 && linePrefix == Self.delivered { hops += 1 }
    }

    private static let received = Array("received".utf8)
    private static let delivered = Array("delivered".utf8)
}
