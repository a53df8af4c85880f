// Buffered reading and writing over raw fds: the hot I/O path of every daemon.
// One allocation per stream, no Foundation, EAGAIN turned into a poll wait.
import Glibc

/// Reads from an fd through a fixed buffer; lines and bytes without per-call allocation.
public final class BufferedReader {
    public let fd: Int32
    private let storage: UnsafeMutableRawBufferPointer
    private var start = 0
    private var end = 0

    public init(fd: Int32, capacity: Int = 8192) {
        self.fd = fd
        self.storage = .allocate(byteCount: max(capacity, 16), alignment: 1)
    }

    deinit { storage.deallocate() }

    /// Bytes read from the fd and not yet consumed.
    public var buffered: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: storage[start..<end])
    }

    public var isEmpty: Bool { start == end }

    /// Marks `count` buffered bytes as used.
    public func consume(_ count: Int) {
        start += min(count, end - start)
        if start == end { start = 0; end = 0 }
    }

    /// Reads more bytes from the fd; returns how many arrived (0 at end of file).
    /// Blocks (poll) when the fd is non-blocking and nothing is ready.
    public func fill() -> Result<Int, SystemError> {
        if start == end { start = 0; end = 0 }
        if end == storage.count {
            guard start > 0 else { return .success(-1) }  // full: caller must consume
            let count = end - start
            storage.baseAddress!.copyMemory(from: storage.baseAddress! + start, byteCount: count)
            start = 0; end = count
        }
        while true {
            switch FD.read(fd, UnsafeMutableRawBufferPointer(rebasing: storage[end...])) {
            case .success(let n):
                end += n
                return .success(n)
            case .failure(let e) where e.errno == EAGAIN:
                FD.waitUntil(fd, events: Int16(POLLIN))
            case .failure(let e):
                return .failure(e)
            }
        }
    }

    /// Next byte, or nil at end of file.
    public func readByte() -> Result<UInt8?, SystemError> {
        if start == end {
            switch fill() {
            case .failure(let e): return .failure(e)
            case .success(let n) where n <= 0: return .success(nil)
            case .success: break
            }
        }
        let byte = storage[start]
        consume(1)
        return .success(byte)
    }

    /// Appends bytes up to and including the next `delimiter` to `line`.
    /// Returns false at end of file (whatever partial line there was is in `line`).
    /// Stops early, returning true without the delimiter, once `line` holds `limit` bytes.
    public func readLine(into line: inout [UInt8], delimiter: UInt8 = 10, limit: Int = .max) -> Result<Bool, SystemError> {
        while true {
            if start == end {
                switch fill() {
                case .failure(let e): return .failure(e)
                case .success(let n) where n <= 0: return .success(false)
                case .success: break
                }
            }
            let window = UnsafeRawBufferPointer(rebasing: storage[start..<end])
            // A line already at (or past) the limit scans nothing rather than a negative range.
            let room = max(0, limit - line.count)
            let scan = min(window.count, room)
            if let i = window[0..<scan].firstIndex(of: delimiter) {
                line.append(contentsOf: window[0...i])
                consume(i + 1)
                return .success(true)
            }
            line.append(contentsOf: window[0..<scan])
            consume(scan)
            if line.count >= limit { return .success(true) }
        }
    }

    /// Copies up to `buffer.count` bytes out; 0 at end of file.
    public func read(into buffer: UnsafeMutableRawBufferPointer) -> Result<Int, SystemError> {
        if start == end {
            // Large reads skip the buffer, as djb's buffer_get does.
            if buffer.count >= storage.count { return FD.read(fd, buffer) }
            switch fill() {
            case .failure(let e): return .failure(e)
            case .success(let n) where n <= 0: return .success(0)
            case .success: break
            }
        }
        let n = min(buffer.count, end - start)
        buffer.baseAddress!.copyMemory(from: storage.baseAddress! + start, byteCount: n)
        consume(n)
        return .success(n)
    }
}

/// Writes to an fd through a fixed buffer; flushes when full or when asked.
public final class BufferedWriter {
    public let fd: Int32
    private let storage: UnsafeMutableRawBufferPointer
    private var count = 0

    public init(fd: Int32, capacity: Int = 8192) {
        self.fd = fd
        self.storage = .allocate(byteCount: max(capacity, 16), alignment: 1)
    }

    deinit { storage.deallocate() }

    public var pending: Int { count }

    public func write(_ bytes: UnsafeRawBufferPointer) -> Result<Void, SystemError> {
        if bytes.count > storage.count - count {
            if case .failure(let e) = flush() { return .failure(e) }
            // Too big for the buffer: hand it straight to the kernel.
            if bytes.count >= storage.count { return FD.writeAll(fd, bytes) }
        }
        guard let base = bytes.baseAddress, bytes.count > 0 else { return .success(()) }
        (storage.baseAddress! + count).copyMemory(from: base, byteCount: bytes.count)
        count += bytes.count
        return .success(())
    }

    @discardableResult
    public func write(_ bytes: [UInt8]) -> Result<Void, SystemError> {
        bytes.withUnsafeBytes { write($0) }
    }

    @discardableResult
    public func write(_ bytes: ArraySlice<UInt8>) -> Result<Void, SystemError> {
        bytes.withUnsafeBytes { write($0) }
    }

    @discardableResult
    public func write(_ text: String) -> Result<Void, SystemError> {
        var text = text
        return text.withUTF8 { write(UnsafeRawBufferPointer($0)) }
    }

    @discardableResult
    public func write(byte: UInt8) -> Result<Void, SystemError> {
        if count == storage.count, case .failure(let e) = flush() { return .failure(e) }
        storage[count] = byte
        count += 1
        return .success(())
    }

    @discardableResult
    public func flush() -> Result<Void, SystemError> {
        var done = 0
        defer {
            // Keep what the kernel refused so a later flush (after a full disk clears) retries it.
            if done > 0 && done < count {
                storage.baseAddress!.copyMemory(from: storage.baseAddress! + done, byteCount: count - done)
            }
            count -= done
        }
        while done < count {
            switch FD.write(fd, UnsafeRawBufferPointer(rebasing: storage[done..<count])) {
            case .success(let n): done += n
            case .failure(let e) where e.errno == EAGAIN: FD.waitUntil(fd, events: Int16(POLLOUT))
            case .failure(let e): return .failure(e)
            }
        }
        return .success(())
    }
}
