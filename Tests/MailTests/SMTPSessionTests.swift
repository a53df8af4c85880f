// qmail-smtpd's pure parts: command lines, addresses, MAIL parameters, base64, the DATA
// receiver and the session state machine, plus fuzzing of the parser and the session.
import Core
import Glibc
import Mail
import Testing

private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }
private func text(_ b: [UInt8]) -> String { String(decoding: b, as: UTF8.self) }

@Suite("SMTP syntax")
struct SMTPSyntaxTests {
    @Test("verbs are case-insensitive, the argument is everything after the first space")
    func commandLine() {
        let c = SMTPCommandLine.parse(bytes("MaIl FROM:<a@b>  SIZE=5\r"))
        #expect(c.verb == "mail")
        #expect(text(c.argument) == "FROM:<a@b>  SIZE=5")
        #expect(SMTPCommandLine.parse(bytes("QUIT")).argument.isEmpty)
        #expect(SMTPCommandLine.parse([]).verb == "")
    }

    @Test("addresses: brackets, no brackets, source routes, quotes, escapes, length")
    func addresses() {
        #expect(SMTPAddress.parse(bytes("FROM:<a@b.org>")).map(text) == "a@b.org")
        #expect(SMTPAddress.parse(bytes("FROM:<>")).map(text) == "")
        #expect(SMTPAddress.parse(bytes("TO: u@x.com")).map(text) == "u@x.com")
        #expect(SMTPAddress.parse(bytes("TO:<@relay.net,@other.net:u@x.com>")).map(text) == "u@x.com")
        #expect(SMTPAddress.parse(bytes("TO:<\"a b\"@x.com>")).map(text) == "a b@x.com")
        #expect(SMTPAddress.parse(bytes("TO:<a\\>b@x.com>")).map(text) == "a>b@x.com")
        #expect(SMTPAddress.parse(bytes("TO")) == nil)
        #expect(SMTPAddress.parse(bytes("TO:<" + String(repeating: "a", count: 901) + ">")) == nil)
        #expect(SMTPAddress.parse(bytes("TO:<" + String(repeating: "a", count: 900) + ">"))?.count == 900)
    }

    @Test("relay probes: %, ! or a second @ in the local part")
    func relayProbes() {
        for probe in ["u%x.com@ours.com", "x.com!u@ours.com", "u@x.com@ours.com", "u%x"] {
            #expect(SMTPAddress.isRelayProbe(bytes(probe)), "\(probe)")
        }
        #expect(!SMTPAddress.isRelayProbe(bytes("u.v+w@ours.com")))
        #expect(!SMTPAddress.isRelayProbe(bytes("u@x%y.com")))
    }

    @Test("MAIL parameters: SIZE, AUTH (xtext), SMTPUTF8, BODY=8BITMIME")
    func parameters() {
        let p = MailParameters.parse(bytes("FROM:<a@b> size=1234 AUTH=joe+2Bx@y body=8bitmime SMTPUTF8"))
        #expect(p.size == 1234)
        #expect(p.auth.map(text) == "joe+x@y")
        #expect(p.smtputf8 && p.eightBitMIME)
        #expect(MailParameters.parse(bytes("FROM:<a@b> SIZE=99999999999999999999")).size == nil)
        #expect(MailParameters.parse(bytes("FROM:<a@b> AUTH=<>")).auth == nil)
    }

    @Test("base64 both ways, malformed input refused")
    func base64() {
        for sample in ["", "f", "fo", "foo", "foob", "fooba", "foobar", "\0user\0pass"] {
            let encoded = Base64.encode(bytes(sample))
            #expect(Base64.decode(encoded) == bytes(sample), "\(sample)")
        }
        #expect(text(Base64.encode(bytes("Username:"))) == "VXNlcm5hbWU6")
        #expect(Base64.decode(bytes("a")) == nil)
        #expect(Base64.decode(bytes("ab!d")) == nil)
        #expect(Base64.decode(bytes("Zg===")) == nil)
    }
}

@Suite("SMTP DATA receiver")
struct SMTPDataReceiverTests {
    func run(_ input: String, allowBareLF: Bool = false, databytes: Int = 0, chunk: Int = 1000)
        -> (output: String, outcome: SMTPDataReceiver.Outcome, receiver: SMTPDataReceiver) {
        var r = SMTPDataReceiver(allowBareLF: allowBareLF, databytes: databytes)
        var out: [UInt8] = []
        let all = bytes(input)
        var offset = 0
        var outcome = SMTPDataReceiver.Outcome.more
        while offset < all.count {
            let end = min(all.count, offset + chunk)
            let piece = Array(all[offset..<end])
            outcome = piece.withUnsafeBytes { r.feed($0, into: &out) }
            switch outcome {
            case .more: offset = end
            case .end(let used), .bareLF(let used):
                return (text(out), adjust(outcome, offset), r)
                func adjust(_ o: SMTPDataReceiver.Outcome, _ base: Int) -> SMTPDataReceiver.Outcome {
                    switch o {
                    case .end: return .end(consumed: base + used)
                    case .bareLF: return .bareLF(consumed: base + used)
                    case .more: return o
                    }
                }
            }
        }
        return (text(out), outcome, r)
    }

    @Test("CRLF to LF, dot-unstuffing, end marker, pipelined rest untouched", arguments: [1, 2, 3, 7, 1000])
    func basics(chunk: Int) {
        let input = "Subject: x\r\n\r\n..leading\r\nbare\rCR\r\n.\r\nQUIT\r\n"
        let r = run(input, chunk: chunk)
        #expect(r.output == "Subject: x\n\n.leading\nbare\rCR\n")
        #expect(r.outcome == .end(consumed: input.utf8.count - 6))
    }

    @Test("bare LF is refused unless allowed; allowed it ends lines and '.\\n' ends data")
    func bareLF() {
        #expect(run("a\nb\r\n.\r\n").outcome == .bareLF(consumed: 2))
        let r = run("a\nb\r\n.\n", allowBareLF: true)
        #expect(r.output == "a\nb\n")
        #expect(r.outcome == .end(consumed: 7))
    }

    @Test("hops: Received and Delivered-To header lines only")
    func hops() {
        let r = run("Received: a\r\nDELIVERED-TO: b\r\nreceived: c\r\nX: y\r\n\r\nReceived: body\r\n.\r\n")
        #expect(r.receiver.hops == 3)
    }

    @Test("databytes: stored bytes counted, nothing stored past the limit")
    func databytes() {
        let r = run("0123456789\r\n.\r\n", databytes: 5)
        #expect(r.receiver.tooBig)
        #expect(r.output == "01234")
        #expect(!run("0123\r\n.\r\n", databytes: 5).receiver.tooBig)
    }
}

func makeControls(rcpthosts: [String] = ["example.com", ".sub.example.net"], extra: [String: String] = [:]) -> SMTPControls {
    // Build real control files in a temp dir so the lookups are the production ones.
    var template = Array("/tmp/smtp-unit-XXXXXX".utf8CString)
    let dir = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    func write(_ name: String, _ content: String) {
        _ = FD.openTrunc(dir + "/" + name).map { fd in _ = FD.writeAll(fd, Array(content.utf8)); FD.close(fd) }
    }
    write("me", "mx.test\n")
    write("rcpthosts", rcpthosts.joined(separator: "\n") + "\n")
    write("badmailfrom", "spammer@bad.org\n@evil.org\n")
    write("badrcptto", "blocked@example.com\n")
    for (name, content) in extra { write(name, content) }
    let controls = SMTPControls.load(Environment([("CONTROLDIR", dir), ("SYSCONFDIR", dir)]))
    for name in ["me", "rcpthosts", "badmailfrom", "badrcptto"] + extra.keys { unlink(dir + "/" + name) }
    rmdir(dir)
    return controls
}

@Suite("SMTP session")
struct SMTPSessionTests {
    func session(_ env: [(String, String)] = [], auth: Bool = false) -> SMTPSession {
        let controls = makeControls()
        var s = SMTPSettings.make(Environment([("TCPREMOTEIP", "192.0.2.9")] + env), controls: controls,
                                  authHostname: auth ? "mx.test" : nil)
        s.extraGreeting = false
        return SMTPSession(settings: s, controls: controls)
    }

    func say(_ s: inout SMTPSession, _ line: String) -> String { text(s.command(bytes(line)).reply) }

    /// A session with CHECKSENDER, `locals` = example.com and accounts joe and ann only.
    func checkSenderSession(_ env: [(String, String)] = [], extra: [String: String] = [:]) -> SMTPSession {
        let controls = makeControls(extra: ["locals": "example.com\n"].merging(extra) { $1 })
        var s = SMTPSettings.make(Environment([("TCPREMOTEIP", "192.0.2.9"), ("CHECKSENDER", "")] + env),
                                  controls: controls, authHostname: "mx.test")
        s.extraGreeting = false
        var session = SMTPSession(settings: s, controls: controls)
        session.localAccountExists = { ["joe", "ann"].contains(text($0)) }
        _ = session.greeting(); _ = say(&session, "EHLO c")
        return session
    }

    func authenticate(_ s: inout SMTPSession, _ user: String) {
        guard case .authenticate(let request) = s.command(bytes("AUTH PLAIN " + text(Base64.encode(bytes("\0\(user)\0pw"))))).action
        else { Issue.record("no AUTH request"); return }
        #expect(text(s.authFinished(request, status: 0).reply).hasPrefix("235 "))
    }

    @Test("CHECKSENDER: local senders must exist and authenticate; others pass untouched")
    func checkSenderLocal() {
        var s = checkSenderSession()
        #expect(say(&s, "MAIL FROM:<stranger@elsewhere.org>") == "250 ok\r\n")
        #expect(say(&s, "MAIL FROM:<>") == "250 ok\r\n")
        #expect(say(&s, "MAIL FROM:<nobody-here@example.com>") == "553 authorization failure (#5.7.1)\r\n")
        #expect(say(&s, "MAIL FROM:<joe@example.com>") == "530 authentication required (#5.7.1)\r\n")
        // A domain of ours that is not in locals has no system accounts: refused.
        #expect(say(&s, "MAIL FROM:<joe@x.sub.example.net>") == "553 authorization failure (#5.7.1)\r\n")
        #expect(s.logLines.contains("CHECKSENDER: unauthenticated local SENDER address: MAIL from <joe@example.com>"))
        var relay = checkSenderSession([("RELAYCLIENT", "")])
        #expect(say(&relay, "MAIL FROM:<joe@example.com>") == "250 ok\r\n")
        // chksenderdomains limits the check to what it lists.
        var limited = checkSenderSession(extra: ["chksenderdomains": "@other.example\n"])
        #expect(say(&limited, "MAIL FROM:<joe@example.com>") == "250 ok\r\n")
    }

    @Test("CHECKSENDER with AUTH: the sender must be the user, or MASQUERADE's address; empty MASQUERADE allows any")
    func checkSenderForging() {
        var s = checkSenderSession()
        authenticate(&s, "joe@example.com")
        #expect(say(&s, "MAIL FROM:<joe@example.com>") == "250 ok\r\n")
        #expect(say(&s, "MAIL FROM:<ann@example.com>")
                == "553 sorry, this MTA does not accept masquerading/forging, auth <joe@example.com> #5.7.1\r\n")
        var bare = checkSenderSession([("DEFAULT_DOMAIN", "example.com")])
        authenticate(&bare, "joe")
        #expect(say(&bare, "MAIL FROM:<joe@example.com>") == "250 ok\r\n")
        var masq = checkSenderSession([("MASQUERADE", "ann@example.com")])
        authenticate(&masq, "joe@example.com")
        #expect(say(&masq, "MAIL FROM:<ann@example.com>") == "250 ok\r\n")
        #expect(say(&masq, "MAIL FROM:<joe@example.com>") == "250 ok\r\n")
        var open = checkSenderSession([("MASQUERADE", "")])
        authenticate(&open, "joe@example.com")
        #expect(say(&open, "MAIL FROM:<ann@example.com>") == "250 ok\r\n")
    }

    @Test("the happy path: HELO, MAIL, RCPT, DATA asks for the queue")
    func happyPath() {
        var s = session()
        #expect(text(s.greeting().reply) == "220 mx.test\r\n")
        #expect(say(&s, "MAIL FROM:<a@b.org>") == "503 Polite people say hello first (#5.5.4)\r\n")
        #expect(say(&s, "HELO client") == "250 mx.test\r\n")
        #expect(say(&s, "RCPT TO:<u@example.com>") == "503 MAIL first (#5.5.1)\r\n")
        #expect(say(&s, "MAIL FROM:<a@b.org>") == "250 ok\r\n")
        #expect(say(&s, "DATA") == "503 RCPT first (#5.5.1)\r\n")
        #expect(say(&s, "RCPT TO:<u@example.com>") == "250 ok\r\n")
        #expect(say(&s, "RCPT TO:<v@a.sub.example.net>") == "250 ok\r\n")
        #expect(s.command(bytes("DATA")).action == .beginData)
        #expect(s.envelope.clientBytes == bytes("Fa@b.org\0Tu@example.com\0Tv@a.sub.example.net\0\0"))
    }

    @Test("relay control: refused without RELAYCLIENT, allowed and appended with it")
    func relay() {
        var s = session()
        _ = s.greeting(); _ = say(&s, "EHLO c"); _ = say(&s, "MAIL FROM:<a@b.org>")
        #expect(say(&s, "RCPT TO:<u@elsewhere.com>").hasPrefix("553 sorry, that domain isn't allowed to be relayed"))
        #expect(say(&s, "RCPT TO:<u@sub.example.net>").hasPrefix("553 "))  // ".sub.example.net" is for subdomains only
        var r = session([("RELAYCLIENT", "")])
        _ = r.greeting(); _ = say(&r, "EHLO c"); _ = say(&r, "MAIL FROM:<a@b.org>")
        #expect(say(&r, "RCPT TO:<u@elsewhere.com>") == "250 ok\r\n")
    }

    @Test("open-relay tricks are refused even for listed domains",
          arguments: ["<u%elsewhere.com@example.com>", "<elsewhere.com!u@example.com>", "<u@elsewhere.com@example.com>",
                      "<\"u@elsewhere.com\"@example.com>", "<@example.com:u@elsewhere.com>", "<u@elsewhere.com>"])
    func relayTricks(_ address: String) {
        var s = session()
        _ = s.greeting(); _ = say(&s, "HELO c"); _ = say(&s, "MAIL FROM:<a@b.org>")
        let reply = say(&s, "RCPT TO:" + address)
        #expect(reply.hasPrefix("550 we don't relay") || reply.hasPrefix("553 sorry, that domain"), "\(reply)")
    }

    @Test("badmailfrom (address and @domain), badrcptto, bounce with two recipients")
    func lists() {
        var s = session()
        _ = s.greeting(); _ = say(&s, "HELO c")
        #expect(say(&s, "MAIL FROM:<Spammer@BAD.org>").hasPrefix("553 sorry, your envelope sender has been denied"))
        #expect(say(&s, "MAIL FROM:<x@evil.org>").hasPrefix("553 sorry, your envelope sender"))
        #expect(say(&s, "MAIL FROM:<>") == "250 ok\r\n")
        #expect(say(&s, "RCPT TO:<blocked@example.com>").hasPrefix("553 sorry, your envelope recipient has been denied"))
        #expect(say(&s, "RCPT TO:<one@example.com>") == "250 ok\r\n")
        #expect(say(&s, "RCPT TO:<two@example.com>").hasPrefix("553 sorry, bounce messages should have a single envelope recipient"))
    }

    @Test("maxrecipients, tarpit delay, SIZE over databytes refused at DATA")
    func limits() {
        var s = session([("MAXRECIPIENTS", "2"), ("TARPITCOUNT", "2"), ("TARPITDELAY", "3"), ("DATABYTES", "100")])
        _ = s.greeting(); _ = say(&s, "EHLO c")
        _ = say(&s, "MAIL FROM:<a@b.org> SIZE=1000")
        #expect(s.command(bytes("RCPT TO:<a@example.com>")).delay == 0)
        #expect(s.command(bytes("RCPT TO:<b@example.com>")).delay == 3)
        #expect(say(&s, "RCPT TO:<c@example.com>") == "557 sorry, too many recipients (#5.7.1)\r\n")
        #expect(say(&s, "DATA") == "552 sorry, that message size exceeds my databytes limit (#5.3.4)\r\n")
    }

    @Test("EHLO lists extensions; SECURE_AUTH hides LOGIN/PLAIN before TLS; DISABLE_* remove mechanisms")
    func ehlo() {
        var s = session([("DATABYTES", "5000"), ("SMTPUTF8", "")], auth: true)
        _ = s.greeting()
        let reply = say(&s, "EHLO c")
        #expect(reply.contains("250-AUTH LOGIN PLAIN CRAM-MD5"))
        #expect(reply.contains("250-SIZE 5000\r\n") && reply.contains("250-PIPELINING\r\n") && reply.contains("250-SMTPUTF8\r\n"))
        #expect(!reply.contains("STARTTLS"))
        #expect(reply.hasSuffix("250 HELP\r\n"))
        var secure = session([("SECURE_AUTH", ""), ("DISABLE_CRAM_SHA1", "")], auth: true)
        _ = secure.greeting()
        let r2 = say(&secure, "EHLO c")
        #expect(r2.contains("250-AUTH CRAM-MD5 CRAM-SHA224") && !r2.contains("LOGIN") && !r2.contains("CRAM-SHA1"))
        #expect(say(&secure, "AUTH PLAIN AGEAYg==") == "504 auth type unimplemented (#5.5.1)\r\n")
        var none = session()
        _ = none.greeting(); _ = say(&none, "EHLO c")
        #expect(say(&none, "AUTH LOGIN") == "503 auth not available (#5.3.3)\r\n")
    }

    @Test("AUTH PLAIN, LOGIN and CRAM-MD5 produce the checkpassword request; results map to 235/535/454")
    func auth() {
        var s = session([("REQUIREAUTH", "")], auth: true)
        _ = s.greeting(); _ = say(&s, "EHLO c")
        #expect(say(&s, "MAIL FROM:<a@b.org>") == "530 authentication required (#5.7.1)\r\n")
        let plain = s.command(bytes("AUTH PLAIN " + text(Base64.encode(bytes("\0joe\0secret")))))
        guard case .authenticate(let request) = plain.action else { Issue.record("no request"); return }
        #expect(request.checkpasswordBytes == bytes("joe\0secret\0\0") + [2, 0])
        #expect(text(s.authFinished(request, status: 1).reply) == "535 authorization failure (#5.7.8)\r\n")
        #expect(text(s.authFinished(request, status: 111).reply) == "454 temporary authentication failure (#4.3.0)\r\n")

        #expect(say(&s, "AUTH LOGIN") == "334 VXNlcm5hbWU6\r\n")
        #expect(say(&s, text(Base64.encode(bytes("joe")))) == "334 UGFzc3dvcmQ6\r\n")
        guard case .authenticate(let login) = s.command(Base64.encode(bytes("pw"))).action else { Issue.record("no login"); return }
        #expect(login.checkpasswordBytes == bytes("joe\0pw\0\0") + [1, 0])

        let challenge = say(&s, "AUTH CRAM-MD5")
        #expect(challenge.hasPrefix("334 "))
        // "\r\n" is a single Character: drop one.
        let decoded = Base64.decode(bytes(String(challenge.dropFirst(4).dropLast(1)))).map(text) ?? ""
        #expect(decoded.hasPrefix("<") && decoded.hasSuffix("@mx.test>"))
        guard case .authenticate(let cram) = s.command(Base64.encode(bytes("joe 0123abcd"))).action else { Issue.record("no cram"); return }
        #expect(text(cram.secret) == decoded && text(cram.response) == "0123abcd" && cram.mechanism.methodByte == 3)
        #expect(say(&s, "AUTH LOGIN") == "334 VXNlcm5hbWU6\r\n")
        #expect(say(&s, "*") == "501 auth exchange cancelled (#5.0.0)\r\n")
        #expect(say(&s, "AUTH PLAIN !!!") == "501 malformed auth input (#5.5.4)\r\n")

        #expect(text(s.authFinished(cram, status: 0).reply) == "235 ok, go ahead (#2.0.0)\r\n")
        #expect(say(&s, "AUTH LOGIN") == "503 you're already authenticated (#5.5.0)\r\n")
        #expect(say(&s, "MAIL FROM:<a@b.org>") == "250 ok\r\n")
        #expect(say(&s, "RCPT TO:<u@elsewhere.com>") == "250 ok\r\n")   // authenticated: relaying
        let header = text(s.receivedHeader(pid: 7, date: "1 Jan 2026 00:00:00 +0000\n"))
        #expect(header == "Received: indimail-mta smtpd 7 (HELO c) (joe@192.0.2.9)\n  by mx.test with ESMTPA; 1 Jan 2026 00:00:00 +0000\n")
    }

    @Test("Received: UTF8ESMTP only with SMTPUTF8 offered and asked for; HIDE_HOST hides the client; unsafe bytes become '?'")
    func received() {
        var s = session([("SMTPUTF8", ""), ("TCPREMOTEHOST", "client.example"), ("TCPLOCALHOST", "mx.local")])
        _ = s.greeting(); _ = say(&s, "EHLO we(ird")
        _ = say(&s, "MAIL FROM:<a@b.org> SMTPUTF8")
        #expect(text(s.receivedHeader(pid: 1, date: "D\n"))
                == "Received: indimail-mta smtpd 1 from client.example (HELO we?ird) ([192.0.2.9])\n  by mx.local with UTF8ESMTP; D\n")
        var plain = session()
        _ = plain.greeting(); _ = say(&plain, "EHLO x")
        _ = say(&plain, "MAIL FROM:<a@b.org> SMTPUTF8")
        #expect(text(plain.receivedHeader(pid: 1, date: "D\n")).contains(" with ESMTP; "))
        var hidden = session([("HIDE_HOST", "")])
        _ = hidden.greeting(); _ = say(&hidden, "HELO x"); _ = say(&hidden, "MAIL FROM:<a@b.org>")
        #expect(text(hidden.receivedHeader(pid: 1, date: "D\n")) == "Received: indimail-mta smtpd 1\n  with ESMTP; D\n")
    }

    @Test("queue verdicts: 250 ok <t> qp <pid>; D texts 554, Z texts 451, custom errors by their last line; loops 554")
    func verdicts() {
        func finish(_ verdict: QueueVerdict?, body: String = "Subject: x\r\n\r\nhi\r\n.\r\n", hops: Int = 100) -> String {
            var s = session()
            s.settings.maxHops = hops
            _ = s.greeting(); _ = say(&s, "HELO c"); _ = say(&s, "MAIL FROM:<a@b.org>"); _ = say(&s, "RCPT TO:<u@example.com>")
            var r = SMTPDataReceiver(allowBareLF: false, databytes: 0)
            var out: [UInt8] = []
            _ = bytes(body).withUnsafeBytes { r.feed($0, into: &out) }
            let reply = text(s.dataFinished(r, verdict: verdict, now: 1700000000).reply)
            #expect(s.mailFrom == nil && s.recipients.isEmpty)   // the transaction is over either way
            return reply
        }
        #expect(finish(.accepted(pid: 4321)) == "250 ok 1700000000 qp 4321\r\n")
        #expect(finish(.refused(code: 31, custom: nil)) == "554 qq mail server permanently rejected message (#5.3.0)\r\n")
        #expect(finish(.refused(code: 53, custom: nil)) == "451 qq write error or disk full (#4.3.0)\r\n")
        #expect(finish(.refused(code: 88, custom: "Dfirst line\nsorry, no spam (#5.7.1)")) == "554 sorry, no spam (#5.7.1)\r\n")
        #expect(finish(.crashed("signal 9")) == "451 qq crashed (#4.3.0)\r\n")
        #expect(finish(.accepted(pid: 1), body: "Received: a\r\nReceived: b\r\n\r\nx\r\n.\r\n", hops: 2)
                == "554 too many hops, this message is looping (#5.4.6)\r\n")
    }

    @Test("exit 3 authenticates without relaying")
    func authNoRelay() {
        var s = session(auth: true)
        _ = s.greeting(); _ = say(&s, "EHLO c")
        guard case .authenticate(let r) = s.command(bytes("AUTH PLAIN " + text(Base64.encode(bytes("\0joe\0pw"))))).action else {
            Issue.record("no request"); return
        }
        #expect(text(s.authFinished(r, status: 3).reply).hasPrefix("235 "))
        _ = say(&s, "MAIL FROM:<a@b.org>")
        #expect(say(&s, "RCPT TO:<u@elsewhere.com>") == "553 sorry, that domain isn't allowed to be relayed thru this MTA without authentication, auth <joe> #5.7.1\r\n")
    }

    @Test("connection-level refusals repeat; SHUTDOWN; FORCE_TLS; STARTTLS not offered without TLS")
    func refusals() {
        var s = session([("OPENRELAY", "")])
        #expect(text(s.greeting().reply) == "553 No mail accepted from an open relay (192.0.2.9); check your server configs (#5.7.1)\r\n")
        #expect(say(&s, "HELO x").hasPrefix("553 No mail accepted"))
        #expect(say(&s, "QUIT") == "221 mx.test closing connection\r\n")
        var d = session([("SHUTDOWN", "")])
        #expect(text(d.greeting().reply) == "421 mx.test SMTP service unavailable (#4.3.2)\r\n")
        #expect(say(&d, "EHLO x") == "503 bad sequence of commands (#5.3.2)\r\n")
        var b = session([("BOUNCEMAIL", "this server accepts no mail")])
        _ = b.greeting(); _ = say(&b, "HELO x")
        let bounced = b.command(bytes("MAIL FROM:<a@b.org>"))
        #expect(text(bounced.reply) == "553 this server accepts no mail (#5.7.1)\r\n" && bounced.action == .close(1))
        var f = session([("FORCE_TLS", "")])
        _ = f.greeting(); _ = say(&f, "EHLO x")
        #expect(say(&f, "MAIL FROM:<a@b>") == "530 must issue STARTTLS first (#5.7.0)\r\n")
        #expect(say(&f, "STARTTLS") == "502 command starttls not implemented (#5.5.1)\r\n")
        var t = session()
        t.settings.startTLSAvailable = true
        _ = t.greeting()
        #expect(say(&t, "EHLO x").contains("250-STARTTLS\r\n"))
        #expect(say(&t, "STARTTLS now") == "501 Syntax error (no parameters allowed) (#5.5.4)\r\n")
        #expect(t.command(bytes("STARTTLS")).action == .startTLS)
        t.tlsStarted()
        #expect(!say(&t, "EHLO x").contains("STARTTLS"))
        #expect(say(&t, "MAIL FROM:<a@b.org>") == "250 ok\r\n")
    }

    @Test("misc verbs: RSET, NOOP, VRFY, HELP, unknown, submission port has no ETRN")
    func misc() {
        var s = session()
        _ = s.greeting()
        #expect(say(&s, "RSET") == "250 flushed\r\n")
        #expect(say(&s, "RSET x") == "501 invalid parameter syntax (#5.3.2)\r\n")
        #expect(say(&s, "NOOP") == "250 ok\r\n")
        #expect(say(&s, "VRFY joe").hasPrefix("252 "))
        #expect(say(&s, "HELP").hasPrefix("214-This is IndiMail SMTP"))
        #expect(say(&s, "FOO bar") == "502 command foo not recognized (#5.5.2)\r\n")
        var sub = session([("TCPLOCALPORT", "587"), ("DISABLE_VRFY", "")])
        _ = sub.greeting()
        #expect(!say(&sub, "EHLO x").contains("ETRN"))
        #expect(say(&sub, "ETRN x.com") == "502 command etrn not recognized (#5.5.2)\r\n")
        #expect(say(&sub, "VRFY x") == "502 command vrfy not recognized (#5.5.2)\r\n")
    }

    @Test("sender DNS check: the lookup's verdict, NODNSCHECK skips it, null sender never checked")
    func senderDNS() {
        var s = session()
        s.senderDomainLookup = { $0 == "good.org" ? .exists : $0 == "slow.org" ? .temporaryFailure : .missing }
        _ = s.greeting(); _ = say(&s, "HELO c")
        #expect(say(&s, "MAIL FROM:<a@good.org>") == "250 ok\r\n")
        #expect(say(&s, "MAIL FROM:<a@gone.org>") == "553 Bad sender's system address (#5.1.8)\r\n")
        #expect(say(&s, "MAIL FROM:<a@slow.org>") == "451 Sorry, there is a DNS temporary failure (#4.4.3)\r\n")
        #expect(say(&s, "MAIL FROM:<>") == "250 ok\r\n")
        var n = session([("NODNSCHECK", "")])
        n.senderDomainLookup = { _ in .missing }
        _ = n.greeting(); _ = say(&n, "HELO c")
        #expect(say(&n, "MAIL FROM:<a@gone.org>") == "250 ok\r\n")
    }

    @Test("fuzz: random lines never crash the parser or the session; replies are CRLF-terminated SMTP codes")
    func fuzz() {
        var rng = SystemRandomNumberGenerator()
        let verbs = ["HELO", "EHLO", "MAIL FROM:", "RCPT TO:", "DATA", "AUTH", "AUTH LOGIN", "AUTH PLAIN", "AUTH CRAM-MD5",
                     "RSET", "NOOP", "VRFY", "HELP", "STARTTLS", "ETRN", "", "*"]
        var bad = 0
        for _ in 0..<300 {
            var s = session(auth: true)
            _ = s.greeting()
            for _ in 0..<40 {
                var line = Array((verbs.randomElement(using: &rng) ?? "").utf8)
                let extra = Int.random(in: 0..<40, using: &rng)
                for _ in 0..<extra { line.append(UInt8.random(in: 0...255, using: &rng)) }
                let step = s.command(line)
                if case .authenticate(let r) = step.action { _ = s.authFinished(r, status: [0, 1, 3, 111].randomElement(using: &rng)) }
                let reply = step.reply
                if !reply.isEmpty && (reply.count < 5 || reply.suffix(2) != [13, 10] || !(reply[0] >= 50 && reply[0] <= 53)) { bad += 1 }
                _ = SMTPAddress.parse(line)
                _ = MailParameters.parse(line)
                _ = Base64.decode(line)
            }
        }
        #expect(bad == 0)
    }
}

@Suite("SMTP DATA receiver properties")
struct SMTPDataReceiverPropertyTests {
    @Test("any body survives dot-stuffing and CRLF encoding, whatever the chunking")
    func roundTrip() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            // Lines of arbitrary bytes except CR and LF, some starting with dots.
            var lines: [[UInt8]] = []
            for _ in 0..<Int.random(in: 0...12, using: &rng) {
                var line: [UInt8] = Bool.random(using: &rng) ? [46] : []
                for _ in 0..<Int.random(in: 0...30, using: &rng) {
                    var b = UInt8.random(in: 0...255, using: &rng)
                    if b == 10 || b == 13 { b = 46 }
                    line.append(b)
                }
                lines.append(line)
            }
            var wire: [UInt8] = []
            for line in lines { wire += (line.first == 46 ? [46] : []) + line + [13, 10] }
            wire += Array(".\r\nNOOP\r\n".utf8)
            var expected: [UInt8] = []
            for line in lines { expected += line + [10] }
            var receiver = SMTPDataReceiver(allowBareLF: false, databytes: 0)
            var out: [UInt8] = []
            var offset = 0
            var end: Int?
            while offset < wire.count, end == nil {
                let size = Int.random(in: 1...50, using: &rng)
                let piece = Array(wire[offset..<min(wire.count, offset + size)])
                switch piece.withUnsafeBytes({ receiver.feed($0, into: &out) }) {
                case .more: offset += piece.count
                case .end(let used): end = offset + used
                case .bareLF: end = -1
                }
            }
            #expect(out == expected)
            #expect(end == wire.count - 6)
        }
    }
}

@Suite("SMTP controls")
struct SMTPControlsTests {
    /// A control dir with text files and cdb files (keys with empty values).
    /// The controls and a function removing the files (lookups such as `recipients` open
    /// their cdb files at RCPT time).
    func controlsKept(text: [String: String], cdb: [String: [String]] = [:], env: [(String, String)] = []) -> (SMTPControls, () -> Void) {
        var template = Array("/tmp/smtp-controls-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else { return (SMTPControls(controlDirectory: ""), {}) }
        let dir = String(cString: made)
        var written: [String] = []
        for (name, content) in text {
            _ = FD.openTrunc(dir + "/" + name).map { fd in _ = FD.writeAll(fd, Array(content.utf8)); FD.close(fd) }
            written.append(name)
        }
        for (name, keys) in cdb {
            _ = FD.openTrunc(dir + "/" + name).map { fd in
                let w = CDBWriter(fd: fd)
                _ = w.start()
                for k in keys { _ = w.add(key: k, value: "") }
                _ = w.finish()
                FD.close(fd)
            }
            written.append(name)
        }
        let loaded = SMTPControls.load(Environment([("CONTROLDIR", dir), ("SYSCONFDIR", dir)] + env))
        return (loaded, { for name in written { unlink(dir + "/" + name) }; rmdir(dir) })
    }

    func controls(text: [String: String], cdb: [String: [String]] = [:]) -> SMTPControls {
        let (c, cleanup) = controlsKept(text: text, cdb: cdb)
        cleanup()
        return c
    }

    @Test("morercpthosts.cdb, badmailfrom.cdb, relaydomains, multi-line smtpgreeting, localiphost")
    func files() {
        let c = controls(text: ["me": "mx.test\n", "smtpgreeting": "first line\nsecond line\n", "rcpthosts": "example.com\n",
                                "relaydomains": ".trusted.net:\n", "localiphost": "local.test\n", "databytes": "1000\n"],
                         cdb: ["morercpthosts.cdb": ["more.org"], "badmailfrom.cdb": ["@spam.org", "x@y.org"]])
        #expect(c.problem == nil)
        #expect(c.recipientAllowed(Array("u@more.org".utf8)) == .success(true))
        #expect(c.recipientAllowed(Array("u@MORE.org".utf8)) == .success(true))
        #expect(c.recipientAllowed(Array("u@less.org".utf8)) == .success(false))
        #expect(c.recipientAllowed(Array("postmaster".utf8)) == .success(true))
        #expect(c.badMailFrom.matches(Array("a@spam.org".utf8)) == .success(true))
        #expect(c.badMailFrom.matches(Array("X@Y.org".utf8)) == .success(true))
        #expect(c.badMailFrom.matches(Array("z@y.org".utf8)) == .success(false))
        #expect(c.databytes == 1000)

        var settings = SMTPSettings.make(Environment([("TCPREMOTEIP", "198.51.100.7"), ("TCPREMOTEHOST", "host.trusted.net"),
                                                      ("TCPLOCALIP", "203.0.113.5")]), controls: c, authHostname: nil)
        settings.extraGreeting = false
        #expect(settings.relayClient == [])
        var s = SMTPSession(settings: settings, controls: c)
        #expect(String(decoding: s.greeting().reply, as: UTF8.self) == "220-first line\r\n220 second line\r\n")
        _ = s.command(Array("HELO x".utf8))
        _ = s.command(Array("MAIL FROM:<a@b.org>".utf8))
        _ = s.command(Array("RCPT TO:<postmaster@[203.0.113.5]>".utf8))
        _ = s.command(Array("RCPT TO:<u@anywhere.com>".utf8))
        #expect(s.recipients.map { String(decoding: $0, as: UTF8.self) } == ["postmaster@local.test", "u@anywhere.com"])
    }

    @Test("badmailpatterns with negation, badrcptpatterns, goodrcptpatterns override; QREGEX turns them off")
    func patterns() {
        let files = ["me": "mx.test\n", "rcpthosts": "example.com\n",
                     "badmailpatterns": "*@earthlink.net\n!fred@earthlink.net\n[0-9][0-9][0-9]@*.com\n*%*\n",
                     "badrcptpatterns": "spam*@example.com\n", "goodrcptpatterns": "spamtrap-ok@*\n"]
        let c = controls(text: files)
        for (sender, bad) in [("joe@EarthLink.net", true), ("fred@earthlink.net", false), ("123@x.com", true),
                              ("1234@x.com", false), ("a%b@c.org", true), ("ok@else.org", false)] {
            #expect(c.badMailPatterns.matches(Array(sender.utf8)) == bad, "\(sender)")
        }
        var settings = SMTPSettings.make(Environment([("TCPREMOTEIP", "192.0.2.1")]), controls: c, authHostname: nil)
        settings.extraGreeting = false
        var s = SMTPSession(settings: settings, controls: c)
        _ = s.greeting()
        _ = s.command(Array("HELO x".utf8))
        #expect(String(decoding: s.command(Array("MAIL FROM:<joe@earthlink.net>".utf8)).reply, as: UTF8.self).hasPrefix("553 "))
        _ = s.command(Array("MAIL FROM:<fred@earthlink.net>".utf8))
        #expect(String(decoding: s.command(Array("RCPT TO:<spammer@example.com>".utf8)).reply, as: UTF8.self).hasPrefix("553 "))
        #expect(String(decoding: s.command(Array("RCPT TO:<spamtrap-ok@example.com>".utf8)).reply, as: UTF8.self) == "250 ok\r\n")
        let (off, cleanup) = controlsKept(text: files, env: [("QREGEX", "1")])
        cleanup()
        #expect(!off.badMailPatterns.matches(Array("joe@earthlink.net".utf8)))
    }

    @Test("CHECKRECIPIENT with MAX_RCPT_ERRCOUNT: unknown recipients counted, 421 and close at the limit")
    func recipientErrors() {
        let (c, cleanup) = controlsKept(text: ["me": "mx\n", "rcpthosts": "example.com\n", "recipients": "@example.com:r.cdb\n"],
                                        cdb: ["r.cdb": [":joe@example.com"]])
        defer { cleanup() }
        var settings = SMTPSettings.make(Environment([("TCPREMOTEIP", "192.0.2.1"), ("CHECKRECIPIENT", ""), ("MAX_RCPT_ERRCOUNT", "2")]),
                                         controls: c, authHostname: nil)
        settings.extraGreeting = false
        var s = SMTPSession(settings: settings, controls: c)
        _ = s.greeting(); _ = s.command(Array("HELO x".utf8)); _ = s.command(Array("MAIL FROM:<a@b.org>".utf8))
        #expect(String(decoding: s.command(Array("RCPT TO:<joe@example.com>".utf8)).reply, as: UTF8.self) == "250 ok\r\n")
        #expect(String(decoding: s.command(Array("RCPT TO:<x@example.com>".utf8)).reply, as: UTF8.self).hasPrefix("550 sorry, a@b.org mailbox <x@example.com> is absent"))
        let last = s.command(Array("RCPT TO:<y@example.com>".utf8))
        #expect(String(decoding: last.reply, as: UTF8.self) == "421 too many invalid addresses, goodbye (#4.7.1)\r\n" && last.action == .close(1))
    }

    @Test("ODMR port without AUTH arguments: no service")
    func odmr() {
        let c = controls(text: ["me": "mx\n"])
        var s = SMTPSession(settings: SMTPSettings.make(Environment([("TCPLOCALPORT", "366")]), controls: c, authHostname: nil), controls: c)
        #expect(String(decoding: s.greeting().reply, as: UTF8.self).hasPrefix("421 mx SMTP service unavailable"))
        #expect(String(decoding: s.command(Array("MAIL FROM:<a@b>".utf8)).reply, as: UTF8.self) == "502 command mail not recognized (#5.5.2)\r\n")
    }

    @Test("missing me and smtpgreeting, or a bad number, is a problem the server reports")
    func problems() {
        #expect(controls(text: [:]).problem != nil)
        #expect(controls(text: ["me": "mx\n", "databytes": "lots\n"]).problem?.contains("databytes") == true)
    }

    @Test("recipients: cdb per domain, legacy cdb, '!' pass-through, VERP base")
    func recipients() {
        let (c, cleanup) = controlsKept(text: ["me": "mx\n", "recipients": "!open.org\n@example.com:rcpt.cdb\nlegacy.cdb\n"],
                                        cdb: ["rcpt.cdb": [":joe@example.com", ":list-@example.com"], "legacy.cdb": [":ann@other.org"]])
        defer { cleanup() }
        #expect(c.recipientListed(Array("Joe@example.com".utf8)) == .found)
        #expect(c.recipientListed(Array("list-anything@example.com".utf8)) == .found)
        #expect(c.recipientListed(Array("nobody@example.com".utf8)) == .absent)
        #expect(c.recipientListed(Array("ann@other.org".utf8)) == .found)
        #expect(c.recipientListed(Array("x@open.org".utf8)) == .found)
        #expect(controls(text: ["me": "mx\n"]).recipientListed(Array("a@b".utf8)) == .notConfigured)
    }
}
