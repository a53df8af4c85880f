// SMTP both ways with a real postfix on loopback: postfix relays into our qmail-smtpd (plain
// and STARTTLS), our qmail-remote delivers into postfix (plain and STARTTLS) and turns
// postfix's 4xx/5xx replies into the reports qmail-rspawn expects. One private postfix
// instance per test; skipped when postfix is not installed or we are not root.
import Core
import Glibc
import Testing

@Suite("postfix interop", .serialized,
       .enabled(if: PrivatePostfix.available, "postfix (Debian package) not installed, or not running as root"))
struct PostfixInteropTests {
    static let message = "From: alice@pf.test\nTo: u@example.com\nSubject: interop\n\nfirst line\n.leading dot\n"

    /// The message queued by `fixture` for `recipient`, waiting for postfix to relay it.
    func awaitQueued(_ fixture: SmtpdFixture, _ recipient: String) -> (envelope: String, message: String)? {
        var found: (envelope: String, message: String)?
        _ = eventually(within: 20) {
            found = fixture.queued.first { $0.envelope.hasSuffix("\0T\(recipient)\0") }
            return found != nil
        }
        return found
    }

    @Test("postfix relays into our qmail-smtpd: plain, STARTTLS (smtp_tls_security_level encrypt) and SMTPS (wrapper mode)")
    func postfixToUs() throws {
        let plain = SmtpdFixture()
        try #require(plain.start() != nil)
        let secure = SmtpdFixture(tls: true)
        try #require(secure.certs != nil)
        try #require(secure.start(["STARTTLS": ""]) != nil)
        let wrapped = SmtpdFixture(tls: true)
        try #require(wrapped.certs != nil)
        try #require(wrapped.start(["SMTPS": "1"]) != nil)
        let plainPort = try #require(plain.server?.port)
        let tlsPort = try #require(secure.server?.port)
        let smtpsPort = try #require(wrapped.server?.port)

        let box = Sandbox()
        let etc = box.at("postfix/etc")
        let pf = try #require(PrivatePostfix(in: box, settings: [
            "transport_maps = texthash:\(etc)/transport",
            "smtp_tls_security_level = may",
            "smtp_tls_policy_maps = texthash:\(etc)/tls_policy",
        ], services: [
            "smtpwrap unix - - n - - smtp -o smtp_tls_wrappermode=yes -o smtp_tls_security_level=encrypt",
        ], files: [
            "transport": "example.com smtp:[127.0.0.1]:\(plainPort)\ntls.sub.example.com smtp:[127.0.0.1]:\(tlsPort)\n"
                + "smtps.sub.example.com smtpwrap:[127.0.0.1]:\(smtpsPort)\n",
            "tls_policy": "[127.0.0.1]:\(tlsPort) encrypt\n",
        ]))

        let injected = pf.sendmail(from: "alice@pf.test", to: ["u@example.com"], message: Self.message)
        #expect(injected.exitCode == 0, "\(injected.err)")
        let q = try #require(awaitQueued(plain, "u@example.com"), "\(pf.maillog)")
        #expect(q.envelope.hasSuffix("\0Falice@pf.test\0Tu@example.com\0"), "\(q.envelope)")
        let lines = q.message.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        // Ours on top: queue, then smtpd naming postfix's HELO; postfix's own (pickup) below.
        #expect(lines.first?.hasPrefix("Received: indimail-mta queue ") == true, "\(lines)")
        #expect(lines.contains { $0.hasPrefix("Received: indimail-mta smtpd ") && $0.hasSuffix(" (HELO pf.test) ([127.0.0.1])") }, "\(lines)")
        #expect(lines.contains { $0.hasPrefix("  by ") && $0.contains(" with ESMTP; ") }, "\(lines)")
        #expect(lines.contains { $0.hasPrefix("Received: by pf.test (Postfix, from userid 0)") }, "\(lines)")
        #expect(lines.contains("Subject: interop") && lines.contains(".leading dot") && lines.contains("first line"))
        #expect(eventually(within: 10) { pf.maillog.contains("status=sent (250 ok ") }, "\(pf.maillog)")
        #expect(pf.maillog.contains("to=<u@example.com>, relay=127.0.0.1[127.0.0.1]:\(plainPort)"), "\(pf.maillog)")

        let again = pf.sendmail(from: "alice@pf.test", to: ["v@tls.sub.example.com"], message: Self.message)
        #expect(again.exitCode == 0, "\(again.err)")
        let t = try #require(awaitQueued(secure, "v@tls.sub.example.com"), "\(pf.maillog)")
        #expect(t.envelope.hasSuffix("\0Falice@pf.test\0Tv@tls.sub.example.com\0"))
        #expect(t.message.contains(" with ESMTPS (TLSv1.") && t.message.contains("(HELO pf.test)"), "\(t.message)")
        // postfix logs the delivery after our 250: wait for the line.
        var log = ""
        #expect(eventually(within: 10) { log = pf.maillog; return occurrences("status=sent", in: log) == 2 }, "\(log)")
        #expect(log.contains("TLS connection established to 127.0.0.1[127.0.0.1]:\(tlsPort): TLSv1."), "\(log)")
        #expect(log.contains("to=<v@tls.sub.example.com>, relay=127.0.0.1[127.0.0.1]:\(tlsPort)"), "\(log)")

        // A big 8-bit body with leading dots, null sender: the body arrives byte for byte.
        // A bounce may have only one recipient (553 for the next, as the reference does);
        // postfix's own log shows that reply.
        var body = ""
        for i in 0..<6000 { body += i % 5 == 0 ? ".dot line \(i) caf\u{e9}\n" : "line \(i) of a longer body\n" }
        let big = pf.sendmail(from: "", to: ["w@example.com", "x@example.com"], message: "Subject: big\n\n" + body)
        #expect(big.exitCode == 0, "\(big.err)")
        let b = try #require(awaitQueued(plain, "w@example.com"), "\(pf.maillog)")
        #expect(b.envelope.hasSuffix("\0F\0Tw@example.com\0"), "\(b.envelope)")
        // (postfix adds Message-Id, Date and From below the Subject.)
        #expect(b.message.contains("\nSubject: big\n") && b.message.hasSuffix("\n\n" + body),
                "body differs: \(b.message.utf8.count) bytes")
        #expect(eventually(within: 10) {
            pf.maillog.contains("to=<x@example.com>, relay=127.0.0.1[127.0.0.1]:\(plainPort)")
                && pf.maillog.contains("status=bounced (host 127.0.0.1[127.0.0.1] said: 553 sorry, bounce messages should have a single envelope recipient (#5.7.1) (in reply to RCPT TO command))")
        }, "\(pf.maillog)")
        // Several recipients in one transaction (postfix pipelines MAIL, RCPT and DATA).
        let multi = pf.sendmail(from: "alice@pf.test", to: ["y@example.com", "z@example.com"], message: Self.message)
        #expect(multi.exitCode == 0, "\(multi.err)")
        let m = try #require(awaitQueued(plain, "z@example.com"), "\(pf.maillog)")
        #expect(m.envelope.hasSuffix("\0Falice@pf.test\0Ty@example.com\0Tz@example.com\0"), "\(m.envelope)")

        // SMTPS: postfix's TLS wrapper mode against our smtpd with SMTPS set.
        let wrap = pf.sendmail(from: "alice@pf.test", to: ["s@smtps.sub.example.com"], message: Self.message)
        #expect(wrap.exitCode == 0, "\(wrap.err)")
        let w = try #require(awaitQueued(wrapped, "s@smtps.sub.example.com"), "\(pf.maillog)")
        #expect(w.message.contains(" with ESMTPS (TLSv1.") && w.message.contains("(HELO pf.test)"), "\(w.message)")
        #expect(eventually(within: 10) {
            pf.maillog.contains("TLS connection established to 127.0.0.1[127.0.0.1]:\(smtpsPort): TLSv1.")
                && pf.maillog.contains("to=<s@smtps.sub.example.com>, relay=127.0.0.1[127.0.0.1]:\(smtpsPort)")
        }, "\(pf.maillog)")
        #expect(plain.queued.count == 3 && secure.queued.count == 1 && wrapped.queued.count == 1)
    }

    @Test("postfix authenticates to our qmail-smtpd (SASL PLAIN, LOGIN and CRAM-MD5 through checkpassword) to relay")
    func postfixAuthenticatesToUs() throws {
        let us = SmtpdFixture()
        try #require(us.start(arguments: ["mx.test", us.checkpassword, "/bin/false"]) != nil)
        let port = try #require(us.server?.port)
        let box = Sandbox()
        let etc = box.at("postfix/etc")
        let pf = try #require(PrivatePostfix(in: box, settings: [
            "transport_maps = texthash:\(etc)/transport",
            "smtp_sasl_auth_enable = yes",
            "smtp_sasl_password_maps = texthash:\(etc)/sasl_passwd",
            "smtp_sasl_security_options = noanonymous",
            "smtp_sasl_mechanism_filter = plain",
        ], services: [
            "smtplogin unix - - n - - smtp -o smtp_sasl_mechanism_filter=login",
            "smtpcram unix - - n - - smtp -o smtp_sasl_mechanism_filter=cram-md5",
        ], files: [
            "transport": "plain.org smtp:[127.0.0.1]:\(port)\nlogin.org smtplogin:[127.0.0.1]:\(port)\n"
                + "cram.org smtpcram:[127.0.0.1]:\(port)\n",
            "sasl_passwd": "[127.0.0.1]:\(port) joe:secret\n",
        ]))
        for domain in ["plain", "login", "cram"] {
            let r = pf.sendmail(from: "alice@pf.test", to: ["r@\(domain).org"], message: Self.message)
            #expect(r.exitCode == 0, "\(r.err)")
        }
        // Not in rcpthosts: only the authenticated session may relay there.
        for domain in ["plain", "login", "cram"] {
            let q = awaitQueued(us, "r@\(domain).org")
            #expect(q?.envelope.hasSuffix("\0Falice@pf.test\0Tr@\(domain).org\0") == true, "\(domain): \(pf.maillog)")
        }
        // qmail-smtpd logs the session after its reply: the line may trail the queued files.
        var logged: [String] = []
        for (domain, method) in [("plain", "PLAIN"), ("login", "LOGIN"), ("cram", "CRAM-MD5")] {
            let found = eventually(within: 10) {
                logged = us.server?.log.filter { $0.hasPrefix("qmail-smtpd: pid ") } ?? []
                return logged.contains { $0.contains(" HELO <pf.test> MAIL from <alice@pf.test> RCPT <r@\(domain).org> AUTH <joe: AUTH \(method)> ") }
            }
            #expect(found, "\(logged)")
        }
    }

    /// A postfix delivering pf.test into Maildirs (virtual), with access maps that refuse
    /// some senders and recipients, and header_checks that refuse one message.
    func receivingPostfix(_ box: Sandbox, certs: TestCertificates?, extra: [String] = []) -> PrivatePostfix? {
        let etc = box.at("postfix/etc")
        var settings = extra + [
            "virtual_mailbox_domains = pf.test",
            "virtual_mailbox_maps = texthash:\(etc)/vmailbox",
            "virtual_mailbox_base = \(box.at("postfix/vmail"))",
            "virtual_uid_maps = static:65534",
            "virtual_gid_maps = static:65534",
            "smtpd_delay_reject = no",
            "smtpd_sender_restrictions = check_sender_access texthash:\(etc)/senders",
            "smtpd_recipient_restrictions = check_recipient_access texthash:\(etc)/recipients, permit",
            "header_checks = regexp:\(etc)/header_checks",
            "smtpd_data_restrictions = check_sender_access texthash:\(etc)/data_senders",
            "smtpd_end_of_data_restrictions = check_sender_access texthash:\(etc)/eod_senders",
        ]
        if let certs {
            settings += ["smtpd_tls_security_level = may", "smtpd_tls_cert_file = \(certs.serverCert)",
                         "smtpd_tls_key_file = \(certs.serverKey)"]
        }
        return PrivatePostfix(in: box, settings: settings, files: [
            "vmailbox": "bob@pf.test bob/\ncarol@pf.test carol/\njos\u{E9}@pf.test jose/\n",
            "senders": "slow@client.test 450 4.7.1 slow down\nbad@client.test 553 5.7.1 go away\n",
            "recipients": "later@pf.test 450 4.2.0 try later\nnever@pf.test 550 5.1.1 no such user\n",
            "header_checks": "/^Subject: reject me/ REJECT content not wanted\n",
            "data_senders": "datalater@client.test 451 4.3.0 data later\ndatabad@client.test 554 5.7.1 no data\n",
            "eod_senders": "eodlater@client.test 452 4.3.1 after the dot\n",
        ])
    }

    @Test("our qmail-remote delivers into postfix (plain, then STARTTLS verified against tlshosts/); postfix's 4xx/5xx become s/h/Z/D")
    func usToPostfix() throws {
        let f = RemoteFixture()
        let certs = try #require(TestCertificates(in: f.box))
        let pf = try #require(receivingPostfix(f.box, certs: certs))
        f.control("smtproutes", "pf.test:127.0.0.1:\(pf.port)\n")
        let accepted = "K127.0.0.1 accepted message - Protocol SMTP.\nRemote host said: 250 2.0.0 Ok: queued as "

        // Plain: no client certificate, so no STARTTLS. One recipient each way.
        let o = f.remote(host: "pf.test", recipients: ["bob@pf.test", "later@pf.test", "never@pf.test"])
        #expect(o.exitCode == 0)
        let expected = "rFrom: <alice@client.test> RCPT: <bob@pf.test> \\0"
            + "sFrom: <alice@client.test> RCPT: <later@pf.test> 127.0.0.1 does not like recipient.\n"
            + "Remote host said: 450 4.2.0 <later@pf.test>: Recipient address rejected: try later\n\\0"
            + "hFrom: <alice@client.test> RCPT: <never@pf.test> 127.0.0.1 does not like recipient.\n"
            + "Remote host said: 550 5.1.1 <never@pf.test>: Recipient address rejected: no such user\n\\0"
            + accepted
        let text = reports(o)
        #expect(text.hasPrefix(expected) && text.hasSuffix("\n\\0"), "\(text)")
        var delivered: [String] = []
        #expect(eventually(within: 20) { delivered = pf.maildir("bob"); return delivered.count == 1 }, "\(pf.maillog)")
        let mail = delivered.first ?? ""
        #expect(mail.contains("Received: from client.test (localhost [127.0.0.1])\n\tby pf.test (Postfix) with ESMTP id "), "\(mail)")
        #expect(mail.contains("\nSubject: hi\n") && mail.hasSuffix("\n\nhello\n.dot\n"), "\(mail)")
        #expect(!pf.maillog.contains("TLS connection established"), "\(pf.maillog)")

        // STARTTLS: a client certificate makes qmail-remote ask; postfix's certificate is
        // checked against the CA in tlshosts/127.0.0.1.pem.
        f.box.write("etc/certs/clientcert.pem", contents(certs.client) ?? [])
        f.box.write("etc/certs/tlshosts/127.0.0.1.pem", contents(certs.ca) ?? [])
        var body = ""
        for i in 0..<6000 { body += i % 7 == 0 ? ".line \(i) \u{e9}t\u{e9}\n" : "line \(i) of the secret body\n" }
        let s = f.remote(host: "pf.test", recipients: ["carol@pf.test"], message: "Subject: over tls\n\n" + body)
        #expect(reports(s).hasPrefix("rFrom: <alice@client.test> RCPT: <carol@pf.test> \\0"
            + "K127.0.0.1 accepted message - Protocol SMTPS.\nRemote host said: 250 2.0.0 Ok: queued as "), "\(reports(s))")
        var tlsMail: [String] = []
        #expect(eventually(within: 20) { tlsMail = pf.maildir("carol"); return tlsMail.count == 1 }, "\(pf.maillog)")
        #expect(tlsMail.first?.contains("with ESMTPS id ") == true, "\(tlsMail)")
        #expect(tlsMail.first?.hasSuffix("\n\n" + body) == true, "body differs: \(tlsMail.first?.utf8.count ?? 0) bytes")
        #expect(pf.maillog.contains("TLS connection established from localhost[127.0.0.1]: TLSv1."), "\(pf.maillog)")
        // The wrong CA: verification fails (Z, as the reference words it), nothing is sent in clear.
        let otherBox = Sandbox()
        let other = try #require(TestCertificates(in: otherBox))
        f.box.write("etc/certs/tlshosts/127.0.0.1.pem", contents(other.ca) ?? [])
        let refused = reports(f.remote(host: "pf.test", recipients: ["carol@pf.test"]))
        let pem = f.box.at("etc/certs/tlshosts/127.0.0.1.pem")
        #expect(refused == "ZTLS unable to verify server with \(pem): unable to get local issuer certificate; connected to 127.0.0.1.\n"
            + "Remote host said: TLS unable to verify server with \(pem): unable to get local issuer certificate\\0", "\(refused)")
        unlink(f.box.at("etc/certs/tlshosts/127.0.0.1.pem"))

        // Sender refused at MAIL: 4xx -> Z (retry), 5xx -> D (bounce).
        let slow = f.remote(host: "pf.test", sender: "slow@client.test", recipients: ["bob@pf.test"])
        #expect(reports(slow) == "ZConnected to 127.0.0.1 but sender was rejected.\n"
            + "Remote host said: 450 4.7.1 <slow@client.test>: Sender address rejected: slow down\n\\0")
        let bad = f.remote(host: "pf.test", sender: "bad@client.test", recipients: ["bob@pf.test"])
        #expect(reports(bad) == "DConnected to 127.0.0.1 but sender was rejected.\n"
            + "Remote host said: 553 5.7.1 <bad@client.test>: Sender address rejected: go away\n\\0")

        // Every recipient refused: the connection gives up with the last reply.
        let none = f.remote(host: "pf.test", recipients: ["later@pf.test"])
        #expect(reports(none).hasSuffix("DGiving up on 127.0.0.1.\n"
            + "Remote host said: 450 4.2.0 <later@pf.test>: Recipient address rejected: try later\n\\0"), "\(reports(none))")

        // Content refused after the dot: 5xx -> D for the whole message.
        let content = f.remote(host: "pf.test", recipients: ["bob@pf.test"], message: "Subject: reject me\n\nx\n")
        #expect(reports(content) == "rFrom: <alice@client.test> RCPT: <bob@pf.test> \\0"
            + "D127.0.0.1 failed after I sent the message.\nRemote host said: 550 5.7.1 content not wanted\n\\0")

        // SMTPUTF8: a UTF-8 mailbox, with postfix's SMTPUTF8 extension.
        let utf8 = f.remote(host: "pf.test", recipients: ["jos\u{E9}@pf.test"], message: "Subject: utf8\n\nol\u{E9}\n",
                            environment: ["SMTPUTF8": ""])
        // (The client certificate is still there, so this goes over STARTTLS; the local part
        // is quoted as qmail's quote() does for bytes outside printable ASCII.)
        #expect(reports(utf8).hasPrefix("rFrom: <alice@client.test> RCPT: <\"jos??\"@pf.test> \\0"
            + "K127.0.0.1 accepted message - Protocol SMTPS.\nRemote host said: 250 2.0.0 Ok: queued as "),
                "\(reports(utf8))")
        var jose: [String] = []
        #expect(eventually(within: 20) { jose = pf.maildir("jose"); return jose.count == 1 }, "\(pf.maillog)")
        #expect(jose.first?.hasSuffix("\n\nol\u{E9}\n") == true && jose.first?.contains("with UTF8SMTP") == true, "\(jose)")

        // Refused at DATA (4xx -> Z, 5xx -> D) and after the dot (4xx -> Z).
        for (sender, text) in [
            ("datalater", "Z127.0.0.1 failed on DATA command.\nRemote host said: 451 4.3.0 <datalater@client.test>: Sender address rejected: data later\n"),
            ("databad", "D127.0.0.1 failed on DATA command.\nRemote host said: 554 5.7.1 <databad@client.test>: Sender address rejected: no data\n"),
            ("eodlater", "Z127.0.0.1 failed after I sent the message.\nRemote host said: 452 4.3.1 <eodlater@client.test>: Sender address rejected: after the dot\n"),
        ] {
            let r = f.remote(host: "pf.test", sender: "\(sender)@client.test", recipients: ["bob@pf.test"])
            #expect(reports(r) == "rFrom: <\(sender)@client.test> RCPT: <bob@pf.test> \\0" + text + "\\0")
        }
        #expect(pf.maildir("bob").count == 1)
    }

    @Test("our qmail-remote pipelines into postfix: an 8-bit message (BODY=8BITMIME) to three recipients, one refused")
    func pipelined8BitToPostfix() throws {
        let f = RemoteFixture()
        // smtpd logs the commands it reads from us (debug_peer_list).
        let pf = try #require(receivingPostfix(f.box, certs: nil, extra: ["debug_peer_list = 127.0.0.1"]))
        f.control("smtproutes", "pf.test:127.0.0.1:\(pf.port)\n")
        let message = "Subject: caf\u{E9}\n\nd\u{E9}j\u{E0} vu\n.dot \u{FC}ber\n"
        let recipients = ["bob@pf.test", "never@pf.test", "carol@pf.test"]
        let o = f.remote(host: "pf.test", recipients: recipients, message: message)
        let expected = "rFrom: <alice@client.test> RCPT: <bob@pf.test> \\0"
            + "hFrom: <alice@client.test> RCPT: <never@pf.test> 127.0.0.1 does not like recipient.\n"
            + "Remote host said: 550 5.1.1 <never@pf.test>: Recipient address rejected: no such user\n\\0"
            + "rFrom: <alice@client.test> RCPT: <carol@pf.test> \\0"
            + "K127.0.0.1 accepted message - Protocol SMTP.\nRemote host said: 250 2.0.0 Ok: queued as "
        #expect(reports(o).hasPrefix(expected), "\(reports(o))")
        for box in ["bob", "carol"] {
            var delivered: [String] = []
            #expect(eventually(within: 20) { delivered = pf.maildir(box); return delivered.count == 1 }, "\(pf.maillog)")
            #expect(delivered.first?.hasSuffix("\n\nd\u{E9}j\u{E0} vu\n.dot \u{FC}ber\n") == true, "\(delivered)")
        }
        let size = message.utf8.count
        let log = pf.maillog
        #expect(log.contains(": MAIL FROM:<alice@client.test> SIZE=\(size) BODY=8BITMIME"), "\(log)")
        #expect(!log.contains("improper command pipelining"), "\(log)")

        // One command at a time: the same reports (up to postfix's queue id).
        let single = f.remote(host: "pf.test", recipients: recipients, message: message, environment: ["DISABLE_PIPELINING": "1"])
        #expect(reports(single).hasPrefix(expected), "\(reports(single))")
    }

    @Test("qmail-rspawn running our qmail-remote against postfix: one K, Z or D report per delivery")
    func rspawnToPostfix() throws {
        let f = SpawnFixture()
        let pf = try #require(receivingPostfix(f.box, certs: nil))
        f.box.write("etc/control/me", "client.test\n")
        f.box.write("etc/control/smtproutes", "pf.test:127.0.0.1:\(pf.port)\n")
        f.box.write("queue/lock/tcpto", [UInt8](repeating: 0, count: 2048))
        _ = f.box.commandLinks(["qmail-remote"], binary: Build.indimailTLS)
        f.environment["QMAILREMOTE"] = f.box.at("bin/qmail-remote")
        f.environment["DNSCACHEIP"] = "127.0.0.1:\(closedUDPPort())"
        let id = f.message(21, "Subject: spawned\n\nthrough qmail-rspawn\n")
        let p = try #require(f.start("qmail-rspawn"))
        #expect(p.handshake() == 500)
        let deliveries: [(slot: Int, sender: String, recipient: String)] = [
            (1, "alice@client.test", "bob@pf.test"), (2, "alice@client.test", "later@pf.test"),
            (3, "alice@client.test", "never@pf.test"), (4, "slow@client.test", "bob@pf.test"),
            (5, "bad@client.test", "bob@pf.test"),
        ]
        for d in deliveries {
            p.send(SpawnerProcess.command(slot: d.slot, id: id, sender: d.sender, recipient: d.recipient))
        }
        var got: [Int: String] = [:]
        for r in p.reports(deliveries.count, within: 30) { got[r.slot] = r.text }
        let later = "From: <alice@client.test> RCPT: <later@pf.test> 127.0.0.1 does not like recipient.\n"
            + "Remote host said: 450 4.2.0 <later@pf.test>: Recipient address rejected: try later\n"
        let never = "From: <alice@client.test> RCPT: <never@pf.test> 127.0.0.1 does not like recipient.\n"
            + "Remote host said: 550 5.1.1 <never@pf.test>: Recipient address rejected: no such user\n"
        let k = got[1] ?? ""
        #expect(k.hasPrefix("KFrom: <alice@client.test> RCPT: <bob@pf.test> 127.0.0.1 accepted message - Protocol SMTP.\n"
            + "Remote host said: 250 2.0.0 Ok: queued as "), "\(got)")
        // A refused recipient keeps the letter it was given; "Giving up" follows it.
        #expect(got[2] == "Z" + later + "Giving up on 127.0.0.1.\n" + later.split(separator: "\n")[1] + "\n", "\(got)")
        #expect(got[3] == "D" + never + "Giving up on 127.0.0.1.\n" + never.split(separator: "\n")[1] + "\n", "\(got)")
        #expect(got[4] == "ZConnected to 127.0.0.1 but sender was rejected.\n"
            + "Remote host said: 450 4.7.1 <slow@client.test>: Sender address rejected: slow down\n", "\(got)")
        #expect(got[5] == "DConnected to 127.0.0.1 but sender was rejected.\n"
            + "Remote host said: 553 5.7.1 <bad@client.test>: Sender address rejected: go away\n", "\(got)")
        #expect(p.finish() == .exited(0), "\(p.stderrString)")
        var delivered: [String] = []
        #expect(eventually(within: 20) { delivered = pf.maildir("bob"); return delivered.count == 1 }, "\(pf.maillog)")
        #expect(delivered.first?.hasSuffix("\n\nthrough qmail-rspawn\n") == true, "\(delivered)")
    }

    @Test("MX with dnsmasq: the best exchanger is dead, qmail-remote goes on to postfix at the next preference")
    func mxSkipsDeadHostToPostfix() throws {
        let net = "127.\(100 + Int(getpid()) % 100).\(Int.random(in: 1...250))"
        let box = Sandbox()
        let pf = try #require(PrivatePostfix(in: box, address: "\(net).2", port: 25, settings: [
            "virtual_mailbox_domains = mx.pf.test",
            "virtual_mailbox_maps = texthash:\(box.at("postfix/etc"))/vmailbox",
            "virtual_mailbox_base = \(box.at("postfix/vmail"))",
            "virtual_uid_maps = static:65534",
            "virtual_gid_maps = static:65534",
        ], files: ["vmailbox": "bob@mx.pf.test bob/\n"]))
        let dns = try #require(Dnsmasq(addresses: ["127.0.0.1"], zones: ["mx.pf.test"], records: [
            "--mx-host=mx.pf.test,dead.mx.pf.test,10", "--mx-host=mx.pf.test,live.mx.pf.test,20",
            "--host-record=dead.mx.pf.test,\(net).3", "--host-record=live.mx.pf.test,\(net).2",
        ]))
        let f = RemoteFixture()
        let o = f.remote(host: "mx.pf.test", recipients: ["bob@mx.pf.test"], environment: ["DNSCACHEIP": dns.dnscacheip()])
        #expect(reports(o).hasPrefix("rFrom: <alice@client.test> RCPT: <bob@mx.pf.test> \\0"
            + "K\(net).2 accepted message - Protocol SMTP.\nRemote host said: 250 2.0.0 Ok: queued as "), "\(reports(o))")
        var delivered: [String] = []
        #expect(eventually(within: 20) { delivered = pf.maildir("bob"); return delivered.count == 1 }, "\(pf.maillog)")
        #expect(delivered.first?.hasSuffix("\n\nhello\n.dot\n") == true, "\(delivered)")
        // The dead exchanger was tried first and is now in the timeout table.
        let table = f.tcpto
        #expect(table.count == 2048 && Array(table.prefix(5)) == [2, 0, 0, 0, 1])
        #expect(table.count == 2048 && Array(table[16..<20]) == IPAddress("\(net).3")?.bytes)
    }
}

/// How many times `needle` occurs in `text` (non-overlapping).
private func occurrences(_ needle: String, in text: String) -> Int {
    let hay = Array(text.utf8), n = Array(needle.utf8)
    guard !n.isEmpty else { return 0 }
    var count = 0, i = 0
    while i + n.count <= hay.count {
        if hay[i..<(i + n.count)].elementsEqual(n) { count += 1; i += n.count } else { i += 1 }
    }
    return count
}
