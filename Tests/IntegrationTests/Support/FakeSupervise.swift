// A service directory whose supervise/ is made by hand: the FIFOs, a status file, and
// readers standing in for supervise. The test process itself holds FIFOs open for reading
// (close-on-exec, so no child inherits them); delayed readers are helper processes, killed
// and reaped when the value goes away.
import Core
import Glibc
import Supervise

final class FakeSupervise {
    /// The directory named on the command line.
    let dir: String
    /// The directory holding supervise/: `dir` itself, or a run-state directory.
    let stateDirectory: String
    private var held: [Int32] = []
    private var helpers: [pid_t] = []

    static let fifos = ["control", "ok", "up", "dn", "rdy"]

    init(_ box: Sandbox, _ relative: String, stateIn: String? = nil, fifos: [String] = FakeSupervise.fifos) {
        dir = box.directory(relative)
        stateDirectory = stateIn ?? dir
        _ = Path.makeDirectories(Path.join(stateDirectory, "supervise"))
        for name in fifos { _ = FIFO.make(path(name)) }
    }

    deinit {
        for fd in held { close(fd) }
        for pid in helpers {
            kill(pid, SIGKILL)
            _ = waitWithDeadline(pid, seconds: 5)
        }
    }

    func path(_ name: String) -> String { Path.join(stateDirectory, "supervise/" + name) }

    func writeStatus(_ bytes: [UInt8]) {
        let fd = open(path("status"), O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        FD.writeAll(fd, bytes)
        close(fd)
    }

    func writeStatus(_ status: ServiceStatus) { writeStatus(status.encoded()) }

    /// Opens a FIFO for reading, as supervise does: writers' non-blocking opens now succeed.
    @discardableResult
    func hold(_ name: String) -> Int32 {
        let fd = open(path(name), O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        if fd >= 0 { held.append(fd) }
        return fd
    }

    func release(_ fd: Int32) {
        close(fd)
        held.removeAll { $0 == fd }
    }

    /// Everything written to a held FIFO so far.
    func drain(_ fd: Int32) -> [UInt8] {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 256)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { return out }
            out += chunk[0..<n]
        }
    }

    /// A helper process that opens the FIFO for reading after `delay` seconds and keeps it.
    func holdLater(_ name: String, after delay: Double) {
        let script = "sleep \(delay); exec 3<>\"$0\"; exec sleep 30"
        if case .success(let pid) = Spawn.start(["/bin/sh", "-c", script, path(name)].map { Array($0.utf8) },
                                                environment: Environment.current()) {
            helpers.append(pid)
        }
    }
}

/// A status whose last change was `ago` seconds before now.
func status(ago: Int64 = 10, pid: Int32, paused: Bool = false, want: ServiceStatus.Want = .up,
            wait: Int16 = 0, running: Bool, readiness: ServiceStatus.Readiness = .notTracked) -> ServiceStatus {
    let now = TAI64N.now()
    return ServiceStatus(changed: TAI64N(unixSeconds: now.unixSeconds - ago, nanoseconds: now.nanoseconds),
                         pid: pid, paused: paused, want: want, waitSeconds: wait, running: running,
                         readiness: readiness)
}

/// svstat's line with every `<seconds>.<9 digits>` replaced by "T", so lines compare exactly.
func normalized(_ text: String) -> String {
    text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
        line.split(separator: " ", omittingEmptySubsequences: false).map { word -> String in
            let parts = word.split(separator: ".", omittingEmptySubsequences: false)
            let digits = { (s: Substring) in !s.isEmpty && s.allSatisfy { $0.isASCII && $0.isNumber } }
            if parts.count == 2, digits(parts[0]), digits(parts[1]), parts[1].count == 9 { return "T" }
            return String(word)
        }.joined(separator: " ")
    }.joined(separator: "\n")
}

/// Environment for client tests: an empty private run-state directory, never /run/svscan.
func clientEnvironment(_ box: Sandbox, runDirectory: String? = nil) -> [String: String] {
    ["SVSCAN_RUNDIR": runDirectory ?? box.at("no-run-dir")]
}
