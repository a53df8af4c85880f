// qmail-send's pure parts: the retry schedule, VERP, the spawner and todo-proc records,
// channel/info files, address classification, bounce text, log lines, qmail-clean requests.
import Core
import Glibc
import Mail
import Testing

private func b(_ s: String) -> [UInt8] { Array(s.utf8) }

@Suite("qmail-send formats")
struct SendFormatsTests {
    @Test("retry: birth + (floor(sqrt(age)) + chanskip)^2; attempts near chanskip^2 * k^2")
    func retry() {
        #expect(RetrySchedule.next(birth: 1000, now: 1000, skip: 10) == 1100)
        #expect(RetrySchedule.next(birth: 1000, now: 1099, skip: 10) == 1000 + 19 * 19)
        #expect(RetrySchedule.next(birth: 1000, now: 1100, skip: 10) == 1000 + 20 * 20)
        #expect(RetrySchedule.next(birth: 0, now: 400, skip: 20) == 40 * 40)
        #expect(RetrySchedule.next(birth: 0, now: 1600, skip: 20) == 60 * 60)
        // a clock behind the birth counts as age 0; huge ages do not overflow
        #expect(RetrySchedule.next(birth: 5000, now: 10, skip: 20) == 5400)
        #expect(RetrySchedule.next(birth: Int64.max - 5, now: Int64.max, skip: 20) == Int64.max)
        for n: Int64 in [0, 1, 3, 4, 15, 16, 17, 99, 100, 1 << 40, (1 << 40) + 1, Int64.max] {
            let r = RetrySchedule.integerSquareRoot(n)
            #expect(r * r <= n && (r + 1).multipliedReportingOverflow(by: r + 1).partialValue > n
                    || (r + 1).multipliedReportingOverflow(by: r + 1).overflow)
        }
    }

    @Test("VERP: prefix@host-@[] to box@rhost becomes prefix + box=rhost@host")
    func verp() {
        #expect(VERP.expand(sender: b("list-@example.org-@[]"), recipient: b("joe@b.example")) == b("list-joe=b.example@example.org"))
        #expect(VERP.expand(sender: b("a@b"), recipient: b("c@d")) == b("a@b"))
        #expect(VERP.expand(sender: b("-@[]"), recipient: b("c@d")) == b("-@[]"))
        #expect(VERP.expand(sender: b("x@h-@[]"), recipient: b("nohost")) == b("xnohost@h"))
        #expect(VERP.plain(b("list-@example.org-@[]")) == b("list-@example.org"))
    }

    @Test("spawner command bytes and report splitting")
    func spawner() {
        let cmd = SpawnCommand(slot: 258, messagePath: b("7/1234"), sender: b("a@b"), qqeh: [], envelopeHeaders: b("X: 1\n"),
                               recipient: b("c@d"))
        #expect(cmd.bytes == [2, 1] + b("7/1234\0a@b\0\0X: 1\n\0c@d\0"))
        var reader = SpawnReportReader()
        let first = reader.feed([1, 0] + b("Kok") + [0, 3])
        #expect(first == [SpawnReport(slot: 1, status: UInt8(ascii: "K"), text: b("ok"))])
        let second = reader.feed([1] + b("Zlater\n") + [0])
        #expect(second == [SpawnReport(slot: 259, status: UInt8(ascii: "Z"), text: b("later\n"))])
        var long = SpawnReportReader()
        let huge = long.feed([0, 0] + b("D") + [UInt8](repeating: 65, count: 20000) + [0])
        #expect(huge.count == 1 && huge.first?.text.count == SpawnReportReader.maximum - 3)
        var dying = SpawnReport(slot: 0, status: UInt8(ascii: "Z"), text: b("try later\n"))
        dying.giveUp()
        #expect(dying.status == UInt8(ascii: "D"))
        #expect(dying.text == b("try later\nI'm not going to try again; this message has been in the queue too long.\n"))
    }

    @Test("todo-proc records both ways")
    func todoRecords() {
        #expect(TodoRecord.done(id: 42, local: true, remote: true).bytes == b("DB42\0"))
        #expect(TodoRecord.done(id: 7, local: false, remote: false).bytes == b("DX7\0"))
        #expect(TodoRecord.parse(b("DL656826")) == .done(id: 656826, local: true, remote: false))
        #expect(TodoRecord.parse(b("DR1")) == .done(id: 1, local: false, remote: true))
        #expect(TodoRecord.parse(b("Lnew msg 1 queue\n")) == .log(b("new msg 1 queue\n")))
        #expect(TodoRecord.parse(b("X")) == .exit)
        #expect(TodoRecord.parse(b("DQ1")) == .malformed(b("DQ1")))
        #expect(TodoRecord.parse(b("DL99999999999999999999")) == .malformed(b("DL99999999999999999999")))
        #expect(TodoRecord.parse([]) == .malformed([]))
        var reader = NulRecordReader()
        #expect(reader.feed(b("DL1\0Lab")) == [b("DL1")])
        #expect(reader.feed(b("c\0")) == [b("Labc")])
    }

    @Test("channel and info files")
    func files() {
        let file = ChannelFile.parse(b("Ta@b\0Dc@d\0Xjunk\0Te@f\0Tunterminated"))
        #expect(file.entries.map(\.address) == [b("a@b"), b("c@d"), b("e@f")])
        #expect(file.entries.map(\.done) == [false, true, false])
        #expect(file.entries.map(\.offset) == [0, 5, 16])
        let info = InfoFile.parse(b("Fs@x\0eX-Q: 1\n\0hSubject: y\n\0zignored\0"))
        #expect(info == InfoFile(sender: b("s@x"), qqeh: b("X-Q: 1\n"), envelopeHeaders: b("Subject: y\n")))
        #expect(InfoFile.parse(b("F\0"))?.sender == [])
        #expect(InfoFile.parse(b("eonly\0")) == nil)
    }

    @Test("address rewriting: envnoathost, percenthack, locals, virtualdomains order")
    func rewriting() {
        let r = AddressRewriter(locals: ["Here.Example"], percentHack: ["relay.example"],
                                virtualDomains: ["vd.example:vuser", "joe@special.example:joe", ".sub.example:wild",
                                                 "remote.example:", "special.example:other"],
                                envNoAtHost: "here.example")
        #expect(r.rewrite(b("alice")) == (.local, b("alice@here.example")))
        #expect(r.rewrite(b("bob@HERE.example")) == (.local, b("bob@HERE.example")))
        #expect(r.rewrite(b("u%far.example@relay.example")) == (.remote, b("u@far.example")))
        #expect(r.rewrite(b("u%here.example@relay.example")) == (.local, b("u@here.example")))
        #expect(r.rewrite(b("u%x@other.example")) == (.remote, b("u%x@other.example")))
        #expect(r.rewrite(b("x@vd.example")) == (.local, b("vuser-x@vd.example")))
        #expect(r.rewrite(b("joe@special.example")) == (.local, b("joe-joe@special.example")))
        #expect(r.rewrite(b("ann@special.example")) == (.local, b("other-ann@special.example")))
        #expect(r.rewrite(b("y@a.sub.example")) == (.local, b("wild-y@a.sub.example")))
        #expect(r.rewrite(b("y@remote.example")) == (.remote, b("y@remote.example")))
        #expect(r.rewrite(b("z@elsewhere.example")) == (.remote, b("z@elsewhere.example")))
        #expect(r.stripVirtualPrepend(b("vuser-x@vd.example")) == b("x@vd.example"))
        #expect(r.stripVirtualPrepend(b("other-x@vd.example")) == b("other-x@vd.example"))
        let catchAll = AddressRewriter(locals: [], percentHack: [], virtualDomains: [":all"], envNoAtHost: "h")
        #expect(catchAll.rewrite(b("q@anything")) == (.local, b("all-q@anything")))
    }

    @Test("bounce blocks: no blank line inside, NL in the address becomes _")
    func bounceBlocks() {
        #expect(BounceText.block(recipient: b("a@b"), report: b("Sorry.")) == b("<a@b>:\nSorry.\n\n"))
        #expect(BounceText.block(recipient: b("a\n@b"), report: b("one\n\ntwo\n")) == b("<a_@b>:\none\n/two\n\n"))
        #expect(BounceText.block(recipient: b("a@b"), report: []) == b("<a@b>:\n\n"))
        #expect(BounceText.firstRecipient(b("<x@y>:\nno\n\n<z@w>:\n")) == b("x@y"))
    }

    @Test("bounce plan: single, double to postmaster, discarded double and triple")
    func bouncePlan() {
        var s = BounceSettings(me: "me.example")
        #expect(BouncePlan.plan(originalSender: b("a@b"), settings: s) == .send(sender: [], recipient: b("a@b"), double: false))
        #expect(BouncePlan.plan(originalSender: b("l-@h-@[]"), settings: s) == .send(sender: [], recipient: b("l-@h"), double: false))
        #expect(BouncePlan.plan(originalSender: [], settings: s)
                == .send(sender: b("#@[]"), recipient: b("postmaster@me.example"), double: true))
        #expect(BouncePlan.plan(originalSender: b("#@[]"), settings: s) == .discardTriple)
        s.doubleBounceTo = "@"
        #expect(BouncePlan.plan(originalSender: [], settings: s) == .discardDouble)
        s.doubleBounceTo = ""
        #expect(BouncePlan.plan(originalSender: [], settings: s) == .discardDouble)
    }

    @Test("bounce message head: QSBMF wording")
    func bounceHead() {
        let s = BounceSettings(me: "me.example")
        let head = BouncePlan.head(settings: s, date: "1 Jan 2026 00:00:00 +0000\n", originalSender: b("a@b"),
                                   bounceRecipient: b("a@b"), double: false, report: b("<x@y>:\nNo.\n\n"))
        let expected = """
        Date: 1 Jan 2026 00:00:00 +0000
        X-Bounced-Address: <x@y>
        From: MAILER-DAEMON@me.example
        To: a@b
        Subject: failure notice

        Hi. This is the qmail-send program at me.example.
        I'm afraid I wasn't able to deliver your message to the following addresses.
        This is a permanent error; I've given up. Sorry it didn't work out.

        <x@y>:
        No.

        --- Below this line is a copy of the message.

        Return-Path: <a@b>

        """
        #expect(String(decoding: head, as: UTF8.self) == expected)
        let double = String(decoding: BouncePlan.head(settings: s, date: "d\n", originalSender: [],
                                                      bounceRecipient: b("postmaster@me.example"), double: true,
                                                      report: b("<a@b>:\nNo.\n\n")), as: UTF8.self)
        #expect(double.contains("\nI tried to deliver a bounce message to this address, but the bounce bounced!\n\n<a@b>:"))
        #expect(double.hasSuffix("--- Below this line is the original bounce.\n\nReturn-Path: <>\n"))
        var custom = s
        custom.message = b("Custom intro.")
        let c = String(decoding: BouncePlan.head(settings: custom, date: "d\n", originalSender: b("a@b"), bounceRecipient: b("a@b"),
                                                 double: false, report: []), as: UTF8.self)
        #expect(c.contains("\n\nCustom intro.\n--- Below") && !c.contains("Hi. This is"))
    }

    @Test("activity log lines as qmailanalog reads them")
    func logLines() {
        let log = ActivityLog(queueName: "queue1", qident: nil)
        #expect(log.starting(delivery: 3, id: 99, channel: .remote, recipient: b("a b@c")) == "starting delivery 3: msg 99 to remote a_b@c queue1\n")
        #expect(log.report(delivery: 3, status: UInt8(ascii: "K"), text: b("did 1+0+0\nok")) == "delivery 3: success: did_1+0+0/ok queue1\n")
        #expect(log.report(delivery: 4, status: UInt8(ascii: "D"), text: b("100%")) == "delivery 4: failure: 100_ queue1\n")
        #expect(log.report(delivery: 5, status: UInt8(ascii: "?"), text: []) == "delivery 5: report mangled, will defer: queue1\n")
        #expect(log.status(used: [1, 0], limits: [10, 20], held: [false, true], exiting: false) == "status: local 1/10 remote 0/20 (held) queue1\n")
        #expect(log.info(id: 5, bytes: 120, sender: b("s@x"), qp: 77, uid: 0) == "info msg 5: bytes 120 from <s@x> qp 77 uid 0 queue1\n")
        #expect(log.newMessage(5) == "new msg 5 queue1\n")
        #expect(log.endMessage(5, program: "qmail-send") == "end msg 5 qmail-send: queue1\n")
        #expect(log.bounce(5, qp: 12) == "bounce msg 5 qp 12 queue1\n")
        let q = ActivityLog(queueName: "queue2", qident: "2")
        #expect(q.starting(delivery: 1, id: 9, channel: .local, recipient: b("u@h")) == "starting delivery 1.2: msg 9 to local u@h queue2\n")
        #expect(q.report(delivery: 1, status: UInt8(ascii: "Z"), text: b("x")) == "delivery 1.2: deferral: x queue2\n")
    }

    @Test("qmail-clean requests")
    func cleanRequests() {
        #expect(CleanRequest.parse(b("foop/123")) == .finished(123))
        #expect(CleanRequest.parse(b("todo/5/123")) == .preprocessed(123))
        #expect(CleanRequest.parse(b("todo/123")) == .preprocessed(123))
        #expect(CleanRequest.parse(b("foop/")) == .malformed)
        #expect(CleanRequest.parse(b("foo/1")) == .malformed)
        #expect(CleanRequest.parse(b("mess/1/123")) == .malformed)
        #expect(CleanRequest.parse(b("foop/12a")) == .malformed)
        #expect(CleanRequest.parse(b("foop/" + String(repeating: "1", count: 95))) == .malformed)
        #expect(CleanRequest.parse(b("foop/99999999999999999999")) == .malformed)
    }

    @Test("due queue: earliest first, ALRM makes all due")
    func dueQueue() {
        var q = DueQueue()
        for (due, id) in [(50, 1), (10, 2), (30, 3), (10, 4), (90, 5)] { q.push(Int64(due), UInt64(id)) }
        var got: [UInt64] = []
        while let id = q.popDue(40) { got.append(id) }
        #expect(Set(got.prefix(2)) == [2, 4] && got.last == 3 && got.count == 3)
        #expect(q.earliest == 50)
        q.makeAllDue(41)
        var rest: [UInt64] = []
        while let id = q.popDue(41) { rest.append(id) }
        #expect(Set(rest) == [1, 5])
    }

    @Test("control files: defaults, per-queue concurrency, bouncelifetime capped, conf-fsync family")
    func config() throws {
        var template = Array("/tmp/send-config.XXXXXX".utf8CString)
        let dir = try #require(template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }.map { String(cString: $0) })
        defer { _ = Spawn.run([b("/bin/rm"), b("-rf"), b(dir)], environment: Environment()) }
        func put(_ name: String, _ text: String) {
            let fd = open(dir + "/" + name, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            FD.writeAll(fd, b(text))
            close(fd)
        }
        put("me", "me.example\n")
        let control = ControlFiles(directory: dir)
        let plain = try SendConfig.load(control, queueName: "queue1").get()
        #expect(plain.concurrency == [10, 20] && plain.hold == [false, false])
        #expect(plain.queueLifetime == 604800 && plain.bounceLifetime == 604800)
        #expect(plain.bounce.host == "me.example" && plain.bounce.doubleBounceTo == "postmaster" && plain.bounce.maxBytes == 50000)
        put("concurrencylocal", "4\n"); put("concurrencyr.queue1", "7\n"); put("concurrencyremote", "9\n")
        put("holdremote", "1\n"); put("queuelifetime", "3600\n"); put("bouncelifetime", "7200\n")
        put("bouncehost", "bounces.example\n"); put("doublebounceto", "\n")
        let tuned = try SendConfig.load(control, queueName: "queue1").get()
        #expect(tuned.concurrency == [4, 7] && tuned.hold == [false, true])
        #expect(tuned.queueLifetime == 3600 && tuned.bounceLifetime == 3600)
        #expect(tuned.bounce.host == "bounces.example" && tuned.bounce.doubleBounceTo == "")
        #expect(tuned.lifetime(sender: []) == 3600)
        put("concurrencylocal", "many\n")
        #expect((try? SendConfig.load(control, queueName: "queue1").get()) == nil)
        // conf-fsync family: present files decide, absent ones leave the environment alone.
        put("conf-fsync", "0\n"); put("conf-fdatasync", "1\n")
        var env = Environment([("USE_SYNCDIR", "x"), ("USE_FSYNC", "1")])
        SyncControls.apply(to: &env, control: control)
        #expect(env["USE_FSYNC"] == "0" && env["USE_FDATASYNC"] == "1" && env["USE_SYNCDIR"] == "x")
        put("conf-fdatasync", "0\n"); put("conf-syncdir", "2\n")
        SyncControls.apply(to: &env, control: control)
        #expect(env["USE_FDATASYNC"] == nil && env["USE_SYNCDIR"] == "1")
    }

    @Test("random bytes never crash the parsers of pipes and queue files")
    func randomInput() {
        var rng = SystemRandomNumberGenerator()
        let rewriter = AddressRewriter(locals: ["a"], percentHack: ["b"], virtualDomains: [":x", ".c:y"], envNoAtHost: "h")
        var reader = SpawnReportReader(), records = NulRecordReader(limit: 64)
        for _ in 0..<2000 {
            let n = Int.random(in: 0...40, using: &rng)
            // A small alphabet makes separators and letters frequent.
            let alphabet = b("\0@%.-TDFLXKZehu0123456789/")
            let bytes = (0..<n).map { _ in Int.random(in: 0...3, using: &rng) == 0 ? UInt8.random(in: 0...255, using: &rng)
                                                                                   : alphabet[Int.random(in: 0..<alphabet.count, using: &rng)] }
            _ = TodoRecord.parse(bytes)
            _ = ChannelFile.parse(bytes)
            _ = InfoFile.parse(bytes)
            _ = CleanRequest.parse(bytes)
            _ = reader.feed(bytes)
            _ = records.feed(bytes)
            _ = rewriter.rewrite(bytes)
            _ = rewriter.stripVirtualPrepend(bytes)
            _ = VERP.expand(sender: bytes, recipient: bytes.reversed())
            _ = BounceText.block(recipient: bytes, report: bytes)
            _ = BounceText.firstRecipient(bytes)
            _ = LogText.safe(bytes)
        }
    }
}
