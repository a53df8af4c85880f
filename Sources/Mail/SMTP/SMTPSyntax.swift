// The pure pieces of the SMTP server's grammar: command lines, envelope addresses and MAIL
// parameters. Bytes in, values out; nothing here touches a file descriptor.

/// One command line as the client sent it, split at the first space.
public struct SMTPCommandLine: Equatable, Sendable {
    /// The verb, lower-cased (ASCII only).
    public var verb: String
    /// Everything after the first space (the reference keeps inner and trailing blanks).
    public var argument: [UInt8]

    /// `line` without its LF; a trailing CR is dropped here.
    public static func parse(_ line: some Collection<UInt8>) -> SMTPCommandLine {
        var bytes = Array(line)
        if bytes.last == 13 { bytes.removeLast() }
        let space = bytes.firstIndex(of: 32) ?? bytes.count
        let verb = String(decoding: bytes[..<space].map { $0 >= 65 && $0 <= 90 ? $0 + 32 : $0 }, as: UTF8.self)
        let argument = space < bytes.count ? Array(bytes[(space + 1)...]) : []
        return SMTPCommandLine(verb: verb, argument: argument)
    }
}

public enum SMTPAddress {
    /// The reference's limit on a parsed address.
    public static let maximumLength = 900

    /// The address in a MAIL FROM / RCPT TO argument: the text after `<` up to `>` (or,
    /// without `<`, after the colon up to a space), a source route (`@a,@b:`) removed,
    /// quotes and backslash escapes undone. nil when there is no address or it is too long.
    public static func parse(_ argument: [UInt8]) -> [UInt8]? {
        var terminator: UInt8 = 62 // '>'
        var index: Int
        if let open = argument.firstIndex(of: 60) { // '<'
            index = open + 1
        } else {
            terminator = 32
            guard let colon = argument.firstIndex(of: 58) else { return nil }
            index = colon + 1
            guard index < argument.count else { return nil }
            while index < argument.count, argument[index] == 32 { index += 1 }
        }
        if index < argument.count, argument[index] == 64 { // source route "@a,@b:"
            while index < argument.count {
                let c = argument[index]
                index += 1
                if c == 58 { break }
            }
        }
        var address: [UInt8] = []
        var escaped = false, quoted = false
        while index < argument.count {
            let c = argument[index]
            index += 1
            if c == 0 { break }
            if escaped { address.append(c); escaped = false; continue }
            if !quoted && c == terminator { break }
            switch c {
            case 92: escaped = true // '\'
            case 34: quoted.toggle() // '"'
            default: address.append(c)
            }
            if address.count > maximumLength { return nil }
        }
        return address
    }

    /// The domain part (after the last '@'), lower-cased; nil when there is no '@'.
    public static func domain(_ address: [UInt8]) -> [UInt8]? {
        guard let at = address.lastIndex(of: 64) else { return nil }
        return lowercased(address[(at + 1)...])
    }

    /// A '%', '!' or another '@' in the local part: a relay probe.
    public static func isRelayProbe(_ address: [UInt8]) -> Bool {
        let end = address.lastIndex(of: 64) ?? address.count
        return address[..<end].contains { $0 == 64 || $0 == 37 || $0 == 33 }
    }

    public static func lowercased(_ bytes: some Collection<UInt8>) -> [UInt8] {
        bytes.map { $0 >= 65 && $0 <= 90 ? $0 + 32 : $0 }
    }
}

/// The ESMTP parameters after MAIL FROM:<…>.
public struct MailParameters: Equatable, Sendable {
    /// SIZE=n as declared (nil when absent or not a number).
    public var size: Int?
    /// AUTH=<xtext> (decoded), unless it is "<>".
    public var auth: [UInt8]?
    public var smtputf8 = false
    public var eightBitMIME = false

    public init() {}

    /// Parameters are the blank-separated words after the closing '>'.
    public static func parse(_ argument: [UInt8]) -> MailParameters {
        var p = MailParameters()
        guard let close = argument.firstIndex(of: 62) else { return p }
        for word in argument[(close + 1)...].split(separator: 32) {
            let upper = String(decoding: word.map { $0 >= 97 && $0 <= 122 ? $0 - 32 : $0 }, as: UTF8.self)
            if upper.hasPrefix("SIZE=") {
                let digits = word.dropFirst(5)
                if !digits.isEmpty, digits.count <= 18, digits.allSatisfy({ $0 >= 48 && $0 <= 57 }) {
                    p.size = Int(String(decoding: digits, as: UTF8.self))
                }
            } else if upper.hasPrefix("AUTH=") {
                let value = Array(word.dropFirst(5))
                if value != Array("<>".utf8), !value.isEmpty { p.auth = xtextDecode(value) }
            } else if upper == "SMTPUTF8" {
                p.smtputf8 = true
            } else if upper == "BODY=8BITMIME" {
                p.eightBitMIME = true
            }
        }
        return p
    }

    /// RFC 3461 xtext: "+HH" stands for one byte.
    static func xtextDecode(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var i = 0
        while i < bytes.count {
            if bytes[i] == 43, i + 2 < bytes.count, let hi = hexValue(bytes[i + 1]), let lo = hexValue(bytes[i + 2]) {
                out.append(hi << 4 | lo)
                i += 3
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return out
    }
}

private func hexValue(_ c: UInt8) -> UInt8? {
    switch c {
    case 48...57: return c - 48
    case 65...70: return c - 55
    case 97...102: return c - 87
    default: return nil
    }
}
