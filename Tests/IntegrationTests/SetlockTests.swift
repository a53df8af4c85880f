// setlock against daemontools' setlock: the lock the child holds, contention with -n/-N,
// the silent -x and the default -X.
import Core
import Glibc
import Testing

@Suite struct SetlockTests {
    static let djb = "/usr/bin/setlock"
    var ours: [String] { [Build.indimail, "setlock"] }

    /// True when another process holds an flock on `path` (we try, and let go at once).
    func isLocked(_ path: String) -> Bool {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        switch FileLock.exclusive(fd, wait: false) {
        case .success: FileLock.unlock(fd); return false
        case .failure(let e): return e.errno == EWOULDBLOCK
        }
    }

    /// A holder of the lock on `path` (daemontools' setlock running sleep), once it holds it.
    func holder(_ path: String, seconds: String = "30") -> BackgroundChild? {
        guard let djb = peer(Self.djb), let child = BackgroundChild([djb, path, "/bin/sleep", seconds]) else { return nil }
        return eventually({ isLocked(path) }) ? child : nil
    }

    @Test func childHoldsTheLockOnAFreshFile() throws {
        let box = Sandbox()
        let file = box.at("lock")
        // The child sees the file open on an inherited descriptor, and the lock is held.
        let script = "ls -l /proc/$$/fd | grep -c \(file); [ \"$(stat -c %a \(file))\" = 600 ] && echo mode-ok"
        let r = run(ours + [file, "/bin/sh", "-c", script])
        #expect(r.exitCode == 0)
        #expect(r.out == "1\nmode-ok\n")
        let held = run(ours + [file, "/bin/sh", "-c", "exec \(Build.indimail) setlock -n \(file) /bin/true"])
        #expect(held.exitCode == 111)
        #expect(held.err == "setlock: fatal: unable to lock \(file): Resource temporarily unavailable\n")
        // Released when the child exits.
        #expect(!isLocked(file))
        #expect(run(ours + ["-n", file, "/bin/true"]).exitCode == 0)
    }

    @Test func contentionMatchesDaemontools() throws {
        let djb = try #require(peer(Self.djb), "daemontools setlock missing: run scripts/deps --test")
        let box = Sandbox()
        let file = box.at("lock")
        let lockHolder = try #require(holder(file))

        for (flags, code, silent) in [(["-n"], Int32(111), false), (["-nx"], 0, true), (["-n", "-x"], 0, true),
                                      (["-x", "-n", "-X"], 111, false), (["-N", "-n"], 111, false)] {
            let start = monotonicSeconds()
            let mine = run(ours + flags + [file, "/bin/echo", "ran"], timeout: 10)
            let theirs = run([djb] + flags + [file, "/bin/echo", "ran"], timeout: 10)
            #expect(monotonicSeconds() - start < 5, "\(flags) must not wait")
            #expect(mine.exitCode == code, "\(flags)")
            #expect(theirs.exitCode == code, "\(flags)")
            #expect(mine.out.isEmpty && theirs.out.isEmpty)
            #expect(mine.err.isEmpty == silent, "\(flags)")
        }
        #expect(lockHolder.isRunning)
    }

    @Test func defaultWaitsForTheLock() throws {
        let box = Sandbox()
        let file = box.at("lock")
        for flags in [[String](), ["-N"], ["-n", "-N"]] {
            let lockHolder = try #require(holder(file, seconds: "1"))
            let start = monotonicSeconds()
            let mine = run(ours + flags + [file, "/bin/echo", "got it"], timeout: 15)
            #expect(mine.exitCode == 0, "\(flags)")
            #expect(mine.out == "got it\n")
            #expect(monotonicSeconds() - start > 0.4, "\(flags) returned before the holder let go")
            #expect(lockHolder.waitExit(within: 5) == .exited(0))
        }
    }

    @Test func openFailures() throws {
        let djb = try #require(peer(Self.djb))
        let missing = "/nonexistent-imt/lock"
        let mine = run(ours + [missing, "/bin/true"])
        #expect(mine.exitCode == 111)
        #expect(run([djb, missing, "/bin/true"]).exitCode == 111)
        #expect(mine.err == "setlock: fatal: unable to open \(missing): No such file or directory\n")
        let quiet = run(ours + ["-x", missing, "/bin/true"])
        #expect(quiet.exitCode == 0)
        #expect(quiet.err.isEmpty)
        #expect(run([djb, "-x", missing, "/bin/true"]).exitCode == 0)
    }

    @Test func usageAndExecErrors() throws {
        let djb = try #require(peer(Self.djb))
        let box = Sandbox()
        for args in [[], [box.at("l")], ["-q", box.at("l"), "/bin/true"]] {
            #expect(run(ours + args).exitCode == 100, "\(args)")
            #expect(run([djb] + args).exitCode == 100, "\(args)")
        }
        // -x does not hide a child that cannot be run.
        let r = run(ours + ["-x", box.at("l"), "/no/such/program"])
        #expect(r.exitCode == 111)
        #expect(r.err == "setlock: fatal: unable to run /no/such/program: No such file or directory\n")
        #expect(run([djb, "-x", box.at("l"), "/no/such/program"]).exitCode == 111)
    }
}
