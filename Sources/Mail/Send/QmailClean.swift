// qmail-clean: removes a message's queue files on request from qmail-send or todo-proc,
// one NUL-terminated path in, one status byte out, so the sender never needs write
// permission on mess/, intd/ or todo/.
import Core
import Glibc

/// What one qmail-clean request asks for.
public enum CleanRequest: Equatable, Sendable {
    /// `foop/<id>`: the message is finished; remove intd and mess.
    case finished(UInt64)
    /// `todo/[split/]<id>`: preprocessing is done; remove intd and todo.
    case preprocessed(UInt64)
    case malformed

    /// Parses a request without its NUL (so 6...99 bytes of text).
    public static func parse(_ text: [UInt8]) -> CleanRequest {
        let withNul = text.count + 1
        guard withNul >= 7, withNul <= 100, !text.contains(0) else { return .malformed }
        guard let slash = text.lastIndex(of: UInt8(ascii: "/")), slash >= 4 else { return .malformed }
        let digits = text[(slash + 1)...]
        guard !digits.isEmpty, digits.count <= 19, digits.allSatisfy({ $0 >= 48 && $0 <= 57 }),
              let id = UInt64(String(decoding: digits, as: UTF8.self)) else { return .malformed }
        if text.starts(with: Array("foop/".utf8)) { return .finished(id) }
        if text.starts(with: Array("todo/".utf8)) { return .preprocessed(id) }
        return .malformed
    }
}

public struct QmailCleanCommand: Command {
    public static let name = "qmail-clean"
    public static let installDirectory = InstallDirectory.sbin
    public static let summary = "remove queue files on behalf of qmail-send and todo-proc"

    /// A pid/ file of a qmail-queue that died this long ago (atime) is removed.
    static func ossified(_ env: Environment) -> Int {
        env["OSSIFIED"].map(QueueLayout.leadingNumber).flatMap { $0 > 0 ? $0 : nil } ?? 129600
    }

    public static func run(_ context: CommandContext) -> Int32 {
        let env = context.environment
        let queue = SuitePaths(environment: env).queueDirectory
        guard chdir(queue) == 0 else { return ExitCode.temporary }
        Signals.ignore(SIGPIPE)
        let layout = QueueLayout(directory: ".", environment: env)
        let input = BufferedReader(fd: 0)
        var line: [UInt8] = []
        var untilPidCleanup = 0
        let ossified = ossified(env)
        while true {
            if untilPidCleanup == 0 {
                removeStalePidFiles(olderThan: ossified)
                untilPidCleanup = 30
            } else {
                untilPidCleanup -= 1
            }
            line.removeAll(keepingCapacity: true)
            guard case .success(true) = input.readLine(into: &line, delimiter: 0, limit: 4096) else { break }
            if line.last != 0 {
                // Far too long: skip to its end and refuse it.
                var rest: [UInt8] = []
                repeat {
                    rest.removeAll(keepingCapacity: true)
                    guard case .success(true) = input.readLine(into: &rest, delimiter: 0, limit: 4096) else {
                        return ExitCode.success
                    }
                } while rest.last != 0
                guard case .success = FD.writeAll(1, [UInt8(ascii: "x")]) else { break }
                continue
            }
            line.removeLast()
            let reply: UInt8
            switch CleanRequest.parse(line) {
            case .malformed: reply = UInt8(ascii: "x")
            case .finished(let id): reply = remove([.intd, .mess], id, layout)
            case .preprocessed(let id): reply = remove([.intd, .todo], id, layout)
            }
            guard case .success = FD.writeAll(1, [reply]) else { break }
        }
        return ExitCode.success
    }

    static func remove(_ areas: [QueueArea], _ id: UInt64, _ layout: QueueLayout) -> UInt8 {
        for area in areas where unlink(layout.relativePath(area, id)) != 0 && errno != ENOENT {
            return UInt8(ascii: "!")
        }
        return UInt8(ascii: "+")
    }

    static func removeStalePidFiles(olderThan seconds: Int) {
        guard case .success(let names) = Path.entries("pid") else { return }
        let now = time(nil)
        for name in names {
            let path = "pid/" + name
            guard let st = Path.status(path, followLinks: false) else { continue }
            if Int(now) - Int(st.st_atim.tv_sec) > seconds { unlink(path) }
        }
    }
}
