// readproctitle: keep the latest input visible in this process's own arguments, where
// ps(1) shows it (svscanboot pipes svscan's errors into it).
import Core
import Glibc

public struct ReadproctitleCommand: Command {
    public static let name = "readproctitle"
    public static let installDirectory = InstallDirectory.sbin
    public static let summary = "show the most recent input in the process title"

    static let usage = "readproctitle label ... dots"
    /// The title's left end always shows this many dots.
    static let fixedDots = 3
    static let minimumLength = 5

    /// The rolling text held in the last argument.
    struct Title: Equatable {
        private(set) var bytes: [UInt8]

        /// All dots, as long as the argument it replaces.
        init(length: Int) { bytes = [UInt8](repeating: UInt8(ascii: "."), count: length) }

        /// Shifts each non-NUL input byte in from the right; the first three dots stay.
        mutating func feed<Input: Collection>(_ input: Input) where Input.Element == UInt8 {
            let window = bytes.count - ReadproctitleCommand.fixedDots
            guard window > 0 else { return }
            let fresh = input.filter { $0 != 0 }
            if fresh.count >= window {
                bytes.replaceSubrange(ReadproctitleCommand.fixedDots..., with: fresh.suffix(window))
            } else if !fresh.isEmpty {
                bytes.removeSubrange(ReadproctitleCommand.fixedDots..<(ReadproctitleCommand.fixedDots + fresh.count))
                bytes.append(contentsOf: fresh)
            }
        }
    }

    /// The memory of this process's last argument, when it is the one `argument` came
    /// from; a call from inside the suite (not from exec) gets nil and a private title.
    static func argumentMemory(matching argument: [UInt8]) -> UnsafeMutablePointer<CChar>? {
        let argc = Int(CommandLine.argc)
        guard argc >= 2, let last = CommandLine.unsafeArgv[argc - 1], strlen(last) == argument.count else {
            return nil
        }
        for i in 0..<argument.count where UInt8(bitPattern: last[i]) != argument[i] { return nil }
        return last
    }

    public static func run(_ context: CommandContext) -> Int32 {
        let diag = context.diagnostics
        guard let dots = context.arguments.last else { return diag.usage(usage) }
        guard dots.count >= minimumLength else {
            diag.warning("the last argument must be at least \(minimumLength) characters long")
            return diag.usage(usage)
        }
        let memory = argumentMemory(matching: dots)
        var title = Title(length: dots.count)
        func show() {
            guard let memory else { return }
            for (i, b) in title.bytes.enumerated() { memory[i] = CChar(bitPattern: b) }
        }
        show()

        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            switch chunk.withUnsafeMutableBytes({ FD.read(0, $0) }) {
            case .success(0): return ExitCode.success
            case .success(let n):
                title.feed(chunk[0..<n])
                show()
            case .failure(let e) where e.errno == EAGAIN:
                FD.waitUntil(0, events: Int16(POLLIN))
            case .failure:
                return ExitCode.temporary
            }
        }
    }
}
