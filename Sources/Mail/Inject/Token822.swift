// RFC 822 header tokens as qmail-inject sees them: a lexer, the right-to-left address-list
// walker that lets a rewriter touch each address, and the printer that folds long lists.
// Pure functions over bytes: no I/O, safe on any input.

public enum Token822Kind: Equatable, Sendable {
    case atom, quoted, literal, comment
    case comma, at, dot, left, right, semicolon, colon
}

public struct Token822: Equatable, Sendable {
    public var kind: Token822Kind
    /// The decoded text of atoms, quoted strings, literals and comments; empty otherwise.
    public var text: [UInt8]

    public init(_ kind: Token822Kind, _ text: [UInt8] = []) {
        self.kind = kind
        self.text = text
    }

    public init(_ kind: Token822Kind, _ text: String) { self.init(kind, Array(text.utf8)) }

    var isWord: Bool { kind == .atom || kind == .quoted || kind == .literal || kind == .comment }
}

public enum Token822Error: Error, Equatable, Sendable {
    /// Unbalanced `)` or `]`, or a comment, quoted string or literal left open.
    case unparsable
}

public enum RFC822Tokens {
    /// Splits header text into tokens; white space separates tokens and is dropped.
    public static func parse(_ bytes: some Collection<UInt8>) -> Result<[Token822], Token822Error> {
        let s = Array(bytes)
        var tokens: [Token822] = []
        var i = 0
        while i < s.count {
            let c = s[i]
            switch c {
            case UInt8(ascii: "."): tokens.append(Token822(.dot)); i += 1
            case UInt8(ascii: ","): tokens.append(Token822(.comma)); i += 1
            case UInt8(ascii: "@"): tokens.append(Token822(.at)); i += 1
            case UInt8(ascii: "<"): tokens.append(Token822(.left)); i += 1
            case UInt8(ascii: ">"): tokens.append(Token822(.right)); i += 1
            case UInt8(ascii: ":"): tokens.append(Token822(.colon)); i += 1
            case UInt8(ascii: ";"): tokens.append(Token822(.semicolon)); i += 1
            case 32, 9, 13, 10: i += 1
            case UInt8(ascii: ")"), UInt8(ascii: "]"): return .failure(.unparsable)
            case UInt8(ascii: "("), UInt8(ascii: "\""), UInt8(ascii: "["):
                let kind: Token822Kind = c == UInt8(ascii: "(") ? .comment : c == UInt8(ascii: "\"") ? .quoted : .literal
                let close: UInt8 = c == UInt8(ascii: "(") ? UInt8(ascii: ")") : c == UInt8(ascii: "\"") ? UInt8(ascii: "\"") : UInt8(ascii: "]")
                var depth = 1
                var text: [UInt8] = []
                while depth > 0 {
                    i += 1
                    guard i < s.count else { return .failure(.unparsable) }
                    let ch = s[i]
                    if kind == .comment, ch == UInt8(ascii: "(") { depth += 1; continue }
                    if ch == close { depth -= 1; continue }
                    if ch == UInt8(ascii: "\\") {
                        i += 1
                        guard i < s.count else { return .failure(.unparsable) }
                    }
                    text.append(s[i])
                }
                i += 1
                tokens.append(Token822(kind, text))
            default:
                var text: [UInt8] = []
                while i < s.count {
                    if s[i] == UInt8(ascii: "\\") {
                        i += 1
                        if i >= s.count { break }
                    }
                    text.append(s[i])
                    i += 1
                    if i >= s.count || !atomContinues(s[i]) { break }
                }
                // Bytes an atom cannot show bare make it a quoted string.
                let bare = text.allSatisfy { $0 >= 32 && $0 <= 126 && $0 != UInt8(ascii: ")")
                    && $0 != UInt8(ascii: "]") && $0 != UInt8(ascii: "\\") }
                tokens.append(Token822(bare ? .atom : .quoted, text))
            }
        }
        return .success(tokens)
    }

    private static func atomContinues(_ c: UInt8) -> Bool {
        switch c {
        case 32, 9, 13, 10, UInt8(ascii: "("), UInt8(ascii: "["), UInt8(ascii: "\""),
             UInt8(ascii: "<"), UInt8(ascii: ">"), UInt8(ascii: ";"), UInt8(ascii: ":"),
             UInt8(ascii: "@"), UInt8(ascii: ","), UInt8(ascii: "."):
            return false
        default:
            return true
        }
    }

    /// The address as an envelope string: no quoting, comments dropped, literals bracketed.
    public static func unquote(_ tokens: [Token822]) -> [UInt8] {
        var out: [UInt8] = []
        for t in tokens {
            switch t.kind {
            case .comma: out.append(UInt8(ascii: ","))
            case .at: out.append(UInt8(ascii: "@"))
            case .dot: out.append(UInt8(ascii: "."))
            case .left: out.append(UInt8(ascii: "<"))
            case .right: out.append(UInt8(ascii: ">"))
            case .semicolon: out.append(UInt8(ascii: ";"))
            case .colon: out.append(UInt8(ascii: ":"))
            case .atom, .quoted: out += t.text
            case .literal: out.append(UInt8(ascii: "[")); out += t.text; out.append(UInt8(ascii: "]"))
            case .comment: break
            }
        }
        return out
    }

    private static func needsSpace(_ previous: Token822Kind?, _ next: Token822Kind) -> Bool {
        guard let previous else { return false }
        if previous == .colon || previous == .comma || next == .left { return true }
        let words: [Token822Kind] = [.atom, .literal, .quoted, .comment]
        return words.contains(previous) && words.contains(next)
    }

    /// Prints tokens as a header field ending in a newline. After every comma a line break
    /// is made; a break is then taken back (leaving one space) whenever the joined line stays
    /// within `lineLength` bytes (0: no limit), so long lists fold between addresses.
    public static func unparse(_ tokens: [Token822], lineLength: Int = 80) -> [UInt8] {
        // The text is `done`, then (when `pending`) a provisional "\n ", then `segment`.
        // A break either takes the provisional one back (the line still fits) or makes it
        // final; either way nothing written before it moves, so this stays linear.
        var done: [UInt8] = []
        var segment: [UInt8] = []
        var pending = false
        var lineStart = 0
        done.reserveCapacity(tokens.count * 4 + 2)
        func lineBreak() {
            let here = done.count + (pending ? 2 : 0) + segment.count
            if pending, lineLength == 0 || here - lineStart <= lineLength {
                done += segment
            } else {
                if pending {
                    lineStart = done.count + 1
                    done += [10, 32]
                }
                done += segment
            }
            segment.removeAll(keepingCapacity: true)
            pending = true
        }
        var last: Token822Kind? = nil
        for t in tokens {
            if needsSpace(last, t.kind) { segment.append(32) }
            last = t.kind
            switch t.kind {
            case .comma: segment.append(UInt8(ascii: ",")); lineBreak()
            case .at: segment.append(UInt8(ascii: "@"))
            case .dot: segment.append(UInt8(ascii: "."))
            case .left: segment.append(UInt8(ascii: "<"))
            case .right: segment.append(UInt8(ascii: ">"))
            case .semicolon: segment.append(UInt8(ascii: ";"))
            case .colon: segment.append(UInt8(ascii: ":"))
            case .atom, .quoted, .literal, .comment:
                let (open, close): (UInt8?, UInt8?) = switch t.kind {
                case .quoted: (UInt8(ascii: "\""), UInt8(ascii: "\""))
                case .literal: (UInt8(ascii: "["), UInt8(ascii: "]"))
                case .comment: (UInt8(ascii: "("), UInt8(ascii: ")"))
                default: (nil, nil)
                }
                if let open { segment.append(open) }
                for ch in t.text {
                    switch ch {
                    case UInt8(ascii: "\""), UInt8(ascii: "["), UInt8(ascii: "]"), UInt8(ascii: "("),
                         UInt8(ascii: ")"), UInt8(ascii: "\\"), 13, 10:
                        segment.append(UInt8(ascii: "\\"))
                    default: break
                    }
                    segment.append(ch)
                }
                if let close { segment.append(close) }
            }
        }
        lineBreak()
        // The last provisional break stays, without its space: the field's newline.
        return done + [10]
    }

    /// Walks the address list of a header field (tokens of the whole field, name and colon
    /// first) from right to left, as RFC 822 lists parse most easily, and lets `rewrite`
    /// change every address (in reading order; `<>` included). Returns the field's new
    /// tokens, or nil when the list is malformed (unbalanced groups or angle brackets).
    public static func addressList(_ tokens: [Token822], rewrite: (inout [Token822]) -> Void) -> [Token822]? {
        var out: [Token822] = []       // built backwards
        var address: [Token822] = []   // built backwards
        var inGroup = false
        var wordOK = true
        let begin = 2
        var i = tokens.count - 1

        func take() {
            var normal = Array(address.reversed())
            rewrite(&normal)
            out += normal.reversed()
            address.removeAll(keepingCapacity: true)
        }
        func flush() { if !address.isEmpty { take() } }
        func flushComma() { if !address.isEmpty { take(); out.append(Token822(.comma)) } }

        while i >= begin {
            let t = tokens[i]
            switch t.kind {
            case .semicolon:
                flushComma()
                if inGroup { return nil }
                inGroup = true
                wordOK = true
                out.append(t); i -= 1
            case .colon:
                flush()
                if !inGroup { return nil }
                inGroup = false
                while i >= begin && tokens[i].kind != .comma { out.append(tokens[i]); i -= 1 }
                if i >= begin { out.append(tokens[i]); i -= 1 }
                wordOK = true
            case .right:
                flushComma()
                out.append(t); i -= 1
                while i >= begin && tokens[i].kind != .left { address.append(tokens[i]); i -= 1 }
                take() // even when empty: <>
                if i < begin { return nil }
                out.append(tokens[i]); i -= 1
                while i >= begin, [.comment, .atom, .quoted, .at, .dot].contains(tokens[i].kind) {
                    out.append(tokens[i]); i -= 1
                }
                wordOK = false
            case .atom, .quoted, .literal:
                if !wordOK { flushComma() }
                wordOK = false
                address.append(t); i -= 1
            case .comment:
                // lexically a space: wordOK unchanged
                out.append(t); i -= 1
            case .comma:
                flush()
                wordOK = true
                out.append(t); i -= 1
            case .at, .dot, .left:
                wordOK = true
                address.append(t); i -= 1
            }
        }
        flush()
        out += tokens.prefix(begin).reversed()
        return out.reversed()
    }
}
