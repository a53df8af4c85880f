// qmail-tcpto prints the table of addresses that recently timed out; qmail-tcpok clears it.
// Both cover QUEUEDIR, or every queue of the static multi-queue collection.
import Core
import Glibc

enum TimeoutTableQueues {
    /// QUEUEDIR alone, else queue<START>…queue<START+COUNT-1> under QUEUE_BASE
    /// (control queue_base, QMAILHOME/queue).
    static func directories(_ env: Environment) -> Result<[String], ControlError> {
        if let dir = env.nonEmpty("QUEUEDIR") { return .success([dir]) }
        let paths = SuitePaths(environment: env)
        var base = env.nonEmpty("QUEUE_BASE") ?? ""
        if base.isEmpty {
            switch ControlFiles(paths: paths).value("queue_base") {
            case .failure(let e): return .failure(e)
            case .success(let v?) where !v.isEmpty: base = v
            case .success: base = Path.join(paths.qmailHome, "queue")
            }
        }
        let start = env["QUEUE_START"].map(QueueLayout.leadingNumber) ?? QueueSelection.defaultStart
        let count = max(1, env["QUEUE_COUNT"].map(QueueLayout.leadingNumber) ?? QueueSelection.defaultCount)
        return .success((start..<(start + count)).map { Path.join(base, "queue\($0)") })
    }
}

public struct QmailTcptoCommand: Command {
    public static let name = "qmail-tcpto"
    public static let installDirectory = InstallDirectory.sbin
    public static let summary = "list the remote addresses qmail-remote is avoiding after timeouts"

    public static func run(_ context: CommandContext) -> Int32 {
        let d = context.diagnostics
        guard case .success(let dirs) = TimeoutTableQueues.directories(context.environment) else {
            return d.fatal(111, "unable to read controls")
        }
        let now = Int64(time(nil))
        var text = ""
        var failed = false
        for dir in dirs {
            let file = TCPTimeoutFile(queueDirectory: dir)
            guard access(file.path, F_OK) == 0 || dirs.count == 1 else { continue }
            guard let table = file.read() else {
                d.warning("unable to read \(file.path): \(SystemError.describe(errno))")
                failed = true
                continue
            }
            for e in table.entries {
                text += "\(e.address) \(e.address.unmappedIsV4 ? "ipv4" : "ipv6") timed out \(max(0, now - Int64(e.lastFailure))) seconds ago; # recent timeouts: \(e.failures)\n"
            }
        }
        guard case .success = FD.writeAll(1, Array(text.utf8)) else { return 111 }
        return failed ? 111 : 0
    }
}

public struct QmailTcpokCommand: Command {
    public static let name = "qmail-tcpok"
    public static let installDirectory = InstallDirectory.sbin
    public static let summary = "forget every remote timeout recorded in lock/tcpto"

    public static func run(_ context: CommandContext) -> Int32 {
        let d = context.diagnostics
        guard case .success(let dirs) = TimeoutTableQueues.directories(context.environment) else {
            return d.fatal(111, "unable to read controls")
        }
        var failed = false
        for dir in dirs {
            let file = TCPTimeoutFile(queueDirectory: dir)
            guard access(file.path, F_OK) == 0 || dirs.count == 1 else { continue }
            if case .failure(let e) = file.clear() {
                d.warning("unable to clear \(file.path): \(e.reason)")
                failed = true
            }
        }
        return failed ? 111 : 0
    }
}
