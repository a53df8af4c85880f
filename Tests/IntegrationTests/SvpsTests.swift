// svps on a hand-made scan directory: sections and grouping, options, the svscan pid file,
// signalling svscan, stopping and resuming every running service.
import Core
import Glibc
import Supervise
import Testing

@Suite struct SvpsTests {
    /// A scan directory of fake services and a stand-in svscan (a `sleep`) named by the
    /// pid file in the reference's layout.
    final class Scan {
        let box = Sandbox()
        let dir: String
        var services: [String: FakeSupervise] = [:]
        var svscan: pid_t = 0

        init(pidFile: Bool = true) {
            dir = box.directory("sd")
            let me = getpid()
            add("a", status(ago: 10, pid: me, running: true))
            add("e", status(ago: 100, pid: me, running: true))
            add("b", status(ago: 20, pid: 4321, want: .down, running: false))
            add("c", status(ago: 5, pid: 4322, wait: 60, running: false))
            services["d"] = FakeSupervise(box, "sd/d")  // supervise not running
            add("a/log", status(ago: 7, pid: me, running: true))
            add(".svscan/log", status(ago: 3, pid: me, running: true))
            box.write("sd/notadir", "")
            box.directory("sd/.hidden")
            if pidFile, case .success(let pid) = Spawn.start([Array("sleep".utf8), Array("30".utf8)],
                                                            environment: Environment.current()) {
                svscan = pid
                let raw = withUnsafeBytes(of: pid) { Array($0) }
                box.write("sd/.svscan.pid", raw + Array("\n\(pid)\n".utf8))
            }
        }

        deinit {
            if svscan > 0 {
                kill(svscan, SIGKILL)
                _ = waitWithDeadline(svscan, seconds: 5)
            }
        }

        func add(_ name: String, _ status: ServiceStatus) {
            let service = FakeSupervise(box, "sd/" + name)
            service.writeStatus(status)
            service.hold("ok")
            services[name] = service
        }

        func svps(_ argv: String..., environment extra: [String: String] = [:]) -> Outcome {
            run([Build.indimail, "svps"] + argv,
                environment: ["SVSCAN_RUNDIR": box.at("no-run")].merging(extra) { $1 })
        }
    }

    /// The table with runs of blanks collapsed and the numbers that move with time masked.
    func tokens(_ text: String) -> [String] {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            var words = line.split(separator: " ").map(String.init)
            for i in words.indices where i + 1 < words.count && (words[i + 1] == "secs" || words[i + 1] == "seconds") {
                words[i] = "N"
            }
            return words.joined(separator: " ")
        }
    }

    @Test func groupsServicesAndLogs() {
        let scan = Scan()
        let d = scan.dir
        let me = getpid()
        let r = scan.svps("-a", "-n", "--servicedir=\(d)")
        #expect(r.exitCode == 0, "\(r.err)")
        #expect(r.err == "")
        #expect(tokens(r.out) == [
            "------------ svscan ---------------",
            "sleep 30 up N secs pid \(scan.svscan)",
            "",
            "------------ main -----------------",
            "\(d)/b down N secs spid 4321",
            "\(d)/c wait N secs spid 4322 remaining N seconds",
            "\(d)/a up N secs pid \(me)",
            "\(d)/e up N secs pid \(me)",
            "\(d)/d supervise not running",
            "",
            "------------ logs -----------------",
            "\(d)/.svscan/log up N secs pid \(me)",
            "\(d)/a/log up N secs pid \(me)",
            "",
        ])
        // Every state starts in the same column.
        let rows = r.out.split(separator: "\n").filter { $0.hasPrefix(d) && !$0.hasSuffix("not running") }
        let stateColumn = Set(rows.map { row -> Int in
            let name = row.prefix { $0 != " " }
            return name.count + row.dropFirst(name.count).prefix { $0 == " " }.count
        })
        #expect(rows.count == 6)
        #expect(stateColumn.count == 1)
    }

    @Test func sectionsByOptionAndScanDirectoryFromTheEnvironment() {
        let scan = Scan()
        let main = scan.svps("-n", environment: ["SERVICEDIR": scan.dir])
        #expect(main.exitCode == 0)
        #expect(main.out.contains("---- main ----"))
        #expect(!main.out.contains("---- logs ----"))
        let logs = scan.svps("--logs", "--no-pager", environment: ["SERVICEDIR": scan.dir])
        #expect(!logs.out.contains("---- main ----"))
        #expect(logs.out.contains("\(scan.dir)/a/log "))
        let days = scan.svps("-nd", "--servicedir", scan.dir)
        #expect(days.out.contains(" 0 days, 00 hrs, 00 mins, "))
    }

    @Test func withoutSvscanTheTableIsPrintedAndTheCodeIsOne() {
        let scan = Scan(pidFile: false)
        let r = scan.svps("-n", "--servicedir=\(scan.dir)")
        #expect(r.exitCode == 1)
        #expect(tokens(r.out).starts(with: ["------------ svscan ---------------",
                                             "svscan \(scan.dir) svscan not running"]))
        #expect(r.out.contains("\(scan.dir)/a "))
        let hup = scan.svps("-h", "--servicedir=\(scan.dir)")
        #expect(hup.exitCode == 1)
        #expect(hup.err == "svps: fatal: svscan not running for \(scan.dir)\n")
    }

    @Test(arguments: [("-h", "HUP", SIGHUP), ("--term", "TERM", SIGTERM)])
    func signalsSvscan(_ flag: String, _ word: String, _ signal: Int32) {
        let scan = Scan()
        let r = scan.svps(flag, "--servicedir=\(scan.dir)")
        #expect(r.exitCode == 0)
        #expect(r.out == "Sending \(word) to svscan with PID \(scan.svscan)\n")
        #expect(waitWithDeadline(scan.svscan, seconds: 5) == .signaled(signal, coreDumped: false))
        scan.svscan = 0
    }

    @Test func stopsAndResumesRunningServices() {
        let scan = Scan()
        let stopDir = scan.box.directory("stopped")
        let controlA = scan.services["a"]!.hold("control")
        let controlE = scan.services["e"]!.hold("control")
        let controlB = scan.services["b"]!.hold("control")
        let env = ["SVPS_STOPDIR": stopDir]
        let stop = scan.svps("-s", "--servicedir=\(scan.dir)", environment: env)
        #expect(stop.exitCode == 0)
        #expect(stop.out == "Stopping all running services\n")
        #expect(scan.services["a"]!.drain(controlA) == [UInt8(ascii: "d")])
        #expect(scan.services["e"]!.drain(controlE) == [UInt8(ascii: "d")])
        #expect(scan.services["b"]!.drain(controlB) == [])
        #expect(Path.exists(stopDir + scan.dir + "/a/down"))
        #expect(!Path.exists(stopDir + scan.dir + "/b"))

        let resume = scan.svps("-r", "--servicedir=\(scan.dir)", environment: env)
        #expect(resume.exitCode == 0)
        #expect(resume.out == "Starting all stopped services\n")
        #expect(scan.services["a"]!.drain(controlA) == [UInt8(ascii: "u")])
        #expect(scan.services["e"]!.drain(controlE) == [UInt8(ascii: "u")])
        #expect(!Path.exists(stopDir + scan.dir + "/a"))
        let again = scan.svps("-r", "--servicedir=\(scan.dir)", environment: env)
        #expect(again.err == "No stopped services found\n")
    }

    @Test func usage() {
        let r = run([Build.indimail, "svps", "--bogus"])
        #expect(r.exitCode == 100)
        #expect(r.err.contains("svps: usage: svps "))
        #expect(run([Build.indimail, "svps", "-x"]).exitCode == 100)
        let unreadable = run([Build.indimail, "svps", "-n", "--servicedir=/nonexistent/scan"])
        #expect(unreadable.exitCode == 111)
    }
}
