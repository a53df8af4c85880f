// svc, svstat and svok against hand-made supervise/ directories: the bytes svc writes, its
// waits and exit codes, svstat's lines and codes, svok's codes, and the run-state lookup.
import Core
import Glibc
import Supervise
import Testing

@Suite struct SvcTests {
    @Test func writesLettersInOrderWithoutDuplicates() {
        let box = Sandbox()
        let service = FakeSupervise(box, "service/a")
        service.hold("ok")
        let control = service.hold("control")
        let r = run([Build.indimail, "svc", "-u", "-dk", "-u", "-T", "3", "-hG", "-k", "-U1", "-2", service.dir],
                    environment: clientEnvironment(box))
        #expect(r.exitCode == 0, "\(r.err)")
        #expect(r.err == "")
        #expect(service.drain(control) == Array("udkhGU12".utf8))

        let every = run([Build.indimail, "svc", "-udropchaitqkxU12G", service.dir], environment: clientEnvironment(box))
        #expect(every.exitCode == 0)
        #expect(service.drain(control) == Array("udropchaitqkxU12G".utf8))
    }

    @Test func sendsToEveryDirectoryAndKeepsTheFirstFailureCode() {
        let box = Sandbox()
        let a = FakeSupervise(box, "service/a")
        let b = FakeSupervise(box, "service/b")
        let controlA = a.hold("control")
        let controlB = b.hold("control")
        let idle = FakeSupervise(box, "service/idle")  // FIFOs, nobody reading
        let r = run([Build.indimail, "svc", "-t", a.dir, idle.dir, box.at("missing"), b.dir],
                    environment: clientEnvironment(box))
        #expect(r.exitCode == 2)
        #expect(r.err.contains("svc: warning: unable to control \(idle.dir): supervise not running\n"))
        #expect(r.err.contains("svc: warning: unable to access \(box.at("missing")): No such file or directory\n"))
        #expect(a.drain(controlA) == [UInt8(ascii: "t")])
        #expect(b.drain(controlB) == [UInt8(ascii: "t")])

        let missingFirst = run([Build.indimail, "svc", "-t", box.at("missing"), idle.dir], environment: clientEnvironment(box))
        #expect(missingFirst.exitCode == 1)
        let bare = box.directory("service/bare")  // no supervise/ at all
        #expect(run([Build.indimail, "svc", "-u", bare], environment: clientEnvironment(box)).exitCode == 2)
    }

    @Test func controlThatCannotBeOpenedIsCodeOne() {
        let box = Sandbox()
        let service = FakeSupervise(box, "service/a", fifos: ["ok"])
        box.directory("service/a/supervise/control")  // EISDIR on open
        let r = run([Build.indimail, "svc", "-u", service.dir], environment: clientEnvironment(box))
        #expect(r.exitCode == 1)
        #expect(r.err.hasPrefix("svc: warning: unable to open \(service.dir)/supervise/control: "))
    }

    @Test func usageErrors() {
        for argv in [["svc", "-z", "x"], ["svc", "-T"], ["svc", "-T", "soon", "-w", "x"], ["svc", "-T", "-1", "x"]] {
            let r = run([Build.indimail] + argv)
            #expect(r.exitCode == 100, "\(argv)")
            #expect(r.err.contains("svc: usage: svc [-udropchaitqkxU12G] [-w|-W|-R] [-T secs] dir"))
        }
        #expect(run([Build.indimail, "svc"]).exitCode == 0)  // nothing to do, as the reference
    }

    @Test(arguments: [("-w", "up", "up"), ("-W", "dn", "down"), ("-R", "rdy", "ready")])
    func waitsForTheFifoReader(_ flag: String, _ fifo: String, _ word: String) {
        let box = Sandbox()
        let service = FakeSupervise(box, "service/a")
        service.hold("control")
        service.holdLater(fifo, after: 0.3)
        let start = monotonicSeconds()
        let r = run([Build.indimail, "svc", flag, "-T", "10", service.dir], environment: clientEnvironment(box))
        #expect(r.exitCode == 0)
        #expect(r.err == "waiting for \(service.dir) to be \(word) ... ok\n")
        #expect(monotonicSeconds() - start < 5)
    }

    @Test func waitWithoutTimeoutBlocksUntilTheReaderComes() {
        let box = Sandbox()
        let service = FakeSupervise(box, "service/a")
        service.hold("control")
        service.holdLater("up", after: 0.3)
        let r = run([Build.indimail, "svc", "-w", service.dir], environment: clientEnvironment(box), timeout: 10)
        #expect(!r.timedOut)
        #expect(r.exitCode == 0)
        #expect(r.err == "waiting for \(service.dir) to be up ... ok\n")
    }

    @Test func waitTimesOutWithCodeThree() {
        let box = Sandbox()
        let service = FakeSupervise(box, "service/a")
        service.hold("control")
        let start = monotonicSeconds()
        let r = run([Build.indimail, "svc", "-W", "-w", "-T", "1", service.dir], environment: clientEnvironment(box))
        let took = monotonicSeconds() - start
        #expect(r.exitCode == 3)
        #expect(r.err == "waiting for \(service.dir) to be up ... timed out\n")
        #expect(took >= 1 && took < 5)
    }

    @Test func waitSkipsServicesWithoutSuperviseAndFailsOnAMissingFifo() {
        let box = Sandbox()
        let idle = FakeSupervise(box, "service/idle")
        let r = run([Build.indimail, "svc", "-w", "-T", "1", idle.dir], environment: clientEnvironment(box))
        #expect(r.exitCode == 2)
        #expect(r.err == "svc: warning: unable to control \(idle.dir): supervise not running\n")

        // A supervise without the rdy FIFO (another suite's): the wait fails at once.
        let old = FakeSupervise(box, "service/old", fifos: ["control", "ok", "up", "dn"])
        old.hold("control")
        let ready = run([Build.indimail, "svc", "-R", "-T", "5", old.dir], environment: clientEnvironment(box))
        #expect(ready.exitCode == 1)
        #expect(ready.err.hasPrefix("waiting for \(old.dir) to be ready ... failed\nsvc: warning: unable to wait for \(old.dir): "))
    }

    @Test func upThenWaitSendsFirstAndPausesASecond() {
        let box = Sandbox()
        let service = FakeSupervise(box, "service/a")
        let control = service.hold("control")
        service.hold("up")
        let start = monotonicSeconds()
        let r = run([Build.indimail, "svc", "-u", "-w", "-T", "5", service.dir], environment: clientEnvironment(box))
        #expect(r.exitCode == 0)
        #expect(monotonicSeconds() - start >= 1)
        #expect(service.drain(control) == [UInt8(ascii: "u")])
        #expect(r.err == "waiting for \(service.dir) to be up ... ok\n")
    }

    @Test func findsStateInTheRunDirectory() {
        let box = Sandbox()
        let runDir = box.directory("run")
        box.directory("service/foo/log")
        let main = FakeSupervise(box, "run/foo")
        let log = FakeSupervise(box, "run/foo/log")
        let mainControl = main.hold("control")
        let logControl = log.hold("control")
        let env = ["SVSCAN_RUNDIR": runDir, "PATH": "/usr/bin:/bin"]
        let r = run([Build.indimail, "svc", "-h", box.at("service/foo"), box.at("service/foo/log")],
                    environment: env, inheritEnvironment: false)
        #expect(r.exitCode == 0, "\(r.err)")
        #expect(main.drain(mainControl) == [UInt8(ascii: "h")])
        #expect(log.drain(logControl) == [UInt8(ascii: "h")])

        let disabled = run([Build.indimail, "svc", "-h", box.at("service/foo")],
                           environment: env.merging(["DISABLE_RUN": "1"]) { $1 }, inheritEnvironment: false)
        #expect(disabled.exitCode == 2)
    }
}

@Suite struct SvokTests {
    @Test func exitCodes() {
        let box = Sandbox()
        let service = FakeSupervise(box, "service/a")
        let env = clientEnvironment(box)
        #expect(run([Build.indimail, "svok", service.dir], environment: env).exitCode == 100)
        let fd = service.hold("ok")
        let r = run([Build.indimail, "svok", service.dir], environment: env)
        #expect(r.exitCode == 0)
        #expect(r.out == "" && r.err == "")
        service.release(fd)
        #expect(run([Build.indimail, "svok", service.dir], environment: env).exitCode == 100)
        #expect(run([Build.indimail, "svok", box.directory("service/bare")], environment: env).exitCode == 100)
        let missing = run([Build.indimail, "svok", box.at("missing")], environment: env)
        #expect(missing.exitCode == 111)
        #expect(missing.err.hasPrefix("svok: fatal: unable to access "))
        let usage = run([Build.indimail, "svok"])
        #expect(usage.exitCode == 100)
        #expect(usage.err == "svok: usage: svok dir\n")
    }

    @Test func runDirectoryLookup() {
        let box = Sandbox()
        let runDir = box.directory("run")
        box.directory("service/foo/log")
        let main = FakeSupervise(box, "run/foo", fifos: ["ok"])
        let log = FakeSupervise(box, "run/foo/log", fifos: ["ok"])
        let env = ["SVSCAN_RUNDIR": runDir, "PATH": "/usr/bin:/bin"]
        func svok(_ dir: String, _ extra: [String: String] = [:], in cwd: String? = nil) -> Int32? {
            run([Build.indimail, "svok", dir], environment: env.merging(extra) { $1 }, inheritEnvironment: false,
                directory: cwd).exitCode
        }
        #expect(svok(box.at("service/foo")) == 100)
        main.hold("ok")
        #expect(svok(box.at("service/foo")) == 0)
        #expect(svok(box.at("service/foo/log")) == 100)
        log.hold("ok")
        #expect(svok(box.at("service/foo/log")) == 0)
        #expect(svok(".", in: box.at("service/foo/log")) == 0)
        #expect(svok("log", in: box.at("service/foo")) == 0)
        #expect(svok(box.at("service/foo"), ["DISABLE_RUN": "1"]) == 100)

        // A stale FIFO in the service directory does not hide the live one in the run dir.
        _ = Path.makeDirectories(box.at("service/foo/supervise"))
        _ = FIFO.make(box.at("service/foo/supervise/ok"))
        #expect(svok(box.at("service/foo")) == 0)
    }
}

@Suite struct SvstatTests {
    static let deadPid: Int32 = 999_999_999

    struct Case: Sendable, CustomTestStringConvertible {
        /// Made when the test runs, so the time since the change is as written.
        var status: @Sendable () -> ServiceStatus
        var normallyDown = false
        var line: String
        var code: Int32
        var testDescription: String { line }
    }

    static let me = getpid()
    static let cases: [Case] = [
        Case(status: { status(pid: me, running: true) }, line: "D: up T seconds  pid \(me) ", code: 0),
        Case(status: { status(pid: 4321, running: false) }, line: "D: down T seconds spid 4321 ", code: 1),
        Case(status: { status(pid: 4321, wait: -2, running: false) }, line: "D: wait T seconds spid 4321 ", code: 1),
        Case(status: { status(ago: 2, pid: 4321, wait: 60, running: false) },
             line: "D: wait T seconds spid 4321 remaining 58 seconds", code: 1),
        Case(status: { status(pid: me, paused: true, running: true) }, line: "D: up T seconds, paused  pid \(me) ", code: 3),
        Case(status: { status(pid: me, want: .down, running: true) }, line: "D: up T seconds, want down  pid \(me) ", code: 5),
        Case(status: { status(pid: me, running: true) }, normallyDown: true,
             line: "D: up T seconds, normally down  pid \(me) ", code: 0),
        Case(status: { status(pid: deadPid, running: true) }, line: "D: up T seconds ?pid \(deadPid) ", code: 0),
        Case(status: { status(pid: me, running: true, readiness: .pending) }, line: "D: up T seconds  pid \(me) not ready", code: 0),
        Case(status: { status(pid: me, running: true, readiness: .ready(TAI64N.now())) },
             line: "D: up T seconds  pid \(me) ready T seconds", code: 0),
    ]

    @Test(arguments: cases)
    func reportsEachState(_ c: Case) {
        let box = Sandbox()
        let service = FakeSupervise(box, "service/a")
        if c.normallyDown { box.write("service/a/down", "") }
        service.writeStatus(c.status())
        service.hold("ok")
        let r = run([Build.indimail, "svstat", service.dir], environment: clientEnvironment(box))
        #expect(r.exitCode == c.code)
        #expect(normalized(r.out) == c.line.replacingFirst("D", with: service.dir) + "\n")
        #expect(r.err == "")
    }

    @Test func readsDjbStatusFiles() {
        let box = Sandbox()
        let service = FakeSupervise(box, "service/a", fifos: ["ok", "control"])
        service.hold("ok")
        let tai = TAI64N.now().packed
        let me = UInt32(getpid())
        let pidBytes = [UInt8(me & 0xff), UInt8(me >> 8 & 0xff), UInt8(me >> 16 & 0xff), UInt8(me >> 24)]
        service.writeStatus(tai + pidBytes + [0, UInt8(ascii: "u")])
        let up = run([Build.indimail, "svstat", service.dir], environment: clientEnvironment(box))
        #expect(up.exitCode == 0)
        #expect(normalized(up.out) == "\(service.dir): up T seconds  pid \(me) \n")
        service.writeStatus(tai + [0, 0, 0, 0, 0, UInt8(ascii: "d")])
        let down = run([Build.indimail, "svstat", service.dir], environment: clientEnvironment(box))
        #expect(down.exitCode == 1)
        #expect(normalized(down.out) == "\(service.dir): down T seconds, normally up\n")
    }

    @Test func errorsAndTheLastDirectorysCode() {
        let box = Sandbox()
        let env = clientEnvironment(box)
        let good = FakeSupervise(box, "service/good")
        good.writeStatus(status(pid: getpid(), running: true))
        good.hold("ok")
        let idle = FakeSupervise(box, "service/idle")
        let bad = FakeSupervise(box, "service/bad")
        bad.writeStatus([1, 2, 3, 4, 5])
        bad.hold("ok")
        let nostatus = FakeSupervise(box, "service/nostatus")
        nostatus.hold("ok")

        let r1 = run([Build.indimail, "svstat", good.dir, idle.dir], environment: env)
        #expect(r1.exitCode == 2)
        #expect(r1.out.hasPrefix("\(good.dir): up "))
        #expect(r1.err == "svstat: warning: unable to open \(idle.dir)/supervise/ok: supervise not running\n")
        let r2 = run([Build.indimail, "svstat", idle.dir, good.dir], environment: env)
        #expect(r2.exitCode == 0)
        let r3 = run([Build.indimail, "svstat", bad.dir], environment: env)
        #expect(r3.exitCode == 100)
        #expect(r3.err == "svstat: warning: unable to read \(bad.dir)/supervise/status: bad format\n")
        #expect(run([Build.indimail, "svstat", nostatus.dir], environment: env).exitCode == 2)
        let missing = run([Build.indimail, "svstat", box.at("missing")], environment: env)
        #expect(missing.exitCode == 111)
        #expect(missing.err.hasPrefix("svstat: warning: unable to access \(box.at("missing")): "))
        #expect(run([Build.indimail, "svstat"]).exitCode == 100)
    }

    @Test func json() {
        let box = Sandbox()
        let env = clientEnvironment(box)
        let good = FakeSupervise(box, "service/good")
        good.writeStatus(status(pid: 4321, want: .down, running: false))
        good.hold("ok")
        let idle = FakeSupervise(box, "service/idle")
        let r = run([Build.indimail, "svstat", "--json", good.dir, idle.dir], environment: env)
        #expect(r.exitCode == 2)
        let lines = r.out.split(separator: "\n").map(String.init)
        #expect(lines.count == 2)
        #expect(maskSeconds(lines[0]) == """
            {"service":"\(good.dir)","state":"down","seconds":T,"pid":null,"pidAlive":null,"supervisePid":4321,\
            "paused":false,"want":"down","normallyUp":true,"ready":null,"readySeconds":null,"remaining":null,"error":null}
            """)
        #expect(lines[1].hasPrefix("{\"service\":\"\(idle.dir)\",\"state\":\"not-running\",\"seconds\":null"))
        #expect(lines[1].hasSuffix("\"error\":\"supervise not running\"}"))
        #expect(run([Build.indimail, "svstat", "-j", good.dir], environment: env).out.hasPrefix("{"))
    }

    @Test func runDirectoryAndDotArguments() {
        let box = Sandbox()
        let runDir = box.directory("run")
        box.directory("service/foo/log")
        let main = FakeSupervise(box, "run/foo", fifos: ["ok"])
        let log = FakeSupervise(box, "run/foo/log", fifos: ["ok"])
        main.writeStatus(status(pid: 11, running: false))
        log.writeStatus(status(pid: 12, running: false))
        main.hold("ok")
        log.hold("ok")
        box.write("service/foo/down", "")  // looked for in the service dir, not the run dir
        let env = ["SVSCAN_RUNDIR": runDir, "PATH": "/usr/bin:/bin"]
        let r = run([Build.indimail, "svstat", box.at("service/foo"), box.at("service/foo/log")],
                    environment: env, inheritEnvironment: false)
        #expect(r.exitCode == 1)
        #expect(normalized(r.out) == """
            \(box.at("service/foo")): down T seconds spid 11 
            \(box.at("service/foo/log")): down T seconds spid 12 

            """)
        let dot = run([Build.indimail, "svstat", "."], environment: env, inheritEnvironment: false,
                      directory: box.at("service/foo/log"))
        #expect(normalized(dot.out) == ".: down T seconds spid 12 \n")
    }
}

extension String {
    func replacingFirst(_ target: String, with replacement: String) -> String {
        var i = startIndex
        while i < endIndex {
            if self[i...].hasPrefix(target) {
                return String(self[..<i]) + replacement + String(self[index(i, offsetBy: target.count)...])
            }
            i = index(after: i)
        }
        return self
    }
}

/// The JSON object with the value of "seconds" replaced by T.
func maskSeconds(_ json: String) -> String {
    let key = "\"seconds\":"
    guard let start = json.firstRange(of: key)?.upperBound else { return json }
    let end = json[start...].firstIndex(of: ",") ?? json.endIndex
    return String(json[..<start]) + "T" + String(json[end...])
}
