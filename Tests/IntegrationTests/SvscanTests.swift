// svscan with real supervise processes: start-up, log pipes, rescans, auto up/down, the
// single-instance rule, orderly shutdown, SCANLOG/INITCMD and readiness notification.
import Core
import Glibc
import Testing

let sleeper = "#!/bin/sh\necho started\nexec sleep 1000\n"

@Suite(.serialized) struct SvscanTests {
    @Test func startsSuperviseForEveryServiceAndLogger() throws {
        let sv = SvscanUnderTest()
        sv.service("a", run: "#!/bin/sh\necho \"started $MAIN_SV $SCANDIR\"\nexec sleep 1000\n",
                   log: "#!/bin/sh\necho \"$SV_PWD\" > ../logger.env\nexec cat >> ../log.txt\n")
        sv.service("b", run: sleeper)
        sv.start()
        #expect(eventually { sv.superviseRunning("a") && sv.superviseRunning("b") && sv.superviseRunning("a/log") },
                "supervise not running: \(sv.stderr)")
        #expect(eventually { readText(sv.box.at("sv/a/log.txt")).contains("started a \(sv.scanDirectory)") })
        #expect(readText(sv.box.at("sv/a/logger.env")) == "a\n")
        // A service without log writes where svscan writes.
        #expect(eventually { sv.stdout.contains("started") })
        #expect(readText(sv.box.at("run/.svscan.pid")).hasSuffix("\n\(sv.pid)\n"))
        // svscan renames itself so that ps and the reference's pid-file check find it.
        #expect(ProcFS.commandName(sv.pid) == "svscan")
    }

    @Test func superviseGetsItsEnvironmentAndSvarsDirectories() throws {
        let sv = SvscanUnderTest()
        sv.service("a", run: sleeper, log: "#!/bin/sh\nexec cat > /dev/null\n")
        sv.service("b", run: sleeper)
        sv.box.write("sv/a/.svars/FOR_MAIN", "main\n")
        sv.box.write("sv/a/log/.svars/FOR_LOG", "log\n")
        sv.start(environment: ["NOTIFY_SOCKET": sv.box.at("nobody.sock")])
        #expect(eventually { ["a", "b", "a/log"].allSatisfy { sv.superviseRunning($0) } })
        let main = try #require(sv.children(of: sv.pid, matching: "supervise a").first)
        let logger = try #require(sv.children(of: sv.pid, matching: "supervise log").first)
        let plain = try #require(sv.children(of: sv.pid, matching: "supervise b").first)
        let mainEnv = sv.environment(of: main), logEnv = sv.environment(of: logger), plainEnv = sv.environment(of: plain)
        for env in [mainEnv, logEnv, plainEnv] {
            #expect(env.contains("PPID=\(sv.pid)"))
            #expect(env.contains("SCANDIR=\(sv.scanDirectory)"))
            #expect(!env.contains { $0.hasPrefix("NOTIFY_SOCKET=") })
        }
        #expect(mainEnv.contains("MAIN_SV=a") && mainEnv.contains("FOR_MAIN=main") && !mainEnv.contains("FOR_LOG=log"))
        #expect(mainEnv.contains("PWD=\(sv.scanDirectory)"))
        #expect(logEnv.contains("SV_PWD=a") && logEnv.contains("FOR_LOG=log") && !logEnv.contains("FOR_MAIN=main"))
        #expect(plainEnv.contains("MAIN_SV=b") && !plainEnv.contains("FOR_MAIN=main"))
    }

    @Test func userSignalsToggleVerboseAndSilent() throws {
        let sv = SvscanUnderTest()
        sv.service("a", run: sleeper)
        sv.start()
        #expect(eventually { sv.superviseRunning("a") })
        func sighups() -> Int { sv.stderr.split(separator: "\n").filter { $0 == "svscan: info: got sighup" }.count }
        sv.signal(SIGHUP)
        usleep(300_000)
        #expect(sighups() == 0)
        sv.signal(SIGUSR1)
        usleep(100_000)
        sv.signal(SIGHUP)
        #expect(eventually { sighups() == 1 })
        sv.signal(SIGUSR1)
        usleep(100_000)
        sv.signal(SIGHUP)
        usleep(300_000)
        #expect(sighups() == 1)
        // Silent: the warning about a missing control FIFO is not shown.
        sv.signal(SIGUSR2)
        usleep(100_000)
        _ = run(["/bin/rm", "-rf", sv.box.at("sv/a/supervise"), sv.box.at("run/a")])
        sv.box.write("sv/a/down", "")
        sv.signal(SIGHUP)
        usleep(300_000)
        #expect(!sv.stderr.contains("unable to control a"))
        sv.signal(SIGUSR2)
        usleep(100_000)
        sv.signal(SIGHUP)
        #expect(eventually { sv.stderr.contains("svscan: warning: unable to control a: ") }, "\(sv.stderr)")
    }

    @Test func logPipeLosesNothingWhenEitherSideRestarts() throws {
        let sv = SvscanUnderTest()
        // Each instance of the writer numbers its lines from 1 and records what it wrote.
        let writer = """
            #!/bin/sh
            echo $$ > pid
            i=0
            while [ ! -e ../stop ]; do
                i=$((i+1))
                echo "$$ $i"
                echo "$$ $i" >> ../sent.txt
                sleep 0.005
            done
            exec sleep 1000

            """
        // A logger that finishes the line it is reading when told to stop.
        let logger = """
            #!/usr/bin/perl
            open(my $pf, ">", "../logger.pid"); print $pf "$$\\n"; close($pf);
            my $stop = 0; $SIG{TERM} = sub { $stop = 1 };
            open(my $out, ">>", "../../received.txt") or die; select($out); $| = 1;
            my $line = "";
            while (1) {
                my $c; my $n = sysread(STDIN, $c, 1);
                if (!defined $n) { exit 0 if $stop && $line eq ""; next; }
                last if $n == 0;
                $line .= $c;
                if ($c eq "\\n") { print $out $line; $line = ""; exit 0 if $stop; }
            }

            """
        sv.service("w", run: writer, log: logger)
        sv.start()
        let pidFile = sv.box.at("sv/w/pid"), loggerPidFile = sv.box.at("sv/w/logger.pid")
        let received = sv.box.at("sv/received.txt"), sent = sv.box.at("sv/sent.txt")
        #expect(eventually { !readText(pidFile).isEmpty && !readText(loggerPidFile).isEmpty })

        func lineCount(_ path: String) -> Int { readText(path).split(separator: "\n").count }
        for round in 0..<4 {
            let before = lineCount(received)
            #expect(eventually { lineCount(received) > before + 25 }, "no progress in round \(round)")
            if round % 2 == 0 {
                let old = readText(pidFile)
                if let p = pid_t(old.trimmingSuffix()) { kill(p, SIGKILL) }
                #expect(eventually { readText(pidFile) != old && !readText(pidFile).isEmpty })
            } else {
                let old = readText(loggerPidFile)
                if let p = pid_t(old.trimmingSuffix()) { kill(p, SIGTERM) }
                #expect(eventually { readText(loggerPidFile) != old && !readText(loggerPidFile).isEmpty })
            }
        }
        #expect(eventually { lineCount(received) > lineCount(sent) / 2 + 20 })
        sv.box.write("sv/stop", "")
        // Everything written reaches the log.
        #expect(eventually {
            let got = Set(readText(received).split(separator: "\n"))
            return readText(sent).split(separator: "\n").allSatisfy { got.contains($0) }
        })
        let lines = readText(received).split(separator: "\n").map(String.init)
        var byWriter: [String: [Int]] = [:]
        for line in lines {
            let parts = line.split(separator: " ")
            guard parts.count == 2, let n = Int(parts[1]) else {
                Issue.record("malformed line: \(line)")
                continue
            }
            byWriter[String(parts[0]), default: []].append(n)
        }
        #expect(byWriter.count >= 3, "expected several writer instances: \(byWriter.keys)")
        for (writer, numbers) in byWriter {
            #expect(numbers == Array(1...numbers.count), "writer \(writer): lost or duplicated lines")
        }
        #expect(lines.count >= 100)
    }

    @Test func newDirectoryStartsOnHangupRemovedOneIsNotRestarted() throws {
        let sv = SvscanUnderTest()
        sv.service("a", run: sleeper)
        sv.start()
        #expect(eventually { sv.superviseRunning("a") })
        sv.service("c", run: sleeper)
        sv.signal(SIGHUP)
        #expect(eventually { sv.superviseRunning("c") }, "new service not started: \(sv.stderr)")

        let supervisors = sv.children(of: sv.pid, matching: "supervise a")
        #expect(supervisors.count == 1)
        _ = run(["/bin/rm", "-rf", sv.box.at("sv/a")])
        for p in supervisors { kill(p, SIGKILL) }
        #expect(eventually { sv.children(of: sv.pid, matching: "supervise a").isEmpty })
        sv.signal(SIGHUP)
        usleep(1_500_000)
        #expect(sv.children(of: sv.pid, matching: "supervise a").isEmpty)
        #expect(sv.children(of: sv.pid, matching: "supervise c").count == 1)
    }

    @Test func deadSuperviseIsRestartedAtTheNextScanAtMostOncePerSecond() throws {
        let sv = SvscanUnderTest(useRunDirectory: false)
        sv.service("a", run: sleeper)
        sv.service("crash", run: sleeper)
        // The test holds crash's lock: every supervise started for it exits at once.
        _ = Path.makeDirectories(sv.box.at("sv/crash/supervise"), mode: 0o700)
        let lock = open(sv.box.at("sv/crash/supervise/lock"), O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        defer { close(lock) }
        #expect((try? FileLock.exclusive(lock, wait: false).get()) != nil)
        sv.start(environment: ["SCANNOW": "1", "VERBOSE": "1"])
        #expect(eventually { sv.superviseRunning("a") })
        let first = sv.children(of: sv.pid, matching: "supervise a")
        for p in first { kill(p, SIGKILL) }
        #expect(eventually { sv.superviseRunning("a") && sv.children(of: sv.pid, matching: "supervise a") != first },
                "supervise a not restarted: \(sv.stderr)")
        let started = monotonicSeconds()
        usleep(3_000_000)
        let elapsed = monotonicSeconds() - started
        let starts = sv.stderr.split(separator: "\n").filter { $0 == "svscan: info: Starting service crash" }.count
        #expect(starts >= 2, "crashing supervise not restarted: \(sv.stderr)")
        #expect(Double(starts) <= elapsed + 2.5, "restarted \(starts) times in \(elapsed) s")
    }

    @Test func downFileStopsAndItsRemovalStartsTheService() throws {
        let sv = SvscanUnderTest()
        sv.service("a", run: "#!/bin/sh\necho $$ > pid\nexec sleep 1000\n")
        sv.start()
        let pidFile = sv.box.at("sv/a/pid")
        #expect(eventually { pid_t(readText(pidFile).trimmingSuffix()) != nil })
        let first = pid_t(readText(pidFile).trimmingSuffix()) ?? 0
        sv.box.write("sv/a/down", "")
        sv.signal(SIGHUP)
        #expect(eventually { kill(first, 0) != 0 }, "service not stopped by the down file: \(sv.stderr)")
        unlink(pidFile)
        unlink(sv.box.at("sv/a/down"))
        sv.signal(SIGHUP)
        #expect(eventually { pid_t(readText(pidFile).trimmingSuffix()).map { kill($0, 0) == 0 } ?? false },
                "service not started again: \(sv.stderr)")
    }

    @Test func secondSvscanIsRefused() throws {
        for useRun in [true, false] {
            let sv = SvscanUnderTest(useRunDirectory: useRun)
            sv.service("a", run: sleeper)
            sv.start()
            #expect(eventually { sv.superviseRunning("a") })
            // The pid file: in the run-state directory, or in the scan directory without one.
            let pidFile = useRun ? sv.box.at("run/.svscan.pid") : sv.box.at("sv/.svscan.pid")
            #expect(readText(pidFile).hasSuffix("\n\(sv.pid)\n"))
            var env = sv.environment
            env["PATH"] = sv.bin + ":/usr/bin:/bin"
            let second = run([Build.indimail, "svscan", sv.scanDirectory], environment: env, timeout: 10)
            #expect(second.exitCode == 111)
            #expect(second.err == "svscan: fatal: [svscan] already running\n")
            #expect(sv.isRunning)
        }
    }

    @Test func disabledServiceTakesItsRunStateAlong() throws {
        let sv = SvscanUnderTest()
        sv.service("a", run: sleeper)
        sv.box.write("sv/.off/run", sleeper, mode: 0o755)
        sv.box.write("run/off/supervise/status", "old state")
        sv.box.write("run/.kept/marker", "")
        sv.box.write("run/kept/marker", "")
        sv.box.write("sv/.kept/run", sleeper, mode: 0o755)
        sv.start()
        #expect(eventually { sv.superviseRunning("a") })
        #expect(eventually { Path.isDirectory(sv.box.at("run/.off")) && !Path.exists(sv.box.at("run/off")) })
        #expect(readText(sv.box.at("run/.off/supervise/status")) == "old state")
        // An existing R/.<name> is left alone, and so is R/<name> then.
        #expect(Path.isDirectory(sv.box.at("run/kept")) && Path.isDirectory(sv.box.at("run/.kept")))
        #expect(sv.children(of: sv.pid, matching: "supervise .off").isEmpty)
    }

    @Test func createsTheRunStateDirectory() throws {
        let sv = SvscanUnderTest()
        sv.service("a", run: sleeper)
        let deep = sv.box.at("var/run/svscan")
        sv.start(environment: ["SVSCAN_RUNDIR": deep])
        #expect(eventually { readText(Path.join(deep, ".svscan.pid")).hasSuffix("\n\(sv.pid)\n") }, "\(sv.stderr)")
        #expect(Path.isDirectory(deep))
    }

    @Test func stalePidFilesAreReplaced() throws {
        // One names a process that has ended, the other a live process that is not svscan.
        let ended = try Spawn.start([Array("/bin/true".utf8)], environment: Environment()).get()
        _ = waitWithDeadline(ended, seconds: 5)
        for holder in [ended, getpid()] {
            let sv = SvscanUnderTest()
            sv.service("a", run: sleeper)
            var bytes: [UInt8] = []
            withUnsafeBytes(of: holder) { bytes += $0 }
            sv.box.write("run/.svscan.pid", bytes + Array("\n\(holder)\n".utf8))
            sv.start()
            #expect(eventually { sv.superviseRunning("a") }, "\(sv.stderr)")
            #expect(eventually { readText(sv.box.at("run/.svscan.pid")).hasSuffix("\n\(sv.pid)\n") })
        }
    }

    @Test func autoscanAndRetryAfterAnErrorNeedNoHangup() throws {
        let sv = SvscanUnderTest()
        sv.service("a", run: sleeper)
        sv.start(environment: ["AUTOSCAN": "1", "SCANINTERVAL": "0.3"])
        #expect(eventually { sv.superviseRunning("a") })
        sv.service("b", run: sleeper)
        #expect(eventually(within: 5) { sv.superviseRunning("b") }, "\(sv.stderr)")

        // Without AUTOSCAN, a failed start is retried after SCANINTERVAL.
        let other = SvscanUnderTest()
        other.service("c", run: sleeper)
        let link = Path.join(other.bin, "supervise"), aside = Path.join(other.bin, "supervise.aside")
        rename(link, aside)
        other.start(environment: ["SCANINTERVAL": "0.3", "PATH": other.bin])
        #expect(eventually { other.stderr.contains("svscan: warning: unable to start supervise c: ") })
        rename(aside, link)
        #expect(eventually(within: 5) { other.superviseRunning("c") }, "\(other.stderr)")
    }

    @Test func terminateStopsEverythingRunsShutdownAndKillsStragglers() throws {
        let sv = SvscanUnderTest()
        sv.service("a", run: sleeper, log: "#!/bin/sh\nexec cat >> ../log.txt\n")
        sv.service("b", run: sleeper)
        // Ignores TERM (and its supervise may be gone): only KILL ends it.
        sv.service("stubborn", run: "#!/bin/sh\ntrap '' TERM\nwhile :; do sleep 0.1; done\n")
        sv.box.write("sv/.svscan/shutdown", "#!/bin/sh\necho ran > \(sv.box.at("shutdown.ran"))\n", mode: 0o755)
        sv.start(environment: ["KILLWAIT": "2"])
        #expect(eventually {
            ["a", "b", "stubborn", "a/log"].allSatisfy { sv.superviseRunning($0) }
        })
        #expect(eventually { readText(sv.box.at("sv/a/log.txt")).contains("started") })
        let began = monotonicSeconds()
        sv.signal(SIGTERM)
        let status = sv.waitExit(15)
        #expect(status == .exited(0), "svscan: \(String(describing: status)) \(sv.stderr)")
        #expect(monotonicSeconds() - began < 10)
        #expect(readText(sv.box.at("shutdown.ran")) == "ran\n")
        #expect(sv.liveSandboxProcesses().isEmpty, "left behind: \(sv.liveSandboxProcesses())")
        #expect(!Path.exists(sv.box.at("run/.svscan.pid")))
        #expect(sv.stderr.contains("shutdown in progress"))
    }

    @Test func loggersOutliveTheServicesLastWords() throws {
        let sv = SvscanUnderTest()
        // Takes its time to stop and says goodbye on the way out.
        sv.service("a", run: "#!/bin/sh\ntrap 'sleep 0.5; echo goodbye; exit 0' TERM\necho started\nwhile :; do sleep 0.1; done\n",
                   log: "#!/bin/sh\nexec cat >> ../log.txt\n")
        sv.start(environment: ["KILLWAIT": "8"])
        let logFile = sv.box.at("sv/a/log.txt")
        #expect(eventually { readText(logFile).contains("started") })
        let began = monotonicSeconds()
        sv.signal(SIGTERM)
        #expect(sv.waitExit(15) == .exited(0), "\(sv.stderr)")
        #expect(readText(logFile) == "started\ngoodbye\n")
        // Driven by the processes' ends, not by the KILLWAIT deadlines (loggers at 4 s).
        #expect(monotonicSeconds() - began < 3.5)
        #expect(sv.liveSandboxProcesses().isEmpty, "left behind: \(sv.liveSandboxProcesses())")
    }

    @Test func scanLogCarriesSvscanOutputAndInitCommandRunsFirst() throws {
        let sv = SvscanUnderTest()
        sv.service("a", run: sleeper)
        sv.box.write("sv/.svscan/log/run", "#!/bin/sh\nexec cat >> ../own.log\n", mode: 0o755)
        sv.box.write("sv/.svscan/run", "#!/bin/sh\necho \"init $SCANDIR\" > \(sv.box.at("init.ran"))\nsleep 0.3\n", mode: 0o755)
        sv.start(environment: ["SCANLOG": "1", "VERBOSE": "1", "INITCMD": "", "WAIT_INITCMD": "1"])
        let own = sv.box.at("sv/.svscan/own.log")
        #expect(eventually { readText(own).contains("svscan: info: Starting service a") }, "own log: \(readText(own))")
        #expect(readText(sv.box.at("init.ran")) == "init \(sv.scanDirectory)\n")
        // The service has no log of its own: its output joins svscan's.
        #expect(eventually { readText(own).contains("started") })
        #expect(!sv.stderr.contains("Starting service a"))
        sv.signal(SIGTERM)
        #expect(sv.waitExit(15) == .exited(0))
        #expect(sv.liveSandboxProcesses().isEmpty, "left behind: \(sv.liveSandboxProcesses())")
        #expect(readText(own).contains("shutdown in progress"))
    }

    @Test func notifiesReadinessAndStoppingToTheServiceManager() throws {
        let sv = SvscanUnderTest()
        sv.service("a", run: "#!/bin/sh\necho \"socket=${NOTIFY_SOCKET:-none}\" > env.txt\nexec sleep 1000\n")
        let path = sv.box.at("notify.sock")
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #expect(fd >= 0)
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in path.utf8.enumerated() { raw[i] = b }
        }
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(bound == 0)
        func receive(_ seconds: Double) -> String? {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, Int32(seconds * 1000)) == 1 else { return nil }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = recv(fd, &buffer, buffer.count, 0)
            return n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : nil
        }
        sv.start(environment: ["NOTIFY_SOCKET": path])
        let ready = receive(10)
        #expect(ready?.contains("READY=1\n") == true, "got \(String(describing: ready)); \(sv.stderr)")
        #expect(ready?.contains("MAINPID=\(sv.pid)\n") == true)
        #expect(ready?.contains("STATUS=") == true)
        #expect(eventually { readText(sv.box.at("sv/a/env.txt")) == "socket=none\n" })
        sv.signal(SIGTERM)
        let stopping = receive(10)
        #expect(stopping?.contains("STOPPING=1") == true)
        #expect(sv.waitExit(15) == .exited(0))
    }

    @Test func usageErrors() {
        #expect(run([Build.indimail, "svscan", "-x"], environment: ["DISABLE_RUN": "1"]).exitCode == 100)
        #expect(run([Build.indimail, "svscan", "a", "b"], environment: ["DISABLE_RUN": "1"]).exitCode == 100)
        let missing = run([Build.indimail, "svscan", "/nonexistent/sv"], environment: ["DISABLE_RUN": "1"])
        #expect(missing.exitCode == 111)
        #expect(missing.err.hasPrefix("svscan: fatal: unable to chdir to /nonexistent/sv: "))
    }
}

extension String {
    func trimmingSuffix() -> String {
        var s = Substring(self)
        while let last = s.last, last == "\n" || last == " " { s.removeLast() }
        return String(s)
    }
}
