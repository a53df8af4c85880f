// SCRAM in qmail-smtpd, end to end: credentials made by scram-passwd, the server under our
// tcpserver (the base binary, which hands over to indimail-tls for the digests), clients:
// a small Python SCRAM client (SHA-1, SHA-256, -PLUS with tls-unique) and our qmail-remote
// (SHA-256, and -PLUS with tls-exporter over STARTTLS).
import Core
import Glibc
import Testing

@Suite("qmail-smtpd SCRAM") struct QmailSmtpdSCRAMTests {
    static let scramClient = """
    import base64, hashlib, hmac, os, smtplib, ssl, sys
    port, mech, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4].encode()
    tls = len(sys.argv) > 5
    def out(*a): print(*a, flush=True)
    h = hashlib.sha1 if mech.startswith('SCRAM-SHA-1') else hashlib.sha256
    s = smtplib.SMTP('127.0.0.1', port, timeout=10)
    s.ehlo('client.test')
    if tls:
        ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
        s.starttls(context=ctx); s.ehlo('client.test')
    out('offered', s.esmtp_features.get('auth', '').strip())
    if mech.endswith('-PLUS'):
        header = b'p=tls-unique,,'
        cb = s.sock.get_channel_binding('tls-unique') if tls else b''
        if sys.argv[-1] == 'forge': cb = bytes(len(cb))
        cbind = header + cb
    else:
        header = b'n,,'; cbind = header
    cnonce = base64.b64encode(os.urandom(18))
    first_bare = b'n=' + user.encode() + b',r=' + cnonce
    code, resp = s.docmd('AUTH', mech + ' ' + base64.b64encode(header + first_bare).decode())
    if code != 334:
        out('auth', code); sys.exit(0)
    server_first = base64.b64decode(resp)
    f = dict(kv.split(b'=', 1) for kv in server_first.split(b','))
    salted = hashlib.pbkdf2_hmac(h().name, password, base64.b64decode(f[b's']), int(f[b'i']))
    ckey = hmac.new(salted, b'Client Key', h).digest()
    final_bare = b'c=' + base64.b64encode(cbind) + b',r=' + f[b'r']
    auth_msg = first_bare + b',' + server_first + b',' + final_bare
    sig = hmac.new(h(ckey).digest(), auth_msg, h).digest()
    proof = bytes(a ^ b for a, b in zip(ckey, sig))
    code, resp = s.docmd(base64.b64encode(final_bare + b',p=' + base64.b64encode(proof)).decode())
    if code != 334:
        out('auth', code); sys.exit(0)
    skey = hmac.new(salted, b'Server Key', h).digest()
    out('verified', base64.b64decode(resp) == b'v=' + base64.b64encode(hmac.new(skey, auth_msg, h).digest()))
    code, _ = s.docmd('')
    out('auth', code)
    s.mail('a@b.org'); out('relay', s.rcpt('x@elsewhere.org')[0])
    code, _ = s.data(b'Subject: scram\\r\\n\\r\\nhi\\r\\n'); out('data', code)
    s.quit()
    """

    /// A fixture with joe/secret in control/scram (both mechanisms), written by scram-passwd.
    static func fixture(controls: [String: String] = [:]) -> SmtpdFixture? {
        let f = SmtpdFixture(tls: true, controls: controls)
        guard f.certs != nil else { return nil }
        let r = run([Build.indimailTLS, "scram-passwd", "-f", f.control + "/scram", "joe"], stdin: Array("secret\n".utf8))
        guard r.exitCode == 0 else { return nil }
        return f
    }

    func python(_ f: SmtpdFixture, _ args: [String]) -> [String] {
        let script = f.box.write("scram.py", Self.scramClient)
        guard let port = f.server?.port else { return ["no server"] }
        let r = run(["python3", script, String(port)] + args, timeout: 30)
        return r.out.split(separator: "\n").map(String.init) + (r.exitCode == 0 ? [] : ["exit \(r.exitCode ?? -1): \(r.err)"])
    }

    @Test("scram-passwd writes salted keys only, replaces one mechanism, deletes users")
    func scramPasswd() throws {
        let box = Sandbox()
        let file = box.at("scram")
        let add = run([Build.indimailTLS, "scram-passwd", "-f", file, "joe"], stdin: Array("secret\n".utf8))
        #expect(add.exitCode == 0, "\(add.err)")
        _ = run([Build.indimailTLS, "scram-passwd", "-f", file, "ann@example.com"], stdin: Array("pw".utf8))
        let before = String(decoding: contents(file) ?? [], as: UTF8.self).split(separator: "\n").map(String.init)
        #expect(before.count == 4 && !before.joined().contains("secret"))
        #expect(before.first?.hasPrefix("joe:SCRAM-SHA-1:4096:") == true && before.dropFirst().first?.hasPrefix("joe:SCRAM-SHA-256:4096:") == true)
        let update = run([Build.indimailTLS, "scram-passwd", "-f", file, "-m", "SHA-256", "-i", "5000", "joe"], stdin: Array("new\n".utf8))
        #expect(update.exitCode == 0)
        let after = String(decoding: contents(file) ?? [], as: UTF8.self).split(separator: "\n").map(String.init)
        #expect(after.count == 4 && after.first == before.first && after.dropFirst().first?.hasPrefix("joe:SCRAM-SHA-256:5000:") == true)
        #expect(run([Build.indimailTLS, "scram-passwd", "-f", file, "-d", "joe"]).exitCode == 0)
        let deleted = String(decoding: contents(file) ?? [], as: UTF8.self).split(separator: "\n")
        #expect(deleted.count == 2 && deleted.allSatisfy { $0.hasPrefix("ann@example.com:") })
        let missing = run([Build.indimailTLS, "scram-passwd", "-f", file, "-d", "joe"])
        #expect(missing.exitCode == 100 && missing.err.contains("no such user"))
        #expect(run([Build.indimailTLS, "scram-passwd", "-f", file, "joe"], stdin: []).exitCode == 100)
        #expect(run([Build.indimailTLS, "scram-passwd", "-m", "MD5", "-f", file, "joe"], stdin: Array("x\n".utf8)).exitCode == 100)
    }

    @Test("Python SCRAM-SHA-256 and SCRAM-SHA-1 authenticate and relay; a wrong password gets 535; user in the log and Received")
    func pythonClient() throws {
        let f = try #require(Self.fixture())
        try #require(f.start([:], arguments: ["mx.test", f.checkpassword, "/bin/false"]) != nil)
        let sha256 = python(f, ["SCRAM-SHA-256", "joe", "secret"])
        #expect(sha256.first == "offered LOGIN PLAIN CRAM-MD5 CRAM-SHA1 CRAM-SHA224 CRAM-SHA256 CRAM-SHA384 CRAM-SHA512 CRAM-RIPEMD SCRAM-SHA-1 SCRAM-SHA-256", "\(sha256)")
        #expect(sha256.dropFirst() == ["verified True", "auth 235", "relay 250", "data 250"], "\(sha256)")
        let sha1 = python(f, ["SCRAM-SHA-1", "joe", "secret"])
        #expect(sha1.dropFirst() == ["verified True", "auth 235", "relay 250", "data 250"], "\(sha1)")
        #expect(python(f, ["SCRAM-SHA-256", "joe", "wrong"]).dropFirst() == ["auth 535"])
        #expect(python(f, ["SCRAM-SHA-1", "nobody", "secret"]).dropFirst() == ["auth 535"])
        #expect(python(f, ["SCRAM-SHA-256-PLUS", "joe", "secret"]).dropFirst() == ["auth 504"])
        let log = f.server?.log ?? []
        #expect(log.contains { $0.hasSuffix("AUTH SCRAM-SHA-256 user <joe> ok") }, "\(log)")
        #expect(log.contains { $0.hasSuffix("AUTH SCRAM-SHA-256 user <joe> failed: wrong proof") }, "\(log)")
        #expect(log.contains { $0.contains("RCPT <x@elsewhere.org> AUTH <joe: AUTH SCRAM-SHA-1>") }, "\(log)")
        let messages = f.queued.map(\.message)
        #expect(messages.count == 2 && messages.allSatisfy { $0.contains("with ESMTPA") })
        // DISABLE_SCRAM_SHA1 removes the mechanism.
        f.server = nil
        try #require(f.start(["DISABLE_SCRAM_SHA1": ""], arguments: ["mx.test", f.checkpassword, "/bin/false"]) != nil)
        let disabled = python(f, ["SCRAM-SHA-1", "joe", "secret"])
        #expect(disabled.first?.hasSuffix("CRAM-RIPEMD SCRAM-SHA-256") == true && disabled.dropFirst() == ["auth 504"], "\(disabled)")
    }

    @Test("a cdb credential file named by SCRAM_USERS: scram-passwd updates it, qmail-smtpd looks users up in it")
    func cdbFile() throws {
        let f = SmtpdFixture(tls: true)
        let cdb = f.box.at("scram.cdb")
        for (user, password) in [("joe", "secret"), ("ann", "pw"), ("old", "x")] {
            let r = run([Build.indimailTLS, "scram-passwd", "-f", cdb, user], stdin: Array((password + "\n").utf8))
            #expect(r.exitCode == 0, "\(r.err)")
        }
        #expect(run([Build.indimailTLS, "scram-passwd", "-f", cdb, "-d", "old"]).exitCode == 0)
        try #require(f.start(["SCRAM_USERS": cdb], arguments: ["mx.test", f.checkpassword, "/bin/false"]) != nil)
        #expect(python(f, ["SCRAM-SHA-256", "joe", "secret"]).dropFirst() == ["verified True", "auth 235", "relay 250", "data 250"])
        #expect(python(f, ["SCRAM-SHA-1", "ann", "pw"]).dropFirst() == ["verified True", "auth 235", "relay 250", "data 250"])
        #expect(python(f, ["SCRAM-SHA-1", "old", "x"]).dropFirst() == ["auth 535"])
    }

    @Test("SCRAM-SHA-256-PLUS over STARTTLS (TLS 1.2, tls-unique) from Python; a forged binding fails")
    func pythonPlus() throws {
        let f = try #require(Self.fixture(controls: ["tlsservermethod": "TLSv1_2\n"]))
        try #require(f.start(["STARTTLS": ""], arguments: ["mx.test", f.checkpassword, "/bin/false"]) != nil)
        let plus = python(f, ["SCRAM-SHA-256-PLUS", "joe", "secret", "tls"])
        #expect(plus.first?.hasSuffix("SCRAM-SHA-1 SCRAM-SHA-1-PLUS SCRAM-SHA-256 SCRAM-SHA-256-PLUS") == true, "\(plus)")
        #expect(plus.dropFirst() == ["verified True", "auth 235", "relay 250", "data 250"], "\(plus)")
        // Inside TLS a client that does not bind ("n,,") still authenticates.
        let plain = python(f, ["SCRAM-SHA-1", "joe", "secret", "tls"])
        #expect(plain.dropFirst() == ["verified True", "auth 235", "relay 250", "data 250"], "\(plain)")
        #expect(f.server?.log.contains { $0.hasSuffix("AUTH SCRAM-SHA-256-PLUS user <joe> ok") } == true)
        let forged = python(f, ["SCRAM-SHA-256-PLUS", "joe", "secret", "tls", "forge"])
        #expect(forged.dropFirst() == ["auth 535"], "\(forged)")
        #expect(f.server?.log.contains { $0.hasSuffix("AUTH SCRAM-SHA-256-PLUS user <joe> failed: channel binding mismatch") } == true)
    }

    @Test("our qmail-remote authenticates with SCRAM-SHA-256, and -PLUS (tls-exporter) over STARTTLS; wrong password 535")
    func qmailRemote() throws {
        let f = try #require(Self.fixture())
        try #require(f.start(["STARTTLS": ""], arguments: ["mx.test", f.checkpassword, "/bin/false"]) != nil)
        let port = try #require(f.server?.port)
        let r = RemoteFixture()
        r.control("smtproutes", "remote.test:127.0.0.1:\(port) joe secret\n")
        // No client certificate: qmail-remote stays in clear, SCRAM-SHA-256.
        let clear = r.remote(environment: ["AUTH_SMTP": ""])
        #expect(reports(clear).hasPrefix("r") && reports(clear).contains("accepted message"), "\(reports(clear))")
        // With one it does STARTTLS and binds the TLS 1.3 session.
        let certs = try #require(TestCertificates(in: r.box))
        r.box.write("etc/certs/clientcert.pem", contents(certs.client) ?? [])
        let bound = r.remote(environment: ["AUTH_SMTP": ""])
        #expect(reports(bound).hasPrefix("r") && reports(bound).contains("accepted message"), "\(reports(bound))")
        r.control("smtproutes", "remote.test:127.0.0.1:\(port) joe wrong\n")
        let wrong = r.remote(environment: ["AUTH_SMTP": ""])
        #expect(reports(wrong).contains("535 authorization failure"), "\(reports(wrong))")
        let log = f.server?.log ?? []
        #expect(log.contains { $0.hasSuffix("AUTH SCRAM-SHA-256 user <joe> ok") }, "\(log)")
        #expect(log.contains { $0.hasSuffix("AUTH SCRAM-SHA-256-PLUS user <joe> ok") }, "\(log)")
        #expect(f.queued.count == 2)
    }
}
