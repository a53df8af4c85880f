// qmail-smtpd's SCRAM server (Mail/SMTP/SCRAMServer.swift) on OpenSSL's digests, without
// sockets: the RFC 5802 (SHA-1) and RFC 7677 (SHA-256) example exchanges, refusals,
// channel binding, the credential file, and the SMTP dialogue in SMTPSession.
import Core
import Glibc
import Mail
import TLS
import Testing

private func b(_ s: String) -> [UInt8] { Array(s.utf8) }
private func t(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

/// What a client computes: client-final-without-proof + ",p=" + proof, and the expected
/// server signature.
func scramClientFinal(_ algorithm: SCRAMAlgorithm, password: String, clientFirstBare: [UInt8], serverFirst: [UInt8],
                      channel: [UInt8]) -> (message: [UInt8], serverFinal: [UInt8])? {
    var fields: [UInt8: [UInt8]] = [:]
    for part in serverFirst.split(separator: 44) where part.count > 2 { fields[part[part.startIndex]] = Array(part.dropFirst(2)) }
    guard let nonce = fields[UInt8(ascii: "r")], let saltText = fields[UInt8(ascii: "s")], let salt = Base64.decode(saltText),
          let iterations = fields[UInt8(ascii: "i")].flatMap({ Int(t($0)) }),
          let c = SCRAMCredential.derive(algorithm, password: b(password), salt: salt, iterations: iterations,
                                         digests: OpenSSLLibrary.self) else { return nil }
    let name = algorithm.digestName
    let withoutProof = b("c=") + Base64.encode(channel) + b(",r=") + nonce
    let authMessage = clientFirstBare + [44] + serverFirst + [44] + withoutProof
    guard let salted = OpenSSLLibrary.pbkdf2(name, password: b(password), salt: salt, iterations: iterations, length: algorithm.keyLength),
          let clientKey = OpenSSLLibrary.hmac(name, key: salted, data: b("Client Key")),
          let signature = OpenSSLLibrary.hmac(name, key: c.storedKey, data: authMessage),
          let serverSignature = OpenSSLLibrary.hmac(name, key: c.serverKey, data: authMessage) else { return nil }
    let proof = zip(clientKey, signature).map { $0 ^ $1 }
    return (withoutProof + b(",p=") + Base64.encode(proof), b("v=") + Base64.encode(serverSignature))
}

@Suite("SCRAM server") struct SCRAMServerTests {
    static func store(_ user: String, _ password: String, salt: String, _ algorithms: [SCRAMAlgorithm] = SCRAMAlgorithm.allCases) -> SCRAMCredentialStore {
        var s = SCRAMCredentialStore()
        for a in algorithms {
            if let c = SCRAMCredential.derive(a, password: b(password), salt: Base64.decode(b(salt)) ?? [], iterations: 4096,
                                              digests: OpenSSLLibrary.self) {
                s.set(b(user), c)
            }
        }
        return s
    }

    static func setup(_ store: SCRAMCredentialStore, serverNonce: String? = nil, binding: [UInt8]? = nil) -> SCRAMSetup {
        var setup = SCRAMSetup(digests: OpenSSLLibrary.self, credentials: .table(store))
        if let serverNonce { setup.serverNonce = { b(serverNonce) } }
        setup.channelBinding = binding
        return setup
    }

    @Test("RFC 5802 section 5: the SCRAM-SHA-1 example exchange")
    func rfc5802() throws {
        let creds = Self.store("user", "pencil", salt: "QSXCR+Q6sek8bf92", [.sha1])
        var x = SCRAMExchange(.sha1, plus: false, plusOffered: false, setup: Self.setup(creds, serverNonce: "3rfcNHYJY1ZVvWVs7j"))
        let first = try x.clientFirst(b("n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL")).get()
        #expect(t(first) == "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096")
        let final = try x.clientFinal(b("c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=")).get()
        #expect(t(final.user) == "user")
        #expect(t(final.serverFinal) == "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=")
    }

    @Test("RFC 7677 section 3: the SCRAM-SHA-256 example exchange")
    func rfc7677() throws {
        let creds = Self.store("user", "pencil", salt: "W22ZaJ0SNY7soEsUEjb6gQ==", [.sha256])
        var x = SCRAMExchange(.sha256, plus: false, plusOffered: false,
                              setup: Self.setup(creds, serverNonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"))
        let first = try x.clientFirst(b("n,,n=user,r=rOprNGfwEbeRWgbNEkqO")).get()
        #expect(t(first) == "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
        let final = try x.clientFinal(b("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")).get()
        #expect(t(final.serverFinal) == "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
    }

    @Test("wrong proof, unknown user (same-looking challenge), nonce and syntax errors are refused")
    func refusals() throws {
        let creds = Self.store("user", "pencil", salt: "W22ZaJ0SNY7soEsUEjb6gQ==")
        let setup = Self.setup(creds, serverNonce: "srv")
        var wrong = SCRAMExchange(.sha256, plus: false, plusOffered: false, setup: setup)
        let first = try wrong.clientFirst(b("n,,n=user,r=abc")).get()
        let bad = try #require(scramClientFinal(.sha256, password: "crayon", clientFirstBare: b("n=user,r=abc"), serverFirst: first, channel: b("n,,")))
        #expect(wrong.clientFinal(bad.message).failureValue == .refused("wrong proof"))

        var unknown = SCRAMExchange(.sha256, plus: false, plusOffered: false, setup: setup)
        let fake = try unknown.clientFirst(b("n,,n=nobody,r=abc")).get()
        #expect(t(fake).hasPrefix("r=abcsrv,s=") && t(fake).hasSuffix(",i=4096"))
        let guess = try #require(scramClientFinal(.sha256, password: "pencil", clientFirstBare: b("n=nobody,r=abc"), serverFirst: fake, channel: b("n,,")))
        #expect(unknown.clientFinal(guess.message).failureValue == .refused("unknown user"))
        // The same made-up salt every time, as for a real user.
        var again = SCRAMExchange(.sha256, plus: false, plusOffered: false, setup: setup)
        #expect(try again.clientFirst(b("n,,n=nobody,r=abc")).get() == fake)

        var nonce = SCRAMExchange(.sha256, plus: false, plusOffered: false, setup: setup)
        _ = try nonce.clientFirst(b("n,,n=user,r=abc")).get()
        #expect(nonce.clientFinal(b("c=biws,r=abcXXX,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")).failureValue == .refused("nonce mismatch"))

        var syntax = SCRAMExchange(.sha256, plus: false, plusOffered: false, setup: setup)
        #expect(syntax.clientFirst(b("x,,n=user,r=abc")).failureValue == .malformed("bad channel binding flag"))
        #expect(syntax.clientFirst(b("n,,r=abc")).failureValue == .malformed("bad client-first-message"))
        #expect(syntax.clientFirst(b("n,,n=us=ZZer,r=abc")).failureValue == .malformed("bad client-first-message"))
        #expect(syntax.clientFirst(b("n,a=other,n=user,r=abc")).failureValue == .refused("authorization identity differs from the user"))
        // "=2C" and "=3D" decode in the name; a matching authzid is fine.
        var escaped = SCRAMExchange(.sha256, plus: false, plusOffered: false, setup: setup)
        _ = try escaped.clientFirst(b("n,a=a=2Cb=3Dc,n=a=2Cb=3Dc,r=abc")).get()
        #expect(t(escaped.userName) == "a,b=c")
    }

    @Test("-PLUS: p=<type> with matching binding data succeeds; mismatches, wrong type and downgrade 'y' fail")
    func channelBinding() throws {
        let creds = Self.store("user", "pencil", salt: "W22ZaJ0SNY7soEsUEjb6gQ==")
        let cb: [UInt8] = Array(0..<32)
        var setup = Self.setup(creds, binding: cb)
        setup.bindingType = "tls-exporter"
        var plus = SCRAMExchange(.sha256, plus: true, plusOffered: true, setup: setup)
        let header = b("p=tls-exporter,,")
        let first = try plus.clientFirst(header + b("n=user,r=nonce1")).get()
        let good = try #require(scramClientFinal(.sha256, password: "pencil", clientFirstBare: b("n=user,r=nonce1"), serverFirst: first, channel: header + cb))
        let result = try plus.clientFinal(good.message).get()
        #expect(result.serverFinal == good.serverFinal)

        var other = SCRAMExchange(.sha256, plus: true, plusOffered: true, setup: setup)
        let first2 = try other.clientFirst(header + b("n=user,r=nonce2")).get()
        let forged = try #require(scramClientFinal(.sha256, password: "pencil", clientFirstBare: b("n=user,r=nonce2"), serverFirst: first2, channel: header + [UInt8](repeating: 7, count: 32)))
        #expect(other.clientFinal(forged.message).failureValue == .refused("channel binding mismatch"))

        var type = SCRAMExchange(.sha256, plus: true, plusOffered: true, setup: setup)
        #expect(type.clientFirst(b("p=tls-unique,,n=user,r=x")).failureValue == .refused("channel binding type tls-unique unsupported"))
        var downgrade = SCRAMExchange(.sha256, plus: false, plusOffered: true, setup: setup)
        #expect(downgrade.clientFirst(b("y,,n=user,r=x")).failureValue == .refused("channel binding downgrade"))
        var noFlag = SCRAMExchange(.sha256, plus: true, plusOffered: true, setup: setup)
        #expect(noFlag.clientFirst(b("n,,n=user,r=x")).failureValue == .refused("SCRAM-PLUS without channel binding"))
    }

    @Test("credential file: render and parse round-trip, users with colons, malformed lines")
    func credentialFile() throws {
        var s = Self.store("user", "pencil", salt: "W22ZaJ0SNY7soEsUEjb6gQ==")
        if let c = SCRAMCredential.derive(.sha256, password: b("x"), salt: [1, 2, 3], iterations: 10, digests: OpenSSLLibrary.self) {
            s.set(b("a:b@example.com"), c)
        }
        let text = s.render()
        #expect(t(text).split(separator: "\n").count == 3)
        #expect(t(text).hasPrefix("user:SCRAM-SHA-1:4096:W22ZaJ0SNY7soEsUEjb6gQ==:"))
        let parsed = try SCRAMCredentialStore.parse(b("# comment\n\n") + text).get()
        #expect(parsed == s)
        #expect(parsed.lookup(b("a:b@example.com"), .sha256)?.iterations == 10)
        #expect(parsed.lookup(b("a:b@example.com"), .sha1) == nil)
        #expect(!t(text).contains("pencil"))
        #expect(SCRAMCredentialStore.parse(b("u:SCRAM-MD5:1:AA==:AA==:AA==\n")).failureValue == SCRAMFileError("line 1: malformed entry"))
        #expect(SCRAMCredentialStore.parse(b("\nu:SCRAM-SHA-1:1:AA==\n")).failureValue == SCRAMFileError("line 2: expected 6 fields"))
    }

    func session(_ env: [(String, String)] = [], binding: [UInt8]? = nil) -> SMTPSession {
        let box = Sandbox()
        box.write("control/me", "mx.test\n")
        box.write("control/rcpthosts", "example.com\n")
        let controls = SMTPControls.load(Environment([("CONTROLDIR", box.at("control")), ("SYSCONFDIR", box.path)]))
        let settings = SMTPSettings.make(Environment([("TCPREMOTEIP", "192.0.2.9")] + env), controls: controls, authHostname: "mx.test")
        var s = SMTPSession(settings: settings, controls: controls)
        s.scram = Self.setup(Self.store("user", "pencil", salt: "W22ZaJ0SNY7soEsUEjb6gQ=="), serverNonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", binding: binding)
        return s
    }

    func say(_ s: inout SMTPSession, _ line: String) -> String { t(s.command(b(line)).reply) }
    func say64(_ s: inout SMTPSession, _ line: String) -> String { t(s.command(Base64.encode(b(line))).reply) }
    func decoded(_ reply: String) -> String { t(Base64.decode(b(String(reply.dropFirst(4)))) ?? []) }

    @Test("SMTP: EHLO offers SCRAM (PLUS only with binding, DISABLE_SCRAM_* honoured); the RFC 7677 dialogue ends in 235 and relays")
    func smtpDialogue() {
        var s = session()
        _ = s.greeting()
        let ehlo = say(&s, "EHLO c")
        #expect(ehlo.contains(" SCRAM-SHA-1 SCRAM-SHA-256\r\n") && !ehlo.contains("PLUS"), "\(ehlo)")
        #expect(say(&s, "AUTH SCRAM-SHA-256-PLUS") == "504 auth type unimplemented (#5.5.1)\r\n")
        #expect(say(&s, "AUTH SCRAM-SHA-256") == "334 \r\n")
        let first = say64(&s, "n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
        #expect(decoded(first) == "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
        let final = say64(&s, "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
        #expect(decoded(final) == "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
        #expect(!s.isAuthenticated)
        #expect(say(&s, "") == "235 ok, go ahead (#2.0.0)\r\n")
        #expect(s.authenticatedUser == b("user") && s.authenticatedMechanism == .scramSHA256)
        _ = say(&s, "MAIL FROM:<a@b.org>")
        #expect(say(&s, "RCPT TO:<x@elsewhere.org>") == "250 ok\r\n")

        var wrong = session()
        _ = wrong.greeting(); _ = say(&wrong, "EHLO c")
        let challenge = say(&wrong, "AUTH SCRAM-SHA-1 " + t(Base64.encode(b("n,,n=user,r=abc"))))
        #expect(challenge.hasPrefix("334 "))
        let proof = scramClientFinal(.sha1, password: "crayon", clientFirstBare: b("n=user,r=abc"),
                                     serverFirst: b(decoded(challenge)), channel: b("n,,"))?.message ?? []
        #expect(t(wrong.command(Base64.encode(proof)).reply) == "535 authorization failure (#5.7.8)\r\n")
        #expect(wrong.logLines.contains("AUTH SCRAM-SHA-1 user <user> failed: wrong proof"))
        #expect(say(&wrong, "AUTH SCRAM-SHA-1 !!!") == "501 malformed auth input (#5.5.4)\r\n")
        #expect(say(&wrong, "AUTH SCRAM-SHA-1") == "334 \r\n")
        #expect(say(&wrong, "*") == "501 auth exchange cancelled (#5.0.0)\r\n")

        var plus = session([("DISABLE_SCRAM_SHA1", ""), ("DISABLE_SCRAM_SHA1_PLUS", "")], binding: [1, 2, 3])
        _ = plus.greeting()
        let ehlo2 = say(&plus, "EHLO c")
        #expect(ehlo2.contains(" SCRAM-SHA-256 SCRAM-SHA-256-PLUS\r\n") && !ehlo2.contains("SCRAM-SHA-1"), "\(ehlo2)")

        var none = session()
        none.scram = nil
        _ = none.greeting()
        #expect(!say(&none, "EHLO c").contains("SCRAM"))
    }
}

extension Result {
    var failureValue: Failure? {
        if case .failure(let f) = self { return f }
        return nil
    }
}
