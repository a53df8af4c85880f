// svstat's line, exit status and JSON for every state and flag, and svps's table: pure
// functions of a status, so no process is needed.
import Core
import Supervise
import Testing

private let changed = TAI64N(unixSeconds: 1_700_000_000, nanoseconds: 250_000_000)
/// Five seconds and one nanosecond after `changed`.
private let now = TAI64N(unixSeconds: 1_700_000_005, nanoseconds: 250_000_001)

private func report(_ status: ServiceStatus, normallyUp: Bool = true, alive: Bool = true,
                    at time: TAI64N = now) -> ServiceReport {
    ServiceReport(service: "/service/x", status: status, normallyUp: normallyUp, pidAlive: alive, now: time)
}

private func up(pid: Int32 = 123, paused: Bool = false, want: ServiceStatus.Want = .up,
                readiness: ServiceStatus.Readiness = .notTracked) -> ServiceStatus {
    ServiceStatus(changed: changed, pid: pid, paused: paused, want: want, running: true, readiness: readiness)
}

private func down(pid: Int32 = 99, want: ServiceStatus.Want = .down, wait: Int16 = 0) -> ServiceStatus {
    ServiceStatus(changed: changed, pid: pid, want: want, waitSeconds: wait, running: false)
}

@Suite struct SvstatFormatTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var report: ServiceReport
        var line: String
        var code: Int32
        var testDescription: String { line }
    }

    static let cases: [Case] = [
        Case(report: report(up()), line: "/service/x: up 5.000000001 seconds  pid 123 ", code: 0),
        Case(report: report(up(), alive: false), line: "/service/x: up 5.000000001 seconds ?pid 123 ", code: 0),
        Case(report: report(up(), normallyUp: false),
             line: "/service/x: up 5.000000001 seconds, normally down  pid 123 ", code: 0),
        Case(report: report(up(paused: true)), line: "/service/x: up 5.000000001 seconds, paused  pid 123 ", code: 3),
        Case(report: report(up(want: .down)), line: "/service/x: up 5.000000001 seconds, want down  pid 123 ", code: 5),
        Case(report: report(up(want: .once)), line: "/service/x: up 5.000000001 seconds  pid 123 ", code: 0),
        Case(report: report(up(paused: true, want: .down), normallyUp: false),
             line: "/service/x: up 5.000000001 seconds, normally down, paused, want down  pid 123 ", code: 5),
        Case(report: report(down()), line: "/service/x: down 5.000000001 seconds spid 99 ", code: 1),
        Case(report: report(down(want: .up)), line: "/service/x: down 5.000000001 seconds spid 99 ", code: 1),
        Case(report: report(down(), normallyUp: false), line: "/service/x: down 5.000000001 seconds spid 99 ", code: 1),
        Case(report: report(down(wait: -2)), line: "/service/x: wait 5.000000001 seconds spid 99 ", code: 1),
        Case(report: report(down(wait: 30)),
             line: "/service/x: wait 5.000000001 seconds spid 99 remaining 25 seconds", code: 1),
        Case(report: report(down(wait: 5)), line: "/service/x: wait 5.000000001 seconds spid 99 ", code: 1),
        // djb's layout: pid 0 when down, and the flags the djb svstat shows for it.
        Case(report: report(down(pid: 0)), line: "/service/x: down 5.000000001 seconds, normally up", code: 1),
        Case(report: report(down(pid: 0, want: .up)),
             line: "/service/x: down 5.000000001 seconds, normally up, want up", code: 1),
        Case(report: report(down(pid: 0), normallyUp: false), line: "/service/x: down 5.000000001 seconds", code: 1),
        // Readiness, at the end of the line.
        Case(report: report(up(readiness: .pending)),
             line: "/service/x: up 5.000000001 seconds  pid 123 not ready", code: 0),
        Case(report: report(up(readiness: .ready(TAI64N(unixSeconds: 1_700_000_003, nanoseconds: 0)))),
             line: "/service/x: up 5.000000001 seconds  pid 123 ready 2.250000001 seconds", code: 0),
        Case(report: report(up(paused: true, readiness: .pending)),
             line: "/service/x: up 5.000000001 seconds, paused  pid 123 not ready", code: 3),
        // A readiness trailer is ignored while the service is not running.
        Case(report: report(ServiceStatus(changed: changed, pid: 9, running: false, readiness: .pending)),
             line: "/service/x: down 5.000000001 seconds spid 9 ", code: 1),
    ]

    @Test(arguments: cases)
    func line(_ c: Case) {
        #expect(c.report.line == c.line)
        #expect(c.report.exitCode == c.code)
    }

    @Test func elapsedIsClampedAndBorrows() {
        let early = TAI64N(unixSeconds: 1_699_999_000, nanoseconds: 0)
        #expect(report(up(), at: early).elapsed == Interval(seconds: 0, nanoseconds: 0))
        #expect(report(up(), at: changed).line == "/service/x: up 0.000000000 seconds  pid 123 ")
        let borrow = TAI64N(unixSeconds: 1_700_000_002, nanoseconds: 100)
        #expect(report(up(), at: borrow).elapsed == Interval(seconds: 1, nanoseconds: 750_000_100))
        #expect(Interval(seconds: 12, nanoseconds: 5).text == "12.000000005")
    }

    @Test func states() {
        #expect(report(up()).state == .up)
        #expect(report(down()).state == .down)
        #expect(report(down(wait: -2)).state == .wait)
        #expect(report(down(wait: 4)).state == .wait)
        #expect(report(up()).ready == nil)
        #expect(report(up(readiness: .pending)).ready == false)
    }

    @Test func jsonForAnUpService() {
        let r = report(up(paused: true, readiness: .ready(TAI64N(unixSeconds: 1_700_000_004, nanoseconds: 0))),
                       normallyUp: false)
        #expect(r.json == """
            {"service":"/service/x","state":"up","seconds":5.000000001,"pid":123,"pidAlive":true,\
            "supervisePid":null,"paused":true,"want":"up","normallyUp":false,"ready":true,\
            "readySeconds":1.250000001,"remaining":null,"error":null}
            """)
    }

    @Test func jsonForWaitingAndDown() {
        #expect(report(down(want: .once, wait: 30)).json == """
            {"service":"/service/x","state":"wait","seconds":5.000000001,"pid":null,"pidAlive":null,\
            "supervisePid":99,"paused":false,"want":"once","normallyUp":true,"ready":null,\
            "readySeconds":null,"remaining":25,"error":null}
            """)
        #expect(report(up(readiness: .pending)).json.contains("\"ready\":false,\"readySeconds\":null"))
    }

    @Test func jsonForFailuresAndEscaping() {
        #expect(ServiceReport.failureJSON(service: "a\"b\\c\n", state: "not-running", error: "x\u{1}") == """
            {"service":"a\\"b\\\\c\\n","state":"not-running","seconds":null,"pid":null,"pidAlive":null,\
            "supervisePid":null,"paused":null,"want":null,"normallyUp":null,"ready":null,\
            "readySeconds":null,"remaining":null,"error":"x\\u0001"}
            """)
    }
}

@Suite struct SvpsTableTests {
    @Test func groupsMainServicesDownWaitUpAndListsLogs() {
        var table = SvpsTable()
        table.svscans = [.init(name: "/usr/sbin/svscan /service", pid: 10, uptime: Interval(seconds: 3, nanoseconds: 0))]
        let older = TAI64N(unixSeconds: 1_699_999_000, nanoseconds: 0)
        table.services = [
            ("/service/up-old", .report(report(ServiceStatus(changed: older, pid: 21, running: true)))),
            ("/service/up-new", .report(report(up(pid: 22)))),
            ("/service/gone", .notRunning(message: "x")),
            ("/service/waiting", .report(report(down(pid: 23, wait: 30)))),
            ("/service/stopped", .report(report(down(pid: 24)))),
            ("/service/held", .report(report(up(pid: 25, paused: true)))),
        ]
        table.svscanLogs = [("/service/.svscan/log", .report(report(up(pid: 30))))]
        table.logs = [("/service/up-new/log", .report(report(up(pid: 31))))]
        #expect(table.render(.all) == """
            ------------ svscan ---------------
            /usr/sbin/svscan /service  up         3 secs  pid      10
            
            ------------ main -----------------
            /service/stopped           down       5 secs spid      24
            /service/waiting           wait       5 secs spid      23 remaining      25 seconds
            /service/held              up         5 secs  pid      25  paused
            /service/up-new            up         5 secs  pid      22
            /service/up-old            up      1005 secs  pid      21
            /service/gone              supervise not running
            
            ------------ logs -----------------
            /service/.svscan/log       up         5 secs  pid      30
            /service/up-new/log        up         5 secs  pid      31
            
            """)
    }

    @Test func daysAndMissingSvscan() {
        var table = SvpsTable()
        table.days = true
        table.svscans = [.init(name: "svscan /x", pid: nil, uptime: Interval(seconds: 0, nanoseconds: 0))]
        table.services = [("/x/a", .report(report(ServiceStatus(changed: TAI64N(unixSeconds: 1_699_900_000),
                                                                  pid: 5, running: true))))]
        #expect(table.render(.main) == """
            ------------ svscan ---------------
            svscan /x  svscan not running
            
            ------------ main -----------------
            /x/a       up    1 days, 03 hrs, 46 mins, 45 secs  pid       5
            
            """)
    }
}
