// Running svscan for the integration tests: a scan directory in a sandbox, the supervise under
// test first in PATH, output captured to files, and every process of the sandbox killed and
// reaped at the end, whatever happened.
import Core
import Glibc

/// The supervise that svscan starts in these tests: ours, or another one (Debian
/// daemontools' /usr/bin/supervise, for interop) named by SUPERVISE_UNDER_TEST.
func superviseUnderTest() -> String {
    if let p = getenv("SUPERVISE_UNDER_TEST") { return String(cString: p) }
    return Build.indimail
}

enum SuperviseUnderTest {
    /// djb's supervise takes one operand; svscan passes loggers a second one (the service
    /// name, for ps) that it would refuse, so it gets a wrapper that drops it.
    static var isDJB: Bool { superviseUnderTest() == "/usr/bin/supervise" }

    /// Puts a program named `supervise` in `bin`.
    static func install(into bin: String) {
        let target = Path.join(bin, "supervise")
        if isDJB {
            let script = "#!/bin/sh\nexec \(superviseUnderTest()) \"$1\"\n"
            let fd = open(target, O_WRONLY | O_CREAT | O_TRUNC, 0o755)
            if fd >= 0 { FD.writeAll(fd, Array(script.utf8)); close(fd) }
        } else {
            symlink(superviseUnderTest(), target)
        }
    }
}


func readText(_ path: String) -> String {
    (try? FD.readFile(path).get()).map { String(decoding: $0, as: UTF8.self) } ?? ""
}

/// A svscan started on `<sandbox>/sv`, with its run-state directory in `<sandbox>/run` (or
/// DISABLE_RUN), stdout and stderr in files.
final class SvscanUnderTest {
    let box: Sandbox
    let scanDirectory: String
    let runDirectory: String?
    let bin: String
    /// The process started: svscan itself, or the launcher (unshare) in front of it.
    private(set) var pid: pid_t = -1
    private var status: WaitStatus?
    let outPath: String
    let errPath: String

    /// Builds the sandbox layout; services are added before `start`.
    init(box: Sandbox = Sandbox(), useRunDirectory: Bool = true) {
        self.box = box
        scanDirectory = box.directory("sv")
        runDirectory = useRunDirectory ? box.directory("run") : nil
        bin = box.directory("bin")
        SuperviseUnderTest.install(into: bin)
        symlink(Build.indimail, Path.join(bin, "envdir"))
        outPath = box.at("svscan.out")
        errPath = box.at("svscan.err")
    }

    /// A service `name` with `run` as its run script and `log` (if any) as its log/run.
    func service(_ name: String, run: String, log: String? = nil) {
        box.write("sv/\(name)/run", run, mode: 0o755)
        if let log { box.write("sv/\(name)/log/run", log, mode: 0o755) }
    }

    var environment: [String: String] {
        var env: [String: String] = [
            "PATH": "\(bin):/usr/bin:/bin:/usr/sbin:/sbin",
            "INDIMAIL_TEST_SANDBOX": box.path,
        ]
        if let runDirectory { env["SVSCAN_RUNDIR"] = runDirectory } else { env["DISABLE_RUN"] = "1" }
        return env
    }

    /// Starts `[launcher...] indimail svscan [arguments] <scan dir>`, or `command` instead.
    func start(environment extra: [String: String] = [:], arguments: [String] = [],
               launcher: [String] = [], command: [String]? = nil) {
        var env = Environment.current()
        env.unset("NOTIFY_SOCKET")
        for (k, v) in environment.merging(extra, uniquingKeysWith: { $1 }) { env[k] = v }
        let argv = command ?? (launcher + [Build.indimail, "svscan"] + arguments + [scanDirectory])
        let out = open(outPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        let err = open(errPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        let null = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { close(out); close(err); close(null) }
        var options = SpawnOptions()
        options.fileMoves = [(null, 0), (out, 1), (err, 2)]
        if case .success(let p) = Spawn.start(argv.map { Array($0.utf8) }, environment: env, options: options) {
            pid = p
        }
    }

    /// An installed-like prefix in the sandbox: bin/envdir, sbin/svscan (ours), sbin/supervise
    /// (the one under test), as svscanboot and docker-entrypoint expect them.
    func installPrefix() -> String {
        let prefix = box.directory("prefix")
        let binDir = box.directory("prefix/bin"), sbin = box.directory("prefix/sbin")
        symlink(Build.indimail, Path.join(binDir, "envdir"))
        symlink(Build.indimail, Path.join(sbin, "svscan"))
        SuperviseUnderTest.install(into: sbin)
        return prefix
    }

    var stdout: String { readText(outPath) }
    var stderr: String { readText(errPath) }

    func signal(_ sig: Int32) { if pid > 0 && status == nil { kill(pid, sig) } }

    /// The exit status once the started process ends, nil if it is still running after `seconds`.
    func waitExit(_ seconds: Double) -> WaitStatus? {
        if let status { return status }
        guard pid > 0 else { return nil }
        let deadline = monotonicSeconds() + seconds
        var raw: Int32 = 0
        while true {
            let r = waitpid(pid, &raw, WNOHANG)
            if r == pid { status = WaitStatus(raw: raw); return status }
            if r < 0 || monotonicSeconds() > deadline { return nil }
            usleep(10_000)
        }
    }

    var isRunning: Bool { pid > 0 && waitExit(0) == nil }

    /// A non-blocking write open of `supervise/ok` succeeds: supervise runs for `service`
    /// ("a" or "a/log"), wherever it keeps its state.
    func superviseRunning(_ service: String) -> Bool {
        var candidates = [Path.join(scanDirectory, service + "/supervise/ok")]
        if let runDirectory { candidates.append(Path.join(runDirectory, service + "/supervise/ok")) }
        for path in candidates {
            if case .success(let fd) = FIFO.openWrite(path) { close(fd); return true }
        }
        return false
    }

    /// Pids of the processes that belong to this sandbox: working directory inside it, or its
    /// tag in their environment.
    func sandboxProcesses() -> [pid_t] {
        let me = getpid()
        return (ProcFS.allPIDs() ?? []).filter { p in
            guard p != me else { return false }
            var buffer = [CChar](repeating: 0, count: 4096)
            let n = readlink("/proc/\(p)/cwd", &buffer, buffer.count - 1)
            if n > 0 {
                let cwd = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
                if cwd == box.path || cwd.hasPrefix(box.path + "/") { return true }
            }
            guard let environ = try? FD.readFile("/proc/\(p)/environ").get() else { return false }
            let tag = Array("INDIMAIL_TEST_SANDBOX=\(box.path)".utf8)
            return environ.split(separator: 0).contains { Array($0) == tag }
        }
    }

    /// Live (non-zombie) sandbox processes, described for a failure message.
    func liveSandboxProcesses() -> [String] {
        sandboxProcesses().compactMap { p in
            guard let stat = ProcFS.statText(p), ProcFS.state(statLine: stat) != "Z" else { return nil }
            return "\(p) \((ProcFS.commandLine(p) ?? []).joined(separator: " "))"
        }
    }

    /// Children of svscan's process (by pid as this process sees it) whose command line holds `text`.
    /// The first child of `parent` whose command line contains `text`, waiting for it; the
    /// pid is kept from the moment it is seen (a command line reads empty for an instant
    /// while the child execs).
    func child(of parent: pid_t, matching text: String, within seconds: Double = 30) -> pid_t? {
        var found: pid_t?
        _ = eventually(within: seconds) {
            found = children(of: parent, matching: text).first
            return found != nil
        }
        return found
    }

    func children(of parent: pid_t, matching text: String) -> [pid_t] {
        (ProcFS.children(of: parent) ?? []).filter { p in
            (ProcFS.commandLine(p) ?? []).joined(separator: " ").contains(text)
        }
    }

    /// The environment of process `pid`, NAME=VALUE strings.
    func environment(of pid: pid_t) -> [String] {
        guard let bytes = try? FD.readFile("/proc/\(pid)/environ").get() else { return [] }
        return bytes.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Kills everything: svscan first (TERM, then KILL), then any process of the sandbox.
    func stop() {
        if isRunning {
            signal(SIGTERM)
            if waitExit(15) == nil {
                kill(pid, SIGKILL)
                _ = waitExit(5)
            }
        }
        let deadline = monotonicSeconds() + 10
        while monotonicSeconds() < deadline {
            let left = sandboxProcesses().filter { p in
                guard let stat = ProcFS.statText(p) else { return false }
                return ProcFS.state(statLine: stat) != "Z"
            }
            if left.isEmpty { break }
            for p in left { kill(p, SIGKILL) }
            usleep(20_000)
        }
    }

    deinit { stop() }
}
