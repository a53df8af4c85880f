// qmail-smtpd under our tcpserver on 127.0.0.1 with a temp control dir and a real queue
// (queue-fix + qmail-queue), driven by Python's smtplib, raw sockets and openssl s_client:
// delivery, pipelining, limits, relay control, AUTH, STARTTLS/SMTPS and hostile input.
import Core
import Glibc
import Testing

/// One qmail-smtpd service: controls, queue, certificates, a checkpassword script.
final class SmtpdFixture {
    let box = Sandbox()
    let queue: String
    let control: String
    let certs: TestCertificates?
    let checkpassword: String
    let client: String
    var server: RunningServer?

    init(tls: Bool = false, controls: [String: String] = [:]) {
        queue = QueueTest.makeQueue(box)
        control = box.directory("control")
        _ = box.write("control/me", "mx.test\n")
        _ = box.write("control/rcpthosts", "example.com\n.sub.example.com\n")
        for (name, text) in controls { _ = box.write("control/" + name, text) }
        certs = tls ? TestCertificates(in: box) : nil
        checkpassword = box.write("checkpw", SmtpdFixture.checkpasswordScript, mode: 0o755)
        client = box.write("client.py", SmtpdFixture.clientScript)
    }

    var environment: [String: String] {
        var env = QueueTest.accounts
        env["CONTROLDIR"] = control
        env["SYSCONFDIR"] = box.path
        env["QUEUEDIR"] = queue
        env["CONFSPLIT"] = "3"
        env["BIGTODO"] = "0"
        env["QMAILQUEUE"] = Build.qmailQueue
        env["CERTDIR"] = certs?.directory ?? box.at("nocerts")
        env["NODNSCHECK"] = "1"   // no DNS here; the sender check has its own test
        return env
    }

    /// tcpserver (the base binary unless told) running qmail-smtpd in-process, or exec'd
    /// through env(1) when `exec` is set. `arguments` follow qmail-smtpd.
    func start(_ extra: [String: String] = [:], arguments: [String] = [], exec: Bool = false,
               binary: String = Build.indimail, rules: String? = nil, unset: [String] = [],
               serverOptions: [String] = []) -> RunningServer? {
        let link = box.at("bin/qmail-smtpd")
        if access(link, F_OK) != 0 { _ = box.commandLinks(["qmail-smtpd"], binary: binary) }
        var args = ["-H", "-R", "-l", "0"] + serverOptions
        if let rules {
            let cdb = box.at("tcp.smtp.cdb")
            _ = run([Build.indimail, "tcprules", cdb, cdb + ".tmp"], stdin: Array(rules.utf8))
            args += ["-x", cdb]
        }
        args += ["127.0.0.1", "0"] + (exec ? ["/usr/bin/env", Build.indimail, "qmail-smtpd"] : [link]) + arguments
        var env = environment
        for (k, v) in extra { env[k] = v }
        for name in unset { env.removeValue(forKey: name) }
        server = RunningServer(box, args, environment: env, binary: binary)
        return server
    }

    /// Runs a scenario of client.py against the server; its stdout lines.
    func client(_ scenario: String, _ arguments: [String] = [], port: UInt16? = nil) -> [String] {
        guard let port = port ?? server?.port else { return ["no server"] }
        let r = run(["python3", client, String(port), scenario] + arguments, timeout: 30)
        return r.out.split(separator: "\n").map(String.init) + (r.exitCode == 0 ? [] : ["exit \(r.exitCode ?? -1): \(r.err)"])
    }

    /// (envelope, message) of every queued message.
    var queued: [(envelope: String, message: String)] {
        QueueTest.messageFiles(queue).filter { $0.hasPrefix("todo/") }.map { todo in
            let id = Path.basename(todo)
            let envelope = String(decoding: contents(Path.join(queue, todo)) ?? [], as: UTF8.self)
            let mess = QueueTest.messageFiles(queue).first { $0.hasPrefix("mess/") && Path.basename($0) == id } ?? ""
            let message = String(decoding: contents(Path.join(queue, mess)) ?? [], as: UTF8.self)
            return (envelope, message)
        }
    }

    static let checkpasswordScript = """
    #!/usr/bin/env python3
    # Test checkpassword: joe/secret for LOGIN, PLAIN and CRAM-MD5; norelay/secret exits 3.
    import hashlib, hmac, os, sys
    data = b''
    while True:
        chunk = os.read(3, 4096)
        if not chunk: break
        data += chunk
    parts = data.split(b'\\0')
    user, secret, response, method = parts[0], parts[1], parts[2], parts[3]
    password = {b'joe': b'secret', b'norelay': b'secret'}.get(user)
    ok = False
    if password is not None:
        if method in (b'\\x01', b'\\x02'):
            ok = secret == password
        elif method == b'\\x03':
            ok = hmac.new(password, secret, hashlib.md5).hexdigest().encode() == response
    if ok:
        sys.exit(3 if user == b'norelay' else 0)
    os.execvp(sys.argv[1], sys.argv[1:])
    """

    static let clientScript = """
    import smtplib, socket, ssl, sys, time
    port, what = int(sys.argv[1]), sys.argv[2]
    args = sys.argv[3:]
    def out(*a): print(*a, flush=True)
    ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
    MSG = b'Subject: test\\r\\n\\r\\n.leading dot\\r\\n8bit \\xc3\\xa9\\r\\n'

    def send(s, rcpts=('u@example.com',), sender='a@b.org', msg=MSG, opts=()):
        code, _ = s.mail(sender, list(opts)); out('mail', code)
        for r in rcpts:
            code, _ = s.rcpt(r); out('rcpt', r, code)
        try:
            code, text = s.data(msg); out('data', code, text.decode())
        except smtplib.SMTPException as e:
            out('data-error', getattr(e, 'smtp_code', e))

    def raw(payload, wait=10):
        c = socket.create_connection(('127.0.0.1', port), timeout=wait)
        c.sendall(payload)
        data = b''
        try:
            while True:
                chunk = c.recv(65536)
                if not chunk: break
                data += chunk
        except socket.timeout:
            pass
        return data.decode('latin-1')

    if what == 'plain':
        s = smtplib.SMTP('127.0.0.1', port, timeout=10)
        code, banner = s.ehlo('client.test'); out('ehlo', code)
        out('features', ' '.join(sorted(s.esmtp_features)))
        send(s, opts=('BODY=8BITMIME',))
        s.quit()
    elif what == 'relay':
        s = smtplib.SMTP('127.0.0.1', port, timeout=10)
        s.ehlo('client.test')
        send(s, rcpts=('u@elsewhere.org', 'v@example.com'))
        s.quit()
    elif what == 'size':
        s = smtplib.SMTP('127.0.0.1', port, timeout=10)
        s.ehlo('client.test'); out('size', s.esmtp_features.get('size'))
        big = b'Subject: big\\r\\n\\r\\n' + b'x' * 300 + b'\\r\\n'
        send(s, msg=big, opts=('SIZE=%d' % len(big),))
        send(s, msg=big)
        send(s)
        s.quit()
    elif what == 'auth':
        for mech, user, password in [('PLAIN', 'joe', 'secret'), ('LOGIN', 'joe', 'secret'), ('CRAM-MD5', 'joe', 'secret'),
                                     ('PLAIN', 'joe', 'wrong'), ('CRAM-MD5', 'joe', 'wrong'), ('PLAIN', 'norelay', 'secret')]:
            s = smtplib.SMTP('127.0.0.1', port, timeout=10)
            s.ehlo('client.test')
            if mech == 'PLAIN' and user == 'joe' and password == 'secret': out('auth-offered', s.esmtp_features.get('auth', '').strip())
            s.user, s.password = user, password
            try:
                code, _ = s.auth(mech, getattr(s, 'auth_' + mech.lower().replace('-', '_')), initial_response_ok=(mech != 'LOGIN'))
            except smtplib.SMTPAuthenticationError as e:
                code = e.smtp_code
            out('auth', mech, user, password, code)
            if code == 235:
                s.mail('a@b.org'); out('relay', mech, user, s.rcpt('x@elsewhere.org')[0])
            s.quit()
    elif what == 'starttls':
        s = smtplib.SMTP('127.0.0.1', port, timeout=10)
        s.ehlo('client.test')
        out('before', 'starttls' in s.esmtp_features, s.esmtp_features.get('auth', '-').strip())
        code, _ = s.starttls(context=ctx); out('starttls', code)
        s.ehlo('client.test')
        out('after', 'starttls' in s.esmtp_features, s.esmtp_features.get('auth', '-').strip(), s.sock.version())
        send(s)
        s.quit()
    elif what == 'cipher':
        s = smtplib.SMTP('127.0.0.1', port, timeout=10)
        s.ehlo('client.test'); s.starttls(context=ctx)
        out('tls', s.sock.version(), s.sock.cipher()[0])
        s.quit()
    elif what == 'term':
        import os, signal
        c = socket.create_connection(('127.0.0.1', port), timeout=10)
        f = c.makefile('rb')
        out('greeting', f.readline().decode()[:3])
        with open('/proc/%s/task/%s/children' % (args[0], args[0])) as kids:
            for pid in kids.read().split():
                os.kill(int(pid), signal.SIGTERM)
        out('reply', f.readline().decode().strip())
    elif what == 'smtps':
        s = smtplib.SMTP_SSL('127.0.0.1', port, timeout=10, context=ctx)
        s.ehlo('client.test'); out('version', s.sock.version())
        send(s)
        s.quit()
    elif what == 'inject':
        c = socket.create_connection(('127.0.0.1', port), timeout=10)
        f = c.makefile('rb')
        f.readline(); c.sendall(b'EHLO x\\r\\n')
        while True:
            line = f.readline()
            if line[3:4] == b' ': break
        c.sendall(b'STARTTLS\\r\\nRSET\\r\\n')
        out('starttls', f.readline().decode().strip())
        t = ctx.wrap_socket(c, server_hostname='localhost')
        t.sendall(b'NOOP\\r\\n')
        out('first', t.recv(1000).decode().strip())
        t.sendall(b'QUIT\\r\\n')
    elif what == 'raw':
        out(raw(eval(args[0])).replace('\\r\\n', '|'))
    elif what == 'longline':
        c = socket.create_connection(('127.0.0.1', port), timeout=20)
        c.recv(1000)
        sent = 0
        try:
            while sent < 10 * 1024 * 1024:
                c.sendall(b'a' * 65536); sent += 65536
        except OSError as e:
            out('send stopped', type(e).__name__)
        c.settimeout(10)
        data = b''
        try:
            while True:
                chunk = c.recv(1000)
                if not chunk: break
                data += chunk
        except OSError:
            pass
        out('reply', data.decode().strip())
    """
}

@Suite("qmail-smtpd", .serialized)
struct QmailSmtpdTests {
    @Test("delivery through smtplib: queued envelope, Received line, dot-unstuffed 8-bit body, 250 ok <t> qp <pid>")
    func delivers() throws {
        let f = SmtpdFixture()
        try #require(f.start() != nil)
        let out = f.client("plain")
        #expect(out.contains("ehlo 250"), "\(out)")
        #expect(out.contains("features 8bitmime etrn help pipelining"), "\(out)")
        let data = out.first { $0.hasPrefix("data ") } ?? ""
        let words = data.split(separator: " ")
        #expect(words.count == 6 && words[1] == "250" && words[2] == "ok" && Int(words[3]) != nil && words[4] == "qp", "\(out)")
        let q = f.queued
        try #require(q.count == 1, "\(out)")
        #expect(q[0].envelope.hasSuffix("\0Fa@b.org\0Tu@example.com\0"))
        let lines = q[0].message.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines[0].hasPrefix("Received: indimail-mta queue \(words.last ?? "?") "))
        #expect(lines[2].hasPrefix("Received: indimail-mta smtpd ") && lines[2].hasSuffix(" (HELO client.test) ([127.0.0.1])"), "\(lines)")
        #expect(lines[3].hasPrefix("  by ") && lines[3].contains(" with ESMTP; "))
        #expect(Array(lines[4...]) == ["Subject: test", "", ".leading dot", "8bit é", ""])
        let logged = f.server?.log.filter { $0.hasPrefix("qmail-smtpd: pid ") } ?? []
        #expect(logged.contains { $0.hasSuffix(" from 127.0.0.1 HELO <client.test> MAIL from <a@b.org> RCPT <u@example.com> AUTH <local-rcpt> Size: 36 TLS=No") },
                "\(logged)")
    }

    @Test("exec'd standalone under tcpserver works the same")
    func execd() throws {
        let f = SmtpdFixture()
        try #require(f.start(exec: true) != nil)
        #expect(f.client("plain").contains { $0.hasPrefix("data 250 ok ") })
        #expect(f.queued.count == 1)
    }

    @Test("pipelining: all commands in one write, replies in order, one message queued")
    func pipelining() throws {
        let f = SmtpdFixture()
        try #require(f.start() != nil)
        let payload = "EHLO x\r\nMAIL FROM:<a@b.org>\r\nRCPT TO:<u@example.com>\r\nRCPT TO:<u@elsewhere.org>\r\n"
            + "RCPT TO:<v@example.com>\r\nDATA\r\nSubject: p\r\n\r\nbody\r\n.\r\nNOOP\r\nQUIT\r\n"
        let out = f.client("raw", ["b'" + payload.replacingCRLF() + "'"]).first ?? ""
        let replies = out.split(separator: "|").map(String.init).filter { !$0.hasPrefix("250-") }
        let codes = replies.map { String($0.prefix(3)) }
        #expect(codes == ["220", "250", "250", "250", "553", "250", "354", "250", "250", "221"], "\(out)")
        #expect(f.queued.first?.envelope.hasSuffix("\0Fa@b.org\0Tu@example.com\0Tv@example.com\0") == true)
    }

    @Test("databytes: SIZE advertised; SIZE= over the limit and an oversized body both get 552; nothing queued for them")
    func size() throws {
        let f = SmtpdFixture(controls: ["databytes": "200\n"])
        try #require(f.start() != nil)
        let out = f.client("size")
        #expect(out.contains("size 200"), "\(out)")
        let data = out.filter { $0.hasPrefix("data") }
        #expect(data == ["data-error 552", "data 552 sorry, that message size exceeds my databytes limit (#5.3.4)", data.last ?? ""], "\(out)")
        #expect(data.last?.hasPrefix("data 250 ok") == true)
        #expect(f.queued.count == 1)
    }

    @Test("relay: refused without RELAYCLIENT; tcprules' RELAYCLIENT allows it")
    func relay() throws {
        let f = SmtpdFixture()
        try #require(f.start() != nil)
        let out = f.client("relay")
        #expect(out.contains("rcpt u@elsewhere.org 553") && out.contains("rcpt v@example.com 250"), "\(out)")
        let g = SmtpdFixture()
        try #require(g.start(rules: "127.0.0.1:allow,RELAYCLIENT=\"\"\n") != nil)
        let allowed = g.client("relay")
        #expect(allowed.contains("rcpt u@elsewhere.org 250"), "\(allowed)")
        #expect(g.queued.first?.envelope.hasSuffix("Tu@elsewhere.org\0Tv@example.com\0") == true)
    }

    @Test("open-relay tricks over the wire are all refused")
    func relayTricks() throws {
        let f = SmtpdFixture()
        try #require(f.start() != nil)
        let tricks = ["<u%elsewhere.org@example.com>", "<elsewhere.org!u@example.com>", "<u@elsewhere.org@example.com>",
                      "<\"u@elsewhere.org\"@example.com>", "<@example.com:u@elsewhere.org>", "<u@[127.0.0.1]>", "u@elsewhere.org"]
        var payload = "HELO x\r\nMAIL FROM:<a@b.org>\r\n"
        for t in tricks { payload += "RCPT TO:\(t)\r\n" }
        payload += "QUIT\r\n"
        let out = f.client("raw", ["b'" + payload.replacingCRLF() + "'"]).first ?? ""
        let codes = out.split(separator: "|").map { String($0.prefix(3)) }
        #expect(codes.count == 3 + tricks.count + 1, "\(out)")
        #expect(codes.dropFirst(3).prefix(tricks.count).allSatisfy { $0 == "550" || $0 == "553" }, "\(out)")
    }

    @Test("AUTH PLAIN, LOGIN, CRAM-MD5 through a checkpassword program; wrong password 535; exit 3 no relay")
    func auth() throws {
        let f = SmtpdFixture()
        try #require(f.start(arguments: ["mx.test", f.checkpassword, "/bin/false"]) != nil)
        let out = f.client("auth")
        #expect(out.contains { $0.hasPrefix("auth-offered LOGIN PLAIN CRAM-MD5") }, "\(out)")
        for expected in ["auth PLAIN joe secret 235", "auth LOGIN joe secret 235", "auth CRAM-MD5 joe secret 235",
                         "auth PLAIN joe wrong 535", "auth CRAM-MD5 joe wrong 535", "auth PLAIN norelay secret 235",
                         "relay PLAIN joe 250", "relay LOGIN joe 250", "relay CRAM-MD5 joe 250", "relay PLAIN norelay 553"] {
            #expect(out.contains(expected), "\(expected): \(out)")
        }
    }

    @Test("STARTTLS (base binary hands over to indimail-tls): offered, AUTH LOGIN/PLAIN only after TLS with SECURE_AUTH, ESMTPS")
    func startTLS() throws {
        let f = SmtpdFixture(tls: true)
        try #require(f.certs != nil)
        try #require(f.start(["STARTTLS": "1", "SECURE_AUTH": ""], arguments: ["mx.test", f.checkpassword, "/bin/false"]) != nil)
        let out = f.client("starttls")
        #expect(out.contains("before True CRAM-MD5 CRAM-SHA1 CRAM-SHA224 CRAM-SHA256 CRAM-SHA384 CRAM-SHA512 CRAM-RIPEMD"), "\(out)")
        #expect(out.contains("starttls 220"), "\(out)")
        #expect(out.contains { $0.hasPrefix("after False LOGIN PLAIN CRAM-MD5") && $0.contains("TLSv1.") }, "\(out)")
        #expect(out.contains { $0.hasPrefix("data 250 ok ") }, "\(out)")
        let message = f.queued.first?.message ?? ""
        #expect(message.contains(" with ESMTPS (TLSv1.") && message.contains(" bits="), "\(message)")
    }

    @Test("tlsservermethod and tlsserverciphers control the STARTTLS session")
    func tlsControls() throws {
        let f = SmtpdFixture(tls: true, controls: ["tlsservermethod": "TLSv1_2\n",
                                                   "tlsserverciphers": "ECDHE-ECDSA-AES128-GCM-SHA256\n"])
        try #require(f.certs != nil)
        try #require(f.start(["STARTTLS": ""]) != nil)
        #expect(f.client("cipher") == ["tls TLSv1.2 ECDHE-ECDSA-AES128-GCM-SHA256"])
    }

    @Test("exec'd standalone from the base binary: STARTTLS still works (hand-over to indimail-tls)")
    func startTLSExecd() throws {
        let f = SmtpdFixture(tls: true)
        try #require(f.certs != nil)
        try #require(f.start(["STARTTLS": ""], exec: true) != nil)
        let out = f.client("starttls")
        #expect(out.contains("starttls 220") && out.contains { $0.hasPrefix("data 250 ok ") }, "\(out)")
        #expect(f.queued.first?.message.contains(" with ESMTPS (TLSv1.") == true)
    }

    @Test("under indimail-tls' tcpserver the TLS context is preloaded too: it outlives the certificate file until SIGHUP")
    func preloadedTLS() throws {
        let f = SmtpdFixture(tls: true)
        let certs = try #require(f.certs)
        let server = try #require(f.start(["STARTTLS": ""], binary: Build.indimailTLS))
        rename(certs.server, certs.server + ".away")
        let out = f.client("starttls")
        #expect(out.contains("starttls 220") && out.contains { $0.hasPrefix("data 250 ok ") }, "\(out)")
        kill(server.child.pid, SIGHUP)
        var plain: [String] = []
        #expect(eventually(within: 10) {
            plain = f.client("plain")
            return plain.contains("features 8bitmime etrn help pipelining")
        }, "\(plain)")
    }

    @Test("base tcpserver with STARTTLS configured becomes indimail-tls at start-up: qmail-smtpd in-process, context preloaded")
    func startTLSSwitchAtStartup() throws {
        let f = SmtpdFixture(tls: true)
        let certs = try #require(f.certs)
        let server = try #require(f.start(["STARTTLS": ""], binary: Build.indimail))
        let exe = ProgramLauncherProbe.executable(of: server.child.pid)
        #expect(exe.hasSuffix("/indimail-tls"), "\(exe)")
        // Only a context loaded once at start-up (in-process) survives the certificate going away:
        // a per-connection hand-over would find no certificate and not offer STARTTLS.
        rename(certs.server, certs.server + ".away")
        let out = f.client("starttls")
        #expect(out.contains("starttls 220") && out.contains { $0.hasPrefix("data 250 ok ") }, "\(out)")
        #expect(f.queued.first?.message.contains(" with ESMTPS (TLSv1.") == true)
    }

    @Test("STARTTLS asked for but no certificate: not offered, mail still flows")
    func startTLSWithoutCertificate() throws {
        let f = SmtpdFixture()
        try #require(f.start(["STARTTLS": ""]) != nil)
        let out = f.client("plain")
        #expect(out.contains("features 8bitmime etrn help pipelining") && out.contains { $0.hasPrefix("data 250 ok ") }, "\(out)")
    }

    @Test("openssl s_client -starttls smtp gets through to EHLO")
    func sClient() throws {
        let f = SmtpdFixture(tls: true)
        try #require(f.certs != nil)
        let server = try #require(f.start(["STARTTLS": ""]))
        let r = run(["/usr/bin/openssl", "s_client", "-starttls", "smtp", "-connect", "127.0.0.1:\(server.port)",
                     "-quiet", "-ign_eof"], stdin: Array("EHLO tls.test\r\nQUIT\r\n".utf8), timeout: 20)
        #expect(r.out.contains("250-mx.test") && r.out.contains("221 mx.test closing connection"), "\(r.out) \(r.err)")
    }

    @Test("SMTPS: TLS before the greeting")
    func smtps() throws {
        let f = SmtpdFixture(tls: true)
        try #require(f.certs != nil)
        try #require(f.start(["SMTPS": "1"]) != nil)
        let out = f.client("smtps")
        #expect(out.contains { $0.hasPrefix("version TLSv1.") } && out.contains { $0.hasPrefix("data 250 ok ") }, "\(out)")
        #expect(f.queued.first?.message.contains(" with ESMTPS (TLSv1.") == true)
    }

    @Test("TLS done by tcpserver (-n): the session counts as encrypted (ESMTPS, TLS= from TLS_PROVIDER)")
    func tcpserverTLS() throws {
        let f = SmtpdFixture(tls: true)
        let certs = try #require(f.certs)
        let server = try #require(f.start(serverOptions: ["-n", certs.server]))
        let out = f.client("smtps")
        #expect(out.contains { $0.hasPrefix("data 250 ok ") }, "\(out)")
        #expect(f.queued.first?.message.contains(" with ESMTPS; ") == true)
        #expect(server.log.contains { $0.hasPrefix("qmail-smtpd: pid ") && $0.hasSuffix(" TLS=tcpserver") }, "\(server.log)")
    }

    @Test("STARTTLS injection: a command pipelined in clear after STARTTLS is discarded")
    func injection() throws {
        let f = SmtpdFixture(tls: true)
        try #require(f.certs != nil)
        try #require(f.start(["STARTTLS": ""]) != nil)
        let out = f.client("inject")
        #expect(out == ["starttls 220 ready for tls", "first 250 ok"], "\(out)")
    }

    @Test("a 10 MB line without CRLF: 553 too long, the server lives on")
    func longLine() throws {
        let f = SmtpdFixture()
        try #require(f.start() != nil)
        let out = f.client("longline")
        #expect(out.contains { $0.hasPrefix("reply 553 sorry, the given command is too long!") }, "\(out)")
        #expect(f.client("plain").contains { $0.hasPrefix("data 250 ok ") })
    }

    @Test("bare LF in DATA: 451 and nothing queued; ALLOW_BARELF accepts it")
    func bareLF() throws {
        let payload = "b'HELO x\\r\\nMAIL FROM:<a@b.org>\\r\\nRCPT TO:<u@example.com>\\r\\nDATA\\r\\nSubject: x\\n\\nbody\\n.\\nQUIT\\r\\n'"
        let f = SmtpdFixture()
        try #require(f.start() != nil)
        let out = f.client("raw", [payload]).first ?? ""
        #expect(out.hasSuffix("354 go ahead|451 Sorry, I received Bare LF. (#4.6.0)|"), "\(out)")
        #expect(f.queued.isEmpty)
        let g = SmtpdFixture()
        try #require(g.start(["ALLOW_BARELF": ""]) != nil)
        let ok = g.client("raw", [payload]).first ?? ""
        #expect(ok.contains("354 go ahead|250 ok ") && ok.hasSuffix("221 mx.test closing connection|"), "\(ok)")
        #expect(g.queued.first?.message.hasSuffix("Subject: x\n\nbody\n") == true)
    }

    @Test("timeoutsmtpd: an idle client gets 451 timeout")
    func timeout() throws {
        let f = SmtpdFixture(controls: ["timeoutsmtpd": "1\n"])
        try #require(f.start() != nil)
        let out = f.client("raw", ["b'HELO x\\r\\n'"]).first ?? ""
        #expect(out.hasSuffix("451 Sorry, I reached a timeout reading from client (#4.4.2)|"), "\(out)")
    }

    /// swaks against the server; its exit code and transcript.
    func swaks(_ port: UInt16, _ extra: [String]) -> (Int32?, String) {
        let r = run(["/usr/bin/swaks", "--server", "127.0.0.1:\(port)", "--from", "a@b.org", "--helo", "swaks.test",
                     "--timeout", "10"] + extra, timeout: 30)
        return (r.exitCode, r.out + r.err)
    }

    @Test("swaks: pipelining, STARTTLS with AUTH PLAIN/LOGIN/CRAM-MD5 and relaying, relay refused without AUTH",
          .enabled(if: peer("/usr/bin/swaks") != nil))
    func swaksClient() throws {
        let f = SmtpdFixture(tls: true)
        try #require(f.certs != nil)
        let server = try #require(f.start(["STARTTLS": ""], arguments: ["mx.test", f.checkpassword, "/bin/false"]))
        let plain = swaks(server.port, ["--to", "u@example.com", "--pipeline"])
        #expect(plain.0 == 0, "\(plain.1)")
        for mechanism in ["PLAIN", "LOGIN", "CRAM-MD5"] {
            let r = swaks(server.port, ["--to", "x@elsewhere.org", "-tls", "-a", mechanism, "-au", "joe", "-ap", "secret"])
            #expect(r.0 == 0 && r.1.contains("235 ok, go ahead"), "\(mechanism): \(r.1)")
        }
        let refused = swaks(server.port, ["--to", "x@elsewhere.org"])
        #expect(refused.0 != 0 && refused.1.contains("553 sorry, that domain isn't allowed"), "\(refused.1)")
        #expect(f.queued.count == 4)
        #expect(f.queued.filter { $0.message.contains(" with ESMTPSA (TLSv1.") }.count == 3)
        let logged = server.log.filter { $0.hasPrefix("qmail-smtpd: pid ") }
        #expect(logged.contains { $0.contains("RCPT <x@elsewhere.org> AUTH <joe: AUTH CRAM-MD5> Size: ") && $0.contains(" TLS=TLSv1.") },
                "\(logged)")
    }

    @Test("swaks --tlsc against SMTPS", .enabled(if: peer("/usr/bin/swaks") != nil))
    func swaksSMTPS() throws {
        let f = SmtpdFixture(tls: true)
        try #require(f.certs != nil)
        let server = try #require(f.start(["SMTPS": "1"]))
        let r = swaks(server.port, ["--to", "u@example.com", "--tlsc"])
        #expect(r.0 == 0, "\(r.1)")
        #expect(f.queued.count == 1)
    }

    @Test("sys-checkpwd: shadow hash via crypt(3), wrong password 1, unknown user handed to the next program with fd 3 intact")
    func sysCheckpwd() throws {
        let box = Sandbox()
        let hash = run(["/usr/bin/openssl", "passwd", "-6", "secret"]).out.split(separator: "\n").first.map(String.init) ?? ""
        try #require(hash.hasPrefix("$6$"))
        let shadow = box.write("shadow", "root:*:1::::::\njoe:\(hash):19000:0:99999:7:::\nlocked:!\(hash):1::::::\n")
        func check(_ input: String, _ next: [String] = ["/bin/false"]) -> Outcome {
            run(["/bin/sh", "-c", "exec \"$@\" 3<&0", "sh", Build.indimailTLS, "sys-checkpwd"] + next,
                stdin: Array(input.utf8), environment: ["SYS_CHECKPWD_SHADOW": shadow])
        }
        #expect(check("joe\0secret\0\0\u{1}\0").exitCode == 0)
        #expect(check("joe\0secret\0\0\u{2}\0").exitCode == 0)
        #expect(check("joe\0wrong\0\0\u{1}\0").exitCode == 1)
        #expect(check("locked\0secret\0\0\u{1}\0").exitCode == 1)
        let handed = check("bob\0pw\0\0\u{1}\0", ["/bin/sh", "-c", "cat <&3; exit 7"])
        #expect(handed.exitCode == 7 && handed.stdout == Array("bob\0pw\0\0\u{1}\0".utf8))
        #expect(check("joe\0secret").exitCode == 0)   // no method byte: a clear-text password

        // Through qmail-smtpd's AUTH.
        let f = SmtpdFixture()
        let bin = f.box.commandLinks(["sys-checkpwd"], binary: Build.indimailTLS)
        try #require(f.start(["SYS_CHECKPWD_SHADOW": shadow], arguments: ["mx.test", bin + "/sys-checkpwd", "/bin/false"]) != nil)
        let out = f.client("auth")
        #expect(out.contains("auth PLAIN joe secret 235") && out.contains("auth LOGIN joe secret 235")
                && out.contains("auth PLAIN joe wrong 535") && out.contains("auth CRAM-MD5 joe secret 535"), "\(out)")
    }

    @Test("controls over the wire: recipients cdb with CHECKRECIPIENT, maxrecipients, badhelo, relayclients")
    func controls() throws {
        let f = SmtpdFixture(controls: ["maxrecipients": "2\n", "badhelo": "evil.host\n",
                                        "recipients": "@example.com:users/recipients.cdb\n"])
        let users = f.box.directory("users")
        let fd = try #require(try? FD.openTrunc(users + "/recipients.cdb").get())
        let writer = CDBWriter(fd: fd)
        _ = writer.start()
        for key in [":known@example.com", ":list-@example.com"] { _ = writer.add(key: key, value: "") }
        _ = writer.finish()
        close(fd)
        try #require(f.start(["CHECKRECIPIENT": "", "BADHELOCHECK": ""]) != nil)
        let payload = "HELO evil.host\r\nHELO good.host\r\nMAIL FROM:<a@b.org>\r\nRCPT TO:<nobody@example.com>\r\n"
            + "RCPT TO:<Known@Example.com>\r\nRCPT TO:<list-ext@example.com>\r\nRCPT TO:<known@example.com>\r\nQUIT\r\n"
        let out = f.client("raw", ["b'" + payload.replacingCRLF() + "'"]).first ?? ""
        let replies = out.split(separator: "|").map(String.init)
        try #require(replies.count == 9, "\(out)")
        #expect(replies[1] == "553 sorry, your HELO/EHLO greeting is in my badhelo list (#5.7.1)")
        #expect(replies[4] == "550 sorry, a@b.org mailbox <nobody@example.com> is absent on this domain (#5.1.1)")
        #expect(replies[5] == "250 ok" && replies[6] == "250 ok")
        #expect(replies[7] == "557 sorry, too many recipients (#5.7.1)")

        let g = SmtpdFixture(controls: ["relayclients": "127.0.0.\n"])
        try #require(g.start() != nil)
        #expect(g.client("relay").contains("rcpt u@elsewhere.org 250"))
    }

    @Test("negative GREETDELAY drops a client that talks first")
    func earlyTalker() throws {
        let f = SmtpdFixture()
        try #require(f.start(["GREETDELAY": "-2"]) != nil)
        let out = f.client("raw", ["b'HELO x\\r\\n'"]).first ?? ""
        #expect(out == "554 SMTP protocol violation. Polite people say hello after the server greets them (#5.7.1)|", "\(out)")
    }

    @Test("exec'd on pipes: random and hostile input never crashes it (exit 0 or 1, never a signal)")
    func randomInput() throws {
        let f = SmtpdFixture()
        var env = f.environment
        env["TCPREMOTEIP"] = "192.0.2.1"
        var rng = SystemRandomNumberGenerator()
        let starts = ["", "EHLO x\r\n", "HELO x\r\nMAIL FROM:<a@b.org>\r\nRCPT TO:<u@example.com>\r\nDATA\r\n",
                      "EHLO x\r\nAUTH LOGIN\r\n", "HELO x\r\nMAIL FROM:<>\r\nRCPT TO:<u@example.com>\r\n"]
        var crashes: [String] = []
        for i in 0..<40 {
            var input = Array((starts[i % starts.count]).utf8)
            for _ in 0..<Int.random(in: 0...4000, using: &rng) {
                input.append(Bool.random(using: &rng) ? UInt8.random(in: 0...255, using: &rng) : [13, 10, 46, 60, 62, 64, 58, 32].randomElement(using: &rng) ?? 0)
            }
            // Absurd numbers in the environment must not trap either.
            env["GREETDELAY"] = i % 5 == 0 ? "-9223372036854775808" : "0"
            env["TARPITCOUNT"] = "1"
            env["TARPITDELAY"] = i % 5 == 1 ? "-9223372036854775808" : "0"
            env["MAXRECIPIENTS"] = "9223372036854775807"
            env["DATABYTES"] = i % 2 == 0 ? "-5" : "9223372036854775807"
            let r = run([Build.indimail, "qmail-smtpd", "mx.test", "/bin/false"], stdin: input, environment: env, timeout: 10)
            if r.timedOut || !(r.exitCode == 0 || r.exitCode == 1) { crashes.append("\(r.status) \(r.err)") }
        }
        #expect(crashes.isEmpty, "\(crashes)")
    }

    @Test("sender DNS check (dnsmasq): MX or address accepted, NXDOMAIN 553, nodnscheck exempts, no server 451")
    func senderDNS() throws {
        guard let dns = Dnsmasq(zones: ["test"], records: ["--mx-host=good.test,mx.good.test,10", "--host-record=nomx.test,192.0.2.1"]) else {
            Issue.record("dnsmasq unavailable"); return
        }
        let f = SmtpdFixture(controls: ["nodnscheck": "@exempt.test\n"])
        try #require(f.start(["DNSCACHEIP": dns.dnscacheip()], unset: ["NODNSCHECK"]) != nil)
        var payload = "HELO x\r\n"
        for sender in ["a@good.test", "a@nomx.test", "a@gone.test", "a@exempt.test", "postmaster", "a@[192.0.2.1]"] {
            payload += "MAIL FROM:<\(sender)>\r\nRSET\r\n"
        }
        let out = f.client("raw", ["b'" + (payload + "QUIT\r\n").replacingCRLF() + "'"]).first ?? ""
        let replies = out.split(separator: "|").map(String.init).filter { $0 != "250 flushed" }
        try #require(replies.count == 9, "\(out)")
        #expect(Array(replies[2...7]) == ["250 ok", "250 ok", "553 Bad sender's system address (#5.1.8)", "250 ok",
                                          "553 Bad sender's system address (#5.1.8)", "250 ok"], "\(out)")

        let g = SmtpdFixture()
        try #require(g.start(["DNSCACHEIP": "127.0.0.1:\(closedUDPPort())"], unset: ["NODNSCHECK"]) != nil)
        let soft = g.client("raw", ["b'HELO x\\r\\nMAIL FROM:<a@b.test>\\r\\nQUIT\\r\\n'"]).first ?? ""
        #expect(soft.contains("451 Sorry, there is a DNS temporary failure (#4.4.3)"), "\(soft)")
    }

    @Test("in-process: tcpserver preloads the controls and reloads them on SIGHUP")
    func preloadAndReload() throws {
        let f = SmtpdFixture()
        let server = try #require(f.start())
        _ = f.box.write("control/rcpthosts", "example.com\nnew.org\n")
        let payload = "b'HELO x\\r\\nMAIL FROM:<a@b.org>\\r\\nRCPT TO:<u@new.org>\\r\\nQUIT\\r\\n'"
        let before = f.client("raw", [payload]).first ?? ""
        #expect(before.contains("|553 sorry, that domain isn't allowed"), "\(before)")
        kill(server.child.pid, SIGHUP)
        var after = ""
        #expect(eventually(within: 10) {
            after = f.client("raw", [payload]).first ?? ""
            return after.contains("|250 ok|221 ")
        }, "\(after)")
    }

    @Test("postfix smtp-source: concurrent pipelined sessions, every message queued (SOAK=1: 500 messages, fsync on)",
          .enabled(if: peer("/usr/sbin/smtp-source") != nil))
    func smtpSource() throws {
        let soak = Environment.current().contains("SOAK")
        let messages = soak ? 500 : 40, sessions = soak ? 20 : 4
        let f = SmtpdFixture()
        let server = try #require(f.start(["USE_FSYNC": soak ? "1" : "0", "MAXPERIP": "100"], serverOptions: ["-c", "100"]))
        let r = run(["/usr/sbin/smtp-source", "-s", String(sessions), "-m", String(messages), "-l", "2048", "-f", "a@b.org",
                     "-t", "u@example.com", "-M", "client.test", "127.0.0.1:\(server.port)"], timeout: soak ? 600 : 60)
        #expect(r.exitCode == 0, "\(r.out) \(r.err)")
        #expect(f.queued.count == messages)
        #expect(f.queued.allSatisfy { $0.envelope.hasSuffix("\0Fa@b.org\0Tu@example.com\0") })
    }

    @Test("SIGTERM while waiting for a command: 421 and exit")
    func sigterm() throws {
        let f = SmtpdFixture()
        let server = try #require(f.start())
        let out = f.client("term", [String(server.child.pid)])
        #expect(out == ["greeting 220", "reply 421 mx.test Service not available, closing transmission channel (#4.3.2)"], "\(out)")
    }

    @Test("queue failure maps to the reference's 451 text")
    func queueFailure() throws {
        let f = SmtpdFixture()
        try #require(f.start(["QUEUEDIR": f.box.at("missing-queue")]) != nil)
        let payload = "b'HELO x\\r\\nMAIL FROM:<a@b.org>\\r\\nRCPT TO:<u@example.com>\\r\\nDATA\\r\\nSubject: x\\r\\n\\r\\nb\\r\\n.\\r\\nQUIT\\r\\n'"
        let out = f.client("raw", [payload]).first ?? ""
        #expect(out.contains("354 go ahead|451 qq trouble in home directory (#4.3.0)|221 "), "\(out)")
    }
}

extension String {
    /// CR and LF as Python escapes, for a bytes literal.
    func replacingCRLF() -> String {
        var s = ""
        for c in unicodeScalars {
            switch c {
            case "\r": s += "\\r"
            case "\n": s += "\\n"
            case "'": s += "\\'"
            default: s.unicodeScalars.append(c)
            }
        }
        return s
    }
}

enum ProgramLauncherProbe {
    /// The file a running process executes (/proc/PID/exe).
    static func executable(of pid: pid_t) -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/\(pid)/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return "" }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
