// The pure parts of tcpclient and dotls: option parsing, TLS option resolution, and the
// STARTTLS proxy's decisions and reply edits.
import Core
import Glibc
import Testing
@testable import UCSPI

@Suite struct UCSPIParsingTests {
    func args(_ list: [String]) -> [[UInt8]] { list.map { Array($0.utf8) } }

    @Test func tcpclientOptions() throws {
        let o = try TcpclientOptions.parse(args(["-vDRH", "-T", "3+7", "-t5", "-a", "9", "-p", "1234", "-i", "127.0.0.2",
                                                 "-l", "me", "-n", "", "-C", "/certs", "-m", "mx.example", "-s", "IMAP", "-z",
                                                 "mx.example", "smtp", "prog", "-x"])).get()
        #expect(o.verbosity == 2 && o.noDelay && !o.ident && !o.reverseLookup)
        #expect(o.connectFirst == 3 && o.connectSecond == 7 && o.identTimeout == 5 && o.dataTimeout == 9)
        #expect(o.localPort == 1234 && o.localIP == .v4(127, 0, 0, 2) && o.localHostName == "me")
        #expect(o.tls?.certificate == nil && o.tls?.certificateDirectory == "/certs" && o.tls?.verifyHost == "mx.example")
        #expect(o.startTLS == .imap && o.providerDetails)
        #expect(o.target == .tcp(host: "mx.example", port: "smtp"))
        #expect(o.program == args(["prog", "-x"]))

        #expect(try TcpclientOptions.parse(args(["", "25"])).get().target == .tcp(host: "::1", port: "25"))
        #expect(try TcpclientOptions.parse(args(["-4", "0", "25"])).get().target == .tcp(host: "127.0.0.1", port: "25"))
        #expect(try TcpclientOptions.parse(args(["/run/sock", "prog"])).get().target == .unix("/run/sock"))
        let t = try TcpclientOptions.parse(args(["-T", "10", "h", "1"])).get()
        #expect(t.connectFirst == 10 && t.connectSecond == 0)
        #expect(throws: TcpclientOptions.ParseError.startTLSWithoutTLS) { try TcpclientOptions.parse(args(["-s", "smtp", "h", "1"])).get() }
        #expect(throws: (any Error).self) { try TcpclientOptions.parse(args(["-s", "ftp", "-n", "", "h", "1"])).get() }
        #expect(throws: (any Error).self) { try TcpclientOptions.parse(args(["h"])).get() }
        #expect(throws: (any Error).self) { try TcpclientOptions.parse(args(["-i", "not-an-ip", "h", "1"])).get() }
    }

    @Test func dotlsOptions() throws {
        let o = try DotlsOptions.parse(args(["-C", "-t", "5", "-D", "7", "-h", "mx", "-d", "/c", "qmail-remote", "a"])).get()
        #expect(o.mode == .client(programOnSixSeven: true) && o.handshakeTimeout == 5 && o.dataTimeout == 7)
        #expect(o.tls.verifyHost == "mx" && o.tls.certificateDirectory == "/c" && o.program == args(["qmail-remote", "a"]))
        #expect(try DotlsOptions.parse(args(["-T", "x"])).get().mode == .client(programOnSixSeven: false))
        #expect(try DotlsOptions.parse(args(["-s", "Pop3", "x"])).get().startTLS == .pop3)
        #expect(throws: (any Error).self) { try DotlsOptions.parse(args(["-v"])).get() }
    }

    @Test func tlsMethodsAndFiles() throws {
        #expect(try TLSSetup.parseMethod("TLSv1_2:TLSv1_3").get() == ("TLSv1_2", "TLSv1_3"))
        #expect(try TLSSetup.parseMethod(":TLSv1.3").get() == (nil, "TLSv1_3"))
        #expect(try TLSSetup.parseMethod("TLSv1_2").get() == (nil, "TLSv1_2"))
        #expect(try TLSSetup.parseMethod("SSLv23").get() == (nil, nil))
        #expect(throws: (any Error).self) { try TLSSetup.parseMethod("SSLv3").get() }
        #expect(throws: (any Error).self) { try TLSSetup.parseMethod("TLSv9").get() }

        let box = Sandbox()
        let certdir = box.directory("certs")
        box.write("certs/servercert.pem", "x")
        box.write("certs/clientca.pem", "x")
        box.write("ciphers", "ECDHE-RSA-AES128-GCM-SHA256 trailing words\n")
        box.write("suites", "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256\n")
        let env = Environment([("CERTDIR", certdir), ("TLS_CIPHER_SUITE", "TLS_AES_256_GCM_SHA384"), ("SSL_BITS", "4096")])
        var options = TLSOptions()
        let server = try options.settings(.server, environment: env).get()
        #expect(server.certificateFile == "\(certdir)/servercert.pem")
        #expect(server.caFile == "\(certdir)/clientca.pem")
        #expect(server.crlFile == nil, "an unreadable default CRL is dropped")
        #expect(server.cipherSuites == "TLS_AES_256_GCM_SHA384" && server.cipherList == nil)
        #expect(server.dhParametersFile == "\(certdir)/dh4096.pem")
        // tcpclient: a missing default client certificate is simply not offered.
        let client = try options.settings(.tcpclient, environment: env).get()
        #expect(client.certificateFile == nil && client.caFile == nil)
        options.cipherFile = box.at("ciphers")
        #expect(try options.settings(.server, environment: env).get().cipherList == "ECDHE-RSA-AES128-GCM-SHA256")
        options.cipherFile = box.at("suites")
        #expect(try options.settings(.server, environment: env).get().cipherSuites == "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256")
        options.cipherFile = nil
        options.method = "TLSv1_2"
        let old = try options.settings(.server, environment: Environment([("CERTDIR", certdir), ("TLS_CIPHER_LIST", "HIGH")])).get()
        #expect(old.cipherList == "HIGH" && old.cipherSuites == nil && old.maximumVersion == "TLSv1_2")
        options.cipherFile = box.at("missing")
        #expect(throws: (any Error).self) { try options.settings(.server, environment: env).get() }
    }

    @Test func startTLSDecisions() {
        func c(_ line: String, _ p: StartTLSProtocol) -> StartTLSOffer.Action { StartTLSOffer.classify(Array(line.utf8), protocol: p) }
        #expect(c("ehlo example.org", .smtp) == .ehlo)
        #expect(c("StartTLS", .smtp) == .startTLS(reply: "220 ready for tls\r\n"))
        #expect(c("DATA", .smtp) == .data)
        #expect(c("BDAT 100 LAST", .smtp) == .octets(100, lineContinues: false))
        #expect(c("MAIL FROM:<a@b>", .smtp) == .forward)
        #expect(c("", .smtp) == .drop)
        #expect(c("stls", .pop3) == .startTLS(reply: "+OK Begin SSL/TLS negotiation now.\r\n"))
        #expect(c("CAPA", .pop3) == .capa)
        #expect(c("a1 starttls", .imap) == .startTLS(reply: "a1 OK Begin TLS negotiation now\r\n"))
        #expect(c("STARTTLS", .imap) == .startTLS(reply: "STARTTLS OK Begin SSL/TLS negotiation now.\r\n"))
        #expect(c("a2 CAPABILITY", .imap) == .capability(tag: Array("a2".utf8)))
        #expect(c("a3 LOGIN {4}", .imap) == .octets(4, lineContinues: true))
        #expect(c("a3 LOGIN {4+}", .imap) == .octets(4, lineContinues: true))
        #expect(c("a4 STARTTLS now", .imap) == .forward)
    }

    @Test func replyEdits() {
        func b(_ s: String) -> [UInt8] { Array(s.utf8) }
        #expect(StartTLSOffer.offerStartTLS(inEHLOReply: [b("250-mx\r\n"), b("250 HELP\r\n")])
                == b("250-mx\r\n250-HELP\r\n250 STARTTLS\r\n"))
        #expect(StartTLSOffer.offerStartTLS(inEHLOReply: [b("250 mx\r\n")]) == b("250-mx\r\n250 STARTTLS\r\n"))
        #expect(StartTLSOffer.offerStartTLS(inEHLOReply: [b("250-mx\r\n"), b("250 starttls\r\n")])
                == b("250-mx\r\n250 starttls\r\n"))
        #expect(StartTLSOffer.offerSTLS(inCapaList: [b("+OK\r\n"), b("USER\r\n"), b(".\r\n")]) == b("+OK\r\nUSER\r\nSTLS\r\n.\r\n"))
        #expect(StartTLSOffer.offerSTLS(inCapaList: [b("+OK\r\n"), b("STLS\r\n"), b(".\r\n")]) == b("+OK\r\nSTLS\r\n.\r\n"))
        #expect(StartTLSOffer.offerStartTLS(inCapabilityLine: b("* CAPABILITY IMAP4rev1\r\n")) == b("* CAPABILITY IMAP4rev1 STARTTLS\r\n"))
        #expect(StartTLSOffer.offerStartTLS(inCapabilityLine: b("* OK hi\r\n")) == b("* OK hi\r\n"))
    }

    /// The STARTTLS client dialogue over canned server lines.
    struct Canned: PlainLines {
        var replies: [String]
        var sent: [String] = []
        mutating func readLine() -> Result<[UInt8], DialogueError> {
            guard !replies.isEmpty else { return .failure("connection closed") }
            return .success(Array(replies.removeFirst().utf8))
        }
        mutating func write(_ bytes: [UInt8]) -> Result<Void, DialogueError> {
            sent.append(String(decoding: bytes, as: UTF8.self))
            return .success(())
        }
    }

    func why(_ r: Result<Void, DialogueError>) -> String? {
        if case .failure(let e) = r { return e.description }
        return nil
    }

    @Test func startTLSClientDialogues() {
        var smtp = Canned(replies: ["220-first\r\n", "220 second\r\n", "250-mx\r\n", "250 STARTTLS\r\n", "220 go\r\n"])
        var shown: [String] = []
        let r = why(StartTLSClient.negotiate(.smtp, helloName: "[127.0.0.1]", over: &smtp) { shown.append(String(decoding: $0, as: UTF8.self)) })
        #expect(r == nil)
        #expect(smtp.sent == ["EHLO [127.0.0.1]\r\n", "STARTTLS\r\n"])
        #expect(shown == ["220-first\r\n", "220 second\r\n"])
        var refused = Canned(replies: ["220 hi\r\n", "250 mx\r\n", "454 not now\r\n"])
        #expect(why(StartTLSClient.negotiate(.smtp, helloName: "h", over: &refused) { _ in }) == "STARTTLS rejected: 454 not now")
        var old = Canned(replies: ["* OK hi\r\n", "STARTTLS OK Begin\r\n"])
        #expect(why(StartTLSClient.negotiate(.imap, helloName: "h", over: &old) { _ in }) == nil)
        var no = Canned(replies: ["* OK hi\r\n", "* BYE\r\n", "a001 NO never\r\n"])
        #expect(why(StartTLSClient.negotiate(.imap, helloName: "h", over: &no) { _ in }) == "STARTTLS rejected: a001 NO never")
        var pop = Canned(replies: ["+OK hi\r\n", "-ERR no\r\n"])
        #expect(why(StartTLSClient.negotiate(.pop3, helloName: "h", over: &pop) { _ in }) == "STLS rejected: -ERR no")
    }
}
