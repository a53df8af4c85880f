// qmail-local: carries out a user's .qmail instructions for one message on fd 0.
import Core
import Glibc

/// How qmail-local ends: the exit code qmail-lspawn maps to K/Z/D and the text it reports.
struct LocalExit: Error {
    let code: Int32
    let text: String
    static func temporary(_ text: String) -> LocalExit { LocalExit(code: ExitCode.temporary, text: text) }
    static func permanent(_ text: String) -> LocalExit { LocalExit(code: ExitCode.permanent, text: text) }
}

/// The header lines and environment derived from the arguments, before any delivery.
public struct LocalRecipient: Equatable, Sendable {
    public var user, home, local, dash, ext, host, sender, defaultDelivery, qqeh: [UInt8]

    public init(user: [UInt8], home: [UInt8], local: [UInt8], dash: [UInt8], ext: [UInt8], host: [UInt8],
                sender: [UInt8], defaultDelivery: [UInt8], qqeh: [UInt8]) {
        (self.user, self.home, self.local, self.dash, self.ext) = (user, home, local, dash, ext)
        (self.host, self.sender, self.defaultDelivery, self.qqeh) = (host, sender, defaultDelivery, qqeh)
    }

    public var recipient: [UInt8] { local + Array("@".utf8) + host }
    /// `Delivered-To: local@host` NL; newlines inside become `_` so it stays one line.
    public var dtline: [UInt8] {
        Array("Delivered-To: ".utf8) + recipient.map { $0 == 10 ? 95 : $0 } + [10]
    }
    public var rpline: [UInt8] {
        Array("Return-Path: <".utf8) + LocalRecipient.quoteAddress(sender).map { $0 == 10 ? 95 : $0 } + Array(">\n".utf8)
    }
    /// The mbox separator line. The reference leaves out the space after a non-empty sender
    /// (a slip: `From a@bThu …`); we always write it, as qmail did.
    public func ufline(time: time_t) -> [UInt8] {
        let who = sender.isEmpty ? Array("MAILER-DAEMON".utf8) : sender.map { $0 == 32 || $0 == 9 || $0 == 10 ? 45 : $0 }
        return Array("From ".utf8) + who + [32] + Array(LocalRecipient.asctime(time).utf8)
    }
    /// ext with letters lowered and `.` turned into `:`, as the .qmail file names are spelled.
    public var safeExt: [UInt8] {
        ext.map { c in c == 46 ? 58 : (c >= 65 && c <= 90 ? c + 32 : c) }
    }

    /// EXT, EXT2, EXT3, EXT4: ext with 0..3 leading `-` parts removed.
    public var extensions: [[UInt8]] {
        var out: [[UInt8]] = [ext]
        var rest = ext[...]
        for _ in 0..<3 {
            if let dash = rest.firstIndex(of: 45) { rest = rest[(dash + 1)...] } else { rest = rest[rest.endIndex...] }
            out.append(Array(rest))
        }
        return out
    }

    /// HOST2, HOST3, HOST4: the domain with 1, 2, 3 trailing labels removed.
    public var hosts: [[UInt8]] {
        var out: [[UInt8]] = []
        var end = host.count
        for _ in 0..<3 {
            end = host[..<end].lastIndex(of: 46) ?? 0
            out.append(Array(host[..<end]))
        }
        return out
    }

    /// An address with its local part in quotes when RFC 822 needs them.
    public static func quoteAddress(_ address: [UInt8]) -> [UInt8] {
        if address.isEmpty { return address }
        let at = address.lastIndex(of: 64)
        let localPart = Array(address[..<(at ?? address.endIndex)])
        let domain = at.map { Array(address[$0...]) } ?? []
        return (needsQuotes(localPart) ? quoted(localPart) : localPart) + domain
    }

    static func needsQuotes(_ s: [UInt8]) -> Bool {
        if s.isEmpty { return true }
        let special = Array("!#$%&'*+-./=?^_`{|}~".utf8)
        for c in s {
            let alnum = (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122)
            if !alnum && !special.contains(c) { return true }
        }
        if s.first == 46 || s.last == 46 { return true }
        for i in 0..<(s.count - 1) where s[i] == 46 && s[i + 1] == 46 { return true }
        return false
    }

    static func quoted(_ s: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [34]
        for c in s {
            if c == 13 || c == 10 || c == 34 || c == 92 { out.append(92) }
            out.append(c)
        }
        out.append(34)
        return out
    }

    /// `Thu Jan  1 00:00:00 1970` NL, in UTC.
    public static func asctime(_ t: time_t) -> String {
        var time = t
        var parts = tm()
        gmtime_r(&time, &parts)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        let day = parts.tm_mday < 10 ? " \(parts.tm_mday)" : "\(parts.tm_mday)"
        let wday = days[Int(max(0, min(6, parts.tm_wday)))]
        let mon = months[Int(max(0, min(11, parts.tm_mon)))]
        return "\(wday) \(mon) \(day) \(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) \(parts.tm_year + 1900)\n"
    }
}

public struct QmailLocalCommand: Command {
    public static let name = "qmail-local"
    public static let installDirectory = InstallDirectory.sbin
    public static let summary = "deliver or forward a mail message according to the user's .qmail file"
    static let usageText = "qmail-local: usage: qmail-local [ -nN ] user homedir local dash ext domain sender defaultdelivery qqeh"

    public static func run(_ context: CommandContext) -> Int32 {
        umask(0o077)
        Signals.ignore(SIGPIPE)
        var session = LocalSession(environment: context.environment)
        do {
            try session.start(context.strings, raw: context.arguments)
            try session.deliver()
            return ExitCode.success
        } catch {
            // A program's own words already went out on the inherited fds.
            if !error.text.isEmpty { FD.writeAll(2, Array((error.text + "\n").utf8)) }
            return error.code
        }
    }
}

/// The state of one qmail-local run.
struct LocalSession {
    var env: Environment
    var doIt = true
    var r = LocalRecipient(user: [], home: [], local: [], dash: [], ext: [], host: [], sender: [],
                           defaultDelivery: [], qqeh: [])
    var newSender: [UInt8] = []
    var message = MessageInput(fd: 0)
    var counts = (file: 0, forward: 0, program: 0)
    var forwardPID: pid_t = 0
    var sync = true
    var ufline: [UInt8] = []

    init(environment: Environment) {
        env = environment
        if let keep = env["SANITIZE_ENV"] { env = LocalSession.sanitized(env, keeping: keep) }
    }

    /// Only MESSID, the sync switches and the listed names survive.
    static func sanitized(_ env: Environment, keeping list: String) -> Environment {
        var out = Environment()
        var names = ["USE_FSYNC", "USE_FDATASYNC", "USE_SYNCDIR", "MESSID"]
        names += list.split(separator: ":", omittingEmptySubsequences: true).map(String.init)
        for name in names where !out.contains(name) {
            if let v = env.bytes(name) { out.set(name, v) }
        }
        return out
    }

    mutating func start(_ args: [String], raw: [[UInt8]]) throws(LocalExit) {
        let operands: Int
        switch OptionParser("nN").parse(args) {
        case .failure: throw .permanent(QmailLocalCommand.usageText)
        case .success(let parsed):
            for case .flag(let f) in parsed.items { doIt = f == "N" }
            operands = parsed.operandIndex
        }
        let a = Array(raw[operands...])
        // qqeh came with indimail; classic qmail-lspawn passes eight operands.
        guard a.count == 9 || a.count == 8, a[1].first == UInt8(ascii: "/") else {
            throw .permanent(QmailLocalCommand.usageText)
        }
        r = LocalRecipient(user: a[0], home: a[1], local: a[2], dash: a[3], ext: a[4], host: a[5], sender: a[6],
                           defaultDelivery: a[7], qqeh: a.count == 9 ? a[8] : [])
        if let v = env.nonEmpty("USE_FSYNC"), v == "0" { sync = false }
        try checkHome()
        env.set("HOST", r.host)
        env.set("HOME", r.home)
        env.set("USER", r.user)
        env.set("LOCAL", r.local)
        env.unset("SPAMFILTER")
        env.set("RECIPIENT", r.recipient)
        env.set("DTLINE", r.dtline)
        if doIt { try checkLoop() }
        env.set("SENDER", r.sender)
        env.set("RPLINE", r.rpline)
        ufline = r.ufline(time: time(nil))
        env.set("UFLINE", ufline)
        for (i, name) in ["EXT", "EXT2", "EXT3", "EXT4"].enumerated() { env.set(name, r.extensions[i]) }
        for (i, name) in ["HOST2", "HOST3", "HOST4"].enumerated() { env.set(name, r.hosts[i]) }
    }

    func checkHome() throws(LocalExit) {
        let home = String(decoding: r.home, as: UTF8.self)
        if chdir(home) != 0 {
            throw .temporary("Unable to switch to \(home): \(SystemError.describe(errno)). (#4.3.0)")
        }
        var st = stat()
        guard stat(".", &st) == 0 else {
            throw .temporary("Unable to stat home directory: \(SystemError.describe(errno)). (#4.3.0)")
        }
        if st.st_mode & 0o002 != 0 { throw .temporary("Uh-oh: home directory is writable. (#4.7.0)") }
        if st.st_mode & S_ISVTX != 0 {
            if doIt { throw .temporary("Home directory is sticky: user is editing his .qmail file. (#4.2.1)") }
            FD.writeAll(2, Array("Warning: home directory is sticky.\n".utf8))
        }
    }

    /// Bounces a message that already carries our Delivered-To line more than
    /// control/maxdeliveredto times (default 0; -1 turns the check off).
    func checkLoop() throws(LocalExit) {
        let control = ControlFiles(paths: SuitePaths(environment: env))
        var limit = 0
        switch control.value("maxdeliveredto") {
        case .failure: throw .temporary("Unable to read control file maxdeliveredto. (#4.3.0)")
        case .success(let text):
            if let text, !text.isEmpty {
                guard let n = Int(text) else { throw .temporary("Unable to read control file maxdeliveredto. (#4.3.0)") }
                limit = n
            }
        }
        if limit < 0 { return }
        guard message.rewind() else { throw .temporary("Unable to rewind message. (#4.3.0)") }
        let dt = r.dtline
        var found = 0
        // Only as much of a line as could equal DTLINE is kept: huge header lines cost nothing.
        var line: [UInt8] = []
        var length = 0
        let read = message.forEachChunk { chunk in
            for c in chunk {
                length += 1
                if line.count <= dt.count { line.append(c) }
                guard c == 10 else { continue }
                if length <= 1 { return false } // end of header
                if line == dt { found += 1 }
                line.removeAll(keepingCapacity: true)
                length = 0
                if found > limit { return false }
            }
            return true
        }
        if case .failure(let e) = read { throw .temporary("Unable to read message: \(e.reason). (#4.3.0)") }
        if found > limit {
            throw .permanent("This message is looping: it already has my Delivered-To line. (#5.4.6)")
        }
    }

    /// `.qmail<dash><safeext>`, then the `-default` names from the longest prefix down.
    /// Returns the file's bytes and whether its x bit is set, or nil when none exists.
    mutating func findInstructions() throws(LocalExit) -> (text: [UInt8], forwardOnly: Bool)? {
        let base = Array(".qmail".utf8) + r.dash
        let safe = r.safeExt
        if let found = try open(base + safe) {
            if safe.count >= 7, Array(safe.suffix(7)) == Array("default".utf8) {
                let i = safe.count - 7
                if i <= r.ext.count { env.set("DEFAULT", Array(r.ext[i...])) }
            }
            return found
        }
        var i = safe.count
        while i >= 0 {
            if i == 0 || safe[i - 1] == 45 {
                if let found = try open(base + safe[..<i] + Array("default".utf8)) {
                    if i <= r.ext.count { env.set("DEFAULT", Array(r.ext[i...])) }
                    return found
                }
            }
            i -= 1
        }
        return nil
    }

    func open(_ name: [UInt8]) throws(LocalExit) -> (text: [UInt8], forwardOnly: Bool)? {
        let path = String(decoding: name, as: UTF8.self)
        let fd: Int32
        switch FD.openRead(path) {
        case .success(let opened): fd = opened
        case .failure(let e):
            if e.errno == ENOENT || e.errno == ENOTDIR || e.errno == ENAMETOOLONG || e.errno == ELOOP { return nil }
            throw .temporary("Unable to open \(path): \(e.reason). (#4.3.0)")
        }
        defer { FD.close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .temporary("Unable to open \(path): \(SystemError.describe(errno)). (#4.3.0)") }
        guard st.st_mode & S_IFMT == S_IFREG else { return nil }
        if st.st_mode & 0o002 != 0 { throw .temporary("Uh-oh: .qmail file is writable. (#4.7.0)") }
        FD.setNonBlocking(fd, false)
        switch FD.readAll(fd) {
        case .success(let bytes): return (bytes, st.st_mode & 0o100 != 0)
        case .failure(let e): throw .temporary("Unable to read \(path): \(e.reason). (#4.3.0)")
        }
    }

    func exists(_ name: [UInt8]) throws(LocalExit) -> Bool {
        let path = String(decoding: name, as: UTF8.self)
        var st = stat()
        if stat(path, &st) == 0 { return true }
        let e = errno
        if e == ENOENT || e == ENOTDIR || e == EACCES || e == ENAMETOOLONG || e == ELOOP { return false }
        throw .temporary("Unable to open \(path): \(SystemError.describe(e)). (#4.3.0)")
    }

    mutating func deliver() throws(LocalExit) {
        let found = try findInstructions()
        if found == nil && !r.dash.isEmpty {
            throw .permanent("Sorry, no mailbox here by that name. (#5.1.1)")
        }
        newSender = r.sender
        if !r.sender.isEmpty && r.sender != Array("#@[]".utf8) {
            let owner = Array(".qmail".utf8) + r.dash + r.safeExt + Array("-owner".utf8)
            if try exists(owner) {
                newSender = try exists(owner + Array("-default".utf8))
                    ? r.local + Array("-owner-@".utf8) + r.host + Array("-@[]".utf8)
                    : r.local + Array("-owner@".utf8) + r.host
            }
        }
        env.set("NEWSENDER", newSender)

        var text = found?.text ?? []
        var forwardOnly = found?.forwardOnly ?? false
        if text.isEmpty {
            text = r.defaultDelivery
            forwardOnly = false
        }
        let file: DotQmail
        switch DotQmail.parse(text) {
        case .success(let parsed): file = parsed
        case .failure(let error): throw .temporary(error.description)
        }
        try execute(file, forwardOnly: forwardOnly)
        var report = Array("did \(counts.file)+\(counts.forward)+\(counts.program)\n".utf8)
        if forwardPID > 0 { report += Array("qp \(forwardPID)\n".utf8) }
        FD.writeAll(1, report)
    }

    func say(_ kind: String, _ what: [UInt8]) {
        FD.writeAll(1, Array(kind.utf8) + what + [10])
    }

    mutating func execute(_ file: DotQmail, forwardOnly initialForwardOnly: Bool) throws(LocalExit) {
        var forwardOnly = initialForwardOnly
        var forwards: [[UInt8]] = []
        var index = 0
        let instructions = file.instructions
        lines: while index < instructions.count {
            let instruction = instructions[index]
            index += 1
            switch instruction {
            case .comment, .label, .empty: continue
            case .listMode: forwardOnly = true
            case .envdir(let dir):
                let path = String(decoding: dir, as: UTF8.self)
                switch EnvDirLoader.load(path, into: env) {
                case .success(let loaded): env = loaded
                case .failure(let e): throw .temporary("Uh-oh: envdir \(path): \(e). (#4.3.0)")
                }
            case .maildir(let path), .mbox(let path):
                counts.file += 1
                if forwardOnly { throw .temporary("Uh-oh: .qmail has file delivery but has x bit set. (#4.7.0)") }
                let isMaildir: Bool
                if case .maildir = instruction { isMaildir = true } else { isMaildir = false }
                if !doIt { say(isMaildir ? "maildir " : "mbox ", path); continue }
                let where_ = String(decoding: path, as: UTF8.self)
                let result: Result<Void, DeliveryFailure>
                if isMaildir {
                    var delivery = MaildirDelivery(directory: where_, preamble: r.rpline + r.dtline + r.qqeh)
                    delivery.sync = sync
                    result = delivery.deliver(message).map { _ in () }
                } else {
                    var delivery = MboxDelivery(path: where_, preamble: ufline + r.rpline + r.dtline + r.qqeh)
                    delivery.sync = sync
                    result = delivery.deliver(message)
                }
                if case .failure(let failure) = result {
                    let (code, text) = failure.report
                    throw LocalExit(code: code, text: text)
                }
            case .program(let command):
                counts.program += 1
                if forwardOnly { throw .temporary("Uh-oh: .qmail has prog delivery but has x bit set. (#4.7.0)") }
                if !doIt { say("program ", command); continue }
                if try runProgram(command) { break lines }
            case .branch(let label, let command):
                var jump = true
                if let command {
                    counts.program += 1
                    if forwardOnly { throw .temporary("Uh-oh: .qmail has prog delivery but has x bit set. (#4.7.0)") }
                    if doIt { jump = try runProgram(command) } else { say("program ", command); jump = false }
                }
                if jump {
                    // Past the matching label; no label means nothing more to do.
                    guard let target = file.labelIndex(label, after: index - 1) else { break lines }
                    index = target + 1
                }
            case .forward(let address):
                counts.forward += 1
                if doIt { forwards.append(address) } else { say("forward ", address) }
            }
        }
        if doIt && !forwards.isEmpty { try forward(forwards) }
    }

    /// Runs `/bin/sh -c command` on the message; true when it asked (exit 99) to stop here.
    mutating func runProgram(_ command: [UInt8]) throws(LocalExit) -> Bool {
        guard message.rewind() else { throw .temporary("Unable to rewind message. (#4.3.0)") }
        var childEnv = env
        childEnv.set("QQEH", r.qqeh)
        let shown = String(decoding: command, as: UTF8.self)
        let status: WaitStatus
        switch Spawn.run([Array("/bin/sh".utf8), Array("-c".utf8), command], environment: childEnv) {
        case .success(let s): status = s
        case .failure(let e): throw .temporary("Unable to run /bin/sh: \(e.reason). (#4.3.0)")
        }
        switch status {
        case .exited(0): return false
        case .exited(99): return true
        case .exited(100), .exited(64), .exited(65), .exited(70), .exited(76), .exited(77), .exited(78), .exited(112):
            throw LocalExit(code: ExitCode.permanent, text: "")
        case .exited: throw LocalExit(code: ExitCode.temporary, text: "")
        case .signaled, .stopped: throw .temporary("Aack, child [\(shown)] crashed. (#4.3.0)")
        }
    }

    /// Hands every forward address to one queue submission (qmail-queue, or QMAILQUEUE), as
    /// the reference does: DTLINE, an X-Forwarded-To line per address, X-Forwarded-For, the
    /// queue's extra headers, then the message, unchanged; the envelope names the new sender.
    mutating func forward(_ recipients: [[UInt8]]) throws(LocalExit) {
        guard message.rewind() else { throw .temporary("Unable to rewind message. (#4.3.0)") }
        var childEnv = env
        childEnv.set("QQEH", r.qqeh)
        var submission: QueueSubmission
        switch QueueSubmission.start(environment: childEnv) {
        case .success(let s): submission = s
        case .failure(let e): throw .temporary("Unable to fork: \(e.reason). (#4.3.0)")
        }
        var head = r.dtline
        for address in recipients { head += Array("X-Forwarded-To: ".utf8) + address + [10] }
        head += Array("X-Forwarded-For: ".utf8) + newSender + [10] + r.qqeh
        submission.write(head)
        var readError: SystemError? = nil
        if case .failure(let e) = message.forEachChunk({ chunk in
            submission.write(chunk)
            return true
        }) { readError = e }
        if let readError {
            // A truncated message must not be queued.
            submission.abandon()
            throw .temporary("Unable to read message: \(readError.reason). (#4.3.0)")
        }
        let verdict = submission.finish(Envelope(sender: newSender, recipients: recipients))
        if case .accepted(let pid) = verdict { forwardPID = pid; return }
        let text = verdict.replyText
        let reason = String(text.dropFirst())
        if text.hasPrefix("D") { throw .permanent("Unable to forward message: \(reason).") }
        throw .temporary("Unable to forward message: \(reason).")
    }
}

extension Result {
    var isFailure: Bool { if case .failure = self { return true } else { return false } }
}
