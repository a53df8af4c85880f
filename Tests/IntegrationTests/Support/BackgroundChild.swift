// A process left running while a test looks at it (a lock holder, a readproctitle being
// fed, a pid to wait for): killed and reaped when the value goes away, whatever happened.
import Core
import Glibc

final class BackgroundChild {
    let pid: pid_t
    /// Our end of the child's stdin, when asked for; closing it gives the child end of file.
    private(set) var input: Int32?
    private var status: WaitStatus?

    /// Starts `argv`; stdout and stderr go to /dev/null unless `output` names a file.
    init?(_ argv: [String], stdinPipe: Bool = false, output: String = "/dev/null",
          environment: [String: String] = [:], newProcessGroup: Bool = false) {
        var env = Environment.current()
        for (k, v) in environment { env[k] = v }
        let sink = open(output, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard sink >= 0 else { return nil }
        defer { close(sink) }
        var options = SpawnOptions()
        options.fileMoves = [(sink, 1), (sink, 2)]
        if newProcessGroup { options.processGroup = 0 }
        var pipe: (read: Int32, write: Int32)? = nil
        if stdinPipe {
            guard case .success(let p) = FD.pipe() else { return nil }
            pipe = p
            options.fileMoves.append((p.read, 0))
        }
        let started = Spawn.start(argv.map { Array($0.utf8) }, environment: env, options: options)
        if let pipe { close(pipe.read) }
        guard case .success(let pid) = started else {
            if let pipe { close(pipe.write) }
            return nil
        }
        self.pid = pid
        self.input = pipe?.write
    }

    func send(_ bytes: [UInt8]) { if let input { FD.writeAll(input, bytes) } }

    func closeInput() {
        if let input { close(input) }
        input = nil
    }

    /// How it ended, waiting at most `seconds`; nil if it is still running then.
    func waitExit(within seconds: Double) -> WaitStatus? {
        if let status { return status }
        let deadline = monotonicSeconds() + seconds
        var raw: Int32 = 0
        while true {
            let r = waitpid(pid, &raw, WNOHANG)
            if r == pid { status = WaitStatus(raw: raw); return status }
            if r < 0 || monotonicSeconds() >= deadline { return nil }
            usleep(5000)
        }
    }

    var isRunning: Bool { waitExit(within: 0) == nil }

    deinit {
        closeInput()
        if status == nil {
            kill(pid, SIGKILL)
            _ = waitWithDeadline(pid, seconds: 5)
        }
    }
}

/// Polls `condition` until it holds or `seconds` pass. The default is generous: the whole
/// suite runs in parallel on two cores, where a start-up can take several seconds; only a
/// failing wait lasts that long.
@discardableResult
func eventually(within seconds: Double = 30, _ condition: () -> Bool) -> Bool {
    let deadline = monotonicSeconds() + seconds
    while monotonicSeconds() < deadline {
        if condition() { return true }
        usleep(10_000)
    }
    return condition()
}

/// The whole of a small file (e.g. under /proc), or nil.
func contents(_ path: String) -> [UInt8]? {
    guard case .success(let bytes) = FD.readFile(path) else { return nil }
    return bytes
}
