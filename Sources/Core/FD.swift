// File-descriptor primitives with EINTR handled once, here.
import CSupport
import Glibc

public enum FD {
    /// open(2) retried on EINTR; returns the fd or a SystemError naming the path.
    public static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o644) -> Result<Int32, SystemError> {
        while true {
            let fd = Glibc.open(path, flags | O_CLOEXEC, mode)
            if fd >= 0 { return .success(fd) }
            if errno != EINTR { return .failure(SystemError("unable to open", path)) }
        }
    }

    // The reference's open_* family (libqmail), all non-blocking as there.
    public static func openRead(_ path: String) -> Result<Int32, SystemError> {
        open(path, O_RDONLY | O_NONBLOCK)
    }
    public static func openWrite(_ path: String) -> Result<Int32, SystemError> {
        open(path, O_WRONLY | O_NONBLOCK)
    }
    public static func openAppend(_ path: String) -> Result<Int32, SystemError> {
        open(path, O_WRONLY | O_NONBLOCK | O_APPEND | O_CREAT, mode: 0o600)
    }
    public static func openTrunc(_ path: String) -> Result<Int32, SystemError> {
        open(path, O_WRONLY | O_NONBLOCK | O_TRUNC | O_CREAT, mode: 0o644)
    }
    /// Creates a new file, failing if anything (a symlink included) exists at `path`.
    public static func openExclusive(_ path: String, mode: mode_t = 0o644) -> Result<Int32, SystemError> {
        open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode: mode)
    }

    public static func close(_ fd: Int32) { _ = Glibc.close(fd) }

    /// read(2) retried on EINTR. 0 means end of file.
    public static func read(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) -> Result<Int, SystemError> {
        while true {
            let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if n >= 0 { return .success(n) }
            if errno != EINTR { return .failure(SystemError("unable to read")) }
        }
    }

    /// write(2) retried on EINTR; may write less than asked.
    public static func write(_ fd: Int32, _ buffer: UnsafeRawBufferPointer) -> Result<Int, SystemError> {
        while true {
            let n = Glibc.write(fd, buffer.baseAddress, buffer.count)
            if n >= 0 { return .success(n) }
            if errno != EINTR { return .failure(SystemError("unable to write")) }
        }
    }

    /// Writes every byte or fails; blocks on EAGAIN by polling for writability.
    @discardableResult
    public static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Result<Void, SystemError> {
        bytes.withUnsafeBytes { writeAll(fd, $0) }
    }

    @discardableResult
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Result<Void, SystemError> {
        var offset = 0
        while offset < bytes.count {
            switch write(fd, UnsafeRawBufferPointer(rebasing: bytes[offset...])) {
            case .success(let n): offset += n
            case .failure(let error) where error.errno == EAGAIN:
                waitUntil(fd, events: Int16(POLLOUT))
            case .failure(let error): return .failure(error)
            }
        }
        return .success(())
    }

    /// Blocks until `fd` is ready for `events` (or `timeout` ms pass; -1 = forever).
    @discardableResult
    public static func waitUntil(_ fd: Int32, events: Int16, timeout: Int32 = -1) -> Bool {
        var p = pollfd(fd: fd, events: events, revents: 0)
        while true {
            let r = poll(&p, 1, timeout)
            if r >= 0 { return r > 0 }
            if errno != EINTR { return false }
        }
    }

    /// Blocks until `fd` is ready for `events` or the monotonic `deadline` (MonotonicClock
    /// seconds) passes; EINTR restarts with the time left. False on timeout or poll failure.
    public static func waitUntil(_ fd: Int32, events: Int16, deadline: Double) -> Bool {
        var p = pollfd(fd: fd, events: events, revents: 0)
        while true {
            let left = deadline - MonotonicClock.now()
            if left <= 0 { return false }
            let r = poll(&p, 1, Int32(min(left * 1000, 3_600_000).rounded(.up)))
            if r > 0 { return true }
            if r < 0 && errno != EINTR { return false }
        }
    }

    /// Reads the whole file at `path` (`flags` are added to O_RDONLY).
    public static func readFile(_ path: String, flags: Int32 = 0) -> Result<[UInt8], SystemError> {
        switch open(path, O_RDONLY | flags) {
        case .failure(let e): return .failure(e)
        case .success(let fd):
            defer { close(fd) }
            return readAll(fd).mapError { SystemError("unable to read", path, errno: $0.errno) }
        }
    }

    /// Reads `fd` to end of file.
    public static func readAll(_ fd: Int32) -> Result<[UInt8], SystemError> {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 8192)
        while true {
            let r = chunk.withUnsafeMutableBytes { read(fd, $0) }
            switch r {
            case .failure(let e) where e.errno == EAGAIN:
                waitUntil(fd, events: Int16(POLLIN))
            case .failure(let e): return .failure(e)
            case .success(0): return .success(out)
            case .success(let n): out.append(contentsOf: chunk[0..<n])
            }
        }
    }

    public static func setNonBlocking(_ fd: Int32, _ on: Bool = true) {
        let flags = cs_fcntl_int(fd, F_GETFL, 0)
        guard flags >= 0 else { return }
        _ = cs_fcntl_int(fd, F_SETFL, on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK)
    }

    public static func setCloseOnExec(_ fd: Int32, _ on: Bool = true) {
        _ = cs_fcntl_int(fd, F_SETFD, on ? FD_CLOEXEC : 0)
    }

    /// fsync(2), retried on EINTR.
    public static func sync(_ fd: Int32) -> Result<Void, SystemError> {
        while fsync(fd) != 0 {
            if errno != EINTR { return .failure(SystemError("unable to fsync")) }
        }
        return .success(())
    }

    /// A pipe whose both ends are close-on-exec.
    public static func pipe() -> Result<(read: Int32, write: Int32), SystemError> {
        var fds: [Int32] = [0, 0]
        guard cs_pipe2(&fds, O_CLOEXEC) == 0 else { return .failure(SystemError("unable to create pipe")) }
        return .success((fds[0], fds[1]))
    }

    /// dup2 retried on EINTR; moves `from` onto `to` (used before exec).
    public static func move(_ from: Int32, to: Int32) -> Result<Void, SystemError> {
        if from == to { setCloseOnExec(to, false); return .success(()) }
        while dup2(from, to) < 0 {
            if errno != EINTR { return .failure(SystemError("unable to dup2")) }
        }
        _ = Glibc.close(from)
        return .success(())
    }
}
