// svscan's pure parts: scan planning, the pid file, shutdown timings, configuration and the
// systemd notification messages.
import Core
import Glibc
import Supervise
import Testing

@Suite struct SvscanPlanTests {
    let a = ServiceIdentity(device: 1, inode: 10)
    let b = ServiceIdentity(device: 1, inode: 20)
    let own = ServiceIdentity(device: 1, inode: 30)

    func service(_ name: String, _ id: ServiceIdentity, log: ScanEntry.LogEntry = .absent, down: Bool = false) -> ScanEntry {
        ScanEntry(name: name, kind: .service(id, log: log, down: down))
    }

    @Test func newServicesGetASlotASuperviseAndALoggerWithAPipe() {
        let plan = ScanPlanner().plan(entries: [service("a", a, log: .present), service("b", b, down: true)],
                                      slots: [], now: 100)
        #expect(plan.actions == [
            .addSlot(a, name: "a", hasLog: true, ownLogger: false),
            .startMain(a, name: "a", wantUp: true),
            .startLog(a, name: "a"),
            .addSlot(b, name: "b", hasLog: false, ownLogger: false),
            .startMain(b, name: "b", wantUp: false),
        ])
        #expect(!plan.failed)
        #expect(plan.retryAt == nil)
    }

    @Test func runningServicesAreLeftAlone() {
        let slots = [ServiceSlot(identity: a, name: "a", ownLogger: false, hasLog: true, mainPID: 5, logPID: 6,
                                 mainStartedAt: 1, logStartedAt: 1)]
        #expect(ScanPlanner().plan(entries: [service("a", a, log: .present)], slots: slots, now: 100).actions.isEmpty)
    }

    @Test func aDeadSuperviseIsRestartedButNotTwiceInOneSecond() {
        var slot = ServiceSlot(identity: a, name: "a", ownLogger: false, hasLog: true, mainPID: nil, logPID: 6,
                               mainStartedAt: 99.5, logStartedAt: 50)
        let early = ScanPlanner().plan(entries: [service("a", a, log: .present)], slots: [slot], now: 100)
        #expect(early.actions.isEmpty)
        #expect(early.retryAt == 100.5)
        let later = ScanPlanner().plan(entries: [service("a", a, log: .present)], slots: [slot], now: 100.6)
        #expect(later.actions == [.startMain(a, name: "a", wantUp: true)])
        slot.mainPID = 7
        slot.logPID = nil
        slot.logStartedAt = 100.2
        let log = ScanPlanner().plan(entries: [service("a", a, log: .present)], slots: [slot], now: 100.6)
        #expect(log.actions.isEmpty)
        #expect(log.retryAt == 101.2)
    }

    @Test func downFileAppearingOrGoingAwayIsSentToSupervise() {
        let up = ServiceSlot(identity: a, name: "a", ownLogger: false, hasLog: false, mainPID: 5, wantUp: true)
        #expect(ScanPlanner().plan(entries: [service("a", a, down: true)], slots: [up], now: 10).actions
                == [.control(a, name: "a", .down)])
        let down = ServiceSlot(identity: a, name: "a", ownLogger: false, hasLog: false, mainPID: 5, wantUp: false)
        #expect(ScanPlanner().plan(entries: [service("a", a)], slots: [down], now: 10).actions
                == [.control(a, name: "a", .up)])
        #expect(ScanPlanner().plan(entries: [service("a", a, down: true)], slots: [down], now: 10).actions.isEmpty)
    }

    @Test func removedDirectoriesAreDroppedOnlyOnceTheirProcessesAreGone() {
        let running = ServiceSlot(identity: a, name: "a", ownLogger: false, hasLog: true, mainPID: 5, logPID: nil)
        #expect(ScanPlanner().plan(entries: [], slots: [running], now: 10).actions.isEmpty)
        let ended = ServiceSlot(identity: a, name: "a", ownLogger: false, hasLog: true)
        #expect(ScanPlanner().plan(entries: [], slots: [ended], now: 10).actions == [.dropSlot(a)])
        // A partial plan (svscan's own logger at startup) never drops anything.
        #expect(ScanPlanner().plan(entries: [], slots: [ended], now: 10, complete: false).actions.isEmpty)
    }

    @Test func renamedDirectoryKeepsItsSlot() {
        let slot = ServiceSlot(identity: a, name: "old", ownLogger: false, hasLog: false, mainPID: 5)
        #expect(ScanPlanner().plan(entries: [service("new", a)], slots: [slot], now: 1).actions.isEmpty)
        // Two names for one directory (a symlink) share the slot.
        let plan = ScanPlanner().plan(entries: [service("x", b), service("y", b)], slots: [], now: 1)
        #expect(plan.actions == [.addSlot(b, name: "x", hasLog: false, ownLogger: false),
                                 .startMain(b, name: "x", wantUp: true)])
    }

    @Test func ownDirectoryOnlyRunsItsLogger() {
        let plan = ScanPlanner().plan(entries: [service(".svscan", own, log: .present)], slots: [], now: 1)
        #expect(plan.actions == [.addSlot(own, name: ".svscan", hasLog: true, ownLogger: true),
                                 .startLog(own, name: ".svscan")])
    }

    @Test func disabledNamesRenameTheirRunStateOnlyWithARunDirectory() {
        let entries = [ScanEntry(name: ".old", kind: .disabled), ScanEntry(name: "file", kind: .notDirectory)]
        #expect(ScanPlanner().plan(entries: entries, slots: [], now: 1).actions == [.hideRunState("old")])
        #expect(ScanPlanner(renamesRunState: false).plan(entries: entries, slots: [], now: 1).actions.isEmpty)
    }

    @Test func errorsAskForARetryAndCapacityIsEnforced() {
        let plan = ScanPlanner(capacity: 1).plan(
            entries: [ScanEntry(name: "gone", kind: .unreadable(ENOENT)), service("a", a), service("b", b),
                      service("c", ServiceIdentity(device: 2, inode: 1), log: .unreadable(EACCES))],
            slots: [], now: 1)
        #expect(plan.failed)
        #expect(plan.actions.contains(.warning("unable to stat gone: No such file or directory")))
        #expect(plan.actions.contains(.startMain(a, name: "a", wantUp: true)))
        #expect(plan.actions.contains(.warning("unable to start b: running too many services")))
        #expect(!plan.actions.contains { if case .addSlot(b, _, _, _) = $0 { return true } else { return false } })
        let logFailure = ScanPlanner().plan(
            entries: [service("c", a, log: .unreadable(EACCES))], slots: [], now: 1)
        #expect(logFailure.failed)
        #expect(logFailure.actions == [.warning("unable to stat c/log: Permission denied")])
    }
}

@Suite struct SvscanPidFileTests {
    @Test func layoutIsRawPidNewlineDecimalNewline() {
        let bytes = SvscanPidFile.encode(0x0102_0304)
        var raw: [UInt8] = []
        withUnsafeBytes(of: pid_t(0x0102_0304)) { raw += $0 }
        #expect(bytes == raw + [10] + Array("16909060\n".utf8))
        #expect(SvscanPidFile.decode(bytes) == 0x0102_0304)
        // A newline inside the raw bytes (pid 10) still decodes.
        #expect(SvscanPidFile.decode(SvscanPidFile.encode(10)) == 10)
    }

    @Test func shortOrDamagedFilesFallBackToTheDecimalLine() {
        #expect(SvscanPidFile.decode([]) == nil)
        #expect(SvscanPidFile.decode([1, 2]) == nil)
        #expect(SvscanPidFile.decode(Array("junk\n4242\n".utf8)) == 4242)
        #expect(SvscanPidFile.decode([0, 0, 0, 0, 10] + Array("77\n".utf8)) == 77)
    }

    @Test func holderDecision() {
        typealias H = SvscanPidFile.Holder
        #expect(SvscanPidFile.holder(stored: nil, ours: 5, alive: false, comm: nil, commandLine: nil) == H.stale)
        #expect(SvscanPidFile.holder(stored: 5, ours: 5, alive: true, comm: "svscan", commandLine: nil) == H.ours)
        #expect(SvscanPidFile.holder(stored: 6, ours: 5, alive: false, comm: nil, commandLine: nil) == H.stale)
        #expect(SvscanPidFile.holder(stored: 6, ours: 5, alive: true, comm: nil, commandLine: nil) == H.stale)
        #expect(SvscanPidFile.holder(stored: 6, ours: 5, alive: true, comm: "svscan", commandLine: nil) == H.running(6))
        #expect(SvscanPidFile.holder(stored: 6, ours: 5, alive: true, comm: "indimail",
                                     commandLine: ["/usr/bin/indimail", "svscan", "/service"]) == H.running(6))
        #expect(SvscanPidFile.holder(stored: 6, ours: 5, alive: true, comm: "indimail",
                                     commandLine: ["indimail", "multilog", "t", "."]) == H.stale)
        #expect(SvscanPidFile.holder(stored: 6, ours: 5, alive: true, comm: "bash",
                                     commandLine: ["bash"]) == H.stale)
        #expect(SvscanPidFile.holder(stored: 6, ours: 5, alive: true, comm: "svscan-wrapper",
                                     commandLine: ["/usr/sbin/svscan", "/service"]) == H.running(6))
    }
}

@Suite struct SvscanConfigurationTests {
    func parse(_ args: [String], _ env: [(String, String)] = []) -> SvscanConfiguration? {
        try? SvscanConfiguration.parse(args, environment: Environment(env)).get()
    }

    @Test func optionsAndOperand() throws {
        let c = try #require(parse(["-v", "-s", "-n", "5", "/service"]))
        #expect(c.verbose && c.exportVerbose && c.silent && c.exportSilent)
        #expect(c.capacity == 5)
        #expect(c.scanDirectory == "/service")
        let d = try #require(parse([]))
        #expect(d.capacity == 1000 && d.scanDirectory == nil && !d.verbose && d.scanInterval == 60)
        #expect(parse(["-x"]) == nil)
        #expect(parse(["-n", "zero"]) == nil)
        #expect(parse(["-n", "0"]) == nil)
        #expect(parse(["a", "b"]) == nil)
    }

    @Test func environment() throws {
        let c = try #require(parse([], [("VERBOSE", ""), ("SCANINTERVAL", "5"), ("AUTOSCAN", ""), ("SCANNOW", "1"),
                                        ("DISABLE_RUN", ""), ("INITCMD", ""), ("WAIT_INITCMD", "1"), ("SCANLOG", "1")]))
        #expect(c.verbose && !c.exportVerbose)
        #expect(c.scanInterval == 5 && c.autoScan && c.scanOnChildExit && c.scanLog)
        #expect(c.initCommand == "" && c.waitInitCommand)
        #expect(c.runDirectory(exists: { _ in true }) == nil)
        #expect(try #require(parse([], [("SCANINTERVAL", "0")])).scanInterval == 60)
        #expect(try #require(parse([], [("SCANINTERVAL", "x")])).scanInterval == 60)
    }

    @Test func runDirectoryChoice() throws {
        let c = try #require(parse([]))
        #expect(c.runDirectory(exists: { _ in true }) == "/run/svscan")
        #expect(c.runDirectory(exists: { $0 == "/var/run" }) == "/var/run/svscan")
        #expect(c.runDirectory(exists: { _ in false }) == nil)
        let o = try #require(parse([], [("SVSCAN_RUNDIR", "/tmp/r")]))
        #expect(o.runDirectory(exists: { _ in false }) == "/tmp/r")
    }

    @Test func killWaitComputation() {
        func t(_ env: [(String, String)]) -> ShutdownTimings { ShutdownTimings(environment: Environment(env)) }
        #expect(t([]) == ShutdownTimings(loggers: 2, kill: 4))
        #expect(t([("KILLWAIT", "10")]) == ShutdownTimings(loggers: 5, kill: 10))
        #expect(t([("KILLWAIT", "10"), ("KILLWAIT1", "1"), ("KILLWAIT2", "2")]) == ShutdownTimings(loggers: 5, kill: 10))
        #expect(t([("KILLWAIT2", "6")]) == ShutdownTimings(loggers: 3, kill: 6))
        #expect(t([("KILLWAIT1", "1")]) == ShutdownTimings(loggers: 1, kill: 4))
        #expect(t([("KILLWAIT1", "3"), ("KILLWAIT2", "8")]) == ShutdownTimings(loggers: 3, kill: 8))
        // The logger stage never comes after the kill.
        #expect(t([("KILLWAIT1", "9")]) == ShutdownTimings(loggers: 4, kill: 4))
        #expect(t([("KILLWAIT", "junk")]) == ShutdownTimings(loggers: 2, kill: 4))
        #expect(t([("KILLWAIT", "0.5")]) == ShutdownTimings(loggers: 0.25, kill: 0.5))
    }
}

@Suite struct SystemdNotifyTests {
    @Test func messages() {
        #expect(SystemdNotify.ready(status: "supervising 2 services", mainPID: 42)
                == "READY=1\nSTATUS=supervising 2 services\nMAINPID=42\n")
        #expect(SystemdNotify.stopping(status: "bye") == "STOPPING=1\nSTATUS=bye\n")
        #expect(SystemdNotify.message([("STATUS", "two\nlines")]) == "STATUS=two lines\n")
    }

    @Test func addresses() throws {
        let path = try SystemdNotify.socketPath("/run/systemd/notify").get()
        #expect(path.path == Array("/run/systemd/notify".utf8) + [0])
        #expect(path.length == 2 + 19 + 1)
        let abstract = try SystemdNotify.socketPath("@sd-notify").get()
        #expect(abstract.path == [0] + Array("sd-notify".utf8))
        #expect(abstract.length == 2 + 10)
        #expect(throws: SystemdNotify.AddressError.self) { try SystemdNotify.socketPath("vsock:2:1").get() }
        #expect(throws: SystemdNotify.AddressError.self) {
            try SystemdNotify.socketPath("/" + String(repeating: "x", count: 200)).get()
        }
        #expect(throws: SystemdNotify.AddressError.self) { try SystemdNotify.socketPath("@").get() }
        #expect(SystemdNotify(environment: Environment([("NOTIFY_SOCKET", "")])) == nil)
        #expect(SystemdNotify(environment: Environment([("NOTIFY_SOCKET", "@x")]))?.address == "@x")
    }
}

@Suite struct ProcFSTests {
    @Test func statLineParsing() {
        let line = Array("1234 (a) b) c) S 77 1234 1234 0 -1".utf8)
        #expect(ProcFS.parentPID(statLine: line) == 77)
        #expect(ProcFS.state(statLine: line) == "S")
        #expect(ProcFS.parentPID(statLine: Array("garbage".utf8)) == nil)
        #expect(ProcFS.commandName(getpid()) != nil)
        #expect(ProcFS.parentPID(statLine: ProcFS.statText(getpid()) ?? []) == getppid())
    }
}

@Suite struct SvscanbootPlanTests {
    @Test func commandAndPath() {
        #expect(SvscanbootPlan.searchPath(prefix: "/opt/x")
                == "/opt/x/bin:/opt/x/sbin:/bin:/usr/bin:/usr/local/bin:/sbin:/usr/sbin")
        let plain = SvscanbootPlan(scanDirectory: "/service", prefix: "/usr", variablesIsDirectory: false,
                                   scanLogFile: false, unshare: nil)
        #expect(plain.command == ["/usr/sbin/svscan", "/service"])
        #expect(plain.useReadproctitle)
        let full = SvscanbootPlan(scanDirectory: "/service", prefix: "/usr", variablesIsDirectory: true,
                                  scanLogFile: true, unshare: "/usr/bin/unshare")
        #expect(full.command == ["/usr/bin/unshare", "--mount", "envdir", "/service/.svscan/variables",
                                 "/usr/sbin/svscan", "/service"])
        #expect(!full.useReadproctitle)
        #expect(SvscanbootPlan.readproctitle("/usr/sbin/readproctitle", scanDirectory: "/service").count == 4)
    }

    @Test func scanDirectoryChoice() {
        #expect(SvscanbootPlan.scanDirectories(operands: ["/a", "/b"], configured: Array("/c\n".utf8), fallback: "/service")
                == ["/a", "/b"])
        #expect(SvscanbootPlan.scanDirectories(operands: [], configured: Array(" /c \nignored\n".utf8), fallback: "/service")
                == ["/c"])
        #expect(SvscanbootPlan.scanDirectories(operands: [], configured: Array("\n".utf8), fallback: "/service")
                == ["/service"])
        #expect(SvscanbootPlan.scanDirectories(operands: [], configured: nil, fallback: "/service") == ["/service"])
    }

    @Test func leftoversAreServicesLogsAndTheOwnLogger() {
        #expect(SvscanbootPlan.leftovers(scanDirectory: "/s", names: ["b", ".svscan", "a", ".off"])
                == ["/s/a", "/s/b", "/s/a/log", "/s/b/log", "/s/.svscan/log"])
    }

    @Test func entrypointParsing() {
        typealias I = DockerEntrypointCommand.Invocation
        #expect(I.parse([]).map { $0.runsSvscan } == true)
        #expect(I.parse(["-r", "--", "ls", "-l"])?.program == ["ls", "-l"])
        #expect(I.parse(["-r", "--", "ls", "-l"])?.repair == true)
        #expect(I.parse(["--domain=example.org", "-t", "UTC", "webmail"])?.runsSvscan == true)
        #expect(I.parse(["--domain=example.org"])?.domain == "example.org")
        #expect(I.parse(["-tEurope/Paris"])?.timezone == "Europe/Paris")
        #expect(I.parse(["-q"]) == nil)
    }
}
