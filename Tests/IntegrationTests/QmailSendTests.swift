// qmail-start + qmail-send + todo-proc + qmail-clean against stand-in spawners: deliveries,
// K/Z/D handling, retry times kept in channel-file mtimes, lifetime expiry, bounces (single,
// double, triple), restart after a crash, orderly TERM, and a queue left consistent.
import Core
import Glibc
import Testing

@Suite("qmail-send", .serialized)
struct QmailSendTests {
    @Test("local and remote deliveries; K marks done, Z retries at the scheduled time, D bounces; lifetime ends it")
    func lifecycle() throws {
        let f = SendFixture(controls: ["virtualdomains": "vd.example:vuser\n"])
        let tree = try #require(f.start())
        let id = try #require(f.inject(from: "a@example.org", to: ["u1@test.local", "r1@remote.example", "fail1@test.local",
                                                                    "defer1@test.local", "failv@vd.example"]))
        #expect(f.waitForLog("delivery ", count: 5 + 5), "\(f.log)")  // 5 starting + 5 reports
        #expect(f.waitForLog("deferral: deferred_by_stand-in./"))
        let split = id % 3
        #expect(f.delivered("u1@test.local")?.hasSuffix("Subject: test\n\nhello\n") == true)
        let lines = f.deliveries.sorted()
        #expect(lines == ["local \(split)/\(id) <a@example.org> u1@test.local",
                          "remote \(split)/\(id) <a@example.org> r1@remote.example"])
        // The log: preprocessing, then each delivery.
        let log = f.log
        #expect(log.contains("new msg \(id) queue\n"))
        #expect(log.contains("info msg \(id): bytes "))
        #expect(log.contains(" from <a@example.org> qp "))
        #expect(log.contains(": msg \(id) to local u1@test.local queue\n"))
        #expect(log.contains(": msg \(id) to remote r1@remote.example queue\n"))
        #expect(log.contains(": msg \(id) to local vuser-failv@vd.example queue\n"))
        #expect(log.contains(": failure: no_mailbox_here_by_that_name./Second_line./ queue\n"))
        #expect(log.contains("status: local "))
        // Channel files: remote finished and gone; local keeps defer1 as T, the others D.
        #expect(eventually { !Path.exists(f.path("remote", id)) })
        let local = String(decoding: contents(f.path("local", id)) ?? [], as: UTF8.self)
        #expect(local == "Du1@test.local\0Dfail1@test.local\0Tdefer1@test.local\0Dvuser-failv@vd.example\0")
        // bounce/<id>: one block per failure, the virtual-domain prefix removed.
        let bounce = String(decoding: contents(f.path("bounce", id)) ?? [], as: UTF8.self)
        #expect(bounce == "<fail1@test.local>:\nno mailbox here by that name.\nSecond line.\n\n"
                + "<failv@vd.example>:\nno mailbox here by that name.\nSecond line.\n\n")
        // Retry due time = birth + (floor(sqrt(age)) + 10)^2, kept as the local file's mtime.
        let birth = try #require(f.mtime(f.path("info", id)))
        let due = try #require(f.mtime(f.path("local", id)))
        let now = Int64(time(nil))
        // Written out here, independently of the implementation's RetrySchedule.
        func retry(_ t: Int64) -> Int64 {
            var root: Int64 = 0
            while (root + 1) * (root + 1) <= t - birth { root += 1 }
            return birth + (root + 10) * (root + 10)
        }
        let possible = Set((birth...now).map(retry))
        #expect(possible.contains(due), "due \(due) birth \(birth)")

        // Age the message to its last attempt: the deferral becomes a failure and the sender
        // gets one bounce with both... three failures.
        f.setMtime(f.path("info", id), now - 604800 - 10)
        f.signal(SIGALRM)
        #expect(f.waitForLog("bounce msg \(id) qp "), "\(f.log)")
        #expect(f.waitForLog("end msg \(id) qmail-send: queue\n"))
        #expect(eventually { f.delivered("a@example.org") != nil })
        let text = try #require(f.delivered("a@example.org"))
        #expect(text.hasPrefix("From <>\nReceived: indimail-mta queue "))
        #expect(text.contains("\nX-Bounced-Address: <fail1@test.local>\nFrom: MAILER-DAEMON@test.local\nTo: a@example.org\nSubject: failure notice\n\nHi. This is the qmail-send program at test.local.\nI'm afraid I wasn't able to deliver your message to the following addresses.\nThis is a permanent error; I've given up. Sorry it didn't work out.\n\n<fail1@test.local>:\n"))
        #expect(text.contains("<defer1@test.local>:\ndeferred by stand-in.\nI'm not going to try again; this message has been in the queue too long.\n\n--- Below this line is a copy of the message.\n\nReturn-Path: <a@example.org>\nReceived: indimail-mta queue "))
        #expect(text.hasSuffix("Subject: test\n\nhello\n"))
        #expect(f.log.contains(": failure: deferred_by_stand-in./I'm_not_going_to_try_again;_this_message_has_been_in_the_queue_too_long./ queue\n"))
        // Everything is cleaned up, the bounce itself included.
        #expect(eventually { f.leftovers.isEmpty }, "\(f.leftovers)")
        let status = f.terminate()
        #expect(status == .exited(0), "\(String(describing: status))\n\(f.log)")
        #expect(f.log.contains("alert: qmail-send: pid \(tree.pid) got TERM: queue\n"))
        let check = QueueTest.queueFix(["-N", "-s", "3", "-b", "0", f.queue])
        #expect(check.exitCode == 0 && check.out.isEmpty, "\(check.out)")
    }

    @Test("double bounce goes to postmaster; doublebounceto '@' discards it; #@[] is a triple bounce")
    func doubleAndTriple() throws {
        let f = SendFixture()
        // QUEUEDIR relative to QMAILHOME, as the reference allows: bounces must still find it.
        f.environment["QUEUEDIR"] = "queue"
        try #require(f.start() != nil)
        let double = try #require(f.inject(from: "", to: ["fail2@test.local"]))
        #expect(eventually { f.delivered("postmaster@test.local") != nil }, "\(f.log)")
        let text = f.delivered("postmaster@test.local") ?? ""
        #expect(text.hasPrefix("From <#@[]>\n"))
        #expect(text.contains("\nTo: postmaster@test.local\n"))
        #expect(text.contains("I tried to deliver a bounce message to this address, but the bounce bounced!\n\n<fail2@test.local>:\n"))
        #expect(text.contains("--- Below this line is the original bounce.\n\nReturn-Path: <>\n"))
        #expect(f.waitForLog("end msg \(double) "))
        let triple = try #require(f.inject(from: "#@[]", to: ["fail3@test.local"]))
        #expect(f.waitForLog("triple bounce: discarding bounce/\(triple) queue\n"), "\(f.log)")
        #expect(f.waitForLog("end msg \(triple) "))
        // doublebounceto starting with @: discarded after a HUP rereads it.
        f.sandbox.write("etc/control/doublebounceto", "@\n")
        f.signal(SIGHUP)
        #expect(f.waitForLog("got HUP"))
        let dropped = try #require(f.inject(from: "", to: ["fail4@test.local"]))
        #expect(f.waitForLog("double bounce: discarding bounce/\(dropped) queue\n"), "\(f.log)")
        #expect(eventually { f.leftovers.isEmpty }, "\(f.leftovers)")
        #expect(f.terminate() == .exited(0))
    }

    @Test("holdlocal keeps local deliveries queued until a HUP releases them; remote goes on; VERP")
    func hold() throws {
        let f = SendFixture(controls: ["holdlocal": "1\n"])
        try #require(f.start() != nil)
        let id = try #require(f.inject(from: "list-@example.org-@[]", to: ["r@remote.example", "held@test.local"]))
        #expect(eventually { f.delivered("r@remote.example") != nil })
        // VERP: the spawner sees the sender rewritten for this recipient.
        #expect(f.deliveries == ["remote \(id % 3)/\(id) <list-r=remote.example@example.org> r@remote.example"])
        #expect(f.waitForLog(" (held) "), "\(f.log)")
        #expect(f.delivered("held@test.local") == nil && Path.exists(f.path("local", id)))
        f.sandbox.write("etc/control/holdlocal", "0\n")
        f.signal(SIGHUP)
        #expect(eventually { f.delivered("held@test.local") != nil }, "\(f.log)")
        #expect(eventually { f.leftovers.isEmpty })
        #expect(f.terminate() == .exited(0))
    }

    @Test("a crash mid-delivery: after restart the message is delivered again (at least once), nothing lost")
    func crashAndRestart() throws {
        let f = SendFixture()
        try #require(f.start() != nil)
        let done = try #require(f.inject(from: "a@example.org", to: ["first@test.local"]))
        #expect(f.waitForLog("end msg \(done) "))
        let id = try #require(f.inject(from: "a@example.org", to: ["ok2@test.local", "slow@test.local"]))
        #expect(eventually { Path.exists(Path.join(f.out, "slow@test.local.started")) }, "\(f.log)")
        f.stopAll()  // kill -9 of the whole tree while slow@ is in flight
        #expect(Path.exists(f.path("info", id)) && Path.exists(f.path("local", id)))
        try #require(f.start() != nil)
        f.signal(SIGALRM)
        #expect(eventually { f.delivered("slow@test.local") != nil }, "\(f.log)")
        #expect(eventually { f.leftovers.isEmpty }, "\(f.leftovers)")
        let lines = f.deliveries
        #expect(lines.filter { $0.hasSuffix(" first@test.local") }.count == 1)
        #expect(lines.filter { $0.hasSuffix(" slow@test.local") }.count == 1)
        #expect((1...2).contains(lines.filter { $0.hasSuffix(" ok2@test.local") }.count))
        #expect(f.terminate() == .exited(0))
        let check = QueueTest.queueFix(["-N", "-s", "3", "-b", "0", f.queue])
        #expect(check.exitCode == 0 && check.out.isEmpty, "\(check.out)")
    }

    @Test("many messages, both channels, parallel out-of-order reports, concurrency capped by the spawner's hello")
    func many() throws {
        let count = getenv("SOAK") != nil ? 1000 : 200
        let f = SendFixture(environment: ["STANDIN_MAX": "3", "STANDIN_FORK": "1"])
        try #require(f.start() != nil)
        for i in 0..<count {
            guard f.submit(from: "s\(i)@example.org", to: ["l\(i)@test.local", "r\(i)@remote.example"]) else {
                Issue.record("injection \(i) failed")
                return
            }
        }
        #expect(f.waitForLog("end msg ", count: count, within: 120), "\(f.log.suffix(2000))")
        #expect(f.deliveries.count == 2 * count)
        #expect(eventually { f.leftovers.isEmpty })
        // The spawner's limit of 3 caps both channels below their control-file defaults.
        #expect(f.log.contains(" local 1/3 ") && !f.log.contains("/10 ") && !f.log.contains("/20 "))
        // Several deliveries at once, never more than the limit.
        #expect(f.log.contains(" local 3/3 ") || f.log.contains(" remote 3/3 "))
        #expect(!f.log.contains(" 4/3 "))
        // Every recipient reported exactly once, whatever the order the reports came in.
        #expect(SendFixture.occurrences(of: ": success: ", in: f.log) == 2 * count)
        #expect(f.terminate() == .exited(0))
    }

    @Test("second qmail-send on the same queue refuses; a spawner without hello stops qmail-start")
    func refusals() throws {
        let f = SendFixture()
        let lock = open(Path.join(f.queue, "lock/sendmutex"), O_RDWR)
        defer { close(lock) }
        #expect(flock(lock, LOCK_EX | LOCK_NB) == 0)
        let second = run(["/bin/sh", "-c", "exec \"$0\" 0>&1", Path.join(f.bin, "qmail-send")], environment: f.environment)
        #expect(second.exitCode == 111)
        #expect(second.out == "alert: qmail-send: queue: cannot start: instance already running\n")
        flock(lock, LOCK_UN)
        var env = f.environment
        env["QMAILLSPAWN"] = "/bin/true"
        let start = run([Path.join(f.bin, "qmail-start"), "./Maildir/"], environment: env, timeout: 15)
        #expect(start.exitCode == 111)
        #expect(start.out.contains("alert: qmail-send: queue: cannot start: hath the daemon spawn no fire?\n"), "\(start.out)")
        // With PREFIX set the programs come from PREFIX/sbin (here: nowhere).
        env = f.environment
        env["PREFIX"] = f.sandbox.at("no-such-prefix")
        let lost = run([Path.join(f.bin, "qmail-start")], environment: env, timeout: 15)
        #expect(lost.exitCode == 111)
        #expect(lost.out.hasPrefix("alert: qmail-start: unable to exec qmail-send: unable to run \(f.sandbox.at("no-such-prefix"))/sbin/qmail-send"),
                "\(lost.out)")
    }

    @Test("split todo (BIGTODO=1), fsync on, QIDENT in delivery numbers, qqeh kept in info and handed to the spawner")
    func bigTodoAndExtras() throws {
        // Also the default sync policy (fsync of every new queue file and its directory).
        let f = SendFixture(controls: ["holdlocal": "1\n"], environment: ["QIDENT": "7", "USE_FSYNC": ""], bigTodo: true)
        try #require(f.start() != nil)
        #expect(f.submit(from: "q@example.org", to: ["x1@test.local"], environment: ["QQEH": "X-QQEH: 1"]))
        #expect(f.waitForLog("info msg "), "\(f.log)")
        let newLine = try #require(f.log.split(separator: "\n").first { $0.hasPrefix("new msg ") })
        let id = try #require(UInt64(newLine.split(separator: " ")[2]))
        // Held: the preprocessed files can be looked at; todo and intd are gone.
        #expect(contents(f.path("info", id)) == Array("Fq@example.org\0eX-QQEH: 1\n\0".utf8))
        #expect(contents(f.path("local", id)) == Array("Tx1@test.local\0".utf8))
        #expect(f.leftovers.filter { $0.hasPrefix("todo/") || $0.hasPrefix("intd/") }.isEmpty, "\(f.leftovers)")
        f.sandbox.write("etc/control/holdlocal", "0\n")
        f.signal(SIGHUP)
        #expect(eventually { f.delivered("x1@test.local") != nil }, "\(f.log)")
        #expect(f.delivered("x1@test.local.fields") == "qqeh=X-QQEH: 1\n\nenvh=\n")
        #expect(f.waitForLog("delivery 1.7: success: "))
        #expect(f.log.contains("starting delivery 1.7: msg \(id) to local x1@test.local queue\n"))
        #expect(eventually { f.leftovers.isEmpty })
        #expect(f.terminate() == .exited(0))
    }

    @Test("TERM lets a running delivery finish, then qmail-send and all its helpers exit")
    func orderlyStop() throws {
        let f = SendFixture()
        let tree = try #require(f.start())
        #expect(f.submit(from: "a@example.org", to: ["nap1@test.local"]))
        #expect(f.waitForLog("starting delivery 1: "), "\(f.log)")
        let group = tree.pid
        #expect(f.terminate() == .exited(0))
        #expect(SendFixture.liveMembers(of: group).isEmpty)
        let log = f.log
        #expect(log.contains("delivery 1: success: delivered_by_stand-in. queue\n"), "\(log)")
        #expect(f.delivered("nap1@test.local") != nil)
        let lines = log.split(separator: "\n")
        let term = try #require(lines.firstIndex { $0.contains("got TERM") })
        let success = try #require(lines.firstIndex { $0.hasPrefix("delivery 1: success") })
        #expect(term < success)
    }

    @Test("ossified message files and envelopes (no info, no todo, old atime) are removed at start; fresh ones stay")
    func ossified() throws {
        let f = SendFixture()
        let old = f.sandbox.write("queue/mess/1/4", "orphan")
        let envelope = f.sandbox.write("queue/intd/7", "u0\0p1\0Fa@b\0")
        let fresh = f.sandbox.write("queue/mess/2/5", "being injected")
        var times = [timespec(tv_sec: Int(time(nil)) - 200_000, tv_nsec: 0), timespec(tv_sec: Int(time(nil)) - 200_000, tv_nsec: 0)]
        #expect(utimensat(AT_FDCWD, old, &times, 0) == 0)
        #expect(utimensat(AT_FDCWD, envelope, &times, 0) == 0)
        try #require(f.start() != nil)
        #expect(eventually { !Path.exists(old) && !Path.exists(envelope) })
        #expect(Path.exists(fresh))
        #expect(f.terminate() == .exited(0))
    }

    @Test("qmail-start: every pipe on the reference's descriptor numbers, accounts per daemon, logger, arguments")
    func startWiring() throws {
        let f = SendFixture()
        let logger = "id -u > \(f.out)/logger.uid; exec cat > \(f.out)/activity"
        let tree = try #require(f.start(["./Maildir/", "/bin/sh", "-c", logger], activityLog: Path.join(f.out, "activity")))
        // Who is who: argv from /proc for every process of the tree.
        var byRole: [String: pid_t] = [:]
        for pid in SendProcessTree.members(tree.pid) {
            let argv = SendProcessTree.commandLine(pid)
            let joined = argv.joined(separator: " ")
            if joined.contains("qmail-lspawn") { byRole["lspawn"] = pid }
            else if joined.contains("qmail-rspawn") { byRole["rspawn"] = pid }
            else if argv.first == "qmail-clean" { byRole["clean-" + (argv.last ?? "")] = pid }
            else if argv.first == "todo-proc" { byRole["todo"] = pid }
            else if argv.first == "qmail-send" { byRole["send"] = pid }
            else if argv.first == "cat" { byRole["logger"] = pid }
        }
        let roles = byRole.keys.sorted()
        #expect(roles == ["clean-qmail-send", "clean-todo-proc", "logger", "lspawn", "rspawn", "send", "todo"], "\(roles)")
        guard roles.count == 7, let send = byRole["send"], let todo = byRole["todo"] else { return }
        #expect(send == tree.pid)
        #expect(SendProcessTree.commandLine(send) == ["qmail-send", f.queue])
        #expect(SendProcessTree.commandLine(todo) == ["todo-proc", f.queue])
        func pipe(_ role: String, _ fd: Int) -> String? { byRole[role].flatMap { SendProcessTree.link("/proc/\($0)/fd/\(fd)") } }
        let pairs: [(Int, String, Int)] = [(0, "logger", 0), (1, "lspawn", 0), (2, "lspawn", 1), (3, "rspawn", 0),
                                           (4, "rspawn", 1), (5, "clean-qmail-send", 0), (6, "clean-qmail-send", 1),
                                           (7, "todo", 0), (8, "todo", 1)]
        for (fd, role, theirs) in pairs {
            let mine = pipe("send", fd)
            #expect(mine?.hasPrefix("pipe:") == true && mine == pipe(role, theirs), "send fd \(fd) vs \(role) fd \(theirs)")
        }
        #expect(pipe("todo", 2)?.hasPrefix("pipe:") == true && pipe("todo", 2) == pipe("clean-todo-proc", 0))
        #expect(pipe("todo", 3)?.hasPrefix("pipe:") == true && pipe("todo", 3) == pipe("clean-todo-proc", 1))
        // Accounts (the test maps every qmail account to nobody); lspawn stays root.
        #expect(SendProcessTree.uid(byRole["lspawn"]) == 0)
        for role in ["rspawn", "clean-qmail-send", "clean-todo-proc", "todo", "send", "logger"] {
            #expect(SendProcessTree.uid(byRole[role]) == QueueTest.nobody, "\(role)")
        }
        #expect(f.delivered("logger.uid") == "\(QueueTest.nobody)\n")
        // qmail-lspawn gets the default delivery; everything runs in QMAILHOME.
        #expect(byRole["lspawn"].map { SendProcessTree.commandLine($0).suffix(2) } == ["./Maildir/", f.queue])
        #expect(byRole["send"].flatMap { SendProcessTree.link("/proc/\($0)/cwd") } == f.queue)
        #expect(byRole["lspawn"].flatMap { SendProcessTree.link("/proc/\($0)/cwd") } == f.sandbox.path)
        #expect(f.terminate() == .exited(0))
        #expect(f.log.isEmpty)
        #expect(f.delivered("activity")?.hasSuffix("status: exiting queue\n") == true)
    }

    @Test("USR1 detaches todo-proc (new mail stays in todo/), USR2 attaches it again")
    func detachAttach() throws {
        let f = SendFixture()
        try #require(f.start() != nil)
        f.signal(SIGUSR1)
        #expect(f.waitForLog("got 'D' command: todo-proc detached: queue\n"), "\(f.log)")
        #expect(f.submit(from: "d@example.org", to: ["det@test.local"]))
        // The detach was logged before the injection: todo-proc does not scan now.
        #expect(f.leftovers.contains { $0.hasPrefix("todo/") }, "\(f.leftovers)")
        f.signal(SIGUSR2)
        #expect(f.waitForLog("got 'A' command: todo-proc attached: queue\n"))
        #expect(eventually { f.delivered("det@test.local") != nil }, "\(f.log)")
        #expect(eventually { f.leftovers.isEmpty })
        #expect(f.terminate() == .exited(0))
    }

    @Test("todo-proc died half-way (info written, todo still there): the message is preprocessed again, not lost")
    func halfPreprocessed() throws {
        let f = SendFixture()
        #expect(f.submit(from: "h@example.org", to: ["half@test.local"]))
        let mess = try #require(f.leftovers.first { $0.hasPrefix("mess/") })
        let id = try #require(UInt64(Path.basename(mess)))
        f.sandbox.write("queue/info/\(id % 3)/\(id)", "Fh@example.org\0")
        try #require(f.start() != nil)
        #expect(eventually { f.delivered("half@test.local") != nil }, "\(f.log)")
        #expect(f.waitForLog("end msg \(id) "))
        #expect(eventually { f.leftovers.isEmpty }, "\(f.leftovers)")
        #expect(SendFixture.occurrences(of: "end msg \(id) ", in: f.log) == 1)
        #expect(f.terminate() == .exited(0))
    }

    @Test("an envelope with an unknown record is left in todo/ with a warning; other mail flows")
    func badEnvelope() throws {
        let f = SendFixture()
        f.sandbox.write("queue/mess/1/4", "Subject: x\n\nbody\n")
        f.sandbox.write("queue/todo/4", "u0\0p1\0Fa@example.org\0Zodd\0Tx@test.local\0")
        try #require(f.start() != nil)
        #expect(f.waitForLog("warn: todo-proc: queue: unknown record type in todo/4\n"), "\(f.log)")
        #expect(f.submit(from: "g@example.org", to: ["good@test.local"]))
        #expect(eventually { f.delivered("good@test.local") != nil }, "\(f.log)")
        #expect(Path.exists(Path.join(f.queue, "todo/4")) && !Path.exists(f.path("info", 4)))
        #expect(f.terminate() == .exited(0))
    }

    @Test("started by an unprivileged user, nobody changes identity and mail still flows; defaultdelivery control file")
    func unprivileged() throws {
        let f = SendFixture(controls: ["defaultdelivery": "./Maildir/\n"])
        let tree = try #require(f.start([], asUser: QueueTest.nobody))
        #expect(f.submit(from: "n@example.org", to: ["np@test.local", "nr@remote.example"]))
        #expect(eventually { f.delivered("np@test.local") != nil && f.delivered("nr@remote.example") != nil }, "\(f.log)")
        let members = SendFixture.liveMembers(of: tree.pid)
        #expect(members.count == 6)
        #expect(members.allSatisfy { SendProcessTree.uid($0) == QueueTest.nobody })
        // No argument: the default delivery came from control/defaultdelivery.
        let lspawn = members.map(SendProcessTree.commandLine).first { $0.joined(separator: " ").contains("qmail-lspawn") }
        #expect(lspawn?.suffix(2) == ["./Maildir/", f.queue])
        #expect(eventually { f.leftovers.isEmpty })
        #expect(f.terminate() == .exited(0))
    }

    @Test("BOUNCEPROCESSOR: exit 1 discards the bounce, exit 0 lets it go; it gets the reference's arguments")
    func bounceProcessor() throws {
        let f = SendFixture()
        let script = f.sandbox.write("bin/bounce-processor",
                                     "#!/bin/sh\nprintf '%s|' \"$@\" >> \"$STANDIN_DIR/bp.args\"\necho >> \"$STANDIN_DIR/bp.args\"\n"
                                     + "case \"$6\" in keep@*) exit 0;; esac\nexit 1\n", mode: 0o755)
        f.environment["BOUNCEPROCESSOR"] = script
        try #require(f.start() != nil)
        let dropped = try #require(f.inject(from: "drop@example.org", to: ["fail5@test.local"]))
        #expect(f.waitForLog("info: qmail-send: delete bounce: discarding bounce/\(dropped) queue\n"), "\(f.log)")
        let kept = try #require(f.inject(from: "keep@example.org", to: ["fail6@test.local"]))
        #expect(eventually { f.delivered("keep@example.org") != nil }, "\(f.log)")
        #expect(f.delivered("drop@example.org") == nil)
        let args = String(decoding: contents(Path.join(f.out, "bp.args")) ?? [], as: UTF8.self)
        #expect(args.hasPrefix("mess/\(dropped % 3)/\(dropped)|bounce/\(dropped)|no mailbox here by that name.\nSecond line.\n\n|<fail5@test.local>||drop@example.org|\n"),
                "\(args)")
        #expect(args.contains("|bounce/\(kept)|"))
        #expect(eventually { f.leftovers.isEmpty })
        #expect(f.terminate() == .exited(0))
    }

    @Test("qmail-clean: foop removes intd+mess, todo removes intd+todo, bad requests get x")
    func clean() throws {
        let sandbox = Sandbox()
        let q = QueueTest.makeQueue(sandbox)
        for path in ["mess/1/100", "intd/100", "todo/200", "intd/200", "mess/2/200"] { sandbox.write("queue/" + path, "x") }
        let r = run([Build.indimail, "qmail-clean"], stdin: Array("foop/100\0todo/200\0todo/7\0junk/1\0x\0foop/abc\0".utf8),
                    environment: ["QUEUEDIR": q, "CONFSPLIT": "3", "BIGTODO": "0"])
        #expect(r.exitCode == 0)
        #expect(r.out == "+++xxx")
        #expect(QueueTest.messageFiles(q).filter { !$0.hasPrefix("lock") } == ["mess/2/200"])
    }
}

/// Looking at a running process tree through /proc.
enum SendProcessTree {
    /// Processes whose process group is `group`.
    static func members(_ group: pid_t) -> [pid_t] {
        guard case .success(let names) = Path.entries("/proc") else { return [] }
        return names.compactMap { name -> pid_t? in
            guard let pid = pid_t(name), let stat = contents("/proc/\(name)/stat"),
                  let close = stat.lastIndex(of: UInt8(ascii: ")")) else { return nil }
            let fields = stat[(close + 2)...].split(separator: 32)
            guard fields.count > 2, pid_t(String(decoding: fields[2], as: UTF8.self)) == group else { return nil }
            return pid
        }
    }

    static func commandLine(_ pid: pid_t) -> [String] {
        (contents("/proc/\(pid)/cmdline") ?? []).split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    }

    static func link(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink(path, &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func uid(_ pid: pid_t?) -> uid_t? {
        guard let pid, let status = contents("/proc/\(pid)/status") else { return nil }
        for line in String(decoding: status, as: UTF8.self).split(separator: "\n") where line.hasPrefix("Uid:") {
            return line.split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst().first.flatMap { uid_t($0) }
        }
        return nil
    }
}
