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
