// The `wait` file of a service [indimail]: line 1 a delay in seconds, line 2 the service
// that must be up (and not paused, not wanted down) before this one starts.
import Core

public struct DependencyWait: Equatable, Sendable {
    public var delay: Int16
    /// As written: relative names are siblings of the service directory.
    public var service: String

    /// nil when there is no usable wait (missing file, fewer than two lines, empty name).
    public static func parse(_ bytes: [UInt8]) -> DependencyWait? {
        let lines = bytes.split(separator: 10, omittingEmptySubsequences: false)
        guard lines.count >= 2 else { return nil }
        let name = String(decoding: lines[1], as: UTF8.self).trimmingBlanks()
        guard !name.isEmpty else { return nil }
        let digits = String(decoding: lines[0], as: UTF8.self).trimmingBlanks()
        // The reference turns values above 32767 into 60 (they do not fit its int16 field).
        let value = UInt64(digits.prefix { $0.isASCII && $0.isNumber }) ?? 0
        return DependencyWait(delay: value > 32767 ? 60 : Int16(value), service: name)
    }

    /// The awaited service's directory, given ours.
    public func serviceDirectory(relativeTo ours: String) -> String {
        service.hasPrefix("/") ? service : Path.join(Path.dirname(ours), service)
    }
}

extension String {
    func trimmingBlanks() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" || f == "\r" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" { s.removeLast() }
        return String(s)
    }
}
