// tai64n, tai64nlocal, tai64nunix: put TAI64N labels on lines and turn them back into dates.
import Core

public struct Tai64nCommand: Command {
    public static let name = "tai64n"
    public static let installDirectory = InstallDirectory.bin
    public static let summary = "prefix each line of input with a TAI64N time stamp"

    public static func run(_ context: CommandContext) -> Int32 {
        var atLineStart = true
        return StreamFilter.run { chunk, out in
            // Every line that starts in this chunk began arriving now: one clock read per read(2).
            let label = TAI64N.now().label + [32]
            var start = 0
            while start < chunk.count {
                if atLineStart, case .failure(let e) = out.write(label) { return .failure(e) }
                let rest = UnsafeRawBufferPointer(rebasing: chunk[start...])
                let end = rest.firstIndex(of: 10).map { start + $0 + 1 } ?? chunk.count
                if case .failure(let e) = out.write(UnsafeRawBufferPointer(rebasing: chunk[start..<end])) {
                    return .failure(e)
                }
                atLineStart = chunk[end - 1] == 10
                start = end
            }
            return .success(())
        }
    }
}

/// Converts "@<label>" at the start of each line; the rest of the line passes unchanged.
struct LabelConverter {
    private enum State { case lineStart, label, copy }
    private var state = State.lineStart
    private var partial: [UInt8] = []
    let render: (TAI64N) -> String?

    init(render: @escaping (TAI64N) -> String?) { self.render = render }

    mutating func process(_ chunk: UnsafeRawBufferPointer, _ out: BufferedWriter) -> Result<Void, SystemError> {
        var i = 0
        while i < chunk.count {
            switch state {
            case .lineStart:
                if chunk[i] == UInt8(ascii: "@") {
                    state = .label
                    partial = [chunk[i]]
                    i += 1
                } else {
                    state = .copy
                }
            case .label:
                let c = chunk[i]
                if Hex.lowercaseValue(c) != nil {
                    partial.append(c)
                    i += 1
                    continue
                }
                // A moment the C library cannot convert leaves the label as it was.
                let converted = TAI64N.parseLabel(partial).flatMap { render($0.0) }
                let text = converted.map { Array($0.utf8) } ?? partial
                if case .failure(let e) = out.write(text) { return .failure(e) }
                partial = []
                state = .copy
            case .copy:
                let rest = UnsafeRawBufferPointer(rebasing: chunk[i...])
                let end = rest.firstIndex(of: 10).map { i + $0 + 1 } ?? chunk.count
                if case .failure(let e) = out.write(UnsafeRawBufferPointer(rebasing: chunk[i..<end])) {
                    return .failure(e)
                }
                if chunk[end - 1] == 10 { state = .lineStart }
                i = end
            }
            // Digits past 24 only shift older ones out; keep the label bounded.
            if partial.count > 64 { partial.removeSubrange(1..<(partial.count - 32)) }
        }
        return .success(())
    }
}

public struct Tai64nlocalCommand: Command {
    public static let name = "tai64nlocal"
    public static let installDirectory = InstallDirectory.bin
    public static let summary = "convert TAI64N labels at the start of lines to local time"

    public static func run(_ context: CommandContext) -> Int32 {
        var converter = LabelConverter { $0.localTimeString }
        return StreamFilter.run { converter.process($0, $1) }
    }
}

public struct Tai64nunixCommand: Command {
    public static let name = "tai64nunix"
    public static let installDirectory = InstallDirectory.bin
    public static let summary = "convert TAI64N labels at the start of lines to UNIX seconds"

    public static func run(_ context: CommandContext) -> Int32 {
        var converter = LabelConverter { $0.unixTimeString }
        return StreamFilter.run { converter.process($0, $1) }
    }
}
