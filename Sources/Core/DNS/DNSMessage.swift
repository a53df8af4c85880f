// DNS messages (RFC 1035 §4): building queries and answers, parsing whatever a server sends.
// The parser trusts nothing: every read is bounds-checked, compression pointers are followed
// a bounded number of times, and a malformed packet is an error value.

public struct DNSType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public init(_ value: UInt16) { rawValue = value }

    public static let a = DNSType(1)
    public static let ns = DNSType(2)
    public static let cname = DNSType(5)
    public static let soa = DNSType(6)
    public static let ptr = DNSType(12)
    public static let mx = DNSType(15)
    public static let txt = DNSType(16)
    public static let aaaa = DNSType(28)
    public static let opt = DNSType(41)
    public static let any = DNSType(255)

    public var description: String {
        switch self {
        case .a: return "A"
        case .ns: return "NS"
        case .cname: return "CNAME"
        case .soa: return "SOA"
        case .ptr: return "PTR"
        case .mx: return "MX"
        case .txt: return "TXT"
        case .aaaa: return "AAAA"
        case .opt: return "OPT"
        case .any: return "ANY"
        default: return "TYPE\(rawValue)"
        }
    }
}

public struct DNSClass: RawRepresentable, Hashable, Sendable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public static let internet = DNSClass(rawValue: 1)
}

/// The RCODE of a response header.
public struct DNSResponseCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue & 15 }

    public static let noError = DNSResponseCode(rawValue: 0)
    public static let formatError = DNSResponseCode(rawValue: 1)
    public static let serverFailure = DNSResponseCode(rawValue: 2)
    public static let nameError = DNSResponseCode(rawValue: 3)
    public static let notImplemented = DNSResponseCode(rawValue: 4)
    public static let refused = DNSResponseCode(rawValue: 5)

    public var description: String {
        switch rawValue {
        case 0: return "NOERROR"
        case 1: return "FORMERR"
        case 2: return "SERVFAIL"
        case 3: return "NXDOMAIN"
        case 4: return "NOTIMP"
        case 5: return "REFUSED"
        default: return "RCODE\(rawValue)"
        }
    }
}

public struct DNSQuestion: Hashable, Sendable {
    public var name: DNSName
    public var type: DNSType
    public var dnsClass: DNSClass

    public init(_ name: DNSName, _ type: DNSType, dnsClass: DNSClass = .internet) {
        self.name = name
        self.type = type
        self.dnsClass = dnsClass
    }
}

/// Record data of the types the suite uses; anything else (or a known type outside
/// class IN) is kept as raw bytes.
public enum DNSRecordData: Hashable, Sendable {
    case a(IPAddress)
    case aaaa(IPAddress)
    /// The character-strings of one TXT record, in order.
    case txt([[UInt8]])
    case ptr(DNSName)
    case cname(DNSName)
    case ns(DNSName)
    case mx(preference: UInt16, exchange: DNSName)
    case other([UInt8])
}

public struct DNSRecord: Hashable, Sendable {
    public var name: DNSName
    public var type: DNSType
    public var dnsClass: DNSClass
    public var ttl: UInt32
    public var data: DNSRecordData

    public init(name: DNSName, type: DNSType, dnsClass: DNSClass = .internet, ttl: UInt32 = 0, data: DNSRecordData) {
        self.name = name
        self.type = type
        self.dnsClass = dnsClass
        self.ttl = ttl
        self.data = data
    }

    /// A record whose type follows from its data (not for `.other`).
    public init(name: DNSName, ttl: UInt32 = 0, _ data: DNSRecordData) {
        let type: DNSType
        switch data {
        case .a: type = .a
        case .aaaa: type = .aaaa
        case .txt: type = .txt
        case .ptr: type = .ptr
        case .cname: type = .cname
        case .ns: type = .ns
        case .mx: type = .mx
        case .other: type = DNSType(0)
        }
        self.init(name: name, type: type, ttl: ttl, data: data)
    }
}

public enum DNSPacketError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The packet ends inside a header, name or record.
    case truncated
    /// A label length byte with the reserved 01 or 10 prefix.
    case badLabel
    /// Compression pointers that go round in circles (or too many of them).
    case pointerLoop
    /// A pointer past the end of the packet.
    case badPointer
    /// A name over 255 bytes once decompressed.
    case nameTooLong
    /// Record data that does not fit its type (an A record of 5 bytes, a TXT string
    /// running past the record).
    case badRecordData(DNSType)
    /// The encoded message would exceed 65535 bytes.
    case tooLarge

    public var description: String {
        switch self {
        case .truncated: return "truncated packet"
        case .badLabel: return "bad label type"
        case .pointerLoop: return "compression pointer loop"
        case .badPointer: return "compression pointer out of range"
        case .nameTooLong: return "name too long"
        case .badRecordData(let t): return "malformed \(t) record"
        case .tooLarge: return "message too large"
        }
    }
}

public struct DNSMessage: Equatable, Sendable {
    public var id: UInt16
    public var isResponse = false
    public var opcode: UInt8 = 0
    public var authoritative = false
    public var truncated = false
    public var recursionDesired = false
    public var recursionAvailable = false
    public var responseCode = DNSResponseCode.noError
    public var questions: [DNSQuestion] = []
    public var answers: [DNSRecord] = []
    public var authority: [DNSRecord] = []
    public var additional: [DNSRecord] = []

    public init(id: UInt16) { self.id = id }

    /// A recursive query for one question, as a stub resolver sends it.
    public static func query(id: UInt16, _ question: DNSQuestion) -> DNSMessage {
        var m = DNSMessage(id: id)
        m.recursionDesired = true
        m.questions = [question]
        return m
    }

    /// The header flag word.
    var flags: UInt16 {
        var f: UInt16 = 0
        if isResponse { f |= 0x8000 }
        f |= UInt16(opcode & 15) << 11
        if authoritative { f |= 0x0400 }
        if truncated { f |= 0x0200 }
        if recursionDesired { f |= 0x0100 }
        if recursionAvailable { f |= 0x0080 }
        f |= UInt16(responseCode.rawValue)
        return f
    }

    // MARK: encoding

    /// Wire form. With `compress`, names (owners and the names inside CNAME, PTR, NS and
    /// MX data) point back at earlier copies of their suffixes.
    public func encode(compress: Bool = true) -> Result<[UInt8], DNSPacketError> {
        var w = Writer(compress: compress)
        w.u16(id)
        w.u16(flags)
        for count in [questions.count, answers.count, authority.count, additional.count] {
            guard count <= 0xffff else { return .failure(.tooLarge) }
            w.u16(UInt16(count))
        }
        for q in questions {
            w.name(q.name)
            w.u16(q.type.rawValue)
            w.u16(q.dnsClass.rawValue)
        }
        for record in answers + authority + additional {
            guard w.record(record) else { return .failure(.badRecordData(record.type)) }
        }
        guard w.bytes.count <= 0xffff else { return .failure(.tooLarge) }
        return .success(w.bytes)
    }

    private struct Writer {
        var bytes: [UInt8] = []
        let compress: Bool
        /// Lowercased suffix → offset of its first copy (offsets below 0x4000 only).
        var suffixes: [[[UInt8]]: Int] = [:]

        init(compress: Bool) {
            self.compress = compress
            bytes.reserveCapacity(512)
        }

        mutating func u16(_ v: UInt16) { bytes.append(UInt8(v >> 8)); bytes.append(UInt8(v & 0xff)) }
        mutating func u32(_ v: UInt32) { u16(UInt16(v >> 16)); u16(UInt16(v & 0xffff)) }

        mutating func name(_ name: DNSName) {
            let lower = name.lowercased
            for i in 0..<name.labels.count {
                let suffix = Array(lower[i...])
                if compress, let offset = suffixes[suffix] {
                    u16(0xc000 | UInt16(offset))
                    return
                }
                if compress, bytes.count < 0x4000 { suffixes[suffix] = bytes.count }
                bytes.append(UInt8(name.labels[i].count))
                bytes += name.labels[i]
            }
            bytes.append(0)
        }

        /// false when the data cannot be encoded (a TXT string over 255 bytes, data over 65535).
        mutating func record(_ r: DNSRecord) -> Bool {
            name(r.name)
            u16(r.type.rawValue)
            u16(r.dnsClass.rawValue)
            u32(r.ttl)
            let lengthAt = bytes.count
            u16(0)
            switch r.data {
            case .a(let ip), .aaaa(let ip): bytes += ip.bytes
            case .txt(let strings):
                for s in strings {
                    guard s.count <= 255 else { return false }
                    bytes.append(UInt8(s.count))
                    bytes += s
                }
            case .ptr(let n), .cname(let n), .ns(let n): name(n)
            case .mx(let preference, let exchange):
                u16(preference)
                name(exchange)
            case .other(let raw): bytes += raw
            }
            let length = bytes.count - lengthAt - 2
            guard length <= 0xffff else { return false }
            bytes[lengthAt] = UInt8(length >> 8)
            bytes[lengthAt + 1] = UInt8(length & 0xff)
            return true
        }
    }

    // MARK: decoding

    /// Parses a whole message. Bytes after the last section are ignored.
    public static func decode(_ packet: [UInt8]) -> Result<DNSMessage, DNSPacketError> {
        var r = DNSReader(packet)
        do {
            return .success(try r.message())
        } catch {
            return .failure(error)
        }
    }

    /// Only the header and the question section: enough to tell whether a response
    /// belongs to a query before trusting the rest.
    public static func decodeHeaderAndQuestions(_ packet: [UInt8]) -> Result<DNSMessage, DNSPacketError> {
        var r = DNSReader(packet)
        do {
            return .success(try r.message(questionsOnly: true))
        } catch {
            return .failure(error)
        }
    }
}

/// A cursor over a received packet.
struct DNSReader {
    let packet: [UInt8]
    var position = 0

    /// Following more pointers than this for one name means a loop: a real name has at
    /// most 127 labels, each needing at most one jump.
    static let maxJumps = 128

    init(_ packet: [UInt8]) { self.packet = packet }

    mutating func u8() throws(DNSPacketError) -> UInt8 {
        guard position < packet.count else { throw .truncated }
        defer { position += 1 }
        return packet[position]
    }

    mutating func u16() throws(DNSPacketError) -> UInt16 {
        guard packet.count - position >= 2 else { throw .truncated }
        defer { position += 2 }
        return UInt16(packet[position]) << 8 | UInt16(packet[position + 1])
    }

    mutating func u32() throws(DNSPacketError) -> UInt32 {
        let high = try u16()
        return UInt32(high) << 16 | UInt32(try u16())
    }

    mutating func bytes(_ count: Int) throws(DNSPacketError) -> [UInt8] {
        guard count >= 0, packet.count - position >= count else { throw .truncated }
        defer { position += count }
        return Array(packet[position..<(position + count)])
    }

    /// A possibly compressed name at the cursor; the cursor moves past its in-place part.
    mutating func name() throws(DNSPacketError) -> DNSName {
        var labels: [[UInt8]] = []
        var length = 1
        var at = position
        var resume: Int? = nil
        var jumps = 0
        while true {
            guard at < packet.count else { throw .truncated }
            let byte = packet[at]
            switch byte >> 6 {
            case 0:
                if byte == 0 {
                    at += 1
                    position = resume ?? at
                    return DNSName(unchecked: labels)
                }
                let count = Int(byte)
                guard packet.count - (at + 1) >= count else { throw .truncated }
                length += count + 1
                guard length <= DNSName.maxWireLength else { throw .nameTooLong }
                labels.append(Array(packet[(at + 1)..<(at + 1 + count)]))
                at += 1 + count
            case 3:
                guard at + 1 < packet.count else { throw .truncated }
                let target = Int(byte & 0x3f) << 8 | Int(packet[at + 1])
                if resume == nil { resume = at + 2 }
                jumps += 1
                guard jumps <= DNSReader.maxJumps else { throw .pointerLoop }
                guard target < packet.count else { throw .badPointer }
                at = target
            default:
                throw .badLabel
            }
        }
    }

    mutating func question() throws(DNSPacketError) -> DNSQuestion {
        let n = try name()
        let type = DNSType(try u16())
        let cls = DNSClass(rawValue: try u16())
        return DNSQuestion(n, type, dnsClass: cls)
    }

    mutating func record() throws(DNSPacketError) -> DNSRecord {
        let owner = try name()
        let type = DNSType(try u16())
        let cls = DNSClass(rawValue: try u16())
        let ttl = try u32()
        let length = Int(try u16())
        guard packet.count - position >= length else { throw .truncated }
        let start = position
        let end = start + length
        let data: DNSRecordData
        if cls == .internet {
            switch type {
            case .a:
                guard length == 4, let ip = IPAddress(bytes: try bytes(4)) else { throw .badRecordData(type) }
                data = .a(ip)
            case .aaaa:
                guard length == 16, let ip = IPAddress(bytes: try bytes(16)) else { throw .badRecordData(type) }
                data = .aaaa(ip)
            case .txt:
                var strings: [[UInt8]] = []
                while position < end {
                    let count = Int(try u8())
                    guard end - position >= count else { throw .badRecordData(type) }
                    strings.append(try bytes(count))
                }
                data = .txt(strings)
            case .ptr, .cname, .ns:
                let target = try name()
                guard position == end else { throw .badRecordData(type) }
                data = type == .ptr ? .ptr(target) : type == .cname ? .cname(target) : .ns(target)
            case .mx:
                guard length >= 3 else { throw .badRecordData(type) }
                let preference = try u16()
                let exchange = try name()
                guard position == end else { throw .badRecordData(type) }
                data = .mx(preference: preference, exchange: exchange)
            default:
                data = .other(try bytes(length))
            }
        } else {
            data = .other(try bytes(length))
        }
        position = end
        return DNSRecord(name: owner, type: type, dnsClass: cls, ttl: ttl, data: data)
    }

    mutating func message(questionsOnly: Bool = false) throws(DNSPacketError) -> DNSMessage {
        var m = DNSMessage(id: try u16())
        let flags = try u16()
        m.isResponse = flags & 0x8000 != 0
        m.opcode = UInt8((flags >> 11) & 15)
        m.authoritative = flags & 0x0400 != 0
        m.truncated = flags & 0x0200 != 0
        m.recursionDesired = flags & 0x0100 != 0
        m.recursionAvailable = flags & 0x0080 != 0
        m.responseCode = DNSResponseCode(rawValue: UInt8(flags & 15))
        let qd = Int(try u16()), an = Int(try u16()), ns = Int(try u16()), ar = Int(try u16())
        // Each count is checked against the bytes left as it is used: a record needs at
        // least 11 bytes, so a lying count runs into `.truncated` instead of a long loop.
        for _ in 0..<qd { m.questions.append(try question()) }
        if questionsOnly { return m }
        for _ in 0..<an { m.answers.append(try record()) }
        for _ in 0..<ns { m.authority.append(try record()) }
        for _ in 0..<ar { m.additional.append(try record()) }
        return m
    }
}
