// qmail-qread: lists the messages of the queue(s) with their senders and recipients, or
// counts them.
import Core
import Glibc

/// What one listing shows.
public struct QueueListing: Sendable {
    public var local = true
    public var remote = true
    public var todo = false
    public var count = false
    public var silent = false

    public struct Counts: Equatable, Sendable {
        public var local = 0, remote = 0, bounce = 0, todo = 0
        public init(local: Int = 0, remote: Int = 0, bounce: Int = 0, todo: Int = 0) {
            (self.local, self.remote, self.bounce, self.todo) = (local, remote, bounce, todo)
        }
        public static func + (a: Counts, b: Counts) -> Counts {
            Counts(local: a.local + b.local, remote: a.remote + b.remote, bounce: a.bounce + b.bounce, todo: a.todo + b.todo)
        }
    }

    public init() {}

    /// `26 Sep 1995 04:46:53 GMT  <split>/#<id>  <bytes>  <sender> [ bouncing]` with
    /// unprintable bytes shown as `_`.
    public static func statsLine(time: Int, split: String, id: UInt64, size: Int, sender: [UInt8], bouncing: Bool) -> [UInt8] {
        var line = Array("\(MessageDate.rfc822(time).dropLast(6)) GMT  \(split)/#\(id)  \(size)  <".utf8)
        line += sender.prefix { $0 != 0 }
        line += Array("> ".utf8)
        if bouncing { line += Array(" bouncing".utf8) }
        return line.map { $0 >= 32 && $0 <= 126 ? $0 : UInt8(ascii: "_") } + [10]
    }

    /// Message ids found under `area` (split sub-directories or flat), in numeric order.
    static func ids(_ layout: QueueLayout, _ area: QueueArea) -> [UInt64] {
        let root = Path.join(layout.directory, area.rawValue)
        var dirs: [String] = []
        if layout.isSplit(area) {
            for n in 0 ..< layout.split { dirs.append(Path.join(root, String(n))) }
        } else {
            dirs = [root]
        }
        var out: [UInt64] = []
        for dir in dirs {
            guard case .success(let names) = Path.entries(dir) else { continue }
            out += names.compactMap { UInt64($0) }.sorted()
        }
        return out
    }

    private static func warn(_ id: UInt64, _ e: Int32) {
        FD.writeAll(2, Array("qmail-qread: warn: trouble with #\(id): \(SystemError.describe(e))\n".utf8))
    }

    private static func records(_ bytes: [UInt8]) -> [ArraySlice<UInt8>] {
        bytes.split(separator: 0, omittingEmptySubsequences: true)
    }

    /// Lists one queue into `out`; returns its counts.
    public func list(_ layout: QueueLayout, into out: inout [UInt8]) -> Counts {
        var counts = Counts()
        for id in Self.ids(layout, .info) {
            let messPath = layout.path(.mess, id)
            guard let mess = Path.status(messPath) else { Self.warn(id, errno); continue }
            let bouncing = Path.exists(layout.path(.bounce, id))
            if bouncing { counts.bounce += 1 }
            let infoPath = layout.path(.info, id)
            guard case .success(let info) = FD.readFile(infoPath), let infoStat = Path.status(infoPath) else {
                Self.warn(id, errno); continue
            }
            let sender = Array(info.prefix { $0 != 0 }.dropFirst())
            var printed = false
            func header() {
                if !printed, !silent {
                    out += Self.statsLine(time: Int(infoStat.st_mtim.tv_sec), split: String(layout.splitNumber(of: id)),
                                          id: id, size: Int(mess.st_size), sender: sender, bouncing: bouncing)
                }
                printed = true
            }
            for (area, wanted, label) in [(QueueArea.local, local, "local"), (.remote, remote, "remote")] where wanted {
                switch FD.readFile(layout.path(area, id)) {
                case .failure(let e):
                    if e.errno != ENOENT { Self.warn(id, e.errno) }
                case .success(let bytes):
                    for record in Self.records(bytes) {
                        guard let kind = record.first, kind == UInt8(ascii: "D") || kind == UInt8(ascii: "T") else { continue }
                        header()
                        if area == .local { counts.local += 1 } else { counts.remote += 1 }
                        if !silent {
                            if kind == UInt8(ascii: "D") { out += Array("  done".utf8) }
                            out += Array("\t\(label)\t".utf8) + record.dropFirst() + [10]
                        }
                    }
                }
            }
        }
        guard todo || count else { return counts }
        for id in Self.ids(layout, .todo) {
            guard let mess = Path.status(layout.path(.mess, id)) else { Self.warn(id, errno); continue }
            let todoPath = layout.path(.todo, id)
            guard case .success(let bytes) = FD.readFile(todoPath), let st = Path.status(todoPath) else {
                Self.warn(id, errno); continue
            }
            let fields = Self.records(bytes)
            let sender = fields.first { $0.first == UInt8(ascii: "F") }.map { Array($0.dropFirst()) } ?? []
            var printed = false
            for record in fields where record.first == UInt8(ascii: "T") {
                if !printed, !silent, todo {
                    out += Self.statsLine(time: Int(st.st_mtim.tv_sec), split: String(layout.splitNumber(of: id)),
                                          id: id, size: Int(mess.st_size), sender: sender, bouncing: false)
                }
                printed = true
                counts.todo += 1
                if !silent, todo { out += Array("\ttodo\t".utf8) + record.dropFirst() + [10] }
            }
        }
        return counts
    }

    /// The count lines (`Messages in local  queue: n` …), each led by `prefix`.
    public func countLines(_ c: Counts, prefix: String = "") -> String {
        var s = ""
        if local { s += "\(prefix)Messages in local  queue: \(c.local)\n" }
        if remote { s += "\(prefix)Messages in remote queue: \(c.remote)\n" }
        s += "\(prefix)Messages in bounce queue: \(c.bounce)\n"
        if todo { s += "\(prefix)Messages in todo   queue: \(c.todo)\n" }
        return s
    }
}

public struct QmailQreadCommand: Command {
    public static let name = "qmail-qread"
    public static let installDirectory = InstallDirectory.bin
    public static let summary = "list the messages in the queue"

    static let usageText = """
        qmail-qread [-calrt]
        \t-a - Display local, remote and todo Queues
        \t-c - Display Counts
        \t-l - Display local  Queue
        \t-r - Display remote Queue
        \t-t - Display todo   Queue
        \t-s - silent (with -c: counts only)

        """

    public static func run(_ context: CommandContext) -> Int32 {
        let diag = Diagnostics(program: name)
        var listing = QueueListing()
        var l = false, r = false, t = false
        switch OptionParser("calrsti").parse(context.strings) {
        case .failure:
            FD.writeAll(1, Array(usageText.utf8))
            return 1
        case .success(let parsed):
            for item in parsed.items {
                switch item {
                case .flag("s"): listing.silent = true
                case .flag("c"): listing.count = true
                case .flag("a"): l = true; r = true; t = true
                case .flag("l"): l = true
                case .flag("r"): r = true
                case .flag("t"): t = true
                case .flag("i"): return diag.fatal(ExitCode.permanent, "dynamic queue not configured")
                default: break
                }
            }
        }
        if !l && !r && !t { l = true; r = true }
        (listing.local, listing.remote, listing.todo) = (l, r, t)

        var env = context.environment
        switch DefaultQueue.load(env, diagnostics: diag) {
        case .success(let e): env = e
        case .failure(let e): return diag.fatal(e)
        }
        let queues: [String]
        var banner = true
        if let single = env["QUEUEDIR"] {
            queues = [single]
            banner = false
        } else {
            switch collection(env) {
            case .success(let q): queues = q
            case .failure(let e): return diag.fatal(e)
            }
        }
        let stdout = BufferedWriter(fd: 1, capacity: 65536)
        var total = QueueListing.Counts()
        for queue in queues {
            if banner { _ = stdout.write("processing queue \(queue)\n") }
            var out: [UInt8] = []
            let counts = listing.list(QueueLayout(directory: queue, environment: env), into: &out)
            _ = stdout.write(out)
            if listing.count && banner { _ = stdout.write(listing.countLines(counts)) }
            if banner { _ = stdout.write("\n") }
            total = total + counts
        }
        if listing.count { _ = stdout.write(listing.countLines(total, prefix: "Total ")) }
        if case .failure(let e) = stdout.flush() { return diag.fatal(e) }
        return 0
    }

    /// queue<N> for N from QUEUE_START while the directory exists (at most QUEUE_COUNT),
    /// then the extra queues nqueue, slowq and qmta when present, under QUEUE_BASE (or the
    /// control file queue_base, or QMAILHOME/queue).
    public static func collection(_ env: Environment) -> Result<[String], SystemError> {
        let paths = SuitePaths(environment: env)
        var base = env["QUEUE_BASE"] ?? Path.join(paths.qmailHome, "queue")
        if env["QUEUE_BASE"] == nil {
            switch ControlFiles(paths: paths).value("queue_base") {
            case .failure(.unreadable(let e)): return .failure(e)
            case .failure: return .failure(SystemError("unable to read controls", "queue_base", errno: EINVAL))
            case .success(let v?) where !v.isEmpty: base = v
            case .success: break
            }
        }
        let count = env["QUEUE_COUNT"].map(QueueLayout.leadingNumber) ?? QueueSelection.defaultCount
        let start = env["QUEUE_START"].map(QueueLayout.leadingNumber) ?? QueueSelection.defaultStart
        var out: [String] = []
        var n = 0
        while n < count {
            let dir = base + "/queue" + String(start &+ n)
            if access(dir, F_OK) != 0 {
                if errno != ENOENT { return .failure(SystemError("unable to access", dir, errno: errno)) }
                break
            }
            out.append(dir)
            n += 1
        }
        for extra in ["nqueue", "slowq", "qmta"] where access(Path.join(base, extra), F_OK) == 0 {
            out.append(Path.join(base, extra))
        }
        return .success(out)
    }
}
