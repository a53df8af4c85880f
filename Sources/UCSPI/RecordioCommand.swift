// recordio: run a program and log everything that goes into and comes out of it on stderr.
import Core
import Glibc

public struct RecordioCommand: Command {
    public static let name = "recordio"
    public static let installDirectory = InstallDirectory.bin
    public static let summary = "run a program, logging its input and output on standard error"

    /// The reference reads at most this much at once; each read is logged as it arrives,
    /// so the chunk size shapes the log.
    static let chunkSize = 256

    public static func run(_ context: CommandContext) -> Int32 {
        // The program keeps this pid after exec: the log names it.
        let log = RecordLog(pid: getpid())
        return ProgramRelay.run(context) { toProgram, fromProgram in
            Relay.run([
                RelayDirection(from: 0, to: toProgram, chunkSize: chunkSize,
                               atSourceEnd: .closeSink, atSinkFailure: .closeSink,
                               transform: { chunk, out in
                                   log.write(log.lines(chunk, direction: .input))
                                   out.append(contentsOf: chunk)
                               },
                               sourceEnded: { log.write([log.endOfFile(.input)]) }),
                RelayDirection(from: fromProgram, to: 1, chunkSize: chunkSize,
                               atSourceEnd: .finishRelay, atSinkFailure: .finishRelay,
                               transform: { chunk, out in
                                   log.write(log.lines(chunk, direction: .output))
                                   out.append(contentsOf: chunk)
                               },
                               sourceEnded: { log.write([log.endOfFile(.output)]) }),
            ])
        }
    }
}

/// recordio's log format: `PID < text ` for a line that ended in LF, `PID < text+` for a
/// piece without one (the rest follows in a later chunk, or never), `PID < [EOF]`;
/// `>` instead of `<` for the program's output.
struct RecordLog: Sendable {
    enum Direction: UInt8, Sendable {
        case input = 60   // "<"
        case output = 62  // ">"
    }

    let prefix: [UInt8]  // the pid and a space

    init(pid: pid_t) { prefix = Array("\(pid) ".utf8) }

    /// One log line per LF-terminated line of `chunk`, plus one for a trailing partial line.
    func lines(_ chunk: UnsafeRawBufferPointer, direction: Direction) -> [[UInt8]] {
        var result: [[UInt8]] = []
        var start = 0
        while start < chunk.count {
            var line = prefix + [direction.rawValue, 32]
            if let lf = chunk[start...].firstIndex(of: 10) {
                line.append(contentsOf: chunk[start..<lf])
                line += [32, 10]
                start = lf + 1
            } else {
                line.append(contentsOf: chunk[start...])
                line += [43, 10]  // "+": the line goes on in the next chunk
                start = chunk.count
            }
            result.append(line)
        }
        return result
    }

    func lines(_ bytes: [UInt8], direction: Direction) -> [[UInt8]] {
        bytes.withUnsafeBytes { lines($0, direction: direction) }
    }

    func endOfFile(_ direction: Direction) -> [UInt8] {
        prefix + [direction.rawValue] + Array(" [EOF]\n".utf8)
    }

    /// Each line in a write of its own, so lines from concurrent writers never interleave
    /// mid-line. A failing stderr is not a reason to stop relaying.
    func write(_ lines: [[UInt8]]) {
        for line in lines { _ = FD.writeAll(2, line) }
    }
}
