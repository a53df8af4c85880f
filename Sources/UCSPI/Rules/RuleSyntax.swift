// Parsing one line of tcprules source into the cdb keys and value it stands for (spec §3.2).
// Pure: bytes in, a value or a typed error out, so it can be fuzzed without processes.

/// One rule line, compiled.
public struct RuleDefinition: Equatable, Sendable {
    /// The address as written (before the separating `:allow` or `:deny`).
    public var address: [UInt8]
    public var action: RuleAction
    /// The `,NAME=QvalueQ` and `,!NAME` instructions, in order.
    public var environment: [RuleEnvironmentChange]
    /// What tcprules stores, in order: one key, several for a range, the CIDR bit-string
    /// keys, or an IPv6 literal plus its expanded form (see `RuleSyntax.keys`).
    public var keys: [[UInt8]]

    public init(address: [UInt8], action: RuleAction, environment: [RuleEnvironmentChange], keys: [[UInt8]]) {
        self.address = address
        self.action = action
        self.environment = environment
        self.keys = keys
    }

    /// The cdb value stored under every key.
    public var value: [UInt8] { RuleValue.encode(action: action, environment: environment) }

    /// Why this rule, though valid, can never match a client, or nil. Such rules are
    /// stored anyway (as the reference does); tcprules only warns.
    public var uselessness: String? {
        if let first = address.first, first == 32 || first == 9 {
            return "the address starts with a blank, so no client can match it"
        }
        guard !address.contains(UInt8(ascii: "=")) else { return nil }
        let ip = address.lastIndex(of: UInt8(ascii: "@")).map { Array(address[($0 + 1)...]) } ?? address
        if ip.contains(UInt8(ascii: ":")) && !ip.contains(UInt8(ascii: "/")) && IPAddressText.parseIPv6(ip) == nil {
            return "not an IPv6 address, and IPv6 addresses are not matched by text prefix: use CIDR, e.g. 2001:db8::/32"
        }
        return nil
    }
}

public enum RuleSyntaxError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A non-blank line with no `:allow` or `:deny`.
    case noSeparator
    /// Something other than `,instruction` after allow/deny or after an instruction
    /// (`allowx`, a trailing carriage return, a space before a comma).
    case unexpectedText
    /// `,` with nothing after it, or `,,`.
    case emptyInstruction
    /// `,NAME` with neither `=` nor a leading `!`.
    case instructionWithoutValue
    /// `,!` with no name.
    case unsetWithoutName
    /// `,NAME=` at the end of the line: no delimiter, no value.
    case missingValue
    /// `,NAME=Qvalue` without the closing Q.
    case unterminatedValue
    /// `a-b` where a or b is not a decimal number.
    case badRange
    /// `address/n` that is not a valid IPv4 or IPv6 CIDR block.
    case badCIDR(String)

    public var description: String {
        switch self {
        case .noSeparator: return "no :allow or :deny"
        case .unexpectedText: return "instructions after allow or deny must each start with a comma"
        case .emptyInstruction: return "empty instruction"
        case .instructionWithoutValue: return "instruction is neither NAME=\"value\" nor !NAME"
        case .unsetWithoutName: return "!NAME needs a name"
        case .missingValue: return "NAME= needs a quoted value"
        case .unterminatedValue: return "value has no closing delimiter"
        case .badRange: return "range bounds must be decimal numbers"
        case .badCIDR(let why): return why
        }
    }
}

public enum RuleSyntax {
    private static let colon = UInt8(ascii: ":"), comma = UInt8(ascii: ","), equals = UInt8(ascii: "=")
    private static let bang = UInt8(ascii: "!"), at = UInt8(ascii: "@"), dash = UInt8(ascii: "-")
    private static let dot = UInt8(ascii: "."), slash = UInt8(ascii: "/")
    private static let deny = Array("deny".utf8), allow = Array("allow".utf8)

    /// Parses one line (with or without its LF). Nil for a comment (`#` in the first
    /// column), an empty line, or a line of only spaces and tabs.
    public static func parse(_ raw: [UInt8]) -> Result<RuleDefinition?, RuleSyntaxError> {
        if raw.first == UInt8(ascii: "#") { return .success(nil) }
        var end = raw.count
        while end > 0, [10, 32, 9].contains(raw[end - 1]) { end -= 1 }
        if end == 0 { return .success(nil) }
        let line = raw[0..<end]

        // The first colon followed by `deny` or `allow`: IPv6 addresses hold colons too.
        var separator: Int?
        var search = 0
        while let c = line[search...].firstIndex(of: colon) {
            let rest = line[(c + 1)...]
            if rest.starts(with: deny) || rest.starts(with: allow) { separator = c; break }
            search = c + 1
        }
        guard let sep = separator else { return .failure(.noSeparator) }

        let address = Array(line[..<sep])
        var action = RuleAction.allow
        var i = sep + 1
        if line[i...].starts(with: deny) {
            action = .deny
            i += deny.count
        } else {
            i += allow.count
        }

        var environment: [RuleEnvironmentChange] = []
        while i < end {
            guard line[i] == comma else { return .failure(.unexpectedText) }
            let body = i + 1
            let nextComma = line[body...].firstIndex(of: comma) ?? end
            let eq = line[body..<nextComma].firstIndex(of: equals)
            guard let eq else {
                // No `=` before the next comma: only `!NAME` fits.
                guard nextComma > body else { return .failure(.emptyInstruction) }
                guard line[body] == bang else { return .failure(.instructionWithoutValue) }
                guard nextComma - body >= 2 else { return .failure(.unsetWithoutName) }
                environment.append(RuleEnvironmentChange(name: Array(line[(body + 1)..<nextComma]), value: nil))
                i = nextComma
                continue
            }
            let name = Array(line[body..<eq])
            let open = eq + 1
            guard open < end else {
                // `,!NAME=` ending the line, as the reference man page writes it: an unset.
                if name.count >= 2 && name[0] == bang {
                    environment.append(RuleEnvironmentChange(name: Array(name.dropFirst()), value: nil))
                    i = end
                    continue
                }
                return .failure(.missingValue)
            }
            let delimiter = line[open]
            guard let close = line[(open + 1)...].firstIndex(of: delimiter) else {
                return .failure(.unterminatedValue)
            }
            environment.append(RuleEnvironmentChange(name: name, value: Array(line[(open + 1)..<close])))
            i = close + 1
        }

        return keys(for: address).map {
            RuleDefinition(address: address, action: action, environment: environment, keys: $0)
        }
    }

    /// The cdb keys an address stands for:
    /// * with `=` or `@` (host, `info@ip`, `info@=host`): the address itself, plus for
    ///   `info@IPV6` the expanded form when the IPv6 part is written in neither the
    ///   compact nor the expanded form;
    /// * with `/`: a CIDR block, turned into bit-string keys (`CIDRKeys`);
    /// * with `-`: an octet range `a-b` expanded into one key per number (b capped at 255);
    /// * an IPv6 literal: itself, plus the expanded form when it is written in neither the
    ///   compact form tcpserver prints nor the expanded form (either of which the lookup
    ///   tries), so `2001:DB8:0::1` works;
    /// * anything else verbatim.
    public static func keys(for address: [UInt8]) -> Result<[[UInt8]], RuleSyntaxError> {
        if address.contains(equals) { return .success([address]) }
        if let a = address.lastIndex(of: at) {
            let ip = Array(address[(a + 1)...])
            guard let extra = expandedIfUnmatchable(ip) else { return .success([address]) }
            return .success([address, Array(address[...a]) + extra])
        }
        if address.contains(slash) { return CIDRKeys.keys(for: address) }
        if let d = address.firstIndex(of: dash) { return rangeKeys(address, dash: d) }
        if let extra = expandedIfUnmatchable(address) { return .success([address, extra]) }
        return .success([address])
    }

    /// The expanded form of an IPv6 literal that the lookup would otherwise never find.
    private static func expandedIfUnmatchable(_ text: [UInt8]) -> [UInt8]? {
        guard text.contains(colon), let bytes = IPAddressText.parseIPv6(text) else { return nil }
        let expanded = IPAddressText.formatIPv6Expanded(bytes)
        if text == expanded || text == IPAddressText.formatIPv6Compact(bytes) { return nil }
        return expanded
    }

    /// `1.2.3.37-53` → `1.2.3.37` … `1.2.3.53`; `10.2-3.` → `10.2.`, `10.3.`. The numbers
    /// sit between the last dot before the dash and the first dot after it.
    private static func rangeKeys(_ address: [UInt8], dash: Int) -> Result<[[UInt8]], RuleSyntaxError> {
        let left = address[..<dash].lastIndex(of: dot).map { $0 + 1 } ?? 0
        let right = address[(dash + 1)...].firstIndex(of: dot) ?? address.count
        guard let bottom = decimal(address[left..<dash]), var top = decimal(address[(dash + 1)..<right]) else {
            return .failure(.badRange)
        }
        top = min(top, 255)
        guard bottom <= top else { return .success([]) }
        let prefix = address[..<left], suffix = address[right...]
        return .success((bottom...top).map { Array(prefix) + Array(String($0).utf8) + Array(suffix) })
    }

    /// The reference's reading of a range bound: leading digits (none is 0), then the end
    /// of the field or a NUL byte. Wraps on overflow as C's unsigned long does.
    private static func decimal(_ field: ArraySlice<UInt8>) -> UInt64? {
        var value: UInt64 = 0
        for c in field {
            if c == 0 { break }
            guard c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") else { return nil }
            value = value &* 10 &+ UInt64(c - UInt8(ascii: "0"))
        }
        return value
    }
}

/// CIDR blocks as rules keys (spec §4.2), in the form the lookup looks for: `_` and the
/// first n bytes of the IPv4 bit string, or `^` and the first n bytes of the IPv6 one.
/// The lookup tries prefixes /32 (/128) down to /2 only, so a /1 block becomes its two
/// /2 halves and a /0 block its four /2 quarters: same addresses, same precedence.
public enum CIDRKeys {
    public static func keys(for address: [UInt8]) -> Result<[[UInt8]], RuleSyntaxError> {
        guard let slash = address.lastIndex(of: UInt8(ascii: "/")) else {
            return .failure(.badCIDR("no /prefix"))
        }
        let ipText = address[..<slash], lengthText = address[(slash + 1)...]
        guard !lengthText.isEmpty, lengthText.count <= 3,
              lengthText.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            return .failure(.badCIDR("CIDR prefix length must be a decimal number"))
        }
        let length = lengthText.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
        if ipText.contains(UInt8(ascii: ":")) {
            guard let bytes = IPAddressText.parseIPv6(ipText) else {
                return .failure(.badCIDR("invalid IPv6 address in CIDR block"))
            }
            guard length <= 128 else { return .failure(.badCIDR("IPv6 prefix length over 128")) }
            return .success(ipv6(bytes, length: length))
        }
        guard let octets = IPAddressText.parseIPv4Octets(ipText) else {
            return .failure(.badCIDR("invalid IPv4 address in CIDR block"))
        }
        guard length <= 32 else { return .failure(.badCIDR("IPv4 prefix length over 32")) }
        guard octets.count * 8 >= length else {
            return .failure(.badCIDR("IPv4 CIDR block gives fewer octets than its prefix length covers"))
        }
        return .success(ipv4(octets + [UInt8](repeating: 0, count: 4 - octets.count), length: length))
    }

    /// Keys for an IPv4 block; `address` is 4 bytes.
    public static func ipv4(_ address: [UInt8], length: Int) -> [[UInt8]] {
        widened(address, length: length).map { [UInt8(ascii: "_")] + IPAddressText.ipv4Bits($0).prefix($1) }
    }

    /// Keys for an IPv6 block; `address` is 16 bytes.
    public static func ipv6(_ address: [UInt8], length: Int) -> [[UInt8]] {
        widened(address, length: length).map { [UInt8(ascii: "^")] + IPAddressText.ipv6Bits($0).prefix($1) }
    }

    /// The block itself when its length is at least 2, otherwise its /2 sub-blocks.
    private static func widened(_ address: [UInt8], length: Int) -> [([UInt8], Int)] {
        guard length < 2 else { return [(address, length)] }
        let keep: UInt8 = length == 1 ? 0x80 : 0
        return (0..<(1 << (2 - length))).map { n in
            var a = address
            a[0] = (a[0] & keep) | UInt8(n) << 6
            return (a, 2)
        }
    }
}
