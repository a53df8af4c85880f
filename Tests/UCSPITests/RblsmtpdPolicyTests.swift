// rblsmtpd without a network: option parsing, the decision order of spec §7.2 against
// scripted lookups, message cleaning, and the blocked-session replies of §7.3.
import Core
import Testing
import UCSPI

/// Lookups answered from tables; names not in a table are "not listed". Records every
/// name asked, so tests can check which sources were consulted.
final class ScriptedLookups {
    var texts: [String: Result<[UInt8], DNSError>] = [:]
    var addresses: [String: Result<Bool, DNSError>] = [:]
    var asked: [String] = []

    var lookups: RBLLookups {
        RBLLookups(text: { name in
            self.asked.append("TXT " + name.description)
            return self.texts[name.description] ?? .success([])
        }, hasAddress: { name in
            self.asked.append("A " + name.description)
            return self.addresses[name.description] ?? .success(false)
        })
    }
}

func args(_ list: String...) -> [[UInt8]] { list.map { Array($0.utf8) } }

@Suite("rblsmtpd options")
struct RblsmtpdOptionsTests {
    @Test func parsesInOrder() throws {
        let o = try RblsmtpdOptions.parse(args("-bc", "-t", "5", "-r", "bl.test", "-B", "-rbl2.test:go %IP%", "-C",
                                               "-a", "ok.test", "-w3", "-W", "qmail-smtpd", "-x", "y")).get()
        #expect(o.steps == [.bounce(true), .failClosed(true), .rbl(base: "bl.test", message: nil), .bounce(false),
                            .rbl(base: "bl2.test", message: "go %IP%"), .failClosed(false), .antiRBL(base: "ok.test")])
        #expect(o.timeout == 5)
        #expect(o.greetDelay == 3)
        #expect(o.greetDelayFromEnvironment)
        #expect(o.program == args("qmail-smtpd", "-x", "y"))
        #expect(try RblsmtpdOptions.parse(args("-r", "x:", "p")).get().steps == [.rbl(base: "x", message: "")])
        #expect(try RblsmtpdOptions.parse(args("-r", "x", "p")).get().timeout == 60)
    }

    @Test func usageErrors() {
        for bad in [args(), args("prog"), args("-r", "x"), args("-a", "x", "prog"), args("-R", "-r", "x", "p"),
                    args("-t", "5s", "-r", "x", "p"), args("-t", "", "-r", "x", "p"), args("-w", "-1", "-r", "x", "p"),
                    args("-r"), args("-r", "x", "-t")] {
            if case .success(let o) = RblsmtpdOptions.parse(bad) { Issue.record("accepted \(bad): \(o)") }
        }
    }
}

@Suite("rblsmtpd decision")
struct RblsmtpdDecisionTests {
    static func decide(_ argv: [[UInt8]], env: [(String, String)] = [("TCPREMOTEIP", "127.0.0.2")],
                       _ scripted: ScriptedLookups, warnings: UnsafeMutablePointer<[String]>? = nil) throws -> RblsmtpdVerdict {
        let options = try RblsmtpdOptions.parse(argv + args("prog")).get()
        let environment = Environment(env)
        return RblsmtpdPolicy.decide(options, environment: environment, client: RemoteClient(environment: environment),
                                     lookups: scripted.lookups, warn: { warnings?.pointee.append($0) })
    }

    static func block(_ code: Int, _ text: String) -> RblsmtpdVerdict { .block(code: code, text: Array(text.utf8)) }

    @Test func environmentDecidesFirst() throws {
        let s = ScriptedLookups()
        s.texts["2.0.0.127.bl.test"] = .success(Array("listed".utf8))
        #expect(try Self.decide(args("-r", "bl.test"), env: [("RBLSMTPD", ""), ("TCPREMOTEIP", "127.0.0.2")], s) == .accept)
        #expect(try Self.decide(args("-r", "bl.test"), env: [("RBLSMTPD", "-Go away %IP%%IP"), ("TCPREMOTEIP", "1.2.3.4")], s)
                == Self.block(553, "Go away 1.2.3.4%IP"))
        #expect(try Self.decide(args("-b", "-r", "bl.test"), env: [("RBLSMTPD", "later %IP%"), ("TCPREMOTEIP", "::ffff:1.2.3.4")], s)
                == Self.block(451, "later 1.2.3.4"))
        #expect(try Self.decide(args("-r", "bl.test"), env: [("RBLSMTPD", "-")], s) == Self.block(553, ""))
        #expect(s.asked.isEmpty)
    }

    @Test func txtAndAddressSources() throws {
        let s = ScriptedLookups()
        s.texts["2.0.0.127.bl.test"] = .success(Array("see http://bl.test/?127.0.0.2".utf8))
        s.texts["2.0.0.127.empty.test"] = .success([])
        s.addresses["2.0.0.127.abl.test"] = .success(true)
        #expect(try Self.decide(args("-r", "bl.test"), s) == Self.block(451, "see http://bl.test/?127.0.0.2"))
        #expect(try Self.decide(args("-b", "-r", "bl.test"), s) == Self.block(553, "see http://bl.test/?127.0.0.2"))
        #expect(try Self.decide(args("-r", "empty.test"), s) == .accept)
        #expect(try Self.decide(args("-r", "abl.test:listed at %IP%"), s) == Self.block(451, "listed at 127.0.0.2"))
        #expect(try Self.decide(args("-r", "abl.test:"), s) == Self.block(451, ""))
        #expect(try Self.decide(args("-r", "other.test:x"), s) == .accept)
        // -b/-B affect only what follows; the first listing wins; later sources are not asked.
        s.asked = []
        #expect(try Self.decide(args("-r", "none.test", "-b", "-r", "bl.test", "-B", "-r", "abl.test:x"), s)
                == Self.block(553, "see http://bl.test/?127.0.0.2"))
        #expect(s.asked == ["TXT 2.0.0.127.none.test", "TXT 2.0.0.127.bl.test"])
    }

    @Test func antiRBL() throws {
        let s = ScriptedLookups()
        s.texts["2.0.0.127.bl.test"] = .success(Array("listed".utf8))
        s.addresses["2.0.0.127.white.test"] = .success(true)
        #expect(try Self.decide(args("-a", "white.test", "-r", "bl.test"), s) == .accept)
        #expect(try Self.decide(args("-r", "bl.test", "-a", "white.test"), s) == Self.block(451, "listed"))
        #expect(try Self.decide(args("-a", "grey.test", "-r", "bl.test"), s) == Self.block(451, "listed"))
    }

    @Test func temporaryFailures() throws {
        let s = ScriptedLookups()
        s.texts["2.0.0.127.down.test"] = .failure(.temporary("timed out"))
        s.addresses["2.0.0.127.down.test"] = .failure(.temporary("timed out"))
        s.texts["2.0.0.127.bl.test"] = .success(Array("listed".utf8))
        // Fail-open (default): not listed, try the next source.
        #expect(try Self.decide(args("-r", "down.test"), s) == .accept)
        #expect(try Self.decide(args("-r", "down.test:x"), s) == .accept)
        // ... but any failure forces 451 even with -b.
        #expect(try Self.decide(args("-b", "-r", "down.test", "-r", "bl.test"), s) == Self.block(451, "listed"))
        // Fail-closed: listed with the lookup error text.
        #expect(try Self.decide(args("-c", "-r", "down.test", "-r", "bl.test"), s) == Self.block(451, "temporary RBL lookup error"))
        #expect(try Self.decide(args("-c", "-r", "down.test:x"), s) == Self.block(451, "temporary RBL lookup error"))
        // Anti-RBL failure: fail-open accepts, fail-closed goes on (and forbids 553).
        #expect(try Self.decide(args("-a", "down.test", "-r", "bl.test"), s) == .accept)
        #expect(try Self.decide(args("-c", "-b", "-a", "down.test", "-r", "bl.test"), s) == Self.block(451, "listed"))
        // Permanent failures count as failures too.
        s.texts["2.0.0.127.refused.test"] = .failure(.permanent("REFUSED"))
        #expect(try Self.decide(args("-c", "-r", "refused.test"), s) == Self.block(451, "temporary RBL lookup error"))
    }

    @Test func addressForms() throws {
        let s = ScriptedLookups()
        let v6 = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"
        s.texts["\(v6).bl.test"] = .success(Array("v6 listed".utf8))
        s.texts["4.3.2.1.bl.test"] = .success(Array("v4 listed".utf8))
        #expect(try Self.decide(args("-r", "bl.test"), env: [("PROTO", "TCP6"), ("TCPREMOTEIP", "2001:db8::1")], s) == Self.block(451, "v6 listed"))
        #expect(try Self.decide(args("-r", "bl.test"), env: [("PROTO", "TCP6"), ("TCPREMOTEIP", "::ffff:1.2.3.4")], s) == Self.block(451, "v4 listed"))
        #expect(try Self.decide(args("-r", "bl.test"), env: [("PROTO", "TCP"), ("TCPREMOTEIP", "1.2.3.4")], s) == Self.block(451, "v4 listed"))
        // No usable address: no lookups at all, one warning.
        var warnings: [String] = []
        s.asked = []
        #expect(try Self.decide(args("-c", "-r", "bl.test", "-a", "x.test"), env: [("TCPREMOTEIP", "bogus")], s, warnings: &warnings) == .accept)
        #expect(try Self.decide(args("-r", "bl.test"), env: [], s) == .accept)
        #expect(s.asked.isEmpty)
        #expect(warnings.count == 1)
        // A zone name too long to exist is a failed lookup.
        warnings = []
        let huge = Array(repeating: String(repeating: "z", count: 62), count: 4).joined(separator: ".")
        #expect(try Self.decide(args("-c", "-r", huge), s, warnings: &warnings) == Self.block(451, "temporary RBL lookup error"))
        #expect(warnings.count == 1)
    }

    @Test func replyCleaning() {
        let long = RblsmtpdVerdict.block(code: 553, text: Array(repeating: UInt8(ascii: "x"), count: 300))
        #expect(long.reply.count == 4 + 200)
        let dirty = RblsmtpdVerdict.block(code: 451, text: [65, 13, 10, 0, 200, 126, 127])
        #expect(dirty.reply == Array("451 A????~?".utf8))
        #expect(RblsmtpdVerdict.accept.reply == [])
    }
}

@Suite("rblsmtpd blocked session")
struct RblsmtpdSessionTests {
    static let session = RblsmtpdSession(refusal: Array("451 go away".utf8), greeting: Array("mx.test".utf8), ehloExtensions: false)

    func reply(_ line: String, _ s: RblsmtpdSession = Self.session) -> String {
        String(decoding: s.respond(to: Array(line.utf8)).reply, as: UTF8.self)
    }

    @Test func replies() {
        #expect(reply("HELO x") == "250 mx.test\r\n")
        #expect(reply("ehlo x") == "250 mx.test\r\n")
        #expect(reply("rSeT") == "250 mx.test\r\n")
        #expect(reply("NOOP") == "250 mx.test\r\n")
        #expect(reply("MAIL FROM:<a@b>") == "250 mx.test\r\n")
        #expect(reply("RCPT TO:<c@d>") == "451 go away\r\n")
        #expect(reply("DATA") == "451 go away\r\n")
        #expect(reply("VRFY x") == "252 mx.test\r\n")
        #expect(reply("STARTTLS") == "451 go away\r\n")
        #expect(reply("") == "451 go away\r\n")
        #expect(reply("XEXPS") == "451 go away\r\n")
        #expect(reply(" HELO") == "451 go away\r\n")  // the verb is what comes before the first space
        let quit = Self.session.respond(to: Array("QUIT".utf8))
        #expect(quit.reply == Array("221 mx.test\r\n".utf8) && quit.quit)
        let ehlo = RblsmtpdSession(refusal: Array("553 no".utf8), greeting: Array("g".utf8), ehloExtensions: true)
        #expect(reply("EHLO x", ehlo) == "250-g\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-STARTTLS\r\n250 HELP\r\n")
        #expect(reply("HELO x", ehlo) == "250 g\r\n")
        // The greeting from the environment is cleaned like the refusal.
        let env = RblsmtpdSession(refusal: [], environment: Environment([("RBLGREETING", "evil\r\n250 x"), ("RBLEHLO", "")]))
        #expect(env.greeting == Array("evil??250 x".utf8))
        #expect(env.ehloExtensions)
        #expect(RblsmtpdSession(refusal: [], environment: Environment()).greeting == Array("rblsmtpd.indimail".utf8))
    }

    @Test func envelopeLogging() {
        func log(_ line: String, overlong: Bool = false) -> String? { Self.session.respond(to: Array(line.utf8), overlong: overlong).log }
        #expect(log("MAIL FROM:<a@b.test> SIZE=10") == "Sender <a@b.test>")
        #expect(log("mail from: <@relay.test,@x:user@host>") == "Sender <user@host>")
        #expect(log("MAIL FROM:<\"odd > name\"@host>") == "Sender <odd > name@host>")
        #expect(log("MAIL FROM:<a\\>b@c>") == "Sender <a>b@c>")
        #expect(log("MAIL FROM: bare@host junk") == "Sender <bare@host>")
        #expect(log("MAIL FROM:<>") == "Sender <>")
        #expect(log("MAIL") == "Sender <>")
        #expect(log("RCPT TO:<x\u{1}y@z>") == "Recipient <x?y@z>")
        #expect(log("RCPT TO:<x\0y@z>") == "Recipient <x?y@z>")
        #expect(log("RCPT TO:<" + String(repeating: "a", count: 901) + ">") == "RCPT with too long address")
        #expect(log("RCPT TO:<" + String(repeating: "a", count: 900) + ">")?.count == 900 + 12)
        #expect(log("MAIL FROM:<a@b>", overlong: true) == "MAIL with too long address")
        #expect(log("HELO x") == nil)
        #expect(log("DATA") == nil)
    }
}

@Suite("rblsmtpd against random input")
struct RblsmtpdFuzzTests {
    @Test func commandLinesGetCleanReplies() {
        var g = SeededGenerator(seed: 11)
        let session = RblsmtpdSession(refusal: RblsmtpdVerdict.block(code: 451, text: [7, 65]).reply,
                                      greeting: [0, 66, 200], ehloExtensions: Bool.random(using: &g))
        let verbs = ["MAIL FROM:", "RCPT TO:", "mail from:<", "rcpt to: <@a,@b:", "HELO ", "EHLO", "QUIT", "vrfy", "DATA", ""]
        for _ in 0..<20000 {
            var line = Array(verbs.randomElement(using: &g)!.utf8)
            line += (0..<Int.random(in: 0...1100, using: &g)).map { _ in
                Bool.random(using: &g) ? UInt8.random(in: 0...255, using: &g) : Array("<>\"\\@: a".utf8).randomElement(using: &g)!
            }
            let r = session.respond(to: line, overlong: Bool.random(using: &g))
            #expect(r.reply.count >= 6 && r.reply.suffix(2) == [13, 10])
            #expect(r.reply.dropLast(2).allSatisfy { $0 == 13 || $0 == 10 || (32...126).contains($0) })
            if let log = r.log { #expect(log.utf8.allSatisfy { (32...126).contains($0) } && log.utf8.count <= 920) }
        }
    }

    @Test func argumentListsNeverTrap() {
        var g = SeededGenerator(seed: 3)
        let pieces = ["-r", "-a", "-b", "-B", "-c", "-C", "-t", "-w", "-W", "-t0", "-rbl.test:x", "--", "-", "prog", "5", "x:y", "-z", ""]
        for _ in 0..<20000 {
            let argv = (0..<Int.random(in: 0...8, using: &g)).map { _ in Array(pieces.randomElement(using: &g)!.utf8) }
            if case .success(let o) = RblsmtpdOptions.parse(argv) {
                #expect(!o.program.isEmpty)
                #expect(o.steps.contains { if case .rbl = $0 { return true } else { return false } })
            }
        }
    }
}
