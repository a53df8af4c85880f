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

/// Flush threads that outlive one flush: a long-lived process (a qmail-queued worker) pays
/// for creating them once instead of once per message. Same contract as
/// `ConcurrentSync.flush`: every flush is issued together and waited for.
public final class FlushThreads {
    /// One thread's mailbox: the request in, the result out, a semaphore each way.
    struct Slot {
        var fd: Int32 = -1
        var dataOnly: Int32 = 0
        var result: Int32 = 0
        var quit: Int32 = 0
        var start = sem_t()
        var done = sem_t()
    }

    private let slots: UnsafeMutablePointer<Slot>
    private var threads: [pthread_t] = []

    /// `helpers` threads beside the caller's; fewer start if the system refuses more.
    public init(helpers: Int) {
        slots = UnsafeMutablePointer<Slot>.allocate(capacity: max(helpers, 1))
        for i in 0..<max(helpers, 1) {
            (slots + i).initialize(to: Slot())
            sem_init(&slots[i].start, 0, 0)
            sem_init(&slots[i].done, 0, 0)
        }
        for i in 0..<helpers {
            var thread = pthread_t()
            let rc = pthread_create(&thread, nil, { raw in
                guard let slot = raw?.assumingMemoryBound(to: Slot.self) else { return nil }
                while true {
                    while sem_wait(&slot.pointee.start) != 0 {}
                    if slot.pointee.quit != 0 { return nil }
                    slot.pointee.result = ConcurrentSync.flushOne(slot.pointee.fd, slot.pointee.dataOnly != 0)
                    sem_post(&slot.pointee.done)
                }
            }, UnsafeMutableRawPointer(slots + i))
            guard rc == 0 else { break }
            threads.append(thread)
        }
    }

    deinit {
        for i in threads.indices {
            slots[i].quit = 1
            sem_post(&slots[i].start)
        }
        for thread in threads { pthread_join(thread, nil) }
        slots.deallocate()
    }

    /// Flushes every descriptor; the errno of each in order, 0 for success.
    public func flush(_ requests: [ConcurrentSync.Request]) -> [Int32] {
        guard requests.count > 1, !threads.isEmpty else { return ConcurrentSync.flush(requests) }
        var results = [Int32](repeating: 0, count: requests.count)
        // The first request stays on this thread; the next ones go to helpers while there
        // are any, the rest run here after the first.
        let handed = min(requests.count - 1, threads.count)
        for i in 0..<handed {
            slots[i].fd = requests[i + 1].fd
            slots[i].dataOnly = requests[i + 1].dataOnly ? 1 : 0
            sem_post(&slots[i].start)
        }
        results[0] = ConcurrentSync.flushOne(requests[0].fd, requests[0].dataOnly)
        for i in (handed + 1)..<requests.count {
            results[i] = ConcurrentSync.flushOne(requests[i].fd, requests[i].dataOnly)
        }
        for i in 0..<handed {
            while sem_wait(&slots[i].done) != 0 {}
            results[i + 1] = slots[i].result
        }
        return results
    }
}
