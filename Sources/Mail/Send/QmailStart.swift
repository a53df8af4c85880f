// qmail-start: wires up the queue's daemons — qmail-lspawn, qmail-rspawn, two qmail-clean,
// todo-proc and an optional logger — with pipes on the reference's descriptor numbers, each
// under its own account when run as root, and finally becomes qmail-send (§5).
import Core
import Glibc

public struct QmailStartCommand: Command {
    public static let name = "qmail-start"
    public static let installDirectory = InstallDirectory.sbin
    public static let summary = "start qmail-send and its helper daemons for one queue"
    static let synopsis = "qmail-start [-s|-d|-c] [defaultdelivery [logger arg ...]]"

    /// The programs started, each overridable by an environment variable naming a path.
    static let programs: [(name: String, variable: String)] = [
        ("qmail-lspawn", "QMAILLSPAWN"), ("qmail-rspawn", "QMAILRSPAWN"), ("qmail-clean", "QMAILCLEAN"),
        ("todo-proc", "TODOPROC"), ("qmail-send", "QMAILSEND"),
    ]

    /// The override variable's value; else `$PREFIX/sbin/<name>` when PREFIX is set (as
    /// QueueSubmission finds qmail-queue); else the bare name, searched along PATH.
    static func program(_ name: String, _ env: Environment) -> [UInt8] {
        let variable = programs.first { $0.name == name }?.variable ?? ""
        if let chosen = env.nonEmpty(variable) { return Array(chosen.utf8) }
        if let prefix = env.nonEmpty("PREFIX") { return Array(Path.join(prefix, "sbin/" + name).utf8) }
        return Array(name.utf8)
    }

    public static func run(_ context: CommandContext) -> Int32 {
        let diag = context.diagnostics
        let env = context.environment
        var sendFlags: [[UInt8]] = [], todoFlags: [[UInt8]] = []
        let parsed: (items: [OptionParser.Item], operandIndex: Int)
        switch OptionParser("cds").parse(context.strings) {
        case .failure(let e):
            diag.warning(e.description)
            return diag.usage(synopsis)
        case .success(let p): parsed = p
        }
        for case .flag(let f) in parsed.items {
            let flag = Array("-\(f)".utf8)
            if f != "c" { sendFlags.append(flag) }
            todoFlags.append(flag)
        }
        var operands = Array(context.arguments[parsed.operandIndex...])
        let paths = SuitePaths(environment: env)
        // Without an argument: the control file defaultdelivery, else ./Mailbox.
        var defaultDelivery = Array("./Mailbox".utf8)
        if !operands.isEmpty {
            defaultDelivery = operands.removeFirst()
        } else if case .success(let value?) = ControlFiles(paths: paths).value("defaultdelivery"), !value.isEmpty {
            defaultDelivery = Array(value.utf8)
        }
        let logger = operands

        guard chdir(paths.qmailHome) == 0 else {
            return diag.fatal(SystemError("unable to switch to", paths.qmailHome))
        }
        umask(0o077)
        let identities: Identities
        switch Identities.lookUp(env) {
        case .failure(let e): return diag.fatal(ExitCode.temporary, e.description)
        case .success(let i): identities = i
        }
        let queueArgument: [[UInt8]] = env.nonEmpty("QUEUEDIR").map { [Array($0.utf8)] } ?? []

        // fd 1 of qmail-send's log: the logger's pipe, or our own stdout.
        var logFD: Int32 = 1
        if !logger.isEmpty {
            guard case .success(let p) = FD.pipe() else { return diag.fatal(SystemError("unable to create pipe")) }
            // The logger keeps our stdout and stderr.
            let started = startChild(logger, program: logger[0], moves: [(p.read, 0)], as: identities.logger, env: env,
                                     keep: [1, 2])
            Glibc.close(p.read)
            guard started else { return diag.fatal(ExitCode.temporary, "unable to fork logger") }
            logFD = p.write
        }
        var pipes: [(read: Int32, write: Int32)] = []
        for _ in 0..<10 {
            guard case .success(let p) = FD.pipe() else { return diag.fatal(SystemError("unable to create pipe")) }
            pipes.append(p)
        }
        // pipes: 0 send→lspawn, 1 lspawn→send, 2 send→rspawn, 3 rspawn→send, 4 send→clean,
        // 5 clean→send, 6 send→todo, 7 todo→send, 8 todo→clean, 9 clean→todo.
        let clean = program("qmail-clean", env)
        let children: [(argv: [[UInt8]], program: [UInt8], moves: [(Int32, Int32)], who: Credentials?)] = [
            ([Array("qmail-lspawn".utf8), defaultDelivery] + queueArgument, program("qmail-lspawn", env),
             [(pipes[0].read, 0), (pipes[1].write, 1)], identities.lspawn),
            ([Array("qmail-rspawn".utf8)] + queueArgument, program("qmail-rspawn", env),
             [(pipes[2].read, 0), (pipes[3].write, 1)], identities.rspawn),
            ([Array("qmail-clean".utf8)] + queueArgument + [Array("qmail-send".utf8)], clean,
             [(pipes[4].read, 0), (pipes[5].write, 1)], identities.clean),
            ([Array("todo-proc".utf8)] + todoFlags + queueArgument, program("todo-proc", env),
             [(pipes[6].read, 0), (pipes[7].write, 1), (pipes[8].write, 2), (pipes[9].read, 3)], identities.send),
            ([Array("qmail-clean".utf8)] + queueArgument + [Array("todo-proc".utf8)], clean,
             [(pipes[8].read, 0), (pipes[9].write, 1)], identities.clean),
        ]
        for child in children {
            guard startChild(child.argv, program: child.program, moves: child.moves, as: child.who, env: env) else {
                return diag.fatal(ExitCode.temporary, "unable to fork \(String(decoding: child.argv[0], as: UTF8.self))")
            }
        }
        // Become qmail-send.
        if let who = identities.send, case .failure(let e) = Privileges.become(who) {
            return diag.fatal(ExitCode.temporary, "unable to set qmails uid: \(e)")
        }
        let sendMoves: [(Int32, Int32)] = [(logFD, 0), (pipes[0].write, 1), (pipes[1].read, 2), (pipes[2].write, 3),
                                           (pipes[3].read, 4), (pipes[4].write, 5), (pipes[5].read, 6),
                                           (pipes[6].write, 7), (pipes[7].read, 8)]
        guard placeDescriptors(sendMoves, keep: []) else {
            return diag.fatal(ExitCode.temporary, "unable to set up descriptors for qmail-send")
        }
        let error = Exec.replace(program: program("qmail-send", env),
                                 arguments: [Array("qmail-send".utf8)] + sendFlags + queueArgument, environment: env)
        // fd 2 is a pipe now; the log is the only place left to complain.
        FD.writeAll(0, Array("alert: qmail-start: unable to exec qmail-send: \(error)\n".utf8))
        return ExitCode.temporary
    }

    /// Forks a child that takes `moves` as its descriptors, `who` as its identity, and execs.
    static func startChild(_ argv: [[UInt8]], program: [UInt8], moves: [(Int32, Int32)], as who: Credentials?,
                           env: Environment, keep: Set<Int32> = [2]) -> Bool {
        let pid = fork()
        if pid < 0 { return false }
        if pid > 0 { return true }
        Signals.resetForChild()
        if let who, case .failure = Privileges.become(who) { _exit(111) }
        guard placeDescriptors(moves, keep: keep) else { _exit(111) }
        _ = Exec.replace(program: program, arguments: argv, environment: env)
        _exit(111)
    }

    /// Puts each source on its target (0...8), closing the other low descriptors except
    /// those in `keep` (left as inherited when nothing else claims them).
    static func placeDescriptors(_ moves: [(Int32, Int32)], keep: Set<Int32>) -> Bool {
        var high: [(Int32, Int32)] = []
        for (source, target) in moves {
            let copy = fcntl(source, F_DUPFD, 100)
            guard copy >= 0 else { return false }
            high.append((copy, target))
        }
        let targets = Set(moves.map { $0.1 })
        for fd: Int32 in 0...8 where !targets.contains(fd) && !keep.contains(fd) {
            Glibc.close(fd)
        }
        for (copy, target) in high {
            guard dup2(copy, target) >= 0 else { return false }
        }
        for (copy, _) in high { Glibc.close(copy) }
        return true
    }
}

/// Who each daemon runs as; nil entries (everything when not root) keep our identity.
struct Identities {
    var logger: Credentials?
    var lspawn: Credentials?
    var rspawn: Credentials?
    var clean: Credentials?
    var send: Credentials?

    static func lookUp(_ env: Environment) -> Result<Identities, AccountError> {
        guard geteuid() == 0 else { return .success(Identities()) }
        let names = SuiteAccounts(environment: env)
        let supplementary = env.contains("USE_SETGROUPS")
        func account(_ name: String) -> Result<Account, AccountError> { Accounts.user(name) }
        do throws(AccountError) {
            let qmail = try Accounts.group(names.qmailGroup).get()
            let nofiles = try Accounts.group(names.nofilesGroup).get()
            func who(_ user: String, gid: gid_t) throws(AccountError) -> Credentials {
                let a = try account(user).get()
                var groups: [gid_t] = [gid]
                if supplementary, case .success(let more) = Privileges.memberships(of: a) {
                    groups += more.filter { $0 != gid }
                }
                return Credentials(uid: a.uid, gid: gid, groups: groups)
            }
            return .success(Identities(
                logger: try who(names.qmaill, gid: nofiles),
                lspawn: Credentials(uid: 0, gid: qmail, groups: [qmail]),
                rspawn: try who(names.qmailr, gid: qmail),
                clean: try who(names.qmailq, gid: qmail),
                send: try who(names.qmails, gid: qmail)))
        } catch {
            return .failure(error)
        }
    }
}
