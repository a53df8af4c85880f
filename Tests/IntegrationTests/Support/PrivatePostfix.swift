// A private postfix (Debian's package) for interop tests, the Swift twin of
// bench/postfix-instance.sh: its own config dir, spool and data dir inside a sandbox, SMTP on
// 127.0.0.1:PORT, no chroot, a maillog file; `postfix -c DIR stop` when the value goes away.
// Needs root (postfix start, the setgid postdrop behind sendmail -C).
import Core
import Glibc

final class PrivatePostfix {
    static let postfix = "/usr/sbin/postfix"
    static let sendmailPath = "/usr/sbin/sendmail"
    static let postconf = "/usr/sbin/postconf"

    /// postfix installed and we are root: the only way to run a private instance.
    static var available: Bool {
        getuid() == 0 && [postfix, sendmailPath, postconf].allSatisfy { (path: String) in access(path, X_OK) == 0 }
    }

    let box: Sandbox
    let directory: String
    let port: UInt16
    let address: String
    var configDirectory: String { Path.join(directory, "etc") }
    var maillogPath: String { Path.join(directory, "maillog") }
    private var running = false

    /// Writes the configuration (`settings` are extra main.cf lines, later ones win;
    /// `services` extra master.cf lines; `files` go to etc/ by name, for maps) and starts
    /// postfix. nil when it does not come up.
    init?(in box: Sandbox, hostname: String = "pf.test", address: String = "127.0.0.1", port fixedPort: UInt16? = nil,
          settings: [String], services: [String] = [], files: [String: String] = [:]) {
        self.box = box
        directory = box.directory("postfix")
        // Daemons and the virtual delivery agent (as nobody) need to reach the sandbox.
        chmod(box.path, 0o755)
        chmod(directory, 0o755)
        for sub in ["etc", "spool", "data", "vmail"] { box.directory("postfix/" + sub) }
        chown(Path.join(directory, "data"), PrivatePostfix.uid("postfix"), gid_t.max)
        chown(Path.join(directory, "vmail"), 65534, 65534)
        var candidate: UInt16 = fixedPort ?? 0
        for _ in 0..<5 where candidate == 0 { candidate = freePort() }
        port = candidate
        self.address = address
        guard port != 0 else { return nil }

        let etc = configDirectory
        box.write("postfix/etc/master.cf", PrivatePostfix.masterCF(address: address, port: port) + services.map { $0 + "\n" }.joined())
        for (name, text) in files { box.write("postfix/etc/" + name, text) }
        let main = [
            "compatibility_level = 3.6",
            "queue_directory = \(directory)/spool",
            "data_directory = \(directory)/data",
            "mail_owner = postfix",
            "setgid_group = postdrop",
            "myhostname = \(hostname)",
            "mydomain = \(hostname)",
            "myorigin = \(hostname)",
            "mydestination = localhost",
            "inet_interfaces = \(address == "127.0.0.1" ? "loopback-only" : "all")",
            "inet_protocols = ipv4",
            "alias_maps =",
            "alias_database =",
            "local_recipient_maps =",
            "biff = no",
            "mynetworks = 127.0.0.0/8",
            "smtpd_relay_restrictions = permit_mynetworks, reject",
            "maillog_file = \(directory)/maillog",
            "maillog_file_prefixes = \(directory)",
            "smtpd_tls_loglevel = 1",
            "smtp_tls_loglevel = 1",
            // Retry quickly: a test that needs a second attempt should not wait minutes.
            "minimal_backoff_time = 2s",
            "maximal_backoff_time = 4s",
            "queue_run_delay = 2s",
        ] + settings
        box.write("postfix/etc/main.cf", main.joined(separator: "\n") + "\n")

        // postdrop (setgid) only trusts config dirs the default main.cf lists.
        guard PrivatePostfix.listAlternate(etc, add: true) else { return nil }
        running = true
        let started = run([PrivatePostfix.postfix, "-c", etc, "start"], timeout: 60)
        guard started.exitCode == 0, let ip = IPAddress(address), eventually(within: 20, {
            guard case .success(let fd) = Socket.connect(to: .inet(ip, port: port, scope: 0), timeout: 1) else { return false }
            close(fd)
            return true
        }) else {
            FD.writeAll(2, Array("postfix did not start: \(started.out) \(started.err) \(maillog.suffix(2000))\n".utf8))
            return nil
        }
    }

    deinit {
        if running {
            // Bounded wait for the master to go (its pid file names it); SIGKILL after that.
            let pidFile = Path.join(directory, "spool/pid/master.pid")
            let text = String(decoding: contents(pidFile) ?? [], as: UTF8.self)
            _ = run([PrivatePostfix.postfix, "-c", configDirectory, "stop"], timeout: 30)
            if let pid = pid_t(text.filter { $0.isNumber }), pid > 0,
               !eventually(within: 10, { kill(pid, 0) != 0 }) {
                for child in childPIDs(of: pid) { kill(child, SIGKILL) }
                kill(pid, SIGKILL)
            }
        }
        _ = PrivatePostfix.listAlternate(configDirectory, add: false)
    }

    var maillog: String { String(decoding: contents(maillogPath) ?? [], as: UTF8.self) }

    /// Injects `message` with postfix's own sendmail, as `sender` to `recipients`.
    func sendmail(from sender: String, to recipients: [String], message: String) -> Outcome {
        run([PrivatePostfix.sendmailPath, "-C", configDirectory, "-f", sender, "-i", "--"] + recipients,
            stdin: Array(message.utf8), timeout: 20)
    }

    /// Files delivered to a virtual mailbox (Maildir `name/` under vmail/), new/ only.
    func maildir(_ name: String) -> [String] {
        let dir = Path.join(directory, "vmail/\(name)/new")
        return QueueTest.files(dir).map { String(decoding: contents(Path.join(dir, $0)) ?? [], as: UTF8.self) }
    }

    /// Adds or removes `dir` in alternate_config_directories of the system main.cf (a main.cf
    /// with only compatibility_level is made first when Debian left none).
    private static func listAlternate(_ dir: String, add: Bool) -> Bool {
        if access("/etc/postfix/main.cf", F_OK) != 0 {
            let fd = open("/etc/postfix/main.cf", O_WRONLY | O_CREAT | O_EXCL, 0o644)
            if fd >= 0 { FD.writeAll(fd, Array("compatibility_level = 3.6\n".utf8)); close(fd) }
        }
        let current = run([postconf, "-h", "alternate_config_directories"], timeout: 20)
        var entries = current.out.split(whereSeparator: { $0 == " " || $0 == "," || $0 == "\n" || $0 == "\t" }).map(String.init)
        let present = entries.contains(dir)
        if add == present { return true }
        if add { entries.append(dir) } else { entries.removeAll { $0 == dir } }
        let edited = run([postconf, "-e", "alternate_config_directories = " + entries.joined(separator: " ")], timeout: 20)
        return edited.exitCode == 0
    }

    private static func uid(_ name: String) -> uid_t {
        guard let entry = getpwnam(name) else { return uid_t.max }
        return entry.pointee.pw_uid
    }

    /// The services a relay needs, none chrooted, SMTP on the test port only.
    private static func masterCF(address: String, port: UInt16) -> String {
        let services = [
            "\(address):\(port) inet n - n - - smtpd",
            "pickup unix n - n 60 1 pickup",
            "cleanup unix n - n - 0 cleanup",
            "qmgr unix n - n 300 1 qmgr",
            "tlsmgr unix - - n 1000? 1 tlsmgr",
            "rewrite unix - - n - - trivial-rewrite",
            "bounce unix - - n - 0 bounce",
            "defer unix - - n - 0 bounce",
            "trace unix - - n - 0 bounce",
            "verify unix - - n - 1 verify",
            "flush unix n - n 1000? 0 flush",
            "proxymap unix - - n - - proxymap",
            "proxywrite unix - - n - 1 proxymap",
            "smtp unix - - n - - smtp",
            "relay unix - - n - - smtp",
            "showq unix n - n - - showq",
            "error unix - - n - - error",
            "retry unix - - n - - error",
            "discard unix - - n - - discard",
            "local unix - n n - - local",
            "virtual unix - n n - - virtual",
            "anvil unix - - n - 1 anvil",
            "scache unix - - n - 1 scache",
            "postlog unix-dgram n - n - 1 postlogd",
        ]
        return services.joined(separator: "\n") + "\n"
    }
}
