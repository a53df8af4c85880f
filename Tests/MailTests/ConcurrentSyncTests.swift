// ConcurrentSync: every flush is done and its result reported in the caller's order.
import Glibc
import Mail
import Testing

@Suite("ConcurrentSync")
struct ConcurrentSyncTests {
    /// An open, already unlinked temporary file with a few bytes to flush.
    static func scratchFile() -> Int32 {
        var name = Array("/tmp/concurrent-sync-XXXXXX".utf8CString)
        let fd = name.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        #expect(fd >= 0)
        name.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        _ = write(fd, "data", 4)
        return fd
    }

    @Test("results come back per descriptor, in order; a bad descriptor fails alone")
    func resultsInOrder() {
        let fd = Self.scratchFile()
        defer { close(fd) }
        let results = ConcurrentSync.flush([.init(fd), .init(-1), .init(fd, dataOnly: true), .init(987_654)])
        #expect(results == [0, EBADF, 0, EBADF])
        #expect(ConcurrentSync.flush([]) == [])
        #expect(ConcurrentSync.flush([.init(fd)]) == [0])
    }

    @Test("FlushThreads: the same results, reused across many flushes, more requests than threads")
    func persistentThreads() {
        let fd = Self.scratchFile()
        defer { close(fd) }
        let pool = FlushThreads(helpers: 2)
        for round in 0..<200 {
            let requests: [ConcurrentSync.Request] = round % 2 == 0
                ? [.init(fd), .init(-1), .init(fd, dataOnly: true), .init(987_654), .init(fd)]
                : [.init(-1), .init(fd)]
            let expected: [Int32] = round % 2 == 0 ? [0, EBADF, 0, EBADF, 0] : [EBADF, 0]
            let results = pool.flush(requests)
            #expect(results == expected, "round \(round)")
            if results != expected { break }
        }
        #expect(pool.flush([]) == [])
        #expect(pool.flush([.init(fd)]) == [0])
    }
}
