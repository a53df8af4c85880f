// Time for deadlines and timers: the monotonic clock, immune to wall-clock steps.
import Glibc

public enum MonotonicClock {
    /// Seconds since an arbitrary fixed point (boot), with nanosecond resolution.
    public static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// A poll(2) timeout in milliseconds until `deadline` (rounded up, 0 when past, -1 for none).
    public static func pollTimeout(until deadline: Double?, now: Double = now()) -> Int32 {
        guard let deadline else { return -1 }
        let remaining = deadline - now
        if remaining <= 0 { return 0 }
        let ms = (remaining * 1000).rounded(.up)
        return ms >= Double(Int32.max) ? Int32.max : Int32(ms)
    }
}
