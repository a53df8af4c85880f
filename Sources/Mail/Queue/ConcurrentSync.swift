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
    /// success. Returns only when every flush has finished. Threads are started for this
    /// call and joined before it returns; when one cannot be started, its flush runs on the
    /// caller's thread.
    public static func flush(_ requests: [Request]) -> [Int32] {
        guard requests.count > 1 else { return requests.map { flushOne($0.fd, $0.dataOnly) } }
        return FlushThreads(helpers: requests.count - 1).flush(requests)
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
        guard requests.count > 1, !threads.isEmpty else {
            return requests.map { ConcurrentSync.flushOne($0.fd, $0.dataOnly) }
        }
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
