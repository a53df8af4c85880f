// The table svps prints: svscan, then the main services grouped down / wait / up, then the
// loggers. Pure: built from probe outcomes, so it can be tested without processes.
import Core

public struct SvpsTable: Sendable {
    public struct SvscanRow: Equatable, Sendable {
        /// svscan's command line, or a stand-in naming the scan directory.
        public var name: String
        /// nil when no running svscan was found for the scan directory.
        public var pid: Int32?
        public var uptime: Interval

        public init(name: String, pid: Int32?, uptime: Interval) {
            self.name = name
            self.pid = pid
            self.uptime = uptime
        }
    }

    public struct Sections: OptionSet, Sendable {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }
        public static let main = Sections(rawValue: 1)
        public static let logs = Sections(rawValue: 2)
        public static let all: Sections = [.main, .logs]
    }

    public var svscans: [SvscanRow] = []
    /// Main services, as (path shown, outcome).
    public var services: [(String, ServiceProbe.Outcome)] = []
    /// svscan's own logger (`.svscan/log`), listed first among the logs.
    public var svscanLogs: [(String, ServiceProbe.Outcome)] = []
    public var logs: [(String, ServiceProbe.Outcome)] = []
    /// Uptimes as days, hours, minutes and seconds instead of seconds.
    public var days = false

    public init() {}

    public func render(_ sections: Sections) -> String {
        var names = svscans.map { $0.name }
        if sections.contains(.main) { names += services.map { $0.0 } }
        if sections.contains(.logs) { names += (svscanLogs + logs).map { $0.0 } }
        let width = (names.map { $0.count }.max() ?? 0) + 1

        var text = SvpsTable.header("svscan")
        for row in svscans {
            if let pid = row.pid {
                text += pad(row.name, width) + " " + pad("up", 4) + " " + uptime(row.uptime)
                    + "  pid " + leftPad(String(pid), 7) + "\n"
            } else {
                text += pad(row.name, width) + " svscan not running\n"
            }
        }
        if sections.contains(.main) {
            text += "\n" + SvpsTable.header("main")
            text += rows(ordered(services), width)
        }
        if sections.contains(.logs) {
            text += "\n" + SvpsTable.header("logs")
            text += rows(svscanLogs, width) + rows(ordered(logs), width)
        }
        return text
    }

    /// "------------ main -----------------": 35 columns whatever the title.
    static func header(_ title: String) -> String {
        let left = "------------ " + title + " "
        return left + String(repeating: "-", count: max(3, 35 - left.count)) + "\n"
    }

    /// Down first, then waiting, then up, each by time since the last change (most recent
    /// first) then name; directories without a report last, by name.
    func ordered(_ list: [(String, ServiceProbe.Outcome)]) -> [(String, ServiceProbe.Outcome)] {
        func rank(_ outcome: ServiceProbe.Outcome) -> Int {
            guard case .report(let r) = outcome else { return 3 }
            switch r.state {
            case .down: return 0
            case .wait: return 1
            case .up: return 2
            }
        }
        func elapsed(_ outcome: ServiceProbe.Outcome) -> Interval {
            if case .report(let r) = outcome { return r.elapsed }
            return Interval(seconds: 0, nanoseconds: 0)
        }
        return list.sorted { a, b in
            let (ra, rb) = (rank(a.1), rank(b.1))
            if ra != rb { return ra < rb }
            let (ea, eb) = (elapsed(a.1), elapsed(b.1))
            if ea != eb { return (ea.seconds, ea.nanoseconds) < (eb.seconds, eb.nanoseconds) }
            return a.0 < b.0
        }
    }

    func rows(_ list: [(String, ServiceProbe.Outcome)], _ width: Int) -> String {
        var text = ""
        for (name, outcome) in list {
            text += pad(name, width) + " "
            switch outcome {
            case .notRunning:
                text += "supervise not running\n"
            case .failed(_, let message):
                text += "error: " + message + "\n"
            case .report(let r):
                text += row(r) + "\n"
            }
        }
        return text
    }

    /// `up   <uptime>  pid <pid>` and the notes svstat would print as flags.
    func row(_ r: ServiceReport) -> String {
        let pid = UInt32(bitPattern: r.status.pid)
        var text = pad(r.state.rawValue, 4) + " " + uptime(r.elapsed)
        if r.status.running && pid != 0 {
            text += (r.pidAlive ? "  pid " : " ?pid ") + leftPad(String(pid), 7)
        } else if pid != 0 {
            text += " spid " + leftPad(String(pid), 7)
        }
        if let remaining = r.remaining {
            text += " remaining " + leftPad(String(remaining), 7) + " seconds"
        }
        var notes = r.flags.filter { $0 != "normally up" && $0 != "want up" }
        if r.ready == false { notes.append("not ready") }
        if !notes.isEmpty { text += "  " + notes.joined(separator: ", ") }
        return text
    }

    func uptime(_ interval: Interval) -> String {
        let s = interval.seconds
        guard days else { return leftPad(String(s), 7) + " secs" }
        return leftPad(String(s / 86400), 2) + " days, " + Format.pad(Int(s % 86400 / 3600), 2) + " hrs, "
            + Format.pad(Int(s % 3600 / 60), 2) + " mins, " + Format.pad(Int(s % 60), 2) + " secs"
    }

    func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
    }

    func leftPad(_ s: String, _ width: Int) -> String {
        s.count >= width ? s : String(repeating: " ", count: width - s.count) + s
    }
}
