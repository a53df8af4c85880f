// tcpserver's log fields.

enum ServerLog {
    /// Log field as the reference prints it: bytes outside 33…126 and '%' become '?',
    /// and long fields are cut at 100 bytes with "..." appended.
    static func field(_ text: String) -> String {
        var bytes = Array(text.utf8)
        let cut = bytes.count > 100
        if cut { bytes = Array(bytes.prefix(100)) }
        let safe = bytes.map { $0 < 33 || $0 > 126 || $0 == UInt8(ascii: "%") ? UInt8(ascii: "?") : $0 }
        return String(decoding: safe, as: UTF8.self) + (cut ? "..." : "")
    }
}
