// SMTP AUTH as a client: PLAIN, LOGIN, XOAUTH2, CRAM-*, DIGEST-MD5 and SCRAM(-PLUS), chosen
// as the reference chooses, with its report texts for every refusal.
import Core
import Glibc

extension RemoteDelivery {
    /// Authenticates with the mechanism AUTH_SMTP names, or the strongest offered one this
    /// client knows. Returns the user for `MAIL FROM … AUTH=`, nil when no
    /// mechanism fits (reported, then the session goes on unauthenticated).
    func authenticate(_ c: SMTPConnection, mechanisms: [String], user: [UInt8], password: [UInt8],
                      sender: [UInt8]) throws -> [UInt8]? {
        let env = settings.environment
        let plainDisabled = (env.contains("SECURE_AUTH") && !c.isTLS) || env.contains("DISABLE_AUTH_PLAIN")
        let loginDisabled = (env.contains("SECURE_AUTH") && !c.isTLS) || env.contains("DISABLE_AUTH_LOGIN")
        let wanted = settings.authMethod.uppercased()
        let digests = tls as? any TLSDigests.Type
        // The reference's order of preference, restricted to what this client speaks.
        var known: [String] = []
        let binding = c.isTLS ? c.channel.channelBinding : nil
        if digests != nil {
            for (m, variable) in RemoteDelivery.scramMethods where !env.contains(variable) {
                if m.hasSuffix("-PLUS") && binding == nil { continue }
                known.append(m)
            }
            if !env.contains("DISABLE_DIGEST_MD5") { known.append("DIGEST-MD5") }
            for (m, variable) in RemoteDelivery.cramMethods where !env.contains(variable) { known.append(m) }
        }
        if !plainDisabled { known.append("PLAIN") }
        if !loginDisabled { known.append("LOGIN") }
        if !((env.contains("SECURE_AUTH") && !c.isTLS) || env.contains("DISABLE_AUTH_OAUTH2")) { known.append("XOAUTH2") }
        let method: String?
        if wanted.isEmpty {
            method = known.first { mechanisms.contains($0) }
        } else {
            let speakable = ["PLAIN", "LOGIN", "XOAUTH2"]
                + (digests != nil ? (RemoteDelivery.cramMethods + RemoteDelivery.scramMethods + [("DIGEST-MD5", "")]).map { $0.0 }
                    .filter { !$0.hasSuffix("-PLUS") || binding != nil } : [])
            method = mechanisms.contains(wanted) && speakable.contains(wanted) ? wanted : nil
        }
        guard let method else {
            output += RemoteReport.noAuthMethod.encoded
            return nil
        }
        if method == "XOAUTH2" {
            // The password is the bearer token; a refusal comes as a 334 with a JSON
            // error, answered with an empty line before the final reply.
            let payload = Array("user=".utf8) + user + Array("\u{1}auth=Bearer ".utf8) + password + [1, 1]
            try send(c, Array("AUTH XOAUTH2 ".utf8) + Base64.encode(payload) + [13, 10])
            var r = try reply(c)
            if r.code == 235 { return user }
            var detail: [UInt8] = []
            if r.code == 334 {
                detail = r.lines.first.flatMap { Base64.decodeLeniently(Array($0.dropFirst(4))) } ?? []
                try send(c, [13, 10])
                r = try reply(c)
            }
            throw authFailure(c, r, method, oauthError: detail)
        }
        if method.hasPrefix("SCRAM-"), let digests {
            try scram(c, method: method, user: user, password: password, digests: digests, binding: binding)
            return user
        }
        try send(c, "AUTH \(method)\r\n")
        var r = try reply(c)
        guard r.code == 334 else {
            throw quit(c, .deferral, "Connected to ", [" but authentication was rejected (AUTH \(method))"], reply: r.text)
        }
        if method == "DIGEST-MD5", let digests {
            try digestMD5(c, challengeReply: r, user: user, password: password, digests: digests)
            return user
        }
        if method == "PLAIN" {
            try send(c, Base64.encode(sender + [0] + user + [0] + password) + [13, 10])
        } else if method == "LOGIN" {
            try send(c, Base64.encode(user) + [13, 10])
            r = try reply(c)
            guard r.code == 334 else {
                throw quit(c, .deferral, "Connected to ", [" but authentication was rejected (username)"], reply: r.text)
            }
            try send(c, Base64.encode(password) + [13, 10])
        } else {
            // CRAM-*: the challenge follows "334 "; answer "user hex(HMAC(password, challenge))".
            let encoded = r.lines.first.map { Array($0.dropFirst(4)) } ?? []
            guard !encoded.isEmpty else { throw quit(c, .deferral, "Connected to ", [" but got no challenge"], reply: r.text) }
            guard let challenge = Base64.decodeLeniently(encoded) else {
                throw quit(c, .deferral, "Connected to ", [" but unable to base64decode challenge"], reply: r.text)
            }
            let algorithm = RemoteDelivery.cramDigest(method)
            guard let digests, let mac = digests.hmac(algorithm, key: password, data: challenge) else {
                throw quit(c, .deferral, "Connected to ", [" but unable to compute \(method) digest"], reply: r.text)
            }
            let hex = Array("0123456789abcdef".utf8)
            let answer = user + [32] + mac.flatMap { [hex[Int($0 >> 4)], hex[Int($0 & 15)]] }
            try send(c, Base64.encode(answer) + [13, 10])
        }
        r = try reply(c)
        guard r.code == 235 else { throw authFailure(c, r, method) }
        return user
    }

    /// SCRAM mechanisms, strongest first; -PLUS ones only inside TLS.
    static let scramMethods: [(String, String)] = [
        ("SCRAM-SHA-256-PLUS", "DISABLE_SCRAM_SHA256_PLUS"), ("SCRAM-SHA-256", "DISABLE_SCRAM_SHA256"),
        ("SCRAM-SHA-1-PLUS", "DISABLE_SCRAM_SHA1_PLUS"), ("SCRAM-SHA-1", "DISABLE_SCRAM_SHA1"),
    ]

    /// RFC 5802 SCRAM: client-first as the initial response, the proof in answer to the
    /// server's challenge, then the server's signature checked. -PLUS binds the TLS
    /// session (tls-exporter under TLS 1.3, tls-unique before); without it inside TLS the
    /// client says it could have bound ("y").
    fileprivate func scram(_ c: SMTPConnection, method: String, user: [UInt8], password: [UInt8],
                       digests: any TLSDigests.Type, binding: [UInt8]?) throws {
        let algorithm = method.hasPrefix("SCRAM-SHA-1") ? "sha1" : "sha256"
        let plus = method.hasSuffix("-PLUS")
        let bindingType = c.channel.protocolVersion == "TLSv1.3" ? "tls-exporter" : "tls-unique"
        let gs2Header = Array((plus ? "p=\(bindingType),," : binding != nil ? "y,," : "n,,").utf8)
        let channelData = gs2Header + (plus ? binding ?? [] : [])
        func fail(_ why: String, _ r: SMTPReply) -> RemoteFinish {
            quit(c, .deferral, "Connected to ", [" but \(why) (AUTH \(method))"], reply: r.text)
        }
        var generator = SystemRandomNumberGenerator()
        let nonceBytes = (0..<18).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let clientNonce = Base64.encode(nonceBytes)
        // SASLprep is not applied; "," and "=" in the name are escaped as the RFC asks.
        var name: [UInt8] = []
        for b in user {
            if b == UInt8(ascii: ",") { name += Array("=2C".utf8) } else if b == UInt8(ascii: "=") { name += Array("=3D".utf8) } else { name.append(b) }
        }
        let clientFirstBare = Array("n=".utf8) + name + Array(",r=".utf8) + clientNonce
        try send(c, Array("AUTH \(method) ".utf8) + Base64.encode(gs2Header + clientFirstBare) + [13, 10])
        var r = try reply(c)
        guard r.code == 334 else { throw authFailure(c, r, method) }
        guard let serverFirst = r.lines.first.flatMap({ Base64.decodeLeniently(Array($0.dropFirst(4))) }) else {
            throw fail("unable to base64decode challenge", r)
        }
        var fields: [UInt8: [UInt8]] = [:]
        for part in serverFirst.split(separator: UInt8(ascii: ",")) where part.count >= 2 && part[part.startIndex + 1] == UInt8(ascii: "=") {
            fields[part[part.startIndex]] = Array(part.dropFirst(2))
        }
        guard let nonce = fields[UInt8(ascii: "r")], nonce.starts(with: clientNonce),
              let saltText = fields[UInt8(ascii: "s")], let salt = Base64.decodeLeniently(saltText),
              let iterText = fields[UInt8(ascii: "i")], let iterations = Int(String(decoding: iterText, as: UTF8.self)),
              iterations > 0, iterations <= 10_000_000 else {
            throw fail("got an unusable SCRAM challenge", r)
        }
        let clientFinalBare = Array("c=".utf8) + Base64.encode(channelData) + Array(",r=".utf8) + nonce
        let authMessage = clientFirstBare + [UInt8(ascii: ",")] + serverFirst + [UInt8(ascii: ",")] + clientFinalBare
        guard let salted = digests.pbkdf2(algorithm, password: password, salt: salt, iterations: iterations,
                                          length: algorithm == "sha1" ? 20 : 32),
              let clientKey = digests.hmac(algorithm, key: salted, data: Array("Client Key".utf8)),
              let storedKey = digests.digest(algorithm, data: clientKey),
              let signature = digests.hmac(algorithm, key: storedKey, data: authMessage),
              let serverKey = digests.hmac(algorithm, key: salted, data: Array("Server Key".utf8)),
              let serverSignature = digests.hmac(algorithm, key: serverKey, data: authMessage) else {
            throw fail("unable to compute the SCRAM proof", r)
        }
        let proof = zip(clientKey, signature).map { $0 ^ $1 }
        try send(c, Base64.encode(clientFinalBare + Array(",p=".utf8) + Base64.encode(proof)) + [13, 10])
        r = try reply(c)
        if r.code == 334 {
            let final = r.lines.first.flatMap { Base64.decodeLeniently(Array($0.dropFirst(4))) } ?? []
            guard final == Array("v=".utf8) + Base64.encode(serverSignature) else {
                _ = c.send("*\r\n")
                throw fail("the server's SCRAM signature did not verify", r)
            }
            try send(c, [13, 10])
            r = try reply(c)
        }
        guard r.code == 235 else { throw authFailure(c, r, method) }
    }

    /// RFC 2831 DIGEST-MD5 (qop auth, realm from control/realm, digest-uri smtp/<ip>).
    fileprivate func digestMD5(_ c: SMTPConnection, challengeReply: SMTPReply, user: [UInt8], password: [UInt8],
                           digests: any TLSDigests.Type) throws {
        var r = challengeReply
        guard let encoded = r.lines.first.map({ Array($0.dropFirst(4)) }), !encoded.isEmpty else {
            throw quit(c, .deferral, "Connected to ", [" but got no challenge"], reply: r.text)
        }
        guard let challenge = Base64.decodeLeniently(encoded) else {
            throw quit(c, .deferral, "Connected to ", [" but unable to base64decode challenge"], reply: r.text)
        }
        guard let nonce = RemoteDelivery.directive("nonce", in: challenge) else {
            throw quit(c, .deferral, "Connected to ", [" but got no response= in challenge"], reply: r.text)
        }
        let realm = Array(((try? ControlFiles(directory: settings.controlDirectory).value("realm").get()) ?? nil ?? "").utf8)
        var generator = SystemRandomNumberGenerator()
        let hex = Array("0123456789abcdef".utf8)
        let cnonce = (0..<32).map { _ in hex[Int.random(in: 0..<16, using: &generator)] }
        let uri = Array("smtp/\(partner)".utf8)
        func md5(_ b: [UInt8]) -> [UInt8]? { digests.digest("md5", data: b) }
        func hexed(_ b: [UInt8]) -> [UInt8] { b.flatMap { [hex[Int($0 >> 4)], hex[Int($0 & 15)]] } }
        let colon: [UInt8] = [58]
        guard let secret = md5(user + colon + realm + colon + password),
              let ha1 = md5(secret + colon + nonce + colon + cnonce),
              let ha2 = md5(Array("AUTHENTICATE:".utf8) + uri),
              let response = md5(hexed(ha1) + colon + nonce + Array(":00000001:".utf8) + cnonce + Array(":auth:".utf8) + hexed(ha2)) else {
            throw quit(c, .deferral, "Connected to ", [" but unable to generate response"], reply: r.text)
        }
        var answer = Array("cnonce=\"".utf8) + cnonce + Array("\",digest-uri=\"".utf8) + uri
        answer += Array("\",nc=00000001,nonce=\"".utf8) + nonce + Array("\",qop=\"auth\",realm=\"".utf8) + realm
        answer += Array("\",response=".utf8) + hexed(response) + Array(",username=\"".utf8) + user + Array("\"".utf8)
        try send(c, Base64.encode(answer) + [13, 10])
        r = try reply(c)
        guard r.code == 334 else {
            throw quit(c, .deferral, "Connected to ", [" but authentication was rejected (username+digest)"], reply: r.text)
        }
        try send(c, [13, 10])
        r = try reply(c)
        guard r.code == 235 else { throw authFailure(c, r, "DIGEST-MD5") }
    }

    /// The value of `name=value` or `name="value"` in a DIGEST-MD5 challenge.
    static func directive(_ name: String, in challenge: [UInt8]) -> [UInt8]? {
        let key = Array("\(name)=".utf8)
        var i = 0
        while i + key.count <= challenge.count {
            let atStart = i == 0 || challenge[i - 1] == UInt8(ascii: ",") || challenge[i - 1] == 32
            if atStart && challenge[i..<(i + key.count)].elementsEqual(key) {
                var rest = challenge[(i + key.count)...]
                if rest.first == UInt8(ascii: "\"") {
                    rest = rest.dropFirst()
                    return Array(rest.prefix { $0 != UInt8(ascii: "\"") })
                }
                return Array(rest.prefix { $0 != UInt8(ascii: ",") })
            }
            i += 1
        }
        return nil
    }

    /// CRAM mechanisms, strongest first as the reference orders them, with the variable
    /// that turns each off.
    static let cramMethods: [(String, String)] = [
        ("CRAM-RIPEMD", "DISABLE_CRAM_RIPEMD"), ("CRAM-SHA512", "DISABLE_CRAM_SHA512"),
        ("CRAM-SHA384", "DISABLE_CRAM_SHA384"), ("CRAM-SHA256", "DISABLE_CRAM_SHA256"),
        ("CRAM-SHA224", "DISABLE_CRAM_SHA224"), ("CRAM-SHA1", "DISABLE_CRAM_SHA1"), ("CRAM-MD5", "DISABLE_CRAM_MD5"),
    ]

    static func cramDigest(_ method: String) -> String {
        switch method {
        case "CRAM-RIPEMD": return "ripemd160"
        case "CRAM-MD5": return "md5"
        default: return String(method.dropFirst(5)).lowercased()
        }
    }

    fileprivate func authFailure(_ c: SMTPConnection, _ r: SMTPReply, _ method: String, oauthError: [UInt8] = []) -> RemoteFinish {
        let m = "AUTH \(method)"
        switch r.code {
        case 432: return quit(c, .deferral, "Connected to ", [" but a password transition is needed (", m, ") (#4.7.12)."], reply: r.text)
        case 454: return quit(c, .deferral, "Connected to ", [" but got temporary authentication failure (", m, ") (#4.7.0)."], reply: r.text)
        case 500: return quit(c, .failure, "Connected to ", [" but authentication Exchange line is too long (", m, ") (#5.5.6)."], reply: r.text)
        case 530: return quit(c, .failure, "Connected to ", [" but authentication required (", m, ") (#5.7.0)."], reply: r.text)
        case 534: return quit(c, .failure, "Connected to ", [" but authentication mechanism is too weak (", m, ") (#5.7.9)."], reply: r.text)
        case 535 where !oauthError.isEmpty:
            let detail = String(decoding: RemoteReport.safe(oauthError), as: UTF8.self)
            return quit(c, .failure, "Connected to ", [" but authentication credentials invalid (", m, ") oauth2 error [", detail, "]", ") (#5.7.8)."], reply: r.text)
        case 535: return quit(c, .failure, "Connected to ", [" but authentication credentials invalid (", m, ") (#5.7.8)."], reply: r.text)
        case 538: return quit(c, .failure, "Connected to ", [" but encryption required for requested authentication mechanism ", m, ") (#5.7.11)."], reply: r.text)
        default: return quit(c, .deferral, "Connected to ", [" but authentication was rejected ", m, ") (#4.7.0)"], reply: r.text)
        }
    }
}
