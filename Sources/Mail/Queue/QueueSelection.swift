// Which queue an injector uses: QUEUEDIR, else queue<N> under QUEUE_BASE with N drawn at
// random from QUEUE_START ..< QUEUE_START+QUEUE_COUNT (the reference's static multi-queue).
import Core

public enum QueueSelection {
    /// The reference's compiled defaults (conf-queue).
    public static let defaultStart = 1
    public static let defaultCount = 10

    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        case unreadableBase(ControlError)
        public var description: String {
            switch self { case .unreadableBase(let e): return "unable to read queue_base: \(e)" }
        }
    }

    /// The queue number for `random`: START + random mod COUNT. A COUNT of 0 or less is
    /// taken as 1 (the reference divides by it).
    public static func queueNumber(environment env: Environment, random: UInt32) -> Int {
        let count = env["QUEUE_COUNT"].map(QueueLayout.leadingNumber) ?? defaultCount
        let start = env["QUEUE_START"].map(QueueLayout.leadingNumber) ?? defaultStart
        let modulus = UInt32(clamping: max(count, 1))
        return start &+ Int(random % modulus)
    }

    /// The queue directory to inject into. `random` is injectable for tests.
    public static func queueDirectory(environment env: Environment,
                                      random: UInt32 = UInt32.random(in: .min ... .max)) -> Result<String, Failure> {
        if let dir = env["QUEUEDIR"] { return .success(dir) }
        let number = queueNumber(environment: env, random: random)
        let base: String
        if let value = env["QUEUE_BASE"] {
            base = value
        } else {
            let paths = SuitePaths(environment: env)
            switch ControlFiles(paths: paths).value("queue_base") {
            case .failure(let e): return .failure(.unreadableBase(e))
            case .success(let value?) where !value.isEmpty: base = value
            case .success: base = Path.join(paths.qmailHome, "queue")
            }
        }
        return .success(base + "/queue" + String(number))
    }
}
