// multilog's script: the command-line actions parsed into values, checked before any input is read.

/// One argument of a multilog script.
public enum MultilogAction: Equatable, Sendable {
    /// `t`: stamp each line with a TAI64N label (only as the first action).
    case timestamp
    /// `+pattern`: select the line when the pattern matches.
    case select([UInt8])
    /// `-pattern`: deselect the line when the pattern matches.
    case deselect([UInt8])
    /// `e`: copy the selected line to stderr.
    case alert
    /// `=file`: keep the last selected line in `file`.
    case status([UInt8])
    /// `sNNN`: size limit of `current` for the directories that follow (nil: unlimited).
    case size(Int?)
    /// `nNNN`: how many old logs the directories that follow keep.
    case count(Int)
    /// `!processor`: shell command run on each finished log of the directories that follow.
    case processor([UInt8])
    /// `rNNN`: rotate every NNN seconds, aligned on multiples of NNN since the epoch.
    case rotateEvery(Int)
    /// `./dir` or `/dir`: an automatically rotated log directory.
    case directory([UInt8])
}

/// Why a script was refused; every case names the offending argument.
public enum MultilogScriptError: Error, Equatable, Sendable, CustomStringConvertible {
    case emptyAction(position: Int)
    case unknownAction(String)
    case misplacedTimestamp(position: Int)
    case badNumber(String)
    case emptyStatusFile
    case emptyProcessor
    /// `!rNNN`, as the reference's manual spells timed rotation; its code would run "rNNN".
    case processorLooksLikeRotation(String)

    public var description: String {
        switch self {
        case .emptyAction(let i): return "empty action (argument \(i))"
        case .unknownAction(let a): return "unknown action: \(a)"
        case .misplacedTimestamp(let i): return "t must be the first action (found as argument \(i))"
        case .badNumber(let a): return "bad number in action: \(a)"
        case .emptyStatusFile: return "= needs a file name"
        case .emptyProcessor: return "! needs a processor command"
        case .processorLooksLikeRotation(let a):
            return "processor \(a) looks like timed rotation: write r\(a.dropFirst(2)) without the !"
        }
    }
}

/// Settings of one log directory, fixed by the s/n/! actions that precede it.
public struct LogDirectoryConfig: Equatable, Sendable {
    public var path: [UInt8]
    /// nil: no size limit.
    public var maxSize: Int?
    public var keep: Int
    public var processor: [UInt8]?

    public init(path: [UInt8], maxSize: Int?, keep: Int, processor: [UInt8]?) {
        self.path = path
        self.maxSize = maxSize
        self.keep = keep
        self.processor = processor
    }
}

/// What each line goes through, in script order.
public enum LineAction: Equatable, Sendable {
    case select([UInt8])
    case deselect([UInt8])
    case alert
    /// Index into `MultilogScript.statusFiles`.
    case status(Int)
    /// Index into `MultilogScript.directories`: the directory takes the line when selected here.
    case directory(Int)
}

/// A parsed script.
public struct MultilogScript: Equatable, Sendable {
    public static let defaultKeep = 10
    public static let minimumKeep = 2
    public static let minimumSize = 4096
    public static let maximumSize = 16_777_215
    public static let maximumInterval = Int(Int32.max)

    public var actions: [MultilogAction]
    public var timestamp: Bool
    public var lineActions: [LineAction]
    public var directories: [LogDirectoryConfig]
    public var statusFiles: [[UInt8]]
    /// Seconds between timed rotations; the last `r` wins, as each resets one timer.
    public var rotationInterval: Int?

    /// Parses argv[1...]. Pure: opens nothing, starts nothing.
    public static func parse(_ arguments: [[UInt8]]) -> Result<MultilogScript, MultilogScriptError> {
        var actions: [MultilogAction] = []
        actions.reserveCapacity(arguments.count)
        for (i, argument) in arguments.enumerated() {
            switch parseAction(argument, position: i + 1) {
            case .success(let a): actions.append(a)
            case .failure(let e): return .failure(e)
            }
        }
        return .success(MultilogScript(actions: actions))
    }

    /// One argument; `position` is 1-based (only `t` cares: it must be first).
    public static func parseAction(_ argument: [UInt8], position: Int) -> Result<MultilogAction, MultilogScriptError> {
        guard let first = argument.first else { return .failure(.emptyAction(position: position)) }
        let rest = Array(argument.dropFirst())
        let text = String(decoding: argument, as: UTF8.self)
        switch first {
        case UInt8(ascii: "t"):
            guard rest.isEmpty else { return .failure(.unknownAction(text)) }
            return position == 1 ? .success(.timestamp) : .failure(.misplacedTimestamp(position: position))
        case UInt8(ascii: "+"): return .success(.select(rest))
        case UInt8(ascii: "-"): return .success(.deselect(rest))
        case UInt8(ascii: "e"):
            return rest.isEmpty ? .success(.alert) : .failure(.unknownAction(text))
        case UInt8(ascii: "="):
            return rest.isEmpty ? .failure(.emptyStatusFile) : .success(.status(rest))
        case UInt8(ascii: "!"):
            if rest.isEmpty { return .failure(.emptyProcessor) }
            if rest.count > 1, rest[0] == UInt8(ascii: "r"), rest.dropFirst().allSatisfy(isDigit) {
                return .failure(.processorLooksLikeRotation(text))
            }
            return .success(.processor(rest))
        case UInt8(ascii: "s"):
            guard let n = number(rest) else { return .failure(.badNumber(text)) }
            if n == 0 { return .success(.size(nil)) }
            return .success(.size(min(max(n, minimumSize), maximumSize)))
        case UInt8(ascii: "n"):
            guard let n = number(rest) else { return .failure(.badNumber(text)) }
            return .success(.count(max(n, minimumKeep)))
        case UInt8(ascii: "r"):
            guard let n = number(rest) else { return .failure(.badNumber(text)) }
            // setitimer takes no more than a time_t; past 68 years the difference is moot.
            return .success(.rotateEvery(min(max(n, 1), maximumInterval)))
        case UInt8(ascii: "."), UInt8(ascii: "/"):
            return .success(.directory(argument))
        default:
            return .failure(.unknownAction(text))
        }
    }

    /// Decimal digits only, at least one; saturates instead of wrapping (the reference wraps).
    static func number(_ digits: [UInt8]) -> Int? {
        guard !digits.isEmpty, digits.allSatisfy(isDigit) else { return nil }
        var value = 0
        for d in digits {
            let (times, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times.addingReportingOverflow(Int(d - UInt8(ascii: "0")))
            if o1 || o2 { return Int.max }
            value = sum
        }
        return value
    }

    static func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }

    /// Builds the per-line program and the directory settings from parsed actions.
    public init(actions: [MultilogAction]) {
        self.actions = actions
        timestamp = false
        lineActions = []
        directories = []
        statusFiles = []
        rotationInterval = nil
        var size: Int? = nil
        var keep = MultilogScript.defaultKeep
        var processor: [UInt8]? = nil
        for action in actions {
            switch action {
            case .timestamp: timestamp = true
            case .select(let p): lineActions.append(.select(p))
            case .deselect(let p): lineActions.append(.deselect(p))
            case .alert: lineActions.append(.alert)
            case .status(let file):
                lineActions.append(.status(statusFiles.count))
                statusFiles.append(file)
            case .size(let s): size = s
            case .count(let n): keep = n
            case .processor(let p): processor = p
            case .rotateEvery(let seconds): rotationInterval = seconds
            case .directory(let path):
                lineActions.append(.directory(directories.count))
                directories.append(LogDirectoryConfig(path: path, maxSize: size, keep: keep, processor: processor))
            }
        }
    }

    /// True when no action needs to look at the line (select, deselect, alert, status):
    /// every directory then takes every line (or none, while logging is paused).
    public var selectsEverything: Bool {
        lineActions.allSatisfy { if case .directory = $0 { return true } else { return false } }
    }
}
