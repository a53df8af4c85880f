// addcr and delcr: convert line ends between UNIX (LF) and network (CRLF) form.
import Core

public struct AddcrCommand: Command {
    public static let name = "addcr"
    public static let installDirectory = InstallDirectory.bin
    public static let summary = "insert a carriage return before every line feed"

    public static func run(_ context: CommandContext) -> Int32 {
        StreamFilter.run { chunk, out in
            var start = 0
            while let lf = chunk[start...].firstIndex(of: 10) {
                let piece = UnsafeRawBufferPointer(rebasing: chunk[start..<lf])
                if case .failure(let e) = out.write(piece) { return .failure(e) }
                if case .failure(let e) = out.write([13, 10]) { return .failure(e) }
                start = lf + 1
            }
            return out.write(UnsafeRawBufferPointer(rebasing: chunk[start...]))
        }
    }
}

public struct DelcrCommand: Command {
    public static let name = "delcr"
    public static let installDirectory = InstallDirectory.bin
    public static let summary = "remove the carriage return before each line feed"

    public static func run(_ context: CommandContext) -> Int32 {
        var pendingCR = false  // a CR at the end of the previous chunk, fate decided by the next byte
        return StreamFilter.run(process: { chunk, out in
            var start = 0
            if pendingCR {
                pendingCR = false
                if chunk.first != 10, case .failure(let e) = out.write(byte: 13) { return .failure(e) }
            }
            var i = 0
            while i < chunk.count {
                if chunk[i] == 13 {
                    if i + 1 == chunk.count {
                        if case .failure(let e) = out.write(UnsafeRawBufferPointer(rebasing: chunk[start..<i])) {
                            return .failure(e)
                        }
                        pendingCR = true
                        return .success(())
                    }
                    if chunk[i + 1] == 10 {
                        if case .failure(let e) = out.write(UnsafeRawBufferPointer(rebasing: chunk[start..<i])) {
                            return .failure(e)
                        }
                        start = i + 1
                    }
                }
                i += 1
            }
            return out.write(UnsafeRawBufferPointer(rebasing: chunk[start...]))
        }, finish: { out in
            pendingCR ? out.write(byte: 13) : .success(())
        })
    }
}
