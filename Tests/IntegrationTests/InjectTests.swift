// qmail-inject and sendmail end to end into a real queue (our qmail-queue), checking the
// envelope and message files byte for byte; qmail-qread on hand-made queues;
// qmail-nullqueue and qmail-showctl.
import Core
import Glibc
import Testing

/// A sandbox with control files and a queue, and the environment the injectors run with.
struct InjectFixture {
    let sandbox = Sandbox()
    let queue: String
    let bin: String

    init(controls: [String: String] = [:]) {
        queue = QueueTest.makeQueue(sandbox)
        bin = sandbox.commandLinks(["qmail-inject", "sendmail", "mailq", "qmail-qread", "qmail-nullqueue", "qmail-showctl"])
        chmod(bin, 0o755)
        _ = sandbox.directory("control")
        _ = sandbox.directory("home")
        var all = ["me": "mx.example.org", "idhost": "ids.example.org", "defaultdomain": "example.org"]
        for (k, v) in controls { all[k] = v }
        for (k, v) in all { _ = sandbox.write("control/" + k, v + "\n") }
    }

    var environment: [String: String] {
        ["SYSCONFDIR": sandbox.path, "CONTROLDIR": "control", "QMAILQUEUE": Build.qmailQueue, "QUEUEDIR": queue,
         "CONFSPLIT": "3", "BIGTODO": "0", "HOME": sandbox.at("home"), "USER": "tester", "PATH": bin + ":/usr/bin:/bin"]
    }

    func run(_ argv: [String], _ input: String, _ extra: [String: String] = [:], remove: [String] = []) -> Outcome {
        run(argv, Array(input.utf8), extra, remove: remove)
    }

    func run(_ argv: [String], _ input: [UInt8], _ extra: [String: String] = [:], remove: [String] = []) -> Outcome {
        var env = environment
        for (k, v) in extra { env[k] = v }
        for k in remove { env[k] = nil }
        let program = Path.join(bin, argv[0])
        return IntegrationTests.run([program] + argv.dropFirst(), stdin: input, environment: env, inheritEnvironment: false)
    }

    /// The queued messages: (todo envelope after the u/p records, message without the
    /// two Received lines qmail-queue adds).
    func queued() -> [(envelope: String, message: [UInt8])] {
        QueueTest.messageFiles(queue).filter { $0.hasPrefix("todo/") }.compactMap { (todo: String) -> (envelope: String, message: [UInt8])? in
            let id = Path.basename(todo)
            guard case .success(let env) = FD.readFile(Path.join(queue, todo)),
                  let messPath = QueueTest.messageFiles(queue).first(where: { $0.hasPrefix("mess/") && Path.basename($0) == id }),
                  case .success(let mess) = FD.readFile(Path.join(queue, messPath)) else { return nil }
            let fields = env.split(separator: 0, omittingEmptySubsequences: false)
            let envelope = String(decoding: Array(fields.dropFirst(2).joined(separator: [0])), as: UTF8.self)
            var newlines = 0
            let body = mess.drop { c in
                if newlines >= 2 { return false }
                if c == 10 { newlines += 1 }
                return true
            }
            return (envelope, Array(body))
        }
    }
}

@Suite("qmail-inject and sendmail into a real queue", .serialized)
struct InjectQueueTests {
    @Test("header recipients, Bcc removed, addresses rewritten; envelope and message byte for byte")
    func headerRecipients() throws {
        let f = InjectFixture()
        let input = "From: Joe <joe@x.y>\nTo: bob, al@z.w\nBcc: hidden\nDate: 1 Jan 2020 00:00:00 -0000\n" +
            "Message-ID: <1@x.y>\nSubject: t\n\nbody\nno newline"
        let r = f.run(["qmail-inject"], input)
        #expect(r.exitCode == 0, "\(r.err)")
        let q = f.queued()
        try #require(q.count == 1)
        // Right-to-left address-list parsing queues a field's addresses last first, as the reference.
        #expect(q[0].envelope == "Ftester@mx.example.org\0Tal@z.w\0Tbob@mx.example.org\0Thidden@mx.example.org\0")
        let expected = "From: Joe <joe@x.y>\nTo: bob@mx.example.org, al@z.w\nDate: 1 Jan 2020 00:00:00 -0000\n" +
            "Message-ID: <1@x.y>\nSubject: t\n\nbody\nno newline\n"
        #expect(String(decoding: q[0].message, as: UTF8.self) == expected)
    }

    @Test("argument recipients: Date, Message-ID, From and the hidden-list Cc are added")
    func addedFields() throws {
        let f = InjectFixture()
        let r = f.run(["qmail-inject", "-f", "bounces", "a@b.c", "d"], "Subject: s\n\nhi\n",
                      ["NAME": "Test User", "QMAILHOST": "users.example.org"])
        #expect(r.exitCode == 0, "\(r.err)")
        let q = f.queued()
        try #require(q.count == 1)
        #expect(q[0].envelope == "Fbounces@mx.example.org\0Ta@b.c\0Td@mx.example.org\0")
        let lines = String(decoding: q[0].message, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        try #require(lines.count == 8)
        let date = lines[0].split(separator: " ")
        #expect(date.count == 6 && date[0] == "Date:" && date[5] == "-0000" && date[4].split(separator: ":").count == 3)
        #expect(lines[1].hasPrefix("Message-ID: <") && lines[1].hasSuffix(".indimail@ids.example.org>"))
        let id = lines[1].dropFirst("Message-ID: <".count).split(separator: ".")
        #expect(id.count >= 3 && id[0].count == 14 && Int(id[1]) != nil)
        #expect(Array(lines[2...]) == ["From: \"Test User\" <tester@users.example.org>", "Cc: recipient list not shown: ;",
                                       "Subject: s", "", "hi", ""])
    }

    @Test("sendmail -t: argument and header recipients, Bcc gone, From from -f, -F name")
    func sendmailT() throws {
        let f = InjectFixture()
        let r = f.run(["sendmail", "-t", "-i", "-F", "Web Site", "-f", "www@site.example", "extra@x.y"],
                      "To: to@x.y\nCc: cc@x.y\nBcc: secret@x.y\nSubject: s\n\nbody\n")
        #expect(r.exitCode == 0, "\(r.err)")
        let q = f.queued()
        try #require(q.count == 1)
        #expect(q[0].envelope == "Fwww@site.example\0Textra@x.y\0Tto@x.y\0Tcc@x.y\0Tsecret@x.y\0")
        let text = String(decoding: q[0].message, as: UTF8.self)
        #expect(!text.contains("secret") && !text.contains("Bcc"))
        #expect(text.contains("\nFrom: \"Web Site\" <www@site.example>\nTo: to@x.y\nCc: cc@x.y\nSubject: s\n\nbody\n"))
    }

    @Test("Python's subprocess runs sendmail as PHP's mail() and cron do")
    func pythonSubprocess() throws {
        let f = InjectFixture()
        let script = f.sandbox.write("send.py", """
            import subprocess, sys
            php = subprocess.run(["sendmail", "-t", "-i"], input=b"To: php@x.y\\nSubject: php\\n\\nfrom php\\n")
            cron = subprocess.run(["sendmail", "-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"],
                                  input=b"Subject: Cron <root@host> job\\n\\noutput\\n")
            sys.exit(php.returncode * 10 + cron.returncode)
            """)
        let r = IntegrationTests.run(["/usr/bin/python3", script], environment: f.environment, inheritEnvironment: false)
        #expect(r.exitCode == 0, "\(r.err)")
        let envelopes = f.queued().map(\.envelope).sorted()
        #expect(envelopes == ["Ftester@mx.example.org\0Tphp@x.y\0", "Ftester@mx.example.org\0Troot@mx.example.org\0"])
        let cron = f.queued().first { $0.envelope.hasSuffix("Troot@mx.example.org\0") }
        #expect(cron.map { String(decoding: $0.message, as: UTF8.self).contains("From: \"CronDaemon\" <tester@mx.example.org>\n") } == true)
    }

    @Test("bad input: NULs pass through, header-only messages, a huge header line")
    func oddButValid() throws {
        let f = InjectFixture()
        let withNUL: [UInt8] = Array("Subject: a\0b\n\nbody\0with nul\n".utf8)
        #expect(f.run(["qmail-inject", "x@y.z"], withNUL).exitCode == 0)
        let huge = "Subject: " + String(repeating: "h", count: 300_000) + "\n"
        #expect(f.run(["qmail-inject", "huge@y.z"], huge + "\nb\n").exitCode == 0)
        #expect(f.run(["qmail-inject", "only@y.z"], "Subject: header only").exitCode == 0)
        let q = f.queued()
        try #require(q.count == 3)
        let nul = q.first { $0.envelope.hasSuffix("Tx@y.z\0") }?.message ?? []
        #expect(nul.count > 2 && Array(nul.suffix(withNUL.count)) == withNUL)
        let big = q.first { $0.envelope.hasSuffix("Thuge@y.z\0") }?.message ?? []
        #expect(big.count > 300_000 && String(decoding: big, as: UTF8.self).hasSuffix(huge + "\nb\n"))
        let only = String(decoding: q.first { $0.envelope.hasSuffix("Tonly@y.z\0") }?.message ?? [], as: UTF8.self)
        #expect(only.hasSuffix("Cc: recipient list not shown: ;\nSubject: header only\n"))
    }

    @Test("refusals: no recipients, unparsable header, too many recipients, databytes, queue failure")
    func refusals() {
        let f = InjectFixture()
        let none = f.run(["qmail-inject"], "Subject: nobody\n\nx\n")
        #expect(none.exitCode == 100 && none.err == "qmail-inject: fatal: no recipients\n")
        let bad = f.run(["qmail-inject"], "To: (unclosed\n\nx\n")
        #expect(bad.exitCode == 100 && bad.err == "qmail-inject: fatal: unable to parse this line:\nTo: (unclosed\n\n")
        let many = f.run(["qmail-inject", "a", "b"], "\n", ["MAXRECIPIENTS": "1"])
        #expect(many.exitCode == 100 && many.err == "qmail-inject: fatal: max number of recipients exceeded\n")
        let big = f.run(["qmail-inject", "a"], "Subject: big\n\n" + String(repeating: "x", count: 200) + "\n", ["DATABYTES": "100"])
        #expect(big.exitCode == 100 && big.err == "qmail-inject: fatal: message size exceeds my databytes limit\n")
        let broken = f.run(["qmail-inject", "a"], "\n", ["QMAILQUEUE": "/bin/false"])
        #expect(broken.exitCode == 111 && broken.err.hasPrefix("qmail-inject: fatal: qq "), "\(broken.err)")
        let usage = f.run(["qmail-inject", "-Z"], "")
        #expect(usage.exitCode == 100)
        #expect(f.queued().isEmpty)
    }

    @Test("-n and QMAILINJECT=n print instead of queueing; .defaultqueue envdirs pick the queue")
    func printingAndDefaultQueue() throws {
        let f = InjectFixture()
        let printed = f.run(["qmail-inject", "-n", "r@x.y"], "Date: d\nMessage-ID: <m>\nFrom: f@x.y\nTo: r@x.y\n\nb\n")
        #expect(printed.exitCode == 0)
        #expect(printed.out == "Return-Path: <tester@mx.example.org>\nDate: d\nMessage-ID: <m>\nFrom: f@x.y\nTo: r@x.y\n\nb\n")
        let flagged = f.run(["qmail-inject", "r@x.y"], "From: f@x.y\n\nb\n", ["QMAILINJECT": "n"])
        #expect(flagged.exitCode == 0 && flagged.out.hasPrefix("Return-Path: <tester@mx.example.org>\nDate: "))
        #expect(f.queued().isEmpty)

        // HOME/.defaultqueue chooses the queue, and its settings reach the rewriting.
        _ = f.sandbox.directory("home/.defaultqueue")
        _ = f.sandbox.write("home/.defaultqueue/QUEUEDIR", f.queue + "\n")
        _ = f.sandbox.write("home/.defaultqueue/QMAILDEFAULTHOST", "from-home.example\n")
        let viaHome = f.run(["qmail-inject", "h"], "\n", remove: ["QUEUEDIR"])
        #expect(viaHome.exitCode == 0, "\(viaHome.err)")
        #expect(f.queued().map(\.envelope) == ["Ftester@from-home.example\0Th@from-home.example\0"])
        // SKIP_LOCAL_ENVIRONMENT skips it; control/defaultqueue then applies.
        _ = f.sandbox.directory("control/defaultqueue")
        _ = f.sandbox.write("control/defaultqueue/QUEUEDIR", f.queue + "\n")
        let viaControl = f.run(["qmail-inject", "c"], "\n", ["SKIP_LOCAL_ENVIRONMENT": ""], remove: ["QUEUEDIR"])
        #expect(viaControl.exitCode == 0, "\(viaControl.err)")
        #expect(f.queued().map(\.envelope).contains("Ftester@mx.example.org\0Tc@mx.example.org\0"))
    }

    @Test("sendmail -bs speaks SMTP through qmail-smtpd (in-process) as a local, relaying client")
    func sendmailSMTP() {
        let f = InjectFixture()
        let dialogue = "HELO client\r\nMAIL FROM:<tester@mx.example.org>\r\nRCPT TO:<far@elsewhere.example>\r\n"
            + "DATA\r\nSubject: bs\r\n\r\nover -bs\r\n.\r\nQUIT\r\n"
        // No resolver in the sandbox: the sender-domain DNS check is switched off.
        let r = f.run(["sendmail", "-bs"], dialogue, ["NODNSCHECK": "1"])
        #expect(r.exitCode == 0, "\(r.err)")
        let codes = r.out.split(whereSeparator: \.isNewline).map { $0.prefix(3) }
        #expect(codes.first == "220" && codes.contains("354") && codes.last == "221", "\(r.out)")
        // RELAYCLIENT is set for the local sender, so a remote recipient is accepted.
        let queued = f.queued()
        #expect(queued.map(\.envelope) == ["Ftester@mx.example.org\0Tfar@elsewhere.example\0"])
        let text = String(decoding: queued.first?.message ?? [], as: UTF8.self)
        #expect(text.contains("sendmail-bs") && text.hasSuffix("Subject: bs\n\nover -bs\n"), "\(text)")
        let aliases = f.run(["sendmail", "-bi"], "")
        #expect(aliases.exitCode == 100 && aliases.err == "sendmail: fatal: please use fastforward/newaliases instead\n")
        let usage = f.run(["sendmail", "-Q"], "")
        #expect(usage.exitCode == 100 && usage.err.hasPrefix("sendmail: usage: "))
    }

    @Test("from.envrules and domainqueue change qmail-queue's environment")
    func envRules() {
        let f = InjectFixture()
        let other = QueueTest.queueFix(["-s", "3", "-b", "0", f.sandbox.at("slowq")])
        #expect(other.exitCode == 0)
        _ = f.sandbox.write("control/domainqueue", "slow.example:QUEUEDIR=\(f.sandbox.at("slowq"))\n")
        #expect(f.run(["qmail-inject", "a@slow.example"], "\n").exitCode == 0)
        #expect(f.run(["qmail-inject", "a@fast.example"], "\n").exitCode == 0)
        #expect(QueueTest.messageFiles(f.sandbox.at("slowq")).filter { $0.hasPrefix("todo/") }.count == 1)
        #expect(f.queued().map(\.envelope) == ["Ftester@mx.example.org\0Ta@fast.example\0"])
        _ = f.sandbox.write("control/from.envrules", "*@mx.example.org:QMAILQUEUE=\(Path.join(f.bin, "qmail-nullqueue"))\n")
        #expect(f.run(["qmail-inject", "b@fast.example"], "\n").exitCode == 0)
        #expect(f.queued().count == 1)
        #expect(f.run(["qmail-inject", "-f", "other@x.y", "b@fast.example"], "\n").exitCode == 0)
        #expect(f.queued().count == 2)
    }

    @Test("random input never crashes qmail-inject: it prints or refuses")
    func randomInput() {
        let f = InjectFixture()
        var rng = SystemRandomNumberGenerator()
        let alphabet = Array("To: Cc: From: Bcc: Resent-To: Return-Path: a@b.c,<>()[]\"\\ \t\n\n:;.@+".utf8) + [0, 13, 200]
        var outcomes: [Int32: Int] = [:]
        for _ in 0..<40 {
            let input = (0..<Int.random(in: 0...600, using: &rng)).map { _ in alphabet.randomElement(using: &rng) ?? 10 }
            let r = f.run(["qmail-inject", "-n", "-H", "x@y.z"], input)
            outcomes[r.exitCode ?? -1, default: 0] += 1
            if r.exitCode != 0 && r.exitCode != 100 { Issue.record("exit \(String(describing: r.exitCode)) for \(input): \(r.err)") }
        }
        #expect(outcomes[0, default: 0] > 0)
    }

    @Test("QUEUE_BASE collection: sendmail lands in one queueN, qmail-qread -t finds it")
    func queueCollection() {
        let f = InjectFixture()
        let base = f.sandbox.directory("collection")
        for n in 1...2 { _ = QueueTest.queueFix(["-s", "3", "-b", "0", Path.join(base, "queue\(n)")]) }
        let settings = ["QUEUE_BASE": base, "QUEUE_START": "1", "QUEUE_COUNT": "2"]
        for i in 0..<4 {
            let r = f.run(["sendmail", "r\(i)@x.y"], "Subject: \(i)\n\nb\n", settings, remove: ["QUEUEDIR"])
            #expect(r.exitCode == 0, "\(r.err)")
        }
        let todo = (1...2).map { QueueTest.messageFiles(Path.join(base, "queue\($0)")).filter { $0.hasPrefix("todo/") }.count }
        #expect(todo.reduce(0, +) == 4)
        let listing = f.run(["qmail-qread", "-t", "-c"], "", settings, remove: ["QUEUEDIR"])
        #expect(listing.out.hasSuffix("Total Messages in todo   queue: 4\n"), "\(listing.out)")
        #expect(listing.out.split(separator: "\n").filter { $0.hasPrefix("\ttodo\t") }.count == 4)
    }

    @Test("qmail-nullqueue reads message and envelope and keeps nothing; as QMAILQUEUE too")
    func nullqueue() {
        let f = InjectFixture()
        let direct = QueueTest.inject(f.sandbox, binary: Path.join(f.bin, "qmail-nullqueue"),
                                      message: Array("Subject: x\n\nx\n".utf8), envelope: Array("Fa@b\0Tc@d\0\0".utf8), queue: f.queue)
        #expect(direct.exitCode == 0)
        let viaInject = f.run(["qmail-inject", "a@b.c"], "\n", ["QMAILQUEUE": Path.join(f.bin, "qmail-nullqueue")])
        #expect(viaInject.exitCode == 0, "\(viaInject.err)")
        #expect(QueueTest.messageFiles(f.queue).isEmpty)
    }
}

@Suite("qmail-qread and qmail-showctl", .serialized)
struct QreadShowctlTests {
    /// Message 7 (split 1 of 3) preprocessed, partly delivered and bouncing.
    static func preprocessed(_ queue: String, id: UInt64 = 7, sender: String = "joe@x.y", time: time_t = 1_577_836_800) {
        let split = id % 3
        func put(_ rel: String, _ bytes: String) {
            _ = FD.writeAll(Glibc.open(Path.join(queue, rel), O_WRONLY | O_CREAT | O_TRUNC, 0o644), Array(bytes.utf8))
        }
        put("mess/\(split)/\(id)", "0123456789")
        put("info/\(split)/\(id)", "F\(sender)\0")
        put("local/\(split)/\(id)", "Tu1@local\0Du2@local\0")
        put("remote/\(split)/\(id)", "Tr@remote.org\0")
        put("bounce/\(id)", "")
        var times = [timeval(tv_sec: time, tv_usec: 0), timeval(tv_sec: time, tv_usec: 0)]
        _ = utimes(Path.join(queue, "info/\(split)/\(id)"), &times)
    }

    @Test("listing of a partly delivered, bouncing message, with counts and todo")
    func listing() throws {
        let f = InjectFixture()
        Self.preprocessed(f.queue)
        let plain = f.run(["qmail-qread"], "")
        #expect(plain.exitCode == 0)
        #expect(plain.out == "1 Jan 2020 00:00:00 GMT  1/#7  10  <joe@x.y>  bouncing\n\tlocal\tu1@local\n  done\tlocal\tu2@local\n\tremote\tr@remote.org\n")
        let remoteOnly = f.run(["qmail-qread", "-r"], "")
        #expect(remoteOnly.out == "1 Jan 2020 00:00:00 GMT  1/#7  10  <joe@x.y>  bouncing\n\tremote\tr@remote.org\n")
        // A fresh injection sits in todo/.
        #expect(f.run(["qmail-inject", "t@x.y"], "Subject: s\n\nb\n").exitCode == 0)
        let counts = f.run(["qmail-qread", "-c", "-s", "-a"], "")
        #expect(counts.out == "Total Messages in local  queue: 2\nTotal Messages in remote queue: 1\nTotal Messages in bounce queue: 1\nTotal Messages in todo   queue: 1\n")
        let todo = f.run(["qmail-qread", "-t"], "")
        let lines = todo.out.split(separator: "\n")
        try #require(lines.count == 2)
        #expect(lines[0].contains(" GMT  ") && lines[0].hasSuffix("  <tester@mx.example.org> "))
        #expect(lines[1] == "\ttodo\tt@x.y")
        // sendmail -bp and mailq are qmail-qread.
        #expect(f.run(["sendmail", "-bp"], "").out == plain.out)
        #expect(f.run(["mailq"], "").out == plain.out)
        #expect(f.run(["qmail-qread", "-x"], "").exitCode == 1)
    }

    @Test("a queue collection: each queueN under QUEUE_BASE, then totals")
    func collection() {
        let f = InjectFixture()
        let base = f.sandbox.directory("qbase")
        for n in 1...2 {
            _ = QueueTest.queueFix(["-s", "3", "-b", "0", Path.join(base, "queue\(n)")])
        }
        Self.preprocessed(Path.join(base, "queue2"), id: 4, sender: "bad\u{1}sender")
        let r = f.run(["qmail-qread", "-c"], "", ["QUEUE_BASE": base, "QUEUE_COUNT": "5"], remove: ["QUEUEDIR"])
        #expect(r.exitCode == 0, "\(r.err)")
        #expect(r.out == """
            processing queue \(base)/queue1
            Messages in local  queue: 0
            Messages in remote queue: 0
            Messages in bounce queue: 0

            processing queue \(base)/queue2
            1 Jan 2020 00:00:00 GMT  1/#4  10  <bad_sender>  bouncing
            \tlocal\tu1@local
              done\tlocal\tu2@local
            \tremote\tr@remote.org
            Messages in local  queue: 2
            Messages in remote queue: 1
            Messages in bounce queue: 1

            Total Messages in local  queue: 2
            Total Messages in remote queue: 1
            Total Messages in bounce queue: 1

            """)
    }

    @Test("qmail-showctl explains control files, defaults and unknown files")
    func showctl() {
        let f = InjectFixture(controls: ["locals": "a.example\nb.example", "concurrencyremote": "40", "mystery": "x"])
        let r = f.run(["qmail-showctl", "-c", "-C", "-e"], "")
        #expect(r.exitCode == 0, "\(r.err)")
        #expect(r.out.contains("me                    : My name is mx.example.org\n\n"))
        #expect(r.out.contains("locals                : Messages for a.example are delivered locally.\n                        Messages for b.example are delivered locally.\n\n"))
        #expect(r.out.contains("defaulthost           : Default host name is mx.example.org (Default) \n\n"))
        #expect(r.out.contains("defaultdomain         : Default domain name is example.org\n\n"))
        #expect(r.out.contains("concurrencyremote     : Global Remote concurrency is 40\n\n"))
        #expect(r.out.contains("concurrencylocal      : Global Local  concurrency is 10 (Default)\n\n"))
        #expect(r.out.contains("smtproutes            : No artificial SMTP routes. (Default)\n\n"))
        #expect(r.out.contains("morercpthosts         : No rcpthosts; morercpthosts is irrelevant. (Default)\n\nmorercpthosts.cdb     : (Default.) No effect\n\nlocals  "))
        #expect(r.err.contains("mystery: I have no idea what this file does\n") && !r.err.contains("locals:"))
        // Only HOME, the locations and the envdirs count: CONFSPLIT comes from defaultqueue.
        _ = f.sandbox.directory("control/defaultqueue")
        _ = f.sandbox.write("control/defaultqueue/CONFSPLIT", "7\n")
        _ = f.sandbox.write("control/defaultqueue/QUEUE_BASE", f.sandbox.at("qb") + "\n")
        _ = f.sandbox.directory("qb/queue1")
        let internals = f.run(["qmail-showctl"], "", ["CONFSPLIT": "3"])
        #expect(internals.out.contains("control            dir: \(f.sandbox.path)/control\n"))
        #expect(internals.out.contains("subdirectory split      : 7\n"))
        #expect(internals.out.contains("queue                   : \(f.sandbox.at("qb"))/queue1\n"))
        let env = f.run(["qmail-showctl", "-E"], "")
        #expect(env.out.contains("\nCONFSPLIT=7\n") && !env.out.contains("USER=") && !env.out.contains("QUEUEDIR="))
    }
}
