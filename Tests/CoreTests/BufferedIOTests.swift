// BufferedReader and BufferedWriter over real pipes and files.
import Core
import Foundation
import Glibc
import Testing

/// A pipe whose ends the test closes explicitly (close is idempotent here).
final class TestPipe {
    let read: Int32
    let write: Int32
    private var readOpen = true, writeOpen = true

    init() throws {
        let fds = try FD.pipe().get()
        read = fds.read
        write = fds.write
    }

    /// Writes `data` (must fit the pipe buffer) and optionally closes the write end.
    func feed(_ data: [UInt8], close: Bool = true) throws {
        try FD.writeAll(write, data).get()
        if close { closeWrite() }
    }

    func closeWrite() { if writeOpen { Glibc.close(write); writeOpen = false } }
    func closeRead() { if readOpen { Glibc.close(read); readOpen = false } }

    /// Whatever is in the pipe right now, without blocking.
    func drain() -> [UInt8] {
        FD.setNonBlocking(read)
        defer { FD.setNonBlocking(read, false) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(read, $0.baseAddress, $0.count) }
            if n <= 0 { return out }
            out += chunk[0..<n]
        }
    }

    deinit { closeRead(); closeWrite() }
}

@Suite("BufferedReader")
struct BufferedReaderTests {
    func readAllLines(_ reader: BufferedReader, limit: Int = .max) throws -> (lines: [[UInt8]], tail: [UInt8]) {
        var lines: [[UInt8]] = []
        while true {
            var line: [UInt8] = []
            if try !reader.readLine(into: &line, limit: limit).get() { return (lines, line) }
            lines.append(line)
        }
    }

    @Test("readLine across buffer boundaries with a tiny buffer", arguments: [16, 17, 64, 8192])
    func linesAcrossBoundaries(capacity: Int) throws {
        let pipe = try TestPipe()
        var expected: [[UInt8]] = []
        for i in 0..<300 {
            expected.append(bytes(String(repeating: "x", count: (i * 7) % 53) + "#\(i)\n"))
            if i % 17 == 0 { expected.append([10]) }  // empty lines too
        }
        try pipe.feed(expected.flatMap { $0 } + bytes("partial tail"))
        let reader = BufferedReader(fd: pipe.read, capacity: capacity)
        let (lines, tail) = try readAllLines(reader)
        #expect(lines == expected)
        #expect(tail == bytes("partial tail"))
        // Reading again at end of file gives nothing more.
        var again: [UInt8] = []
        #expect(try reader.readLine(into: &again).get() == false)
        #expect(again.isEmpty)
        #expect(try reader.readByte().get() == nil)
    }

    @Test("readLine appends to what the line already holds, with any delimiter")
    func appendAndDelimiter() throws {
        let pipe = try TestPipe()
        try pipe.feed([1, 2, 0, 3, 0, 4])
        let reader = BufferedReader(fd: pipe.read, capacity: 16)
        var line: [UInt8] = [9]
        #expect(try reader.readLine(into: &line, delimiter: 0).get())
        #expect(line == [9, 1, 2, 0])
        line = []
        #expect(try reader.readLine(into: &line, delimiter: 0).get())
        #expect(line == [3, 0])
        line = []
        #expect(try reader.readLine(into: &line, delimiter: 0).get() == false)
        #expect(line == [4])
    }

    @Test("limit stops a long line early and the rest follows")
    func lineLimit() throws {
        let pipe = try TestPipe()
        let long = bytes(String(repeating: "abcdefghij", count: 10) + "\n")  // 101 bytes
        try pipe.feed(long + bytes("ok\n") + bytes("0123\n"))
        let reader = BufferedReader(fd: pipe.read, capacity: 16)
        var pieces: [[UInt8]] = []
        while true {
            var line: [UInt8] = []
            #expect(try reader.readLine(into: &line, limit: 30).get())
            pieces.append(line)
            if line.last == 10 { break }
        }
        #expect(pieces.map(\.count) == [30, 30, 30, 11])
        #expect(pieces.flatMap { $0 } == long)

        // A line exactly at the limit without its newline stops there; the newline comes next.
        var exact: [UInt8] = []
        #expect(try reader.readLine(into: &exact, limit: 2).get())
        #expect(exact == bytes("ok"))
        exact = []
        #expect(try reader.readLine(into: &exact, limit: 2).get())
        #expect(exact == [10])

        // A line that already holds `limit` bytes (or more) returns at once, consuming nothing.
        var full = bytes("abc")
        #expect(try reader.readLine(into: &full, limit: 3).get())
        #expect(full == bytes("abc"))
        var over = bytes("abcdef")
        #expect(try reader.readLine(into: &over, limit: 3).get())
        #expect(over == bytes("abcdef"))
        var rest: [UInt8] = []
        #expect(try reader.readLine(into: &rest).get())
        #expect(rest == bytes("0123\n"))
    }

    @Test("readByte walks bytes and reports end of file")
    func readBytes() throws {
        let pipe = try TestPipe()
        let data = (0..<40).map { UInt8($0 * 5) }
        try pipe.feed(data)
        let reader = BufferedReader(fd: pipe.read, capacity: 16)
        var got: [UInt8] = []
        while let b = try reader.readByte().get() { got.append(b) }
        #expect(got == data)
        #expect(try reader.readByte().get() == nil)
    }

    @Test("read(into:) bypasses the buffer for large reads and drains it first otherwise")
    func readInto() throws {
        let pipe = try TestPipe()
        let data = (0..<200).map { UInt8(truncatingIfNeeded: $0 &* 3) }
        try pipe.feed(data)
        let reader = BufferedReader(fd: pipe.read, capacity: 16)
        var big = [UInt8](repeating: 0, count: 64)
        // Through a 16-byte buffer at most 16 bytes could come back; 64 means a direct read.
        let n = try big.withUnsafeMutableBytes { try reader.read(into: $0).get() }
        #expect(n == 64)
        #expect(Array(big[0..<n]) == Array(data[0..<64]))
        #expect(reader.isEmpty)

        var small = [UInt8](repeating: 0, count: 5)
        let m = try small.withUnsafeMutableBytes { try reader.read(into: $0).get() }
        #expect(m == 5)
        #expect(small == Array(data[64..<69]))
        #expect(reader.buffered.count == 11)  // the buffer took 16, we used 5

        // With bytes buffered, even a large read returns those first.
        let k = try big.withUnsafeMutableBytes { try reader.read(into: $0).get() }
        #expect(k == 11)
        #expect(Array(big[0..<k]) == Array(data[69..<80]))

        var rest: [UInt8] = []
        while true {
            let r = try big.withUnsafeMutableBytes { try reader.read(into: $0).get() }
            if r == 0 { break }
            rest += big[0..<r]
        }
        #expect(rest == Array(data[80...]))
    }

    @Test("fill, consume and a full buffer")
    func fillAndConsume() throws {
        let pipe = try TestPipe()
        let data = (0..<40).map { UInt8($0) }
        try pipe.feed(data)
        let reader = BufferedReader(fd: pipe.read, capacity: 16)
        #expect(try reader.fill().get() == 16)
        #expect(Array(reader.buffered) == Array(data[0..<16]))
        #expect(try reader.fill().get() == -1)  // full: nothing consumed yet
        reader.consume(4)
        #expect(try reader.fill().get() == 4)  // compacted, then topped up
        #expect(Array(reader.buffered) == Array(data[4..<20]))
        reader.consume(1000)  // over-consuming empties, no more
        #expect(reader.isEmpty)
        #expect(try reader.fill().get() == 16)
        #expect(Array(reader.buffered) == Array(data[20..<36]))
    }

    @Test("a non-blocking fd waits for data instead of failing with EAGAIN")
    func nonBlockingWaits() throws {
        let pipe = try TestPipe()
        FD.setNonBlocking(pipe.read)
        let writeEnd = pipe.write
        let writer = Thread {
            usleep(50_000)
            FD.writeAll(writeEnd, bytes("late line\n"))
        }
        writer.start()
        let reader = BufferedReader(fd: pipe.read, capacity: 16)
        var line: [UInt8] = []
        #expect(try reader.readLine(into: &line).get())
        #expect(line == bytes("late line\n"))
    }

    @Test("a read error is reported, not treated as end of file")
    func readError() throws {
        let pipe = try TestPipe()
        // Reading from the write end of a pipe fails with EBADF.
        let reader = BufferedReader(fd: pipe.write, capacity: 16)
        var line: [UInt8] = []
        #expect(failure(reader.readLine(into: &line))?.errno == EBADF)
        #expect(failure(reader.readByte())?.errno == EBADF)
    }
}

@Suite("BufferedWriter")
struct BufferedWriterTests {
    init() { signal(SIGPIPE, SIG_IGN) }

    @Test("small writes wait in the buffer until flush")
    func buffering() throws {
        let pipe = try TestPipe()
        let writer = BufferedWriter(fd: pipe.write, capacity: 16)
        try writer.write(bytes("hello")).get()
        try writer.write(byte: UInt8(ascii: " ")).get()
        try writer.write("wor").get()
        try writer.write(bytes("xxld!")[2...]).get()
        #expect(writer.pending == 12)
        #expect(pipe.drain().isEmpty)
        try writer.flush().get()
        #expect(writer.pending == 0)
        #expect(pipe.drain() == bytes("hello world!"))
        try writer.flush().get()  // nothing pending: a no-op
        #expect(pipe.drain().isEmpty)
    }

    @Test("a write that does not fit flushes first, and order is kept")
    func overflow() throws {
        let pipe = try TestPipe()
        let writer = BufferedWriter(fd: pipe.write, capacity: 16)
        try writer.write(bytes("0123456789")).get()
        try writer.write(bytes("abcdefghij")).get()
        #expect(writer.pending == 10)
        #expect(pipe.drain() == bytes("0123456789"))
        // A byte into a full buffer flushes it.
        try writer.write(bytes("klmnop")).get()
        #expect(writer.pending == 16)
        try writer.write(byte: UInt8(ascii: "q")).get()
        #expect(writer.pending == 1)
        try writer.flush().get()
        #expect(pipe.drain() == bytes("abcdefghijklmnopq"))
    }

    @Test("large writes bypass the buffer after flushing what was pending")
    func largeWrites() throws {
        let pipe = try TestPipe()
        let writer = BufferedWriter(fd: pipe.write, capacity: 16)
        try writer.write(bytes("head:")).get()
        let large = (0..<1000).map { UInt8(truncatingIfNeeded: $0) }
        try writer.write(large).get()
        #expect(writer.pending == 0)  // straight to the kernel, nothing copied
        #expect(pipe.drain() == bytes("head:") + large)
        // Exactly the capacity still fits the (empty) buffer; one byte more goes straight out.
        try writer.write([UInt8](repeating: 7, count: 16)).get()
        #expect(writer.pending == 16)
        #expect(pipe.drain().isEmpty)
        try writer.write([UInt8](repeating: 8, count: 17)).get()
        #expect(writer.pending == 0)
        #expect(pipe.drain() == [UInt8](repeating: 7, count: 16) + [UInt8](repeating: 8, count: 17))
    }

    @Test("writing into a pipe with no reader fails with EPIPE and keeps the bytes")
    func closedPipe() throws {
        let pipe = try TestPipe()
        pipe.closeRead()
        let writer = BufferedWriter(fd: pipe.write, capacity: 64)
        try writer.write(bytes("hello")).get()  // only buffered so far
        #expect(failure(writer.flush())?.errno == EPIPE)
        #expect(writer.pending == 5, "a failed flush dropped unwritten bytes")
        #expect(failure(writer.flush())?.errno == EPIPE)
        #expect(writer.pending == 5)
        // A large write reports the failure of its flush or of the direct write.
        #expect(failure(writer.write([UInt8](repeating: 1, count: 100)))?.errno == EPIPE)
        let fresh = BufferedWriter(fd: pipe.write, capacity: 16)
        #expect(failure(fresh.write([UInt8](repeating: 1, count: 100)))?.errno == EPIPE)
    }

    @Test("a partly written flush keeps exactly the unwritten tail and retries it later")
    func partialFlush() throws {
        let dir = try TempDir(); defer { dir.remove() }
        let path = dir.file("out")
        let data = (0..<100).map { UInt8($0) }

        // The same calls in the parent first, so the child needs no new runtime metadata.
        let warm = BufferedWriter(fd: open("/dev/null", O_WRONLY), capacity: 256)
        _ = warm.write(data); _ = warm.flush(); close(warm.fd)

        // A file-size limit gives a short write (60 bytes) and then EFBIG. Limits are
        // per process, so this runs in a child and cannot disturb other tests.
        let status = inForkedChild {
            signal(SIGXFSZ, SIG_IGN)
            var limit = rlimit()
            getrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &limit)
            let saved = limit
            limit.rlim_cur = 60
            guard setrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &limit) == 0 else { return 10 }
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            guard fd >= 0 else { return 11 }
            let writer = BufferedWriter(fd: fd, capacity: 256)
            guard case .success = writer.write(data) else { return 12 }
            guard case .failure(let e) = writer.flush(), e.errno == EFBIG else { return 13 }
            guard writer.pending == 40 else { return 14 }
            var raised = saved
            guard setrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &raised) == 0 else { return 15 }
            guard case .success = writer.flush(), writer.pending == 0 else { return 16 }
            close(fd)
            return 0
        }
        #expect(status == .exited(0), "child reported \(String(describing: status))")
        #expect(try readFile(path) == data, "the retried flush did not write the unwritten tail in order")
    }
}
