// waitfor: blocks until a process (ours or not) exits; bad pids and usage errors.
import Core
import Glibc
import Testing

@Suite struct WaitforTests {
    var ours: [String] { [Build.indimail, "waitfor"] }

    @Test func returnsWhenTheProcessExits() throws {
        let target = try #require(BackgroundChild(["/bin/sleep", "1"]))
        let start = monotonicSeconds()
        let r = run(ours + ["-v", String(target.pid)], timeout: 15)
        #expect(r.exitCode == 0)
        #expect(r.out == "PID \(target.pid) terminated!\n")
        #expect(monotonicSeconds() - start > 0.5)
        #expect(target.waitExit(within: 5) == .exited(0))
        // Quiet without -v.
        let again = try #require(BackgroundChild(["/bin/sleep", "0.2"]))
        let quiet = run(ours + [String(again.pid)], timeout: 15)
        #expect(quiet.exitCode == 0)
        #expect(quiet.out.isEmpty && quiet.err.isEmpty)
    }

    @Test func waitsForAnUnrelatedProcess() throws {
        // A grandchild orphaned by its shell: not our child, so only waitfor can wait for it.
        let r = run(["/bin/sh", "-c", "sleep 1 >/dev/null 2>&1 & echo $!"])
        let pid = try #require(pid_t(r.out.dropLast()))
        #expect(kill(pid, 0) == 0)
        let w = run(ours + ["-v", String(pid)], timeout: 15)
        #expect(w.exitCode == 0)
        #expect(w.out == "PID \(pid) terminated!\n")
        #expect(eventually(within: 5) { kill(pid, 0) != 0 })
    }

    @Test func missingProcessIsATemporaryError() {
        // Above pid_max: no such process can exist.
        let r = run(ours + ["2147483647"])
        #expect(r.exitCode == 111)
        #expect(r.err.hasPrefix("waitfor: fatal: unable to open pid 2147483647: "))
    }

    @Test func usageErrors() {
        for args in [[], ["-v"], ["abc"], ["0"], ["-5"], ["12x"], ["99999999999"], ["1", "2"], ["-q", "1"]] {
            let r = run(ours + args)
            #expect(r.exitCode == 100, "\(args)")
            #expect(r.err.contains("usage: waitfor [-v] pid"), "\(args)")
        }
    }
}
