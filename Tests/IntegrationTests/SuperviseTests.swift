// supervise with real processes: lifecycle letters, helper scripts, dependencies, double
// forks, readiness, bad input, and Debian daemontools' svc/svok driving it.
import Core
import Glibc
import Supervise
import Testing

/// A service dir whose run script logs its arguments and pid, then sleeps.
@discardableResult
func makeService(_ box: Sandbox, _ name: String, run: String? = nil) -> String {
    let script = run ?? "#!/bin/sh\necho \"$$ $*\" >> ../\(name).runs\nexec sleep 1000\n"
    box.write("\(name)/run", script, mode: 0o755)
    return box.at(name)
}

@Suite struct SuperviseLifecycleTests {
    @Test func startsRunWithItsReasonAndWritesStatus() throws {
        let box = Sandbox()
        makeService(box, "s1")
        let sv = try #require(SupervisedService(box, "s1"))
        let status = try #require(sv.waitUntilUp())
        #expect(eventually { lines(box.at("s1.runs")).count == 1 })
        #expect(lines(box.at("s1.runs")) == ["\(status.pid) s1 auto startup"])
        #expect(status.want == .up)
        #expect(!status.paused)
        #expect(status.readiness == .notTracked)
        let raw = try FD.readFile(box.at("s1/supervise/status")).get()
        #expect(raw.count == ServiceStatus.encodedSize)
        #expect(raw[17] == UInt8(ascii: "u"))
        #expect(raw[20] == 1)
        // The pid field is the service's, little-endian, at offset 12.
        let pid = pid_t(raw[12]) | pid_t(raw[13]) << 8 | pid_t(raw[14]) << 16 | pid_t(raw[15]) << 24
        #expect(pid == status.pid)
        #expect(processExists(pid))
    }

    @Test func downUpRestartOnceAndExit() throws {
        let box = Sandbox()
        makeService(box, "s1")
        let sv = try #require(SupervisedService(box, "s1"))
        let first = try #require(sv.waitUntilUp())
        // Each run script logs its start before it sleeps: wait for that before stopping it.
        #expect(eventually { lines(box.at("s1.runs")).count == 1 })

        sv.control("d")
        #expect(eventually { sv.status?.running == false })
        #expect(sv.status?.want == .down)
        #expect(sv.status?.pid == sv.pid)  // indimail: supervise's own pid when down
        #expect(eventually { !processExists(first.pid) })

        sv.control("u")
        let second = try #require(sv.waitUntilUp())
        #expect(second.pid != first.pid)
        #expect(eventually { lines(box.at("s1.runs")).count == 2 })

        sv.control("r")
        #expect(eventually(within: 5) { (sv.status?.pid).map { $0 != second.pid && sv.status?.running == true } ?? false })
        #expect(eventually { lines(box.at("s1.runs")).last?.hasSuffix("s1 manual restart") == true })

        // Once: from down it starts now, and is not restarted when it ends.
        sv.control("d")
        #expect(eventually { sv.status?.running == false })
        sv.control("o")
        #expect(eventually { sv.status?.want == .once && sv.status?.running == true })
        let once = try #require(sv.status)
        #expect(eventually { lines(box.at("s1.runs")).count == 4 })
        kill(once.pid, SIGKILL)
        #expect(eventually { sv.status?.running == false })
        usleep(1_300_000)
        #expect(sv.status?.running == false)

        sv.control("x")
        #expect(sv.exited(within: 5) == .exited(0))
        let reasons = lines(box.at("s1.runs")).map { $0.split(separator: " ", maxSplits: 1)[1] }
        #expect(reasons == ["s1 auto startup", "s1 manual startup", "s1 manual restart", "s1 one-time startup"])
    }

    @Test func restartsAfterADeathWithBackOffAndAlert() throws {
        let box = Sandbox()
        makeService(box, "s1", run: "#!/bin/sh\necho \"$$ $*\" >> ../s1.runs\nexit 3\n")
        box.write("s1/alert", "#!/bin/sh\necho \"$*\" >> ../s1.alerts\n", mode: 0o755)
        let sv = try #require(SupervisedService(box, "s1"))
        // A service that dies at once is started at most once a second.
        usleep(3_500_000)
        let runs = lines(box.at("s1.runs"))
        #expect((3...5).contains(runs.count), "\(runs.count) starts in 3.5 s")
        #expect(runs.dropFirst().allSatisfy { $0.hasSuffix("s1 abnormal startup") })
        let alerts = lines(box.at("s1.alerts"))
        #expect(alerts.count >= 2)
        let firstPID = runs[0].split(separator: " ")[0]
        #expect(alerts.first == "s1 \(firstPID) 3 exited")
        #expect(sv.isRunning)
    }

    @Test func pauseContinueAndSignals() throws {
        let box = Sandbox()
        makeService(box, "s1", run: """
            #!/bin/sh
            trap 'echo HUP >> ../s1.signals' HUP
            trap 'echo USR1 >> ../s1.signals' USR1
            trap 'echo USR2 >> ../s1.signals' USR2
            trap 'echo ALRM >> ../s1.signals' ALRM
            while :; do sleep 0.05; done

            """)
        let sv = try #require(SupervisedService(box, "s1"))
        _ = try #require(sv.waitUntilUp())
        usleep(200_000)
        sv.control("h")
        #expect(eventually { lines(box.at("s1.signals")) == ["HUP"] })
        sv.control("U")
        #expect(eventually { lines(box.at("s1.signals")).count == 2 })
        sv.control("2")
        #expect(eventually { lines(box.at("s1.signals")).count == 3 })
        sv.control("a")
        #expect(eventually { lines(box.at("s1.signals")) == ["HUP", "USR1", "USR2", "ALRM"] })
        sv.control("p")
        #expect(eventually { sv.status?.paused == true })
        sv.control("c")
        #expect(eventually { sv.status?.paused == false })
    }

    @Test func shutdownScriptRunsBeforeTheStopSignal() throws {
        let box = Sandbox()
        makeService(box, "s1", run: "#!/bin/sh\ntrap 'echo TERM >> ../s1.events; exit 0' TERM\necho up >> ../s1.events\nwhile :; do sleep 0.05; done\n")
        box.write("s1/shutdown", "#!/bin/sh\necho \"shutdown $*\" >> ../s1.events\nsleep 0.3\n", mode: 0o755)
        let sv = try #require(SupervisedService(box, "s1"))
        let up = try #require(sv.waitUntilUp())
        #expect(eventually { lines(box.at("s1.events")) == ["up"] })
        sv.control("d")
        #expect(eventually { lines(box.at("s1.events")).count == 3 })
        #expect(lines(box.at("s1.events")) == ["up", "shutdown s1 \(up.pid)", "TERM"])
    }

    @Test func initRunsOnceBeforeTheFirstStart() throws {
        let box = Sandbox()
        makeService(box, "s1")
        box.write("s1/init", "#!/bin/sh\necho \"init $#\" >> ../s1.init\nsleep 0.3\n", mode: 0o755)
        let sv = try #require(SupervisedService(box, "s1"))
        _ = try #require(sv.waitUntilUp())
        #expect(lines(box.at("s1.init")) == ["init 0"])
        #expect(eventually { lines(box.at("s1.runs")).count == 1 })  // logged before it is killed
        sv.control("k")
        #expect(eventually { lines(box.at("s1.runs")).count == 2 })
        #expect(lines(box.at("s1.init")).count == 1)
    }

    @Test func downFileMeansStartDown() throws {
        let box = Sandbox()
        makeService(box, "s1")
        box.write("s1/down", "")
        let sv = try #require(SupervisedService(box, "s1"))
        #expect(eventually { sv.status != nil })
        usleep(300_000)
        #expect(sv.status?.running == false)
        #expect(sv.status?.want == .down)
        sv.control("u")
        #expect(sv.waitUntilUp() != nil)
    }

    @Test func waitsForItsDependency() throws {
        let box = Sandbox()
        makeService(box, "db", run: "#!/bin/sh\nexec sleep 1000\n")
        box.write("db/down", "")
        makeService(box, "app")
        box.write("app/wait", "1\ndb\n")
        let db = try #require(SupervisedService(box, "db"))
        let app = try #require(SupervisedService(box, "app"))
        #expect(eventually { app.status?.waitSeconds == -2 })
        #expect(app.status?.running == false)
        db.control("u")
        _ = try #require(db.waitUntilUp())
        #expect(eventually { app.status?.waitSeconds == 1 })  // delay after the dependency came up
        #expect(app.waitUntilUp(4) != nil)
        #expect(app.status?.waitSeconds == 0)
    }
}

@Suite struct SuperviseTrackingTests {
    /// Sticky bit on run: a daemon that double-forks stays "up" and dies with its group.
    @Test func followsADoubleForkingDaemon() throws {
        let box = Sandbox()
        makeService(box, "s1", run: "#!/bin/sh\nsleep 1000 &\necho $! > ../s1.daemon\nexit 0\n")
        chmod(box.at("s1/run"), 0o1755)
        let sv = try #require(SupervisedService(box, "s1"))
        #expect(eventually { lines(box.at("s1.daemon")).count == 1 })
        let daemon = try #require(pid_t(lines(box.at("s1.daemon"))[0]))
        usleep(500_000)
        #expect(sv.status?.running == true)  // the shell exited, its child lives on
        #expect(lines(box.at("s1.runs")).isEmpty)  // no restart loop
        sv.control("d")
        #expect(eventually { !processExists(daemon) })
        #expect(eventually { sv.status?.running == false })
    }

    @Test func notificationFDReadiness() throws {
        let box = Sandbox()
        makeService(box, "s1", run: "#!/bin/sh\nsleep 0.4\necho >&5\nexec sleep 1000\n")
        box.write("s1/notification-fd", "5\n")
        let sv = try #require(SupervisedService(box, "s1"))
        let up = try #require(sv.waitUntilUp())
        #expect(up.readiness == .pending)
        #expect(eventually { if case .ready = sv.status?.readiness { return true } else { return false } })
    }

    @Test func notifySocketReadiness() throws {
        let box = Sandbox()
        let sender = "import os, socket\na = os.environ['NOTIFY_SOCKET']\na = '\\0' + a[1:] if a.startswith('@') else a\ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\ns.sendto(b'STATUS=starting\\nREADY=1\\n', a)\n"
        box.write("notify.py", sender)
        makeService(box, "s1", run: "#!/bin/sh\nsleep 0.3\npython3 ../notify.py\nexec sleep 1000\n")
        box.write("s1/notify-socket", "")
        let sv = try #require(SupervisedService(box, "s1"))
        let up = try #require(sv.waitUntilUp())
        #expect(up.readiness == .pending)
        #expect(eventually { if case .ready = sv.status?.readiness { return true } else { return false } })

        // A process outside the service may not declare it ready.
        sv.control("k")
        #expect(eventually { sv.status?.readiness == .pending })
    }

    @Test func termStopsTheServiceAndExits() throws {
        let box = Sandbox()
        makeService(box, "s1", run: "#!/bin/sh\ntrap 'echo TERM >> ../s1.events; exit 0' TERM\nwhile :; do sleep 0.05; done\n")
        let sv = try #require(SupervisedService(box, "s1"))
        let up = try #require(sv.waitUntilUp())
        kill(sv.pid, SIGTERM)
        #expect(sv.exited(within: 5) == .exited(0))
        #expect(eventually { !processExists(up.pid) })
        #expect(lines(box.at("s1.events")) == ["TERM"])
    }

    @Test func usesTheRunStateDirectory() throws {
        let box = Sandbox()
        makeService(box, "s1")
        let run = box.directory("run")
        let sv = try #require(SupervisedService(box, "s1", runDirectory: run))
        _ = try #require(sv.waitUntilUp())
        #expect(Path.exists(Path.join(run, "s1/supervise/status")))
        #expect(!Path.exists(box.at("s1/supervise")))
    }
}

@Suite struct SuperviseBadInputTests {
    @Test func refusesBadNamesAndMissingRun() {
        let box = Sandbox()
        for bad in ["/abs", ".hidden", ""] {
            let r = run([Build.indimail, "supervise", bad], environment: ["DISABLE_RUN": "1"], directory: box.path)
            #expect(r.exitCode == 100, "\(bad)")
        }
        #expect(run([Build.indimail, "supervise"]).exitCode == 100)
        #expect(run([Build.indimail, "supervise", "a", "b", "c"]).exitCode == 100)
        box.directory("norun")
        let missing = run([Build.indimail, "supervise", "norun"], environment: ["DISABLE_RUN": "1"], directory: box.path)
        #expect(missing.exitCode == 111)
        #expect(missing.err.contains("norun: supervise: fatal: unable to stat run"))
        let nodir = run([Build.indimail, "supervise", "nodir"], environment: ["DISABLE_RUN": "1"], directory: box.path)
        #expect(nodir.exitCode == 111)
    }

    @Test func secondSuperviseIsRefused() throws {
        let box = Sandbox()
        makeService(box, "s1")
        let sv = try #require(SupervisedService(box, "s1"))
        _ = try #require(sv.waitUntilUp())
        let second = run([Build.indimail, "supervise", "s1"], environment: ["DISABLE_RUN": "1"], directory: box.path)
        #expect(second.exitCode == 100)
        #expect(second.err.contains("unable to acquire"))
    }

    @Test func unwritableStateIsAFatalError() {
        let box = Sandbox()
        makeService(box, "s1")
        box.write("s1/supervise", "a file where the directory should be\n")
        let r = run([Build.indimail, "supervise", "s1"], environment: ["DISABLE_RUN": "1"], directory: box.path, timeout: 5)
        #expect(r.exitCode == 111)
        #expect(!r.timedOut)
    }

    @Test func garbageOnTheControlFIFOIsIgnored() throws {
        let box = Sandbox()
        makeService(box, "s1")
        let sv = try #require(SupervisedService(box, "s1"))
        let up = try #require(sv.waitUntilUp())
        sv.control("\u{1}zZ\n\u{7f}GG--!! ")
        usleep(200_000)
        #expect(sv.isRunning)
        #expect(sv.status?.pid == up.pid)
        #expect(processExists(up.pid))
    }

    @Test func unexecutableRunKeepsSuperviseAlive() throws {
        let box = Sandbox()
        makeService(box, "s1")
        chmod(box.at("s1/run"), 0o644)
        let sv = try #require(SupervisedService(box, "s1"))
        usleep(1_500_000)
        #expect(sv.isRunning)
        #expect(sv.status?.running == false)
        #expect(sv.stderr.contains("unable to start ./run"))
        chmod(box.at("s1/run"), 0o755)
        #expect(sv.waitUntilUp(3) != nil)
    }
}

@Suite struct SuperviseInteropTests {
    @Test func daemontoolsSvcAndSvokDriveOurSupervise() throws {
        let svc = try #require(peer("/usr/bin/svc"), "daemontools svc missing: run scripts/deps --test")
        let svok = try #require(peer("/usr/bin/svok"))
        let box = Sandbox()
        makeService(box, "s1")
        let sv = try #require(SupervisedService(box, "s1"))
        let up = try #require(sv.waitUntilUp())
        #expect(run([svok, "s1"], directory: box.path).exitCode == 0)
        #expect(run([svc, "-d", "s1"], directory: box.path).exitCode == 0)
        #expect(eventually { sv.status?.running == false })
        #expect(eventually { !processExists(up.pid) })
        #expect(run([svc, "-u", "s1"], directory: box.path).exitCode == 0)
        #expect(sv.waitUntilUp() != nil)
        #expect(run([svc, "-dx", "s1"], directory: box.path).exitCode == 0)
        #expect(sv.exited(within: 5) == .exited(0))
        #expect(run([svok, "s1"], directory: box.path).exitCode == 100)
    }
}
