// Our clients against our supervise: svc waits (-w, -W, -R readiness), svstat lines and
// JSON, svok, on real processes.
import Core
import Glibc
import Supervise
import Testing

@Suite struct SupervisionEndToEndTests {
    let env = ["DISABLE_RUN": "1"]

    @Test func svcWaitsForUpDownAndReady() throws {
        let box = Sandbox()
        makeService(box, "s1", run: "#!/bin/sh\nsleep 0.5\necho >&4\nexec sleep 1000\n")
        box.write("s1/notification-fd", "4\n")
        box.write("s1/down", "")
        let sv = try #require(SupervisedService(box, "s1"))
        #expect(eventually(within: 5) { sv.isRunning })

        let start = monotonicSeconds()
        let ready = run([Build.indimail, "svc", "-u", "-R", "-T", "10", "s1"], environment: env, directory: box.path)
        #expect(ready.exitCode == 0, "\(ready.err)")
        #expect(monotonicSeconds() - start >= 0.4)  // waited for the newline, not just the start
        let line = run([Build.indimail, "svstat", "s1"], environment: env, directory: box.path)
        #expect(line.exitCode == 0)
        #expect(line.out.hasPrefix("s1: up "))
        #expect(line.out.contains(" ready "))
        #expect(line.out.contains("normally down"))

        let json = run([Build.indimail, "svstat", "--json", "s1"], environment: env, directory: box.path)
        #expect(json.out.contains("\"state\":\"up\""))
        #expect(json.out.contains("\"ready\":true"))

        let down = run([Build.indimail, "svc", "-d", "-W", "-T", "5", "s1"], environment: env, directory: box.path)
        #expect(down.exitCode == 0)
        #expect(eventually(within: 5) { sv.status?.running == false })
        let after = run([Build.indimail, "svstat", "s1"], environment: env, directory: box.path)
        #expect(after.exitCode == 1)
        #expect(after.out.hasPrefix("s1: down "))
        #expect(after.out.contains("spid \(sv.pid)"))
    }

    @Test func svcRestartAndExitWithSvok() throws {
        let box = Sandbox()
        makeService(box, "s1")
        let sv = try #require(SupervisedService(box, "s1"))
        let up = try #require(sv.waitUntilUp())
        #expect(run([Build.indimail, "svok", "s1"], environment: env, directory: box.path).exitCode == 0)
        #expect(run([Build.indimail, "svc", "-r", "-w", "-T", "5", "s1"], environment: env, directory: box.path).exitCode == 0)
        #expect(eventually(within: 5) { sv.status.map { $0.running && $0.pid != up.pid } ?? false })
        #expect(run([Build.indimail, "svc", "-dx", "s1"], environment: env, directory: box.path).exitCode == 0)
        #expect(sv.exited(within: 5) == .exited(0))
        #expect(run([Build.indimail, "svok", "s1"], environment: env, directory: box.path).exitCode == 100)
        let gone = run([Build.indimail, "svstat", "s1"], environment: env, directory: box.path)
        #expect(gone.exitCode == 2)
        #expect(gone.err.contains("supervise not running") || gone.out.contains("supervise not running"))
    }
}
