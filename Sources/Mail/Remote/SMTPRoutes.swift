// Artificial routes (smtproutes, qmtproutes, $SMTPROUTE, $QMTPROUTE): which relay, port and
// credentials carry mail for a domain instead of its MX hosts.

/// One `domain:relay[:port[:penalty[:tolerance]]][ user pass[ envstr]]` value.
public struct RemoteRoute: Equatable, Sendable {
    public enum Transport: Equatable, Sendable { case smtp, qmtp }

    /// Relay host name or address literal; empty means "use the MX records after all".
    public var relay: String
    public var port: Int
    public var transport: Transport
    /// Seconds an address that timed out twice is skipped (tcpto); 0 disables the table.
    public var penalty: Int?
    public var tolerance: Int?
    public var user: [UInt8]?
    public var password: [UInt8]?
    /// `/s`, `/r` or `/address`: credentials from remote_auth.cdb (not supported yet).
    public var credentialKey: String?
    /// Environment assignments after the password (`NAME=value,…`).
    public var environment: String?

    public static let smtpPort = 25
    public static let qmtpPort = 209

    public var implicitTLS: Bool { transport == .smtp && port == 465 }

    /// Parses a value (the part after the key's colon).
    public static func parse(_ value: String, transport: Transport) -> RemoteRoute {
        var route = RemoteRoute(relay: "", port: transport == .qmtp ? qmtpPort : smtpPort, transport: transport)
        var hostPart = Substring(value)
        if let space = value.firstIndex(of: " ") {
            hostPart = value[..<space]
            let words = value[value.index(after: space)...].split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
            if let first = words.first, first.hasPrefix("/") {
                route.credentialKey = String(first)
            } else {
                (route.user, route.password, route.environment) = credentials(String(value[value.index(after: space)...]))
            }
        }
        let fields = hostPart.split(separator: ":", omittingEmptySubsequences: false)
        route.relay = String(fields[0])
        if fields.count > 1, let port = leadingNumber(fields[1]), port > 0, port < 65536 { route.port = port }
        if fields.count > 2, !fields[2].isEmpty { route.penalty = signedLeadingNumber(fields[2]) }
        if fields.count > 3, !fields[3].isEmpty { route.tolerance = leadingNumber(fields[3]) }
        return route
    }

    /// `user password[ envstr]`; nothing unless both user and password are there.
    public static func credentials(_ text: String) -> (user: [UInt8]?, password: [UInt8]?, environment: String?) {
        let words = text.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard words.count >= 2, !words[0].isEmpty, !words[1].isEmpty else { return (nil, nil, nil) }
        let env = words.count == 3 && !words[2].isEmpty ? String(words[2]) : nil
        return (Array(words[0].utf8), Array(words[1].utf8), env)
    }

    init(relay: String, port: Int, transport: Transport) {
        self.relay = relay
        self.port = port
        self.transport = transport
    }

    static func leadingNumber(_ s: Substring) -> Int? {
        let digits = s.prefix { $0.isASCII && $0.isNumber }.prefix(9)
        return digits.isEmpty ? nil : Int(digits)
    }

    static func signedLeadingNumber(_ s: Substring) -> Int? {
        if s.hasPrefix("-") { return leadingNumber(s.dropFirst()).map { -$0 } }
        return leadingNumber(s)
    }
}

/// A route table: `key:value` lines, keys compared without regard to case.
public struct RouteTable: Equatable, Sendable {
    public var entries: [(key: String, value: String)]

    public static func == (a: RouteTable, b: RouteTable) -> Bool {
        a.entries.map { $0.key } == b.entries.map { $0.key } && a.entries.map { $0.value } == b.entries.map { $0.value }
    }

    public init(lines: [String]) {
        entries = lines.compactMap { line in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]).lowercased(), String(line[line.index(after: colon)...]))
        }
    }

    public var isEmpty: Bool { entries.isEmpty }

    /// The first entry for `key` exactly (the reference's constmap keeps the first).
    public func value(for key: String) -> String? {
        let k = key.lowercased()
        return entries.first { $0.key == k }?.value
    }

    /// Keys tried for a host, most specific first: the host, each `.suffix`, then "".
    public static func candidates(for host: String) -> [String] {
        var keys = [host]
        var rest = Substring(host)
        while let dot = rest.firstIndex(of: ".") {
            keys.append(String(rest[dot...]))
            rest = rest[rest.index(after: dot)...]
        }
        if !host.isEmpty { keys.append("") }
        return keys
    }
}

/// Every source of artificial routes, in the reference's order of precedence.
public struct RouteSources: Sendable {
    public var smtp: RouteTable
    public var qmtp: RouteTable
    /// The tables came from $SMTPROUTE / $QMTPROUTE, which win over the files.
    public var smtpFromEnvironment: Bool
    public var qmtpFromEnvironment: Bool

    public init(smtp: RouteTable, qmtp: RouteTable, smtpFromEnvironment: Bool = false, qmtpFromEnvironment: Bool = false) {
        self.smtp = smtp
        self.qmtp = qmtp
        self.smtpFromEnvironment = smtpFromEnvironment
        self.qmtpFromEnvironment = qmtpFromEnvironment
    }

    /// The route for mail to `host` from `sender` (empty = bounce: `!@` first); nil
    /// means deliver by MX. A route with an empty relay also means MX. `more` looks a key
    /// up in moresmtproutes.cdb (the first recipient's address first, then host keys).
    public func route(host: String, senderIsNull: Bool, firstRecipient: String = "",
                      more: (String) -> String? = { _ in nil }) -> RemoteRoute? {
        var found: RemoteRoute? = more(firstRecipient.lowercased()).map { RemoteRoute.parse($0, transport: .smtp) }
        if senderIsNull {
            if let v = qmtp.value(for: "!@") {
                found = RemoteRoute.parse(v, transport: .qmtp)
            } else if let v = smtp.value(for: "!@") ?? more("!@") {
                found = RemoteRoute.parse(v, transport: .smtp)
            } else {
                found = nil
            }
        }
        if let r = found, !r.relay.isEmpty { return r }
        for key in RouteTable.candidates(for: host) {
            if qmtpFromEnvironment, let v = qmtp.value(for: key) { return nonEmpty(RemoteRoute.parse(v, transport: .qmtp)) }
            if smtpFromEnvironment, let v = smtp.value(for: key) { return nonEmpty(RemoteRoute.parse(v, transport: .smtp)) }
            if let v = qmtp.value(for: key) { return nonEmpty(RemoteRoute.parse(v, transport: .qmtp)) }
            if let v = smtp.value(for: key) { return nonEmpty(RemoteRoute.parse(v, transport: .smtp)) }
            if let v = more(key.lowercased()) { return nonEmpty(RemoteRoute.parse(v, transport: .smtp)) }
        }
        return nil
    }

    private func nonEmpty(_ route: RemoteRoute) -> RemoteRoute? { route.relay.isEmpty ? nil : route }
}
