// dotls behind ucspi-tcp's tcpserver, driven by openssl s_client, by our tcpclient, and by
// a hand-made client that pipelines plaintext after STARTTLS.
import Core
import Glibc
import Testing
import TLS

@Suite struct DotlsTests {
    /// tcpserver running `dotls options… toy-server` for `proto`, with the toy's log.
    struct Fixture {
        let box: Sandbox
        let certs: TestCertificates
        let server: PeerServer
        let log: String
    }

    func fixture(_ proto: String, dotls options: [String], program: [String]? = nil,
                 environment: [String: String] = [:]) throws -> Fixture {
        let box = Sandbox()
        let certs = try #require(TestCertificates(in: box))
        let log = box.at("program.log")
        let toy = box.write("toy-\(proto)", toyServerScript(proto), mode: 0o755)
        var env = environment
        env["LOG"] = log
        let server = try #require(startTcpserver(box, [Build.indimailTLS, "dotls", "-n", certs.server] + options + (program ?? [toy]),
                                                 environment: env), "ucspi-tcp's tcpserver missing: run scripts/deps --test")
        return Fixture(box: box, certs: certs, server: server, log: log)
    }

    func sClient(_ port: UInt16, _ args: [String], input: String) -> Outcome {
        run(["openssl", "s_client", "-quiet", "-connect", "127.0.0.1:\(port)"] + args, stdin: Array(input.utf8), timeout: 20)
    }

    @Test func smtpStartTLSWithOpenSSLClient() throws {
        let f = try fixture("smtp", dotls: ["-s", "smtp"])
        let r = sClient(f.server.port, ["-starttls", "smtp"], input: "MAIL FROM:<a@b>\r\nDATA\r\nSTARTTLS\r\nEHLO inside\r\n.\r\nQUIT\r\n")
        #expect(r.out.contains("250 ok MAIL FROM:<a@b>"), "\(r.out) \(r.err)")
        #expect(r.out.contains("250 accepted"))
        #expect(r.out.contains("221 bye"))
        let seen = lines(f.log)
        // s_client's EHLO went through in clear; the rest arrived over TLS, the message
        // body untouched even where it looks like commands.
        #expect(seen.first?.hasPrefix("EHLO ") == true, "\(seen)")
        #expect(!seen.contains("STARTTLS"))
        #expect(seen.contains("body: STARTTLS"))
        #expect(seen.contains("body: EHLO inside"))
        #expect(seen.last == "QUIT")
    }

    @Test func ehloReplyOffersStartTLSAndPlaintextGoesOn() throws {
        let f = try fixture("smtp", dotls: ["-s", "smtp"])
        let fd = connectLoopback(f.server.port)
        try #require(fd >= 0)
        defer { close(fd) }
        #expect(readUntil(fd, "\r\n") == "220 toy ESMTP\r\n")
        FD.writeAll(fd, Array("EHLO plain\r\n".utf8))
        #expect(readUntil(fd, "250 STARTTLS\r\n") == "250-toy\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 STARTTLS\r\n")
        FD.writeAll(fd, Array("NOOP\r\n\r\nQUIT\r\n".utf8))
        #expect(readUntil(fd, "221 bye\r\n").hasSuffix("250 ok NOOP\r\n221 bye\r\n"))
        #expect(readSome(fd, atLeast: 1).isEmpty, "program gone: connection closed")
        #expect(lines(f.log) == ["EHLO plain", "NOOP", "QUIT"])
    }

    @Test func plaintextPipelinedAfterStartTLSNeverReachesTheProgram() throws {
        let f = try fixture("smtp", dotls: ["-s", "smtp"])
        let fd = connectLoopback(f.server.port)
        try #require(fd >= 0)
        defer { close(fd) }
        _ = readUntil(fd, "\r\n")
        FD.writeAll(fd, Array("EHLO x\r\n".utf8))
        _ = readUntil(fd, "250 STARTTLS\r\n")
        // One write: the request and an injected command right behind it.
        FD.writeAll(fd, Array("STARTTLS\r\nMAIL FROM:<evil@example.org>\r\n".utf8))
        #expect(readUntil(fd, "\r\n") == "220 ready for tls\r\n")
        let context = try OpenSSLLibrary.clientContext(TLSSettings()).get()
        let channel = try context.connect(fd: fd, serverName: "localhost", timeout: 10).get()
        channel.ioTimeout = 10
        #expect(channel.send("MAIL FROM:<good@example.org>\r\nQUIT\r\n"))
        let answer = channel.receive(1000)
        #expect(answer.contains("250 ok MAIL FROM:<good@example.org>"), "\(answer)")
        #expect(answer.contains("221 bye"))
        let seen = lines(f.log)
        #expect(seen == ["EHLO x", "MAIL FROM:<good@example.org>", "QUIT"], "\(seen)")
    }

    @Test func pop3StartTLS() throws {
        let f = try fixture("pop3", dotls: ["-s", "pop3"])
        // CAPA in clear gains STLS.
        let fd = connectLoopback(f.server.port)
        try #require(fd >= 0)
        _ = readUntil(fd, "\r\n")
        FD.writeAll(fd, Array("CAPA\r\n".utf8))
        #expect(readUntil(fd, ".\r\n") == "+OK list\r\nUSER\r\nUIDL\r\nSTLS\r\n.\r\n")
        close(fd)
        let f2 = try fixture("pop3", dotls: ["-s", "pop3"])
        let r = sClient(f2.server.port, ["-starttls", "pop3"], input: "USER joe\r\nQUIT\r\n")
        #expect(r.out.contains("+OK USER joe"), "\(r.out) \(r.err)")
        #expect(r.out.contains("+OK bye"))
        #expect(lines(f2.log) == ["USER joe", "QUIT"])
    }

    @Test func imapStartTLSTaggedAsStandardClientsSendIt() throws {
        let f = try fixture("imap", dotls: ["-s", "imap"])
        let r = sClient(f.server.port, ["-starttls", "imap"], input: "a1 NOOP\r\na2 LOGOUT\r\n")
        #expect(r.out.contains("a1 OK NOOP done"), "\(r.out) \(r.err)")
        #expect(r.out.contains("a2 OK LOGOUT completed"))
        // s_client asked for capabilities in clear (tag "."), then STARTTLS was ours.
        let seen = lines(f.log)
        #expect(seen == [". CAPABILITY", "a1 NOOP", "a2 LOGOUT"], "\(seen)")
    }

    @Test func imapCapabilityAndLiterals() throws {
        let f = try fixture("imap", dotls: ["-s", "imap"])
        let fd = connectLoopback(f.server.port)
        try #require(fd >= 0)
        defer { close(fd) }
        _ = readUntil(fd, "\r\n")
        FD.writeAll(fd, Array("c1 CAPABILITY\r\n".utf8))
        #expect(readUntil(fd, "c1 OK CAPABILITY completed\r\n") == "* CAPABILITY IMAP4rev1 IDLE STARTTLS\r\nc1 OK CAPABILITY completed\r\n")
        // A literal's octets are not commands, even when they read like one.
        // {17+}: "c3 STARTTLS\r\nxx\r\n", then the CRLF that ends the APPEND command.
        FD.writeAll(fd, Array("c2 APPEND box {17+}\r\nc3 STARTTLS\r\nxx\r\n\r\n".utf8))
        #expect(readUntil(fd, "c2 OK APPEND BOX {17+} done\r\n").hasSuffix("c2 OK APPEND BOX {17+} done\r\n"))
        FD.writeAll(fd, Array("c4 LOGOUT\r\n".utf8))
        _ = readUntil(fd, "c4 OK LOGOUT completed\r\n")
        #expect(lines(f.log).contains("c3 STARTTLS"), "passed to the program inside the literal")
    }

    @Test func tcpclientTalksToDotlsWithStartTLS() throws {
        for proto in ["smtp", "pop3", "imap"] {
            let f = try fixture(proto, dotls: ["-s", proto])
            let quit = proto == "imap" ? "z9 LOGOUT" : "QUIT"
            let r = run([Build.indimailTLS, "tcpclient", "-RH", "-n", "", "-s", proto, "127.0.0.1", String(f.server.port)],
                        stdin: Array("\(proto == "imap" ? "z1 NOOP" : "NOOP")\r\n\(quit)\r\n".utf8),
                        environment: ["CERTDIR": f.box.directory("nocerts")])
            #expect(r.exitCode == 0, "\(proto): \(r.err)")
            let seen = lines(f.log)
            #expect(seen.suffix(2) == [proto == "imap" ? "z1 NOOP" : "NOOP", quit], "\(proto): \(seen) \(r.out)")
        }
    }

    @Test func directTLSWithProviderDetailsAndBanner() throws {
        let box = Sandbox()
        let certs = try #require(TestCertificates(in: box))
        let envFile = box.at("env")
        let server = try #require(startTcpserver(box, [Build.indimailTLS, "dotls", "-z", "-n", certs.server,
                                                        "sh", "-c", "env > \(envFile); exec cat"],
                                                 environment: ["BANNER": "hello in clear"]))
        let fd = connectLoopback(server.port)
        try #require(fd >= 0)
        defer { close(fd) }
        #expect(readUntil(fd, "\n") == "hello in clear\n")
        let context = try OpenSSLLibrary.clientContext(TLSSettings()).get()
        let channel = try context.connect(fd: fd, serverName: nil, timeout: 10).get()
        channel.ioTimeout = 10
        #expect(channel.send("echo me\n"))
        #expect(channel.receive(8) == "echo me\n")
        channel.shutdown()
        #expect(channel.receive(1) == "")
        let provider = environmentFile(envFile)["TLS_PROVIDER"] ?? ""
        #expect(provider.hasPrefix("dotls, TLS Server=TLSv1.3, Client=TLSv1.3, Ciphers=TLS_"), "\(provider)")
    }

    @Test func directTLSWithOpenSSLClient() throws {
        let box = Sandbox()
        let certs = try #require(TestCertificates(in: box))
        let envFile = box.at("env")
        let server = try #require(startTcpserver(box, [Build.indimailTLS, "dotls", "-n", certs.server,
                                                        "sh", "-c", "env > \(envFile); read x; echo \"got $x\""]))
        let r = sClient(server.port, [], input: "line one\n")
        #expect(r.out == "got line one\n", "\(r.out) \(r.err)")
        #expect(environmentFile(envFile)["TLS_PROVIDER"] == "dotls, ")
    }

    @Test func notlsRunsTheProgramInClear() throws {
        let box = Sandbox()
        let server = try #require(startTcpserver(box, [Build.indimailTLS, "dotls", "-n", box.at("no-such-cert.pem"),
                                                        "sh", "-c", "echo plain $NOTLS"],
                                                 environment: ["NOTLS": "1"]))
        let fd = connectLoopback(server.port)
        try #require(fd >= 0)
        defer { close(fd) }
        #expect(readUntil(fd, "\n") == "plain 1\n")
    }

    @Test func clientModeUnderTcpclient() throws {
        let box = Sandbox()
        let certs = try #require(TestCertificates(in: box))
        let server = try #require(startOpenSSLServer(box, certs, ["-rev"]))
        let got = box.at("got"), got67 = box.at("got67")
        let r = run([Build.indimailTLS, "tcpclient", "-RH", "127.0.0.1", String(server.port),
                     Build.indimailTLS, "dotls", "-T", "-h", "localhost", "-c", certs.ca,
                     "sh", "-c", "echo hello; read x; echo \"$x\" > \(got)"],
                    environment: ["CERTDIR": box.directory("nocerts")])
        #expect(r.exitCode == 0, "\(r.err)")
        #expect(lines(got) == ["olleh"])
        let server2 = try #require(startOpenSSLServer(box, certs, ["-rev"]))
        let r2 = run([Build.indimailTLS, "tcpclient", "-RH", "127.0.0.1", String(server2.port),
                      Build.indimailTLS, "dotls", "-C", "sh", "-c", "echo abc >&7; read x <&6; echo \"$x\" > \(got67)"],
                     environment: ["CERTDIR": box.directory("nocerts")])
        #expect(r2.exitCode == 0, "\(r2.err)")
        #expect(lines(got67) == ["cba"])
    }

    @Test func usageAndBadCertificate() throws {
        #expect(run([Build.indimailTLS, "dotls"]).exitCode == 100)
        #expect(run([Build.indimailTLS, "dotls", "-s", "ftp", "cat"]).exitCode == 100)
        let box = Sandbox()
        let r = run([Build.indimailTLS, "dotls", "-n", box.at("missing.pem"), "cat"])
        #expect(r.exitCode == 111)
        #expect(r.err.contains("dotls: fatal: unable to initialize TLS"), "\(r.err)")
    }
}
