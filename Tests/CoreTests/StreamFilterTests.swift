// StreamFilter: the read/process/flush loop of the line filters, over real pipes.
import Core
import Glibc
import Testing

@Suite("StreamFilter")
struct StreamFilterTests {
    init() { signal(SIGPIPE, SIG_IGN) }

    @Test("every chunk is processed, finish runs at end of file, output is complete")
    func filtersToEnd() throws {
        let input = try TestPipe(), output = try TestPipe()
        let data = (0..<50_000).map { UInt8(ascii: "a") + UInt8($0 % 26) }
        try input.feed(data)
        var chunks = 0
        let code = StreamFilter.run(input: input.read, output: output.write, process: { chunk, writer in
            chunks += 1
            return writer.write(chunk.map { $0 - 32 })  // to upper case
        }, finish: { writer in writer.write("|END") })
        #expect(code == 0)
        #expect(chunks >= 1)
        output.closeWrite()
        #expect(try FD.readAll(output.read).get() == data.map { $0 - 32 } + bytes("|END"))
    }

    @Test("an empty input still runs finish")
    func emptyInput() throws {
        let input = try TestPipe(), output = try TestPipe()
        input.closeWrite()
        let code = StreamFilter.run(input: input.read, output: output.write, process: { _, _ in
            Issue.record("nothing to process")
            return .success(())
        }, finish: { writer in writer.write("done") })
        #expect(code == 0)
        output.closeWrite()
        #expect(try FD.readAll(output.read).get() == bytes("done"))
    }

    @Test("read errors, write errors and filter errors exit 111")
    func failures() throws {
        let input = try TestPipe(), output = try TestPipe()
        // Reading the write end of a pipe fails (EBADF).
        #expect(StreamFilter.run(input: input.write, output: output.write, process: { _, _ in .success(()) }) == 111)

        try input.feed(bytes("line\n"))
        output.closeRead()
        #expect(StreamFilter.run(input: input.read, output: output.write,
                                 process: { chunk, writer in writer.write(Array(chunk)) }) == 111)

        let again = try TestPipe(), sink = try TestPipe()
        try again.feed(bytes("x"))
        #expect(StreamFilter.run(input: again.read, output: sink.write,
                                 process: { _, _ in .failure(SystemError("unable to filter", errno: EIO)) }) == 111)
    }
}
