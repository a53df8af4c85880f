// OpenSSL's error queue and wait helpers shared by contexts and channels.
import COpenSSL
import Core
import Glibc

enum OpenSSLErrors {
    /// Empties the thread's error queue into one line ("a; b"), or nil when it is empty.
    static func drain() -> String? {
        var texts: [String] = []
        var buffer = [CChar](repeating: 0, count: 256)
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            ERR_error_string_n(code, &buffer, buffer.count)
            let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if !texts.contains(text) { texts.append(text) }
        }
        return texts.isEmpty ? nil : texts.joined(separator: "; ")
    }

    /// `what: <queue>`, or `what: fallback` when the queue holds nothing.
    static func error(_ what: String, fallback: String = "unknown error") -> TLSError {
        TLSError("\(what): \(drain() ?? fallback)")
    }
}

enum Readiness {
    /// Waits until `fd` is ready for `events` or the monotonic `deadline` passes; EINTR
    /// restarts with the time left. False on timeout or poll failure.
    static func wait(_ fd: Int32, events: Int16, until deadline: Double) -> Bool {
        var p = pollfd(fd: fd, events: events, revents: 0)
        while true {
            let left = deadline - MonotonicClock.now()
            if left <= 0 { return false }
            let r = poll(&p, 1, Int32(min(left * 1000, Double(Int32.max / 2)).rounded(.up)))
            if r > 0 { return true }
            if r == 0 { continue }  // loop re-checks the clock
            if errno != EINTR { return false }
        }
    }
}
