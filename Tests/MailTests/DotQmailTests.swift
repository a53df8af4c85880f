// The .qmail parser: every line form, the errors, and random input that must never crash it.
import Mail
import Testing

@Suite("DotQmail")
struct DotQmailTests {
    func parse(_ text: String) -> Result<DotQmail, DotQmailError> { DotQmail.parse(Array(text.utf8)) }
    func b(_ s: String) -> [UInt8] { Array(s.utf8) }

    @Test func everyInstructionForm() throws {
        let text = """
            # a comment
            ./Maildir/
            /var/mail/u/
            ./mbox
            /var/spool/mail/u
            |preline procmail
            &joe@example.org
            fred@example.net
            %   ./env
            ?skip test -f x
            ?always
            :skip   trailing words
            +list
            +other

            """
        let parsed = try parse(text).get().instructions
        #expect(parsed == [
            .comment, .maildir(b("./Maildir/")), .maildir(b("/var/mail/u/")), .mbox(b("./mbox")),
            .mbox(b("/var/spool/mail/u")), .program(b("preline procmail")), .forward(b("joe@example.org")),
            .forward(b("fred@example.net")), .envdir(b("./env")), .branch(label: b("skip"), command: b("test -f x")),
            .branch(label: b("always"), command: nil), .label(b("skip   trailing words")), .listMode, .empty,
        ])
    }

    @Test func trailingBlanksTrimmedLeadingKept() throws {
        let parsed = try parse("./Maildir/ \t\n |prog  \n  addr@x\t\n?lbl   \n").get().instructions
        // A leading blank makes the line a forward, as the reference reads it.
        #expect(parsed == [.maildir(b("./Maildir/")), .forward(b(" |prog")), .forward(b("  addr@x")),
                           .branch(label: b("lbl"), command: nil)])
    }

    @Test func noFinalNewlineAndEmptyProgram() throws {
        #expect(try parse("./mbox").get().instructions == [.mbox(b("./mbox"))])
        #expect(try parse("|").get().instructions == [.program([])])
        #expect(try parse("./x\n\n\n").get().instructions == [.mbox(b("./x")), .empty, .empty])
    }

    @Test func badLines() {
        #expect(parse("") == .failure(.blankFirstLine))
        #expect(parse("\n./Maildir/\n") == .failure(.blankFirstLine))
        #expect(parse("  \t\n./Maildir/\n") == .failure(.blankFirstLine))
        #expect(parse("./Maildir/\n&\n") == .failure(.emptyForward(line: 2)))
        #expect(DotQmail.parse(b("./Maildir/\n./mb") + [0] + b("ox\n")) == .failure(.nulByte(line: 2)))
        #expect(DotQmailError.blankFirstLine.description == "Uh-oh: first line of .qmail file is blank. (#4.2.1)")
    }

    @Test func labelsMatchWholeNamesForwardOnly() throws {
        let file = try parse(":a\n?ab\n:a\n:abc\n:ab x\n").get()
        #expect(file.labelIndex(b("ab"), after: 1) == 4)
        #expect(file.labelIndex(b("a"), after: 1) == 2)
        #expect(file.labelIndex(b("a"), after: 2) == nil)
        #expect(file.labelIndex(b("zz"), after: 0) == nil)
    }

    @Test func hasFileDelivery() throws {
        #expect(try parse("a@b\n./Maildir/\n").get().hasFileDelivery)
        #expect(try !parse("a@b\n|prog\n").get().hasFileDelivery)
    }

    /// Random bytes (biased toward the bytes that matter) give a value or an error, never a trap.
    @Test func randomInputNeverCrashes() {
        var rng = SystemRandomNumberGenerator()
        let alphabet: [UInt8] = Array("\n\n\n \t#|&%?:+./a@-".utf8) + [0, 255, 13]
        for _ in 0..<3000 {
            let count = Int.random(in: 0..<120, using: &rng)
            let bytes = (0..<count).map { _ in
                Bool.random(using: &rng) ? alphabet.randomElement(using: &rng)! : UInt8.random(in: 0...255, using: &rng)
            }
            switch DotQmail.parse(bytes) {
            case .success(let file):
                #expect(!file.instructions.isEmpty)
                for i in file.instructions.indices {
                    if case .branch(let label, _) = file.instructions[i] { _ = file.labelIndex(label, after: i) }
                }
            case .failure: break
            }
        }
    }
}

@Suite("MaildirName")
struct MaildirNameTests {
    @Test func referenceForm() {
        #expect(MaildirName.temporary(seconds: 1700000000, microseconds: 42, pid: 77, host: "mx.example.org")
                == "1700000000.M42P77.mx.example.org")
        #expect(MaildirName.final(seconds: 1700000000, microseconds: 42, pid: 77, host: "a/b:c",
                                  inode: 255, device: 2049, size: 10)
                == "1700000000.IffV801M42P77.a057b072c,S=10")
    }

    @Test func distinctForEveryMicrosecondPidOrHost() {
        var seen = Set<String>()
        for usec in 0..<200 {
            for pid in Int32(1)...5 {
                #expect(seen.insert(MaildirName.temporary(seconds: 1, microseconds: usec, pid: pid, host: "h")).inserted)
            }
        }
        #expect(seen.insert(MaildirName.temporary(seconds: 1, microseconds: 0, pid: 1, host: "h2")).inserted)
    }

    @Test func mboxQuoting() {
        #expect(mboxNeedsQuoting(Array("From x".utf8)))
        #expect(mboxNeedsQuoting(Array(">>From x".utf8)))
        #expect(!mboxNeedsQuoting(Array("From".utf8)))
        #expect(!mboxNeedsQuoting(Array(" From x".utf8)))
        #expect(!mboxNeedsQuoting(Array("from x".utf8)))
    }

    @Test func recipientLines() {
        func b(_ s: String) -> [UInt8] { Array(s.utf8) }
        let r = LocalRecipient(user: b("u"), home: b("/h"), local: b("joe-list-a.B"), dash: b("-"), ext: b("list-a.B"),
                               host: b("mx.example.org"), sender: b("odd user@x.org"), defaultDelivery: [], qqeh: [])
        #expect(r.dtline == b("Delivered-To: joe-list-a.B@mx.example.org\n"))
        #expect(r.rpline == b("Return-Path: <\"odd user\"@x.org>\n"))
        #expect(r.safeExt == b("list-a:b"))
        #expect(r.extensions == [b("list-a.B"), b("a.B"), [], []])
        #expect(r.hosts == [b("mx.example"), b("mx"), []])
        #expect(r.ufline(time: 0) == b("From odd-user@x.org Thu Jan  1 00:00:00 1970\n"))
        var bounce = r
        bounce.sender = []
        #expect(bounce.rpline == b("Return-Path: <>\n"))
        #expect(bounce.ufline(time: 0) == b("From MAILER-DAEMON Thu Jan  1 00:00:00 1970\n"))
    }
}
