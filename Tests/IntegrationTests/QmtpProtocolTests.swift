// qmail-qmtpd and qmail-qmqpd on pipes: per-recipient replies, rcpthosts, RELAYCLIENT,
// databytes, bad senders and recipients, CR LF conversion, and protocol violations, with the
// real qmail-queue writing a private queue.
import Core
import Glibc
import Mail
import Testing

@Suite struct QmtpProtocolTests {
    static func ns(_ s: String) -> String { "\(s.utf8.count):\(s)," }
    static func ns(_ b: [UInt8]) -> [UInt8] { Array("\(b.count):".utf8) + b + [44] }

    /// One QMTP message: body (with its leading LF/CR marker), sender, recipients.
    static func message(_ body: String, _ sender: String, _ rcpts: [String]) -> String {
        ns(body) + ns(sender) + ns(rcpts.map { ns($0) }.joined())
    }

    final class Setup {
        let box = Sandbox()
        let queue: String
        var environment: [String: String]
        init() {
            queue = QueueTest.makeQueue(box)
            box.write("control/rcpthosts", "example.org\n.example.net\n")
            environment = QueueTest.accounts
            environment["QMAILQUEUE"] = Build.qmailQueue
            environment["QUEUEDIR"] = queue
            environment["CONFSPLIT"] = "3"
            environment["BIGTODO"] = "0"
            environment["SYSCONFDIR"] = box.path
            environment["TCPREMOTEIP"] = "192.0.2.9"
            environment["TCPLOCALHOST"] = "mx.test"
        }
        func run(_ program: String, _ input: [UInt8], _ extra: [String: String] = [:]) -> Outcome {
            IntegrationTests.run([Build.indimail, program], stdin: input, environment: environment.merging(extra) { $1 })
        }
        var messages: [String] {
            QueueTest.messageFiles(queue).filter { $0.hasPrefix("mess/") }.map { readText(Path.join(queue, $0)) }
        }
        var envelopes: [String] {
            QueueTest.messageFiles(queue).filter { $0.hasPrefix("todo/") }.map { readText(Path.join(queue, $0)) }
        }
    }

    /// Splits concatenated reply netstrings.
    func replies(_ out: [UInt8]) -> [String] {
        ((try? Netstring.parseAll(out).get()) ?? [[UInt8](repeating: 63, count: 1)]).map { String(decoding: $0, as: UTF8.self) }
    }

    @Test func repliesPerRecipientAndQueues() {
        let s = Setup()
        let input = Self.message("\r" + "Subject: a\r\n\r\nx\ry\r\n", "s@example.org",
                                 ["a@example.org", "b@mx.example.net", "c@example.net", "d@other.com", "e\0@example.org",
                                  String(repeating: "f", count: 1000) + "@example.org"])
            + Self.message("\nSubject: b\n\nplain\n", "", ["postmaster"])
        let r = s.run("qmail-qmtpd", Array(input.utf8))
        #expect(r.exitCode == 0, "\(r.err)")
        let got = replies(r.stdout)
        #expect(got.count == 7, "\(got)")
        if got.count == 7 {
            #expect(got[0].hasPrefix("Kok ") && got[1] == got[0] && got[6].hasPrefix("Kok "))
            #expect(got[2] == "Dsorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)")
            #expect(got[3] == got[2])
            #expect(got[4] == "Dsorry, I can't handle that recipient (#5.1.3)" && got[5] == got[4])
        }
        #expect(s.messages.count == 2)
        let dos = s.messages.first { $0.contains("Subject: a") } ?? ""
        #expect(dos.hasSuffix("Subject: a\n\nx\ry\n"), "\(dos)")
        #expect(dos.contains("Received: indimail-mta qmtpd ") && dos.contains("(192.0.2.9)\n  by mx.test with QMTP; "))
        #expect(s.envelopes.contains { $0.hasSuffix("Fs@example.org\0Ta@example.org\0Tb@mx.example.net\0") })
    }

    @Test func relayClientAcceptsAndAppends() {
        let s = Setup()
        let r = s.run("qmail-qmtpd", Array(Self.message("\nx\n", "s@a", ["u@other.com"]).utf8), ["RELAYCLIENT": "@relay"])
        #expect(replies(r.stdout).first?.hasPrefix("Kok ") == true)
        #expect(s.envelopes.first?.contains("Tu@other.com@relay\0") == true)
    }

    @Test func refusesBadSenderAndOversizedMessages() {
        let s = Setup()
        let badSender = s.run("qmail-qmtpd", Array(Self.message("\nx\n", "bad\0sender", ["a@example.org", "b@example.org"]).utf8))
        #expect(replies(badSender.stdout) == ["Dunacceptable sender (#5.1.7)", "Dunacceptable sender (#5.1.7)"])
        let big = s.run("qmail-qmtpd", Array(Self.message("\n" + String(repeating: "z", count: 50), "s@a", ["a@example.org"]).utf8),
                        ["DATABYTES": "20"])
        #expect(replies(big.stdout) == ["Dsorry, that message size exceeds my databytes limit (#5.3.4)"])
        s.box.write("control/databytes", "30\n")
        let dosBig = s.run("qmail-qmtpd", Array(Self.message("\r" + String(repeating: "z\r\n", count: 20), "s@a", ["a@example.org"]).utf8))
        #expect(replies(dosBig.stdout) == ["Dsorry, that message size exceeds my databytes limit (#5.3.4)"])
        #expect(s.messages.isEmpty)
    }

    @Test(arguments: ["1:X,1:,0:,", "0:,0:,0:,", "x:abc", "3:\nab;", "5:\nabcd,0:,5:3:a@b,,"])
    func protocolViolationsExit100(input: String) {
        let s = Setup()
        let r = s.run("qmail-qmtpd", Array(input.utf8))
        #expect(r.exitCode == 100, "\(input): \(r.exitCode.map(String.init) ?? "signal") \(r.err)")
        #expect(s.messages.isEmpty)
    }

    @Test(arguments: ["", "10:\nabc", "3:\nab,0:,"])
    func hangupsExitZeroQueueingNothing(input: String) {
        let s = Setup()
        let r = s.run("qmail-qmtpd", Array(input.utf8))
        #expect(r.exitCode == 0, "\(r.err)")
        #expect(s.messages.isEmpty && r.stdout.isEmpty)
    }

    @Test func qmqpdQueuesAndRefusesBadAddresses() {
        let s = Setup()
        let good = Self.ns(Self.ns("Subject: q\n\nhi\n") + Self.ns("s@a") + Self.ns("r1@anywhere.com") + Self.ns("r2@else.org"))
        let r = s.run("qmail-qmqpd", Array(good.utf8))
        #expect(r.exitCode == 0)
        #expect(replies(r.stdout).first?.hasPrefix("Kok ") == true)
        #expect(s.envelopes.first?.hasSuffix("Fs@a\0Tr1@anywhere.com\0Tr2@else.org\0") == true)
        #expect(s.messages.first?.contains("Received: indimail-mta qmqpd ") == true)
        let bad = Self.ns(Self.ns("x\n") + Self.ns("s@a") + Self.ns("nul\0here"))
        let refused = s.run("qmail-qmqpd", Array(bad.utf8))
        #expect(replies(refused.stdout) == ["Dsorry, I can't accept addresses like that (#5.1.3)"])
        #expect(s.messages.count == 1)
        // Inner netstrings running past the outer one: a protocol violation.
        let overrun = s.run("qmail-qmqpd", Array("5:3:abc,3:s@a,,".utf8))
        #expect(overrun.exitCode == 100)
        #expect(s.messages.count == 1)
    }
}
