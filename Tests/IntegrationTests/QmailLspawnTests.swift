// qmail-lspawn driven over its pipes as qmail-send drives it: reports checked byte for
// byte, users/cdb and qmail-getpw look-ups, the real qmail-local delivering to a Maildir.
import Core
import Glibc
import Testing

/// A qmail-local stand-in: records what it got, then behaves as its local part says.
let localStub = """
d="$DUMPDIR"
printf '%s\\0' "$@" > "$d/$4.args"
env > "$d/$4.env"
id -u > "$d/$4.uid"
pwd > "$d/$4.pwd"
cat > "$d/$4.msg"
case "$4" in
  ok*) printf 'did 1+0+0\\n'; exit 0;;
  defer*) printf 'temporary trouble\\n'; exit 111;;
  bounce*) printf 'no mailbox here\\n'; exit 100;;
  seventyone*) printf 'x'; exit 71;;
  other*) printf 'weird'; exit 5;;
  crash*) kill -SEGV $$;;
  bug*) printf 'ignored'; exit 112;;
  nul*) printf 'before\\0after'; exit 0;;
  long*) head -c 5000 /dev/zero | tr '\\0' 'a'; exit 100;;
  wait*) i=0; while [ ! -e "$d/go" ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; printf 'waited\\n'; exit 0;;
esac
printf 'default\\n'
exit 0

"""

let stubBehaviours = ["ok", "defer", "bounce", "seventyone", "other", "crash", "bug", "nul", "long"]

extension SpawnFixture {
    /// Stub qmail-local plus users/assign entries for every behaviour, run as nobody.
    func withLocalStub() -> String {
        stub("local-stub", localStub)
        environment["QMAILLOCAL"] = Path.join(bin, "local-stub")
        environment["DUMPDIR"] = dump
        let home = self.home("stub", dotQmail: "")
        var assign = ""
        for name in stubBehaviours + ["wait", "quick", "argv"] { assign += "=\(name):nobody:65534:65534:\(home):::\n" }
        assign += "+wild-:nobody:65534:65534:\(home):-:pre-:\n"
        assign += "=rootuser:root:0:0:/:::\n"
        assign += ".\n"
        _ = self.assign(assign)
        return home
    }
}

@Suite struct QmailLspawnTests {
    @Test func exitCodesBecomeReportsByteForByte() throws {
        let f = SpawnFixture()
        _ = f.withLocalStub()
        let id = f.message(101)
        let p = try #require(f.start("qmail-lspawn", ["./Maildir/"]))
        #expect(p.handshake() == 500)
        for (slot, name) in stubBehaviours.enumerated() {
            p.send(SpawnerProcess.command(slot: slot, id: id, recipient: "\(name)@example.org"))
        }
        let got = p.reports(stubBehaviours.count)
        var bySlot: [Int: String] = [:]
        for r in got { bySlot[r.slot] = r.text }
        let long = "D" + String(repeating: "a", count: 2966) + "\nError report too long, sorry.\n"
        let expected: [Int: String] = [
            0: "Kdid 1+0+0\n", 1: "Ztemporary trouble\n", 2: "Dno mailbox here\n", 3: "Zx", 4: "Dweird",
            5: "Zqmail-local crashed.\n", 6: "ZInternal qmail-lspawn bug.\n", 7: "Kbefore", 8: long,
        ]
        let same = bySlot == expected
        #expect(same, "\(got)")
        #expect(p.finish() == .exited(0), "\(p.stderrString)")
    }

    @Test func qmailLocalGetsTheReferenceArgumentsAndEnvironment() throws {
        let f = SpawnFixture()
        let home = f.withLocalStub()
        let id = f.message(202, "Subject: args\n\nbody text\n")
        let p = try #require(f.start("qmail-lspawn", ["./Maildir/"], extra: ["QMAILREMOTE": "/nonexistent"]))
        #expect(p.handshake() == 500)
        p.send(SpawnerProcess.command(slot: 7, id: id, sender: "bob@x.net", qqeh: "X-QQ: 1\n",
                                      envh: "X-My-Header: some value\nSubject: hi\n", recipient: "WILD-Foo@Example.COM"))
        #expect(p.next() == SpawnReport(slot: 7, text: "Kdefault\n"))
        let args = f.read("dump/WILD-Foo.args")?.split(separator: "\0", omittingEmptySubsequences: false).map(String.init)
        #expect(args == ["--", "nobody", home, "WILD-Foo", "-", "pre-Foo", "Example.COM", "bob@x.net", "./Maildir/", "X-QQ: 1\n", ""])
        let env = f.read("dump/WILD-Foo.env") ?? ""
        #expect(env.contains("MESSID=\(id)\n"))
        #expect(env.contains("X_MY_HEADER=some value\n"))
        #expect(env.contains("SUBJECT=hi\n"))
        #expect(!env.contains("QMAILREMOTE="))
        #expect(f.read("dump/WILD-Foo.pwd") == "/\n")
        #expect(f.read("dump/WILD-Foo.msg") == "Subject: args\n\nbody text\n")
        if geteuid() == 0 { #expect(f.read("dump/WILD-Foo.uid") == "65534\n") }
        #expect(p.finish() == .exited(0))
    }

    @Test func badCommandsAreReportedAtOnce() throws {
        let f = SpawnFixture()
        _ = f.withLocalStub()
        let id = f.message(303)
        f.box.directory("queue/mess/0/304")
        let p = try #require(f.start("qmail-lspawn", ["./Maildir/"]))
        #expect(p.handshake() == 500)
        let cases: [([UInt8], SpawnReport)] = [
            (SpawnerProcess.command(slot: 500, id: id, recipient: "ok@a.b"), SpawnReport(slot: 500, text: "ZInternal error: delnum too big. (#4.3.5)\n")),
            (SpawnerProcess.command(slot: 0x8001, id: id, recipient: "ok@a.b"), SpawnReport(slot: 0x8001, text: "ZInternal error: delnum negative. (#4.3.5)\n")),
            (SpawnerProcess.command(slot: 1, id: "0/30a", recipient: "ok@a.b"), SpawnReport(slot: 1, text: "DInternal error: messid has nonnumerics. (#5.3.5)\n")),
            (SpawnerProcess.command(slot: 1, id: "/303", recipient: "ok@a.b"), SpawnReport(slot: 1, text: "DInternal error: messid has nonnumerics. (#5.3.5)\n")),
            (SpawnerProcess.command(slot: 1, id: String(repeating: "1", count: 100), recipient: "ok@a.b"), SpawnReport(slot: 1, text: "DInternal error: messid too long. (#5.3.5)\n")),
            (SpawnerProcess.command(slot: 1, id: "", recipient: "ok@a.b"), SpawnReport(slot: 1, text: "DInternal error: messid too short. (#5.3.5)\n")),
            (SpawnerProcess.command(slot: 2, id: id, recipient: "nohost"), SpawnReport(slot: 2, text: "DSorry, address must include host name. (#5.1.3)\n")),
            (SpawnerProcess.command(slot: 3, id: "0/999", recipient: "ok@a.b"), SpawnReport(slot: 3, text: "Zqmail-spawn unable to open message. (#4.3.0)\n")),
            (SpawnerProcess.command(slot: 4, id: "0/304", recipient: "ok@a.b"), SpawnReport(slot: 4, text: "ZSorry, message has wrong type. (#4.3.5)\n")),
        ]
        for (command, expected) in cases {
            p.send(command)
            #expect(p.next() == expected)
        }
        // 99 characters is still a valid id (the message just is not there).
        p.send(SpawnerProcess.command(slot: 5, id: String(repeating: "1", count: 99), recipient: "ok@a.b"))
        #expect(p.next() == SpawnReport(slot: 5, text: "Zqmail-spawn unable to open message. (#4.3.0)\n"))
        if geteuid() == 0 {
            let other = f.message(305)
            chown(f.box.at("queue/mess/\(other)"), QueueTest.nobody, QueueTest.nogroup)
            p.send(SpawnerProcess.command(slot: 6, id: other, recipient: "ok@a.b"))
            #expect(p.next() == SpawnReport(slot: 6, text: "ZSorry, message has wrong owner. (#4.3.5)\n"))
            p.send(SpawnerProcess.command(slot: 6, id: id, recipient: "rootuser@a.b"))
            #expect(p.next() == SpawnReport(slot: 6, text: "ZNot allowed to perform deliveries as root.\n"))
        }
        // A bounce to "@host" is delivered to nobody and succeeds.
        p.send(SpawnerProcess.command(slot: 8, id: id, recipient: "@a.b"))
        #expect(p.next() == SpawnReport(slot: 8, text: "K"))
        #expect(p.finish() == .exited(0))
    }

    @Test func aSlowDeliveryBlocksNeitherOtherSlotsNorCommands() throws {
        let f = SpawnFixture()
        _ = f.withLocalStub()
        let id = f.message(404)
        let p = try #require(f.start("qmail-lspawn", ["./Maildir/"]))
        #expect(p.handshake() == 500)
        // The command arrives in pieces, as a pipe may deliver it.
        let slow = SpawnerProcess.command(slot: 3, id: id, recipient: "wait@example.org")
        p.send(Array(slow[0..<5]))
        p.send(Array(slow[5...]))
        p.send(SpawnerProcess.command(slot: 3, id: id, recipient: "quick@example.org"))
        #expect(p.next() == SpawnReport(slot: 3, text: "ZInternal error: delnum in use. (#4.3.5)\n"))
        p.send(SpawnerProcess.command(slot: 4, id: id, recipient: "quick@example.org"))
        #expect(p.next() == SpawnReport(slot: 4, text: "Kdefault\n"))
        // End of commands: the spawner waits for the running delivery before exiting.
        p.closeInput()
        f.box.write("dump/go", "")
        #expect(p.next() == SpawnReport(slot: 3, text: "Kwaited\n"))
        #expect(p.finish() == .exited(0))
    }

    /// qmail-send gone: deliveries already running still finish; the spawner then exits.
    @Test func deliveriesFinishWhenNobodyReadsReports() throws {
        let f = SpawnFixture()
        _ = f.withLocalStub()
        let id = f.message(414)
        let p = try #require(f.start("qmail-lspawn", ["./Maildir/"]))
        #expect(p.handshake() == 500)
        p.send(SpawnerProcess.command(slot: 0, id: id, recipient: "wait@example.org"))
        #expect(eventually { f.read("dump/wait.msg") != nil })
        p.closeOutput()
        p.closeInput()
        f.box.write("dump/go", "")
        #expect(p.finish() == .exited(0))
        #expect(f.read("dump/wait.msg") == "Subject: test\n\nhello\n")
    }

    @Test func unknownUsersGoThroughQmailGetpw() throws {
        let f = SpawnFixture()
        _ = f.withLocalStub()
        let id = f.message(505)
        // Real qmail-getpw: no such account, so the alias user (nobody here) takes it all.
        let p = try #require(f.start("qmail-lspawn", ["./Maildir/"], extra: ["ALIAS_USER": "nobody"]))
        #expect(p.handshake() == 500)
        p.send(SpawnerProcess.command(slot: 0, id: id, recipient: "No-Such-Userzz@example.org"))
        #expect(p.next() == SpawnReport(slot: 0, text: "Kdefault\n"))
        let args = f.read("dump/No-Such-Userzz.args")?.split(separator: "\0", omittingEmptySubsequences: false).map(String.init)
        let nobodyHome = Accounts.user("nobody").map(\.home)
        #expect(args == ["--", "nobody", (try? nobodyHome.get()) ?? "?", "No-Such-Userzz", "-", "No-Such-Userzz",
                         "example.org", "alice@sender.net", "./Maildir/", "", ""])
        #expect(p.finish() == .exited(0))

        let q = try #require(f.start("qmail-lspawn", ["./Maildir/"], extra: ["ALIAS_USER": "no-such-alias-zz"]))
        #expect(q.handshake() == 500)
        q.send(SpawnerProcess.command(slot: 1, id: id, recipient: "nobodyzz@example.org"))
        #expect(q.next() == SpawnReport(slot: 1, text: "ZUnable to find alias user!\n"))
        #expect(q.finish() == .exited(0))
    }

    @Test func qmailGetpwFailuresMapToReports() throws {
        let f = SpawnFixture()
        _ = f.withLocalStub()
        let id = f.message(606)
        f.stub("getpw-stub", """
        case "$1" in
          tempfail) exit 111;;
          permfail) echo oops >&2; exit 100;;
          nfs) exit 115;;
          short) printf 'nobody\\0001\\0'; exit 0;;
          segv) kill -SEGV $$;;
        esac
        printf 'nobody\\00065534\\00065534\\0/\\0-\\0ext\\0'

        """)
        let p = try #require(f.start("qmail-lspawn", ["./Maildir/"], extra: ["QMAILGETPW": Path.join(f.bin, "getpw-stub")]))
        #expect(p.handshake() == 500)
        let cases = ["tempfail": "Z", "permfail": "D", "nfs": "ZNFS failure in qmail-local.\n",
                     "short": "ZInternal qmail-lspawn bug.\n", "segv": "ZTemporary failure in qmail-lspawn.\n",
                     "fine": "Kdefault\n"]
        var slot = 0
        var expected: [Int: String] = [:]
        for (local, text) in cases {
            p.send(SpawnerProcess.command(slot: slot, id: id, recipient: "\(local)@example.org"))
            expected[slot] = text
            slot += 1
        }
        var got: [Int: String] = [:]
        for r in p.reports(cases.count) { got[r.slot] = r.text }
        let same = got == expected
        #expect(same, "\(got)")
        #expect(f.read("dump/fine.args")?.hasPrefix("--\0nobody\0/\0fine\0-\0ext\0") == true)
        #expect(p.finish() == .exited(0))

        let q = try #require(f.start("qmail-lspawn", ["./Maildir/"], extra: ["QMAILGETPW": f.box.at("bin/missing")]))
        #expect(q.handshake() == 500)
        q.send(SpawnerProcess.command(slot: 0, id: id, recipient: "someone@example.org"))
        #expect(q.next() == SpawnReport(slot: 0, text: "ZUnable to run qmail-getpw.\n"))
        #expect(q.finish() == .exited(0))
    }

    @Test func missingQmailLocalAndBrokenCdb() throws {
        let f = SpawnFixture()
        _ = f.withLocalStub()
        let id = f.message(707)
        let p = try #require(f.start("qmail-lspawn", ["./Maildir/"], extra: ["QMAILLOCAL": f.box.at("bin/missing")]))
        #expect(p.handshake() == 500)
        p.send(SpawnerProcess.command(slot: 0, id: id, recipient: "ok@example.org"))
        #expect(p.next() == SpawnReport(slot: 0, text: "DUnable to run qmail-local.\n"))
        #expect(p.finish() == .exited(0))

        f.box.write("etc/users/cdb", "not a cdb")
        let q = try #require(f.start("qmail-lspawn", ["./Maildir/"]))
        #expect(q.handshake() == 500)
        q.send(SpawnerProcess.command(slot: 0, id: id, recipient: "ok@example.org"))
        #expect(q.next() == SpawnReport(slot: 0, text: "ZTrouble reading users/cdb in qmail-lspawn.\n"))
        #expect(q.finish() == .exited(0))
    }

    @Test func realQmailLocalDeliversIntoAMaildir() throws {
        let f = SpawnFixture()
        let home = f.home("joe", dotQmail: "./Maildir/\n")
        let deferHome = f.home("sam", dotQmail: "|echo not now; exit 111\n")
        #expect(f.assign("=joe:nobody:65534:65534:\(home):::\n=sam:nobody:65534:65534:\(deferHome):::\n.\n").exitCode == 0)
        let id = f.message(808, "Subject: real\n\nreal body\n")
        let p = try #require(f.start("qmail-lspawn", ["./Maildir/"]))
        #expect(p.handshake() == 500)
        p.send(SpawnerProcess.command(slot: 0, id: id, recipient: "joe@example.org"))
        #expect(p.next() == SpawnReport(slot: 0, text: "Kdid 1+0+0\n"))
        p.send(SpawnerProcess.command(slot: 1, id: id, recipient: "sam@example.org"))
        let deferred = p.next()
        #expect(deferred?.slot == 1)
        #expect(deferred?.text.hasPrefix("Znot now\n") == true, "\(String(describing: deferred))")
        #expect(p.finish() == .exited(0), "\(p.stderrString)")
        guard case .success(let names) = Path.entries(home + "/Maildir/new") else { Issue.record("no Maildir/new"); return }
        #expect(names.count == 1)
        let file = home + "/Maildir/new/" + (names.first ?? "")
        let text = (try? FD.readFile(file).get()).map { String(decoding: $0, as: UTF8.self) } ?? ""
        #expect(text.contains("Delivered-To: joe@example.org\n"))
        #expect(text.hasSuffix("Subject: real\n\nreal body\n"))
        if geteuid() == 0 { #expect(QueueTest.owner(file)?.0 == QueueTest.nobody) }
    }

    /// Not root: no identity change, qmail-local runs as the spawner's own user (posix_spawn).
    @Test(.enabled(if: geteuid() == 0 && access("/usr/bin/setpriv", X_OK) == 0))
    func unprivilegedSpawnerDeliversAsItself() throws {
        let f = SpawnFixture()
        _ = f.withLocalStub()
        let id = f.message(909)
        chown(f.box.at("queue/mess/\(id)"), QueueTest.nobody, QueueTest.nogroup)
        var env = f.environment
        env["QMAILQ_USER"] = "nobody"
        let argv = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                    Path.join(f.bin, "qmail-lspawn"), "./Maildir/"]
        let p = try #require(SpawnerProcess(argv, environment: env))
        #expect(p.handshake() == 500)
        p.send(SpawnerProcess.command(slot: 2, id: id, recipient: "ok@example.org"))
        #expect(p.next() == SpawnReport(slot: 2, text: "Kdid 1+0+0\n"))
        // users/cdb names root here, but without privileges nothing changes identity.
        p.send(SpawnerProcess.command(slot: 3, id: id, recipient: "rootuser@example.org"))
        #expect(p.next() == SpawnReport(slot: 3, text: "Kdefault\n"))
        #expect(f.read("dump/ok.uid") == "65534\n")
        #expect(f.read("dump/rootuser.uid") == "65534\n")
        #expect(p.finish() == .exited(0))
    }

    @Test func usageAndStartupFailures() throws {
        let f = SpawnFixture()
        let noArg = run([Path.join(f.bin, "qmail-lspawn")], environment: f.environment, inheritEnvironment: false)
        #expect(noArg.exitCode == 100)
        var env = f.environment
        env["QUEUEDIR"] = f.box.at("nowhere")
        let noQueue = run([Path.join(f.bin, "qmail-lspawn"), "./Maildir/"], environment: env, inheritEnvironment: false)
        #expect(noQueue.exitCode == 111)
        #expect(noQueue.stdout.isEmpty)
    }
}
