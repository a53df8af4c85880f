// qmail-inject's pure parts: the RFC 822 tokenizer and printer, the address-list walker,
// qmail-header.5's rewriting, header completion, the sendmail command line; and random
// input that must never crash any of them.
import Core
import Mail
import Testing

private func b(_ s: String) -> [UInt8] { Array(s.utf8) }
private func s(_ b: [UInt8]) -> String { String(decoding: b, as: UTF8.self) }

/// Deterministic random numbers (splitmix64), so a failing fuzz case reproduces.
struct InjectRandom: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

private let settings: InjectSettings = {
    var s = InjectSettings(defaultHost: "host", defaultDomain: "example.org", plusDomain: "plus.example.org",
                           idHost: "id.example.org", mailUser: "joe", mailHost: "mx.example.org", fullName: "Joe Bloggs")
    s.maxRecipients = 0
    return s
}()

private func session(_ source: RecipientSource = .header, _ tweak: (inout InjectSettings) -> Void = { _ in }) throws -> InjectSession {
    var st = settings
    tweak(&st)
    return try InjectSession(settings: st, source: source, time: 811_831_613, pid: 4242)
}

/// Rewrites one header field through a session; returns the printed field.
private func rewriteField(_ field: String) throws -> String {
    var sess = try session()
    try sess.field(b(field))
    let header = s(sess.finishHeader())
    return header.split(separator: "\n", omittingEmptySubsequences: false)
        .drop { !$0.hasPrefix(field.prefix { $0 != ":" }) }.joined(separator: "\n")
}

@Suite("qmail-inject header rewriting")
struct InjectRewriteTests {
    @Test func tokenizer() throws {
        let t = try RFC822Tokens.parse(b("To: \"A \\\"B\" <a.b@[1.2.3.4]> (c (nested) x), z;")).get()
        #expect(t == [Token822(.atom, "To"), Token822(.colon), Token822(.quoted, "A \"B"), Token822(.left),
                      Token822(.atom, "a"), Token822(.dot), Token822(.atom, "b"), Token822(.at),
                      Token822(.literal, "1.2.3.4"), Token822(.right), Token822(.comment, "c nested x"),
                      Token822(.comma), Token822(.atom, "z"), Token822(.semicolon)])
        for bad in ["To: )a", "To: ]", "To: \"open", "To: (open", "To: [1.2", "To: \"a\\"] {
            #expect(RFC822Tokens.parse(b(bad)) == .failure(.unparsable), "\(bad)")
        }
        // An atom runs through ")" (the reference's lexer), then prints quoted.
        #expect(try RFC822Tokens.parse(b("a)")).get() == [Token822(.quoted, "a)")])
        // A control byte makes an atom a quoted string.
        #expect(try RFC822Tokens.parse([97, 1, 98]).get() == [Token822(.quoted, [97, 1, 98])])
    }

    @Test("golden rewrites (qmail-header.5)", arguments: [
        ("To: bob", "To: bob@host.example.org"),
        ("To: bob@mail", "To: bob@mail.example.org"),
        ("To: bob@a.b", "To: bob@a.b"),
        ("To: bob@mail+", "To: bob@mail.plus.example.org"),
        ("To: bob@[10.0.0.1]", "To: bob@[10.0.0.1]"),
        ("To: <@r1,@r2:bob@x.y>", "To: <bob@x.y>"),
        ("To: bob@x.y.", "To: bob@x.y"),
        ("To: bob@", "To: bob@host.example.org"),
        ("To: <>", "To: <>"),
        ("To: foo@[]", "To: foo@[]"),
        ("To: a@x.y b@x.y", "To: a@x.y, b@x.y"),
        ("To: \"Al B\" <al>, carol@x.y (Carol)", "To: \"Al B\" <al@host.example.org>, carol@x.y (Carol)"),
        ("To: list: a, b@c.d;", "To: list: a@host.example.org, b@c.d;"),
        ("To: \"odd user\"@x.y", "To: \"odd user\"@x.y"),
        ("Cc:   spaced  @  x . y", "Cc: spaced@x.y"),
        ("To:\n  folded,\n\tlines", "To: folded@host.example.org, lines@host.example.org"),
        ("Reply-To: r", "Reply-To: r@host.example.org"),
        ("Subject: not an address", "Subject: not an address"),
    ])
    func golden(_ pair: (String, String)) throws {
        #expect(try rewriteField(pair.0 + "\n") == pair.1 + "\n")
    }

    @Test func longListsFoldAt80() throws {
        let names = (1...12).map { "recipient\($0)@example.com" }
        let out = try rewriteField("To: " + names.joined(separator: ", ") + "\n")
        let lines = out.split(separator: "\n")
        #expect(lines.count > 1)
        #expect(lines.allSatisfy { $0.utf8.count <= 80 })
        #expect(lines.dropFirst().allSatisfy { $0.hasPrefix("  recipient") })
        let joined = out.replacingOccurrences("\n ", "")
        #expect(joined == "To: " + names.joined(separator: ", ") + "\n")
    }

    @Test func headerCompletion() throws {
        var sess = try session()
        for f in ["Subject: hi\n", "Bcc: hidden\n", "Return-Path: <rp@x.y>\n", "Content-Length: 5\n"] { try sess.field(b(f)) }
        let header = s(sess.finishHeader(returnPathLine: true))
        #expect(header == """
            Return-Path: <rp@x.y>
            Date: 23 Sep 1995 04:46:53 -0000
            Message-ID: <19950923044653.4242.indimail@id.example.org>
            From: "Joe Bloggs" <joe@mx.example.org>
            Cc: recipient list not shown: ;
            Subject: hi

            """)
        #expect(sess.envelope == Envelope(sender: "rp@x.y", recipients: ["hidden@host.example.org"]))
    }

    @Test func resentMessages() throws {
        var sess = try session()
        for f in ["To: orig@x.y\n", "Date: 1 Jan 2000 00:00:00 -0000\n", "Message-ID: <a@b>\n", "From: o@x.y\n",
                  "Resent-To: new@x.y\n", "Resent-Bcc: hidden@x.y\n"] { try sess.field(b(f)) }
        let header = s(sess.finishHeader())
        #expect(header.hasPrefix("Resent-Date: 23 Sep 1995 04:46:53 -0000\nResent-Message-ID: <19950923044653.4242.indimail@id.example.org>\nResent-From: \"Joe Bloggs\" <joe@mx.example.org>\nTo: orig@x.y\n"))
        #expect(!header.contains("hidden") && !header.contains("recipient list not shown"))
        #expect(sess.envelope.recipients == [b("new@x.y"), b("hidden@x.y")])
        #expect(sess.envelope.sender == b("joe@mx.example.org"))
    }

    @Test func recipientSources() throws {
        var args = try session(.arguments)
        try args.addRecipient(b("a1"))
        try args.field(b("To: t@x.y\n"))
        try args.field(b("Bcc: bcc\n"))
        _ = args.finishHeader()
        #expect(args.envelope.recipients == [b("a1@host.example.org")])

        var both = try session(.both)
        try both.addRecipient(b("odd user@x.y"))
        try both.field(b("To: t@x.y\n"))
        try both.field(b("Cc: c@x.y\n"))
        try both.field(b("Bcc: bcc@x.y\n"))
        try both.field(b("Apparently-To: ap@x.y\n"))
        _ = both.finishHeader()
        #expect(both.envelope.recipients == [b("odd user@x.y"), b("t@x.y"), b("c@x.y"), b("bcc@x.y"), b("ap@x.y")])
    }

    @Test func flagsAndVERP() throws {
        var comment = try session { $0.nameAsComment = true }
        #expect(s(comment.finishHeader()).contains("From: joe@mx.example.org (Joe Bloggs)\n"))

        var dropped = try session { _ = $0.applyFlags(b("fis")) }
        for f in ["From: x@y.z\n", "Message-ID: <q@r>\n", "Return-Path: <rp@x.y>\n"] { try dropped.field(b(f)) }
        let h = s(dropped.finishHeader())
        #expect(h.contains("From: \"Joe Bloggs\"") && h.contains("Message-ID: <1995") && !h.contains("x@y.z"))
        #expect(dropped.envelope.sender == b("joe@mx.example.org"))

        var verp = try session { _ = $0.applyFlags(b("rm")) }
        _ = verp.finishHeader()
        #expect(verp.envelope.sender == b("joe-811831613.4242-@mx.example.org-@[]"))

        var f = try session()
        try f.setSender(b(""))
        _ = f.finishHeader()
        #expect(f.envelope.sender == [])
        var g = try session()
        try g.setSender(b("bounce"))
        #expect(g.envelope.sender == b("bounce@host.example.org"))
    }

    @Test func mailFollowupTo() throws {
        var sess = try session { $0.followupLists = [b("list@x.y")] }
        try sess.field(b("To: a@x.y, list@x.y\n"))
        try sess.field(b("Cc: c@x.y\n"))
        let header = s(sess.finishHeader())
        #expect(header.contains("Mail-Followup-To: c@x.y,\n  a@x.y,\n  list@x.y\nTo: a@x.y, list@x.y\n"))
        var other = try session { $0.followupLists = [b("list@x.y")] }
        try other.field(b("To: a@x.y\n"))
        #expect(!s(other.finishHeader()).contains("Mail-Followup-To"))
    }

    @Test func envRules() throws {
        #expect(EnvRules.settings("A=1, B=,C=x\\,y,D") == [.set("A", "1"), .unset("B"), .set("C", "x,y")])
        let rules = EnvRules.parse(["*@slow.example:QUEUEDIR=/q/slowq", "no colon", "<>:BOUNCE=1", "joe@*:A=2,QUEUEDIR="])
        #expect(rules.rules.count == 3)
        var env = Environment([("QUEUEDIR", "/q/queue1")])
        #expect(try rules.apply(to: "x@slow.example", matching: .wildcard, environment: &env).get() == 1)
        #expect(env["QUEUEDIR"] == "/q/slowq")
        #expect(try rules.apply(to: "joe@slow.example", matching: .wildcard, environment: &env).get() == 3)
        #expect(env["QUEUEDIR"] == nil && env["A"] == "2")
        #expect(try rules.apply(to: "", matching: .wildcard, environment: &env).get() == 2 && env["BOUNCE"] == "1")
        var e2 = Environment()
        #expect(try EnvRules.parse(["^JOE@.*$:R=1"]).apply(to: "JOE@x", matching: .regex, environment: &e2).get() == 1)
        #expect(EnvRules.parse(["(:R=1"]).apply(to: "a", matching: .regex, environment: &e2) == .failure(.badPattern("(")))
        #expect(try EnvRules.parse(["JOE@*:F=1"]).apply(to: "joe@x", matching: .caseFoldedWildcard, environment: &e2).get() == 1)
    }

    @Test func queueListingLine() {
        let line = QueueListing.statsLine(time: 1_577_836_800, split: "5", id: 123, size: 42,
                                          sender: b("a\u{7}b@x.y") + [0] + b("junk"), bouncing: true)
        #expect(s(line) == "1 Jan 2020 00:00:00 GMT  5/#123  42  <a_b@x.y>  bouncing\n")
        var listing = QueueListing()
        listing.todo = true
        #expect(listing.countLines(.init(local: 1, remote: 2, bounce: 3, todo: 4), prefix: "Total ") ==
                "Total Messages in local  queue: 1\nTotal Messages in remote queue: 2\nTotal Messages in bounce queue: 3\nTotal Messages in todo   queue: 4\n")
    }

    @Test func errors() throws {
        var sess = try session()
        #expect(throws: InjectError.unparsableLine(b("To: (a\n"))) { try sess.field(b("To: (a\n")) }
        #expect(throws: InjectError.unparsableLine(b("To: a>\n"))) { try sess.field(b("To: a>\n")) }
        #expect(throws: InjectError.invalidField(b("bad line\n"))) { try sess.field(b("bad line\n")) }
        #expect(throws: InjectError.unparsableAddress(b("a@(b"))) { try sess.addRecipient(b("a@(b")) }
        var limited = try session(.arguments) { $0.maxRecipients = 2 }
        try limited.addRecipient(b("a"))
        try limited.addRecipient(b("b"))
        #expect(throws: InjectError.tooManyRecipients) { try limited.addRecipient(b("c")) }
    }

    @Test func headerSplitter() {
        func split(_ text: String) -> HeaderSplit {
            var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { b(String($0)) + [10] }
            if text.hasSuffix("\n") { lines.removeLast() } else if let last = lines.popLast() { lines.append(Array(last.dropLast())) }
            var it = lines.makeIterator()
            return HeaderSplitter.split { it.next() }
        }
        let normal = split("A: 1\nB: 2\n  cont\n\nbody\n")
        #expect(normal.fields == [b("A: 1\n"), b("B: 2\n  cont\n")] && normal.bodyStart == [[10]])
        let mbox = split("From joe Mon\nX: y\nnot a header\n")
        #expect(mbox.fields == [b("MBOX-Line: From joe Mon\n"), b("X: y\n")])
        #expect(mbox.bodyStart == [[10], b("not a header\n")])
        let noBody = split("A: 1\nB: 2")
        #expect(noBody.fields == [b("A: 1\n"), b("B: 2\n")] && noBody.bodyStart.isEmpty && noBody.endedInHeader)
        let bodyOnly = split("hello world\n")
        #expect(bodyOnly.fields.isEmpty && bodyOnly.bodyStart == [[10], b("hello world\n")])
    }

    @Test func quoting() {
        #expect(AddressQuoting.quoteAddress(b("a b@c")) == b("\"a b\"@c"))
        #expect(AddressQuoting.quoteAddress(b("a.b@c")) == b("a.b@c"))
        #expect(AddressQuoting.quoteAddress(b(".a@c")) == b("\".a\"@c"))
        #expect(AddressQuoting.quoteAddress(b("a..b")) == b("\"a..b\""))
        #expect(AddressQuoting.quoteAddress(b("x\"y@c@d")) == b("\"x\\\"y@c\"@d"))
        #expect(AddressQuoting.quoteAddress([]) == [])
    }

    @Test func dates() {
        #expect(MessageDate.rfc822(0) == "1 Jan 1970 00:00:00 -0000")
        #expect(MessageDate.rfc822(951_782_400) == "29 Feb 2000 00:00:00 -0000")
        #expect(MessageDate.compact(1_795_000_000) == "20261118110640")
    }

    @Test func sendmailCommandLines() throws {
        func parse(_ args: [String], name: String = "sendmail") -> Result<SendmailRequest, SendmailRequest.Failure> {
            SendmailRequest.parse(name: name, arguments: args.map { b($0) })
        }
        let php = try parse(["-t", "-i"]).get()
        #expect(php.headerRecipients && php.recipients.isEmpty && php.injectArguments == [b("-H"), b("--")])
        let cron = try parse(["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"]).get()
        #expect(cron.fullName == b("CronDaemon") && cron.recipients == [b("root")])
        let mutt = try parse(["-oem", "-oi", "-f", "me@x.y", "--", "a@b", "-c"]).get()
        #expect(mutt.injectArguments == [b("-a"), b("-f"), b("me@x.y"), b("--"), b("a@b"), b("-c")])
        let env = mutt.injectEnvironment(Environment([("NAME", "N"), ("MAILHOST", "h")]))
        #expect(env["QMAILUSER"] == "me" && env["QMAILHOST"] == "x.y" && env["NAME"] == nil && env["MAILHOST"] == nil)
        let git = try parse(["-i", "-odb", "-v", "-r", "sender", "x@y"]).get()
        #expect(git.sender == b("sender") && git.recipients == [b("x@y")])
        #expect(try parse(["-bp"]).get().mode == .listQueue)
        #expect(try parse([], name: "mailq").get().mode == .listQueue)
        #expect(try parse(["-bs"]).get().mode == .smtp)
        #expect(try parse(["-bm", "-Am", "-N", "never", "a"]).get().recipients == [b("a")])
        #expect(parse(["-bi"]) == .failure(.newAliases))
        #expect(parse(["-I"]) == .failure(.newAliases))
        #expect(parse([], name: "newaliases") == .failure(.newAliases))
        #expect(parse(["-Q"]) == .failure(.usage))
        #expect(parse(["-bz"]) == .failure(.usage))
        #expect(parse(["-f"]) == .failure(.usage))
    }
}

@Suite("qmail-inject parsers against random input")
struct InjectFuzzTests {
    static let alphabet: [UInt8] = Array("abc@.,<>:;()[]\"\\ \t\n\r+-=%!".utf8) + [0, 1, 127, 128, 255]

    static func randomBytes(_ rng: inout InjectRandom, max: Int) -> [UInt8] {
        let n = Int.random(in: 0...max, using: &rng)
        return (0..<n).map { _ in
            Bool.random(using: &rng) ? alphabet[Int.random(in: 0..<alphabet.count, using: &rng)] : UInt8.random(in: 0...255, using: &rng)
        }
    }

    @Test func headerFieldsNeverCrash() throws {
        var rng = InjectRandom(state: 6)
        var parsed = 0, refused = 0
        for round in 0..<3000 {
            var sess = try session(round % 2 == 0 ? .header : .both)
            let names = ["To: ", "Cc: ", "Bcc: ", "From: ", "Return-Path: ", "Resent-To: ", "Reply-To: ", "X: ", ""]
            let line = b(names[round % names.count]) + Self.randomBytes(&rng, max: 60) + [10]
            do {
                try sess.field(line)
                parsed += 1
            } catch {
                refused += 1
            }
            let header = sess.finishHeader(returnPathLine: true)
            #expect(!header.isEmpty)
            // Whatever came out of the rewriting must tokenize again.
            if case .success(let tokens) = RFC822Tokens.parse(line), let list = RFC822Tokens.addressList(tokens, rewrite: { _ in }) {
                let printed = RFC822Tokens.unparse(list)
                #expect((try? RFC822Tokens.parse(printed).get()) != nil, "\(line) -> \(printed)")
            }
        }
        #expect(parsed > 100 && refused > 100)
    }

    /// The folding as the reference does it, in place: every comma writes a break, and the
    /// previous break is cut out again when the joined line fits. The oracle for `unparse`.
    static func referenceFold(_ tokens: [Token822], lineLength: Int) -> [UInt8] {
        var buf: [UInt8] = []
        var lineb = 0
        var linee: Int? = nil
        func nsuw() {
            if let e = linee, lineLength == 0 || buf.count - lineb <= lineLength {
                buf.removeSubrange(e ..< e + 2)
                buf += [10, 32]
                linee = buf.count - 2
            } else {
                if let e = linee { lineb = e + 1 }
                linee = buf.count
                buf += [10, 32]
            }
        }
        var last: Token822Kind? = nil
        let words: [Token822Kind] = [.atom, .literal, .quoted, .comment]
        for t in tokens {
            if let l = last, l == .colon || l == .comma || t.kind == .left || (words.contains(l) && words.contains(t.kind)) {
                buf.append(32)
            }
            last = t.kind
            switch t.kind {
            case .comma: buf.append(44); nsuw()
            case .at: buf.append(64)
            case .dot: buf.append(46)
            case .left: buf.append(60)
            case .right: buf.append(62)
            case .semicolon: buf.append(59)
            case .colon: buf.append(58)
            default:
                let marks: [Token822Kind: (UInt8, UInt8)] = [.quoted: (34, 34), .literal: (91, 93), .comment: (40, 41)]
                if let m = marks[t.kind] { buf.append(m.0) }
                for c in t.text {
                    if [34, 91, 93, 40, 41, 92, 13, 10].contains(c) { buf.append(92) }
                    buf.append(c)
                }
                if let m = marks[t.kind] { buf.append(m.1) }
            }
        }
        nsuw()
        buf.removeLast()
        return buf
    }

    @Test func foldingMatchesTheReferenceAlgorithm() {
        var rng = InjectRandom(state: 2024)
        let kinds: [Token822Kind] = [.atom, .quoted, .literal, .comment, .comma, .comma, .comma, .at, .dot, .left, .right, .semicolon, .colon]
        var mismatches: [[Token822]] = []
        for _ in 0..<3000 {
            let tokens = (0..<Int.random(in: 0...40, using: &rng)).map { _ in
                let kind = kinds[Int.random(in: 0..<kinds.count, using: &rng)]
                let text = [.atom, .quoted, .literal, .comment].contains(kind)
                    ? (0..<Int.random(in: 0...25, using: &rng)).map { _ in UInt8.random(in: 32...126, using: &rng) } : []
                return Token822(kind, text)
            }
            let width = [0, 20, 80][Int.random(in: 0...2, using: &rng)]
            if RFC822Tokens.unparse(tokens, lineLength: width) != Self.referenceFold(tokens, lineLength: width) {
                mismatches.append(tokens)
            }
        }
        #expect(mismatches.isEmpty, "\(mismatches.prefix(2))")
    }

    @Test func argumentsAndSplitterNeverCrash() throws {
        var rng = InjectRandom(state: 77)
        for _ in 0..<2000 {
            var sess = try session(.both)
            let arg = Self.randomBytes(&rng, max: 30)
            _ = try? sess.addRecipient(arg)
            _ = try? sess.setSender(arg)
            _ = sess.envelope
            _ = SendmailRequest.parse(name: "sendmail", arguments: [arg, Self.randomBytes(&rng, max: 5)])
            var chunks = (0..<Int.random(in: 0...6, using: &rng)).map { _ in Self.randomBytes(&rng, max: 40) }.makeIterator()
            _ = HeaderSplitter.split { chunks.next() }
            _ = HeaderFieldName.known(arg)
            _ = HeaderFieldName.isValidField(arg)
            _ = AddressQuoting.quoteAddress(arg)
            let text = String(decoding: arg, as: UTF8.self)
            var env = Environment()
            _ = EnvRules.parse([text, "*:" + text]).apply(to: text, matching: .wildcard, environment: &env)
            _ = EnvRules.settings(text)
        }
    }
}

private extension String {
    func replacingOccurrences(_ target: String, _ replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
