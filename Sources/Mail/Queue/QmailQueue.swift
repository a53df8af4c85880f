// qmail-queue: puts one message (fd 0) and its envelope (fd 1) into a queue, following the
// reference's steps so that a crash at any point leaves either nothing or a complete,
// durable message. Built as its own setuid executable (Sources/qmail-queue), never as part
// of the multi-call binary.
import Core
import Glibc

/// When the message and envelope are forced to disk before success.
public enum QueueSyncPolicy: Equatable, Sendable {
    case none
    case fsync
    case fdatasync

    /// Our default is the classic guarantee, fsync. `USE_FSYNC=0` turns syncing off (the
    /// reference's default); `USE_FDATASYNC` set non-empty (not `0`) selects fdatasync.
    public init(environment env: Environment) {
        if let d = env.nonEmpty("USE_FDATASYNC"), d != "0" {
            self = .fdatasync
        } else if env["USE_FSYNC"] == "0" {
            self = .none
        } else {
            self = .fsync
        }
    }
}

public enum QmailQueue {
    /// Runs the whole injection; the return value is the exit code (QueueExit).
    public static func main(environment env: Environment) -> Int32 {
        prepareSignals()
        umask(0o033)
        var injection = Injection(environment: env, callerUID: getuid(), input: DescriptorInput())
        let code = injection.run()
        if code != 0 { injection.cleanup() }
        return code
    }

    /// The reference's signal set-up: nothing blocked, SIGPIPE and the job-control and
    /// profiling signals ignored, DEATH's alarm exits 52 without cleaning up (qmail-send
    /// removes what is left), and a crash signal exits 81 instead of dumping core.
    static func prepareSignals() {
        var none = sigset_t()
        sigemptyset(&none)
        sigprocmask(SIG_SETMASK, &none, nil)
        for s in [SIGPIPE, SIGVTALRM, SIGPROF, SIGQUIT, SIGINT, SIGHUP, SIGXCPU, SIGXFSZ] {
            signal(s, SIG_IGN)
        }
        signal(SIGALRM) { _ in _exit(QueueExit.timeout.rawValue) }
        for s in [SIGILL, SIGTRAP, SIGABRT, SIGFPE, SIGBUS, SIGSEGV, SIGSYS] {
            signal(s) { _ in _exit(QueueExit.internalBug.rawValue) }
        }
    }

    /// The remote address of the network client, when one of fds 0–2 is a socket (an
    /// injector run straight under tcpserver without TCPREMOTEIP).
    static func peerAddress() -> String? {
        for fd: Int32 in 0...2 {
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let r = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) }
            }
            if r != 0 {
                if errno == EBADF { return nil }
                continue
            }
            var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
            switch Int32(storage.ss_family) {
            case AF_INET:
                var a = withUnsafePointer(to: &storage) {
                    $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
                }
                guard inet_ntop(AF_INET, &a, &text, socklen_t(text.count)) != nil else { return "?.?.?.?" }
            case AF_INET6:
                var a = withUnsafePointer(to: &storage) {
                    $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
                }
                guard inet_ntop(AF_INET6, &a, &text, socklen_t(text.count)) != nil else { return "?.?.?.?" }
            case AF_UNSPEC: return "::1"
            default: return "?.?.?.?"
            }
            return String(cString: text)
        }
        return nil
    }

    static func hostName(_ env: Environment) -> String {
        if let h = env["HOSTNAME"] { return h }
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "unknown" }
        return String(cString: buffer)
    }

    /// Writes one byte to lock/trigger without blocking; no reader (ENXIO) or a full pipe
    /// is fine: the scheduler scans the queue on its own anyway.
    public static func pullTrigger(_ path: String) {
        let fd = Glibc.open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return }
        var zero: UInt8 = 0
        _ = Glibc.write(fd, &zero, 1)
        Glibc.close(fd)
    }
}

/// Where an injection's message and envelope come from: fds 0 and 1 (qmail-queue), or a
/// request already read whole by a qmail-queued worker.
protocol InjectionInput {
    /// Copies the message to `out`; nil on success, else the exit code.
    mutating func copyMessage(into out: BufferedWriter) -> Int32?
    mutating func readEnvelope() -> Result<Envelope, EnvelopeError>
    /// The network client's address when the environment does not name it.
    func peerAddress() -> String?
}

/// One run of qmail-queue. Files are named relative to the queue directory after chdir,
/// as the reference does.
struct Injection<Input: InjectionInput> {
    let env: Environment
    /// Who asked: the real uid of qmail-queue, the peer of a qmail-queued connection.
    let callerUID: uid_t
    var input: Input
    /// The uid of an account name, nil when unknown (qmail-queued's workers remember them).
    var uidOf: (String) -> uid_t? = Accounts.uid(of:)
    /// How several descriptors are flushed at once (qmail-queued's workers keep threads).
    var flush: ([ConcurrentSync.Request]) -> [Int32] = ConcurrentSync.flush
    var messPath: String?
    var intdPath: String?
    var messFD: Int32 = -1
    var intdFD: Int32 = -1

    init(environment: Environment, callerUID: uid_t, input: Input) {
        self.env = environment
        self.callerUID = callerUID
        self.input = input
    }

    mutating func run() -> Int32 {
        let startTime = time(nil)
        let queue: String
        switch QueueSelection.queueDirectory(environment: env) {
        case .success(let dir): queue = dir
        case .failure: return QueueExit.configError.rawValue
        }
        guard chdir(queue) == 0 else { return QueueExit.chdir.rawValue }
        let layout = QueueLayout(directory: ".", environment: env)
        let sync = QueueSyncPolicy(environment: env)
        // The directories too, unless USE_SYNCDIR=0 (as todo-proc and qmail-local read it).
        let syncDirectories = sync != .none && env["USE_SYNCDIR"] != "0"
        let pid = getpid()
        let uid = callerUID
        let header = receivedHeader(pid: pid, uid: uid, time: startTime)

        let death = env["DEATH"].map { UInt32(clamping: max(0, QueueLayout.leadingNumber($0))) } ?? 86400
        alarm(death)

        // The pid file's inode becomes the message id.
        var pidPath = ""
        for seq in 1...9 {
            pidPath = "pid/\(pid).\(startTime).\(seq)"
            if case .success(let fd) = FD.openExclusive(pidPath, mode: 0o644) { messFD = fd; break }
        }
        guard messFD >= 0 else { return QueueExit.pidFile.rawValue }
        var st = stat()
        guard fstat(messFD, &st) == 0 else { return QueueExit.messFile.rawValue }
        let id = UInt64(st.st_ino)
        let mess = layout.relativePath(.mess, id)
        guard link(pidPath, mess) == 0 else {
            let e = errno
            unlink(pidPath)
            errno = e
            return QueueExit.linkMessPid.rawValue
        }
        guard unlink(pidPath) == 0 else {
            unlink(mess)
            return QueueExit.removePid.rawValue
        }
        messPath = mess

        // The message: our Received line, then fd 0 to its end.
        let out = BufferedWriter(fd: messFD, capacity: 65536)
        guard out.write(header.bytes).isSuccess else { return QueueExit.writeError.rawValue }
        if let code = input.copyMessage(into: out) { return code }
        guard out.flush().isSuccess else { return QueueExit.writeError.rawValue }

        // The envelope.
        let intd = layout.relativePath(.intd, id)
        switch FD.openExclusive(intd, mode: 0o644) {
        case .success(let fd): intdFD = fd
        case .failure: return QueueExit.intdFile.rawValue
        }
        intdPath = intd
        let envelopeOut = BufferedWriter(fd: intdFD, capacity: 65536)
        guard envelopeOut.write(QueuedEnvelope.prefix(uid: UInt64(uid), pid: UInt64(pid))).isSuccess else {
            return QueueExit.writeError.rawValue
        }
        switch input.readEnvelope() {
        case .failure(let e): return e.exitCode
        case .success(let envelope):
            var records: [UInt8] = [UInt8(ascii: "F")] + envelope.sender + [0]
            for r in envelope.recipients { records += [UInt8(ascii: "T")] + r + [0] }
            if let e = QueuedEnvelope.extraHeaderRecord(env.bytes("QQEH")) {
                records += [UInt8(ascii: "e")] + e + [0]
            }
            guard envelopeOut.write(records).isSuccess, envelopeOut.flush().isSuccess else { return QueueExit.writeError.rawValue }
        }

        if sync != .none {
            // mess, intd and (the new name in) mess/ are flushed together: each flush is
            // still waited for, but the file system may fold them into one commit.
            let dataOnly = sync == .fdatasync
            var requests = [ConcurrentSync.Request(messFD, dataOnly: dataOnly), ConcurrentSync.Request(intdFD, dataOnly: dataOnly)]
            var messDirectory: Int32 = -1
            if syncDirectories {
                messDirectory = Glibc.open(Path.dirname(mess), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                guard messDirectory >= 0 else { return QueueExit.syncDirectory.rawValue }
                requests.append(ConcurrentSync.Request(messDirectory))
            }
            let results = flush(requests)
            if messDirectory >= 0 { Glibc.close(messDirectory) }
            guard results[0] == 0, results[1] == 0 else { return QueueExit.fsync.rawValue }
            guard results.count < 3 || results[2] == 0 else { return QueueExit.syncDirectory.rawValue }
        }
        let todo = layout.relativePath(.todo, id)
        guard link(intd, todo) == 0 else { return QueueExit.linkTodoIntd.rawValue }
        if syncDirectories {
            // From here on the message is todo-proc's: a failure must not remove it.
            guard syncDirectory(Path.dirname(todo)) else {
                messPath = nil; intdPath = nil
                return QueueExit.syncDirectory.rawValue
            }
        }
        messPath = nil
        intdPath = nil
        QmailQueue.pullTrigger("lock/trigger")
        return QueueExit.ok.rawValue
    }

    /// Truncates and removes what this run created, so a failed injection leaves nothing.
    func cleanup() {
        let e = errno
        if let intdPath, intdFD >= 0 { _ = ftruncate(intdFD, 0); unlink(intdPath) }
        if let messPath, messFD >= 0 { _ = ftruncate(messFD, 0); unlink(messPath) }
        errno = e
    }

    func receivedHeader(pid: pid_t, uid: uid_t, time: time_t) -> ReceivedHeader {
        let hide = env.contains("HIDE_HOST")
        let accounts = SuiteAccounts(environment: env)
        let origin: ReceivedHeader.Origin
        if uidOf(accounts.alias) == uid {
            origin = .alias
        } else if uidOf(accounts.qmails) == uid {
            origin = .bounce
        } else {
            var ip = env["TCPREMOTEIP"]
            if ip == nil && !hide && env["FASTQUEUE"].map(QueueLayout.leadingNumber) ?? 0 == 0 {
                ip = input.peerAddress()
            }
            origin = .user(uid: UInt64(uid), remoteIP: ip)
        }
        return ReceivedHeader(pid: pid, host: hide ? nil : QmailQueue.hostName(env), origin: origin,
                              date: ReceivedHeader.date822(seconds: time))
    }

    func syncDirectory(_ dir: String) -> Bool {
        let fd = Glibc.open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { Glibc.close(fd) }
        return FD.sync(fd).isSuccess
    }
}

/// qmail-queue's input: the message on fd 0 up to its end, the envelope on fd 1.
struct DescriptorInput: InjectionInput {
    /// Copies fd 0 to the mess file; nil on success, else the exit code.
    mutating func copyMessage(into out: BufferedWriter) -> Int32? {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { readSome(0, $0) }
            if n < 0 { return QueueExit.readError.rawValue }
            if n == 0 { return nil }
            guard out.write(chunk[0..<n]).isSuccess else { return QueueExit.writeError.rawValue }
        }
    }

    /// Reads the client envelope from fd 1 up to its terminating NUL and no further.
    mutating func readEnvelope() -> Result<Envelope, EnvelopeError> {
        var reader = EnvelopeReader()
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            // One byte at a time would cost a syscall per byte; a pipe never hands us more
            // than the client wrote, and bytes after the final NUL are not ours to care about.
            let n = chunk.withUnsafeMutableBytes { readSome(1, $0) }
            if n <= 0 { return .failure(.truncated) }
            for i in 0..<n {
                switch reader.feed(chunk[i]) {
                case .needMore: continue
                case .complete: return .success(reader.envelope)
                case .failed(let e): return .failure(e)
                }
            }
        }
    }

    func peerAddress() -> String? { QmailQueue.peerAddress() }
}

/// read(2) that waits out EINTR and EAGAIN (an inherited non-blocking pipe): bytes read,
/// 0 at end of file, -1 on error.
func readSome(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) -> Int {
    while true {
        switch FD.read(fd, buffer) {
        case .success(let n): return n
        case .failure(let e) where e.errno == EAGAIN: FD.waitUntil(fd, events: Int16(POLLIN))
        case .failure: return -1
        }
    }
}

extension Result {
    var isSuccess: Bool { if case .success = self { return true } else { return false } }
}
