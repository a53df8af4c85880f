// qmail-local run as operators and qmail-lspawn run it: the message on fd 0 (a file), the
// result on fd 1, the report on fd 2, the exit code; mailboxes checked with Python's mailbox.
import Core
import Glibc
import Testing

/// A home directory with a Maildir helper and a way to run qmail-local against it.
final class LocalHome {
    let box = Sandbox()
    let home: String
    let bin: String

    init() {
        home = box.directory("home")
        chmod(home, 0o755)
        bin = box.commandLinks(["qmail-local"])
        box.directory("etc/control")
    }

    @discardableResult
    func maildir(_ name: String = "Maildir") -> String {
        for sub in ["tmp", "new", "cur"] { box.directory("home/\(name)/\(sub)") }
        return box.at("home/\(name)")
    }

    func dotQmail(_ name: String, _ text: String, mode: mode_t = 0o644) {
        box.write("home/\(name)", text, mode: mode)
    }

    func dotQmail(_ text: String, mode: mode_t = 0o644) { dotQmail(".qmail", text, mode: mode) }

    func read(_ relative: String) -> String? {
        guard case .success(let bytes) = FD.readFile(Path.join(home, relative)) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// qmail-local [flags] user home local dash ext domain sender defaultdelivery qqeh < message
    func deliver(_ message: String, local: String = "joe", dash: String = "", ext: String = "",
                 domain: String = "example.org", sender: String = "alice@sender.net",
                 defaultDelivery: String = "", qqeh: String = "", flags: [String] = [],
                 environment: [String: String] = [:]) -> Outcome {
        deliver(Array(message.utf8), arguments: flags + ["joe", home, local, dash, ext, domain, sender,
                                                          defaultDelivery, qqeh], environment: environment)
    }

    func deliver(_ message: [UInt8], arguments: [String], environment: [String: String] = [:]) -> Outcome {
        let file = box.write("message", message)
        var env = ["QL_MESSAGE": file, "SYSCONFDIR": box.at("etc"), "CONTROLDIR": "control"]
        for (k, v) in environment { env[k] = v }
        return run(["/bin/sh", "-c", "exec \"$0\" \"$@\" < \"$QL_MESSAGE\"", Path.join(bin, "qmail-local")] + arguments,
                   environment: env)
    }

    /// Runs a Python snippet with the home directory as argv[1]; returns its stdout.
    func python(_ script: String) -> String {
        let r = run(["/usr/bin/python3", "-c", script, home])
        return r.out + (r.exitCode == 0 ? "" : "python failed: " + r.err)
    }

    /// The environment a `|env -0 > file` program saw.
    func environmentDump(_ relative: String) -> [String: String] {
        var out: [String: String] = [:]
        for entry in (read(relative) ?? "").split(separator: "\0") {
            guard let eq = entry.firstIndex(of: "=") else { continue }
            out[String(entry[..<eq])] = String(entry[entry.index(after: eq)...])
        }
        return out
    }
}

let sampleMessage = "From: Alice <alice@sender.net>\nSubject: hello\n\nFrom the start\n>From quoted\nbody\n"

@Suite struct QmailLocalTests {
    @Test func maildirDeliveryReadableByPython() throws {
        let h = LocalHome()
        h.maildir()
        h.dotQmail("./Maildir/\n")
        let r = h.deliver(sampleMessage)
        #expect(r.exitCode == 0, "\(r.err)")
        #expect(r.out == "did 1+0+0\n")
        let check = h.python("""
            import mailbox, sys, os
            md = mailbox.Maildir(sys.argv[1] + '/Maildir', factory=None, create=False)
            msgs = list(md)
            print(len(msgs), msgs[0]['Return-Path'], msgs[0]['Delivered-To'], msgs[0]['Subject'])
            print(repr(msgs[0].get_payload()))
            print(len(os.listdir(sys.argv[1] + '/Maildir/tmp')))
            """)
        #expect(check == "1 <alice@sender.net> joe@example.org hello\n'From the start\\n>From quoted\\nbody\\n'\n0\n")
        let names = try #require(try? Path.entries(h.maildir() + "/new").get())
        #expect(names.count == 1)
        // The reference's name: <sec>.I<ino>V<dev>M<usec>P<pid>.<host>,S=<size>
        let name = names[0]
        #expect(name.contains(".I") && name.contains("V") && name.contains("M") && name.contains("P"))
        let size = sampleMessage.utf8.count + "Return-Path: <alice@sender.net>\nDelivered-To: joe@example.org\n".utf8.count
        #expect(name.hasSuffix(",S=\(size)"))
    }

    @Test func mboxDeliveryQuotesFromLines() throws {
        let h = LocalHome()
        h.dotQmail("./mbox\n")
        #expect(h.deliver(sampleMessage).exitCode == 0)
        #expect(h.deliver("Subject: second\n\nno final newline", sender: "").exitCode == 0)
        let text = try #require(h.read("mbox"))
        #expect(text.hasPrefix("From alice@sender.net "))
        #expect(text.contains("\n>From the start\n>>From quoted\nbody\n\nFrom MAILER-DAEMON "))
        #expect(text.hasSuffix("Return-Path: <>\nDelivered-To: joe@example.org\nSubject: second\n\nno final newline\n\n"))
        let check = h.python("""
            import mailbox, sys
            mb = mailbox.mbox(sys.argv[1] + '/mbox', create=False)
            print(len(mb), [m['Subject'] for m in mb], mb[0]['Delivered-To'])
            """)
        #expect(check == "2 ['hello', 'second'] joe@example.org\n")
    }

    @Test func programGetsTheReferenceEnvironment() throws {
        let h = LocalHome()
        h.dotQmail(".qmail-list-default", "|env -0 > envdump; cat > stdin-copy\n")
        let r = h.deliver(sampleMessage, local: "joe-list-Sub-x.y", dash: "-", ext: "list-Sub-x.y",
                          domain: "mail.example.org", qqeh: "X-QQ: 1\n")
        #expect(r.exitCode == 0, "\(r.err)")
        #expect(r.out == "did 0+0+1\n")
        let env = h.environmentDump("envdump")
        let expected: [String: String] = [
            "USER": "joe", "HOME": h.home, "LOCAL": "joe-list-Sub-x.y", "HOST": "mail.example.org",
            "RECIPIENT": "joe-list-Sub-x.y@mail.example.org", "DTLINE": "Delivered-To: joe-list-Sub-x.y@mail.example.org\n",
            "SENDER": "alice@sender.net", "RPLINE": "Return-Path: <alice@sender.net>\n", "NEWSENDER": "alice@sender.net",
            "EXT": "list-Sub-x.y", "EXT2": "Sub-x.y", "EXT3": "x.y", "EXT4": "", "DEFAULT": "Sub-x.y",
            "HOST2": "mail.example", "HOST3": "mail", "HOST4": "", "QQEH": "X-QQ: 1\n",
        ]
        for (k, v) in expected { #expect(env[k] == v, "\(k)") }
        #expect(env["UFLINE"]?.hasPrefix("From alice@sender.net ") == true)
        #expect(env["UFLINE"]?.hasSuffix("\n") == true)
        #expect(env["SPAMFILTER"] == nil)
        #expect(h.read("stdin-copy") == sampleMessage)
    }

    @Test func programExitCodes() throws {
        let cases: [(Int32, Int32)] = [(0, 0), (99, 0), (100, 100), (64, 100), (65, 100), (70, 100), (76, 100),
                                       (77, 100), (78, 100), (112, 100), (111, 111), (1, 111), (42, 111)]
        for (code, expected) in cases {
            let h = LocalHome()
            h.dotQmail("|echo ran\n|echo report; exit \(code)\n|touch after\n")
            let r = h.deliver(sampleMessage)
            #expect(r.exitCode == expected, "exit \(code)")
            #expect(r.out.hasPrefix("ran\nreport\n"), "exit \(code)")
            #expect((h.read("after") != nil) == (code == 0), "exit \(code)")
            if expected == 0 { #expect(r.out.hasSuffix("did 0+0+\(code == 0 ? 3 : 2)\n")) }
        }
    }

    @Test func killedProgramIsTemporary() {
        let h = LocalHome()
        h.dotQmail("|kill -9 $$\n")
        let r = h.deliver(sampleMessage)
        #expect(r.exitCode == 111)
        #expect(r.err == "Aack, child [kill -9 $$] crashed. (#4.3.0)\n")
    }

    /// A stub qmail-queue (QMAILQUEUE) that records the message (fd 0) and the envelope
    /// (fd 1) in the home directory.
    func injector(_ h: LocalHome, exit code: Int32 = 0) -> String {
        h.box.write("inject", "#!/bin/sh\ncat > \"$HOME/inject.stdin\"\ncat <&1 > \"$HOME/inject.envelope\"\nexit \(code)\n",
                    mode: 0o755)
    }

    @Test func forwardsGoToTheInjectorOnce() throws {
        let h = LocalHome()
        h.dotQmail("&bob@example.net\ncarol@example.com\n|echo prog\n")
        let r = h.deliver(sampleMessage, qqeh: "X-QQ: 1\n", environment: ["QMAILQUEUE": injector(h)])
        #expect(r.exitCode == 0, "\(r.err)")
        let lines = r.out.split(separator: "\n")
        #expect(lines.count == 3 && lines[0] == "prog" && lines[1] == "did 0+2+1" && lines[2].hasPrefix("qp "))
        #expect(h.read("inject.envelope") == "Falice@sender.net\0Tbob@example.net\0Tcarol@example.com\0\0")
        #expect(h.read("inject.stdin") == "Delivered-To: joe@example.org\nX-Forwarded-To: bob@example.net\n"
                + "X-Forwarded-To: carol@example.com\nX-Forwarded-For: alice@sender.net\nX-QQ: 1\n" + sampleMessage)
    }

    @Test func ownerFilesChangeTheForwardSender() throws {
        let h = LocalHome()
        h.dotQmail(".qmail-list", "&bob@example.net\n")
        h.dotQmail(".qmail-list-owner", "&owner@example.net\n")
        let stub = injector(h)
        #expect(h.deliver(sampleMessage, local: "joe-list", dash: "-", ext: "list", environment: ["QMAILQUEUE": stub]).exitCode == 0)
        #expect(h.read("inject.envelope")?.hasPrefix("Fjoe-list-owner@example.org\0") == true)
        h.dotQmail(".qmail-list-owner-default", "&owner@example.net\n")
        #expect(h.deliver(sampleMessage, local: "joe-list", dash: "-", ext: "list", environment: ["QMAILQUEUE": stub]).exitCode == 0)
        #expect(h.read("inject.envelope")?.hasPrefix("Fjoe-list-owner-@example.org-@[]\0") == true)
        // Bounces keep their empty sender.
        #expect(h.deliver(sampleMessage, local: "joe-list", dash: "-", ext: "list", sender: "",
                          environment: ["QMAILQUEUE": stub]).exitCode == 0)
        #expect(h.read("inject.envelope")?.hasPrefix("F\0T") == true)
    }

    @Test func injectorFailures() {
        // qmail-queue's exit codes: 11-40 permanent, the rest temporary.
        for (code, expected) in [(Int32(31), Int32(100)), (11, 100), (111, 111), (53, 111), (3, 111)] {
            let h = LocalHome()
            h.dotQmail("bob@example.net\n")
            let r = h.deliver(sampleMessage, environment: ["QMAILQUEUE": injector(h, exit: code)])
            #expect(r.exitCode == expected)
            #expect(r.err.hasPrefix("Unable to forward message: "))
        }
        let h = LocalHome()
        h.dotQmail("bob@example.net\n")
        let r = h.deliver(sampleMessage, environment: ["QMAILQUEUE": h.box.at("no-such-injector")])
        #expect(r.exitCode == 111)
    }

    @Test func stopAt99StillForwardsEarlierAddresses() {
        let h = LocalHome()
        h.dotQmail("bob@example.net\n|exit 99\ncarol@example.com\n./mbox\n")
        let r = h.deliver(sampleMessage, environment: ["QMAILQUEUE": injector(h)])
        #expect(r.exitCode == 0)
        #expect(h.read("inject.envelope") == "Falice@sender.net\0Tbob@example.net\0\0")
        #expect(h.read("mbox") == nil)
    }

    @Test func extensionSearch() {
        let h = LocalHome()
        h.dotQmail(".qmail-a-default", "|echo \"a-default $DEFAULT\"\n")
        h.dotQmail(".qmail-default", "|echo \"default $DEFAULT\"\n")
        h.dotQmail(".qmail-a-b-c", "|echo exact\n")
        h.dotQmail(".qmail-x:y", "|echo dotted\n")
        func who(_ ext: String) -> Outcome { h.deliver(sampleMessage, local: "joe-" + ext, dash: "-", ext: ext) }
        #expect(who("a-b-c").out == "exact\ndid 0+0+1\n")
        #expect(who("A-B-C").out == "exact\ndid 0+0+1\n")
        #expect(who("a-b-d").out == "a-default b-d\ndid 0+0+1\n")
        #expect(who("zzz").out == "default zzz\ndid 0+0+1\n")
        #expect(who("X.Y").out == "dotted\ndid 0+0+1\n")
        unlink(h.box.at("home/.qmail-default"))
        let missing = who("zzz")
        #expect(missing.exitCode == 100)
        #expect(missing.err == "Sorry, no mailbox here by that name. (#5.1.1)\n")
    }

    @Test func defaultDeliveryWhenNoOrEmptyDotQmail() {
        let h = LocalHome()
        h.maildir()
        let r = h.deliver(sampleMessage, defaultDelivery: "./Maildir/\n")
        #expect(r.exitCode == 0)
        #expect(r.out == "did 1+0+0\n")
        h.dotQmail("")
        #expect(h.deliver(sampleMessage, defaultDelivery: "./Maildir/").out == "did 1+0+0\n")
        #expect((try? Path.entries(h.maildir() + "/new").get().count) == 2)
    }

    @Test func deliveredToLoopIsPermanent() {
        let h = LocalHome()
        h.maildir()
        h.dotQmail("./Maildir/\n")
        let looping = "Received: x\nDelivered-To: joe@example.org\nSubject: loop\n\nbody\n"
        let r = h.deliver(looping)
        #expect(r.exitCode == 100)
        #expect(r.err == "This message is looping: it already has my Delivered-To line. (#5.4.6)\n")
        // Only header lines count, and maxdeliveredto raises the limit.
        #expect(h.deliver("Subject: x\n\nDelivered-To: joe@example.org\n").exitCode == 0)
        h.box.write("etc/control/maxdeliveredto", "1\n")
        #expect(h.deliver(looping).exitCode == 0)
        #expect(h.deliver("Delivered-To: joe@example.org\n" + looping).exitCode == 100)
        h.box.write("etc/control/maxdeliveredto", "-1\n")
        #expect(h.deliver("Delivered-To: joe@example.org\n" + looping).exitCode == 0)
    }

    @Test func missingMaildirIsTemporary() {
        let h = LocalHome()
        h.dotQmail("./Maildir/\n")
        let r = h.deliver(sampleMessage)
        #expect(r.exitCode == 111)
        #expect(r.err == "Unable to chdir to maildir. (#4.2.1)\n")
    }

    @Test func badDotQmailFiles() {
        let h = LocalHome()
        h.maildir()
        h.dotQmail("\n./Maildir/\n")
        var r = h.deliver(sampleMessage)
        #expect(r.exitCode == 111)
        #expect(r.err == "Uh-oh: first line of .qmail file is blank. (#4.2.1)\n")
        h.dotQmail("./Maildir/\n&\n")
        #expect(h.deliver(sampleMessage).exitCode == 111)
        h.dotQmail("./Maildir/\n", mode: 0o646)
        r = h.deliver(sampleMessage)
        #expect(r.err == "Uh-oh: .qmail file is writable. (#4.7.0)\n")
        h.dotQmail("./Maildir/\n", mode: 0o744)
        r = h.deliver(sampleMessage)
        #expect(r.err == "Uh-oh: .qmail has file delivery but has x bit set. (#4.7.0)\n")
        h.dotQmail("+list\n|echo no\n")
        r = h.deliver(sampleMessage)
        #expect(r.err == "Uh-oh: .qmail has prog delivery but has x bit set. (#4.7.0)\n")
        #expect((try? Path.entries(h.maildir() + "/new").get().count) == 0)
        chmod(h.home, 0o757)
        h.dotQmail("./Maildir/\n")
        #expect(h.deliver(sampleMessage).err == "Uh-oh: home directory is writable. (#4.7.0)\n")
    }

    @Test func hugeHeadersAndHeaderlessMessages() {
        let h = LocalHome()
        h.maildir()
        h.dotQmail("./Maildir/\n./mbox\n")
        let huge = "X-Huge: " + String(repeating: "a", count: 3_000_000) + "\nSubject: big\n\nbody\n"
        #expect(h.deliver(huge).exitCode == 0)
        #expect(h.deliver("just a body line, no header").exitCode == 0)
        #expect(h.deliver("").exitCode == 0)
        let check = h.python("""
            import mailbox, sys
            md = mailbox.Maildir(sys.argv[1] + '/Maildir', factory=None, create=False)
            mb = mailbox.mbox(sys.argv[1] + '/mbox', create=False)
            print(len(md), len(mb), sorted(len(m.as_bytes()) > 3000000 for m in md))
            """)
        #expect(check == "3 3 [False, False, True]\n")
    }

    @Test func branchesAndEnvdirLines() {
        let h = LocalHome()
        h.box.write("home/env/COLOUR", "blue\n")
        h.dotQmail("%./env\n?skip exit 99\n|touch not-run\n:skip\n?always\n|touch not-run-either\n:always\n|echo $COLOUR > colour\n")
        let r = h.deliver(sampleMessage)
        #expect(r.exitCode == 0, "\(r.err)")
        #expect(h.read("not-run") == nil && h.read("not-run-either") == nil)
        #expect(h.read("colour") == "blue\n")
        h.dotQmail("?none\n|touch skipped\n")
        #expect(h.deliver(sampleMessage).exitCode == 0)
        #expect(h.read("skipped") == nil)
        h.dotQmail("%./no-such-env\n")
        #expect(h.deliver(sampleMessage).exitCode == 111)
    }

    @Test func dryRunListsInstructions() {
        let h = LocalHome()
        h.dotQmail("# c\n./Maildir/\n./mbox\n|prog arg\n&a@b\nc@d\n?l run it\n")
        let r = h.deliver(sampleMessage, flags: ["-n"])
        #expect(r.exitCode == 0)
        #expect(r.out == "maildir ./Maildir/\nmbox ./mbox\nprogram prog arg\nforward a@b\nforward c@d\nprogram run it\ndid 2+2+2\n")
        #expect(h.read("mbox") == nil)
    }

    @Test func usageErrors() {
        let h = LocalHome()
        let short = h.deliver(Array(sampleMessage.utf8), arguments: ["joe", h.home, "joe"])
        #expect(short.exitCode == 100)
        #expect(short.err.hasPrefix("qmail-local: usage:"))
        #expect(h.deliver(Array(sampleMessage.utf8), arguments: ["joe", "relative", "joe", "", "", "d", "s", "", ""]).exitCode == 100)
        #expect(h.deliver(Array(sampleMessage.utf8), arguments: ["-x", "joe", h.home, "joe", "", "", "d", "s", "", ""]).exitCode == 100)
    }
}
