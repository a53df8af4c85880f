// Starting programs: PATH search as libqmail's pathexec, fork/exec, posix_spawn, wait.
import CSupport
import Glibc

/// How a child ended, decoded from a wait(2) status.
public enum WaitStatus: Equatable, Sendable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32, coreDumped: Bool)
    case stopped

    public init(raw: Int32) {
        if cs_wifexited(raw) != 0 {
            self = .exited(cs_wexitstatus(raw))
        } else if cs_wifsignaled(raw) != 0 {
            self = .signaled(cs_wtermsig(raw), coreDumped: cs_wcoredump(raw) != 0)
        } else {
            self = .stopped
        }
    }

    /// The exit status a shell would report: the code, or 128 + signal.
    public var shellStatus: Int32 {
        switch self {
        case .exited(let c): return c
        case .signaled(let s, _): return 128 + s
        case .stopped: return 0
        }
    }

    public var description: String {
        switch self {
        case .exited(let c): return "exited \(c)"
        case .signaled(let s, let core): return "killed by signal \(s)\(core ? " (core dumped)" : "")"
        case .stopped: return "stopped"
        }
    }
}

/// Raw argv/envp blocks for execve, built before fork so the child only calls async-safe code.
public struct ExecBlock: ~Copyable {
    public let argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>
    public let envp: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>
    private let argc: Int
    private let envc: Int

    public init(arguments: [[UInt8]], environment: Environment) {
        argc = arguments.count
        envc = environment.entries.count
        argv = ExecBlock.cStrings(arguments)
        envp = ExecBlock.cStrings(environment.entries)
    }

    private static func cStrings(_ list: [[UInt8]]) -> UnsafeMutablePointer<UnsafeMutablePointer<CChar>?> {
        let block = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: list.count + 1)
        for (i, item) in list.enumerated() {
            let s = UnsafeMutablePointer<CChar>.allocate(capacity: item.count + 1)
            item.withUnsafeBufferPointer { src in
                for j in 0..<item.count { s[j] = CChar(bitPattern: src[j] == 0 ? 10 : src[j]) }
            }
            s[item.count] = 0
            block[i] = s
        }
        block[list.count] = nil
        return block
    }

    deinit {
        for i in 0..<argc { argv[i]?.deallocate() }
        for i in 0..<envc { envp[i]?.deallocate() }
        argv.deallocate()
        envp.deallocate()
    }
}

public enum Exec {
    /// Candidate paths for `program`: itself when it holds a "/", else each $PATH element
    /// (default "/bin:/usr/bin"; an empty element means the current directory).
    /// The search path when PATH is unset, as libqmail's pathexec.
    public static let defaultPath = "/bin:/usr/bin"

    public static func candidates(for program: String, path: String?) -> [String] {
        if program.contains("/") { return [program] }
        let search = path ?? defaultPath
        return search.split(separator: ":", omittingEmptySubsequences: false).map { element in
            element.isEmpty ? program : "\(element)/\(program)"
        }
    }

    /// Replaces the process with `arguments[0]`, searched along the environment's PATH.
    /// Returns only on failure, with the most telling errno, as pathexec_run: ENOENT,
    /// EACCES, EPERM and EISDIR let the search go on, anything else stops it.
    public static func replace(arguments: [[UInt8]], environment: Environment,
                               searchPath: String? = nil) -> SystemError {
        guard let first = arguments.first else { return SystemError("unable to run", "", errno: EINVAL) }
        return replace(program: first, arguments: arguments, environment: environment, searchPath: searchPath)
    }

    /// As `replace(arguments:…)`, but runs `program` (searched along PATH) with `arguments`
    /// as its argv unchanged, so argv[0] may name something else (argv0).
    public static func replace(program name: [UInt8], arguments: [[UInt8]], environment: Environment,
                               searchPath: String? = nil) -> SystemError {
        let program = String(decoding: name, as: UTF8.self)
        let block = ExecBlock(arguments: arguments, environment: environment)
        var interesting: Int32 = ENOENT
        for candidate in candidates(for: program, path: searchPath ?? environment["PATH"]) {
            execve(candidate, block.argv, block.envp)
            let e = errno
            if e != ENOENT { interesting = e }
            if e != ENOENT && e != EACCES && e != EPERM && e != EISDIR { break }
        }
        return SystemError("unable to run", program, errno: interesting)
    }

    /// Resolves `program` to the first executable candidate, or nil.
    public static func resolve(_ program: String, path: String?) -> String? {
        candidates(for: program, path: path).first { candidate in
            guard access(candidate, X_OK) == 0, let st = Path.status(candidate) else { return false }
            return (st.st_mode & S_IFMT) == S_IFREG
        }
    }
}

/// Options for starting a child with posix_spawn.
public struct SpawnOptions: Sendable {
    /// fds to place in the child: (source fd in parent, target fd in child).
    public var fileMoves: [(Int32, Int32)] = []
    public var newSession = false
    public var processGroup: pid_t? = nil
    /// Keep this process's signal mask and ignored signals in the child, as fork+exec
    /// would (exec-chain tools such as fghack must not undo a `nohup`).
    public var inheritSignalState = false
    /// The child's working directory (the parent's when nil).
    public var workingDirectory: String? = nil
    /// The file to execute when it is not argv[0] (a multi-call binary run under another
    /// name); used as given, without a PATH search.
    public var executable: String? = nil
    public init() {}
}

public enum Spawn {
    /// Starts `arguments` with a clean signal state (mask cleared, handlers default),
    /// whatever this process blocks or catches, unless `inheritSignalState` asks otherwise
    /// (caught signals are reset to default either way). Returns the child's pid.
    public static func start(_ arguments: [[UInt8]], environment: Environment,
                             options: SpawnOptions = SpawnOptions()) -> Result<pid_t, SystemError> {
        guard let first = arguments.first else { return .failure(SystemError("unable to run", "", errno: EINVAL)) }
        let program = options.executable ?? String(decoding: first, as: UTF8.self)
        // A path with "/" is used as given: relative ones resolve in the child's directory.
        guard let path = options.executable != nil || program.contains("/") ? program : Exec.resolve(program, path: environment["PATH"]) else {
            return .failure(SystemError("unable to run", program, errno: ENOENT))
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }

        var empty = sigset_t(), all = sigset_t()
        sigemptyset(&empty)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &all)
        var flags = options.inheritSignalState ? Int32(0) : Int32(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)
        if options.newSession { flags |= cs_posix_spawn_setsid_flag() }
        if let group = options.processGroup {
            flags |= Int32(POSIX_SPAWN_SETPGROUP)
            posix_spawnattr_setpgroup(&attributes, group)
        }
        posix_spawnattr_setflags(&attributes, Int16(flags))
        // The parent's copies only exist for the child to dup from: closed once it has started.
        var copies: [Int32] = []
        defer { for copy in copies { _ = close(copy) } }
        for (source, target) in options.fileMoves {
            // dup2 onto itself would keep close-on-exec set; route through adddup2 on a copy.
            if source == target {
                let copy = fcntl(source, F_DUPFD_CLOEXEC, 10)
                if copy >= 0 { copies.append(copy) }
                posix_spawn_file_actions_adddup2(&actions, copy, target)
            } else {
                posix_spawn_file_actions_adddup2(&actions, source, target)
            }
        }
        if let dir = options.workingDirectory {
            _ = withUnsafeMutablePointer(to: &actions) { cs_spawn_add_chdir($0, dir) }
        }
        let block = ExecBlock(arguments: arguments, environment: environment)
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, &attributes, block.argv, block.envp)
        guard rc == 0 else { return .failure(SystemError("unable to run", program, errno: rc)) }
        return .success(pid)
    }

    /// Runs a program to completion and returns how it ended.
    public static func run(_ arguments: [[UInt8]], environment: Environment,
                           options: SpawnOptions = SpawnOptions()) -> Result<WaitStatus, SystemError> {
        start(arguments, environment: environment, options: options).flatMap { Wait.for($0) }
    }
}

public enum Wait {
    /// Blocks until `pid` ends.
    public static func `for`(_ pid: pid_t) -> Result<WaitStatus, SystemError> {
        var raw: Int32 = 0
        while true {
            let r = waitpid(pid, &raw, 0)
            if r == pid { return .success(WaitStatus(raw: raw)) }
            if r < 0 && errno != EINTR { return .failure(SystemError("unable to wait for child")) }
        }
    }

    /// Reaps one ended child without blocking: nil when none is ready.
    public static func any() -> (pid: pid_t, status: WaitStatus)? {
        var raw: Int32 = 0
        while true {
            let r = waitpid(-1, &raw, WNOHANG)
            if r > 0 { return (r, WaitStatus(raw: raw)) }
            if r < 0 && errno == EINTR { continue }
            return nil
        }
    }
}
