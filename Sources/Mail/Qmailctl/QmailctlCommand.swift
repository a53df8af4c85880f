// qmailctl: one command for the operator's daily verbs (start, stop, stat, flush, cdb, ...)
// over the services under SERVICEDIR, by running our svc and svstat on them.
import Core
import Glibc

public struct QmailctlCommand: Command {
    public static let name = "qmailctl"
    public static let installDirectory = InstallDirectory.sbin
    public static let summary = "control the mail services under SERVICEDIR"

    static let usage = "qmailctl {start|stop|restart|kill|flush|rotate|reload|stat|status|queue|pause|cont|cdb|help}"

    static let help = """
          start -- brings every service up (connections accepted, mail goes out)
           stop -- takes every service down (connections refused, nothing goes out)
        restart -- takes the listeners down, restarts qmail-send, brings everything up
           kill -- sends KILL to every service
          flush -- asks qmail-send to retry its queue now (ALRM)
         reload -- asks qmail-send to reread its control files (HUP)
    stat|status -- shows the status of every service and its logger
         rotate -- rotates every log (ALRM to multilog)
          queue -- shows the state of the queue (qmail-qread -c)
          pause -- pauses qmail-send and the SMTP listeners (STOP)
           cont -- continues what pause stopped (CONT)
            cdb -- rebuilds SYSCONFDIR/tcp/tcp.*.cdb whose source is newer

    """

    /// What a verb does: the svc option and which services it touches.
    enum Selection { case all, logs, send, sendAndSMTP, listeners }

    public static func run(_ context: CommandContext) -> Int32 {
        let diag = context.diagnostics
        guard let verb = context.strings.first, context.strings.count == 1 else { return diag.usage(usage) }
        let env = context.environment
        let paths = SuitePaths(environment: env)
        let ctl = Qmailctl(context: context, serviceDirectory: paths.serviceDirectory, paths: paths)
        switch verb {
        case "start": return ctl.svc("-u", ctl.services(.all), verb: "Starting")
        case "stop": return ctl.svc("-d", ctl.services(.all), verb: "Stopping")
        case "restart":
            var status = ctl.svc("-d", ctl.services(.listeners), verb: "Stopping")
            status = max(status, ctl.svc("-t", ctl.services(.send), verb: "Restarting"))
            return max(status, ctl.svc("-u", ctl.services(.all), verb: "Starting"))
        case "kill": return ctl.svc("-k", ctl.services(.all), verb: "Killing")
        case "flush": return ctl.svc("-a", ctl.services(.send), verb: "Flushing")
        case "reload": return ctl.svc("-h", ctl.services(.send), verb: "sending HUP signal to")
        case "rotate": return ctl.svc("-a", ctl.services(.logs), verb: "Rotating")
        case "pause": return ctl.svc("-p", ctl.services(.sendAndSMTP), verb: "pausing")
        case "cont": return ctl.svc("-c", ctl.services(.sendAndSMTP), verb: "continuing")
        case "stat", "status": return ctl.status()
        case "queue": return ctl.queue()
        case "cdb": return ctl.cdb()
        case "help":
            FD.writeAll(1, Array(help.utf8))
            return 0
        default:
            FD.writeAll(2, Array("usage: \(usage)\n".utf8))
            FD.writeAll(2, Array(help.utf8))
            return 1
        }
    }
}

struct Qmailctl {
    let context: CommandContext
    let serviceDirectory: String
    let paths: SuitePaths

    func services(_ selection: QmailctlCommand.Selection) -> [String] {
        let names = ((try? Path.entries(serviceDirectory).get()) ?? []).sorted()
        var out: [String] = []
        for name in names {
            let dir = Path.join(serviceDirectory, name)
            let visible = !name.hasPrefix(".")
            switch selection {
            case .all: if visible, Path.isDirectory(dir) { out.append(dir) }
            case .logs:
                if (visible || name == ".svscan"), Path.isDirectory(Path.join(dir, "log")) { out.append(Path.join(dir, "log")) }
            case .send: if visible, name.hasPrefix("qmail-send.") { out.append(dir) }
            case .sendAndSMTP: if visible, name.hasPrefix("qmail-send.") || name.hasPrefix("qmail-smtpd.") { out.append(dir) }
            case .listeners:
                if visible, name.hasPrefix("qmail-smtpd.") || name.hasPrefix("qmail-qmtpd.") || name.hasPrefix("qmail-qmqpd.") {
                    out.append(dir)
                }
            }
        }
        return out
    }

    /// Runs `svc option dir` for each; prints one line per service. 0 when all worked, else 1.
    func svc(_ option: String, _ dirs: [String], verb: String) -> Int32 {
        var failed = false
        for dir in dirs {
            let code = runSelf(["svc", option, dir])
            FD.writeAll(1, Array("\(verb) \(dir): \(code == 0 ? "OK" : "FAILED")\n".utf8))
            if code != 0 { failed = true }
        }
        return failed ? 1 : 0
    }

    func status() -> Int32 {
        var targets: [String] = []
        for dir in services(.all) {
            targets.append(dir)
            if Path.isDirectory(Path.join(dir, "log")) { targets.append(Path.join(dir, "log")) }
        }
        let svscanLog = Path.join(serviceDirectory, ".svscan/log")
        if Path.isDirectory(svscanLog) { targets.insert(svscanLog, at: 0) }
        guard !targets.isEmpty else {
            FD.writeAll(1, Array("no services in \(serviceDirectory)\n".utf8))
            return 1
        }
        return runSelf(["svstat"] + targets) == 0 ? 0 : 1
    }

    func queue() -> Int32 {
        var options = SpawnOptions()
        options.fileMoves = []
        switch Spawn.run([Array("qmail-qread".utf8), Array("-c".utf8)], environment: context.environment, options: options) {
        case .success(.exited(0)): return 0
        case .success: return 1
        case .failure(let e): return context.diagnostics.fatal(ExitCode.temporary, e.description)
        }
    }

    /// Rebuilds tcp.<proto>.cdb for every tcp.<proto> newer than its cdb; removes a cdb whose
    /// source is gone.
    func cdb() -> Int32 {
        let tcp = Path.join(paths.sysconfDirectory, "tcp")
        let names = ((try? Path.entries(tcp).get()) ?? []).sorted()
        var failed = false
        for proto in ["smtp", "qmtp", "qmqp", "imap", "pop3", "poppass"] {
            for name in names where name.hasPrefix("tcp") && name.hasSuffix(".\(proto).cdb") {
                let source = Path.join(tcp, String(name.dropLast(4)))
                if !Path.exists(source) {
                    let gone = unlink(Path.join(tcp, name)) == 0
                    FD.writeAll(1, Array("deleting \(Path.join(tcp, name)): \(gone ? "OK" : "FAILED")\n".utf8))
                    if !gone { failed = true }
                }
            }
            for name in names where name.hasPrefix("tcp") && name.hasSuffix(".\(proto)") {
                let source = Path.join(tcp, name)
                let cdb = source + ".cdb"
                let sourceTime = Path.status(source).map { $0.st_mtim.tv_sec } ?? 0
                let cdbTime = Path.status(cdb).map { $0.st_mtim.tv_sec } ?? 0
                guard sourceTime > cdbTime || !Path.exists(cdb) else { continue }
                let code = runSelf(["tcprules", cdb, source + ".tmp"], stdin: source)
                FD.writeAll(1, Array("building \(cdb): \(code == 0 ? "OK" : "FAILED")\n".utf8))
                if code != 0 { failed = true }
            }
        }
        return failed ? 1 : 0
    }

    func runSelf(_ arguments: [String], stdin: String? = nil) -> Int32 {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return ExitCode.temporary }
        let exe = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var options = SpawnOptions()
        var input: Int32 = -1
        if let stdin, case .success(let fd) = FD.open(stdin, O_RDONLY | O_CLOEXEC) {
            input = fd
            options.fileMoves = [(fd, 0)]
        }
        defer { if input >= 0 { FD.close(input) } }
        switch Spawn.run(([exe] + arguments).map { Array($0.utf8) }, environment: context.environment, options: options) {
        case .success(.exited(let code)): return code
        default: return ExitCode.temporary
        }
    }
}
