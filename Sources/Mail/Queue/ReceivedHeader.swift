// The Received: line qmail-queue puts at the top of every message it queues.
import Glibc

public struct ReceivedHeader: Equatable, Sendable {
    /// Who asked for the message to be queued, as the header words it.
    public enum Origin: Equatable, Sendable {
        /// uid of the alias user.
        case alias
        /// uid of qmails: a bounce.
        case bounce
        /// Anyone else; the remote IP when the injector was serving a network client.
        case user(uid: UInt64, remoteIP: String?)
    }

    public var pid: Int32
    /// nil hides the host and the remote IP (HIDE_HOST).
    public var host: String?
    public var origin: Origin
    /// RFC 822 date, as `date822`.
    public var date: String

    public init(pid: Int32, host: String?, origin: Origin, date: String) {
        self.pid = pid
        self.host = host
        self.origin = origin
        self.date = date
    }

    /// `Received: indimail-mta queue PID by host HOST` NL SP `(invoked …); DATE` NL.
    /// With the host hidden the reference glues "(invoked" to the pid; we keep a space.
    public var bytes: [UInt8] {
        var s = "Received: indimail-mta queue \(pid)"
        if let host { s += " by host \(host)\n " } else { s += " " }
        switch origin {
        case .alias: s += "(invoked by alias"
        case .bounce: s += "(invoked for bounce"
        case .user(let uid, let ip):
            s += "(invoked "
            if let ip {
                s += "from network"
                if host != nil { s += " " + ip }
                s += ", "
            }
            s += "by uid \(uid)"
        }
        s += "); " + date
        return Array(s.utf8)
    }

    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// `5 Feb 2024 10:07:03 +0530` and a newline: local time with its numeric offset.
    public static func date822(_ t: tm) -> String {
        func two(_ n: Int32) -> String { n < 10 ? "0\(max(n, 0))" : "\(n)" }
        let month = months[Int(max(0, min(11, t.tm_mon)))]
        let offset = t.tm_gmtoff / 60
        let sign = offset < 0 ? "-" : "+"
        let minutes = Int32(clamping: abs(offset))
        return "\(t.tm_mday) \(month) \(Int(t.tm_year) + 1900) \(two(t.tm_hour)):\(two(t.tm_min)):\(two(t.tm_sec)) "
            + "\(sign)\(two(minutes / 60))\(two(minutes % 60))\n"
    }

    public static func date822(seconds: time_t) -> String {
        var clock = seconds
        var t = tm()
        guard localtime_r(&clock, &t) != nil else {
            var u = tm()
            _ = gmtime_r(&clock, &u)
            return date822(u)
        }
        return date822(t)
    }
}
