// The client connection of qmail-smtpd: fd 0/1 in clear, or a TLS channel after
// STARTTLS/SMTPS. Replies are buffered and flushed only before the server would wait for
// input, so pipelined commands get their replies in one write (RFC 2920).
import Core
import Glibc

public enum SMTPReadResult: Equatable {
    case line([UInt8])
    /// A line longer than the limit: the rest of it was discarded.
    case tooLong
    case endOfFile
    case timeout
    /// The interrupt fd (SIGTERM's signalfd) became readable while waiting for the client.
    case terminated
    case failed(String)
}

public final class SMTPServerConnection {
    let input: Int32
    let output: Int32
    public var timeout: Double
    /// Polled with the input while waiting; readable means stop (SIGTERM's signalfd).
    public var interruptFD: Int32?
    public private(set) var channel: (any TLSChannel)?
    private var buffer: [UInt8]
    private var start = 0
    private var end = 0
    private var pendingOutput: [UInt8] = []

    public init(input: Int32 = 0, output: Int32 = 1, timeout: Double) {
        self.input = input
        self.output = output
        self.timeout = timeout
        // Not zeroed: only bytes read(2) stored are ever looked at, and untouched pages of
        // the buffer then cost a short connection nothing.
        buffer = [UInt8](unsafeUninitializedCapacity: 16384) { _, count in count = 16384 }
        // Writes wait with poll, so a client that stops reading cannot hold us past the
        // timeout (the reference's timeoutwrite on the client side).
        FD.setNonBlocking(output)
    }

    public var hasBufferedInput: Bool { start < end }

    /// Everything read but not yet used is thrown away (after "220 ready for tls": text
    /// the client pipelined in clear must not count as encrypted commands).
    public func discardBufferedInput() {
        start = 0
        end = 0
    }

    public func useTLS(_ channel: any TLSChannel) {
        channel.ioTimeout = timeout
        self.channel = channel
    }

    public func send(_ bytes: [UInt8]) {
        pendingOutput += bytes
    }

    /// Writes pending replies; false when the client is gone.
    @discardableResult
    public func flush() -> Bool {
        guard !pendingOutput.isEmpty else { return true }
        defer { pendingOutput.removeAll(keepingCapacity: true) }
        if let channel {
            return pendingOutput.withUnsafeBytes { channel.write($0) }.map { _ in true }.get(or: false)
        }
        var offset = 0
        let deadline = MonotonicClock.now() + timeout
        while offset < pendingOutput.count {
            let n = pendingOutput[offset...].withUnsafeBytes { Glibc.write(output, $0.baseAddress, $0.count) }
            if n > 0 { offset += n; continue }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && errno == EAGAIN, FD.waitUntil(output, events: Int16(POLLOUT), deadline: deadline) { continue }
            return false
        }
        return true
    }

    /// Reads more input into the buffer (flushing replies first). nil on success.
    private func fill() -> SMTPReadResult? {
        if start == end { start = 0; end = 0 }
        if end == buffer.count {
            if start > 0 {
                buffer.withUnsafeMutableBytes { raw in
                    guard let base = raw.baseAddress else { return }
                    memmove(base, base + start, end - start)
                }
                end -= start
                start = 0
            } else {
                return .failed("buffer full")
            }
        }
        guard flush() else { return .failed("write error") }
        if let channel {
            if channel.pending == 0, let stop = waitForInput(channel.fd) { return stop }
            let result = buffer.withUnsafeMutableBytes { raw in
                channel.read(into: UnsafeMutableRawBufferPointer(rebasing: raw[end...]))
            }
            switch result {
            case .success(0): return .endOfFile
            case .success(let n): end += n; return nil
            case .failure(let e): return e.description == "timed out" ? .timeout : .failed(e.description)
            }
        }
        let deadline = MonotonicClock.now() + timeout
        while true {
            if let stop = waitForInput(input, deadline: deadline) { return stop }
            let n = buffer.withUnsafeMutableBytes { raw in Glibc.read(input, raw.baseAddress! + end, raw.count - end) }
            if n > 0 { end += n; return nil }
            if n == 0 { return .endOfFile }
            if errno == EINTR || errno == EAGAIN { continue }
            return .failed(SystemError.describe(errno))
        }
    }

    /// Waits until `fd` is readable: nil, or why not (timeout, interrupt).
    private func waitForInput(_ fd: Int32, deadline: Double? = nil) -> SMTPReadResult? {
        let until = deadline ?? MonotonicClock.now() + timeout
        while true {
            var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0)]
            if let interruptFD { fds.append(pollfd(fd: interruptFD, events: Int16(POLLIN), revents: 0)) }
            let wait = MonotonicClock.pollTimeout(until: until)
            if wait == 0 { return .timeout }
            let ready = poll(&fds, nfds_t(fds.count), wait)
            if ready < 0 && errno == EINTR { continue }
            if ready < 0 { return .failed(SystemError.describe(errno)) }
            if fds.count > 1 && fds[1].revents != 0 { return .terminated }
            if fds[0].revents != 0 { return nil }
        }
    }

    /// One line without its LF (a CR before it is kept for the parser to drop). A line over
    /// `limit` bytes is reported as `.tooLong` as soon as the limit is passed.
    public func readLine(limit: Int) -> SMTPReadResult {
        var line: [UInt8] = []
        while true {
            if start < end {
                let found: Int? = buffer.withUnsafeBytes { raw in
                    guard let base = raw.baseAddress else { return nil }
                    guard let hit = memchr(base + start, 10, end - start) else { return nil }
                    return base.distance(to: UnsafeRawPointer(hit))
                }
                let stop = found ?? end
                if line.count + (stop - start) > limit {
                    start = found.map { $0 + 1 } ?? end
                    return .tooLong
                }
                line += buffer[start..<stop]
                if let found {
                    start = found + 1
                    return .line(line)
                }
                start = end
            }
            if let problem = fill() { return problem }
        }
    }

    /// Ends a clear-text connection so the client still reads our last reply: FIN first,
    /// then discard what it keeps sending (closing with unread input would send a reset
    /// that destroys the reply), for at most `seconds`.
    public func lingeringClose(seconds: Double = 2) {
        flush()
        guard channel == nil else { channel?.shutdown(); return }
        _ = Glibc.shutdown(output, Int32(SHUT_WR))
        let deadline = MonotonicClock.now() + seconds
        while FD.waitUntil(input, events: Int16(POLLIN), deadline: deadline) {
            let n = buffer.withUnsafeMutableBytes { raw in Glibc.read(input, raw.baseAddress, raw.count) }
            if n <= 0 && !(n < 0 && errno == EINTR) { break }
        }
    }

    /// Feeds input to the DATA receiver until the end of the message; message bytes go to
    /// `sink` in chunks.
    public func readMessage(_ receiver: inout SMTPDataReceiver, sink: ([UInt8]) -> Void) -> SMTPReadResult? {
        var chunk: [UInt8] = []
        chunk.reserveCapacity(buffer.count)
        while true {
            if start < end {
                chunk.removeAll(keepingCapacity: true)
                let outcome = buffer.withUnsafeBytes { raw in
                    receiver.feed(UnsafeRawBufferPointer(rebasing: raw[start..<end]), into: &chunk)
                }
                if !chunk.isEmpty { sink(chunk) }
                switch outcome {
                case .more: start = end
                case .end(let used): start += used; return nil
                case .bareLF(let used): start += used; return .failed("bare LF")
                }
            }
            if let problem = fill() { return problem }
        }
    }
}

extension Result {
    func get(or fallback: Success) -> Success {
        if case .success(let value) = self { return value }
        return fallback
    }
}
