// The server side of SASL SCRAM (RFC 5802, RFC 7677) with channel binding (RFC 5929
// tls-unique, RFC 9266 tls-exporter) for qmail-smtpd. Written on the TLSDigests hook
// (OpenSSL's HMAC, digest and PBKDF2) rather than libgsasl's server: the exchange is two
// round trips of string parsing, gsasl's server wants the salted keys through a callback
// keyed by global properties, and our own code can be driven by RFC test vectors without
// a socket. No I/O here.
import Core
import Glibc

public enum SCRAMAlgorithm: String, CaseIterable, Sendable {
    case sha1 = "SCRAM-SHA-1"
    case sha256 = "SCRAM-SHA-256"

    /// OpenSSL's digest name.
    public var digestName: String { self == .sha1 ? "sha1" : "sha256" }
    public var keyLength: Int { self == .sha1 ? 20 : 32 }
}

/// One user's salted credential: never the password, only what RFC 5802 §3 lets the
/// server keep.
public struct SCRAMCredential: Equatable, Sendable {
    public var algorithm: SCRAMAlgorithm
    public var iterations: Int
    public var salt: [UInt8]
    public var storedKey: [UInt8]
    public var serverKey: [UInt8]

    public init(algorithm: SCRAMAlgorithm, iterations: Int, salt: [UInt8], storedKey: [UInt8], serverKey: [UInt8]) {
        self.algorithm = algorithm
        self.iterations = iterations
        self.salt = salt
        self.storedKey = storedKey
        self.serverKey = serverKey
    }

    /// SaltedPassword = PBKDF2(password, salt, i); StoredKey = H(HMAC(salted, "Client
    /// Key")); ServerKey = HMAC(salted, "Server Key"). nil when the library fails.
    public static func derive(_ algorithm: SCRAMAlgorithm, password: [UInt8], salt: [UInt8], iterations: Int,
                              digests: any TLSDigests.Type) -> SCRAMCredential? {
        let name = algorithm.digestName
        guard let salted = digests.pbkdf2(name, password: password, salt: salt, iterations: iterations,
                                          length: algorithm.keyLength),
              let clientKey = digests.hmac(name, key: salted, data: Array("Client Key".utf8)),
              let storedKey = digests.digest(name, data: clientKey),
              let serverKey = digests.hmac(name, key: salted, data: Array("Server Key".utf8)) else { return nil }
        return SCRAMCredential(algorithm: algorithm, iterations: iterations, salt: salt, storedKey: storedKey, serverKey: serverKey)
    }
}

public struct SCRAMFileError: Error, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The credential file: one line per user and mechanism,
/// `user:SCRAM-SHA-256:iterations:salt:StoredKey:ServerKey` (the last three in base64).
/// The user is everything before the last five colons, so it may hold colons itself.
/// Empty lines and lines starting with '#' are ignored.
public struct SCRAMCredentialStore: Equatable, Sendable {
    public private(set) var entries: [(user: [UInt8], credential: SCRAMCredential)] = []

    public init() {}

    public static func == (a: SCRAMCredentialStore, b: SCRAMCredentialStore) -> Bool {
        a.entries.count == b.entries.count && zip(a.entries, b.entries).allSatisfy { $0.user == $1.user && $0.credential == $1.credential }
    }

    public var isEmpty: Bool { entries.isEmpty }

    public func lookup(_ user: [UInt8], _ algorithm: SCRAMAlgorithm) -> SCRAMCredential? {
        entries.first { $0.user == user && $0.credential.algorithm == algorithm }?.credential
    }

    /// Replaces the user's entry for the credential's mechanism (or adds one).
    public mutating func set(_ user: [UInt8], _ credential: SCRAMCredential) {
        if let i = entries.firstIndex(where: { $0.user == user && $0.credential.algorithm == credential.algorithm }) {
            entries[i].credential = credential
        } else {
            entries.append((user, credential))
        }
    }

    /// Removes every entry of the user; false when there was none.
    @discardableResult
    public mutating func remove(_ user: [UInt8]) -> Bool {
        let before = entries.count
        entries.removeAll { $0.user == user }
        return entries.count != before
    }

    public static func parse(_ bytes: [UInt8]) -> Result<SCRAMCredentialStore, SCRAMFileError> {
        var store = SCRAMCredentialStore()
        var number = 0
        for raw in bytes.split(separator: 10, omittingEmptySubsequences: false) {
            number += 1
            var line = Array(raw)
            if line.last == 13 { line.removeLast() }
            if line.isEmpty || line.first == UInt8(ascii: "#") { continue }
            let fields = line.split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false)
            guard fields.count >= 6 else { return .failure(SCRAMFileError("line \(number): expected 6 fields")) }
            let user = Array(line[..<(fields[fields.count - 5].startIndex - 1)])
            guard !user.isEmpty, let credential = entry(Array(line[fields[fields.count - 5].startIndex...])) else {
                return .failure(SCRAMFileError("line \(number): malformed entry"))
            }
            store.set(user, credential)
        }
        return .success(store)
    }

    /// `mechanism:iterations:salt:StoredKey:ServerKey`, a line without its user (and a
    /// cdb record's value).
    public static func entry(_ bytes: [UInt8]) -> SCRAMCredential? {
        let tail = bytes.split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false).map { Array($0) }
        guard tail.count == 5,
              let algorithm = SCRAMAlgorithm(rawValue: String(decoding: tail[0], as: UTF8.self)),
              let iterations = Int(String(decoding: tail[1], as: UTF8.self)), iterations > 0, iterations <= 10_000_000,
              let salt = Base64.decode(tail[2]), !salt.isEmpty,
              let stored = Base64.decode(tail[3]), stored.count == algorithm.keyLength,
              let server = Base64.decode(tail[4]), server.count == algorithm.keyLength else { return nil }
        return SCRAMCredential(algorithm: algorithm, iterations: iterations, salt: salt, storedKey: stored, serverKey: server)
    }

    static func value(_ c: SCRAMCredential) -> [UInt8] {
        Array("\(c.algorithm.rawValue):\(c.iterations):".utf8)
            + Base64.encode(c.salt) + [58] + Base64.encode(c.storedKey) + [58] + Base64.encode(c.serverKey)
    }

    public func render() -> [UInt8] {
        var out: [UInt8] = []
        for (user, c) in entries { out += user + [58] + Self.value(c) + [10] }
        return out
    }

    /// Every record of a cdb (key user, value one entry per mechanism).
    public static func records(_ cdb: CDB) -> Result<SCRAMCredentialStore, SCRAMFileError> {
        var store = SCRAMCredentialStore()
        var bad = false
        let walked = cdb.forEachRecord { key, value in
            guard !key.isEmpty, let c = entry(Array(value)) else { bad = true; return false }
            store.set(Array(key), c)
            return true
        }
        if case .failure(let e) = walked { return .failure(SCRAMFileError("\(e)")) }
        return bad ? .failure(SCRAMFileError("malformed cdb record")) : .success(store)
    }

    /// Writes the entries as a cdb, atomically.
    public func writeCDB(_ path: String, temporary: String) -> Result<Void, CDBError> {
        CDBWriter.rebuild(path, temporary: temporary) { writer in
            for (user, c) in entries {
                if case .failure(let e) = writer.add(key: user, value: Self.value(c)) { return .failure(e) }
            }
            return .success(())
        }
    }

    /// SCRAM_USERS names the file; else CONTROLDIR/scram. nil = not configured (no file).
    public static func path(_ env: Environment, controlDirectory: String) -> String {
        env.nonEmpty("SCRAM_USERS") ?? Path.join(controlDirectory, "scram")
    }
}

/// Where qmail-smtpd looks credentials up: the text file read whole, or a cdb (a name
/// ending in ".cdb") searched per login, for large user sets.
public enum SCRAMCredentialSource {
    case table(SCRAMCredentialStore)
    /// The cdb and its 2048-byte header, which seeds the made-up salts of unknown users.
    case cdb(CDB, header: [UInt8])

    /// Secret-ish bytes fixed for this file, so that an unknown user gets the same made-up
    /// salt on every attempt, as a known user gets the same real one.
    public var saltSeed: [UInt8] {
        switch self {
        case .table(let t): return t.entries.flatMap { $0.credential.serverKey }
        case .cdb(_, let header): return header
        }
    }

    /// The iteration count unknown users are shown: the first entry's.
    var typicalIterations: Int {
        switch self {
        case .table(let t): return t.entries.first?.credential.iterations ?? 4096
        case .cdb: return 4096
        }
    }

    public var isEmpty: Bool {
        switch self {
        case .table(let t): return t.isEmpty
        case .cdb(let c, _): return c.size <= 2048
        }
    }

    public func lookup(_ user: [UInt8], _ algorithm: SCRAMAlgorithm) -> SCRAMCredential? {
        switch self {
        case .table(let t): return t.lookup(user, algorithm)
        case .cdb(let c, _):
            guard case .success(let values) = c.findAll(user) else { return nil }
            return values.lazy.compactMap(SCRAMCredentialStore.entry).first { $0.algorithm == algorithm }
        }
    }

    /// nil when the file does not exist.
    public static func load(_ path: String) -> Result<SCRAMCredentialSource?, SCRAMFileError> {
        if path.hasSuffix(".cdb") {
            switch CDB.open(path) {
            case .success(let c):
                var header = [UInt8](repeating: 0, count: 2048)
                guard case .success(let fd) = FD.openRead(path) else { return .failure(SCRAMFileError("unable to read \(path)")) }
                let n = header.withUnsafeMutableBytes { FD.read(fd, $0) }
                FD.close(fd)
                guard case .success(2048) = n else { return .failure(SCRAMFileError("unable to read \(path)")) }
                return .success(.cdb(c, header: header))
            case .failure(.system(let e)) where e.errno == ENOENT: return .success(nil)
            case .failure(let e): return .failure(SCRAMFileError("\(path): \(e)"))
            }
        }
        switch FD.readFile(path) {
        case .failure(let e) where e.errno == ENOENT: return .success(nil)
        case .failure(let e): return .failure(SCRAMFileError("unable to read \(path): \(e)"))
        case .success(let bytes):
            return SCRAMCredentialStore.parse(bytes).map { .table($0) }.mapError { SCRAMFileError("\(path): \($0)") }
        }
    }
}

/// What a SCRAM exchange fails with: 501 for syntax, 535 for a refusal.
public enum SCRAMFailure: Error, Equatable, Sendable {
    case malformed(String)
    case refused(String)
}

/// What the server needs besides the credentials: the digests, the TLS session's channel
/// binding (nil outside TLS), and random bytes for its half of the nonce.
public struct SCRAMSetup {
    public var digests: any TLSDigests.Type
    public var credentials: SCRAMCredentialSource
    public var channelBinding: [UInt8]?
    /// "tls-exporter" under TLS 1.3, "tls-unique" before.
    public var bindingType = "tls-unique"
    public var randomBytes: (Int) -> [UInt8]
    /// The server's half of the nonce (printable, no comma); 18 random bytes in base64
    /// unless a test fixes it.
    public var serverNonce: (() -> [UInt8])?

    public init(digests: any TLSDigests.Type, credentials: SCRAMCredentialSource,
                randomBytes: @escaping (Int) -> [UInt8] = SCRAMSetup.systemRandom) {
        self.digests = digests
        self.credentials = credentials
        self.randomBytes = randomBytes
    }

    public static func systemRandom(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }
}

/// One exchange: `clientFirst` gives the server-first message, `clientFinal` the
/// authenticated user and the server-final message.
public struct SCRAMExchange {
    public let algorithm: SCRAMAlgorithm
    public let plus: Bool
    /// The server offers -PLUS on this connection: a client saying "y" is being downgraded.
    public let plusOffered: Bool
    let setup: SCRAMSetup
    private var gs2Header: [UInt8] = []
    private var clientFirstBare: [UInt8] = []
    private var serverFirst: [UInt8] = []
    private var nonce: [UInt8] = []
    private var user: [UInt8] = []
    private var credential: SCRAMCredential?

    public init(_ algorithm: SCRAMAlgorithm, plus: Bool, plusOffered: Bool, setup: SCRAMSetup) {
        self.algorithm = algorithm
        self.plus = plus
        self.plusOffered = plusOffered
        self.setup = setup
    }

    public var userName: [UInt8] { user }

    public mutating func clientFirst(_ message: [UInt8]) -> Result<[UInt8], SCRAMFailure> {
        let comma = UInt8(ascii: ",")
        // gs2-header: cbind-flag "," [authzid] ","
        guard let first = message.firstIndex(of: comma),
              let second = message[(first + 1)...].firstIndex(of: comma) else { return .failure(.malformed("no gs2 header")) }
        let flag = Array(message[..<first])
        let authzid = Array(message[(first + 1)..<second])
        gs2Header = Array(message[...second])
        clientFirstBare = Array(message[(second + 1)...])
        if flag == [UInt8(ascii: "n")] || flag == [UInt8(ascii: "y")] {
            if plus { return .failure(.refused("SCRAM-PLUS without channel binding")) }
            if flag == [UInt8(ascii: "y")] && plusOffered { return .failure(.refused("channel binding downgrade")) }
        } else if flag.starts(with: Array("p=".utf8)) {
            let type = String(decoding: flag.dropFirst(2), as: UTF8.self)
            guard plus else { return .failure(.refused("channel binding asked for a mechanism without it")) }
            guard setup.channelBinding != nil, type == setup.bindingType else {
                return .failure(.refused("channel binding type \(type) unsupported"))
            }
        } else {
            return .failure(.malformed("bad channel binding flag"))
        }
        let fields = SCRAMExchange.fields(clientFirstBare)
        guard fields.first?.key == UInt8(ascii: "n"), fields.count >= 2, fields[1].key == UInt8(ascii: "r"),
              let name = SCRAMExchange.unescape(fields[0].value), !name.isEmpty else {
            return .failure(.malformed("bad client-first-message"))
        }
        let clientNonce = fields[1].value
        guard !clientNonce.isEmpty, clientNonce.allSatisfy({ $0 > 32 && $0 < 127 && $0 != comma }) else {
            return .failure(.malformed("bad client nonce"))
        }
        if !authzid.isEmpty {
            guard authzid.starts(with: Array("a=".utf8)), SCRAMExchange.unescape(Array(authzid.dropFirst(2))) == name else {
                return .failure(.refused("authorization identity differs from the user"))
            }
        }
        user = name
        let random = setup.randomBytes(18)
        let serverPart = setup.serverNonce?() ?? Base64.encode(random)
        guard !serverPart.isEmpty, serverPart.allSatisfy({ $0 > 32 && $0 < 127 && $0 != comma }) else {
            return .failure(.refused("bad server nonce"))
        }
        nonce = clientNonce + serverPart
        // An unknown user gets a made-up salt and fails at the proof, as a known one with a
        // wrong password does: the exchange does not tell which users exist.
        let found = setup.credentials.lookup(name, algorithm)
        credential = found
        let seed = setup.credentials.saltSeed
        let salt = found?.salt ?? (setup.digests.hmac(algorithm.digestName, key: seed.isEmpty ? random : seed, data: name)
            .map { Array($0.prefix(16)) } ?? random)
        let iterations = found?.iterations ?? setup.credentials.typicalIterations
        serverFirst = Array("r=".utf8) + nonce + Array(",s=".utf8) + Base64.encode(salt) + Array(",i=\(iterations)".utf8)
        return .success(serverFirst)
    }

    /// The user and the server-final message ("v=…") when the proof verifies.
    public mutating func clientFinal(_ message: [UInt8]) -> Result<(user: [UInt8], serverFinal: [UInt8]), SCRAMFailure> {
        guard !serverFirst.isEmpty else { return .failure(.malformed("no client-first-message")) }
        let marker = Array(",p=".utf8)
        guard let proofStart = SCRAMExchange.lastRange(of: marker, in: message) else { return .failure(.malformed("no proof")) }
        let withoutProof = Array(message[..<proofStart])
        guard let proof = Base64.decode(message[(proofStart + marker.count)...]), proof.count == algorithm.keyLength else {
            return .failure(.malformed("bad proof"))
        }
        let fields = SCRAMExchange.fields(withoutProof)
        guard fields.count >= 2, fields[0].key == UInt8(ascii: "c"), fields[1].key == UInt8(ascii: "r"),
              let binding = Base64.decode(fields[0].value) else {
            return .failure(.malformed("bad client-final-message"))
        }
        guard fields[1].value == nonce else { return .failure(.refused("nonce mismatch")) }
        let expected = gs2Header + (plus ? setup.channelBinding ?? [] : [])
        guard binding == expected else { return .failure(.refused("channel binding mismatch")) }
        guard let credential else { return .failure(.refused("unknown user")) }
        let name = algorithm.digestName
        let authMessage = clientFirstBare + [44] + serverFirst + [44] + withoutProof
        guard let signature = setup.digests.hmac(name, key: credential.storedKey, data: authMessage),
              signature.count == proof.count,
              let stored = setup.digests.digest(name, data: zip(proof, signature).map { $0 ^ $1 }),
              let serverSignature = setup.digests.hmac(name, key: credential.serverKey, data: authMessage) else {
            return .failure(.refused("digest unavailable"))
        }
        var difference: UInt8 = stored.count == credential.storedKey.count ? 0 : 1
        for (a, b) in zip(stored, credential.storedKey) { difference |= a ^ b }
        guard difference == 0 else { return .failure(.refused("wrong proof")) }
        return .success((user, Array("v=".utf8) + Base64.encode(serverSignature)))
    }

    /// `k=value` attributes separated by commas, in order.
    static func fields(_ bytes: [UInt8]) -> [(key: UInt8, value: [UInt8])] {
        bytes.split(separator: 44, omittingEmptySubsequences: false).compactMap { part in
            guard part.count >= 2, part[part.startIndex + 1] == UInt8(ascii: "=") else { return nil }
            return (part[part.startIndex], Array(part.dropFirst(2)))
        }
    }

    /// saslname: "=2C" is ",", "=3D" is "="; any other "=" is an error (nil).
    static func unescape(_ bytes: [UInt8]) -> [UInt8]? {
        var out: [UInt8] = []
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "=") {
                guard i + 2 < bytes.count else { return nil }
                let code = [bytes[i + 1], bytes[i + 2]]
                if code == Array("2C".utf8) { out.append(44) } else if code == Array("3D".utf8) { out.append(61) } else { return nil }
                i += 3
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return out
    }

    static func lastRange(of needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        var i = haystack.count - needle.count
        while i >= 0 {
            if Array(haystack[i..<(i + needle.count)]) == needle { return i }
            i -= 1
        }
        return nil
    }
}
