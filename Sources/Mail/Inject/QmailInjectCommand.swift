// qmail-inject: reads a message on fd 0, completes and rewrites its header, and queues it
// through qmail-queue (or prints it with -n).
import Core
import Glibc

public struct QmailInjectCommand: Command {
    public static let name = "qmail-inject"
    public static let installDirectory = InstallDirectory.bin
    public static let summary = "prepare a message and hand it to qmail-queue"

    /// The identity part of the settings, from the environment as it was when we started
    /// (the reference reads these before loading .defaultqueue).
    static func identity(_ env: Environment) -> InjectSettings {
        let host = env["QMAILHOST"] ?? env["MAILHOST"]
        let user = env["QMAILUSER"] ?? env["MAILUSER"] ?? env["USER"] ?? env["LOGNAME"] ?? "anonymous"
        let s = InjectSettings(defaultHost: "", defaultDomain: "", plusDomain: "", idHost: "",
                               mailUser: user, mailHost: host,
                               fullName: env["QMAILNAME"] ?? env["MAILNAME"] ?? env["NAME"],
                               senderUser: env["QMAILSUSER"], senderHost: env["QMAILSHOST"] ?? host)
        return s
    }

    /// A control value, else `me`, else the literal fallback, as control_rldef.
    static func controlOrMe(_ control: ControlFiles, _ name: String, override: String?) -> Result<String, ControlError> {
        if let override { return .success(override) }
        switch control.value(name) {
        case .failure(let e): return .failure(e)
        case .success(let v?): return .success(v)
        case .success(nil):
            return control.value("me").map { $0 ?? name }
        }
    }

    public static func run(_ context: CommandContext) -> Int32 {
        let diag = context.diagnostics
        signal(SIGPIPE, SIG_IGN)
        let start = Int(Glibc.time(nil))
        var settings = identity(context.environment)
        var queueing = !settings.applyFlags(Array((context.environment["QMAILINJECT"] ?? "").utf8))

        var env = context.environment
        if !env.contains("FASTQUEUE") {
            switch DefaultQueue.load(env, diagnostics: diag) {
            case .success(let e): env = e
            case .failure(let e): return diag.fatal(e)
            }
        }
        let control = ControlFiles(paths: SuitePaths(environment: env))
        var databytes = 0
        do throws(ControlError) {
            settings.defaultDomain = Array(try controlOrMe(control, "defaultdomain", override: env["QMAILDEFAULTDOMAIN"]).get().utf8)
            settings.defaultHost = Array(try controlOrMe(control, "defaulthost", override: env["QMAILDEFAULTHOST"]).get().utf8)
            settings.plusDomain = Array(try controlOrMe(control, "plusdomain", override: env["QMAILPLUSDOMAIN"]).get().utf8)
            settings.idHost = Array(try controlOrMe(control, "idhost", override: env["QMAILIDHOST"]).get().utf8)
            if let text = env["DATABYTES"] { databytes = QueueLayout.leadingNumber(text) } else {
                databytes = (try? control.integer("databytes", default: 0).get()) ?? 0
            }
            if let text = env["MAXRECIPIENTS"] { settings.maxRecipients = QueueLayout.leadingNumber(text) } else {
                settings.maxRecipients = (try? control.integer("maxrecipients", default: 0).get()) ?? 0
            }
        } catch {
            return diag.fatal(ExitCode.temporary, "unable to read controls: \(error)")
        }
        if let file = env["QMAILMFTFILE"] {
            switch FD.readFile(file) {
            case .success(let bytes):
                settings.followupLists = Set(bytes.split(separator: 10).map { line in
                    Array(line.reversed().drop { $0 == 32 || $0 == 9 || $0 == 13 }.reversed())
                }.filter { !$0.isEmpty })
            case .failure(let e) where e.errno == ENOENT: break
            case .failure: return diag.fatal(ExitCode.temporary, "read error")
            }
        }
        if databytes > 0 {
            var st = stat()
            if fstat(0, &st) != 0 { return diag.fatal(ExitCode.temporary, "fstat error: errno \(errno)") }
            if (st.st_mode & S_IFMT) == S_IFREG, Int(st.st_size) > databytes {
                return diag.fatal(ExitCode.permanent, "message size exceeds my databytes limit")
            }
        }

        // Options
        var source: RecipientSource? = nil
        var senderArgument: [UInt8]? = nil
        let parsed: (items: [OptionParser.Item], operandIndex: Int)
        switch OptionParser("asAhHnNf:").parse(context.strings) {
        case .success(let p): parsed = p
        case .failure(let e):
            return diag.usage("qmail-inject [-nNaAhHs] [-f sender] [recipient ...] (\(e))")
        }
        for item in parsed.items {
            switch item {
            case .flag("a"): source = .arguments
            case .flag("A"): source = nil
            case .flag("h"): source = .header
            case .flag("H"): source = .both
            case .flag("s"): settings.ignoreReturnPath = true
            case .flag("n"): queueing = false
            case .flag("N"): queueing = true
            case .value("f", let value): senderArgument = Array(value.utf8)
            default: break
            }
        }
        let operands = Array(context.arguments.dropFirst(parsed.operandIndex))
        let strategy = source ?? (operands.isEmpty ? .header : .arguments)

        var session: InjectSession
        do throws(InjectError) {
            session = try InjectSession(settings: settings, source: strategy, time: start, pid: Int(getpid()))
            if let f = senderArgument { try session.setSender(f) }
            if strategy != .header { for r in operands { try session.addRecipient(r) } }
        } catch {
            return diag.fatal(ExitCode.permanent, error.description)
        }

        // Header
        let input = BufferedReader(fd: 0, capacity: 65536)
        var readFailure: SystemError? = nil
        let split = HeaderSplitter.split {
            var line: [UInt8] = []
            switch input.readLine(into: &line) {
            case .failure(let e): readFailure = e; return nil
            case .success(let more): return more || !line.isEmpty ? line : nil
            }
        }
        if readFailure != nil { return diag.fatal(ExitCode.temporary, "read error") }
        do throws(InjectError) {
            for field in split.fields { try session.field(field) }
        } catch {
            return diag.fatal(ExitCode.permanent, error.description)
        }
        let header = session.finishHeader(returnPathLine: !queueing)

        if !queueing {
            let out = BufferedWriter(fd: 1, capacity: 65536)
            _ = out.write(header)
            for line in split.bodyStart { _ = out.write(line) }
            if let failure = copyBody(input, { _ = out.write($0) }) { return diag.fatal(failure, code: ExitCode.temporary) }
            if case .failure(let e) = out.flush() { return diag.fatal(e) }
            return 0
        }

        let envelope = session.envelope
        if envelope.recipients.isEmpty {
            return diag.fatal(ExitCode.permanent, "no recipients")
        }
        switch applyRules(envelope, environment: &env) {
        case .success: break
        case .failure(let e): return diag.fatal(ExitCode.temporary, e.description)
        }
        var submission: QueueSubmission
        switch QueueSubmission.start(environment: env) {
        case .success(let s): submission = s
        case .failure(let e): return diag.fatal(ExitCode.temporary, "unable to run qmail-queue: \(e.description)")
        }
        var size = 0
        var tooBig = !put(header[...], into: &submission, size: &size, limit: databytes)
        for line in split.bodyStart where !tooBig { tooBig = !put(line[...], into: &submission, size: &size, limit: databytes) }
        let failure = tooBig ? nil : copyBody(input) { chunk in
            if !tooBig { tooBig = !put(chunk, into: &submission, size: &size, limit: databytes) }
        }
        if failure != nil || tooBig {
            submission.abandon()
            if tooBig { return diag.fatal(ExitCode.permanent, "message size exceeds my databytes limit") }
            return diag.fatal(ExitCode.temporary, "read error")
        }
        let verdict = submission.finish(envelope)
        if case .accepted = verdict { return 0 }
        let text = verdict.replyText
        return diag.fatal(text.hasPrefix("D") ? ExitCode.permanent : ExitCode.temporary, String(text.dropFirst()))
    }

    /// from.envrules (FROMRULES) keyed by the sender, then domainqueue (DOMAINQUEUE) keyed
    /// by each recipient's domain: environment changes for qmail-queue. (The reference
    /// applies domainqueue only after qmail-queue has started, where it changes nothing.)
    static func applyRules(_ envelope: Envelope, environment env: inout Environment) -> Result<Void, EnvRules.Failure> {
        let matching = EnvRules.Matching(environment: env)
        switch EnvRules.load("from.envrules", variable: "FROMRULES", environment: env) {
        case .failure(let e): return .failure(e)
        case .success(nil): break
        case .success(let rules?):
            if case .failure(let e) = rules.apply(to: String(decoding: envelope.sender, as: UTF8.self), matching: matching, environment: &env) {
                return .failure(e)
            }
        }
        switch EnvRules.load("domainqueue", variable: "DOMAINQUEUE", environment: env) {
        case .failure(let e): return .failure(e)
        case .success(nil): break
        case .success(let rules?):
            for recipient in envelope.recipients {
                guard let at = recipient.firstIndex(of: UInt8(ascii: "@")) else { continue }
                let domain = String(decoding: recipient[(at + 1)...], as: UTF8.self)
                if case .failure(let e) = rules.apply(to: domain, matching: .wildcard, environment: &env) { return .failure(e) }
            }
        }
        return .success(())
    }

    /// Streams `bytes` unless the message grew past `limit` (0: no limit); false when it did.
    static func put(_ bytes: ArraySlice<UInt8>, into submission: inout QueueSubmission, size: inout Int, limit: Int) -> Bool {
        size += bytes.count
        if limit > 0, size > limit { return false }
        submission.write(bytes)
        return true
    }

    /// Copies the rest of fd 0, ending it with a newline when the last line lacks one.
    static func copyBody(_ input: BufferedReader, _ sink: (ArraySlice<UInt8>) -> Void) -> SystemError? {
        var last: UInt8 = 10
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n: Int
            switch chunk.withUnsafeMutableBytes({ input.read(into: $0) }) {
            case .failure(let e): return e
            case .success(let count): n = count
            }
            if n <= 0 { break }
            last = chunk[n - 1]
            sink(chunk[0 ..< n])
        }
        if last != 10 { sink([10][...]) }
        return nil
    }
}
