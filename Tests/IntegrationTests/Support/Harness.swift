// Runs real processes for the integration tests: every run has a deadline, every child is
// killed and reaped, every temp dir removed, even when an expectation fails.
import Core
import Glibc

/// Where `swift build` put our binaries (next to the test bundle), overridable with
/// INDIMAIL_BIN_DIR to test an installed tree.
enum Build {
    static let directory: String = {
        if let dir = getenv("INDIMAIL_BIN_DIR") { return String(cString: dir) }
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        let exe = n > 0 ? String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : "."
        return Path.dirname(exe)
    }()

    static var indimail: String { Path.join(directory, "indimail") }
    static var indimailTLS: String { Path.join(directory, "indimail-tls") }
    /// The setuid qmail-queue, built as its own executable.
    static var qmailQueue: String { Path.join(directory, "qmail-queue") }
}

/// A temporary directory, removed with everything in it when the value goes away.
final class Sandbox {
    let path: String

    init() {
        var template = Array("/tmp/indimail-test.XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        path = made.map { String(cString: $0) } ?? "/tmp/indimail-test.failed"
    }

    deinit { _ = Spawn.run([Array("/bin/rm".utf8), Array("-rf".utf8), Array(path.utf8)], environment: Environment()) }

    func at(_ relative: String) -> String { Path.join(path, relative) }

    @discardableResult
    func write(_ relative: String, _ bytes: [UInt8], mode: mode_t = 0o644) -> String {
        let full = at(relative)
        _ = Path.makeDirectories(Path.dirname(full))
        let fd = open(full, O_WRONLY | O_CREAT | O_TRUNC, mode)
        if fd >= 0 {
            FD.writeAll(fd, bytes)
            close(fd)
        }
        chmod(full, mode)
        return full
    }

    @discardableResult
    func write(_ relative: String, _ text: String, mode: mode_t = 0o644) -> String {
        write(relative, Array(text.utf8), mode: mode)
    }

    @discardableResult
    func directory(_ relative: String) -> String {
        let full = at(relative)
        _ = Path.makeDirectories(full)
        return full
    }

    /// A bin/ dir of symlinks named after commands, pointing at the built binary: the
    /// same shape as an installed prefix.
    func commandLinks(_ names: [String], binary: String = Build.indimail) -> String {
        let bin = directory("bin")
        for name in names { symlink(binary, Path.join(bin, name)) }
        return bin
    }
}

struct Outcome {
    var status: WaitStatus
    var stdout: [UInt8]
    var stderr: [UInt8]
    var timedOut: Bool

    var exitCode: Int32? { if case .exited(let c) = status { return c } else { return nil } }
    var out: String { String(decoding: stdout, as: UTF8.self) }
    var err: String { String(decoding: stderr, as: UTF8.self) }
}

/// Runs `argv` with `stdin` as input; collects stdout/stderr; kills it after `timeout` s.
func run(_ argv: [String], stdin: [UInt8] = [], environment: [String: String]? = nil,
         inheritEnvironment: Bool = true, directory: String? = nil, timeout: Double = 20) -> Outcome {
    run(argv.map { Array($0.utf8) }, stdin: stdin, environment: environment,
        inheritEnvironment: inheritEnvironment, directory: directory, timeout: timeout)
}

func run(_ argv: [[UInt8]], stdin: [UInt8] = [], environment: [String: String]? = nil,
         inheritEnvironment: Bool = true, directory: String? = nil, timeout: Double = 20) -> Outcome {
    var env = inheritEnvironment ? Environment.current() : Environment()
    for (k, v) in environment ?? [:] { env[k] = v }
    var command = argv
    if let directory {
        // posix_spawn has no chdir: go through the shell, arguments passed positionally.
        command = [Array("/bin/sh".utf8), Array("-c".utf8), Array("cd \"$0\" && exec \"$@\"".utf8),
                   Array(directory.utf8)] + argv
    }
    guard case .success(let input) = FD.pipe(), case .success(let output) = FD.pipe(),
          case .success(let errors) = FD.pipe() else {
        return Outcome(status: .exited(-1), stdout: [], stderr: Array("pipe failed".utf8), timedOut: false)
    }
    var options = SpawnOptions()
    options.fileMoves = [(input.read, 0), (output.write, 1), (errors.write, 2)]
    let started = Spawn.start(command, environment: env, options: options)
    close(input.read); close(output.write); close(errors.write)
    guard case .success(let pid) = started else {
        close(input.write); close(output.read); close(errors.read)
        return Outcome(status: .exited(-1), stdout: [], stderr: Array("spawn failed".utf8), timedOut: false)
    }
    for fd in [input.write, output.read, errors.read] { FD.setNonBlocking(fd) }

    var pendingInput = stdin[...]
    var stdinOpen = true
    if pendingInput.isEmpty { close(input.write); stdinOpen = false }
    var out: [UInt8] = [], err: [UInt8] = []
    var openReaders: [Int32] = [output.read, errors.read]
    let deadline = monotonicSeconds() + timeout
    var timedOut = false
    var chunk = [UInt8](repeating: 0, count: 65536)
    signal(SIGPIPE, SIG_IGN)

    while !openReaders.isEmpty {
        let remaining = deadline - monotonicSeconds()
        if remaining <= 0 { timedOut = true; break }
        var fds = openReaders.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        if stdinOpen { fds.append(pollfd(fd: input.write, events: Int16(POLLOUT), revents: 0)) }
        let ready = poll(&fds, nfds_t(fds.count), Int32(min(remaining, 1) * 1000))
        if ready < 0 && errno != EINTR { break }
        for p in fds where p.revents != 0 {
            if p.fd == input.write {
                let n = pendingInput.withUnsafeBytes { Glibc.write(input.write, $0.baseAddress, $0.count) }
                if n > 0 { pendingInput = pendingInput.dropFirst(n) }
                if n < 0 && errno != EAGAIN || pendingInput.isEmpty { close(input.write); stdinOpen = false }
                continue
            }
            let n = chunk.withUnsafeMutableBytes { Glibc.read(p.fd, $0.baseAddress, $0.count) }
            if n > 0 {
                if p.fd == output.read { out += chunk[0..<n] } else { err += chunk[0..<n] }
            } else if n == 0 || errno != EAGAIN {
                close(p.fd)
                openReaders.removeAll { $0 == p.fd }
            }
        }
    }
    if stdinOpen { close(input.write) }
    for fd in openReaders { close(fd) }
    if timedOut { kill(pid, SIGKILL) }
    let status = waitWithDeadline(pid, seconds: max(1, deadline - monotonicSeconds()))
    return Outcome(status: status, stdout: out, stderr: err, timedOut: timedOut)
}

/// waitpid with a deadline; SIGKILL when it passes so no test leaves a process behind.
func waitWithDeadline(_ pid: pid_t, seconds: Double) -> WaitStatus {
    let deadline = monotonicSeconds() + seconds
    var raw: Int32 = 0
    while true {
        let r = waitpid(pid, &raw, WNOHANG)
        if r == pid { return WaitStatus(raw: raw) }
        if r < 0 { return .exited(-1) }
        if monotonicSeconds() > deadline {
            kill(pid, SIGKILL)
            _ = waitpid(pid, &raw, 0)
            return WaitStatus(raw: raw)
        }
        usleep(2000)
    }
}

func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// A Debian peer program, e.g. daemontools' /usr/bin/envdir; the test fails loudly when
/// it is missing (scripts/deps --test installs them).
func peer(_ path: String) -> String? { access(path, X_OK) == 0 ? path : nil }

/// `argv` prefixed so that it starts with only descriptors 0, 1 and 2 open, whatever the
/// test runner itself has open: for tests about the descriptors a program hands down.
func withOnlyStdio(_ argv: [String]) -> [String] {
    ["/usr/bin/python3", "-c", "import os, sys; os.closerange(3, 65536); os.execv(sys.argv[1], sys.argv[1:])"] + argv
}
