// One automatically rotated log directory: lock, `current`, rotation, processor, old logs,
// and the recovery of a directory left half-rotated by a crash.
import Core
import Glibc

/// Shared by the directories of one multilog process.
struct LogDirectoryContext {
    let diagnostics: Diagnostics
    let environment: Environment
    /// False when NOFSYNC is set.
    let syncToDisk: Bool
    /// Seconds to wait before retrying a failed disk operation (the reference's 5).
    let pauseSeconds: UInt32
}

/// A startup failure: the message, and the errno behind it.
struct LogDirectoryError: Error {
    let message: String
    let errno: Int32
    var description: String { "\(message): \(SystemError.describe(errno))" }
}

final class LogDirectory: CutterSink {
    static let pendingCapacity = 65536

    let config: LogDirectoryConfig
    /// The directory as written in the script, for messages.
    let name: String
    private let context: LogDirectoryContext
    private let directory: Int32
    private let lock: Int32
    private var current: Int32
    private(set) var cutter: CurrentFileCutter
    /// Bytes put but not yet written to `current`; `pending[0]` is stream offset `pendingBase`.
    private let pending: UnsafeMutableRawBufferPointer
    private var pendingCount = 0
    private var pendingBase = 0

    private init(config: LogDirectoryConfig, context: LogDirectoryContext, directory: Int32, lock: Int32,
                 current: Int32, bytes: Int) {
        self.config = config
        self.name = String(decoding: config.path, as: UTF8.self)
        self.context = context
        self.directory = directory
        self.lock = lock
        self.current = current
        self.cutter = CurrentFileCutter(limit: config.maxSize, bytes: bytes)
        self.pending = .allocate(byteCount: Self.pendingCapacity, alignment: 1)
    }

    deinit { pending.deallocate() }

    // MARK: startup

    /// Creates (with 0755 under `umask`), locks and recovers the directory, then opens `current`.
    /// `start` is the directory relative paths are taken from.
    static func open(_ config: LogDirectoryConfig, start: Int32, umask callerMask: mode_t,
                     context: LogDirectoryContext) -> Result<LogDirectory, LogDirectoryError> {
        let name = String(decoding: config.path, as: UTF8.self)
        let path = config.path.map { CChar(bitPattern: $0) } + [0]
        // The directory honours the caller's umask; files inside are made under 022, as the reference.
        umask(callerMask)
        let made = mkdirat(start, path, 0o755)
        let mkdirErrno = errno
        umask(0o022)
        if made != 0 && mkdirErrno != EEXIST {
            return .failure(LogDirectoryError(message: "unable to create directory \(name)", errno: mkdirErrno))
        }
        let directory = openat(start, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard directory >= 0 else {
            return .failure(LogDirectoryError(message: "unable to open directory \(name)", errno: errno))
        }
        let lock = openat(directory, "lock", O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK | O_CLOEXEC, 0o600)
        guard lock >= 0, case .success = FileLock.exclusive(lock, wait: false) else {
            let e = errno
            if lock >= 0 { Glibc.close(lock) }
            Glibc.close(directory)
            return .failure(LogDirectoryError(message: "unable to lock directory \(name)", errno: e))
        }
        let log = LogDirectory(config: config, context: context, directory: directory, lock: lock,
                               current: -1, bytes: 0)
        return log.recover().map { log }
    }

    /// The reference's restart: resume a cleanly closed `current`, or finish whatever a crash
    /// left behind and start a new one.
    private func recover() -> Result<Void, LogDirectoryError> {
        var st = stat()
        if fstatat(directory, "current", &st, 0) == 0 {
            if st.st_mode & S_IXUSR != 0 {
                // Closed cleanly (mode 0744): keep appending to it.
                let fd = openat(directory, "current", O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK | O_CLOEXEC, 0o600)
                guard fd >= 0 else { return .failure(error("unable to append to \(name)/current")) }
                guard fchmod(fd, 0o644) == 0 else { return .failure(error("unable to set mode of \(name)/current")) }
                current = fd
                cutter = CurrentFileCutter(limit: config.maxSize, bytes: Int(st.st_size))
                return .success(())
            }
        } else if errno != ENOENT {
            return .failure(error("unable to stat \(name)/current"))
        }
        unlinkat(directory, "state", 0)
        unlinkat(directory, "newstate", 0)
        var processedDone = false
        if fstatat(directory, "processed", &st, 0) == 0 {
            processedDone = st.st_mode & S_IXUSR != 0
        } else if errno != ENOENT {
            return .failure(error("unable to stat \(name)/processed"))
        }
        if processedDone {
            // The processor finished and its output reached the disk: the input can go.
            unlinkat(directory, "previous", 0)
            finish("processed", code: "s")
        } else {
            unlinkat(directory, "processed", 0)
            finish("previous", code: "u")
        }
        finish("current", code: "u")
        let state = openat(directory, "state", O_WRONLY | O_TRUNC | O_CREAT | O_NONBLOCK | O_CLOEXEC, 0o644)
        guard state >= 0 else { return .failure(error("unable to write to \(name)/state")) }
        Glibc.close(state)
        let fd = openat(directory, "current", O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return .failure(error("unable to write to \(name)/current")) }
        guard fchmod(fd, 0o644) == 0 else { return .failure(error("unable to set mode of \(name)/current")) }
        current = fd
        cutter = CurrentFileCutter(limit: config.maxSize, bytes: 0)
        return .success(())
    }

    private func error(_ message: String) -> LogDirectoryError { LogDirectoryError(message: message, errno: errno) }

    // MARK: the data path

    /// Bytes of a line, put in one piece.
    func put(_ bytes: UnsafeRawBufferPointer) {
        store(bytes)
        cutter.put(bytes.count, self)
    }

    /// The tail of an overlong line, which the reference puts one byte at a time.
    func putEachByte(_ bytes: UnsafeRawBufferPointer) {
        store(bytes)
        cutter.putEachByte(bytes.count, self)
    }

    func putNewline() {
        if pendingCount == Self.pendingCapacity { writeOut(upTo: cutter.written) }
        pending[pendingCount] = 10
        pendingCount += 1
        cutter.put(1, self)
    }

    private func store(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        if pendingCount + bytes.count > Self.pendingCapacity { writeOut(upTo: cutter.written) }
        // The replayed buffer holds at most 512 unwritten bytes and callers put at most a few
        // KiB at once, so after writing out there is always room.
        (pending.baseAddress! + pendingCount).copyMemory(from: base, byteCount: bytes.count)
        pendingCount += bytes.count
    }

    /// The reference flushes before each read of its input (a 1024-byte read): same here,
    /// on the replay only.
    func replayFlush() { cutter.flush(self) }

    /// Before blocking on input: everything put so far goes to `current`.
    func flushBeforeRead() {
        cutter.flush(self)
        writeOut(upTo: cutter.written)
    }

    /// SIGALRM or timed rotation: finish `current` now if it holds anything.
    func rotateNow() {
        cutter.rotateNow(self)
        writeOut(upTo: cutter.written)
    }

    /// End of input: flush, sync, and mark `current` complete (mode 0744).
    func closeCurrent() {
        flushBeforeRead()
        syncCurrent()
        while fchmod(current, 0o744) != 0 { pause("unable to set mode of \(name)/current") }
    }

    /// Writes the pending bytes before stream offset `offset`; retries forever on errors.
    private func writeOut(upTo offset: Int) {
        let count = min(offset - pendingBase, pendingCount)
        guard count > 0 else { return }
        var done = 0
        while done < count {
            let n = Glibc.write(current, pending.baseAddress! + done, count - done)
            if n > 0 {
                done += n
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                if n == 0 { errno = EIO }
                pause("unable to write to \(name)/current")
            }
        }
        let rest = pendingCount - count
        if rest > 0 { pending.baseAddress!.copyMemory(from: pending.baseAddress! + count, byteCount: rest) }
        pendingCount = rest
        pendingBase += count
    }

    // MARK: CutterSink

    func lastNewline(from start: Int, count: Int) -> Int? {
        let from = start - pendingBase
        var i = min(from + count, pendingCount) - 1
        while i >= from {
            if pending[i] == 10 { return pendingBase + i }
            i -= 1
        }
        return nil
    }

    func byte(at offset: Int) -> UInt8 { pending[offset - pendingBase] }

    func rotate(at offset: Int) {
        writeOut(upTo: offset)
        finishCurrent()
    }

    // MARK: rotation

    /// `current` is full: it becomes `previous`, goes through the processor if there is one,
    /// and ends as an old log `@<stamp>.s`.
    private func finishCurrent() {
        syncCurrent()
        Glibc.close(current)
        while renameat(directory, "current", directory, "previous") != 0 {
            pause("unable to rename current to previous in directory \(name)")
        }
        while true {
            current = openat(directory, "current", O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK | O_CLOEXEC, 0o600)
            if current >= 0 { break }
            pause("unable to create \(name)/current")
        }
        while fchmod(current, 0o644) != 0 { pause("unable to set mode of \(name)/current") }
        while fchmodat(directory, "previous", 0o744, 0) != 0 { pause("unable to set mode of \(name)/previous") }
        guard let processor = config.processor else {
            finish("previous", code: "s")
            return
        }
        runProcessor(processor)
        let processed = openAppendRetrying("processed")
        if context.syncToDisk {
            while fsync(processed) != 0 { pause("unable to write \(name)/processed to disk") }
        }
        // Mode 0744 marks the processor's output as complete: recovery keeps it from now on.
        while fchmod(processed, 0o744) != 0 { pause("unable to set mode of \(name)/processed") }
        Glibc.close(processed)
        let newstate = openAppendRetrying("newstate")
        if context.syncToDisk {
            while fsync(newstate) != 0 { pause("unable to write \(name)/newstate to disk") }
        }
        Glibc.close(newstate)
        while unlinkat(directory, "previous", 0) != 0 && errno != ENOENT {
            pause("unable to remove \(name)/previous")
        }
        while renameat(directory, "newstate", directory, "state") != 0 {
            pause("unable to rename newstate to state in directory \(name)")
        }
        finish("processed", code: "s")
    }

    private func syncCurrent() {
        guard context.syncToDisk else { return }
        while fsync(current) != 0 && errno != EINVAL { pause("unable to write \(name)/current to disk") }
    }

    private func openAppendRetrying(_ file: String) -> Int32 {
        while true {
            let fd = openat(directory, file, O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK | O_CLOEXEC, 0o600)
            if fd >= 0 { return fd }
            pause("unable to create \(name)/\(file)")
        }
    }

    /// Runs `sh -c processor` in the directory with previous on fd 0, processed on 1, state
    /// on 4 and newstate on 5, until it exits 0. The reference retries every 5 seconds.
    private func runProcessor(_ processor: [UInt8]) {
        let command: [[UInt8]] = [Array("/bin/sh".utf8), Array("-c".utf8), processor]
        while true {
            guard fchdir(directory) == 0 else {
                pause("unable to switch to \(name)")
                continue
            }
            var fds: [Int32] = []
            defer { for fd in fds { Glibc.close(fd) } }
            let files: [(String, Int32)] = [
                ("previous", O_RDONLY),
                ("processed", O_WRONLY | O_TRUNC | O_CREAT),
                // A missing state (removed by hand) is made empty rather than failing forever.
                ("state", O_RDONLY | O_CREAT),
                ("newstate", O_WRONLY | O_TRUNC | O_CREAT),
            ]
            var opened = true
            for (file, flags) in files {
                let fd = openat(directory, file, flags | O_NONBLOCK | O_CLOEXEC, 0o644)
                // Above the child's targets, so no move clobbers a descriptor still to be moved.
                let high = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 10) : -1
                if fd >= 0 { Glibc.close(fd) }
                guard high >= 0 else {
                    pause("unable to open \(name)/\(file) for processor")
                    opened = false
                    break
                }
                fds.append(high)
            }
            guard opened else { continue }
            for fd in fds { FD.setNonBlocking(fd, false) }
            var options = SpawnOptions()
            options.fileMoves = [(fds[0], 0), (fds[1], 1), (fds[2], 4), (fds[3], 5)]
            switch Spawn.start(command, environment: context.environment, options: options) {
            case .failure(let e):
                errno = e.errno
                pause("unable to run processor in \(name)")
            case .success(let pid):
                switch Wait.for(pid) {
                case .failure(let e):
                    errno = e.errno
                    pause("wait failed for processor in \(name)")
                case .success(.exited(0)):
                    return
                case .success(.signaled(let signal, _)):
                    context.diagnostics.warning("processor crashed in \(name) (signal \(Signals.name(signal))), pausing")
                    sleepSeconds(context.pauseSeconds)
                case .success(let status):
                    context.diagnostics.warning("processor failed in \(name) (\(status)), pausing")
                    sleepSeconds(context.pauseSeconds)
                }
            }
        }
    }

    /// Turns `file` into an old log `@<now>.<code>` (unless a crash already linked it), then
    /// deletes the oldest logs until fewer than `keep` remain. A missing file is no error.
    private func finish(_ file: String, code: String) {
        var st = stat()
        while fstatat(directory, file, &st, 0) != 0 {
            if errno == ENOENT { return }
            pause("unable to stat \(name)/\(file)")
        }
        if st.st_nlink == 1 {
            while true {
                let target = TAI64N.now().labelString + "." + code
                if linkat(directory, file, directory, target, 0) == 0 { break }
                // Two rotations in one clock tick: take a new stamp at once.
                if errno == EEXIST { continue }
                pause("unable to link to \(name)/\(target)")
            }
        }
        while unlinkat(directory, file, 0) != 0 && errno != ENOENT {
            pause("unable to remove \(name)/\(file)")
        }
        while true {
            switch removeOldest() {
            case .success(true): continue
            case .success(false): return
            case .failure: pause("unable to read \(name)")
            }
        }
    }

    /// Deletes the oldest old log when `keep` or more exist; true when it deleted one.
    private func removeOldest() -> Result<Bool, SystemError> {
        let copy = openat(directory, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard copy >= 0, let stream = fdopendir(copy) else {
            let e = SystemError("unable to read", name)
            return .failure(e)
        }
        defer { closedir(stream) }
        var count = 0
        var oldest: [UInt8]? = nil
        while true {
            errno = 0
            guard let entry = readdir(stream) else {
                if errno != 0 { return .failure(SystemError("unable to read", name)) }
                break
            }
            let entryName = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                Array(raw.prefix(while: { $0 != 0 }))
            }
            // Old logs: "@" and a stamp (25 bytes at least), whatever the suffix.
            guard entryName.count >= 25, entryName[0] == UInt8(ascii: "@") else { continue }
            count += 1
            if oldest.map({ entryName.lexicographicallyPrecedes($0) }) ?? true { oldest = entryName }
        }
        guard count >= config.keep, let victim = oldest else { return .success(false) }
        let cVictim = victim.map { CChar(bitPattern: $0) } + [0]
        if unlinkat(directory, cVictim, 0) != 0 && errno != ENOENT {
            return .failure(SystemError("unable to remove", name))
        }
        return .success(true)
    }

    /// Warns `multilog: warning: <message>, pausing: <reason>` and waits before the retry.
    private func pause(_ message: String) {
        context.diagnostics.warning("\(message), pausing: \(SystemError.describe(errno))")
        sleepSeconds(context.pauseSeconds)
    }
}

/// Sleeps the whole time even when interrupted.
func sleepSeconds(_ seconds: UInt32) {
    var request = timespec(tv_sec: Int(seconds), tv_nsec: 0)
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
}
