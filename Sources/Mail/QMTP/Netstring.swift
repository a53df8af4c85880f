// Netstrings (`<length>:<bytes>,`), the framing of QMTP and QMQP: an encoder and an
// incremental parser that never traps on malformed input.

public enum Netstring {
    /// The largest length we accept: the reference refuses anything over 200,000,000.
    public static let maximumLength = 200_000_000

    public static func encode(_ bytes: some Collection<UInt8>) -> [UInt8] {
        Array("\(bytes.count):".utf8) + bytes + [UInt8(ascii: ",")]
    }

    public static func encode(_ text: String) -> [UInt8] { encode(Array(text.utf8)) }

    /// Parses every netstring of `bytes`, which must hold nothing else.
    public static func parseAll(_ bytes: [UInt8]) -> Result<[[UInt8]], NetstringError> {
        var out: [[UInt8]] = []
        var index = 0
        while index < bytes.count {
            switch parse(bytes, from: index) {
            case .failure(let e): return .failure(e)
            case .success(let (value, next)): out.append(value); index = next
            }
        }
        return .success(out)
    }

    /// Parses one netstring starting at `start`; returns it and the index after its comma.
    public static func parse(_ bytes: [UInt8], from start: Int) -> Result<([UInt8], Int), NetstringError> {
        var index = start
        var length = 0
        var digits = 0
        while true {
            guard index < bytes.count else { return .failure(.truncated) }
            let b = bytes[index]
            index += 1
            if b == UInt8(ascii: ":") { break }
            guard b >= 48, b <= 57 else { return .failure(.badLength) }
            length = length * 10 + Int(b - 48)
            digits += 1
            guard length <= maximumLength else { return .failure(.tooLong) }
        }
        guard digits > 0 else { return .failure(.badLength) }
        guard bytes.count - index > length else { return .failure(.truncated) }
        let value = Array(bytes[index..<(index + length)])
        index += length
        guard bytes[index] == UInt8(ascii: ",") else { return .failure(.missingComma) }
        return .success((value, index + 1))
    }
}

public enum NetstringError: Error, Equatable, Sendable, CustomStringConvertible {
    case badLength, tooLong, truncated, missingComma

    public var description: String {
        switch self {
        case .badLength: return "bad netstring length"
        case .tooLong: return "netstring too long"
        case .truncated: return "truncated netstring"
        case .missingComma: return "netstring without its comma"
        }
    }
}

/// Reads netstrings from a byte source one piece at a time, so a server streams a large
/// message instead of holding it: `length()` reads `<digits>:`, the caller reads that many
/// bytes, then `comma()`.
public struct NetstringStream {
    private var source: () -> UInt8?

    /// `source` returns the next byte, or nil at end of input.
    public init(source: @escaping () -> UInt8?) { self.source = source }

    public mutating func byte() -> Result<UInt8, NetstringError> {
        guard let b = source() else { return .failure(.truncated) }
        return .success(b)
    }

    public mutating func length() -> Result<Int, NetstringError> {
        var length = 0
        var digits = 0
        while true {
            guard let b = source() else { return .failure(.truncated) }
            if b == UInt8(ascii: ":") { break }
            guard b >= 48, b <= 57 else { return .failure(.badLength) }
            length = length * 10 + Int(b - 48)
            digits += 1
            guard length <= Netstring.maximumLength else { return .failure(.tooLong) }
        }
        return digits > 0 ? .success(length) : .failure(.badLength)
    }

    public mutating func comma() -> Result<Void, NetstringError> {
        guard let b = source() else { return .failure(.truncated) }
        return b == UInt8(ascii: ",") ? .success(()) : .failure(.missingComma)
    }

    /// Reads and drops `count` bytes (an oversized field is refused without being kept).
    public mutating func skip(_ count: Int) -> Result<Void, NetstringError> {
        for _ in 0..<max(0, count) {
            guard source() != nil else { return .failure(.truncated) }
        }
        return .success(())
    }

    /// `count` bytes, failing at end of input.
    public mutating func bytes(_ count: Int) -> Result<[UInt8], NetstringError> {
        var out: [UInt8] = []
        out.reserveCapacity(min(count, 65536))
        for _ in 0..<count {
            guard let b = source() else { return .failure(.truncated) }
            out.append(b)
        }
        return .success(out)
    }
}
