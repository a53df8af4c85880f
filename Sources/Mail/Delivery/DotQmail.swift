// The .qmail instruction file as typed values: parsing only, no effects, so it can be fuzzed.

/// One line of a .qmail file.
public enum DotQmailInstruction: Equatable, Sendable {
    /// `#…`: ignored.
    case comment
    /// `:label`: a target for `?label` branches; does nothing itself.
    case label([UInt8])
    /// `|command`: run through `/bin/sh -c` with the message on stdin (bytes after `|`).
    case program([UInt8])
    /// `&address` or a bare address line.
    case forward([UInt8])
    /// `./dir/` or `/dir/`: a Maildir (the whole line, trailing `/` kept).
    case maildir([UInt8])
    /// `./file` or `/file`: an mbox file.
    case mbox([UInt8])
    /// `%dir`: load environment variables from an envdir (leading blanks skipped).
    case envdir([UInt8])
    /// `?label command`: run command; exit 99 jumps past the next `:label` line.
    /// Without a command the jump is unconditional.
    case branch(label: [UInt8], command: [UInt8]?)
    /// `+list`: the rest of the file may only forward.
    case listMode
    /// A blank line after the first, or a `+` line other than `+list`: nothing to do.
    case empty
}

public enum DotQmailError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The first line is empty after trimming: a half-edited file, never guessed at.
    case blankFirstLine
    /// A NUL byte in a line (1-based line number): the reference would silently cut the
    /// line there; we refuse rather than deliver to a truncated path or address.
    case nulByte(line: Int)
    /// `&` with nothing after it.
    case emptyForward(line: Int)

    public var description: String {
        switch self {
        case .blankFirstLine: return "Uh-oh: first line of .qmail file is blank. (#4.2.1)"
        case .nulByte(let n): return "Uh-oh: line \(n) of .qmail file holds a NUL byte. (#4.2.1)"
        case .emptyForward(let n): return "Uh-oh: line \(n) of .qmail file forwards to an empty address. (#4.2.1)"
        }
    }
}

public struct DotQmail: Equatable, Sendable {
    public var instructions: [DotQmailInstruction]

    public init(instructions: [DotQmailInstruction]) { self.instructions = instructions }

    /// Whether any line delivers to a file or program (refused when the file has its x bit).
    public var hasFileDelivery: Bool {
        instructions.contains { if case .maildir = $0 { return true }; if case .mbox = $0 { return true }; return false }
    }

    /// Splits `text` at newlines (a missing final newline is fine), trims trailing blanks
    /// and classifies each line by its first byte.
    public static func parse(_ text: [UInt8]) -> Result<DotQmail, DotQmailError> {
        var result: [DotQmailInstruction] = []
        var lines = text.split(separator: 10, omittingEmptySubsequences: false)
        if text.last == 10 { lines.removeLast() }
        if lines.isEmpty { lines = [[]] }
        for (index, raw) in lines.enumerated() {
            var line = raw[...]
            while let last = line.last, last == 32 || last == 9 { line.removeLast() }
            if line.contains(0) { return .failure(.nulByte(line: index + 1)) }
            guard let first = line.first else {
                if index == 0 { return .failure(.blankFirstLine) }
                result.append(.empty)
                continue
            }
            let rest = Array(line.dropFirst())
            switch first {
            case UInt8(ascii: "#"): result.append(.comment)
            case UInt8(ascii: ":"): result.append(.label(rest))
            case UInt8(ascii: "|"): result.append(.program(rest))
            case UInt8(ascii: "%"): result.append(.envdir(Array(rest.drop { $0 == 32 || $0 == 9 })))
            case UInt8(ascii: "."), UInt8(ascii: "/"):
                result.append(line.last == UInt8(ascii: "/") ? .maildir(Array(line)) : .mbox(Array(line)))
            case UInt8(ascii: "?"):
                if let blank = rest.firstIndex(where: { $0 == 32 || $0 == 9 }) {
                    let command = rest[blank...].drop { $0 == 32 || $0 == 9 }
                    result.append(.branch(label: Array(rest[..<blank]), command: command.isEmpty ? nil : Array(command)))
                } else {
                    result.append(.branch(label: rest, command: nil))
                }
            case UInt8(ascii: "+"): result.append(rest == Array("list".utf8) ? .listMode : .empty)
            case UInt8(ascii: "&"):
                if rest.isEmpty { return .failure(.emptyForward(line: index + 1)) }
                result.append(.forward(rest))
            default: result.append(.forward(Array(line)))
            }
        }
        return .success(DotQmail(instructions: result))
    }

    /// The index of the first instruction after `from` that is `:label`, if any.
    public func labelIndex(_ label: [UInt8], after from: Int) -> Int? {
        var i = from + 1
        while i < instructions.count {
            if case .label(let target) = instructions[i] {
                // The target's name ends at its first blank, as the branch's does.
                let name = target.prefix { $0 != 32 && $0 != 9 }
                if Array(name) == label { return i }
            }
            i += 1
        }
        return nil
    }
}
