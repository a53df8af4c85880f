// The mail core end to end with the real programs (MailEndToEndSupport.swift): injection by
// qmail-inject and sendmail into three queues, qscheduler running them, qmail-lspawn and
// qmail-local delivering into Maildirs and an mbox read back by Python's mailbox module;
// bounces and double bounces; retries; kill -9 of every stage; bad input along the chain.
import Core
import Glibc
import Testing

@Suite("mail end to end", .serialized)
struct MailEndToEndTests {
    static let soak = getenv("SOAK") != nil

    @Test("many messages via qmail-inject and sendmail into 3 queues under qscheduler: each delivered exactly once")
    func manyMessagesExactlyOnce() throws {
        let count = Self.soak ? 1000 : 200
        let w = MailWorld()
        try #require(w.startScheduler(), "\(w.log)")
        var expected: [String: String] = [:]  // token -> user
        for i in 0..<count {
            let token = "m\(i)x\(UInt32.random(in: 0 ... .max))"
            let user = i % 2 == 0 ? "alice" : "bob"
            expected[token] = user
            // sendmail goes through qmail-multi (which picks the queue and execs qmail-queue);
            // qmail-inject runs qmail-queue, which picks the queue itself.
            let viaSendmail = i % 3 == 0
            let r = w.send(viaSendmail ? .sendmail : .inject, from: "sender@test.local", to: ["\(user)@test.local"],
                           message: e2eMessage(token),
                           environment: viaSendmail ? ["QMAILQUEUE": Path.join(w.sbin, "qmail-multi")] : [:])
            if r.exitCode != 0 { Issue.record("injection \(i): \(String(describing: r.status)) \(r.err)"); return }
        }
        // Every queue got some of them (qmail-send's log lines end with the queue's name).
        let arrivals = w.log.split(separator: "\n").filter { $0.hasPrefix("new msg ") }
        let perQueue = w.queues.map { q in arrivals.filter { $0.hasSuffix(" queue\(q)") }.count }
        #expect(perQueue.allSatisfy { $0 > count / 10 }, "\(perQueue)")
        let allThere = eventually(within: Self.soak ? 300 : 60) {
            w.maildirCount("alice") + w.maildirCount("bob") >= count
        }
        #expect(allThere, "\(w.log.suffix(2000))")
        #expect(eventually(within: 20) { w.leftovers.isEmpty }, "\(w.leftovers.prefix(20))")
        for user in ["alice", "bob"] {
            let messages = w.maildir(user)
            var seen: [String: Int] = [:]
            for m in messages {
                let token = m.id.hasPrefix("<") ? String(m.id.dropFirst().prefix { $0 != "@" }) : m.id
                seen[token, default: 0] += 1
                if m.body != "body of \(token)\nsecond line\n" || m.subject != "message \(token)"
                    || m.returnPath != "<sender@test.local>" || m.deliveredTo != "\(user)@test.local" {
                    Issue.record("\(user): message \(token) differs: \(m.raw.prefix(600))")
                }
            }
            let wanted = Set(expected.filter { $0.value == user }.keys)
            let duplicated = seen.filter { $0.value != 1 }.keys.sorted()
            let missing = wanted.subtracting(seen.keys).sorted()
            let stray = Set(seen.keys).subtracting(wanted).sorted()
            #expect(duplicated.isEmpty, "\(user) duplicated: \(duplicated.prefix(10))")
            #expect(missing.isEmpty, "\(user) missing: \(missing.prefix(10))")
            #expect(stray.isEmpty, "\(user) stray: \(stray.prefix(10))")
        }
        #expect(w.terminate() == .exited(0), "\(w.log.suffix(1000))")
        for q in w.queues {
            let fix = QueueTest.queueFix(["-N", "-s", "3", "-b", "0", w.queue(q)])
            #expect(fix.exitCode == 0 && fix.out.isEmpty, "\(fix.out)")
        }
    }

    @Test("Maildir and mbox deliveries read back by Python's mailbox module equal what was injected; remote via QMAILREMOTE")
    func mailboxesReadBack() throws {
        let w = MailWorld(queues: [1])
        try #require(w.startQueue(1), "\(w.log)")
        let long = String(repeating: "x", count: 3000)
        // The last: 2 MB in lines of 1000 bytes, through every stage including qmail-remote.
        let big = (10000..<12000).map { String($0) + String(repeating: "b", count: 994) }.joined(separator: "\n")
        let bodies = ["plain", "From the start of a line\n>From quoted\n.\n..dots", "no final newline", long, big]
        for (i, b) in bodies.enumerated() {
            let text = "Message-ID: <mb\(i)@e2e.test>\nSubject: mbox \(i)\n\n" + b + (i == 2 ? "" : "\n")
            let via: MailWorld.Injector = i % 2 == 0 ? .inject : .sendmail
            #expect(w.send(via, from: "sender@test.local", to: ["mboxer@test.local", "alice@test.local", "far\(i)@remote.example"],
                           message: Array(text.utf8)).exitCode == 0)
        }
        #expect(eventually(within: 20) { w.leftovers.isEmpty }, "\(w.log)")
        let mbox = w.mbox(Path.join(w.home("mboxer"), "mbox")).sorted { $0.id < $1.id }
        let maildir = w.maildir("alice").sorted { $0.id < $1.id }
        try #require(mbox.count == bodies.count && maildir.count == bodies.count, "\(mbox.count) \(maildir.count) \(w.log)")
        for (i, b) in bodies.enumerated() {
            // mbox: the From_ line carries the envelope sender; qmail-local quotes ">*From " lines
            // with one more ">" (mboxrd), which Python's mbox reader leaves as they are.
            let wanted = b + "\n"
            let quoted = b.split(separator: "\n", omittingEmptySubsequences: false)
                .map { $0.drop { $0 == ">" }.hasPrefix("From ") ? ">" + $0 : String($0) }.joined(separator: "\n") + "\n"
            #expect(mbox[i].id == "<mb\(i)@e2e.test>" && maildir[i].id == "<mb\(i)@e2e.test>")
            #expect(mbox[i].fromLine.hasPrefix("sender@test.local "), "\(mbox[i].fromLine)")
            #expect(mbox[i].subject == "mbox \(i)" && maildir[i].subject == "mbox \(i)")
            #expect(maildir[i].body == wanted, "\(maildir[i].raw)")
            #expect(mbox[i].body == quoted || mbox[i].body == quoted + "\n", "\(mbox[i].raw)")
            #expect(mbox[i].deliveredTo == "mboxer@test.local" && maildir[i].deliveredTo == "alice@test.local")
            #expect(mbox[i].returnPath == "<sender@test.local>")
        }
        // The remote recipients reached the stub qmail-remote, one line each.
        let remote = String(decoding: contents(Path.join(w.out, "remote")) ?? [], as: UTF8.self)
        let lines = remote.split(separator: "\n").map(String.init).sorted()
        #expect(lines == (0..<bodies.count).map { "remote.example sender@test.local far\($0)@remote.example" }, "\(remote)")
        #expect(w.terminate() == .exited(0))
    }

    @Test("unknown user bounces to the sender's Maildir; a bounce that bounces goes to postmaster; deferrals retry on schedule")
    func bouncesAndRetries() throws {
        let w = MailWorld(queues: [1], controls: ["doublebounceto": "postmaster\n"])
        try #require(w.startQueue(1), "\(w.log)")
        #expect(w.send(.inject, from: "sender@test.local", to: ["nosuch@test.local"], message: e2eMessage("b1")).exitCode == 0)
        #expect(eventually(within: 20) { w.maildirCount("sender") == 1 }, "\(w.log)")
        let bounce = try #require(w.maildir("sender").first)
        #expect(bounce.returnPath == "<>")
        #expect(bounce.subject == "failure notice")
        #expect(bounce.body.hasPrefix("Hi. This is the qmail-send program at test.local.\nI'm afraid I wasn't able to deliver your message to the following addresses.\nThis is a permanent error; I've given up. Sorry it didn't work out.\n\n<nosuch@test.local>:\nSorry, no mailbox here by that name. (#5.1.1)\n"), "\(bounce.raw)")
        #expect(bounce.body.contains("--- Below this line is a copy of the message.\n\nReturn-Path: <sender@test.local>\n"))
        #expect(bounce.body.hasSuffix("Message-ID: <b1@e2e.test>\nSubject: message b1\n\nbody of b1\nsecond line\n"), "\(bounce.raw)")
        #expect(bounce.raw.contains("\nX-Bounced-Address: <nosuch@test.local>\n") || !bounce.raw.contains("X-Bounced-Address"))

        // The sender itself is unknown: the bounce bounces and goes to postmaster.
        #expect(w.send(.sendmail, from: "ghost@test.local", to: ["nosuch2@test.local"], message: e2eMessage("b2")).exitCode == 0)
        #expect(eventually(within: 20) { w.maildirCount("postmaster") == 1 }, "\(w.log)")
        let double = try #require(w.maildir("postmaster").first)
        #expect(double.returnPath == "<#@[]>")
        #expect(double.body.contains("I tried to deliver a bounce message to this address, but the bounce bounced!\n\n<ghost@test.local>:\nSorry, no mailbox here by that name. (#5.1.1)\n"), "\(double.raw)")
        #expect(double.body.contains("--- Below this line is the original bounce.\n\nReturn-Path: <>\n"))
        #expect(double.body.contains("<nosuch2@test.local>:\nSorry, no mailbox here by that name."))
        #expect(w.maildirCount("sender") == 1)
        // doublebounceto names another mailbox after a HUP.
        w.sandbox.write("etc/control/doublebounceto", "bob\n")
        w.signal("qmail-send", SIGHUP)
        #expect(eventually { w.log.contains("got HUP") })
        #expect(w.send(.inject, from: "ghost2@test.local", to: ["nosuch3@test.local"], message: e2eMessage("b4")).exitCode == 0)
        #expect(eventually(within: 20) { w.maildirCount("bob") == 1 }, "\(w.log)")
        #expect(w.maildir("bob").first?.body.contains("<ghost2@test.local>:\nSorry, no mailbox here by that name.") == true)
        #expect(w.maildirCount("postmaster") == 1)

        // A deferral: retried at birth + (floor(sqrt(age)) + 10)^2, kept as local/<id>'s mtime.
        #expect(w.send(.inject, from: "sender@test.local", to: ["later@test.local"], message: e2eMessage("b3")).exitCode == 0)
        #expect(eventually(within: 20) { w.log.contains("deferral: busy_right_now/") }, "\(w.log)")
        let q = w.queue(1)
        let info = try #require(QueueTest.messageFiles(q).first { $0.hasPrefix("info/") })
        let id = Path.basename(info)
        let local = Path.join(q, "local/\(Path.dirname(info).split(separator: "/").last ?? "")/\(id)")
        let birth = try #require(Path.status(Path.join(q, info)).map { Int64($0.st_mtim.tv_sec) })
        #expect(eventually { Path.status(local).map { Int64($0.st_mtim.tv_sec) } ?? 0 > birth })
        let due = try #require(Path.status(local).map { Int64($0.st_mtim.tv_sec) })
        let now = Int64(time(nil))
        func retry(_ t: Int64) -> Int64 {
            var root: Int64 = 0
            while (root + 1) * (root + 1) <= t - birth { root += 1 }
            return birth + (root + 10) * (root + 10)
        }
        #expect(Set((birth...now).map(retry)).contains(due), "due \(due) birth \(birth)")
        // Pull the due time back and poke qmail-send: a second attempt, deferred again.
        let attempts = { SendFixture.occurrences(of: "deferral: busy_right_now/", in: w.log) }
        #expect(attempts() == 1)
        var past = [timespec(tv_sec: Int(now - 10), tv_nsec: 0), timespec(tv_sec: Int(now - 10), tv_nsec: 0)]
        #expect(utimensat(AT_FDCWD, local, &past, 0) == 0)
        w.signal("qmail-send", SIGALRM)
        #expect(eventually(within: 20) { attempts() == 2 }, "\(w.log)")
        // Older than queuelifetime: the next attempt is the last; the sender gets the bounce.
        var old = [timespec(tv_sec: Int(now - 604_800 - 100), tv_nsec: 0), timespec(tv_sec: Int(now - 604_800 - 100), tv_nsec: 0)]
        #expect(utimensat(AT_FDCWD, Path.join(q, info), &old, 0) == 0)
        #expect(utimensat(AT_FDCWD, local, &past, 0) == 0)
        w.signal("qmail-send", SIGALRM)
        #expect(eventually(within: 20) { w.maildirCount("sender") == 2 }, "\(w.log)")
        let late = w.maildir("sender").first { $0.body.contains("<later@test.local>") }
        #expect(late?.body.contains("<later@test.local>:\nbusy right now\nI'm not going to try again; this message has been in the queue too long.\n") == true,
                "\(late?.raw ?? "")")
        // A remote recipient refused for good: the remote side's text in the bounce.
        #expect(w.send(.sendmail, from: "sender@test.local", to: ["reject@remote.example"], message: e2eMessage("b5")).exitCode == 0)
        #expect(eventually(within: 20) { w.maildirCount("sender") == 3 }, "\(w.log)")
        let refused = w.maildir("sender").first { $0.body.contains("<reject@remote.example>") }
        #expect(refused?.body.contains("<reject@remote.example>:\n192.0.2.1 does not like recipient.\nRemote host said: 550 5.1.1 no such user\n") == true,
                "\(refused?.raw ?? "")")
        #expect(eventually(within: 20) { w.leftovers.isEmpty }, "\(w.leftovers)")
        #expect(w.terminate() == .exited(0))
    }

    @Test("one message, many recipients (local, unknown, remote, refused): each delivered once, one bounce lists every failure")
    func manyRecipients() throws {
        let w = MailWorld(queues: [1])
        try #require(w.startQueue(1), "\(w.log)")
        let unknown = (0..<40).map { "nobody\($0)@test.local" }
        let remote = (0..<40).map { "far\($0)@remote\($0 % 4).example" }
        let refused = (0..<5).map { "reject\($0)@remote.example" }
        let recipients = ["alice@test.local", "bob@test.local", "mboxer@test.local"] + unknown + remote + refused
        let r = w.send(.inject, from: "sender@test.local", to: recipients.shuffled(), message: e2eMessage("many"))
        #expect(r.exitCode == 0, "\(r.err)")
        #expect(eventually(within: 30) { w.maildirCount("sender") == 1 && w.leftovers.isEmpty }, "\(w.leftovers) \(w.log.suffix(1500))")
        #expect(w.maildirTokens("alice") == ["many"] && w.maildirTokens("bob") == ["many"])
        #expect(w.mbox(Path.join(w.home("mboxer"), "mbox")).map(\.id) == ["<many@e2e.test>"])
        let remoteLines = String(decoding: contents(Path.join(w.out, "remote")) ?? [], as: UTF8.self).split(separator: "\n").map(String.init).sorted()
        let wantedRemote = remote.map { "\($0.split(separator: "@")[1]) sender@test.local \($0)" }.sorted()
        #expect(remoteLines == wantedRemote)
        let bounce = try #require(w.maildir("sender").first)
        // One block per failed recipient, each exactly once, none for the delivered ones.
        let failed = (unknown + refused).filter { SendFixture.occurrences(of: "<\($0)>:\n", in: bounce.body) != 1 }
        #expect(failed.isEmpty, "\(failed) \(bounce.raw.prefix(3000))")
        #expect(!bounce.body.contains("<alice@test.local>:") && !bounce.body.contains("<far0@remote0.example>:"))
        #expect(SendFixture.occurrences(of: "Sorry, no mailbox here by that name. (#5.1.1)\n", in: bounce.body) == unknown.count)
        #expect(w.terminate() == .exited(0))
    }

    @Test("qscheduler restarts a qmail-send killed with -9 and its queue drains; TERM stops every queue")
    func schedulerRestartsKilledSend() throws {
        let w = MailWorld(queues: [1, 2])
        try #require(w.startScheduler(), "\(w.log)")
        var tokens: [String] = []
        func inject(_ n: Int) {
            for i in 0..<n {
                let token = "s\(tokens.count)x\(i)"
                if w.send(.inject, from: "sender@test.local", to: ["alice@test.local"], message: e2eMessage(token)).exitCode == 0 {
                    tokens.append(token)
                }
            }
        }
        inject(20)
        let before = w.members(named: "qmail-send")
        #expect(before.count == 2)
        let victim = try #require(before.first)
        kill(victim, SIGKILL)
        #expect(eventually(within: 20) {
            let now = w.members(named: "qmail-send")
            return now.count == 2 && !now.contains(victim)
        }, "\(w.log.suffix(1000))")
        #expect(w.log.contains("info: qscheduler: pid \(victim), queue "), "\(w.log.suffix(1000))")
        inject(20)
        #expect(tokens.count == 40)
        #expect(eventually(within: 30) { Set(w.maildirTokens("alice")).isSuperset(of: tokens) }, "\(w.log.suffix(1500))")
        #expect(eventually(within: 20) { w.leftovers.isEmpty }, "\(w.leftovers)")
        #expect(w.terminate() == .exited(0), "\(w.log.suffix(800))")
        #expect(w.queues.allSatisfy { !w.sendRunning(w.queue($0)) })
    }

    @Test("recipients from the header (sendmail -t, qmail-inject without arguments), Bcc: dropped; VERP senders reach qmail-local")
    func headerRecipientsAndVerp() throws {
        let w = MailWorld(queues: [1])
        try #require(w.startQueue(1), "\(w.log)")
        let text = "Message-ID: <h1@e2e.test>\nSubject: header rcpts\nTo: alice@test.local\nBcc: bob@test.local\n\nbody\n"
        let t = run([Path.join(w.bin, "sendmail"), "-t", "-f", "sender@test.local"], stdin: Array(text.utf8),
                    environment: w.environment, inheritEnvironment: false)
        #expect(t.exitCode == 0, "\(t.err)")
        let text2 = "Message-ID: <h2@e2e.test>\nSubject: header rcpts 2\nCc: alice@test.local, bob@test.local\n\nbody\n"
        let i = run([Path.join(w.bin, "qmail-inject"), "-fsender@test.local"], stdin: Array(text2.utf8),
                    environment: w.environment, inheritEnvironment: false)
        #expect(i.exitCode == 0, "\(i.err)")
        // VERP: the sender is rewritten per recipient.
        #expect(w.send(.inject, from: "list-@test.local-@[]", to: ["alice@test.local", "bob@test.local"], message: e2eMessage("v1")).exitCode == 0)
        #expect(eventually(within: 20) { w.maildirCount("alice") == 3 && w.maildirCount("bob") == 3 && w.leftovers.isEmpty }, "\(w.log)")
        for user in ["alice", "bob"] {
            let got = w.maildir(user)
            #expect(got.map(\.id).sorted() == ["<h1@e2e.test>", "<h2@e2e.test>", "<v1@e2e.test>"])
            #expect(got.allSatisfy { !$0.raw.contains("\nBcc:") }, "\(got.map(\.raw))")
            let verp = got.first { $0.id == "<v1@e2e.test>" }
            #expect(verp?.returnPath == "<list-\(user)=test.local@test.local>", "\(verp?.raw ?? "")")
        }
        #expect(w.terminate() == .exited(0))
    }

    @Test("a dot-qmail forward passes the message on unchanged (no header rewriting); a forwarding loop bounces")
    func forwarding() throws {
        let w = MailWorld(queues: [1], users: ["alice": nil, "sender": nil, "postmaster": nil,
                                               "fwd": "&alice@test.local\n", "looper": "&looper@test.local\n"])
        try #require(w.startQueue(1), "\(w.log)")
        // Headers qmail-inject would rewrite: a bare To: address, no Date:, no From:.
        let text = "Message-ID: <f1@e2e.test>\nSubject: forward me\nTo: someone\nCc: other\n\nforwarded body\n"
        // Injected by qmail-queue directly, so the message is exactly this text plus Received.
        let r = QueueTest.inject(w.sandbox, binary: Path.join(w.sbin, "qmail-queue"), message: Array(text.utf8),
                                 envelope: Array("Fsender@test.local\0Tfwd@test.local\0\0".utf8), queue: w.queue(1),
                                 environment: ["USE_FSYNC": "0"])
        #expect(r.exitCode == 0)
        #expect(eventually(within: 20) { w.maildirCount("alice") == 1 }, "\(w.log)")
        let got = try #require(w.maildir("alice").first)
        #expect(got.returnPath == "<sender@test.local>", "\(got.raw)")
        #expect(got.raw.contains("\nDelivered-To: fwd@test.local\n"), "\(got.raw)")
        #expect(got.raw.contains("\nX-Forwarded-To: alice@test.local\nX-Forwarded-For: sender@test.local\n"), "\(got.raw)")
        // The original header lines, untouched.
        #expect(got.raw.contains("\nMessage-ID: <f1@e2e.test>\nSubject: forward me\nTo: someone\nCc: other\n"), "\(got.raw)")
        #expect(!got.raw.contains("\nDate: ") && !got.raw.contains("\nFrom: "), "\(got.raw)")
        #expect(got.body == "forwarded body\n")
        // Forwarding to itself: the second pass sees its own Delivered-To line and bounces.
        #expect(w.send(.inject, from: "sender@test.local", to: ["looper@test.local"], message: e2eMessage("f2")).exitCode == 0)
        #expect(eventually(within: 20) { w.maildirCount("sender") == 1 }, "\(w.log)")
        let bounce = w.maildir("sender").first
        #expect(bounce?.body.contains("<looper@test.local>:\nThis message is looping: it already has my Delivered-To line. (#5.4.6)\n") == true,
                "\(bounce?.raw ?? "")")
        #expect(eventually(within: 20) { w.leftovers.isEmpty }, "\(w.leftovers)")
        #expect(w.terminate() == .exited(0))
    }

    @Test("kill -9 of qmail-queue, todo-proc, qmail-send, qmail-lspawn and qmail-local: every accepted message delivered")
    func crashSafety() throws {
        let count = Self.soak ? 1000 : 48  // two rounds of the four victims
        // slowpoke's deliveries take a moment, so that a qmail-local can be caught running.
        let w = MailWorld(queues: [1], users: MailWorld.defaultUsers.merging(["slowpoke": "|sleep 0.2\n./Maildir/\n"]) { $1 })
        // qmail-queue killed at a random point in a quarter of the injections.
        let killer = w.sandbox.write("sbin/qq-killer", e2eQueueKiller, mode: 0o755)
        try #require(w.startQueue(1), "\(w.log)")
        var accepted: [String] = [], refused = 0
        let victims = ["todo-proc", "qmail-send", "qmail-lspawn", "qmail-local"]
        var kills: [String: Int] = [:]
        for i in 0..<count {
            let token = "c\(i)x\(UInt32.random(in: 0 ... .max))"
            let r = w.send(i % 2 == 0 ? .inject : .sendmail, from: "sender@test.local", to: [i % 4 == 3 ? "slowpoke@test.local" : "alice@test.local"],
                           message: e2eMessage(token), environment: ["QMAILQUEUE": killer, "REAL_QQ": Path.join(w.sbin, "qmail-queue")])
            if r.exitCode == 0 { accepted.append(token) } else { refused += 1 }
            // Now and then: kill -9 one of the delivery-side programs.
            if i % 6 == 5 {
                let victim = victims[(i / 6) % victims.count]
                var pids: [pid_t] = []
                eventually(within: victim == "qmail-local" ? 2 : 0.2) {
                    pids = w.members(named: victim)
                    return !pids.isEmpty
                }
                if let pid = pids.randomElement() { kill(pid, SIGKILL); kills[victim, default: 0] += 1 }
                w.restartIfDown()
            }
        }
        #expect(refused > 0 && accepted.count > count / 2, "accepted \(accepted.count) of \(count)")
        #expect(kills.keys.sorted() == victims.sorted(), "\(kills)")
        w.restartIfDown()
        // Deferred by a crash: pull every retry time back and poke qmail-send until all arrived.
        let wanted = Set(accepted)
        let allDelivered = eventually(within: Self.soak ? 300 : 60) {
            if Set(w.maildirTokens("alice") + w.maildirTokens("slowpoke")).isSuperset(of: wanted) { return true }
            w.restartIfDown()
            w.pullRetriesBack(1)
            w.signal("qmail-send", SIGALRM)
            usleep(200_000)
            return false
        }
        let missing = wanted.subtracting(w.maildirTokens("alice") + w.maildirTokens("slowpoke")).sorted()
        #expect(allDelivered && missing.isEmpty, "missing \(missing.prefix(10)) \(w.log.suffix(1500))")
        // Leftovers of the killed qmail-queue runs (mess without todo/info): qmail-send removes
        // them at start once they are old enough.
        #expect(w.terminate() == .exited(0))
        w.ageStrayFiles(1)
        try #require(w.startQueue(1))
        #expect(eventually(within: 20) { w.leftovers.isEmpty }, "\(w.leftovers.prefix(20))")
        #expect(w.terminate() == .exited(0))
        let fix = QueueTest.queueFix(["-N", "-s", "3", "-b", "0", w.queue(1)])
        #expect(fix.exitCode == 0 && fix.out.isEmpty, "\(fix.out)")
        var env = w.environment
        env["QUEUEDIR"] = w.queue(1)
        let qread = run([Path.join(w.bin, "qmail-qread")], environment: env, inheritEnvironment: false)
        #expect(qread.exitCode == 0 && qread.out.isEmpty, "\(qread.out) \(qread.err)")
    }

    @Test("bad input along the chain: envelope errors, huge headers, no headers, bad dot-qmail, unreadable control files")
    func badInput() throws {
        let w = MailWorld(queues: [1], users: ["alice": nil, "sender": nil, "postmaster": nil, "blank": "\n./Maildir/\n", "empty": "&\n"])
        let q = w.queue(1)
        // qmail-queue itself: the envelope decides the exit code; nothing stays in the queue.
        let message = e2eMessage("env")
        let long = String(repeating: "a", count: 1000) + "@test.local"
        let cases: [(String, [UInt8], Int32)] = [
            ("no trailing NUL", Array("Fs@test.local\0Talice@test.local\0".utf8), 54),
            ("no final empty record", Array("Fs@test.local\0Talice@test.local".utf8), 54),
            ("not starting with F", Array("Talice@test.local\0\0".utf8), 79),
            ("recipient not T", Array("Fs@test.local\0Xalice@test.local\0\0".utf8), 79),
            ("1000-byte address", Array("Fs@test.local\0T\(long)\0\0".utf8), 11),
            ("empty envelope", [], 54),
        ]
        for (name, envelope, code) in cases {
            let r = QueueTest.inject(w.sandbox, binary: Path.join(w.sbin, "qmail-queue"), message: message, envelope: envelope,
                                     queue: q, environment: ["USE_FSYNC": "0"])
            #expect(r.exitCode == code, "\(name): \(String(describing: r.status)) \(r.err)")
        }
        #expect(w.leftovers.isEmpty, "\(w.leftovers)")
        // Through the injectors: a 1000-byte recipient is refused with a clear message.
        let tooLong = w.send(.inject, from: "sender@test.local", to: [long], message: message)
        #expect(tooLong.exitCode == 100 && tooLong.err.contains("qmail-inject: fatal: "), "\(tooLong.err)")
        #expect(w.leftovers.isEmpty, "\(w.leftovers)")

        try #require(w.startQueue(1), "\(w.log)")
        // A 200 kB header and a message without any header both arrive intact.
        let huge = "X-Huge: " + String(repeating: "h", count: 200_000) + "\n"
        #expect(w.send(.inject, from: "sender@test.local", to: ["alice@test.local"], message: e2eMessage("huge", extraHeaders: huge)).exitCode == 0)
        #expect(w.send(.sendmail, from: "sender@test.local", to: ["alice@test.local"], message: Array("headerless body\n".utf8)).exitCode == 0)
        // A NUL byte in the body goes through as well.
        #expect(w.send(.inject, from: "sender@test.local", to: ["alice@test.local"], message: Array("Subject: nul\n\na\0b\n".utf8)).exitCode == 0)
        #expect(eventually(within: 20) { w.maildirCount("alice") == 3 }, "\(w.log)")
        #expect(eventually(within: 20) { w.leftovers.isEmpty })
        let got = w.maildir("alice")
        let big = got.first { $0.id == "<huge@e2e.test>" }
        #expect(big?.raw.contains(huge) == true && big?.body == "body of huge\nsecond line\n")
        let bare = got.first { $0.body == "headerless body\n" }
        #expect(bare != nil, "\(got.map(\.raw))")
        #expect(bare.map { !$0.id.isEmpty && $0.returnPath == "<sender@test.local>" } == true, "\(bare?.raw ?? "")")
        let nul = got.first { $0.subject == "nul" }
        #expect(nul?.body == "a\u{0}b\n", "\(nul?.raw ?? "")")

        // Odd but well-formed envelopes straight into qmail-queue: no recipient at all, an empty
        // recipient, one without a domain, garbage after the final NUL. None may upset the
        // delivery side: every daemon stays up and each message is finished.
        let odd: [[UInt8]] = [Array("Fsender@test.local\0\0".utf8), Array("Fsender@test.local\0T\0\0".utf8),
                              Array("Fsender@test.local\0Talice\0\0".utf8), Array("Fsender@test.local\0Talice@test.local\0\0trailing\0junk".utf8),
                              Array("F\0T@test.local\0\0".utf8)]
        for (i, envelope) in odd.enumerated() {
            let r = QueueTest.inject(w.sandbox, binary: Path.join(w.sbin, "qmail-queue"), message: e2eMessage("odd\(i)"),
                                     envelope: envelope, queue: q, environment: ["USE_FSYNC": "0"])
            #expect(r.exitCode == 0, "odd envelope \(i): \(String(describing: r.status)) \(r.err)")
        }
        #expect(eventually(within: 20) { SendFixture.occurrences(of: "end msg ", in: w.log) >= 3 + odd.count }, "\(w.log)")
        #expect(["qmail-send", "todo-proc", "qmail-lspawn", "qmail-rspawn"].allSatisfy { !w.members(named: $0).isEmpty })
        #expect(eventually(within: 20) { w.leftovers.isEmpty }, "\(w.leftovers) \(w.log)")
        // Control characters in addresses: the log keeps one event per line.
        let evil = QueueTest.inject(w.sandbox, binary: Path.join(w.sbin, "qmail-queue"), message: e2eMessage("odd-evil"),
                                    envelope: Array("Fsen\nder@test.local\0Tno\nbody\r@test.local\0Talice@test.local\0\0".utf8),
                                    queue: q, environment: ["USE_FSYNC": "0"])
        #expect(evil.exitCode == 0)
        #expect(eventually(within: 20) { SendFixture.occurrences(of: "end msg ", in: w.log) >= 4 + odd.count }, "\(w.log)")
        let known = ["new msg ", "info msg ", "starting delivery ", "delivery ", "status: ", "end msg ", "bounce msg ",
                     "triple bounce", "double bounce", "alert: ", "warn: ", "info: "]
        let strange = w.log.split(separator: "\n").filter { line in !known.contains { line.hasPrefix($0) } }
        #expect(strange.isEmpty, "\(strange)")
        let oddTokens = w.maildirTokens("alice").filter { $0.hasPrefix("odd") }.sorted()
        #expect(oddTokens == ["odd-evil", "odd2", "odd3"], "\(w.log)")

        // Bad dot-qmail files: temporary failures with the reason, the message kept.
        #expect(w.send(.inject, from: "sender@test.local", to: ["blank@test.local"], message: e2eMessage("dq1")).exitCode == 0)
        #expect(w.send(.inject, from: "sender@test.local", to: ["empty@test.local"], message: e2eMessage("dq2")).exitCode == 0)
        #expect(eventually(within: 20) { w.log.contains("deferral: Uh-oh:_first_line_of_.qmail_file_is_blank._(#4.2.1)/") }, "\(w.log)")
        #expect(eventually(within: 20) { w.log.contains("deferral: Uh-oh:_line_1_of_.qmail_file_forwards_to_an_empty_address") }, "\(w.log)")
        #expect(w.maildirCount("blank") == 0 && w.maildirCount("empty") == 0)
        #expect(w.leftovers.contains { $0.contains("/info/") }, "the deferred messages stay queued")
        // qmail-qread shows both, with their recipients still to do.
        var qenv = w.environment
        qenv["QUEUEDIR"] = q
        let listing = run([Path.join(w.bin, "qmail-qread")], environment: qenv, inheritEnvironment: false)
        #expect(listing.exitCode == 0 && SendFixture.occurrences(of: " <sender@test.local>", in: listing.out) == 2, "\(listing.out) \(listing.err)")
        #expect(listing.out.contains("\tlocal\tblank@test.local\n") && listing.out.contains("\tlocal\tempty@test.local\n"), "\(listing.out)")

        // users/cdb unreadable (a directory in its place): a temporary failure, the message
        // waits; once the file is back, the next attempt delivers it.
        let cdb = w.sandbox.at("etc/users/cdb")
        #expect(rename(cdb, cdb + ".saved") == 0)
        w.sandbox.directory("etc/users/cdb")
        #expect(w.send(.inject, from: "sender@test.local", to: ["alice@test.local"], message: e2eMessage("cdb")).exitCode == 0)
        #expect(eventually(within: 20) { w.log.contains("deferral: Trouble_reading_users/cdb_in_qmail-lspawn./") }, "\(w.log.suffix(800))")
        #expect(!w.maildirTokens("alice").contains("cdb"))
        rmdir(cdb)
        #expect(rename(cdb + ".saved", cdb) == 0)
        w.pullRetriesBack(1)
        w.signal("qmail-send", SIGALRM)
        #expect(eventually(within: 20) { w.maildirTokens("alice").contains("cdb") }, "\(w.log.suffix(800))")

        // An unreadable control file: the injector fails temporarily and queues nothing.
        let before = w.leftovers
        w.sandbox.directory("etc/control/defaulthost")
        let r = w.send(.inject, from: "sender@test.local", to: ["alice@test.local"], message: e2eMessage("ctl"))
        #expect(r.exitCode == 111 && r.err.hasPrefix("qmail-inject: fatal: ") && r.err.contains("defaulthost"), "\(r.err)")
        #expect(w.leftovers == before)
        #expect(w.terminate() == .exited(0))
        // qmail-send does not start on unreadable control files.
        rmdir(w.sandbox.at("etc/control/defaulthost"))
        w.sandbox.directory("etc/control/concurrencylocal")
        var env = w.environment
        env["QUEUEDIR"] = q
        let start = run([Path.join(w.sbin, "qmail-start"), "./Maildir/"], environment: env, inheritEnvironment: false, timeout: 15)
        #expect(start.exitCode == 111, "\(String(describing: start.status))")
        #expect(start.out.contains("alert: qmail-send: queue1: cannot start: unable to read controls: ")
                && start.out.contains("concurrencylocal: Is a directory"), "\(start.out)")
        #expect(!w.sendRunning(q))
    }
}

extension MailWorld {
    /// Files in Maildir/new and Maildir/cur of `user`.
    func maildirCount(_ user: String) -> Int {
        ["new", "cur"].reduce(0) { n, sub in
            if case .success(let names) = Path.entries(Path.join(home(user), "Maildir/" + sub)) { return n + names.count }
            return n
        }
    }
}

extension MailWorld {
    /// Tokens (from Message-ID) of every message in `user`'s Maildir, via Python.
    func maildirTokens(_ user: String) -> [String] {
        maildir(user).map { m in m.id.hasPrefix("<") ? String(m.id.dropFirst().prefix { $0 != "@" }) : m.id }
    }

    /// When the tree's top process (qmail-send) died, kill the rest and start it again.
    func restartIfDown() {
        guard let pid = treePid else { return }
        var raw: Int32 = 0
        let gone = members(named: "qmail-send").isEmpty || waitpid(pid, &raw, WNOHANG) == pid
        let helpersGone = members(named: "todo-proc").isEmpty || members(named: "qmail-lspawn").isEmpty
        guard gone || helpersGone else { return }
        // Give qmail-send a moment to notice a dead helper by itself.
        eventually(within: 0.5) { self.members(named: "qmail-send").isEmpty }
        stop()
        _ = startQueue(queues.first ?? 1)
    }

    /// Sets the retry time (mtime) of every channel file of queue `n` into the past.
    func pullRetriesBack(_ n: Int) {
        let past = Int(time(nil)) - 10
        for file in QueueTest.messageFiles(queue(n)) where file.hasPrefix("local/") || file.hasPrefix("remote/") {
            var times = [timespec(tv_sec: past, tv_nsec: 0), timespec(tv_sec: past, tv_nsec: 0)]
            _ = utimensat(AT_FDCWD, Path.join(queue(n), file), &times, 0)
        }
    }

    /// Ages files of queue `n` that belong to no message (mess without info or todo, intd
    /// without todo, pid): the ossified kind qmail-send removes at start.
    func ageStrayFiles(_ n: Int) {
        let files = QueueTest.messageFiles(queue(n))
        let live = Set(files.filter { $0.hasPrefix("info/") || $0.hasPrefix("todo/") }.map { Path.basename($0) })
        let old = Int(time(nil)) - 200_000
        for file in files where !live.contains(Path.basename(file)) {
            var times = [timespec(tv_sec: old, tv_nsec: 0), timespec(tv_sec: old, tv_nsec: 0)]
            _ = utimensat(AT_FDCWD, Path.join(queue(n), file), &times, 0)
        }
    }
}

/// A QMAILQUEUE that runs the real qmail-queue ($REAL_QQ) and, one time in four, kills it
/// with SIGKILL after a random pause, then dies the same way itself (the injector sees a
/// crashed queue program).
let e2eQueueKiller = """
#!/usr/bin/python3
import os, random, signal, sys, time
pid = os.fork()
if pid == 0:
    os.execv(os.environ["REAL_QQ"], ["qmail-queue"])
if random.random() < 0.25:
    time.sleep(random.random() * 0.01)
    os.kill(pid, signal.SIGKILL)
_, status = os.waitpid(pid, 0)
if os.WIFSIGNALED(status):
    os.kill(os.getpid(), signal.SIGKILL)
sys.exit(os.WEXITSTATUS(status))

"""
