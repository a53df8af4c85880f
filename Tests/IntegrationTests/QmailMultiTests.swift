// qmail-multi in front of a recording qmail-queue stand-in and of the real qmail-queue:
// queue choice, FILTERARGS and its exit codes, QUEUEPROG, MIN_FREE.
import Core
import Glibc
import Testing

@Suite struct QmailMultiTests {
    final class Setup {
        let box = Sandbox()
        let multi: String
        let queueStub: String
        let dump: String

        init() {
            chmod(box.path, 0o755)
            multi = Path.join(box.commandLinks(["qmail-multi"]), "qmail-multi")
            dump = box.directory("dump")
            queueStub = box.write("stub/qmail-queue", """
            #!/bin/sh
            cat > "$DUMP/message"
            cat <&1 > "$DUMP/envelope"
            printf '%s\\n' "$0" "$@" > "$DUMP/argv"
            env > "$DUMP/env"
            exit 0

            """, mode: 0o755)
        }

        /// Runs `argv` with `message` on fd 0 and an envelope file on fd 1 (as injectors do).
        func inject(_ argv: [String], message: String, environment: [String: String]) -> Outcome {
            let envelope = box.write("envelope", Array("Fa@b.c\0Tx@y.z\0\0".utf8))
            var env = ["DUMP": dump, "PATH": "/usr/bin:/bin", "QUEUE_BASE": box.at("base"), "SYSCONFDIR": box.at("etc")]
            for (k, v) in environment { env[k] = v }
            return run(["/bin/sh", "-c", "exec \"$@\" 1<\"$0\"", envelope] + argv, stdin: Array(message.utf8),
                       environment: env, inheritEnvironment: false)
        }

        func read(_ name: String) -> String? {
            guard case .success(let b) = FD.readFile(Path.join(dump, name)) else { return nil }
            return String(decoding: b, as: UTF8.self)
        }
    }

    @Test func picksAQueueAndHandsTheMessageOn() {
        let s = Setup()
        let r = s.inject([s.multi, s.queueStub], message: "Subject: hi\n\nbody\n",
                         environment: ["QUEUE_START": "4", "QUEUE_COUNT": "1"])
        #expect(r.exitCode == 0, "\(r.err)")
        #expect(s.read("message") == "Subject: hi\n\nbody\n")
        #expect(s.read("envelope") == "Fa@b.c\0Tx@y.z\0\0")
        #expect(s.read("argv") == "\(s.queueStub)\n\(s.box.at("base"))/queue4\n")
        #expect(s.read("env")?.contains("QUEUEDIR=\(s.box.at("base"))/queue4\n") == true)

        // An explicit QUEUEDIR is kept.
        let fixed = s.inject([s.multi, s.queueStub], message: "x\n", environment: ["QUEUEDIR": "/some/queue"])
        #expect(fixed.exitCode == 0)
        #expect(s.read("argv") == "\(s.queueStub)\n/some/queue\n")
    }

    @Test func filterOutputIsWhatGetsQueued() {
        let s = Setup()
        let r = s.inject([s.multi, s.queueStub], message: "Subject: hi\n\nbody\n",
                         environment: ["FILTERARGS": "env > \"$DUMP/filterenv\"; tr a-z A-Z", "QUEUE_COUNT": "1"])
        #expect(r.exitCode == 0, "\(r.err)")
        #expect(s.read("message") == "SUBJECT: HI\n\nBODY\n")
        // The filter does not see FILTERARGS (no loop if it injects mail itself).
        #expect(s.read("filterenv")?.contains("FILTERARGS") == false)
    }

    @Test func filterExitCodes() {
        let s = Setup()
        let cases: [(String, Int32)] = [("exit 100", 31), ("exit 31", 31), ("cat >/dev/null; exit 2", 0), ("exit 99", 0),
                                        ("exit 5", 71), ("kill -SEGV $$", 123)]
        for (filter, code) in cases {
            unlink(Path.join(s.dump, "message"))
            let r = s.inject([s.multi, s.queueStub], message: "m\n", environment: ["FILTERARGS": filter, "QUEUE_COUNT": "1"])
            #expect(r.exitCode == code, "\(filter)")
            #expect(s.read("message") == nil, "\(filter) must not queue")
        }
        let custom = s.inject([s.multi, s.queueStub], message: "m\n",
                              environment: ["FILTERARGS": "echo 'Dno thanks' >&2; exit 88", "QUEUE_COUNT": "1"])
        #expect(custom.exitCode == 88)
        #expect(custom.err == "Dno thanks\n")
    }

    @Test func queueProgQueueChoiceAndFailures() {
        let s = Setup()
        let other = s.box.write("stub/other-queue", "#!/bin/sh\nprintf '%s\\n' \"$0\" \"$@\" > \"$DUMP/argv\"\nenv > \"$DUMP/env\"\ncat >/dev/null\n", mode: 0o755)
        let r = s.inject([s.multi], message: "m\n", environment: ["QUEUEPROG": other])
        #expect(r.exitCode == 0, "\(r.err)")
        #expect(s.read("argv") == "\(other)\n")
        #expect(s.read("env")?.contains("QUEUEDIR=") == false)
        #expect(s.read("env")?.contains("QUEUEPROG=") == false)

        let full = s.inject([s.multi, s.queueStub], message: "m\n",
                            environment: ["QUEUEDIR": "/", "MIN_FREE": "999999999999999999"])
        #expect(full.exitCode == 53)
        let missing = s.inject([s.multi, s.box.at("stub/none/qmail-queue")], message: "m\n", environment: ["QUEUE_COUNT": "1"])
        #expect(missing.exitCode == 120)
    }

    @Test func realQmailQueueBehindQmailMulti() {
        let s = Setup()
        let base = s.box.directory("base")
        chmod(base, 0o755)
        let q = Path.join(base, "queue1")
        _ = QueueTest.queueFix(["-s", "3", "-b", "0", q])
        var env = QueueTest.accounts
        env["QUEUE_START"] = "1"
        env["QUEUE_COUNT"] = "1"
        env["CONFSPLIT"] = "3"
        env["BIGTODO"] = "0"
        env["FILTERARGS"] = "sed s/secret/public/"
        let r = s.inject([s.multi, Build.qmailQueue], message: "Subject: secret\n\nsecret body\n", environment: env)
        #expect(r.exitCode == 0, "\(r.err)")
        let mess = QueueTest.files(q).filter { $0.hasPrefix("mess/") }
        #expect(mess.count == 1)
        let stored = mess.first.flatMap { try? FD.readFile(Path.join(q, $0)).get() }.map { String(decoding: $0, as: UTF8.self) } ?? ""
        #expect(stored.hasSuffix("Subject: public\n\npublic body\n"))
    }
}
