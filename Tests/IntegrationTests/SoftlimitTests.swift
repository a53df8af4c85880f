// softlimit against daemontools' softlimit: the limits the child sees, "=", and errors;
// plus the indimail -q and -1 extensions.
import Core
import Glibc
import Testing

@Suite struct SoftlimitTests {
    static let djb = "/usr/bin/softlimit"
    var ours: [String] { [Build.indimail, "softlimit"] }

    /// /proc/self/limits of a child started through `prefix`, from a shell that first
    /// applies `setup` (ulimit commands).
    func limits(_ prefix: [String], setup: String = ":") -> Outcome {
        run(["/bin/sh", "-c", setup + "; exec \"$@\"", "sh"] + prefix + ["/bin/cat", "/proc/self/limits"])
    }

    /// The soft and hard fields of one line of /proc/self/limits.
    func pair(_ text: String, _ label: String) -> (String, String)? {
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(label) }) else { return nil }
        let fields = line.dropFirst(label.count).split(separator: " ")
        guard fields.count >= 2 else { return nil }
        return (String(fields[0]), String(fields[1]))
    }

    @Test func everyCommonFlagMatchesDaemontools() throws {
        let djb = try #require(peer(Self.djb), "daemontools softlimit missing: run scripts/deps --test")
        let flagSets: [[String]] = [
            ["-m", "200000000"],
            ["-a", "300000000", "-d", "100000000", "-s", "2000000", "-l", "65536"],
            ["-o", "50", "-p", "300", "-f", "1000000", "-c", "0", "-r", "5000000", "-t", "100"],
            ["-o", "99999999999"],  // above the hard limit: capped to it
            ["-c", "=", "-o", "="],
        ]
        for flags in flagSets {
            let setup = "ulimit -S -n 64; ulimit -S -c 0"
            let mine = limits(ours + flags, setup: setup)
            let theirs = limits([djb] + flags, setup: setup)
            #expect(mine.exitCode == 0, "\(flags): \(mine.err)")
            #expect(theirs.exitCode == 0)
            #expect(mine.out == theirs.out, "\(flags)")
        }
        let m = limits(ours + ["-m", "200000000"]).out
        for label in ["Max data size", "Max stack size", "Max address space"] {
            #expect(pair(m, label)?.0 == "200000000", "\(label)")
        }
        let hardFiles = pair(limits([]).out, "Max open files")?.1
        #expect(pair(limits(ours + ["-o", "99999999999"]).out, "Max open files")?.0 == hardFiles)
        #expect(pair(limits(ours + ["-o", "="], setup: "ulimit -S -n 64").out, "Max open files")?.0 == hardFiles)
    }

    @Test func messageQueueAndMinusOneExtensions() {
        let q = limits(ours + ["-q", "4096"]).out
        #expect(pair(q, "Max msgqueue size")?.0 == "4096")
        // -1: soft and hard both unlimited. From an unlimited hard limit anyone may do it.
        if pair(limits([]).out, "Max core file size")?.1 == "unlimited" {
            let r = limits(ours + ["-c", "-1"], setup: "ulimit -S -c 1000")
            #expect(r.exitCode == 0)
            #expect(pair(r.out, "Max core file size").map { [$0.0, $0.1] } == ["unlimited", "unlimited"])
        }
        // Raising a lowered hard limit needs CAP_SYS_RESOURCE, which root in a container
        // may lack: expect whatever the shell's own ulimit gets.
        let canRaise = run(["/bin/sh", "-c", "ulimit -H -c 1000; ulimit -H -c unlimited"]).exitCode == 0
        let raised = limits(ours + ["-c", "-1"], setup: "ulimit -H -c 1000")
        #expect(raised.exitCode == (canRaise ? 0 : 111))
        if canRaise {
            #expect(pair(raised.out, "Max core file size").map { [$0.0, $0.1] } == ["unlimited", "unlimited"])
        }
        // Without the privilege to raise a hard limit it is a temporary failure.
        let denied = run(["/bin/sh", "-c", "ulimit -H -c 1000; exec \"$@\"", "sh", "/usr/bin/setuidgid", "nobody"]
                         + ours + ["-c", "-1", "/bin/true"])
        #expect(denied.exitCode == 111)
        #expect(denied.err == "softlimit: fatal: setrlimit failed for RLIMIT_CORE: Operation not permitted\n")
    }

    @Test func badArgumentsAreUsageErrors() throws {
        let djb = try #require(peer(Self.djb))
        for flags in [["-o", "abc"], ["-m", "12k"], ["-x", "5"], ["-o"]] {
            let mine = run(ours + flags + ["/bin/true"])
            let theirs = run([djb] + flags + ["/bin/true"])
            #expect(mine.exitCode == 100, "\(flags)")
            #expect(theirs.exitCode == 100, "\(flags)")
            #expect(mine.err.contains("usage: softlimit"))
        }
        // Accepted by the reference as odd values (0, or the hard limit); refused here.
        for value in ["", "-", "+", "-5", "-0", " 5"] {
            let r = run(ours + ["-o", value, "/bin/true"])
            #expect(r.exitCode == 100, "value '\(value)'")
        }
        #expect(run(ours + ["-o", "5"]).exitCode == 100)
        #expect(run([djb, "-o", "5"]).exitCode == 100)
    }

    @Test func childFailures() throws {
        let djb = try #require(peer(Self.djb))
        let mine = run(ours + ["-o", "40", "/no/such/program"])
        #expect(mine.exitCode == 111)
        #expect(run([djb, "-o", "40", "/no/such/program"]).exitCode == 111)
        #expect(mine.err == "softlimit: fatal: unable to run /no/such/program: No such file or directory\n")
        // The child's own exit code passes through (softlimit execs it).
        #expect(run(ours + ["-t", "100", "/bin/sh", "-c", "exit 42"]).exitCode == 42)
    }
}
