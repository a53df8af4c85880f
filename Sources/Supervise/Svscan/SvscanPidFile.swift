// `.svscan.pid`: the reference's layout (raw pid_t, newline, decimal pid, newline) and the
// single-instance rule built on it.
import Core
import Glibc

public enum SvscanPidFile {
    public static let name = ".svscan.pid"

    /// Raw host-order pid_t bytes, "\n", the pid in decimal, "\n".
    public static func encode(_ pid: pid_t) -> [UInt8] {
        var bytes: [UInt8] = []
        withUnsafeBytes(of: pid) { bytes += $0 }
        return bytes + [10] + Array(String(pid).utf8) + [10]
    }

    /// The pid stored in the file: the decimal last line (what svps reads, and what a pid file
    /// written by hand holds), else the raw bytes as the reference reads them; nil when neither
    /// gives a positive pid.
    public static func decode(_ bytes: [UInt8]) -> pid_t? {
        if let last = bytes.split(separator: 10).last,
           let pid = pid_t(String(decoding: last, as: UTF8.self)), pid > 0 {
            return pid
        }
        let size = MemoryLayout<pid_t>.size
        guard bytes.count >= size else { return nil }
        let raw = bytes.withUnsafeBytes { $0.loadUnaligned(as: pid_t.self) }
        return raw > 0 ? raw : nil
    }

    public enum Holder: Equatable, Sendable {
        /// The file names this very process.
        case ours
        /// Nobody, or a process that is not svscan: the file may be removed.
        case stale
        /// Another svscan holds it.
        case running(pid_t)
    }

    /// Decides who holds the pid file. `alive` is kill(pid, 0) success (or EPERM); `comm`
    /// and `commandLine` come from /proc and are nil when the process is gone.
    public static func holder(stored: pid_t?, ours: pid_t, alive: Bool,
                              comm: String?, commandLine: [String]?) -> Holder {
        guard let stored else { return .stale }
        if stored == ours { return .ours }
        guard alive, let comm else { return .stale }
        if isSvscan(comm: comm, commandLine: commandLine) { return .running(stored) }
        return .stale
    }

    /// True for the reference's svscan and ours: comm "svscan" (ours renames itself so), or a
    /// multi-call binary run as `.../svscan ...` or `indimail svscan ...`.
    public static func isSvscan(comm: String, commandLine: [String]?) -> Bool {
        if comm == "svscan" { return true }
        guard let argv = commandLine, let first = argv.first else { return false }
        if Path.basename(first) == "svscan" { return true }
        let binary = Path.basename(first)
        return (binary == "indimail" || binary == "indimail-tls" || comm == "indimail")
            && argv.count > 1 && argv[1] == "svscan"
    }
}
