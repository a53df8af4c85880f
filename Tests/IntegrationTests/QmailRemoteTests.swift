// qmail-remote as qmail-rspawn runs it (host sender qqeh size recipients, message on fd 0),
// against a scripted Python SMTP server, postfix's smtp-sink and a private dnsmasq; the
// report bytes on stdout are compared exactly. Also qmail-tcpto / qmail-tcpok.
import Core
import Glibc
import Testing

/// A control directory, a queue with lock/tcpto, and the commands linked to indimail-tls.
final class RemoteFixture {
    let box = Sandbox()
    let bin: String

    init() {
        box.write("etc/control/me", "client.test\n")
        box.directory("queue/lock")
        box.write("queue/lock/tcpto", [UInt8](repeating: 0, count: 2048))
        bin = box.commandLinks(["qmail-remote", "qmail-tcpto", "qmail-tcpok"], binary: Build.indimailTLS)
    }

    var environment: [String: String] {
        ["PATH": "/usr/bin:/bin", "SYSCONFDIR": box.at("etc"), "CONTROLDIR": "control", "QUEUEDIR": box.at("queue"),
         "CERTDIR": box.at("etc/certs"), "DNSCACHEIP": "127.0.0.1:\(closedUDPPort())", "DNSTIMEOUT": "5"]
    }

    func control(_ name: String, _ text: String) { box.write("etc/control/\(name)", text) }

    func route(_ domain: String, to server: ScriptedSMTPServer, extra: String = "") {
        control("smtproutes", "\(domain):\(server.address):\(server.port)\(extra)\n")
    }

    func remote(host: String = "remote.test", sender: String = "alice@client.test", qqeh: String = "",
                recipients: [String] = ["bob@remote.test"], message: String = "Subject: hi\n\nhello\n.dot\n",
                environment extra: [String: String] = [:]) -> Outcome {
        var env = environment
        for (k, v) in extra { env[k] = v }
        let file = box.write("message", message)
        return run(["/bin/sh", "-c", "exec \"$0\" \"$@\" < \"$QR_MESSAGE\"", Path.join(bin, "qmail-remote"),
                    host, sender, qqeh, String(message.utf8.count)] + recipients,
                   environment: env.merging(["QR_MESSAGE": file]) { a, _ in a }, inheritEnvironment: false, timeout: 30)
    }

    func tool(_ name: String) -> Outcome {
        run([Path.join(bin, name)], environment: environment, inheritEnvironment: false)
    }

    var tcpto: [UInt8] { contents(box.at("queue/lock/tcpto")) ?? [] }
}

/// Report bytes with NULs shown as `\0`, for readable comparisons.
/// The final report of a delivery the scripted server accepted (its default DATA reply).
let acceptedByScript = "K127.0.0.1 accepted message - Protocol SMTP.\nRemote host said: 250 2.0.0 Ok: queued as 12345\n\\0"

func reports(_ o: Outcome) -> String {
    String(decoding: o.stdout, as: UTF8.self).replacingOccurrences(of: "\0", with: "\\0")
}

private extension String {
    func replacingOccurrences(of a: String, with b: String) -> String {
        split(separator: Character(a), omittingEmptySubsequences: false).joined(separator: b)
    }
}

@Suite("qmail-remote") struct QmailRemoteTests {
    @Test func deliversAndReportsSuccess() throws {
        let f = RemoteFixture()
        let server = try #require(ScriptedSMTPServer(.init()))
        f.route("remote.test", to: server)
        let o = f.remote(qqeh: "X-Queue: 1\n")
        #expect(o.exitCode == 0)
        let expected = "rFrom: <alice@client.test> RCPT: <bob@remote.test> \\0"
            + acceptedByScript
        #expect(reports(o) == expected)
        let log = server.log
        #expect(log.contains("C: EHLO client.test\n"))
        #expect(log.contains("C: MAIL FROM:<alice@client.test> SIZE=24\n"))
        #expect(log.contains("C: RCPT TO:<bob@remote.test>\n"))
        #expect(log.contains("BODY b'X-Queue: 1\\r\\nSubject: hi\\r\\n\\r\\nhello\\r\\n..dot\\r\\n'"))
        #expect(eventually(within: 5) { server.log.contains("C: QUIT") })  // logged after we exit
    }

    @Test func heloHostAndNoSizeWithoutTheExtension() throws {
        let f = RemoteFixture()
        f.control("helohost", "out.client.test\n")
        var script = ScriptedSMTPServer.Script()
        script.ehlo = ["502 no EHLO here"]
        let server = try #require(ScriptedSMTPServer(script))
        f.route("remote.test", to: server)
        let o = f.remote()
        #expect(reports(o).hasSuffix(acceptedByScript))
        #expect(server.log.contains("C: HELO out.client.test\n"))
        #expect(server.log.contains("C: MAIL FROM:<alice@client.test>\n"))
    }

    struct StageCase: CustomTestStringConvertible, Sendable {
        let name: String
        let apply: @Sendable (inout ScriptedSMTPServer.Script) -> Void
        let expected: String
        var testDescription: String { name }
    }

    static let stages: [StageCase] = [
        StageCase(name: "greeting 5xx", apply: { $0.greeting = "554 5.3.2 go away" },
                  expected: "DConnected to 127.0.0.1 but greeting failed.\nRemote host said: 554 5.3.2 go away\n\\0"),
        StageCase(name: "EHLO and HELO 4xx", apply: { $0.ehlo = ["421 busy"]; $0.helo = "421 still busy" },
                  expected: "ZConnected to 127.0.0.1 but my name -->client.test<-- was rejected :(.\nRemote host said: 421 busy\n\\0"),
        StageCase(name: "MAIL 4xx", apply: { $0.mail = "451 4.3.0 try later" },
                  expected: "ZConnected to 127.0.0.1 but sender was rejected.\nRemote host said: 451 4.3.0 try later\n\\0"),
        StageCase(name: "MAIL 5xx", apply: { $0.mail = "553-5.1.8 bad sender\n553 5.1.8 really" },
                  expected: "DConnected to 127.0.0.1 but sender was rejected.\nRemote host said: 553-5.1.8 bad sender\n553 5.1.8 really\n\\0"),
        StageCase(name: "RCPT 5xx", apply: { $0.rcpt = ["550 5.1.1 no such user"] },
                  expected: "hFrom: <alice@client.test> RCPT: <bob@remote.test> 127.0.0.1 does not like recipient.\nRemote host said: 550 5.1.1 no such user\n\\0"
                    + "DGiving up on 127.0.0.1.\nRemote host said: 550 5.1.1 no such user\n\\0"),
        StageCase(name: "RCPT 4xx", apply: { $0.rcpt = ["452 4.2.2 full"] },
                  expected: "sFrom: <alice@client.test> RCPT: <bob@remote.test> 127.0.0.1 does not like recipient.\nRemote host said: 452 4.2.2 full\n\\0"
                    + "DGiving up on 127.0.0.1.\nRemote host said: 452 4.2.2 full\n\\0"),
        StageCase(name: "DATA 4xx", apply: { $0.data = "451 4.3.0 not now" },
                  expected: "rFrom: <alice@client.test> RCPT: <bob@remote.test> \\0"
                    + "Z127.0.0.1 failed on DATA command.\nRemote host said: 451 4.3.0 not now\n\\0"),
        StageCase(name: "DATA 5xx", apply: { $0.data = "554 5.5.1 no valid recipients" },
                  expected: "rFrom: <alice@client.test> RCPT: <bob@remote.test> \\0"
                    + "D127.0.0.1 failed on DATA command.\nRemote host said: 554 5.5.1 no valid recipients\n\\0"),
        StageCase(name: "after message 4xx", apply: { $0.end = "452 4.3.1 insufficient storage" },
                  expected: "rFrom: <alice@client.test> RCPT: <bob@remote.test> \\0"
                    + "Z127.0.0.1 failed after I sent the message.\nRemote host said: 452 4.3.1 insufficient storage\n\\0"),
        StageCase(name: "after message 5xx", apply: { $0.end = "552 5.3.4 too big" },
                  expected: "rFrom: <alice@client.test> RCPT: <bob@remote.test> \\0"
                    + "D127.0.0.1 failed after I sent the message.\nRemote host said: 552 5.3.4 too big\n\\0"),
        StageCase(name: "malformed reply", apply: { $0.mail = "250ok" },
                  expected: "ZConnected to 127.0.0.1 but sender was rejected.\nRemote host said: 250ok\n\\0"),
    ]

    @Test(arguments: stages) func stageFailuresAreReportedExactly(_ c: StageCase) throws {
        let f = RemoteFixture()
        var script = ScriptedSMTPServer.Script()
        c.apply(&script)
        // A multi-line reply is written as several lines by the server.
        script.mail = script.mail.split(separator: "\n").joined(separator: "\r\n")
        let server = try #require(ScriptedSMTPServer(script))
        f.route("remote.test", to: server)
        // The server offers PIPELINING: the same answers give the same reports both ways.
        for mode in [[:], ["DISABLE_PIPELINING": "1"]] {
            let o = f.remote(environment: mode)
            #expect(o.exitCode == 0)
            #expect(reports(o) == c.expected, "\(mode)")
        }
    }

    @Test func someRecipientsAccepted() throws {
        let f = RemoteFixture()
        var script = ScriptedSMTPServer.Script()
        script.rcpt = ["250 ok", "550 5.1.1 unknown", "250 ok"]
        let server = try #require(ScriptedSMTPServer(script))
        f.route("remote.test", to: server)
        let o = f.remote(recipients: ["a@remote.test", "b@remote.test", "c@remote.test"])
        let expected = "rFrom: <alice@client.test> RCPT: <a@remote.test> \\0"
            + "hFrom: <alice@client.test> RCPT: <b@remote.test> 127.0.0.1 does not like recipient.\nRemote host said: 550 5.1.1 unknown\n\\0"
            + "rFrom: <alice@client.test> RCPT: <c@remote.test> \\0"
            + acceptedByScript
        #expect(reports(o) == expected)
    }

    @Test func bounceSenderAndQuotedLocalPart() throws {
        let f = RemoteFixture()
        let server = try #require(ScriptedSMTPServer(.init()))
        f.route("remote.test", to: server)
        let o = f.remote(sender: "", recipients: ["john smith@remote.test"])
        #expect(reports(o).hasPrefix("rFrom: <> RCPT: <\"john?smith\"@remote.test> \\0K127.0.0.1"))
        #expect(server.log.contains("C: MAIL FROM:<> SIZE=24\n"))
        #expect(server.log.contains("C: RCPT TO:<\"john smith\"@remote.test>\n"))
    }

    @Test func partialFinalLineIsRefused() throws {
        let f = RemoteFixture()
        let server = try #require(ScriptedSMTPServer(.init()))
        f.route("remote.test", to: server)
        let o = f.remote(message: "Subject: x\n\nno newline")
        #expect(reports(o).hasSuffix("DSMTP cannot transfer messages with partial final lines. (#5.6.2)\n\\0"))
        #expect(!server.log.contains("BODY"))
    }

    @Test func greetingDeferralTriesNextAndRecordsTimeout() throws {
        let f = RemoteFixture()
        var script = ScriptedSMTPServer.Script()
        script.greeting = "421 4.3.2 shutting down"
        let server = try #require(ScriptedSMTPServer(script))
        f.route("remote.test", to: server)
        let o = f.remote()
        #expect(reports(o) == "ZSorry, I wasn't able to establish a SMTP connection for 127.0.0.1 to 127.0.0.1 port \(server.port) bind IP [::]. (#4.4.1)\n\\0")
        let table = f.tcpto
        #expect(table.count == 2048)
        #expect(Array(table.prefix(5)) == [2, 0, 0, 0, 1])
        #expect(Array(table[16..<20]) == [127, 0, 0, 1])
    }

    @Test func droppedConnection() throws {
        let f = RemoteFixture()
        var script = ScriptedSMTPServer.Script()
        script.dropGreeting = true
        let server = try #require(ScriptedSMTPServer(script))
        f.route("remote.test", to: server)
        let o = f.remote()
        #expect(reports(o) == "ZConnected to 127.0.0.1 but connection died. Will try alternate MX. tcpto interval 120 (#4.4.2)\n\\0")
    }

    @Test func silentServerTimesOut() throws {
        let f = RemoteFixture()
        var script = ScriptedSMTPServer.Script()
        script.silent = true
        let server = try #require(ScriptedSMTPServer(script))
        f.route("remote.test", to: server)
        f.control("timeoutremote", "1\n")
        let o = f.remote()
        #expect(reports(o) == "ZConnected to 127.0.0.1 but connection died. Will try alternate MX. tcpto interval 120 (#4.4.2)\n\\0")
        #expect(f.tcpto[4] == 1)
    }

    @Test func refusedConnectionIsRecordedAndToolsShowAndClearIt() throws {
        let f = RemoteFixture()
        let port = freePort()
        f.control("smtproutes", ":127.0.0.1:\(port)\n")
        let o = f.remote(host: "anywhere.test")
        #expect(o.exitCode == 0)
        #expect(reports(o) == "ZSorry, I wasn't able to establish a SMTP connection for 127.0.0.1 to 127.0.0.1 port \(port) bind IP [::]. (#4.4.1)\n\\0")
        let table = f.tcpto
        #expect(Array(table.prefix(5)) == [2, 0, 0, 0, 1])
        let t = UInt32(table[8]) | UInt32(table[9]) << 8 | UInt32(table[10]) << 16 | UInt32(table[11]) << 24
        #expect(abs(Int(t) - Int(time(nil))) < 60)

        // A second failure within MAX_TOLERANCE does not count; with 0 tolerance it does.
        _ = f.remote(host: "anywhere.test")
        #expect(f.tcpto[4] == 1)
        _ = f.remote(host: "anywhere.test", environment: ["MAX_TOLERANCE": "0"])
        #expect(f.tcpto[4] == 2)
        // Two failures: the address is skipped without a connection attempt.
        let skipped = f.remote(host: "anywhere.test")
        #expect(reports(skipped) == "ZSorry, I wasn't able to establish a SMTP connection for 127.0.0.1. (#4.4.1)\n\\0")

        let listing = f.tool("qmail-tcpto")
        #expect(listing.exitCode == 0)
        #expect(listing.out.hasPrefix("127.0.0.1 ipv4 timed out "))
        #expect(listing.out.hasSuffix(" seconds ago; # recent timeouts: 2\n"))
        let ok = f.tool("qmail-tcpok")
        #expect(ok.exitCode == 0)
        #expect(f.tcpto == [UInt8](repeating: 0, count: 2048))
        #expect(f.tool("qmail-tcpto").out == "")
    }

    @Test func startTLSWithClientCertificate() throws {
        let f = RemoteFixture()
        let certs = try #require(TestCertificates(in: f.box))
        f.box.write("etc/certs/clientcert.pem", contents(certs.client) ?? [])
        var script = ScriptedSMTPServer.Script()
        script.ehlo = ["250-sink.test", "250-STARTTLS", "250 SIZE 1000000"]
        script.certificate = certs.server
        let server = try #require(ScriptedSMTPServer(script))
        f.route("remote.test", to: server)
        let o = f.remote()
        #expect(reports(o).hasSuffix("K127.0.0.1 accepted message - Protocol SMTPS.\nRemote host said: 250 2.0.0 Ok: queued as 12345\n\\0"))
        let log = server.log
        #expect(log.contains("C: STARTTLS\nTLS TLSv1."))
        #expect(log.components("C: EHLO client.test") == 2)

        // tlshosts/<host>.pem: the server's certificate must verify against it.
        f.box.write("etc/certs/tlshosts/127.0.0.1.pem", contents(certs.ca) ?? [])
        let verified = f.remote()
        #expect(reports(verified).hasSuffix("K127.0.0.1 accepted message - Protocol SMTPS.\nRemote host said: 250 2.0.0 Ok: queued as 12345\n\\0"))
    }

    @Test func bigMessageThroughTLS() throws {
        let f = RemoteFixture()
        let certs = try #require(TestCertificates(in: f.box))
        f.box.write("etc/certs/clientcert.pem", contents(certs.client) ?? [])
        var script = ScriptedSMTPServer.Script()
        script.ehlo = ["250-sink.test", "250 STARTTLS"]
        script.certificate = certs.server
        let server = try #require(ScriptedSMTPServer(script))
        f.route("remote.test", to: server)
        // 8000 lines (~200 kB, several network writes); what the server must receive has
        // CR LF line ends and leading dots doubled.
        var lines = ["Subject: big", ""]
        for i in 0..<8000 { lines.append(i % 7 == 0 ? ".line \(i) with a leading dot" : "line \(i) of the body text") }
        let message = lines.joined(separator: "\n") + "\n"
        let wire = lines.map { ($0.hasPrefix(".") ? "." : "") + $0 }.joined(separator: "\r\n") + "\r\n"
        let hash = run(["/usr/bin/python3", "-c", "import sys,hashlib;print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())"],
                       stdin: Array(wire.utf8)).out
        let o = f.remote(message: message)
        #expect(reports(o).hasSuffix("K127.0.0.1 accepted message - Protocol SMTPS.\nRemote host said: 250 2.0.0 Ok: queued as 12345\n\\0"))
        #expect(server.log.contains("BODYLEN \(wire.utf8.count) \(hash.dropLast())\n"))
    }

    @Test func requiredTLSMissing() throws {
        let f = RemoteFixture()
        let certs = try #require(TestCertificates(in: f.box))
        f.box.write("etc/certs/clientcert.pem", contents(certs.client) ?? [])
        let pem = f.box.write("etc/certs/tlshosts/127.0.0.1.pem", contents(certs.ca) ?? [])
        let server = try #require(ScriptedSMTPServer(.init()))
        f.route("remote.test", to: server)
        let o = f.remote()
        #expect(reports(o) == "ZNo TLS achieved while \(pem) exists; connecting to 127.0.0.1.\nRemote host said: No TLS achieved while \(pem) exists\\0")
    }

    @Test func notlshostsKeepsPlainText() throws {
        let f = RemoteFixture()
        let certs = try #require(TestCertificates(in: f.box))
        f.box.write("etc/certs/clientcert.pem", contents(certs.client) ?? [])
        f.control("notlshosts", "remote.test\n")
        var script = ScriptedSMTPServer.Script()
        script.ehlo = ["250-sink.test", "250 STARTTLS"]
        script.certificate = certs.server
        let server = try #require(ScriptedSMTPServer(script))
        f.route("remote.test", to: server)
        let o = f.remote()
        #expect(reports(o).hasSuffix("- Protocol SMTP.\nRemote host said: 250 2.0.0 Ok: queued as 12345\n\\0"))
        #expect(!server.log.contains("STARTTLS"))
    }

    @Test func implicitTLSOnPort465Form() throws {
        let f = RemoteFixture()
        let certs = try #require(TestCertificates(in: f.box))
        var script = ScriptedSMTPServer.Script()
        script.implicitTLS = true
        script.certificate = certs.server
        let server = try #require(ScriptedSMTPServer(script))
        f.route("remote.test", to: server)
        let o = f.remote(environment: ["SMTPS": ""])
        #expect(reports(o).hasSuffix("K127.0.0.1 accepted message - Protocol SMTPS.\nRemote host said: 250 2.0.0 Ok: queued as 12345\n\\0"))
    }

    @Test func authPlainAndLogin() throws {
        let f = RemoteFixture()
        var script = ScriptedSMTPServer.Script()
        script.ehlo = ["250-sink.test", "250-AUTH LOGIN PLAIN", "250 SIZE 100000"]
        let server = try #require(ScriptedSMTPServer(script))
        f.route("remote.test", to: server, extra: " user+1 s3cret")
        let plain = f.remote(environment: ["AUTH_SMTP": ""])
        #expect(reports(plain).hasSuffix(acceptedByScript))
        #expect(server.log.contains("AUTH PLAIN b'alice@client.test\\x00user+1\\x00s3cret'"))
        #expect(server.log.contains("C: MAIL FROM:<alice@client.test> SIZE=24 AUTH=<user+2B1>\n"))
        let login = f.remote(environment: ["AUTH_SMTP": "LOGIN"])
        #expect(reports(login).hasPrefix("rFrom:"))
        #expect(server.log.contains("AUTH LOGIN b'user+1' b's3cret'"))
        // Without AUTH_SMTP the credentials are not used.
        _ = f.remote()
        #expect(server.log.components("AUTH ") == 4)
    }

    @Test func authCRAM() throws {
        let f = RemoteFixture()
        var script = ScriptedSMTPServer.Script()
        script.ehlo = ["250-sink.test", "250 AUTH LOGIN PLAIN CRAM-MD5 CRAM-SHA256"]
        script.password = "tanstaaf"
        let server = try #require(ScriptedSMTPServer(script))
        f.route("remote.test", to: server, extra: " tim tanstaaf")
        let best = f.remote(environment: ["AUTH_SMTP": ""])
        #expect(reports(best).hasSuffix(acceptedByScript))
        #expect(server.log.contains("AUTH CRAM-SHA256 tim good\n"))
        _ = f.remote(environment: ["AUTH_SMTP": "CRAM-MD5"])
        #expect(server.log.contains("AUTH CRAM-MD5 tim good\n"))
        _ = f.remote(environment: ["AUTH_SMTP": "", "DISABLE_CRAM_SHA256": "1", "DISABLE_CRAM_MD5": "1"])
        #expect(server.log.contains("AUTH PLAIN b'alice@client.test\\x00tim\\x00tanstaaf'"))
    }

    @Test func authSCRAM() throws {
        let f = RemoteFixture()
        var script = ScriptedSMTPServer.Script()
        script.ehlo = ["250-sink.test", "250 AUTH PLAIN CRAM-MD5 SCRAM-SHA-1 SCRAM-SHA-256"]
        script.password = "pencil"
        let server = try #require(ScriptedSMTPServer(script))
        f.route("remote.test", to: server, extra: " user pencil")
        let best = f.remote(environment: ["AUTH_SMTP": ""])
        #expect(reports(best).hasSuffix(acceptedByScript))
        #expect(server.log.contains("AUTH SCRAM-SHA-256 user n,, good\n"))
        _ = f.remote(environment: ["AUTH_SMTP": "SCRAM-SHA-1"])
        #expect(server.log.contains("AUTH SCRAM-SHA-1 user n,, good\n"))
        f.route("remote.test", to: server, extra: " user wrong")
        let bad = f.remote(environment: ["AUTH_SMTP": ""])
        #expect(reports(bad) == "DConnected to 127.0.0.1 but authentication credentials invalid (AUTH SCRAM-SHA-256) (#5.7.8)..\nRemote host said: 535 5.7.8 bad proof\n\\0")
    }

    @Test func authXOAUTH2() throws {
        let f = RemoteFixture()
        var script = ScriptedSMTPServer.Script()
        script.ehlo = ["250-sink.test", "250 AUTH XOAUTH2"]
        let server = try #require(ScriptedSMTPServer(script))
        f.route("remote.test", to: server, extra: " me@client.test ya29.token")
        let ok = f.remote(environment: ["AUTH_SMTP": ""])
        #expect(reports(ok).hasSuffix(acceptedByScript))
        #expect(server.log.contains("AUTH XOAUTH2 b'user=me@client.test\\x01auth=Bearer ya29.token\\x01\\x01'"))

        script.auth = "535 5.7.8 Username and Password not accepted"
        let refusing = try #require(ScriptedSMTPServer(script))
        f.route("remote.test", to: refusing, extra: " me@client.test expired")
        let bad = f.remote(environment: ["AUTH_SMTP": "XOAUTH2"])
        #expect(reports(bad) == "DConnected to 127.0.0.1 but authentication credentials invalid (AUTH XOAUTH2) oauth2 error [{\"status\":\"401\"}]) (#5.7.8)..\nRemote host said: 535 5.7.8 Username and Password not accepted\n\\0")
    }

    @Test func authDigestMD5() throws {
        let f = RemoteFixture()
        f.control("realm", "sink.test\n")
        var script = ScriptedSMTPServer.Script()
        script.ehlo = ["250-sink.test", "250 AUTH PLAIN DIGEST-MD5 CRAM-MD5"]
        script.password = "secret"
        let server = try #require(ScriptedSMTPServer(script))
        f.route("remote.test", to: server, extra: " chris secret")
        let o = f.remote(environment: ["AUTH_SMTP": ""])
        #expect(reports(o).hasSuffix(acceptedByScript))
        #expect(server.log.contains("AUTH DIGEST-MD5 chris sink.test smtp/127.0.0.1 good\n"))
    }

    @Test func authSCRAMWithChannelBinding() throws {
        let f = RemoteFixture()
        let certs = try #require(TestCertificates(in: f.box))
        f.box.write("etc/certs/clientcert.pem", contents(certs.client) ?? [])
        f.control("tlsclientmethod", "TLSv1_2\n")  // tls-unique, which Python can compute
        var script = ScriptedSMTPServer.Script()
        script.ehlo = ["250-sink.test", "250-STARTTLS", "250 AUTH SCRAM-SHA-256 SCRAM-SHA-256-PLUS"]
        script.certificate = certs.server
        script.password = "pencil"
        let server = try #require(ScriptedSMTPServer(script))
        f.route("remote.test", to: server, extra: " user pencil")
        let plus = f.remote(environment: ["AUTH_SMTP": ""])
        #expect(reports(plus).hasSuffix("K127.0.0.1 accepted message - Protocol SMTPS.\nRemote host said: 250 2.0.0 Ok: queued as 12345\n\\0"))
        #expect(server.log.contains("AUTH SCRAM-SHA-256-PLUS user p=tls-unique,, good\n"))
        _ = f.remote(environment: ["AUTH_SMTP": "", "DISABLE_SCRAM_SHA256_PLUS": "1"])
        #expect(server.log.contains("AUTH SCRAM-SHA-256 user y,, good\n"))
    }

    @Test func remoteAuthCDBAndRouteEnvironment() throws {
        let f = RemoteFixture()
        var script = ScriptedSMTPServer.Script()
        script.ehlo = ["250-sink.test", "250 AUTH PLAIN LOGIN"]
        let server = try #require(ScriptedSMTPServer(script))
        let fd = open(f.box.at("etc/control/remote_auth.cdb"), O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let writer = CDBWriter(fd: fd)
        _ = writer.start()
        _ = writer.add(key: Array("!alice@client.test".utf8) + [0], value: Array("sender-user sender-pass".utf8))
        _ = writer.add(key: Array("!token".utf8) + [0], value: Array("tok-user tok-pass DISABLE_AUTH_PLAIN=1".utf8))
        _ = writer.add(key: [UInt8](), value: Array("-".utf8))
        _ = writer.finish()
        close(fd)
        f.route("remote.test", to: server, extra: " /s")
        _ = f.remote(environment: ["AUTH_SMTP": ""])
        #expect(server.log.contains("AUTH PLAIN b'alice@client.test\\x00sender-user\\x00sender-pass'"))
        // envstr from the cdb value turns PLAIN off, so LOGIN is used.
        f.route("remote.test", to: server, extra: " /token")
        _ = f.remote(environment: ["AUTH_SMTP": ""])
        #expect(server.log.contains("AUTH LOGIN b'tok-user' b'tok-pass'"))
        // envstr on the route line itself.
        f.route("remote.test", to: server, extra: " u p DISABLE_AUTH_PLAIN=1")
        _ = f.remote(environment: ["AUTH_SMTP": ""])
        #expect(server.log.contains("AUTH LOGIN b'u' b'p'"))
    }

    @Test func authRejected() throws {
        let f = RemoteFixture()
        var script = ScriptedSMTPServer.Script()
        script.ehlo = ["250-sink.test", "250 AUTH PLAIN"]
        script.auth = "535 5.7.8 bad credentials"
        let server = try #require(ScriptedSMTPServer(script))
        f.route("remote.test", to: server, extra: " user pw")
        let o = f.remote(environment: ["AUTH_SMTP": ""])
        #expect(reports(o) == "DConnected to 127.0.0.1 but authentication credentials invalid (AUTH PLAIN) (#5.7.8)..\nRemote host said: 535 5.7.8 bad credentials\n\\0")
    }

    @Test func authMethodNotOffered() throws {
        let f = RemoteFixture()
        var script = ScriptedSMTPServer.Script()
        script.ehlo = ["250-sink.test", "250 AUTH CRAM-MD5"]
        let server = try #require(ScriptedSMTPServer(script))
        f.route("remote.test", to: server, extra: " user pw")
        let o = f.remote(environment: ["AUTH_SMTP": "PLAIN"])
        #expect(reports(o).hasPrefix("Kno supported AUTH method found, continuing without authentication.\n\\0rFrom:"))
    }

    @Test func qmtpRoute() throws {
        let f = RemoteFixture()
        var script = ScriptedSMTPServer.Script()
        script.qmtpAnswers = ["Kok 123", "Dno\tsuch"]
        let server = try #require(ScriptedSMTPServer(script))
        f.control("qmtproutes", "remote.test:127.0.0.1:\(server.port)\n")
        let o = f.remote(recipients: ["a@remote.test", "b@remote.test"])
        #expect(reports(o) == "rRemote host said: ok 123\n\\0hRemote host said: no?such\n\\0DGiving up on 127.0.0.1 - Protocol QMTP\n\\0")
        #expect(server.log.contains("QMTP message b'\\nSubject: hi\\n\\nhello\\n.dot\\n'"))
        #expect(server.log.contains("QMTP recipients b'13:a@remote.test,13:b@remote.test,'"))
    }

    @Test func postfixSmtpSink() throws {
        let sink = try #require(peer("/usr/sbin/smtp-sink"))
        let f = RemoteFixture()
        let port = freePort()
        // smtp-sink wants an account to run as when started by root.
        let user = getuid() == 0 ? ["-u", "nobody"] : []
        let child = try #require(BackgroundChild([sink] + user + ["127.0.0.1:\(port)", "5"]))
        #expect(waitForListener(port))
        f.control("smtproutes", "remote.test:127.0.0.1:\(port)\n")
        let o = f.remote(recipients: ["x@remote.test", "y@remote.test"])
        #expect(reports(o).hasPrefix("rFrom: <alice@client.test> RCPT: <x@remote.test> \\0rFrom: <alice@client.test> RCPT: <y@remote.test> \\0K127.0.0.1 accepted message - Protocol SMTP.\nRemote host said: 250"))
        _ = child
    }

    @Test func moreSMTPRoutesCDB() throws {
        let f = RemoteFixture()
        let server = try #require(ScriptedSMTPServer(.init()))
        let fd = open(f.box.at("etc/control/moresmtproutes.cdb"), O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let writer = CDBWriter(fd: fd)
        _ = writer.start()
        _ = writer.add(key: "special@cdb.test", value: "127.0.0.1:\(server.port)")
        _ = writer.finish()
        close(fd)
        let o = f.remote(host: "cdb.test", recipients: ["special@cdb.test"])
        #expect(reports(o).hasSuffix(acceptedByScript))
        // $SMTPROUTE wins over the files.
        f.control("smtproutes", "cdb.test:127.0.0.1:1\n")
        let env = f.remote(host: "cdb.test", recipients: ["other@cdb.test"],
                           environment: ["SMTPROUTE": "cdb.test:127.0.0.1:\(server.port)"])
        #expect(reports(env).hasSuffix(acceptedByScript))
    }

    @Test func domainBindingsAndHeloHostByIP() throws {
        let f = RemoteFixture()
        let server = try #require(ScriptedSMTPServer(.init()))
        f.route("remote.test", to: server)
        f.control("domainbindings", "bound.test:127.0.0.1\n")
        let o = f.remote(sender: "alice@bound.test")
        #expect(reports(o).hasSuffix(acceptedByScript))
        #expect(server.log.contains("C: EHLO bound.test\n"))
        f.control("helohostbyip", "127.0.0.1:byip.test\n")
        _ = f.remote(sender: "alice@bound.test")
        #expect(server.log.contains("C: EHLO byip.test\n"))
        // bindroutes wins: a prefix of the remote address picks the local one.
        f.control("bindroutes", "10.:10.0.0.1\n127.0.0.:127.0.0.5\n")
        _ = f.remote(sender: "alice@bound.test")
        #expect(server.log.contains("CONNECT 127.0.0.5\n"))
        #expect(!server.log.contains("CONNECT 127.0.0.5\nCONNECT 127.0.0.1"))
        let bad = f.remote(environment: ["OUTGOINGIP": "not-an-ip"])
        #expect(reports(bad) == "Zinvalid ipaddr in \(f.box.at("etc/control"))/outgoingip (#4.3.0)\n\\0")
    }

    @Test func outcomeScripts() throws {
        let f = RemoteFixture()
        let server = try #require(ScriptedSMTPServer(.init()))
        f.route("remote.test", to: server)
        let record = f.box.at("script.out")
        let script = f.box.write("onresult", "#!/bin/sh\necho \"$0 $SMTPSTATUS $SMTPCODE $SMTPHOST [$SMTPTEXT] $*\" > \(record)\nexit 7\n", mode: 0o755)
        let o = f.remote(environment: ["ONSUCCESS_REMOTE": script, "ONFAILURE_REMOTE": "/nonexistent"])
        #expect(o.exitCode == 7)
        #expect(reports(o).hasSuffix("Remote host said: 250 2.0.0 Ok: queued as 12345\n\\0"))
        let seen = String(decoding: contents(record) ?? [], as: UTF8.self)
        #expect(seen == "\(script) K 250 127.0.0.1 [250 2.0.0 Ok: queued as 12345] remote.test alice@client.test  24 bob@remote.test\n")
    }

    @Test func smtputf8() throws {
        let f = RemoteFixture()
        var script = ScriptedSMTPServer.Script()
        script.ehlo = ["250-sink.test", "250 SMTPUTF8"]
        let server = try #require(ScriptedSMTPServer(script))
        f.route("remote.test", to: server)
        let o = f.remote(recipients: ["jos\u{E9}@remote.test"], environment: ["SMTPUTF8": ""])
        #expect(reports(o).hasSuffix(acceptedByScript))
        #expect(server.log.contains("C: MAIL FROM:<alice@client.test> SMTPUTF8\n"))
        let received = "Received: from a.test\n  by b.test with UTF8SMTP; 1 Jan 2026\nSubject: x\n\nbody\n"
        _ = f.remote(message: received, environment: ["SMTPUTF8": ""])
        #expect(server.log.components("SMTPUTF8\n") == 2)
        _ = f.remote(environment: ["SMTPUTF8": ""])  // plain ASCII: no parameter
        #expect(server.log.components("SMTPUTF8\n") == 2)

        let plain = try #require(ScriptedSMTPServer(.init()))
        f.route("remote.test", to: plain)
        let refused = f.remote(recipients: ["jos\u{E9}@remote.test"], environment: ["SMTPUTF8": ""])
        #expect(reports(refused).hasPrefix("DConnected to 127.0.0.1 but server does not support unicode in email addresses.\nRemote host said: 250-sink.test\n"))
    }

    @Test func batvSigning() throws {
        let f = RemoteFixture()
        let server = try #require(ScriptedSMTPServer(.init()))
        f.route("remote.test", to: server)
        f.control("batvkey", "secret\n")
        let o = f.remote()
        let expected = run(["/usr/bin/python3", "-c", "import hashlib,time;s='0%03d'%(int(time.time()//86400)%1000);"
                            + "print('prvs='+s+hashlib.md5((s+'alice@client.test'+'secret').encode()).hexdigest()[:6]+'=alice@client.test')"]).out
        #expect(expected.hasPrefix("prvs=0"))
        #expect(reports(o).hasPrefix("rFrom: <\(expected.dropLast())> RCPT: <bob@remote.test> \\0K"))
        #expect(server.log.contains("C: MAIL FROM:<\(expected.dropLast())> SIZE=24\n"))
        // Not for domains in batvnosignremote, nor for bounces.
        f.control("batvnosignremote", "remote.test\n")
        _ = f.remote()
        #expect(server.log.contains("C: MAIL FROM:<alice@client.test> SIZE=24\n"))
    }

    @Test func usage() {
        let f = RemoteFixture()
        let o = run([Path.join(f.bin, "qmail-remote"), "remote.test", "a@b"], environment: f.environment, inheritEnvironment: false)
        #expect(reports(o) == "DI (qmail-remote) was invoked improperly. (#5.3.5)\n\\0")
    }
}

/// The client side of PIPELINING (RFC 2920) and BODY=8BITMIME (RFC 6152).
@Suite("qmail-remote PIPELINING and 8BITMIME") struct QmailRemotePipeliningTests {
    static let mixed = "rFrom: <alice@client.test> RCPT: <a@remote.test> \\0"
        + "hFrom: <alice@client.test> RCPT: <b@remote.test> 127.0.0.1 does not like recipient.\nRemote host said: 550 5.1.1 unknown\n\\0"
        + "sFrom: <alice@client.test> RCPT: <c@remote.test> 127.0.0.1 does not like recipient.\nRemote host said: 451 4.2.0 later\n\\0"
        + acceptedByScript

    @Test func mailRcptAndDataGoInOneGroupWithTheSameReports() throws {
        let f = RemoteFixture()
        var script = ScriptedSMTPServer.Script()
        script.rcpt = ["250 2.1.5 ok", "550 5.1.1 unknown", "451 4.2.0 later"]
        let server = try #require(ScriptedSMTPServer(script))
        f.route("remote.test", to: server)
        let recipients = ["a@remote.test", "b@remote.test", "c@remote.test"]

        let pipelined = f.remote(recipients: recipients)
        #expect(reports(pipelined) == Self.mixed)
        // MAIL arrived together with the three RCPTs and DATA, before any reply.
        #expect(server.log.contains("C: MAIL FROM:<alice@client.test> SIZE=24\nAHEAD 4\n"), "\(server.log)")
        #expect(server.log.contains("BODY b'Subject: hi\\r\\n\\r\\nhello\\r\\n..dot\\r\\n'"))

        let single = f.remote(recipients: recipients, environment: ["DISABLE_PIPELINING": "1"])
        #expect(reports(single) == reports(pipelined))
        #expect(server.log.contains("C: MAIL FROM:<alice@client.test> SIZE=24\nAHEAD 0\n"), "\(server.log)")

        // A server that does not offer PIPELINING gets one command at a time.
        script.ehlo = ["250-sink.test", "250 SIZE 1000000"]
        let plain = try #require(ScriptedSMTPServer(script))
        f.route("remote.test", to: plain)
        let o = f.remote(recipients: recipients)
        #expect(reports(o) == Self.mixed)
        #expect(plain.log.contains("AHEAD 0\n") && !plain.log.contains("AHEAD 4"), "\(plain.log)")
    }

    @Test func longRecipientListsGoInGroupsOfAHundredCommands() throws {
        let f = RemoteFixture()
        var script = ScriptedSMTPServer.Script()
        script.rcpt = ["250 ok"] + Array(repeating: "550 5.1.1 no", count: 148) + ["250 ok"]
        let server = try #require(ScriptedSMTPServer(script))
        f.route("remote.test", to: server)
        let recipients = (1...150).map { "r\($0)@remote.test" }
        let o = f.remote(recipients: recipients)
        let text = reports(o)
        // MAIL and 99 RCPTs, their replies, then 51 RCPTs and DATA.
        #expect(server.log.contains("AHEAD 99\n"), "\(server.log.prefix(400))")
        #expect(server.log.components("C: RCPT TO:") == 150)
        #expect(text.hasPrefix("rFrom: <alice@client.test> RCPT: <r1@remote.test> \\0hFrom: <alice@client.test> RCPT: <r2@remote.test> "))
        #expect(text.contains("\\0rFrom: <alice@client.test> RCPT: <r150@remote.test> \\0K127.0.0.1 accepted message"))
        #expect(text.components("does not like recipient") == 148)
    }

    @Test func everyRecipientRefusedSendsNoMessage() throws {
        let f = RemoteFixture()
        let giveUp = "hFrom: <alice@client.test> RCPT: <a@remote.test> 127.0.0.1 does not like recipient.\nRemote host said: 550 5.1.1 no\n\\0"
            + "hFrom: <alice@client.test> RCPT: <b@remote.test> 127.0.0.1 does not like recipient.\nRemote host said: 550 5.1.1 no\n\\0"
            + "DGiving up on 127.0.0.1.\nRemote host said: 550 5.1.1 no\n\\0"
        // The pipelined DATA refused, as a real server does: QUIT follows, nothing else.
        var script = ScriptedSMTPServer.Script()
        script.rcpt = ["550 5.1.1 no"]
        script.data = "554 5.5.1 no valid recipients"
        let refusing = try #require(ScriptedSMTPServer(script))
        f.route("remote.test", to: refusing)
        let o = f.remote(recipients: ["a@remote.test", "b@remote.test"])
        #expect(reports(o) == giveUp)
        #expect(eventually(within: 5) { refusing.log.contains("C: DATA\nC: QUIT\n") }, "\(refusing.log)")
        #expect(!refusing.log.contains("BODY"))

        // A server that answers the DATA with 354 anyway gets a lone "." (RFC 2920 3.1):
        // an empty message it must refuse, never the real one.
        script.data = "354 go ahead"
        let accepting = try #require(ScriptedSMTPServer(script))
        f.route("remote.test", to: accepting)
        let again = f.remote(recipients: ["a@remote.test", "b@remote.test"])
        #expect(reports(again) == giveUp)
        #expect(eventually(within: 5) { accepting.log.contains("C: DATA\nBODY b''\nBODYLEN 0 ") && accepting.log.contains("C: QUIT\n") },
                "\(accepting.log)")
        #expect(!accepting.log.contains("hello"))

        // The same when the sender was refused: the pipelined RCPTs and DATA are answered
        // and the report is the sender's.
        script = ScriptedSMTPServer.Script()
        script.mail = "553 5.1.8 bad sender"
        let noSender = try #require(ScriptedSMTPServer(script))
        f.route("remote.test", to: noSender)
        let sender = f.remote(recipients: ["a@remote.test"])
        #expect(reports(sender) == "DConnected to 127.0.0.1 but sender was rejected.\nRemote host said: 553 5.1.8 bad sender\n\\0")
        #expect(eventually(within: 5) { noSender.log.contains("BODY b''\n") && noSender.log.contains("C: QUIT\n") }, "\(noSender.log)")
        #expect(!noSender.log.contains("hello"))
    }

    @Test func body8BitMIMEOnlyForEightBitMessagesToServersThatOfferIt() throws {
        let f = RemoteFixture()
        let server = try #require(ScriptedSMTPServer(.init()))  // offers 8BITMIME
        f.route("remote.test", to: server)
        let eightBit = "Subject: caf\u{E9}\n\nna\u{EF}ve\n"
        let size = eightBit.utf8.count
        let o = f.remote(message: eightBit)
        #expect(reports(o).hasSuffix(acceptedByScript))
        #expect(server.log.contains("C: MAIL FROM:<alice@client.test> SIZE=\(size) BODY=8BITMIME\n"), "\(server.log)")
        // Only the queue's header lines (qqeh) are 8-bit: that counts too.
        _ = f.remote(qqeh: "X-Note: \u{FC}\n")
        #expect(server.log.components("BODY=8BITMIME") == 2)
        _ = f.remote()  // 7-bit: no parameter
        #expect(server.log.contains("C: MAIL FROM:<alice@client.test> SIZE=24\n"))
        #expect(server.log.components("BODY=8BITMIME") == 2)

        // No 8BITMIME offered: the 8-bit message goes as it is, without the parameter.
        var script = ScriptedSMTPServer.Script()
        script.ehlo = ["250-sink.test", "250-PIPELINING", "250 SIZE 1000000"]
        let old = try #require(ScriptedSMTPServer(script))
        f.route("remote.test", to: old)
        let sent = f.remote(message: eightBit)
        #expect(reports(sent).hasSuffix(acceptedByScript))
        #expect(old.log.contains("C: MAIL FROM:<alice@client.test> SIZE=\(size)\n"), "\(old.log)")
        #expect(old.log.contains("BODYLEN \(size + 3) "))
    }
}

/// MX selection against dnsmasq: SMTP servers on port 25 of private loopback addresses.
@Suite("qmail-remote MX") struct QmailRemoteMXTests {
    /// A 127.x.y.0/24 block unlikely to be used by another test at the same time.
    static func block() -> String { "127.\(100 + Int(getpid()) % 100).\(Int.random(in: 1...250))" }

    @Test func ordersByPreferenceAndSkipsDeadHost() throws {
        let net = QmailRemoteMXTests.block()
        let live = try #require(ScriptedSMTPServer(.init(), address: "\(net).2", port: 25))
        let dns = try #require(Dnsmasq(addresses: ["127.0.0.1"], zones: ["mx.test"], records: [
            "--mx-host=mx.test,dead.mx.test,10", "--mx-host=mx.test,live.mx.test,20",
            "--host-record=dead.mx.test,\(net).3", "--host-record=live.mx.test,\(net).2",
            "--host-record=plain.mx.test,\(net).2", "--cname=alias.mx.test,mx.test",
        ]))
        let f = RemoteFixture()
        let o = f.remote(host: "mx.test", recipients: ["bob@mx.test"], environment: ["DNSCACHEIP": dns.dnscacheip()])
        #expect(reports(o) == "rFrom: <alice@client.test> RCPT: <bob@mx.test> \\0K\(net).2 accepted message - Protocol SMTP.\nRemote host said: 250 2.0.0 Ok: queued as 12345\n\\0")
        // The dead exchanger was tried first and is now in the table.
        let table = f.tcpto
        #expect(Array(table.prefix(5)) == [2, 0, 0, 0, 1])
        #expect(Array(table[16..<20]) == IPAddress("\(net).3")?.bytes)

        // Implicit MX: a name with only an address.
        let implicit = f.remote(host: "plain.mx.test", recipients: ["bob@plain.mx.test"], environment: ["DNSCACHEIP": dns.dnscacheip()])
        #expect(reports(implicit).hasSuffix("K\(net).2 accepted message - Protocol SMTP.\nRemote host said: 250 2.0.0 Ok: queued as 12345\n\\0"))

        // A recipient domain that is an alias is sent as its canonical name.
        let alias = f.remote(host: "alias.mx.test", recipients: ["carol@alias.mx.test"], environment: ["DNSCACHEIP": dns.dnscacheip()])
        #expect(reports(alias).hasPrefix("rFrom: <alice@client.test> RCPT: <carol@mx.test> \\0K\(net).2 accepted"))
        #expect(live.log.contains("C: RCPT TO:<carol@mx.test>\n"))
        let kept = f.remote(host: "alias.mx.test", recipients: ["dave@alias.mx.test"],
                            environment: ["DNSCACHEIP": dns.dnscacheip(), "DISABLE_CNAME_LOOKUP": "1"])
        #expect(reports(kept).hasPrefix("rFrom: <alice@client.test> RCPT: <dave@alias.mx.test> \\0K"))

        let missing = f.remote(host: "nx.mx.test", recipients: ["bob@nx.mx.test"], environment: ["DNSCACHEIP": dns.dnscacheip()])
        #expect(reports(missing) == "DSorry, I couldn't find any host named nx.mx.test. (#5.1.2)\n\\0")

        // Both exchangers dead: every address tried is listed.
        _ = f.tool("qmail-tcpok")
        withExtendedLifetime(live) {}
        let dnsDead = try #require(Dnsmasq(addresses: ["127.0.0.1"], zones: ["dead.test"], records: [
            "--mx-host=dead.test,a.dead.test,10", "--mx-host=dead.test,b.dead.test,10",
            "--host-record=a.dead.test,\(net).4", "--host-record=b.dead.test,\(net).5",
        ]))
        let none = f.remote(host: "dead.test", recipients: ["x@dead.test"], environment: ["DNSCACHEIP": dnsDead.dnscacheip()])
        let text = reports(none)
        #expect(text.hasPrefix("ZSorry, I wasn't able to establish a SMTP connection for dead.test to "))
        #expect(text.contains("\(net).4") && text.contains("\(net).5"))
        #expect(text.hasSuffix(" port 25 bind IP [::]. (#4.4.1)\n\\0"))
    }

    @Test func mxpsPrefersQMTPAndFallsBackToSMTP() throws {
        let net = QmailRemoteMXTests.block()
        var script = ScriptedSMTPServer.Script()
        script.qmtpAnswers = ["Kthanks"]
        let qmtp = try #require(ScriptedSMTPServer(script, address: "\(net).2", port: 209))
        let smtp = try #require(ScriptedSMTPServer(.init(), address: "\(net).3", port: 25))
        let dns = try #require(Dnsmasq(addresses: ["127.0.0.1"], zones: ["mxps.test"], records: [
            "--mx-host=q.mxps.test,qmtp.mxps.test,12801", "--host-record=qmtp.mxps.test,\(net).2",
            "--mx-host=s.mxps.test,smtp.mxps.test,12801", "--host-record=smtp.mxps.test,\(net).3",
        ]))
        let f = RemoteFixture()
        let o = f.remote(host: "q.mxps.test", recipients: ["a@q.mxps.test"], environment: ["DNSCACHEIP": dns.dnscacheip()])
        #expect(reports(o) == "rRemote host said: thanks\n\\0K\(net).2 accepted message - Protocol QMTP\n\\0")
        #expect(qmtp.log.contains("QMTP recipients b'13:a@q.mxps.test,'"))
        let fallback = f.remote(host: "s.mxps.test", recipients: ["a@s.mxps.test"], environment: ["DNSCACHEIP": dns.dnscacheip()])
        #expect(reports(fallback).hasSuffix("K\(net).3 accepted message - Protocol SMTP.\nRemote host said: 250 2.0.0 Ok: queued as 12345\n\\0"))
        #expect(smtp.log.contains("C: RCPT TO:<a@s.mxps.test>"))
        // DISABLE_MXPS: plain SMTP on port 25 straight away (nothing listens there for q).
        let disabled = f.remote(host: "q.mxps.test", recipients: ["a@q.mxps.test"],
                                environment: ["DNSCACHEIP": dns.dnscacheip(), "DISABLE_MXPS": "1"])
        #expect(reports(disabled) == "ZSorry, I wasn't able to establish a SMTP connection for q.mxps.test to \(net).2 port 25 bind IP [::]. (#4.4.1)\n\\0")
    }

    @Test func internationalizedDomainIsLookedUpByItsALabel() throws {
        let net = QmailRemoteMXTests.block()
        let live = try #require(ScriptedSMTPServer(.init(), address: "\(net).2", port: 25))
        let dns = try #require(Dnsmasq(addresses: ["127.0.0.1"], zones: ["xn--bcher-kva.test"], records: [
            "--mx-host=xn--bcher-kva.test,mx.xn--bcher-kva.test,10", "--host-record=mx.xn--bcher-kva.test,\(net).2",
        ]))
        let f = RemoteFixture()
        let o = f.remote(host: "b\u{FC}cher.test", recipients: ["bob@b\u{FC}cher.test"], environment: ["DNSCACHEIP": dns.dnscacheip()])
        #expect(reports(o) == "rFrom: <alice@client.test> RCPT: <bob@b??cher.test> \\0K\(net).2 accepted message - Protocol SMTP.\nRemote host said: 250 2.0.0 Ok: queued as 12345\n\\0")
        // The envelope keeps the domain as written (the log shows its UTF-8 bytes as Latin-1).
        #expect(live.log.contains("C: RCPT TO:<bob@b\u{C3}\u{BC}cher.test>\n"), "\(live.log)")
        let queries = String(decoding: contents(dns.logFile) ?? [], as: UTF8.self)
        #expect(queries.contains("query[MX] xn--bcher-kva.test from"), "\(queries)")

        // No A-label for a name with a symbol in it: it cannot exist, a permanent failure.
        let bad = f.remote(host: "\u{2603}.test", recipients: ["bob@\u{2603}.test"], environment: ["DNSCACHEIP": dns.dnscacheip()])
        #expect(reports(bad) == "DSorry, I couldn't find any host named ???.test. (#5.1.2)\n\\0")
    }

    @Test func localAddressAsBestMXIsRefused() throws {
        let dns = try #require(Dnsmasq(addresses: ["127.0.0.1"], zones: ["self.test"], records: [
            "--mx-host=self.test,me.self.test,10", "--host-record=me.self.test,127.0.0.1",
        ]))
        let f = RemoteFixture()
        let o = f.remote(host: "self.test", recipients: ["x@self.test"], environment: ["DNSCACHEIP": dns.dnscacheip()])
        #expect(reports(o) == "DSorry. Although I'm listed as a best-preference MX or A for that host,\nit isn't in my \(f.box.at("etc/control"))/locals file, so I don't treat it as local. (#5.4.6)\n\\0")
    }
}

private extension String {
    func components(_ needle: String) -> Int {
        let hay = Array(utf8), n = Array(needle.utf8)
        guard !n.isEmpty, hay.count >= n.count else { return 0 }
        var count = 0
        var i = 0
        while i + n.count <= hay.count {
            if Array(hay[i..<(i + n.count)]) == n { count += 1; i += n.count } else { i += 1 }
        }
        return count
    }
}
