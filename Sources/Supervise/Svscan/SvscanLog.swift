// svscan's messages on fd 2 in the reference's words: `svscan: info|warning|fatal: ...`.
import Core

struct SvscanLog {
    var verbose: Bool
    var silent: Bool

    /// Shown with -v / VERBOSE only.
    func info(_ message: String) {
        if verbose { emit("info", message) }
    }

    /// Shown always: the few lines the reference prints whatever the verbosity (shutdown).
    func notice(_ message: String) { emit("info", message) }

    /// Hidden by -s / SILENT.
    func warning(_ message: String) {
        if !silent { emit("warning", message) }
    }

    func fatal(_ message: String) { emit("fatal", message) }

    private func emit(_ level: String, _ message: String) {
        FD.writeAll(2, Array("svscan: \(level): \(message)\n".utf8))
    }
}
