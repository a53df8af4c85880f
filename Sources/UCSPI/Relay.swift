// The two-way copy loop behind recordio, fixcrio, mconnect-io and mconnect: one poll over
// every live descriptor, at most one chunk in flight per direction, no busy waiting.
import Core
import Glibc

/// One direction of a relay: read a chunk from `source`, let `transform` turn it into the
/// bytes to send (it may also log them), write those to `sink`, then read again.
final class RelayDirection {
    /// What the end of one side of a direction means for the relay.
    enum Ending {
        /// Close the sink, so the reader on the far side sees end of file; keep relaying
        /// the other direction.
        case closeSink
        /// Stop this direction but leave the sink open (it may be shared with the other
        /// direction, or the reference kept it open).
        case keepSink
        /// The whole relay is over.
        case finishRelay
    }

    private enum State { case reading, writing, done }

    let source: Int32
    let sink: Int32
    private let atSourceEnd: Ending
    private let atSinkFailure: Ending
    private let transform: (UnsafeRawBufferPointer, inout [UInt8]) -> Void
    private let sourceEnded: () -> Void
    private var chunk: [UInt8]
    private var pending: [UInt8] = []
    private var position = 0
    private var state = State.reading

    /// - Parameters:
    ///   - chunkSize: the most read at once (recordio's log lines follow these chunks).
    ///   - atSourceEnd: end of file (or a read error) on `source`.
    ///   - atSinkFailure: a write error on `sink` (the reader went away).
    ///   - sourceEnded: called once when `source` reaches its end, before `atSourceEnd`.
    init(from source: Int32, to sink: Int32, chunkSize: Int,
         atSourceEnd: Ending, atSinkFailure: Ending,
         transform: @escaping (UnsafeRawBufferPointer, inout [UInt8]) -> Void = { $1.append(contentsOf: $0) },
         sourceEnded: @escaping () -> Void = {}) {
        self.source = source
        self.sink = sink
        self.chunk = [UInt8](repeating: 0, count: max(1, chunkSize))
        self.atSourceEnd = atSourceEnd
        self.atSinkFailure = atSinkFailure
        self.transform = transform
        self.sourceEnded = sourceEnded
    }

    /// The descriptor and event this direction waits for, or nil when it is finished.
    fileprivate var interest: pollfd? {
        switch state {
        case .reading: return pollfd(fd: source, events: Int16(POLLIN), revents: 0)
        case .writing: return pollfd(fd: sink, events: Int16(POLLOUT), revents: 0)
        case .done: return nil
        }
    }

    /// Does the one read or write its descriptor is ready for; false ends the relay.
    fileprivate func step() -> Bool {
        switch state {
        case .done:
            return true
        case .reading:
            let result = chunk.withUnsafeMutableBytes { FD.read(source, $0) }
            switch result {
            case .failure(let e) where e.errno == EAGAIN || e.errno == EWOULDBLOCK:
                return true  // someone else's non-blocking flag: wait for the next poll
            case .success(let n) where n > 0:
                pending.removeAll(keepingCapacity: true)
                position = 0
                chunk.withUnsafeBytes { transform(UnsafeRawBufferPointer(rebasing: $0[0..<n]), &pending) }
                if !pending.isEmpty { state = .writing }
                return true
            default:
                // End of file, or a read error, which the reference treats the same way.
                sourceEnded()
                return finish(atSourceEnd)
            }
        case .writing:
            let result = pending.withUnsafeBytes { FD.write(sink, UnsafeRawBufferPointer(rebasing: $0[position...])) }
            switch result {
            case .success(let n):
                position += n
                if position >= pending.count { state = .reading }
                return true
            case .failure(let e) where e.errno == EAGAIN || e.errno == EWOULDBLOCK:
                return true
            case .failure:
                return finish(atSinkFailure)
            }
        }
    }

    private func finish(_ ending: Ending) -> Bool {
        state = .done
        pending.removeAll()
        switch ending {
        case .closeSink: FD.close(sink); return true
        case .keepSink: return true
        case .finishRelay: return false
        }
    }
}

enum Relay {
    /// Copies in every direction until one whose ending is `.finishRelay` ends, or until
    /// every direction is done. SIGPIPE must be ignored by the caller: a vanished reader
    /// is a write error here, not a death.
    static func run(_ directions: [RelayDirection]) {
        var fds: [pollfd] = []
        var owners: [RelayDirection] = []
        while true {
            fds.removeAll(keepingCapacity: true)
            owners.removeAll(keepingCapacity: true)
            for direction in directions {
                if let interest = direction.interest {
                    fds.append(interest)
                    owners.append(direction)
                }
            }
            if fds.isEmpty { return }
            if poll(&fds, nfds_t(fds.count), -1) < 0 {
                if errno == EINTR { continue }
                return
            }
            // Each ready descriptor gets one read or one write, as the reference's loop.
            for (index, ready) in fds.enumerated() where ready.revents != 0 {
                if !owners[index].step() { return }
            }
        }
    }
}

/// Inserts a carriage return before line feeds, remembering the last byte across chunks.
struct CRInsertion {
    enum Mode {
        /// Before every LF, even one already preceded by CR (mconnect-io, addcr).
        case everyLF
        /// Only before an LF that does not already follow a CR (fixcrio).
        case bareLF
    }

    let mode: Mode
    private var lastWasCR = false

    init(_ mode: Mode) { self.mode = mode }

    mutating func apply(_ chunk: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        out.reserveCapacity(out.count + chunk.count * 2)
        for byte in chunk {
            if byte == 10 && (mode == .everyLF || !lastWasCR) { out.append(13) }
            out.append(byte)
            lastWasCR = byte == 13
        }
    }

    /// Convenience for tests and small inputs.
    mutating func apply(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        bytes.withUnsafeBytes { apply($0, into: &out) }
        return out
    }
}
