// What svstat and svps say about one service: pure functions of a decoded status file, the
// `down` file, whether the pid exists, and the current time.
import Core

/// A non-negative time interval printed as `<seconds>.<9-digit nanoseconds>`.
public struct Interval: Equatable, Sendable {
    public var seconds: UInt64
    public var nanoseconds: UInt32

    public init(seconds: UInt64, nanoseconds: UInt32) {
        self.seconds = seconds
        self.nanoseconds = nanoseconds
    }

    /// `later - earlier`, zero when `later` comes first (a clock set back).
    public static func between(_ earlier: TAI64N, _ later: TAI64N) -> Interval {
        guard earlier < later else { return Interval(seconds: 0, nanoseconds: 0) }
        var seconds = later.seconds - earlier.seconds
        var nanos = Int64(later.nanoseconds) - Int64(earlier.nanoseconds)
        if nanos < 0 {
            nanos += 1_000_000_000
            seconds -= 1
        }
        return Interval(seconds: seconds, nanoseconds: UInt32(clamping: min(nanos, 999_999_999)))
    }

    /// "12.000500000": the reference prints the nanoseconds unpadded ("12.500000"); we pad.
    public var text: String { String(seconds) + "." + Format.pad(Int(nanoseconds), 9) }
}

public struct ServiceReport: Equatable, Sendable {
    public enum State: String, Sendable {
        case up, down, wait
    }

    /// The directory as the operator named it.
    public var service: String
    public var status: ServiceStatus
    /// No `down` file in the service directory.
    public var normallyUp: Bool
    /// kill(pid, 0) found the process (EPERM counts as found).
    public var pidAlive: Bool
    public var now: TAI64N

    public init(service: String, status: ServiceStatus, normallyUp: Bool, pidAlive: Bool, now: TAI64N) {
        self.service = service
        self.status = status
        self.normallyUp = normallyUp
        self.pidAlive = pidAlive
        self.now = now
    }

    public var state: State {
        if status.waitSeconds != 0 { return .wait }
        return status.running ? .up : .down
    }

    public var elapsed: Interval { Interval.between(status.changed, now) }

    private var pid: UInt32 { UInt32(bitPattern: status.pid) }

    /// Seconds left of the post-dependency delay, nil when none.
    public var remaining: UInt64? {
        guard status.waitSeconds > 0 else { return nil }
        let wait = UInt64(status.waitSeconds)
        let spent = elapsed.seconds
        return wait > spent ? wait - spent : nil
    }

    /// The comma-separated notes after "seconds", in the reference's order.
    public var flags: [String] {
        var list: [String] = []
        if status.running && !normallyUp { list.append("normally down") }
        if pid == 0 && normallyUp { list.append("normally up") }
        if status.running && status.paused { list.append("paused") }
        if pid == 0 && status.want == .up { list.append("want up") }
        if status.running && status.want == .down { list.append("want down") }
        return list
    }

    /// The readiness of a running service: nil when it has no readiness protocol (or is
    /// not running), false while pending, true once ready.
    public var ready: Bool? {
        guard status.running else { return nil }
        switch status.readiness {
        case .notTracked: return nil
        case .pending: return false
        case .ready: return true
        }
    }

    /// Time since the service reported readiness.
    public var readyFor: Interval? {
        guard status.running, case .ready(let at) = status.readiness else { return nil }
        return Interval.between(at, now)
    }

    /// svstat's exit status for this service: 0 up, 1 down or waiting, 3 paused,
    /// 5 up but want down.
    public var exitCode: Int32 {
        guard status.running && pid != 0 else { return 1 }
        if status.want == .down { return 5 }
        if status.paused { return 3 }
        return 0
    }

    /// svstat's line, without the newline.
    public var line: String {
        var text = service + ": " + state.rawValue + " " + elapsed.text + " seconds"
        for flag in flags { text += ", " + flag }
        if pid != 0 && status.running {
            text += (pidAlive ? "  pid " : " ?pid ") + String(pid) + " "
        } else if pid != 0 {
            text += " spid " + String(pid) + " "
        }
        if let remaining { text += "remaining " + String(remaining) + " seconds" }
        if let ready {
            if !text.hasSuffix(" ") { text += " " }
            if ready, let readyFor {
                text += "ready " + readyFor.text + " seconds"
            } else {
                text += "not ready"
            }
        }
        return text
    }

    /// One JSON object (no newline); see svstat(8) for the keys.
    public var json: String {
        let running = status.running && pid != 0
        var object = JSONObject()
        object.add("service", .string(service))
        object.add("state", .string(state.rawValue))
        object.add("seconds", .number(elapsed.text))
        object.add("pid", running ? .number(String(pid)) : .null)
        object.add("pidAlive", running ? .bool(pidAlive) : .null)
        object.add("supervisePid", !status.running && pid != 0 ? .number(String(pid)) : .null)
        object.add("paused", .bool(status.running && status.paused))
        switch status.want {
        case .up: object.add("want", .string("up"))
        case .down: object.add("want", .string("down"))
        case .once: object.add("want", .string("once"))
        }
        object.add("normallyUp", .bool(normallyUp))
        object.add("ready", ready.map { .bool($0) } ?? .null)
        object.add("readySeconds", readyFor.map { .number($0.text) } ?? .null)
        object.add("remaining", remaining.map { .number(String($0)) } ?? .null)
        object.add("error", .null)
        return object.text
    }

    /// The JSON object for a directory that could not be reported on: `state` is
    /// "not-running" or "error".
    public static func failureJSON(service: String, state: String, error: String) -> String {
        var object = JSONObject()
        object.add("service", .string(service))
        object.add("state", .string(state))
        for key in ["seconds", "pid", "pidAlive", "supervisePid", "paused", "want", "normallyUp",
                    "ready", "readySeconds", "remaining"] {
            object.add(key, .null)
        }
        object.add("error", .string(error))
        return object.text
    }
}

/// Just enough JSON writing for status lines: flat objects, keys in insertion order.
public struct JSONObject: Sendable {
    public enum Value: Sendable {
        case string(String)
        /// Already-formatted number text.
        case number(String)
        case bool(Bool)
        case null
    }

    private var members: [String] = []

    public init() {}

    public mutating func add(_ key: String, _ value: Value) {
        let rendered: String
        switch value {
        case .string(let s): rendered = JSONObject.quote(s)
        case .number(let n): rendered = n
        case .bool(let b): rendered = b ? "true" : "false"
        case .null: rendered = "null"
        }
        members.append(JSONObject.quote(key) + ":" + rendered)
    }

    public var text: String { "{" + members.joined(separator: ",") + "}" }

    public static func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
