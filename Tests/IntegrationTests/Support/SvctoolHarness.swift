// A private installation for svctool tests: SYSCONFDIR, QMAILHOME, LOGDIR, a queue base and a
// service directory inside a sandbox, every qmail account mapped onto nobody/nogroup, and an
// installed-like prefix of links to the built binaries.
import Core
import Glibc

final class SvctoolTree {
    let box: Sandbox
    let prefix: String
    var serviceDirectory: String { box.at("service") }
    var queueBase: String { box.at("queue") }
    var control: String { box.at("etc/control") }

    static let binCommands = ["envdir", "softlimit", "tcpserver", "setuidgid", "svc", "svstat", "svok", "tcprules"]
    static let sbinCommands = ["multilog", "qmail-qmtpd", "qmail-qmqpd", "qmail-qmqpc", "svscan", "supervise", "svctool", "qmailctl", "queue-fix", "qmail-queued"]

    init(box: Sandbox = Sandbox()) {
        self.box = box
        chmod(box.path, 0o755)
        prefix = box.directory("prefix")
        let bin = box.directory("prefix/bin"), sbin = box.directory("prefix/sbin")
        for c in Self.binCommands { symlink(Build.indimail, Path.join(bin, c)) }
        for c in Self.sbinCommands { symlink(Build.indimail, Path.join(sbin, c)) }
        _ = run(["/bin/cp", Build.qmailQueue, Path.join(sbin, "qmail-queue")])
        chmod(Path.join(sbin, "qmail-queue"), 0o755)
    }

    var environment: [String: String] {
        var env = QueueTest.accounts
        env["QMAILD_USER"] = "nobody"
        env["QMAILL_USER"] = "nobody"
        env["NOFILES_GROUP"] = "nogroup"
        env["SYSCONFDIR"] = box.at("etc")
        env["QMAILHOME"] = box.at("var")
        env["LOGDIR"] = box.at("log")
        env["PREFIX"] = prefix
        env["SERVICEDIR"] = serviceDirectory
        env["CONFSPLIT"] = "3"
        env["QUEUE_BASE"] = queueBase
        env["INDIMAIL_TEST_SANDBOX"] = box.path
        return env
    }

    @discardableResult
    func svctool(_ arguments: [String], extra: [String: String] = [:]) -> Outcome {
        run([Build.indimail, "svctool"] + arguments, environment: environment.merging(extra) { $1 })
    }

    func read(_ relative: String) -> String { readText(box.at(relative)) }

    /// The variables of a service as name → file contents.
    func variables(_ service: String) -> [String: String] {
        let dir = box.at("service/\(service)/variables")
        var out: [String: String] = [:]
        for name in (try? Path.entries(dir).get()) ?? [] { out[name] = readText(Path.join(dir, name)) }
        return out
    }
}
