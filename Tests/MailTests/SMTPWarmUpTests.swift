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
