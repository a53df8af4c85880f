// multilog's line patterns: literal bytes and stars, matched without backtracking.

/// The reference's pattern language. A byte other than `*` matches itself. A `*` at the end
/// matches whatever is left. A `*` followed by byte c skips up to the first c in the line
/// (and fails when there is none); matching then goes on at that c — which, when c is itself
/// a `*`, means a second star that starts its own skip. The whole line must be used up.
public enum LogPattern {
    private static let star = UInt8(ascii: "*")

    public static func matches(_ pattern: [UInt8], _ line: [UInt8]) -> Bool {
        line.withUnsafeBytes { matches(pattern, $0) }
    }

    public static func matches(_ pattern: [UInt8], _ line: UnsafeRawBufferPointer) -> Bool {
        var p = 0
        var l = 0
        while true {
            guard p < pattern.count else { return l == line.count }
            let c = pattern[p]
            p += 1
            if c == star {
                guard p < pattern.count else { return true }
                let next = pattern[p]
                // Leave `next` in the pattern: it is matched (or, if a star, run) on the next turn.
                while true {
                    if l == line.count { return false }
                    if line[l] == next { break }
                    l += 1
                }
                continue
            }
            if l == line.count || line[l] != c { return false }
            l += 1
        }
    }
}
