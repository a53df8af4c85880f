// The loop shared by line filters (tai64n, addcr, delcr, …): read a chunk, let the filter
// write what it makes of it, flush before blocking on the next read, as djb's filters do.

public enum StreamFilter {
    /// Runs `process` on each chunk read from `input`; returns 0 at end of file, 111 on an
    /// I/O error (silently, as the reference filters). `finish` sees end of file.
    public static func run(input: Int32 = 0, output: Int32 = 1,
                           process: (UnsafeRawBufferPointer, BufferedWriter) -> Result<Void, SystemError>,
                           finish: (BufferedWriter) -> Result<Void, SystemError> = { _ in .success(()) }) -> Int32 {
        let reader = BufferedReader(fd: input, capacity: 65536)
        let writer = BufferedWriter(fd: output, capacity: 65536)
        while true {
            // Output goes out before we block, so a pipeline sees every complete line at once.
            guard case .success = writer.flush() else { return ExitCode.temporary }
            switch reader.fill() {
            case .failure: return ExitCode.temporary
            case .success(let n) where n <= 0:
                guard case .success = finish(writer), case .success = writer.flush() else { return ExitCode.temporary }
                return ExitCode.success
            case .success:
                let chunk = reader.buffered
                guard case .success = process(chunk, writer) else { return ExitCode.temporary }
                reader.consume(chunk.count)
            }
        }
    }
}
