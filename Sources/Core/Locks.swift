// Advisory locks (flock, as the reference) and FIFOs, the supervision layer's IPC.
import CSupport
import Glibc

public enum FileLock {
    /// Exclusive flock; with `wait` false fails at once (EWOULDBLOCK) when held elsewhere.
    public static func exclusive(_ fd: Int32, wait: Bool = true) -> Result<Void, SystemError> {
        lock(fd, LOCK_EX | (wait ? 0 : LOCK_NB))
    }

    public static func shared(_ fd: Int32, wait: Bool = true) -> Result<Void, SystemError> {
        lock(fd, LOCK_SH | (wait ? 0 : LOCK_NB))
    }

    public static func unlock(_ fd: Int32) { _ = flock(fd, LOCK_UN) }

    private static func lock(_ fd: Int32, _ operation: Int32) -> Result<Void, SystemError> {
        while flock(fd, operation) != 0 {
            if errno != EINTR { return .failure(SystemError("unable to lock")) }
        }
        return .success(())
    }
}

public enum FIFO {
    /// mkfifo; an existing FIFO at `path` is fine, anything else there is an error.
    public static func make(_ path: String, mode: mode_t = 0o600) -> Result<Void, SystemError> {
        if mkfifo(path, mode) == 0 { return .success(()) }
        let e = errno
        if e == EEXIST, let st = Path.status(path, followLinks: false), (st.st_mode & S_IFMT) == S_IFIFO {
            return .success(())
        }
        return .failure(SystemError("unable to create fifo", path, errno: e))
    }

    /// Opens for reading without blocking for a writer.
    public static func openRead(_ path: String) -> Result<Int32, SystemError> { FD.openRead(path) }

    /// Opens for writing without blocking; ENXIO means no process has it open for reading.
    public static func openWrite(_ path: String) -> Result<Int32, SystemError> { FD.openWrite(path) }
}
