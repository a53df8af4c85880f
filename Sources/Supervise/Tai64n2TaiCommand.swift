// tai64n2tai: turn TAI64N labels at the start of lines into "seconds.nanoseconds".
import Core

public struct Tai64n2TaiCommand: Command {
    public static let name = "tai64n2tai"
    public static let installDirectory = InstallDirectory.bin
    public static let summary = "convert TAI64N labels at the start of lines to TAI seconds"

    /// "@<24 hex>rest" → "<TAI seconds>.<nanoseconds>rest"; other lines unchanged.
    static func rewrite(_ prefix: [UInt8], truncated: Bool) -> [UInt8] {
        guard let (secs, nanos) = TaiStamp.parseLabel(prefix) else { return prefix }
        return TaiStamp.decimal(seconds: secs, nanoseconds: nanos) + prefix.dropFirst(TaiStamp.labelLength)
    }

    static func makeRewriter() -> LinePrefixRewriter {
        LinePrefixRewriter(limit: TaiStamp.labelLength,
                           isDecided: { $0.first != UInt8(ascii: "@") },
                           rewrite: rewrite)
    }

    public static func run(_ context: CommandContext) -> Int32 {
        var rewriter = makeRewriter()
        return LinePrefixRewriter.run(context, &rewriter)
    }
}
