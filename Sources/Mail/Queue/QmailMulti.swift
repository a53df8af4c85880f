// qmail-multi: a QMAILQUEUE front end. Optionally runs the message through FILTERARGS,
// then picks a queue of the multi-queue set and execs qmail-queue for it.
import Core
import Glibc

public struct QmailMultiCommand: Command {
    public static let name = "qmail-multi"
    public static let installDirectory = InstallDirectory.sbin
    public static let summary = "filter a message and queue it in one of several queues"

    public static func run(_ context: CommandContext) -> Int32 {
        Signals.ignore(SIGPIPE)
        let env = context.environment
        let death = env["DEATH"].map { UInt32(clamping: max(0, QueueLayout.leadingNumber($0))) } ?? 86400
        signal(SIGALRM) { _ in _exit(52) }
        alarm(death)
        if let filter = env["FILTERARGS"] {
            switch MailFilter.run(filter, environment: env) {
            case .queue: break
            case .discard: return 0
            case .exit(let code): return code
            }
        }
        return QueueFrontEnd.exec(arguments: context.arguments, environment: env)
    }
}

/// FILTERARGS: the message (made seekable) goes through `/bin/sh -c FILTERARGS`; its
/// output becomes the message. Exit 0 goes on, 2 or 99 discards the message (accepted),
/// 100 or 31 rejects (31), 88 passes the filter's own error text (on fd 2), anything else
/// is a temporary rejection (71), a crash 123.
enum MailFilter {
    enum Verdict: Equatable { case queue, discard, exit(Int32) }

    static func run(_ filter: String, environment: Environment) -> Verdict {
        switch filtered(filter, environment: environment) {
        case 0: return .queue
        case -1: return .discard
        case let code: return .exit(code)
        }
    }

    /// 0 to queue the filtered message, -1 to discard it, else the exit code.
    private static func filtered(_ filter: String, environment: Environment) -> Int32 {
        guard makeSeekable(0, environment: environment) else { return QueueExit.tempFiles.rawValue }
        guard case .success(let pipe) = FD.pipe() else { return QueueExit.pipeSocket.rawValue }
        var env = environment
        env.unset("FILTERARGS")
        env.unset("SPAMFILTER")
        var options = SpawnOptions()
        options.fileMoves = [(pipe.write, 1)]
        let started = Spawn.start([Array("/bin/sh".utf8), Array("-c".utf8), Array(filter.utf8)], environment: env,
                                  options: options)
        FD.close(pipe.write)
        guard case .success(let pid) = started else {
            FD.close(pipe.read)
            return QueueExit.fork.rawValue
        }
        // The filtered message replaces fd 0, in a file of its own (seekable for qmail-queue).
        let copied = copyToTemporary(pipe.read, environment: environment)
        FD.close(pipe.read)
        let status: WaitStatus
        switch Wait.for(pid) {
        case .failure: return QueueExit.waitpidSurprise.rawValue
        case .success(let s): status = s
        }
        guard let temporary = copied else { return QueueExit.tempFiles.rawValue }
        guard case .success = FD.move(temporary, to: 0) else { return QueueExit.pipeSocket.rawValue }
        guard case .exited(let code) = status else { return QueueExit.crashed.rawValue }
        switch code {
        case 0: return 0
        case 2, 99: return -1
        case 88: return QueueExit.custom.rawValue
        case 31, 100: return QueueExit.permanentReject.rawValue
        default: return QueueExit.temporaryReject.rawValue
        }
    }

    /// Leaves `fd` seekable at offset 0: as it is when it already is, else replaced by a
    /// deleted temporary file holding its contents.
    static func makeSeekable(_ fd: Int32, environment: Environment) -> Bool {
        if lseek(fd, 0, SEEK_SET) == 0 { return true }
        guard let temporary = copyToTemporary(fd, environment: environment) else { return false }
        if case .success = FD.move(temporary, to: fd) { return true }
        return false
    }

    /// Copies `source` to end of file into a new unlinked temporary file, rewound.
    static func copyToTemporary(_ source: Int32, environment: Environment) -> Int32? {
        let dir = environment.nonEmpty("TMPDIR") ?? "/tmp"
        var template = Array((dir + "/qmail-multi.XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { return nil }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        FD.setCloseOnExec(fd)
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let r = chunk.withUnsafeMutableBytes { FD.read(source, $0) }
            switch r {
            case .failure(let e) where e.errno == EAGAIN:
                FD.waitUntil(source, events: Int16(POLLIN))
            case .failure:
                FD.close(fd); return nil
            case .success(0):
                guard lseek(fd, 0, SEEK_SET) == 0 else { FD.close(fd); return nil }
                return fd
            case .success(let n):
                guard case .success = chunk.withUnsafeBytes({ FD.writeAll(fd, UnsafeRawBufferPointer(rebasing: $0[0..<n])) }) else {
                    FD.close(fd); return nil
                }
            }
        }
    }
}

/// The queue program choice and exec of qmulti.c.
enum QueueFrontEnd {
    static func isQueueProgram(_ path: [UInt8]) -> Bool {
        String(decoding: path, as: UTF8.self).hasSuffix("/qmail-queue")
    }

    static func exec(arguments: [[UInt8]], environment: Environment) -> Int32 {
        guard chdir("/") == 0 else { return QueueExit.cdRoot.rawValue }
        var env = environment
        let program: [UInt8]
        let queueProgram: Bool
        if let alternative = arguments.first {
            program = alternative
            queueProgram = isQueueProgram(alternative)
        } else if let chosen = env.bytes("QUEUEPROG"), !chosen.isEmpty {
            program = chosen
            queueProgram = isQueueProgram(chosen)
            env.unset("QUEUEPROG")
        } else {
            program = Array(Path.join(SuitePaths(environment: env).prefix, "sbin/qmail-queue").utf8)
            queueProgram = true
        }
        var argv: [[UInt8]] = arguments.isEmpty ? [program] : arguments
        if queueProgram {
            if let refusal = chooseQueue(&env) { return refusal }
            argv = [program, Array((env["QUEUEDIR"] ?? "").utf8)]
        }
        _ = Exec.replace(program: program, arguments: argv, environment: env, searchPath: "")
        return QueueExit.execQueue.rawValue
    }

    /// Picks the queue (QUEUEDIR, else one of the static multi-queue set), sets QUEUEDIR to
    /// it and checks MIN_FREE there; the exit code of a refusal, nil when the queue will do.
    static func chooseQueue(_ env: inout Environment) -> Int32? {
        switch QueueSelection.queueDirectory(environment: env) {
        case .failure: return QueueExit.configError.rawValue
        case .success(let queue):
            env["QUEUEDIR"] = queue
            switch freeSpaceCheck(queue, environment: env) {
            case .unreadable: return QueueExit.readError.rawValue
            case .tooLittle: return QueueExit.writeError.rawValue
            case .fine: return nil
            }
        }
    }

    enum Space { case fine, tooLittle, unreadable }

    /// MIN_FREE (bytes): refuse when the queue's file system has less available, counted in
    /// whole megabytes as the reference does.
    static func freeSpaceCheck(_ queue: String, environment: Environment) -> Space {
        guard let minimum = environment["MIN_FREE"] else { return .fine }
        var st = statvfs()
        guard statvfs(queue, &st) == 0 else { return .unreadable }
        let available = (UInt64(st.f_bavail) / 1024) &* (UInt64(st.f_bsize) / 1024)
        let wanted = UInt64(max(0, QueueLayout.leadingNumber(minimum))) / (1024 * 1024)
        return available < wanted ? .tooLittle : .fine
    }
}
