// Where a message's files live in one queue: the split rule and the layout settings
// every component of a queue must agree on (CONFSPLIT, BIGTODO).
import Core

/// The per-message directories of a queue.
public enum QueueArea: String, Sendable, CaseIterable {
    case mess, todo, intd, info, local, remote, bounce
}

public struct QueueLayout: Equatable, Sendable {
    /// The reference's compile-time conf-split: the most split directories a queue has.
    public static let compiledSplit = 151

    /// The queue directory itself.
    public var directory: String
    /// Number of split sub-directories (1...compiledSplit).
    public var split: Int
    /// When true, todo/ and intd/ are split like mess/ (the reference's "big todo").
    public var bigTodo: Bool

    public init(directory: String, split: Int = QueueLayout.compiledSplit, bigTodo: Bool = true) {
        self.directory = directory
        self.split = QueueLayout.clampSplit(split)
        self.bigTodo = bigTodo
    }

    /// CONFSPLIT and BIGTODO as the reference reads them: a leading decimal number
    /// (anything else counts as 0); unset means the compiled split and big todo on.
    public init(directory: String, environment env: Environment) {
        let split = env["CONFSPLIT"].map(QueueLayout.leadingNumber) ?? QueueLayout.compiledSplit
        let big = env["BIGTODO"].map(QueueLayout.leadingNumber) ?? 1
        self.init(directory: directory, split: split, bigTodo: big != 0)
    }

    /// Values above the compiled split are lowered to it; 0 or less means the compiled split
    /// (a zero divisor would crash the id → directory rule).
    public static func clampSplit(_ value: Int) -> Int {
        value <= 0 || value > compiledSplit ? compiledSplit : value
    }

    /// The reference's scan_int: optional sign, then digits; stops at the first other byte.
    public static func leadingNumber(_ text: String) -> Int {
        var bytes = Substring(text).utf8.drop { $0 == 32 || $0 == 9 }
        var negative = false
        if let first = bytes.first, first == UInt8(ascii: "-") || first == UInt8(ascii: "+") {
            negative = first == UInt8(ascii: "-")
            bytes = bytes.dropFirst()
        }
        var value = 0
        for b in bytes {
            guard b >= 48, b <= 57 else { break }
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(Int(b - 48))
            if o1 || o2 { return negative ? Int.min : Int.max }
            value = s
        }
        return negative ? -value : value
    }

    /// Whether files in `area` sit in split sub-directories.
    public func isSplit(_ area: QueueArea) -> Bool {
        switch area {
        case .mess, .info, .local, .remote: return true
        case .todo, .intd: return bigTodo
        case .bounce: return false
        }
    }

    /// The split sub-directory number of message `id`.
    public func splitNumber(of id: UInt64) -> Int { Int(id % UInt64(split)) }

    /// Path of message `id`'s file in `area`, relative to the queue directory.
    public func relativePath(_ area: QueueArea, _ id: UInt64) -> String {
        isSplit(area) ? "\(area.rawValue)/\(splitNumber(of: id))/\(id)" : "\(area.rawValue)/\(id)"
    }

    public func path(_ area: QueueArea, _ id: UInt64) -> String {
        Path.join(directory, relativePath(area, id))
    }

    public var pidDirectory: String { Path.join(directory, "pid") }
    public var triggerPath: String { Path.join(directory, "lock/trigger") }
}
