// queue-fix: builds the reference layout, repairs damage, says what it did, and is
// idempotent.
import Core
import Glibc
import Testing

@Suite("queue-fix", .serialized)
struct QueueFixTests {
    /// The reference's table (queue-fix.c check_dirs), for split 3 and small todo.
    static let expected: [(String, mode_t)] = {
        var list: [(String, mode_t)] = [("", 0o750)]
        for (name, mode) in [("info", mode_t(0o700)), ("mess", 0o750), ("remote", 0o700), ("local", 0o700)] {
            list.append((name, mode))
            for n in 0..<3 { list.append(("\(name)/\(n)", mode)) }
        }
        list += [("todo", 0o750), ("intd", 0o700), ("bounce", 0o700), ("pid", 0o700), ("lock", 0o750),
                 ("lock/sendmutex", 0o600), ("lock/tcpto", 0o644), ("lock/trigger", 0o622)]
        return list
    }()

    @Test("creates the reference layout: modes, owners, tcpto size, trigger FIFO; a second run says nothing")
    func creates() {
        let sandbox = Sandbox()
        let q = sandbox.at("queue")
        let first = QueueTest.queueFix(["-s", "3", "-b", "0", q])
        #expect(first.exitCode == 0, "\(first.err)")
        #expect(first.out.contains("queue-fix: created directory \(q)/mess/2 mode 0750"))
        for (path, mode) in QueueFixTests.expected {
            let full = path.isEmpty ? q : q + "/" + path
            #expect(QueueTest.mode(full) == mode, "\(path)")
            let owner = QueueTest.owner(full)
            #expect(owner?.0 == QueueTest.nobody && owner?.1 == QueueTest.nogroup, "\(path)")
        }
        #expect(!Path.exists(q + "/mess/3") && !Path.exists(q + "/todo/0") && !Path.exists(q + "/trash"))
        #expect(Path.status(q + "/lock/tcpto")?.st_size == 2048)
        #expect((Path.status(q + "/lock/trigger", followLinks: false)?.st_mode ?? 0) & S_IFMT == S_IFIFO)
        let second = QueueTest.queueFix(["-s", "3", "-b", "0", q])
        #expect(second.exitCode == 0 && second.out.isEmpty && second.err.isEmpty, "\(second.out)\(second.err)")
        // Big todo, trash and ratelimit.
        let big = sandbox.at("big")
        #expect(QueueTest.queueFix(["-s", "2", "-b", "1", "-t", "-r", big]).exitCode == 0)
        for path in ["todo/0", "todo/1", "intd/0", "intd/1"] { #expect(Path.isDirectory(big + "/" + path)) }
        #expect(QueueTest.mode(big + "/intd/1") == 0o700 && QueueTest.mode(big + "/todo/1") == 0o750)
        #expect(QueueTest.mode(big + "/trash") == 0o700 && QueueTest.mode(big + "/ratelimit") == 0o750)
    }

    @Test("repairs a damaged queue, reports each fix, then finds nothing")
    func repairs() {
        let sandbox = Sandbox()
        let q = QueueTest.makeQueue(sandbox)
        chmod(q + "/mess", 0o777)
        chown(q + "/todo", 0, 0)
        unlink(q + "/lock/trigger")
        rmdir(q + "/info/2")
        sandbox.write("queue/info/1/12345", "Fx\0", mode: 0o644)       // stray: no message
        let misnamed = sandbox.write("queue/mess/1/999999", "body", mode: 0o644)  // not its inode
        let inode = UInt64(Path.status(misnamed)?.st_ino ?? 0)
        sandbox.write("queue/todo/999999", "u0\0p1\0Fa\0Tb\0", mode: 0o600)
        let dry = QueueTest.queueFix(["-N", "-s", "3", "-b", "0", q])
        #expect(dry.exitCode ?? 0 > 0 && dry.out.contains("would have"), "\(dry.out)")
        #expect(QueueTest.mode(q + "/mess") == 0o777)  // -N changes nothing

        let fix = QueueTest.queueFix(["-s", "3", "-b", "0", q])
        #expect(fix.exitCode == 0, "\(fix.err)")
        #expect(fix.out.contains("changed mode of \(q)/mess from 0777 to 0750"))
        #expect(fix.out.contains("changed owner of \(q)/todo from 0:0 to nobody:nogroup"))
        #expect(fix.out.contains("created fifo \(q)/lock/trigger"))
        #expect(fix.out.contains("created directory \(q)/info/2"))
        #expect(fix.out.contains("removed stray file \(q)/info/1/12345"))
        #expect(fix.out.contains("changed mode of \(q)/todo/999999 from 0600 to 0644"))
        #expect(QueueTest.mode(q + "/mess") == 0o750 && QueueTest.owner(q + "/todo")?.0 == QueueTest.nobody)
        #expect(!Path.exists(q + "/info/1/12345"))
        let right = "mess/\(inode % 3)/\(inode)"
        #expect(Path.exists(q + "/" + right) && !Path.exists(misnamed), "\(fix.out)")
        #expect(Path.exists(q + "/todo/\(inode)"))
        let again = QueueTest.queueFix(["-s", "3", "-b", "0", q])
        #expect(again.exitCode == 0 && again.out.isEmpty, "\(again.out)")
    }

    @Test("refuses what it cannot fix, and missing accounts, with 111 and a clear message")
    func refuses() {
        let sandbox = Sandbox()
        let q = QueueTest.makeQueue(sandbox)
        rmdir(q + "/bounce")
        sandbox.write("queue/bounce", "not a dir")
        let r = QueueTest.queueFix(["-s", "3", "-b", "0", q])
        #expect(r.exitCode == 111 && r.err.contains("queue-fix: fatal: \(q)/bounce is not a directory"), "\(r.err)")
        var env = QueueTest.accounts
        env["QMAILQ_USER"] = "no-such-qmailq"
        let missing = QueueTest.queueFix([sandbox.at("other")], environment: env)
        #expect(missing.exitCode == 111 && missing.err.contains("no-such-qmailq") && missing.err.contains("QMAILQ_USER"),
                "\(missing.err)")
        #expect(!Path.exists(sandbox.at("other")))
        #expect(QueueTest.queueFix([]).exitCode == 100)
        #expect(QueueTest.queueFix(["-i", q]).exitCode == 100)
    }

    @Test("unprivileged: creates and repairs modes only, no accounts needed")
    func unprivileged() {
        let sandbox = Sandbox()
        chmod(sandbox.path, 0o755)
        let home = sandbox.directory("home")
        chown(home, QueueTest.nobody, QueueTest.nogroup)
        let binary = QueueTest.copy(Build.indimail, to: sandbox, name: "indimail")
        let q = home + "/q"
        func fix() -> Outcome {
            run(["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                 binary, "queue-fix", "-s", "2", "-b", "0", q], environment: ["QMAILQ_USER": "no-such-user"])
        }
        let made = fix()
        #expect(made.exitCode == 0, "\(made.err)")
        #expect(QueueTest.mode(q + "/intd") == 0o700 && QueueTest.mode(q + "/lock/trigger") == 0o622)
        #expect(QueueTest.owner(q + "/mess/1")?.0 == QueueTest.nobody)
        chmod(q + "/info/1", 0o755)
        let repaired = fix()
        #expect(repaired.out == "queue-fix: changed mode of \(q)/info/1 from 0755 to 0700\n", "\(repaired.out)")
        #expect(fix().out.isEmpty)
    }
}
