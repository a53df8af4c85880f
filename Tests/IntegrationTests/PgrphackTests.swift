// pgrphack against daemontools' pgrphack: the child leads a new session and process group.
import Core
import Glibc
import Testing

@Suite struct PgrphackTests {
    static let djb = "/usr/bin/pgrphack"
    /// pid, process group and session of the exec'd child itself, from /proc/self/stat.
    static let probe = ["/usr/bin/cut", "-d", " ", "-f", "1,5,6", "/proc/self/stat"]

    func ids(_ text: String) -> [Int] { text.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { Int($0) } }

    @Test func childLeadsANewSessionLikeDaemontools() throws {
        let djb = try #require(peer(Self.djb), "daemontools pgrphack missing: run scripts/deps --test")
        let mine = run([Build.indimail, "pgrphack"] + Self.probe)
        let theirs = run([djb] + Self.probe)
        #expect(mine.exitCode == 0)
        #expect(theirs.exitCode == 0)
        let m = ids(mine.out), t = ids(theirs.out)
        #expect(m.count == 3 && Set(m).count == 1, "pid, pgid and sid all equal: \(mine.out)")
        #expect(t.count == 3 && Set(t).count == 1)
        #expect(Int(getsid(0)) != m.first)
    }

    @Test func aGroupLeaderStillRunsItsChild() throws {
        // setsid fails for a process-group leader; the child runs anyway, where we are.
        let box = Sandbox()
        let output = box.at("ids")
        let child = try #require(BackgroundChild([Build.indimail, "pgrphack"] + Self.probe, output: output,
                                                 newProcessGroup: true))
        #expect(child.waitExit(within: 10) == .exited(0))
        let m = ids(String(decoding: contents(output) ?? [], as: UTF8.self))
        #expect(m.count == 3)
        #expect(m.first == Int(child.pid))
        #expect(m.dropFirst().first == Int(child.pid))  // its own group, from the spawn
        #expect(m.last == Int(getsid(0)))                // but still our session
    }

    @Test func errorsMatchDaemontools() throws {
        let djb = try #require(peer(Self.djb))
        #expect(run([Build.indimail, "pgrphack"]).exitCode == 100)
        #expect(run([djb]).exitCode == 100)
        let mine = run([Build.indimail, "pgrphack", "/no/such/program"])
        #expect(mine.exitCode == 111)
        #expect(run([djb, "/no/such/program"]).exitCode == 111)
        #expect(mine.err == "pgrphack: fatal: unable to run /no/such/program: No such file or directory\n")
        #expect(run([Build.indimail, "pgrphack", "/bin/sh", "-c", "exit 9"]).exitCode == 9)
    }
}
