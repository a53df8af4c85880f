// FileLock (flock, per open file description) and FIFO helpers.
import Core
import Glibc
import Testing

@Suite("FileLock")
struct FileLockTests {
    @Test("an exclusive lock conflicts across separately opened descriptors")
    func exclusiveConflict() throws {
        let dir = try TempDir(); defer { dir.remove() }
        let path = dir.file("lock")
        try writeFile(path, "")
        let first = try FD.open(path, O_RDWR).get()
        let second = try FD.open(path, O_RDWR).get()
        defer { FD.close(first); FD.close(second) }

        try FileLock.exclusive(first, wait: false).get()
        #expect(failure(FileLock.exclusive(second, wait: false))?.errno == EWOULDBLOCK)
        #expect(failure(FileLock.shared(second, wait: false))?.errno == EWOULDBLOCK)
        // Locking again through the same description is fine (flock converts in place).
        try FileLock.exclusive(first, wait: false).get()

        FileLock.unlock(first)
        try FileLock.exclusive(second, wait: false).get()
        #expect(failure(FileLock.exclusive(first, wait: false))?.errno == EWOULDBLOCK)

        // Closing the holder releases the lock.
        let third = try FD.open(path, O_RDONLY).get()
        FileLock.unlock(second)
        try FileLock.exclusive(third, wait: false).get()
        FD.close(third)
        try FileLock.exclusive(first, wait: true).get()
    }

    @Test("a dup'ed descriptor shares its lock")
    func dupSharesLock() throws {
        let dir = try TempDir(); defer { dir.remove() }
        let path = dir.file("lock")
        try writeFile(path, "")
        let fd = try FD.open(path, O_RDWR).get()
        let copy = dup(fd)
        let other = try FD.open(path, O_RDWR).get()
        defer { FD.close(fd); FD.close(copy); FD.close(other) }
        try FileLock.exclusive(fd, wait: false).get()
        try FileLock.exclusive(copy, wait: false).get()
        #expect(failure(FileLock.exclusive(other, wait: false))?.errno == EWOULDBLOCK)
    }

    @Test("shared locks coexist and keep exclusive ones out")
    func sharedLocks() throws {
        let dir = try TempDir(); defer { dir.remove() }
        let path = dir.file("lock")
        try writeFile(path, "")
        let a = try FD.open(path, O_RDONLY).get()
        let b = try FD.open(path, O_RDONLY).get()
        let c = try FD.open(path, O_RDONLY).get()
        defer { FD.close(a); FD.close(b); FD.close(c) }
        try FileLock.shared(a, wait: false).get()
        try FileLock.shared(b, wait: false).get()
        #expect(failure(FileLock.exclusive(c, wait: false))?.errno == EWOULDBLOCK)
        FileLock.unlock(a)
        FileLock.unlock(b)
        try FileLock.exclusive(c, wait: false).get()
    }

    @Test("locking a bad descriptor is an error")
    func badDescriptor() {
        #expect(failure(FileLock.exclusive(-1, wait: false))?.errno == EBADF)
    }
}

@Suite("FIFO")
struct FIFOTests {
    @Test("make creates a fifo and accepts an existing one")
    func make() throws {
        let dir = try TempDir(); defer { dir.remove() }
        let path = dir.file("control")
        try FIFO.make(path).get()
        let st = try #require(Path.status(path, followLinks: false))
        #expect(st.st_mode & S_IFMT == S_IFIFO)
        #expect(st.st_mode & 0o777 == 0o600)
        try FIFO.make(path).get()
    }

    @Test("make refuses a regular file, a directory or a symlink in the way")
    func makeOverOther() throws {
        let dir = try TempDir(); defer { dir.remove() }
        try writeFile(dir.file("file"), "x")
        try makeDirectory(dir.file("dir"))
        try FIFO.make(dir.file("real")).get()
        try makeSymlink(dir.file("real"), at: dir.file("link"))
        for name in ["file", "dir", "link"] {
            let error = failure(FIFO.make(dir.file(name)))
            #expect(error?.errno == EEXIST, "\(name)")
            #expect(error?.description == "unable to create fifo \(dir.file(name)): File exists")
        }
        #expect(failure(FIFO.make(dir.file("missing/fifo")))?.errno == ENOENT)
    }

    @Test("openWrite without a reader is ENXIO; with one it works")
    func openWrite() throws {
        let dir = try TempDir(); defer { dir.remove() }
        let path = dir.file("ok")
        try FIFO.make(path).get()
        #expect(failure(FIFO.openWrite(path))?.errno == ENXIO)

        let reader = try FIFO.openRead(path).get()
        defer { FD.close(reader) }
        let writer = try FIFO.openWrite(path).get()
        try FD.writeAll(writer, bytes("u")).get()
        FD.close(writer)
        var buffer = [UInt8](repeating: 0, count: 4)
        let n = try buffer.withUnsafeMutableBytes { try FD.read(reader, $0).get() }
        #expect(n == 1)
        #expect(buffer[0] == UInt8(ascii: "u"))
        #expect(failure(FIFO.openWrite(dir.file("absent")))?.errno == ENOENT)
    }
}
