// tai2tai64n: turn "seconds[.fraction]" at the start of lines into TAI64N labels.
import Core

public struct Tai2Tai64nCommand: Command {
    public static let name = "tai2tai64n"
    public static let installDirectory = InstallDirectory.bin
    public static let summary = "convert TAI seconds at the start of lines to TAI64N labels"

    /// Longer numbers cannot be valid seconds (2^62 has 19 digits) and are left alone.
    static let limit = 64

    static func isDecided(_ prefix: [UInt8]) -> Bool {
        guard let first = prefix.first, TaiStamp.digit(first) != nil else { return true }
        guard let number = TaiStamp.parseDecimal(prefix) else { return true }
        return number.end < prefix.count
    }

    /// "<seconds>[.<fraction>]rest" → "@<24 hex>rest"; other lines unchanged.
    static func rewrite(_ prefix: [UInt8], truncated: Bool) -> [UInt8] {
        guard !truncated, let number = TaiStamp.parseDecimal(prefix) else { return prefix }
        return TaiStamp.label(seconds: number.seconds, nanoseconds: number.nanoseconds) + prefix[number.end...]
    }

    static func makeRewriter() -> LinePrefixRewriter {
        LinePrefixRewriter(limit: limit, isDecided: isDecided, rewrite: rewrite)
    }

    public static func run(_ context: CommandContext) -> Int32 {
        var rewriter = makeRewriter()
        return LinePrefixRewriter.run(context, &rewriter)
    }
}
