// qmail-remote's output to qmail-rspawn: recipient reports (r/h/s) then one message report
// (K/Z/D), each `<letter><text>\0`. The texts follow the reference word for word, since
// they end up in logs and bounces.

public struct RemoteReport: Equatable, Sendable {
    public enum Letter: UInt8, Sendable {
        case recipientAccepted = 0x72    // r
        case recipientRejected = 0x68    // h
        case recipientDeferred = 0x73    // s
        case success = 0x4B              // K
        case deferral = 0x5A             // Z
        case failure = 0x44              // D
    }

    public var letter: Letter
    public var text: [UInt8]

    public init(_ letter: Letter, _ text: [UInt8]) {
        self.letter = letter
        self.text = text
    }

    public init(_ letter: Letter, _ text: String) { self.init(letter, Array(text.utf8)) }

    /// The bytes on stdout: letter, text, NUL.
    public var encoded: [UInt8] { [letter.rawValue] + text + [0] }

    public var isMessageReport: Bool {
        letter == .success || letter == .deferral || letter == .failure
    }

    /// Bytes shown in a report with anything outside printable ASCII (and space) as `?`.
    public static func safe(_ bytes: some Sequence<UInt8>) -> [UInt8] {
        bytes.map { $0 < 33 || $0 > 126 ? UInt8(ascii: "?") : $0 }
    }

    /// `Remote host said: <reply>` (the reply's lines, NULs as `?`), or nothing without a reply.
    public static func remoteSaid(_ reply: [UInt8]) -> [UInt8] {
        guard !reply.isEmpty else { return [] }
        return Array("Remote host said: ".utf8) + reply.map { $0 == 0 ? UInt8(ascii: "?") : $0 }
    }

    /// The reference's quit(): `<prefix><ip><parts>.` NL, then what the remote host said.
    public static func quit(_ letter: Letter, prefix: String, host: String, _ parts: [String], reply: [UInt8]) -> RemoteReport {
        var text = Array(prefix.utf8) + Array(host.utf8)
        for p in parts { text += Array(p.utf8) }
        text += Array(".\n".utf8)
        text += remoteSaid(reply)
        return RemoteReport(letter, text)
    }

    /// A recipient's report after its RCPT reply.
    public static func recipient(code: Int, sender: [UInt8], recipient: [UInt8], host: String, reply: [UInt8]) -> RemoteReport {
        let letter: Letter = code >= 500 ? .recipientRejected : code >= 400 ? .recipientDeferred : .recipientAccepted
        var text = Array("From: <".utf8) + safe(sender) + Array("> RCPT: <".utf8) + safe(recipient) + Array("> ".utf8)
        if letter != .recipientAccepted {
            text += Array(host.utf8) + Array(" does not like recipient.\n".utf8) + remoteSaid(reply)
        }
        return RemoteReport(letter, text)
    }

    // Fixed texts.
    public static let usage = RemoteReport(.failure, "I (qmail-remote) was invoked improperly. (#5.3.5)\n")
    public static let partialLine = RemoteReport(.failure, "SMTP cannot transfer messages with partial final lines. (#5.6.2)\n")
    public static let noHostTemporary = RemoteReport(.deferral, "Sorry, I couldn't find any host by that name. (#4.1.2)\n")
    public static let noMX = RemoteReport(.failure, "Sorry, I couldn't find a mail exchanger or IP address. (#5.4.4)\n")
    public static let readFailure = RemoteReport(.deferral, "Unable to read message. (#4.3.0)\n")
    public static let writeFailure = RemoteReport(.deferral, "Unable to write message. (#4.3.0)\n")
    public static let systemResources = RemoteReport(.deferral, "System resources temporarily unavailable. (#4.3.0)\n")
    public static let noAuthMethod = RemoteReport(.success, "no supported AUTH method found, continuing without authentication.\n")

    public static func noHostPermanent(_ host: [UInt8]) -> RemoteReport {
        RemoteReport(.failure, Array("Sorry, I couldn't find any host named ".utf8) + safe(host) + Array(". (#5.1.2)\n".utf8))
    }

    public static func ambiguousMX(controlDirectory: String) -> RemoteReport {
        RemoteReport(.failure, "Sorry. Although I'm listed as a best-preference MX or A for that host,\nit isn't in my "
                     + controlDirectory + "/locals file, so I don't treat it as local. (#5.4.6)\n")
    }

    public static func control(_ what: String) -> RemoteReport {
        RemoteReport(.deferral, what + ". (#4.3.0)\n")
    }

    public static func invalidOutgoingIP(controlDirectory: String) -> RemoteReport {
        RemoteReport(.deferral, "invalid ipaddr in " + controlDirectory + "/outgoingip (#4.3.0)\n")
    }

    /// No connection to any address: `tried` lists the addresses attempted (none when every
    /// one was skipped for earlier timeouts).
    public static func noConnection(protocolName: String, host: [UInt8], tried: [String], port: Int, bindIP: String) -> RemoteReport {
        var text = Array("Sorry, I wasn't able to establish a \(protocolName) connection for ".utf8) + host
        if !tried.isEmpty {
            text += Array(" to \(tried.joined(separator: ",")) port \(port)".utf8)
            text += Array(" bind IP [\(bindIP)]".utf8)
        }
        text += Array(". (#4.4.1)\n".utf8)
        return RemoteReport(.deferral, text)
    }

    /// The connection broke while waiting for or sending to the peer.
    public static func dropped(host: String, critical: Bool, inGreeting: Bool, tcptoInterval: Int?, tlsError: String?) -> RemoteReport {
        var text = "Connected to \(host) but connection died. "
        if critical {
            text += "Possible duplicate! "
        } else if inGreeting {
            text += "Will try alternate MX. "
            if let tcptoInterval { text += "tcpto interval \(tcptoInterval) " }
        }
        if let tlsError { text += tlsError + " " }
        text += "(#4.4.2)\n"
        return RemoteReport(.deferral, text)
    }

    /// A TLS failure after the connection was made (the reference's tls_quit): the reason,
    /// where, and the reason again as "what the remote host said".
    public static func tls(_ reason: String, host: String, connected: Bool) -> RemoteReport {
        var text = Array("\(reason); \(connected ? "connected" : "connecting") to \(host).\n".utf8)
        text += remoteSaid(Array(reason.utf8))
        return RemoteReport(.deferral, text)
    }
}

/// The reference's xtext for `MAIL FROM:<…> AUTH=<…>`: `+`, `=` and bytes outside
/// printable ASCII become `+2B`, `+3D`, `+3F`.
public func smtpXtext(_ bytes: [UInt8]) -> [UInt8] {
    var out: [UInt8] = []
    for b in bytes {
        switch b {
        case UInt8(ascii: "+"): out += Array("+2B".utf8)
        case UInt8(ascii: "="): out += Array("+3D".utf8)
        case ..<33, 127...: out += Array("+3F".utf8)
        default: out.append(b)
        }
    }
    return out
}

/// An envelope address as SMTP wants it: the local part quoted when it needs to be (qmail's
/// quote()), the domain as it is.
public func smtpQuotedAddress(_ address: [UInt8]) -> [UInt8] {
    guard let at = address.lastIndex(of: UInt8(ascii: "@")) else { return quoteLocalPart(address) }
    return quoteLocalPart(Array(address[..<at])) + address[at...]
}

private func quoteLocalPart(_ local: [UInt8]) -> [UInt8] {
    let special = Array("()<>[]:;@\\,.\" \t\r\n".utf8)
    var needsQuote = local.first == UInt8(ascii: ".") || local.last == UInt8(ascii: ".")
    var previousDot = false
    for b in local {
        if b == UInt8(ascii: ".") {
            if previousDot { needsQuote = true }
            previousDot = true
            continue
        }
        previousDot = false
        if special.contains(b) || b < 32 || b > 126 { needsQuote = true }
    }
    guard needsQuote, !local.isEmpty else { return local }
    var out: [UInt8] = [UInt8(ascii: "\"")]
    for b in local {
        if b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") || b == 13 || b == 10 { out.append(UInt8(ascii: "\\")) }
        out.append(b)
    }
    out.append(UInt8(ascii: "\""))
    return out
}
