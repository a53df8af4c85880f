// mbox delivery: append under flock, quote `From ` lines, roll back a partial append.
import Core
import Glibc

/// True for lines that an mbox reader would take for a message separator once unquoted:
/// `From ` after any number of `>`.
public func mboxNeedsQuoting<C: Collection>(_ line: C) -> Bool where C.Element == UInt8 {
    let rest = line.drop { $0 == UInt8(ascii: ">") }
    return rest.starts(with: Array("From ".utf8))
}

public struct MboxDelivery {
    public var path: String
    /// UFLINE, RPLINE, DTLINE and the queue's extra headers.
    public var preamble: [UInt8]
    public var sync: Bool = true
    /// How long to wait for another writer's lock.
    public var lockTimeout: Double = 30

    public init(path: String, preamble: [UInt8]) {
        self.path = path
        self.preamble = preamble
    }

    public func deliver(_ message: MessageInput) -> Result<Void, DeliveryFailure> {
        guard message.rewind() else { return .failure(.readMessage(errno)) }
        let fd: Int32
        switch FD.openAppend(path) {
        case .success(let opened): fd = opened
        case .failure(let e): return .failure(.open("Unable to open \(path): \(e.reason). (#4.2.1)"))
        }
        defer { FD.close(fd) }
        FD.setNonBlocking(fd, false)
        // flock with a deadline: poll with LOCK_NB instead of an alarm.
        let deadline = MonotonicClock.now() + lockTimeout
        var locked = false
        while true {
            if flock(fd, LOCK_EX | LOCK_NB) == 0 { locked = true; break }
            let e = errno
            if e == EINTR { continue }
            if e != EWOULDBLOCK { break } // no locking on this file system: go on unlocked, as qmail
            if MonotonicClock.now() >= deadline { return .failure(.lockTimeout) }
            usleep(50_000)
        }
        let start = lseek(fd, 0, SEEK_END)
        func rollback(_ failure: DeliveryFailure) -> Result<Void, DeliveryFailure> {
            // Only with the lock held is the tail ours to cut.
            if locked && start >= 0 { _ = ftruncate(fd, start) }
            return .failure(failure)
        }
        func writeFailure(_ code: Int32) -> DeliveryFailure {
            code == EDQUOT ? .overQuota : .write("Unable to write \(path): \(SystemError.describe(code)). (#4.3.0)")
        }
        var out = MboxOutput(fd: fd)
        out.append(preamble)
        var pending: [UInt8] = []
        var lastByte: UInt8 = 10
        let read = message.forEachChunk { chunk in
            var lineStart = 0
            for i in 0..<chunk.count where chunk[i] == 10 {
                if pending.isEmpty {
                    if mboxNeedsQuoting(chunk[lineStart...i]) { out.append([UInt8(ascii: ">")]) }
                    out.append(chunk[lineStart...i])
                } else {
                    pending.append(contentsOf: chunk[lineStart...i])
                    if mboxNeedsQuoting(pending) { out.append([UInt8(ascii: ">")]) }
                    out.append(pending)
                    pending.removeAll(keepingCapacity: true)
                }
                lineStart = i + 1
            }
            if lineStart < chunk.count { pending.append(contentsOf: chunk[lineStart...]) }
            if let last = chunk.last { lastByte = last }
            return out.error == 0
        }
        if case .failure(let e) = read { return rollback(.readMessage(e.errno)) }
        if !pending.isEmpty {
            if mboxNeedsQuoting(pending) { out.append([UInt8(ascii: ">")]) }
            out.append(pending)
        }
        if lastByte != 10 { out.append([10]) }
        out.append([10])
        out.flush()
        if out.error != 0 { return rollback(writeFailure(out.error)) }
        if sync, case .failure(let e) = FD.sync(fd) { return rollback(writeFailure(e.errno)) }
        return .success(())
    }
}

/// A write buffer that remembers the first error and drops everything after it.
private struct MboxOutput {
    let fd: Int32
    var buffer: [UInt8] = []
    var error: Int32 = 0

    init(fd: Int32) {
        self.fd = fd
        buffer.reserveCapacity(65536)
    }

    mutating func append<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        guard error == 0 else { return }
        buffer.append(contentsOf: bytes)
        if buffer.count >= 65536 { flush() }
    }

    mutating func flush() {
        guard error == 0, !buffer.isEmpty else { return }
        if case .failure(let e) = FD.writeAll(fd, buffer) { error = e.errno }
        buffer.removeAll(keepingCapacity: true)
    }
}
