// A supervise process under test, in its own session so teardown can kill everything it
// started; plus polling helpers with deadlines.
import Core
import Glibc
import Supervise

final class SupervisedService {
    let box: Sandbox
    let name: String
    let pid: pid_t
    let stateDirectory: String

    /// Starts `supervise <name>` in the sandbox; DISABLE_RUN unless `runDirectory` is given.
    init?(_ box: Sandbox, _ name: String, environment extra: [String: String] = [:],
          runDirectory: String? = nil, binary: String = Build.indimail) {
        self.box = box
        self.name = name
        var env = Environment.current()
        env.unset("VERBOSE")
        if let runDirectory { env["SVSCAN_RUNDIR"] = runDirectory; env.unset("DISABLE_RUN") } else { env["DISABLE_RUN"] = "1" }
        for (k, v) in extra { env[k] = v }
        stateDirectory = runDirectory.map { Path.join($0, name) } ?? box.at(name)
        let errors = open(box.at("\(name).stderr"), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        var options = SpawnOptions()
        options.newSession = true
        options.workingDirectory = box.path
        options.fileMoves = [(errors, 2)]
        let started = Spawn.start([Array(binary.utf8), Array("supervise".utf8), Array(name.utf8)],
                                  environment: env, options: options)
        close(errors)
        guard case .success(let pid) = started else { return nil }
        self.pid = pid
    }

    deinit { stop() }

    var stderr: String { (try? FD.readFile(box.at("\(name).stderr")).get()).map { String(decoding: $0, as: UTF8.self) } ?? "" }

    /// Sends command letters through supervise/control, as svc does.
    @discardableResult
    func control(_ letters: String) -> Bool {
        guard case .success(let fd) = FIFO.openWrite(Path.join(stateDirectory, "supervise/control")) else { return false }
        defer { close(fd) }
        return (try? FD.writeAll(fd, Array(letters.utf8)).get()) != nil
    }

    var status: ServiceStatus? { try? ServiceStatus.read(Path.join(stateDirectory, "supervise/status")).get() }

    /// supervise accepts commands: its ok FIFO has a reader.
    var isRunning: Bool {
        guard case .success(let fd) = FIFO.openWrite(Path.join(stateDirectory, "supervise/ok")) else { return false }
        close(fd)
        return true
    }

    func waitUntilUp(_ timeout: Double = 5) -> ServiceStatus? {
        var seen: ServiceStatus?
        eventually(within: timeout) { seen = status; return seen?.running == true }
        return seen?.running == true ? seen : nil
    }

    /// Reaps supervise if it exited; returns its status then.
    func exited(within timeout: Double) -> WaitStatus? {
        var raw: Int32 = 0
        let deadline = monotonicSeconds() + timeout
        while monotonicSeconds() < deadline {
            if waitpid(pid, &raw, WNOHANG) == pid { return WaitStatus(raw: raw) }
            usleep(20_000)
        }
        return nil
    }

    /// Kills supervise and everything in its session, then reaps it.
    func stop() {
        killpg(pid, SIGKILL)
        kill(pid, SIGKILL)
        var raw: Int32 = 0
        _ = waitpid(pid, &raw, 0)
    }
}

/// Lines of a file in the sandbox (empty when missing).
func lines(_ path: String) -> [String] {
    guard let bytes = try? FD.readFile(path).get() else { return [] }
    return String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(String.init)
}

func processExists(_ pid: pid_t) -> Bool {
    guard kill(pid, 0) == 0 else { return false }
    // A zombie still answers kill(0); it is gone for our purposes.
    guard let stat = try? FD.readFile("/proc/\(pid)/stat").get(),
          let close = stat.lastIndex(of: UInt8(ascii: ")")), close + 2 < stat.count else { return false }
    return stat[close + 2] != UInt8(ascii: "Z")
}
