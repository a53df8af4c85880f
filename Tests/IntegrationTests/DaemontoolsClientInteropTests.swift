// Our svc, svstat and svok driving and reading Debian daemontools' supervise: djb's control
// letters, its 18-byte status file, its ok FIFO. Debian's svstat checks what ours reports.
import Core
import Glibc
import Testing

@Suite struct DaemontoolsClientInteropTests {
    static let supervise = "/usr/bin/supervise"
    static let djbSvstat = "/usr/bin/svstat"

    /// Debian's supervise on a fresh service running `sleep 100`; stopped with `svc -dx` and
    /// reaped (killed after a deadline) when the value goes away.
    final class DjbService {
        let box = Sandbox()
        let dir: String
        let pid: pid_t
        var reaped: WaitStatus?

        init?(supervise: String) {
            box.write("s/run", "#!/bin/sh\nexec sleep 100\n", mode: 0o755)
            dir = box.at("s")
            guard case .success(let pid) = Spawn.start([supervise, dir].map { Array($0.utf8) },
                                                       environment: Environment.current()) else { return nil }
            self.pid = pid
        }

        deinit {
            if reaped == nil {
                _ = run([Build.indimail, "svc", "-dx", dir], environment: ["DISABLE_RUN": "1"])
                _ = waitWithDeadline(pid, seconds: 5)
            }
        }

        /// Our command, with the run-state directory disabled.
        func ours(_ argv: String...) -> Outcome {
            run([Build.indimail] + argv, environment: ["DISABLE_RUN": "1", "SVSCAN_RUNDIR": box.at("no-run")])
        }

        /// Debian's svstat line: "<dir>: up (pid N) S seconds[, flags]".
        func theirs() -> String { run([DaemontoolsClientInteropTests.djbSvstat, dir]).out }

        func theirPid() -> Int32? {
            let line = theirs()
            guard let start = line.firstRange(of: "(pid ")?.upperBound,
                  let end = line[start...].firstIndex(of: ")") else { return nil }
            return Int32(line[start..<end])
        }
    }

    /// Polls `condition` every 20 ms until it holds or `seconds` pass.
    func eventually(_ seconds: Double = 5, _ condition: () -> Bool) -> Bool {
        let deadline = monotonicSeconds() + seconds
        while monotonicSeconds() < deadline {
            if condition() { return true }
            usleep(20_000)
        }
        return condition()
    }

    @Test func drivesAndReadsDebianSupervise() throws {
        let supervise = try #require(peer(Self.supervise), "daemontools missing: run scripts/deps --test")
        _ = try #require(peer(Self.djbSvstat))
        let service = try #require(DjbService(supervise: supervise))
        let dir = service.dir

        #expect(eventually { service.ours("svok", dir).exitCode == 0 })
        #expect(eventually { service.theirPid() != nil })
        let first = try #require(service.theirPid())
        let up = service.ours("svstat", dir)
        #expect(up.exitCode == 0)
        #expect(normalized(up.out) == "\(dir): up T seconds  pid \(first) \n")

        // Debian's supervise has no up FIFO: a wait for up fails at once.
        let wait = service.ours("svc", "-w", "-T", "2", dir)
        #expect(wait.exitCode == 1)
        #expect(wait.err.hasPrefix("waiting for \(dir) to be up ... failed\n"))

        #expect(service.ours("svc", "-p", dir).exitCode == 0)
        #expect(eventually { service.theirs().contains(", paused") })
        // Compared with the pid Debian's svstat shows now: the checks must not depend on
        // the service never having been restarted by something outside the test.
        let pausedPid = try #require(service.theirPid())
        let paused = service.ours("svstat", dir)
        #expect(paused.exitCode == 3)
        #expect(normalized(paused.out) == "\(dir): up T seconds, paused  pid \(pausedPid) \n")
        #expect(service.ours("svc", "-c", dir).exitCode == 0)
        #expect(eventually { !service.theirs().contains("paused") })

        #expect(service.ours("svc", "-d", dir).exitCode == 0)
        #expect(eventually { service.theirs().contains(": down ") })
        let down = service.ours("svstat", dir)
        #expect(down.exitCode == 1)
        #expect(normalized(down.out) == "\(dir): down T seconds, normally up\n")

        #expect(service.ours("svc", "-u", dir).exitCode == 0)
        #expect(eventually { (service.theirPid() ?? pausedPid) != pausedPid })
        let second = try #require(service.theirPid())
        #expect(normalized(service.ours("svstat", dir).out) == "\(dir): up T seconds  pid \(second) \n")

        // KILL: supervise restarts the service under a new pid.
        #expect(service.ours("svc", "-k", dir).exitCode == 0)
        #expect(eventually { (service.theirPid() ?? second) != second })
        let third = try #require(service.theirPid())
        #expect(service.ours("svstat", dir).out.contains("  pid \(third) "))

        #expect(service.ours("svc", "-dx", dir).exitCode == 0)
        let status = waitWithDeadline(service.pid, seconds: 5)
        service.reaped = status
        #expect(status == .exited(0))
        #expect(service.ours("svok", dir).exitCode == 100)
        #expect(service.ours("svstat", dir).exitCode == 2)
        #expect(service.ours("svc", "-u", dir).exitCode == 2)
    }
}
