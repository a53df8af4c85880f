// qmail-smtpd's warm-up in process: the rehearsal really goes through a whole conversation
// (DATA included, to an accepted message) and leaves the control and queue trees untouched.
import Core
import Glibc
@testable import Mail
import Testing

@Suite("qmail-smtpd warm-up (in process)")
struct SMTPWarmUpTests {
    /// control/ (me, rcpthosts), an empty queue/, and a QMAILQUEUE program that would
    /// leave a mark: everything under one temp directory, removed at the end.
    final class Tree {
        let path: String
        init(rcpthosts: String = "mx.test\nexample.com\n") {
            var template = Array("/tmp/smtp-warmup-XXXXXX".utf8CString)
            path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
            mkdir(path + "/control", 0o755)
            mkdir(path + "/queue", 0o755)
            write("control/me", "mx.test\n")
            write("control/rcpthosts", rcpthosts)
            write("qq", "#!/bin/sh\ntouch \(path)/queue-program-ran\nexit 0\n", mode: 0o755)
        }
        deinit { _ = Spawn.run([Array("/bin/rm".utf8), Array("-rf".utf8), Array(path.utf8)], environment: Environment()) }

        func write(_ name: String, _ text: String, mode: mode_t = 0o644) {
            let fd = open(path + "/" + name, O_WRONLY | O_CREAT | O_TRUNC, mode)
            guard fd >= 0 else { return }
            _ = FD.writeAll(fd, Array(text.utf8))
            close(fd)
        }

        /// Every entry under the tree with its size and modification time.
        func snapshot(_ dir: String = "") -> [String] {
            guard case .success(let names) = Path.entries(path + dir) else { return [] }
            var out: [String] = []
            for name in names.sorted() {
                let rel = dir + "/" + name
                var st = stat()
                guard lstat(path + rel, &st) == 0 else { continue }
                out.append("\(rel) \(st.st_size) \(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)")
                if (st.st_mode & S_IFMT) == S_IFDIR { out += snapshot(rel) }
            }
            return out
        }

        var context: CommandContext {
            // No NODNSCHECK: the rehearsal must not ask the DNS all the same.
            CommandContext(name: "qmail-smtpd", arguments: [[UInt8]](), environment: Environment([
                ("CONTROLDIR", path + "/control"), ("SYSCONFDIR", path), ("QUEUEDIR", path + "/queue"),
                ("QMAILQUEUE", path + "/qq"), ("TCPREMOTEIP", "127.0.0.1"), ("TCPLOCALIP", "127.0.0.1"),
                ("TCPLOCALPORT", "25"), ("PATH", "/usr/bin:/bin")]))
        }
    }

    @Test("the rehearsal runs a whole conversation: greeting, EHLO, two messages accepted, small talk, QUIT",
          arguments: ["mx.test\nexample.com\n", "example.com\n"])
    func transcript(rcpthosts: String) {
        // Without `me` in rcpthosts the rehearsal relays, so its messages still reach DATA.
        let tree = Tree(rcpthosts: rcpthosts)
        let context = tree.context
        let replies = String(decoding: QmailSmtpdCommand.rehearse(context, preloaded: QmailSmtpdCommand.preload(context)),
                             as: UTF8.self)
        let lines = replies.split(separator: "\r\n").map(String.init).filter { !$0.hasPrefix("250-") }
        let codes = lines.map { String($0.prefix(3)) }
        #expect(codes == ["220", "250", "250", "250", "354", "250", "250", "250", "250", "250", "354", "250",
                          "250", "252", "214", "214", "214", "214", "502", "221"], "\(replies)")
        // Each message got the acceptance a real queue gives, with this process as "qp".
        #expect(lines.filter { $0.hasPrefix("250 ok ") && $0.hasSuffix(" qp \(getpid())") }.count == 2, "\(replies)")
        #expect(replies.contains("250-PIPELINING\r\n"))
    }

    @Test("warm-up writes no file, runs no queue program, and a session afterwards answers as before")
    func noTrace() {
        let tree = Tree()
        let context = tree.context
        let preloaded = QmailSmtpdCommand.preload(context)
        func conversation() -> [String] {
            var settings = SMTPSettings.make(context.environment, controls: preloaded.controls, authHostname: nil)
            settings.extraGreeting = false
            var s = SMTPSession(settings: settings, controls: preloaded.controls)
            var out = [String(decoding: s.greeting().reply, as: UTF8.self)]
            for line in ["EHLO c.test", "MAIL FROM:<a@b.org>", "RCPT TO:<u@example.com>", "RCPT TO:<u@elsewhere.org>", "DATA", "QUIT"] {
                out.append(String(decoding: s.command(Array(line.utf8)).reply, as: UTF8.self))
            }
            out.append(String(decoding: s.receivedHeader(pid: 1, date: "date\n"), as: UTF8.self))
            return out
        }
        let before = tree.snapshot()
        let sessionBefore = conversation()
        QmailSmtpdCommand.warmUp(context, preloaded: preloaded)
        QmailSmtpdCommand.warmUp(context, preloaded: preloaded)
        #expect(tree.snapshot() == before)
        #expect(access(tree.path + "/queue-program-ran", F_OK) != 0)
        let sessionAfter = conversation()
        #expect(sessionAfter == sessionBefore)
        #expect(sessionAfter.count == 8 && sessionAfter[4].hasPrefix("553 "), "\(sessionAfter)")
    }
}

/// The session's per-connection text building was rewritten without generic collection
/// machinery (it runs in every child): checked against the former implementations.
@Suite("SMTP hot paths against the former implementations")
struct SMTPHotPathModelTests {
    /// The former Received-line filter: one '?' per Unicode scalar outside the safe set.
    static func safeModel(_ s: String) -> String {
        String(s.unicodeScalars.map { c -> Character in
            let ok = (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || ".@%+/=:-_[] ".unicodeScalars.contains(c)
            return ok ? Character(c) : "?"
        })
    }

    /// The former EHLO reply: lines collected, then joined.
    static func ehloModel(_ s: SMTPSession) -> String {
        var lines = ["250-" + (s.settings.greeting.first ?? "")]
        let offered = s.offeredMechanisms
        if !offered.isEmpty {
            let names = offered.map(\.rawValue).joined(separator: " ")
            lines.append("250-AUTH " + names)
            if s.settings.oldClient { lines.append("250-AUTH=" + names) }
        }
        lines += ["250-PIPELINING", "250-8BITMIME"]
        if s.settings.databytes > 0 { lines.append("250-SIZE \(s.settings.databytes)") }
        if s.settings.personality != .submission { lines.append("250-ETRN") }
        if s.settings.startTLSAvailable && !s.settings.tlsActive { lines.append("250-STARTTLS") }
        if s.settings.smtputf8 { lines.append("250-SMTPUTF8") }
        lines.append("250 HELP")
        return lines.map { $0 + "\r\n" }.joined()
    }

    @Test("HELO names of random bytes (invalid UTF-8, multi-byte, combining marks) get the former Received filtering")
    func receivedFilter() throws {
        let controls = makeControls()
        var generator = SystemRandomNumberGenerator()
        let pieces: [[UInt8]] = [Array("é".utf8), Array("\u{301}".utf8), Array("👍🏽".utf8), Array("ß".utf8), [0xff], [0xc3], [0x80],
                                 Array("a.b-c_d".utf8), Array("[1.2.3.4]".utf8), [9], [0x7f], Array("%+/=:@".utf8)]
        var mismatches: [String] = []
        for _ in 0..<2000 {
            var name: [UInt8] = []
            for _ in 0..<Int.random(in: 1...8, using: &generator) {
                if Bool.random(using: &generator) { name += pieces.randomElement(using: &generator) ?? [] }
                else { name.append(UInt8.random(in: 33...255, using: &generator)) }
            }
            let settings = SMTPSettings.make(Environment([("TCPREMOTEIP", "192.0.2.9")]), controls: controls, authHostname: nil)
            var s = SMTPSession(settings: settings, controls: controls)
            _ = s.greeting()
            _ = s.command(Array("HELO ".utf8) + name)
            let helo = try #require(s.heloName)
            let header = String(decoding: s.receivedHeader(pid: 7, date: "d\n"), as: UTF8.self)
            if !header.contains(" (HELO " + Self.safeModel(helo) + ") ") { mismatches.append("\(name): \(header)") }
        }
        #expect(mismatches.isEmpty, "\(mismatches.prefix(3))")
    }

    @Test("EHLO replies for every combination of AUTH, AUTH=, SIZE, personality, STARTTLS and SMTPUTF8")
    func ehloReplies() {
        let controls = makeControls()
        var checked = 0
        for auth in [false, true] {
            for oldClient in [false, true] {
                for size in [0, 5000] {
                    // ODMR without AUTH refuses every session: no EHLO reply to compare.
                    for port in ["25", "587", "366"] where port != "366" || auth {
                        for tls in [false, true] {
                            for utf8 in [false, true] {
                                var env = [("TCPREMOTEIP", "192.0.2.9"), ("TCPLOCALPORT", port), ("DATABYTES", String(size))]
                                if oldClient { env.append(("OLD_CLIENT", "")) }
                                if utf8 { env.append(("SMTPUTF8", "")) }
                                var settings = SMTPSettings.make(Environment(env), controls: controls, authHostname: auth ? "mx.test" : nil)
                                settings.startTLSAvailable = tls
                                var s = SMTPSession(settings: settings, controls: controls)
                                _ = s.greeting()
                                let model = Self.ehloModel(s)
                                let reply = String(decoding: s.command(Array("EHLO c.test".utf8)).reply, as: UTF8.self)
                                #expect(reply == model, "\(env) tls=\(tls)")
                                checked += 1
                            }
                        }
                    }
                }
            }
        }
        #expect(checked == 80)
    }

    @Test("the verbs each personality accepts, and those a refused session answers with its refusal")
    func verbs() {
        let all = ["helo", "ehlo", "mail", "rcpt", "data", "rset", "noop", "vrfy", "help", "quit", "auth", "etrn", "atrn",
                   "starttls", "expn", "turn", "bdat", "", "HELO", "helo2"]
        let smtp: Set<String> = ["helo", "ehlo", "mail", "rcpt", "data", "rset", "noop", "vrfy", "help", "quit", "auth", "etrn", "atrn", "starttls"]
        let submission: Set<String> = ["helo", "ehlo", "mail", "rcpt", "data", "rset", "noop", "vrfy", "help", "quit", "auth", "starttls"]
        let odmr: Set<String> = ["helo", "ehlo", "auth", "etrn", "atrn", "help", "quit"]
        let refusable: Set<String> = ["helo", "ehlo", "mail", "rcpt", "data", "auth", "starttls", "vrfy", "etrn", "atrn"]
        for verb in all {
            #expect(SMTPSession.accepts(verb, .smtp) == smtp.contains(verb), "\(verb)")
            #expect(SMTPSession.accepts(verb, .submission) == submission.contains(verb), "\(verb)")
            #expect(SMTPSession.accepts(verb, .odmr) == odmr.contains(verb), "\(verb)")
            #expect(SMTPSession.refusable(verb) == refusable.contains(verb), "\(verb)")
        }
    }
}
