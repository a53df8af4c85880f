// ConcurrentSync: every flush is done and its result reported in the caller's order.
import Glibc
import Mail
import Testing

@Suite("ConcurrentSync")
struct ConcurrentSyncTests {
    @Test("results come back per descriptor, in order; a bad descriptor fails alone")
    func resultsInOrder() {
        var name = Array("/tmp/concurrent-sync-XXXXXX".utf8CString)
        let fd = name.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        #expect(fd >= 0)
        defer { close(fd); name.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) } }
        _ = write(fd, "data", 4)
        let results = ConcurrentSync.flush([.init(fd), .init(-1), .init(fd, dataOnly: true), .init(987_654)])
        #expect(results == [0, EBADF, 0, EBADF])
        #expect(ConcurrentSync.flush([]) == [])
        #expect(ConcurrentSync.flush([.init(fd)]) == [0])
    }
}
