// Starting a spawner's child: posix_spawn when no identity change is needed (the cheap
// path), fork + setgid/setuid + execve when running as root for another account.
import Core
import Glibc

/// What a child gets: its exec path (argv[0] may differ), fds and identity.
struct ChildSpec {
    var path: [UInt8]
    var arguments: [[UInt8]]
    var environment: Environment
    var stdin: Int32
    var stdout: Int32
    /// stderr goes where stdout goes (the spawners collect both).
    var stderrToStdout = true
    var directory = "/"
    /// Search PATH when `path` has no "/" (execvp, as qmail-rspawn).
    var searchPath = false
    var credentials: Credentials? = nil
    /// Refuse to run with uid 0 after the identity change (qmail-lspawn).
    var refuseRoot = false
    /// Exit codes a forked child uses when exec fails (temporary, permanent).
    var execFailure: (soft: Int32, hard: Int32) = (ChildFailure.execSoft, ChildFailure.execHard)
}

/// Exit codes a forked child uses to tell what went wrong before exec (qlx.h).
enum ChildFailure {
    static let directory: Int32 = 122
    static let uidGid: Int32 = 127
    static let root: Int32 = 113
    static let execSoft: Int32 = 120
    static let execHard: Int32 = 126
}

enum ChildLauncher {
    /// Starts the child; on failure returns the errno (posix_spawn) or the fork errno.
    static func start(_ spec: ChildSpec) -> Result<pid_t, SystemError> {
        let program = String(decoding: spec.path, as: UTF8.self)
        let path: String
        if spec.searchPath && !program.contains("/") {
            guard let found = Exec.resolve(program, path: spec.environment["PATH"]) else {
                return .failure(SystemError("unable to run", program, errno: ENOENT))
            }
            path = found
        } else {
            path = program
        }
        if let credentials = spec.credentials { return forkExec(spec, path: path, credentials: credentials) }
        return posixSpawn(spec, path: path)
    }

    private static func posixSpawn(_ spec: ChildSpec, path: String) -> Result<pid_t, SystemError> {
        var options = SpawnOptions()
        options.executable = path
        options.fileMoves = [(spec.stdin, 0), (spec.stdout, 1)] + (spec.stderrToStdout ? [(spec.stdout, Int32(2))] : [])
        options.workingDirectory = spec.directory
        return Spawn.start(spec.arguments, environment: spec.environment, options: options)
    }

    /// Everything the child needs is built before fork; after it only async-signal-safe
    /// calls run, and failures are told by exit code.
    private static func forkExec(_ spec: ChildSpec, path: String, credentials: Credentials) -> Result<pid_t, SystemError> {
        let block = ExecBlock(arguments: spec.arguments, environment: spec.environment)
        let groups = credentials.groups.isEmpty ? [credentials.gid] : credentials.groups
        return path.withCString { cPath in
            spec.directory.withCString { cDirectory in
                groups.withUnsafeBufferPointer { groupList in
                    let pid = fork()
                    if pid < 0 { return .failure(SystemError("unable to fork")) }
                    if pid > 0 { return .success(pid) }
                    var emptyMask = sigset_t()
                    sigemptyset(&emptyMask)
                    for s in 1..<Int32(32) where s != SIGKILL && s != SIGSTOP { Glibc.signal(s, SIG_DFL) }
                    sigprocmask(SIG_SETMASK, &emptyMask, nil)
                    if dup2(spec.stdin, 0) < 0 || dup2(spec.stdout, 1) < 0 { _exit(ChildFailure.execSoft) }
                    if spec.stderrToStdout && dup2(spec.stdout, 2) < 0 { _exit(ChildFailure.execSoft) }
                    if chdir(cDirectory) != 0 { _exit(ChildFailure.directory) }
                    if setgroups(groupList.count, groupList.baseAddress) != 0 || setgid(credentials.gid) != 0
                        || setuid(credentials.uid) != 0 { _exit(ChildFailure.uidGid) }
                    if spec.refuseRoot && getuid() == 0 { _exit(ChildFailure.root) }
                    execve(cPath, block.argv, block.envp)
                    _exit(TemporaryErrno.contains(errno) ? spec.execFailure.soft : spec.execFailure.hard)
                }
            }
        }
    }
}
