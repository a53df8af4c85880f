// fghack against daemontools' fghack: waiting for a backgrounded grandchild through the
// pipe, the child's exit code, the descriptors the child gets.
import Core
import Glibc
import Testing

@Suite struct FghackTests {
    static let djb = "/usr/bin/fghack"
    var ours: [String] { [Build.indimail, "fghack"] }

    @Test func waitsForADoubleForkedGrandchild() throws {
        let djb = try #require(peer(Self.djb), "daemontools fghack missing: run scripts/deps --test")
        // The daemon "backgrounds": its child keeps running (holding the pipe copies but not
        // our stdout/stderr), the daemon itself exits 7 at once.
        let box = Sandbox()
        let script = "( exec >/dev/null 2>&1; sleep 1; echo done > \"$0\" ) & exit 7"
        for fghack in [ours, [djb]] {
            let marker = box.at("marker-\(fghack.count)")
            let start = monotonicSeconds()
            let r = run(fghack + ["/bin/sh", "-c", script, marker], timeout: 15)
            let elapsed = monotonicSeconds() - start
            #expect(r.exitCode == 7, "\(fghack)")
            #expect(elapsed > 0.7, "\(fghack) returned before the grandchild closed the pipe")
            #expect(Path.exists(marker), "\(fghack)")
        }
        // Without fghack the same daemon returns at once.
        let start = monotonicSeconds()
        #expect(run(["/bin/sh", "-c", script, box.at("plain")], timeout: 15).exitCode == 7)
        #expect(monotonicSeconds() - start < 0.7)
    }

    @Test func childGetsThePipeCopiesLikeDaemontools() throws {
        let djb = try #require(peer(Self.djb))
        // How many of the child's descriptors lead to the most shared pipe, and whether
        // descriptor 0 is one of them once fghack was started with stdin closed.
        let count = "for f in /proc/$$/fd/*; do readlink $f; done | sort | uniq -c | sort -rn | head -1 | awk '{print $1}'"
        let mine = run(ours + ["/bin/sh", "-c", count])
        let theirs = run([djb, "/bin/sh", "-c", count])
        #expect(mine.out == "31\n")
        #expect(mine.out == theirs.out)

        let zero = "[ \"$(readlink /proc/$$/fd/0)\" = \"$(readlink /proc/$$/fd/3)\" ] && echo pipe-on-0"
        let closed = { (fghack: [String]) in
            run(["/bin/sh", "-c", "exec <&-; exec \"$@\"", "sh"] + fghack + ["/bin/sh", "-c", zero]).out
        }
        #expect(closed(ours) == "pipe-on-0\n")
        #expect(closed(ours) == closed([djb]))
    }

    @Test func ignoredSignalsStayIgnored() throws {
        let djb = try #require(peer(Self.djb))
        let show = { (fghack: [String]) in
            run(["/bin/sh", "-c", "trap '' HUP USR1; exec \"$@\"", "sh"] + fghack
                + ["/bin/grep", "^SigIgn:", "/proc/self/status"]).out
        }
        let mine = show(ours)
        #expect(mine == show([djb]))
        // HUP is bit 0, USR1 bit 9 of the mask.
        let mask = UInt64(mine.split(separator: "\t").last?.dropLast() ?? "", radix: 16) ?? 0
        #expect(mask & 0x201 == 0x201)
    }

    @Test func exitCodesAndErrors() throws {
        let djb = try #require(peer(Self.djb))
        for script in ["exit 0", "exit 3", "kill -9 $$"] {
            let mine = run(ours + ["/bin/sh", "-c", script])
            let theirs = run([djb, "/bin/sh", "-c", script])
            #expect(mine.exitCode == theirs.exitCode, "\(script)")
        }
        let killed = run(ours + ["/bin/sh", "-c", "kill -9 $$"])
        #expect(killed.exitCode == 111)
        #expect(killed.err == "fghack: fatal: child killed by signal 9\n")
        #expect(run(ours).exitCode == 100)
        #expect(run([djb]).exitCode == 100)
        let missing = run(ours + ["/no/such/program"])
        #expect(missing.exitCode == 111)
        #expect(run([djb, "/no/such/program"]).exitCode == 111)
        #expect(missing.err == "fghack: fatal: unable to run /no/such/program: No such file or directory\n")
    }
}
