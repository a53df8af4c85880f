// svscanboot and docker-entrypoint: the front ends that start svscan at boot or in a container.
import Core
import Glibc
import Testing

@Suite(.serialized) struct SvscanbootTests {
    @Test func bootsTheConfiguredDirectoryWithItsVariablesAndStopsLeftovers() throws {
        let sv = SvscanUnderTest()
        sv.service("a", run: sleeper)
        let prefix = sv.installPrefix()
        sv.box.write("etc/control/servicedir.conf", sv.scanDirectory + "\n")
        sv.box.write("sv/.svscan/variables/VERBOSE", "1\n")
        // A supervise left over from an earlier boot: told `dx`, it goes away.
        var options = SpawnOptions()
        options.workingDirectory = sv.scanDirectory
        let leftover = try Spawn.start([Array("/usr/bin/supervise".utf8), Array("a".utf8)],
                                       environment: Environment([("PATH", "/usr/bin:/bin")]), options: options).get()
        defer { kill(leftover, SIGKILL); _ = waitWithDeadline(leftover, seconds: 5) }
        #expect(eventually { sv.superviseRunning("a") })

        sv.start(environment: ["PREFIX": prefix, "SYSCONFDIR": sv.box.at("etc")],
                 command: [Build.indimail, "svscanboot"])
        #expect(waitWithDeadline(leftover, seconds: 10) == .exited(0))
        #expect(eventually { sv.superviseRunning("a") }, "\(sv.stderr)")
        // Without readproctitle svscan writes to svscanboot's standard error, with the
        // variables of .svscan/variables (VERBOSE) and no pipe in between: it is the process.
        #expect(eventually { sv.stderr.contains("svscan: info: Starting service a") }, "\(sv.stderr)")
        #expect(sv.stderr.contains("svscanboot: warning: \(prefix)/sbin/readproctitle not found"))
        #expect(ProcFS.commandName(sv.pid) == "svscan")
        sv.signal(SIGTERM)
        #expect(sv.waitExit(15) == .exited(0))
        #expect(sv.liveSandboxProcesses().isEmpty, "left behind: \(sv.liveSandboxProcesses())")
    }

    @Test func pipesSvscanIntoReadproctitleAndPassesTerminateOn() throws {
        let readproctitle = try #require(peer("/usr/bin/readproctitle"), "daemontools readproctitle missing")
        let sv = SvscanUnderTest()
        sv.service("a", run: sleeper)
        let prefix = sv.installPrefix()
        symlink(readproctitle, Path.join(prefix, "sbin/readproctitle"))
        sv.box.write("sv/.svscan/variables/VERBOSE", "1\n")
        sv.start(environment: ["PREFIX": prefix, "SYSCONFDIR": sv.box.at("etc")],
                 command: [Build.indimail, "svscanboot", sv.scanDirectory])
        #expect(eventually { sv.superviseRunning("a") }, "\(sv.stderr)")
        #expect(eventually {
            sv.children(of: sv.pid, matching: "Starting service a").count == 1
        }, "readproctitle did not show svscan's messages")
        #expect(sv.children(of: sv.pid, matching: "svscan").count >= 1)
        sv.signal(SIGTERM)
        #expect(sv.waitExit(15) == .exited(0))
        #expect(sv.liveSandboxProcesses().isEmpty, "left behind: \(sv.liveSandboxProcesses())")
    }

    @Test func startsOneSvscanPerDirectoryAndWaitsForAll() throws {
        let sv = SvscanUnderTest(useRunDirectory: false)
        sv.service("a", run: sleeper)
        sv.box.write("sv2/b/run", sleeper, mode: 0o755)
        let prefix = sv.installPrefix()
        sv.start(environment: ["PREFIX": prefix, "SYSCONFDIR": sv.box.at("etc")],
                 command: [Build.indimail, "svscanboot", sv.scanDirectory, sv.box.at("sv2"), sv.box.at("missing")])
        func running(_ ok: String) -> Bool {
            guard case .success(let fd) = FIFO.openWrite(ok) else { return false }
            close(fd)
            return true
        }
        #expect(eventually { sv.superviseRunning("a") && running(sv.box.at("sv2/b/supervise/ok")) }, "\(sv.stderr)")
        #expect(sv.children(of: sv.pid, matching: "svscan").count == 2)
        sv.signal(SIGTERM)
        #expect(sv.waitExit(15) == .exited(0))
        #expect(sv.liveSandboxProcesses().isEmpty, "left behind: \(sv.liveSandboxProcesses())")
    }

    @Test func entrypointRunsAGivenProgram() {
        let r = run([Build.indimail, "docker-entrypoint", "--", "/bin/echo", "hi", "there"],
                    environment: ["DISABLE_RUN": "1"])
        #expect(r.exitCode == 0)
        #expect(r.out == "docker-entrypoint: executing /bin/echo hi there\nhi there\n")
        #expect(run([Build.indimail, "docker-entrypoint", "-x"], environment: ["DISABLE_RUN": "1"]).exitCode == 100)
        #expect(run([Build.indimail, "docker-entrypoint", "--timezone"], environment: ["DISABLE_RUN": "1"]).exitCode == 100)
        let zone = run([Build.indimail, "docker-entrypoint", "-t", "No/Such_Zone", "--", "/bin/true"],
                       environment: ["DISABLE_RUN": "1"])
        #expect(zone.exitCode == 1)
        #expect(zone.err.contains("unable to set timezone No/Such_Zone"))
    }

    @Test func entrypointBecomesSvscanOnTheServiceDirectory() throws {
        let sv = SvscanUnderTest()
        sv.service("a", run: sleeper)
        let prefix = sv.installPrefix()
        sv.box.write("sv/.svscan/variables/VERBOSE", "1\n")
        sv.start(environment: ["PREFIX": prefix, "SERVICEDIR": sv.scanDirectory,
                               "PATH": "\(prefix)/sbin:/usr/bin:/bin"],
                 command: [Build.indimail, "docker-entrypoint"])
        #expect(eventually { sv.superviseRunning("a") }, "\(sv.stderr)")
        #expect(sv.stdout.hasPrefix("docker-entrypoint: [svscan] executing \(prefix)/bin/envdir \(sv.scanDirectory)/.svscan/variables \(prefix)/sbin/svscan \(sv.scanDirectory)\n"))
        #expect(eventually { sv.stderr.contains("svscan: info: Starting service a") })
        #expect(ProcFS.commandName(sv.pid) == "svscan")
        sv.signal(SIGTERM)
        #expect(sv.waitExit(15) == .exited(0))
        #expect(sv.liveSandboxProcesses().isEmpty, "left behind: \(sv.liveSandboxProcesses())")
    }
}
