// queue-fix: creates a queue directory tree, or repairs one: owners and modes as the
// reference sets them, message files renamed to their inode and split, stray files
// (with no message) removed. Safe to run again: a sound queue gives no output.
import Core
import Glibc

public struct QueueFixCommand: Command {
    public static let name = "queue-fix"
    public static let installDirectory = InstallDirectory.sbin
    public static let summary = "create or repair a queue directory"
    static let synopsis = "queue-fix [-mNrtv] [-s split] [-b 0|1] [-S size] queue_dir"

    public static func run(_ context: CommandContext) -> Int32 {
        let diag = context.diagnostics
        let env = context.environment
        var options = QueueFix.Options(layout: QueueLayout(directory: "", environment: env))
        let parsed: (items: [OptionParser.Item], operandIndex: Int)
        switch OptionParser("b:imNvtS:s:r").parse(context.strings) {
        case .failure(let e):
            diag.warning(e.description)
            return diag.usage(synopsis)
        case .success(let p): parsed = p
        }
        for item in parsed.items {
            switch item {
            case .value("b", let v): options.layout.bigTodo = QueueLayout.leadingNumber(v) != 0
            case .value("s", let v): options.layout.split = QueueLayout.clampSplit(QueueLayout.leadingNumber(v))
            case .value("S", let v):
                let n = QueueLayout.leadingNumber(v)
                guard n >= 0, n <= 1 << 24 else { return diag.usage(synopsis) }
                options.tcptoSize = n
            case .flag("i"):
                return diag.fatal(ExitCode.permanent, "interactive mode (-i) is not supported; use -N to see what would be fixed")
            case .flag("m"): options.qmta = true
            case .flag("N"): options.dryRun = true
            case .flag("v"): options.verbose = true
            case .flag("t"): options.trash = true
            case .flag("r"): options.rateLimit = true
            default: return diag.usage(synopsis)
            }
        }
        let operands = context.strings.dropFirst(parsed.operandIndex)
        guard operands.count == 1, let dir = operands.first, !dir.isEmpty else { return diag.usage(synopsis) }
        options.layout.directory = dir

        if geteuid() == 0 {
            switch QueueFix.Owners.lookUp(SuiteAccounts(environment: env), qmta: options.qmta) {
            case .success(let o): options.owners = o
            case .failure(let e): return diag.fatal(ExitCode.temporary, e.message)
            }
        }
        var fixer = QueueFix(options: options)
        let result = fixer.run()
        let out = BufferedWriter(fd: 1)
        for line in fixer.report { out.write(line + "\n") }
        if options.verbose { out.write("queue-fix finished with \(fixer.problems) errors...\n") }
        out.flush()
        if case .failure(let e) = result { return diag.fatal(ExitCode.temporary, e.message) }
        return options.dryRun ? Int32(min(fixer.problems, 99)) : ExitCode.success
    }
}

/// Why queue-fix stopped: something it must not or cannot repair by itself.
public struct QueueFixError: Error, Equatable, Sendable, ExpressibleByStringInterpolation {
    public let message: String
    public init(_ message: String) { self.message = message }
    public init(stringLiteral value: String) { message = value }
    public init(stringInterpolation: DefaultStringInterpolation) { message = String(stringInterpolation: stringInterpolation) }
}

public struct QueueFix {
    /// uids and the group for each part of the queue; nil when not root (modes only).
    public struct Owners: Equatable, Sendable {
        public var qmailq: uid_t, qmails: uid_t, qmailr: uid_t, group: gid_t
        public var names: SuiteAccounts

        public init(qmailq: uid_t, qmails: uid_t, qmailr: uid_t, group: gid_t, names: SuiteAccounts) {
            self.qmailq = qmailq; self.qmails = qmails; self.qmailr = qmailr; self.group = group; self.names = names
        }

        /// The accounts by name; a missing one is an error naming it and its variable.
        public static func lookUp(_ a: SuiteAccounts, qmta: Bool) -> Result<Owners, QueueFixError> {
            func uid(_ name: String, _ variable: String) -> Result<uid_t, QueueFixError> {
                switch Accounts.user(name) {
                case .success(let acct): return .success(acct.uid)
                case .failure(let e): return .failure(QueueFixError("\(e) (set \(variable) to use another account); create the suite's accounts first"))
                }
            }
            do throws(QueueFixError) {
                let q = try uid(a.qmailq, "QMAILQ_USER").get()
                let s = qmta ? q : try uid(a.qmails, "QMAILS_USER").get()
                let r = qmta ? q : try uid(a.qmailr, "QMAILR_USER").get()
                let g: gid_t
                switch Accounts.group(a.qmailGroup) {
                case .success(let gid): g = gid
                case .failure(let e): throw "\(e) (set QMAIL_GROUP to use another group); create the suite's accounts first"
                }
                return .success(Owners(qmailq: q, qmails: s, qmailr: r, group: g, names: a))
            } catch {
                return .failure(error)
            }
        }
    }

    public struct Options: Sendable {
        public var layout: QueueLayout
        public var owners: Owners?
        public var dryRun = false
        public var verbose = false
        public var qmta = false
        public var trash = false
        public var rateLimit = false
        /// Size of lock/tcpto (the reference's TCPTO_BUFSIZ).
        public var tcptoSize = 2048

        public init(layout: QueueLayout) { self.layout = layout }
    }

    public enum Role: Sendable { case qmailq, qmails, qmailr }
    public enum Kind: Equatable, Sendable { case directory, file, sizedFile(Int), fifo }

    /// One directory of per-message files: its owner and modes (reference check_dirs).
    public struct Area: Sendable {
        public let area: QueueArea
        public let role: Role
        public let directoryMode: mode_t
        public let fileMode: mode_t
    }

    /// The reference's table, in its order.
    public static let areas: [Area] = [
        Area(area: .info, role: .qmails, directoryMode: 0o700, fileMode: 0o600),
        Area(area: .mess, role: .qmailq, directoryMode: 0o750, fileMode: 0o644),
        Area(area: .remote, role: .qmails, directoryMode: 0o700, fileMode: 0o600),
        Area(area: .local, role: .qmails, directoryMode: 0o700, fileMode: 0o600),
        Area(area: .todo, role: .qmailq, directoryMode: 0o750, fileMode: 0o644),
        Area(area: .intd, role: .qmailq, directoryMode: 0o700, fileMode: 0o644),
        Area(area: .bounce, role: .qmails, directoryMode: 0o700, fileMode: 0o600),
    ]

    public let options: Options
    /// One line per change made (or, with -N, that would be made), and per warning.
    public private(set) var report: [String] = []
    /// Problems found, fixed or not (the reference's error count).
    public private(set) var problems = 0

    public init(options: Options) { self.options = options }

    var layout: QueueLayout { options.layout }
    func full(_ relative: String) -> String { relative.isEmpty ? layout.directory : Path.join(layout.directory, relative) }

    public mutating func run() -> Result<Void, QueueFixError> {
        do throws(QueueFixError) {
            try checkDirectories()
            try fixNames()
            try removeStrays()
            return .success(())
        } catch {
            return .failure(error)
        }
    }

    // MARK: layout

    mutating func checkDirectories() throws(QueueFixError) {
        try check("", .directory, .qmailq, 0o750)
        for a in QueueFix.areas {
            try check(a.area.rawValue, .directory, a.role, a.directoryMode)
            if layout.isSplit(a.area) {
                for n in 0..<layout.split {
                    let sub = "\(a.area.rawValue)/\(n)"
                    try check(sub, .directory, a.role, a.directoryMode)
                    try checkFiles(in: sub, a.role, a.fileMode)
                }
            } else {
                try checkFiles(in: a.area.rawValue, a.role, a.fileMode)
            }
        }
        if options.trash { try check("trash", .directory, .qmailq, 0o700) }
        try check("pid", .directory, .qmailq, 0o700)
        if let names = try? Path.entries(full("pid")).get(), names.contains(where: { !$0.hasPrefix(".") }) {
            report.append("queue-fix: warning: found files in \(full("pid")) that should not be there; not removing them")
        }
        try check("lock", .directory, .qmailq, 0o750)
        try check("lock/sendmutex", .sizedFile(0), .qmails, 0o600)
        try check("lock/tcpto", .sizedFile(options.tcptoSize), .qmailr, 0o644)
        try check("lock/trigger", .fifo, .qmails, 0o622)
        if options.rateLimit {
            try check("ratelimit", .directory, .qmails, 0o750)
            try checkFiles(in: "ratelimit", .qmails, 0o640)
        }
    }

    mutating func checkFiles(in relative: String, _ role: Role, _ mode: mode_t) throws(QueueFixError) {
        guard case .success(let names) = Path.entries(full(relative)) else {
            if options.dryRun { return }  // not created in test mode
            throw "unable to read directory \(full(relative)): \(SystemError.describe(errno))"
        }
        for name in names.sorted() where !name.hasPrefix(".") {
            try check(relative + "/" + name, .file, role, mode)
        }
    }

    func uid(_ role: Role) -> uid_t? {
        guard let o = options.owners else { return nil }
        switch role {
        case .qmailq: return o.qmailq
        case .qmails: return o.qmails
        case .qmailr: return o.qmailr
        }
    }

    func ownerName(_ role: Role) -> String {
        guard let o = options.owners else { return "" }
        switch role {
        case .qmailq: return o.names.qmailq
        case .qmails: return options.qmta ? o.names.qmailq : o.names.qmails
        case .qmailr: return options.qmta ? o.names.qmailq : o.names.qmailr
        }
    }

    static func octal(_ m: mode_t) -> String {
        let s = String(m & 0o7777, radix: 8)
        return String(repeating: "0", count: max(0, 4 - s.count)) + s
    }

    mutating func did(_ text: String) {
        report.append(options.dryRun ? "queue-fix: would have \(text)" : "queue-fix: \(text)")
    }

    /// The reference's check_item: create what is missing, refuse a wrong type, fix
    /// owner and mode.
    mutating func check(_ relative: String, _ kind: Kind, _ role: Role, _ mode: mode_t) throws(QueueFixError) {
        let path = full(relative)
        var st = stat()
        if lstat(path, &st) != 0 {
            guard errno == ENOENT else { problems += 1; throw "unable to stat \(path): \(SystemError.describe(errno))" }
            problems += 1
            try create(path, kind, role, mode)
            return
        }
        let type = st.st_mode & S_IFMT
        let wanted: mode_t
        let typeName: String
        switch kind {
        case .directory: wanted = S_IFDIR; typeName = "a directory"
        case .file, .sizedFile: wanted = S_IFREG; typeName = "a regular file"
        case .fifo: wanted = S_IFIFO; typeName = "a fifo"
        }
        guard type == wanted else {
            problems += 1
            throw "\(path) is not \(typeName) and cannot be fixed automatically; remove it and run queue-fix again"
        }
        if let u = uid(role), let g = options.owners?.group, st.st_uid != u || st.st_gid != g {
            problems += 1
            did("changed owner of \(path) from \(st.st_uid):\(st.st_gid) to \(ownerName(role)):\(options.owners?.names.qmailGroup ?? "") (\(u):\(g))")
            if !options.dryRun, lchown(path, u, g) != 0 {
                throw "unable to change owner of \(path): \(SystemError.describe(errno))"
            }
        }
        if st.st_mode & 0o7777 != mode {
            problems += 1
            did("changed mode of \(path) from \(QueueFix.octal(st.st_mode)) to \(QueueFix.octal(mode))")
            if !options.dryRun, chmod(path, mode) != 0 {
                throw "unable to change mode of \(path): \(SystemError.describe(errno))"
            }
        }
        if case .sizedFile(let size) = kind, Int(st.st_size) != size {
            problems += 1
            report.append("queue-fix: warning: \(path) is \(st.st_size) bytes, not \(size); not fixing it, please investigate")
        }
    }

    mutating func create(_ path: String, _ kind: Kind, _ role: Role, _ mode: mode_t) throws(QueueFixError) {
        switch kind {
        case .directory:
            did("created directory \(path) mode \(QueueFix.octal(mode))")
            if !options.dryRun, mkdir(path, mode) != 0 {
                throw "unable to create directory \(path): \(SystemError.describe(errno))"
            }
        case .fifo:
            did("created fifo \(path) mode \(QueueFix.octal(mode))")
            if !options.dryRun, mkfifo(path, mode) != 0 {
                throw "unable to create fifo \(path): \(SystemError.describe(errno))"
            }
        case .file, .sizedFile:
            let size: Int
            if case .sizedFile(let n) = kind { size = n } else { size = 0 }
            did("created file \(path) of \(size) bytes mode \(QueueFix.octal(mode))")
            if !options.dryRun {
                let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
                guard fd >= 0 else { throw "unable to create \(path): \(SystemError.describe(errno))" }
                defer { Glibc.close(fd) }
                if size > 0, case .failure(let e) = FD.writeAll(fd, [UInt8](repeating: 0, count: size)) {
                    throw "unable to write \(path): \(e.reason)"
                }
            }
        }
        guard !options.dryRun else { return }
        // mkdir and mkfifo honour the umask: set the mode exactly.
        guard chmod(path, mode) == 0 else { throw "unable to change mode of \(path): \(SystemError.describe(errno))" }
        if let u = uid(role), let g = options.owners?.group, lchown(path, u, g) != 0 {
            throw "unable to change owner of \(path): \(SystemError.describe(errno))"
        }
    }

    // MARK: names

    /// Message files whose name is not their inode, or that sit in the wrong split
    /// directory, are renamed with their companions; a clash gets a `.tmp` suffix that a
    /// second pass removes.
    mutating func fixNames() throws(QueueFixError) {
        guard !options.dryRun || Path.isDirectory(full("mess")) else { return }
        let parts = (try? Path.entries(full("mess")).get())?.filter { isNumber($0) && Path.isDirectory(full("mess/" + $0)) } ?? []
        for part in parts.sorted(by: { (Int($0) ?? 0) < (Int($1) ?? 0) }) {
            let names = (try? Path.entries(full("mess/" + part)).get()) ?? []
            for name in names.sorted() where !name.hasPrefix(".") {
                var st = stat()
                guard lstat(full("mess/\(part)/\(name)"), &st) == 0 else {
                    if errno == ENOENT { continue }
                    throw "unable to stat \(full("mess/\(part)/\(name)")): \(SystemError.describe(errno))"
                }
                let id = UInt64(st.st_ino)
                let rightPart = String(layout.splitNumber(of: id))
                guard name != String(id) || part != rightPart else { continue }
                problems += 1
                for area in [QueueArea.mess, .info, .local, .remote, .intd, .todo, .bounce] {
                    let from = layout.isSplit(area) ? "\(area.rawValue)/\(part)/\(name)" : "\(area.rawValue)/\(name)"
                    try rename(from, to: layout.relativePath(area, id))
                }
            }
        }
        for area in QueueArea.allCases {
            let dirs = layout.isSplit(area) ? (0..<layout.split).map { "\(area.rawValue)/\($0)" } : [area.rawValue]
            for dir in dirs {
                let names = (try? Path.entries(full(dir)).get()) ?? []
                for name in names.sorted() where name.count > 4 && name.hasSuffix(".tmp") && !name.hasPrefix(".") {
                    problems += 1
                    try rename("\(dir)/\(name)", to: "\(dir)/\(name.dropLast(4))")
                }
            }
        }
    }

    func isNumber(_ s: String) -> Bool { !s.isEmpty && s.utf8.allSatisfy { $0 >= 48 && $0 <= 57 } }

    mutating func rename(_ from: String, to target: String) throws(QueueFixError) {
        guard Path.exists(full(from)) else { return }
        var destination = target
        if Path.exists(full(destination)) {
            destination += ".tmp"
            if Path.exists(full(destination)) {
                throw ".tmp files exist in the queue (\(full(destination))): an earlier queue-fix stopped half-way; clean them by hand"
            }
        }
        did("renamed \(full(from)) to \(full(destination))")
        if !options.dryRun, Glibc.rename(full(from), full(destination)) != 0, errno != ENOENT {
            throw "unable to rename \(full(from)): \(SystemError.describe(errno))"
        }
    }

    // MARK: strays

    /// Files in info/, local/, remote/, todo/, intd/ and bounce/ whose message is gone.
    mutating func removeStrays() throws(QueueFixError) {
        var dirs: [String] = []
        for area in [QueueArea.info, .local, .remote, .todo, .intd, .bounce] {
            if layout.isSplit(area) {
                dirs += (0..<layout.split).map { "\(area.rawValue)/\($0)" }
            } else {
                dirs.append(area.rawValue)
            }
        }
        for dir in dirs {
            guard case .success(let names) = Path.entries(full(dir)) else { continue }
            for name in names.sorted() where !name.hasPrefix(".") {
                let id = UInt64(QueueLayout.leadingNumber(name).magnitude)
                let mess = "mess/\(layout.splitNumber(of: id))/\(name)"
                if Path.exists(full(mess)) { continue }
                guard errno == ENOENT else { throw "unable to check \(full(mess)): \(SystemError.describe(errno))" }
                problems += 1
                did("removed stray file \(full(dir + "/" + name)) (no message \(full(mess)))")
                if !options.dryRun, unlink(full(dir + "/" + name)) != 0, errno != ENOENT {
                    throw "unable to remove \(full(dir + "/" + name)): \(SystemError.describe(errno))"
                }
            }
        }
    }
}
