// What tai2tai64n and tai64n2tai share: rewriting a time stamp at the start of each line,
// and the two stamp formats ("@" + 24 hex digits, and "seconds.nanoseconds").
import Core

/// Streams lines, handing the first bytes of each to `rewrite` and copying the rest.
/// Lines of any length pass through in constant memory.
struct LinePrefixRewriter {
    /// How many bytes at most a decision needs.
    let limit: Int
    /// True once the collected bytes settle the question (a plain line, a finished number).
    let isDecided: ([UInt8]) -> Bool
    /// Output for the collected bytes; `truncated` when collection stopped at `limit`
    /// rather than at a decision, a newline or end of input.
    let rewrite: (_ prefix: [UInt8], _ truncated: Bool) -> [UInt8]

    private var collecting = true
    private var pending: [UInt8] = []

    init(limit: Int, isDecided: @escaping ([UInt8]) -> Bool,
         rewrite: @escaping (_ prefix: [UInt8], _ truncated: Bool) -> [UInt8]) {
        self.limit = limit
        self.isDecided = isDecided
        self.rewrite = rewrite
    }

    /// Converts one chunk of input, appending the output to `out`.
    mutating func process<Input: Collection>(_ chunk: Input, into out: inout [UInt8]) where Input.Element == UInt8 {
        for byte in chunk {
            if !collecting {
                out.append(byte)
                if byte == 10 { collecting = true }
                continue
            }
            pending.append(byte)
            if byte == 10 {
                finish(truncated: false, into: &out)
                collecting = true
            } else if isDecided(pending) {
                finish(truncated: false, into: &out)
            } else if pending.count >= limit {
                finish(truncated: true, into: &out)
            }
        }
    }

    /// End of input: a last line without a newline is converted like any other.
    mutating func finish(into out: inout [UInt8]) {
        if collecting && !pending.isEmpty { finish(truncated: false, into: &out) }
    }

    private mutating func finish(truncated: Bool, into out: inout [UInt8]) {
        out += rewrite(pending, truncated)
        pending.removeAll(keepingCapacity: true)
        collecting = false
    }

    /// The filter loop of both commands: output flushed before each read; exit 1 on a
    /// read error and 2 on a write error, as the reference.
    static func run(_ context: CommandContext, _ rewriter: inout LinePrefixRewriter) -> Int32 {
        let diag = context.diagnostics
        let reader = BufferedReader(fd: 0, capacity: 65536)
        let writer = BufferedWriter(fd: 1, capacity: 65536)
        var out: [UInt8] = []
        func flush() -> Int32? {
            if case .failure(let e) = writer.write(out) { return diag.fatal(2, e.description) }
            out.removeAll(keepingCapacity: true)
            if case .failure(let e) = writer.flush() { return diag.fatal(2, e.description) }
            return nil
        }
        while true {
            if let failed = flush() { return failed }
            switch reader.fill() {
            case .failure(let e): return diag.fatal(1, e.description)
            case .success(let n) where n <= 0:
                rewriter.finish(into: &out)
                return flush() ?? ExitCode.success
            case .success:
                let chunk = reader.buffered
                rewriter.process(chunk, into: &out)
                reader.consume(chunk.count)
            }
        }
    }
}

enum TaiStamp {
    static let labelLength = 25
    static let base: UInt64 = 1 << 62

    /// "@" + 24 hex digits (either case) of a TAI64N moment at or after TAI64 2^62, with
    /// valid nanoseconds, as (seconds since 2^62, nanoseconds); nil for anything else.
    static func parseLabel(_ bytes: some Collection<UInt8>) -> (seconds: UInt64, nanoseconds: UInt32)? {
        guard bytes.count >= labelLength, bytes.first == UInt8(ascii: "@") else { return nil }
        var secs: UInt64 = 0, nanos: UInt32 = 0
        for (i, c) in bytes.dropFirst().prefix(24).enumerated() {
            guard let v = hexValue(c) else { return nil }
            if i < 16 { secs = secs << 4 | UInt64(v) } else { nanos = nanos << 4 | UInt32(v) }
        }
        guard secs >= base, secs < base << 1, nanos < 1_000_000_000 else { return nil }
        return (secs - base, nanos)
    }

    static func hexValue(_ c: UInt8) -> UInt8? {
        if let v = Hex.lowercaseValue(c) { return v }
        if c >= UInt8(ascii: "A"), c <= UInt8(ascii: "F") { return c - UInt8(ascii: "A") + 10 }
        return nil
    }

    /// "SSSSSSSSSS.NNNNNNNNN": seconds padded to at least 10 digits, nanoseconds to 9.
    static func decimal(seconds: UInt64, nanoseconds: UInt32) -> [UInt8] {
        let s = String(seconds)
        return Array((String(repeating: "0", count: max(0, 10 - s.count)) + s + "."
            + Format.pad(Int(nanoseconds), 9)).utf8)
    }

    /// The label of (seconds since 2^62, nanoseconds).
    static func label(seconds: UInt64, nanoseconds: UInt32) -> [UInt8] {
        TAI64N(seconds: base + seconds, nanoseconds: nanoseconds).label
    }

    /// A leading "digits[.digits]": the seconds, the fraction as nanoseconds (digits past
    /// the ninth dropped), and where the number ends; nil without a leading digit, or
    /// when the seconds reach 2^62.
    static func parseDecimal(_ bytes: [UInt8]) -> (seconds: UInt64, nanoseconds: UInt32, end: Int)? {
        var i = 0
        var secs: UInt64 = 0
        while i < bytes.count, let d = digit(bytes[i]) {
            let (t, o1) = secs.multipliedReportingOverflow(by: 10)
            let (s, o2) = t.addingReportingOverflow(UInt64(d))
            guard !o1, !o2, s < base else { return nil }
            secs = s
            i += 1
        }
        guard i > 0 else { return nil }
        var nanos: UInt32 = 0
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            i += 1
            var places = 0
            while i < bytes.count, let d = digit(bytes[i]) {
                if places < 9 { nanos = nanos * 10 + UInt32(d); places += 1 }
                i += 1
            }
            while places < 9 { nanos *= 10; places += 1 }
        }
        return (secs, nanos, i)
    }

    static func digit(_ c: UInt8) -> UInt8? {
        c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") ? c - UInt8(ascii: "0") : nil
    }
}
