// Flushing several descriptors to disk at the same time. Every flush still happens and is
// waited for; they are only issued together, one thread each, so a journaling file system
// can fold them into one commit where, one after another, each waits for its own.
import Glibc

public enum ConcurrentSync {
    /// One descriptor to flush: fdatasync when `dataOnly`, else fsync.
    public struct Request: Sendable {
        public var fd: Int32
        public var dataOnly: Bool
        public init(_ fd: Int32, dataOnly: Bool = false) { (self.fd, self.dataOnly) = (fd, dataOnly) }
    }

    /// Flushes every descriptor; returns the errno of each, in the order given, 0 for
    /// success. Returns only when every flush has finished. When a thread cannot be
    /// started, that flush runs on the caller's thread.
    public static func flush(_ requests: [Request]) -> [Int32] {
        guard requests.count > 1 else { return requests.map { flushOne($0.fd, $0.dataOnly) } }
        // Three Int32 per descriptor: fd, data-only flag, result. Each thread touches only
        // its own three; pthread_join orders its writes before our reads.
        let slots = UnsafeMutablePointer<Int32>.allocate(capacity: 3 * requests.count)
        defer { slots.deallocate() }
        var threads: [pthread_t] = []
        for (i, request) in requests.enumerated() {
            let slot = slots + 3 * i
            slot[0] = request.fd
            slot[1] = request.dataOnly ? 1 : 0
            slot[2] = 0
            guard i > 0 else { continue }
            var thread = pthread_t()
            let rc = pthread_create(&thread, nil, { raw in
                guard let slot = raw?.assumingMemoryBound(to: Int32.self) else { return nil }
                slot[2] = ConcurrentSync.flushOne(slot[0], slot[1] != 0)
                return nil
            }, UnsafeMutableRawPointer(slot))
            if rc == 0 {
                threads.append(thread)
            } else {
                slot[2] = flushOne(request.fd, request.dataOnly)
            }
        }
        slots[2] = flushOne(slots[0], slots[1] != 0)
        for thread in threads { pthread_join(thread, nil) }
        return (0..<requests.count).map { slots[3 * $0 + 2] }
    }

    static func flushOne(_ fd: Int32, _ dataOnly: Bool) -> Int32 {
        while true {
            if (dataOnly ? fdatasync(fd) : fsync(fd)) == 0 { return 0 }
            if errno != EINTR { return errno }
        }
    }
}
