// svctool: creates and maintains the supervised service directories of the mail system
// (SMTP, QMTP, QMQP, delivery, svscan's log), their variables, and the base configuration.
import Core
import Glibc

public struct SvctoolCommand: Command {
    public static let name = "svctool"
    public static let installDirectory = InstallDirectory.sbin
    public static let summary = "create and manage the mail services under SERVICEDIR"

    static let synopsis = "svctool --smtp=PORT|--qmtp=PORT|--qmqp=PORT|--delivery=IDENT|--slowq|--queued|--queueParam=NAME|--svscanlog|"
        + "--config=users|qmail|cert|add-boot|rm-boot|recontrol|add-alt|remove-alt|--rmsvc=SVC|--ensvc=SVC|"
        + "--refreshsvc=SVC|all|--autorefresh=\"0|1 SVC\"|--set-variable=N|--modify-variable=N|--unset-variable=N|"
        + "--remove-variable=N|--import-variables=F|--export-variables=F|--print-variables|--print-all-variables|"
        + "--save-variables|--restore-variables|--restore-all-variables|--dumpconfig|--backup=DIR|--queuefix=QUEUE|"
        + "--template=KIND [options] (see svctool(8))"

    public static func run(_ context: CommandContext) -> Int32 {
        let diag = context.diagnostics
        let options: SvctoolOptions
        switch SvctoolOptions.parse(context.strings) {
        case .success(let o): options = o
        case .failure(.noAction): return diag.usage(synopsis)
        case .failure(let e): return diag.fatal(ExitCode.permanent, e.description)
        }
        let settings = SvctoolSettings(options: options, environment: context.environment)
        let tool = Svctool(options: options, settings: settings, context: context)
        let code = tool.perform()
        if code == 0 { tool.record() }
        return code
    }
}

/// One run of svctool: the parsed options, the resolved paths, and the actions.
struct Svctool {
    let options: SvctoolOptions
    let settings: SvctoolSettings
    let context: CommandContext
    var diag: Diagnostics { context.diagnostics }
    var factory: ServiceFactory { ServiceFactory(options: options, settings: settings) }

    func say(_ text: String) {
        if !options.flag("silent") { FD.writeAll(1, Array((text + "\n").utf8)) }
    }

    var writeMode: ServiceWriter.Mode {
        options.flag("force") ? .replace(runFileOnly: options.flag("run-file-only")) : .create
    }

    var ownership: ServiceOwnership {
        guard settings.isRoot else { return ServiceOwnership() }
        var o = ServiceOwnership()
        if case .success(let g) = Accounts.group("indimail") { o.variablesGroup = g }
        if case .success(let a) = Accounts.user(settings.accounts.qmaill) {
            o.logUser = (a.uid, (try? Accounts.group(settings.accounts.nofilesGroup).get()) ?? a.gid)
        }
        return o
    }

    func perform() -> Int32 {
        if options.flag("use-queued"), case let code = checkQueueSocket(), code != 0 { return code }
        switch options.action {
        case .help:
            FD.writeAll(1, Array((SvctoolCommand.synopsis + "\n").utf8))
            return 0
        case .version:
            FD.writeAll(1, Array("svctool (indimail-swift)\n".utf8))
            return 0
        case .template(let kind):
            guard let t = ServiceTemplate(rawValue: kind) else {
                return diag.fatal(ExitCode.permanent, "unknown template \(kind): "
                                  + ServiceTemplate.allCases.map(\.rawValue).joined(separator: ", "))
            }
            FD.writeAll(1, Array(t.text.utf8))
            return 0
        case .smtp(let port):
            if !options.flag("skipsend") {
                if case let code = createQueues(), code != 0 { return code }
                dkimSigningFilter()
                if case let code = install(factory.delivery(ident: port), replaceExisting: true), code != 0 { return code }
            }
            return install(factory.smtp(port: port))
        case .qmtp(let port): return install(factory.qmtpOrQmqp(qmtp: true, port: port))
        case .qmqp(let port): return install(factory.qmtpOrQmqp(qmtp: false, port: port))
        case .delivery(let ident):
            if case let code = createQueues(), code != 0 { return code }
            dkimSigningFilter()
            return install(factory.delivery(ident: ident))
        case .queueParam(let name): return queueParam(name)
        case .svscanlog: return install(factory.svscanlog())
        case .queued:
            if case let code = checkQueueSocket(), code != 0 { return code }
            if case let code = queueSocketDirectory(), code != 0 { return code }
            return install(factory.queued())
        case .slowq:
            let queue = Path.join(settings.queueBase, "slowq")
            if case .failure(let e) = Path.makeDirectories(settings.queueBase) { return diag.fatal(e) }
            if !Path.isDirectory(Path.join(queue, "lock")) || options.flag("force") {
                say("Creating Queue \(queue)")
                let split = context.environment.nonEmpty("CONFSPLIT") ?? "151"
                let code = runSelf(["queue-fix", "-s", split, "-b", "0", "-r", queue], quiet: true)
                if code != 0 { return diag.fatal(ExitCode.temporary, "queue-fix \(queue) failed with status \(code)") }
            }
            say("Creating delivery only slowq")
            dkimSigningFilter()
            return install(factory.slowq())
        case .config(let what): return SvctoolConfig(tool: self).run(what)
        case .rmsvc(let list): return ServiceManagement(tool: self).disable(list)
        case .ensvc(let list): return ServiceManagement(tool: self).enable(list)
        case .refreshsvc(let which): return ServiceManagement(tool: self).refresh(which)
        case .autorefresh(let spec): return ServiceManagement(tool: self).autorefresh(spec)
        case .setVariable, .modifyVariable, .unsetVariable, .removeVariable, .importVariables, .exportVariables,
             .printVariables, .printAllVariables, .saveVariables, .restoreVariables, .restoreAllVariables:
            return ServiceVariables(tool: self).run()
        case .dumpconfig: return ServiceManagement(tool: self).dumpConfig()
        case .backup(let dir): return ServiceManagement(tool: self).backup(dir)
        case .queuefix(let queue):
            // queue-fix with the installation's split; its report goes to the operator.
            let split = context.environment.nonEmpty("CONFSPLIT") ?? "151"
            let code = runSelf(["queue-fix", "-s", split, queue], quiet: options.flag("silent"))
            return code == 0 ? 0 : diag.fatal(code == ExitCode.permanent ? ExitCode.permanent : ExitCode.temporary,
                                               "queue-fix \(queue) failed with status \(code)")
        }
    }

    /// Appends the command line of a run that changed something to LOGDIR/svctool.log, as the
    /// reference keeps a history of its invocations; a log that cannot be written is ignored.
    func record() {
        switch options.action {
        case .help, .version, .template, .printVariables, .printAllVariables, .dumpconfig, .exportVariables: return
        default: break
        }
        let line = "\(ReceivedHeader.date822(seconds: time(nil)).dropLast()) \(factory.commandLine)\n"
        guard case .success = Path.makeDirectories(settings.logDirectory),
              case .success(let fd) = FD.open(Path.join(settings.logDirectory, "svctool.log"),
                                              O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, mode: 0o640) else { return }
        _ = FD.writeAll(fd, Array(line.utf8))
        FD.close(fd)
    }

    /// Writes a blueprint; the shared variables (control/global_vars) come first.
    /// `replaceExisting`: the delivery half of --smtp is shared by several listeners, so an
    /// existing one is left alone instead of being an error.
    func install(_ blueprint: ServiceBlueprint, replaceExisting: Bool = false) -> Int32 {
        if case let code = ensureGlobalVariables(), code != 0 { return code }
        let target = Path.join(settings.serviceDirectory, blueprint.name)
        if replaceExisting, writeMode == .create, Path.exists(target) {
            say("keeping existing \(target)")
            return 0
        }
        switch ServiceWriter.install(blueprint, in: settings.serviceDirectory, mode: writeMode, ownership: ownership) {
        case .success(let path):
            say("created \(path)")
            return 0
        case .failure(.exists(let path)):
            return diag.fatal(ExitCode.permanent, ServiceWriteError.exists(path).description)
        case .failure(let e):
            return diag.fatal(ExitCode.temporary, e.description)
        }
    }

    /// control/global_vars with the reference's starting values (CONFSPLIT, BIGTODO, sync
    /// switches); existing files are kept.
    func ensureGlobalVariables() -> Int32 {
        let dir = settings.globalVariables
        if case .failure(let e) = Path.makeDirectories(dir) { return diag.fatal(e) }
        let split = context.environment.nonEmpty("CONFSPLIT") ?? "151"
        var defaults: [(String, VariableValue)] = [("CONFSPLIT", .value(split)), ("BIGTODO", .value("0"))]
        let sync = options.flag("fsync") || options.flag("fdatasync")
        defaults.append(("USE_FSYNC", sync ? .value("1") : .unset))
        defaults.append(("USE_FDATASYNC", sync ? .value("1") : .unset))
        defaults.append(("USE_SYNCDIR", options.flag("syncdir") ? .value("1") : .unset))
        for (name, value) in defaults {
            let path = Path.join(dir, name)
            if Path.exists(path) && !(name.hasPrefix("USE_") && sync) { continue }
            if case .failure(let e) = ServiceWriter.writeFile(path, value.fileBytes, mode: 0o644) { return diag.fatal(e) }
        }
        return 0
    }

    /// The queue collection: QBASE/nqueue and QBASE/queueN (qstart, qcount of them), made by
    /// queue-fix, and control/queue_base.
    func createQueues() -> Int32 {
        let base = settings.queueBase
        if case .failure(let e) = Path.makeDirectories(base) { return diag.fatal(e) }
        chmod(base, 0o755)
        let split = context.environment.nonEmpty("CONFSPLIT") ?? "151"
        var queues = ["nqueue"]
        for i in 0..<settings.queueCount { queues.append("queue\(settings.queueStart + i)") }
        for q in queues {
            let dir = Path.join(base, q)
            if Path.isDirectory(Path.join(dir, "lock")) && !options.flag("force") { continue }
            say("Creating Queue \(dir)")
            let code = runSelf(["queue-fix", "-s", split, "-b", "0", dir], quiet: true)
            if code != 0 { return diag.fatal(ExitCode.temporary, "queue-fix \(dir) failed with status \(code)") }
        }
        if case .failure(let e) = Path.makeDirectories(settings.controlDirectory) { return diag.fatal(e) }
        if case .failure(let e) = ServiceWriter.writeFile(Path.join(settings.controlDirectory, "queue_base"), base + "\n", mode: 0o644) {
            return diag.fatal(e)
        }
        return 0
    }

    /// The socket path must fit a sockaddr_un (the default one too, which depends on --qbase).
    func checkQueueSocket() -> Int32 {
        let socket = factory.queueSocket
        guard socket.hasPrefix("/"), socket.utf8.count < 108 else {
            return diag.fatal(ExitCode.permanent, "queue socket \(socket) is not an absolute path shorter than 108 bytes (use --queue-socket)")
        }
        return 0
    }

    /// The directory of qmail-queued's socket: 0755 and, as root, owned by qmailq:qmail so
    /// the pool (which drops to qmailq after binding) can remove the socket when it stops.
    /// A directory that already exists is adjusted only when it is the default one
    /// (QBASE/queued): a chosen path such as /run is left as the operator made it.
    func queueSocketDirectory() -> Int32 {
        let dir = Path.dirname(factory.queueSocket)
        let isDefault = options.value("queue-socket") == nil
        let existed = Path.isDirectory(dir)
        if !existed, case .failure(let e) = Path.makeDirectories(dir) { return diag.fatal(e) }
        guard !existed || isDefault else { return 0 }
        chmod(dir, 0o755)
        if settings.isRoot {
            guard case .success(let qmailq) = Accounts.user(settings.accounts.qmailq) else {
                return diag.fatal(ExitCode.temporary, "unable to look up \(settings.accounts.qmailq)")
            }
            let group = (try? Accounts.group(settings.accounts.qmailGroup).get()) ?? qmailq.gid
            if chown(dir, qmailq.uid, group) != 0 { return diag.fatal(SystemError("unable to chown", dir)) }
        }
        return 0
    }

    /// --dksign=dkim: remote deliveries pass through qmail-dkim (control/filterargs), unless
    /// the operator already has a filterargs of their own.
    func dkimSigningFilter() {
        guard options.value("dksign") == "dkim" else { return }
        let path = Path.join(settings.controlDirectory, "filterargs")
        guard !Path.exists(path) else { return }
        _ = Path.makeDirectories(settings.controlDirectory)
        let line = "*:remote:\(settings.program("sbin", "qmail-dkim")):DKIMQUEUE=\(settings.program("bin", "qcat"))\n"
        _ = ServiceWriter.writeFile(path, line, mode: 0o644)
    }

    /// --queueParam=NAME: the envdir CONTROLDIR/NAME, rewritten in place.
    func queueParam(_ name: String) -> Int32 {
        let dir = Path.join(settings.controlDirectory, name)
        if case .failure(let e) = Path.makeDirectories(dir) { return diag.fatal(e) }
        for (variable, value) in factory.queueParam() {
            if case .failure(let e) = ServiceWriter.writeFile(Path.join(dir, variable), value.fileBytes, mode: 0o644) {
                return diag.fatal(e)
            }
        }
        _ = ServiceWriter.writeFile(Path.join(dir, ".options"), factory.commandLine + "\n", mode: 0o644)
        if case let code = ensureGlobalVariables(), code != 0 { return code }
        let globals = settings.globalVariables
        if !Path.exists(Path.join(dir, ".envdir")) {
            _ = ServiceWriter.writeFile(Path.join(dir, ".envdir"), globals + "\n", mode: 0o644)
        }
        // The queue collection becomes everyone's default: global_vars links to these files
        // unless it already has its own.
        if !options.flag("no-multi") {
            for name in ["QUEUE_BASE", "QUEUE_COUNT", "QUEUE_START"] {
                let link = Path.join(globals, name)
                if Path.status(link, followLinks: false) == nil { symlink(Path.join(dir, name), link) }
            }
        }
        // --death: how long a message may stay queued; OSSIFIED is half as long again.
        if let death = options.value("death").flatMap({ Int($0) }) {
            let deathFile = Path.join(globals, "DEATH"), ossified = Path.join(globals, "OSSIFIED")
            if death == 86400 {
                unlink(deathFile); unlink(ossified)
            } else if !Path.exists(deathFile) || options.flag("force") {
                _ = ServiceWriter.writeFile(deathFile, "\(death)\n", mode: 0o644)
                _ = ServiceWriter.writeFile(ossified, "\(death + death / 2)\n", mode: 0o644)
            }
        }
        say("created \(dir)")
        return 0
    }

    /// Runs another command of this binary (queue-fix, tcprules, svc) as a child.
    func runSelf(_ arguments: [String], stdin: String? = nil, quiet: Bool = false) -> Int32 {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return ExitCode.temporary }
        let exe = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return runProgram([exe] + arguments, stdin: stdin, quiet: quiet)
    }

    func runProgram(_ argv: [String], stdin: String? = nil, quiet: Bool = false, output: Int32? = nil) -> Int32 {
        var options = SpawnOptions()
        var toClose: [Int32] = []
        if let stdin {
            guard case .success(let fd) = FD.open(stdin, O_RDONLY | O_CLOEXEC) else { return ExitCode.temporary }
            options.fileMoves.append((fd, 0)); toClose.append(fd)
        }
        if quiet, case .success(let null) = FD.open("/dev/null", O_WRONLY | O_CLOEXEC) {
            options.fileMoves.append((null, 1)); toClose.append(null)
        } else if let output {
            options.fileMoves.append((output, 1))
        }
        defer { for fd in toClose { FD.close(fd) } }
        switch Spawn.run(argv.map { Array($0.utf8) }, environment: context.environment, options: options) {
        case .success(.exited(let code)): return code
        default: return ExitCode.temporary
        }
    }
}
