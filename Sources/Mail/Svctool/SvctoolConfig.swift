// --config=...: the system accounts, the default control files, a self-signed certificate,
// and svscan's start at boot.
import Core
import Glibc

struct SvctoolConfig {
    let tool: Svctool
    var diag: Diagnostics { tool.diag }
    var settings: SvctoolSettings { tool.settings }
    var options: SvctoolOptions { tool.options }

    func run(_ what: String) -> Int32 {
        switch what {
        case "users": return users()
        case "qmail": return qmail()
        case "cert": return cert()
        case "add-boot": return addBoot()
        case "rm-boot": return removeBoot()
        case "recontrol": return recontrol()
        case "add-alt": return alternatives(add: true)
        case "remove-alt": return alternatives(add: false)
        default:
            return diag.fatal(ExitCode.permanent, "unsupported --config=\(what) (users, qmail, cert, add-boot, rm-boot, recontrol, add-alt, remove-alt)")
        }
    }

    // MARK: users

    /// The groups and users of indimail-mta (§2.1): (name, primary group, extra groups, home).
    var accountPlan: (groups: [String], users: [(String, String, [String], String)]) {
        let a = settings.accounts
        let home = SuitePaths(environment: tool.context.environment).qmailHome
        let groups = [a.qmailGroup, a.nofilesGroup, "qscand", "qcerts", "indimail"]
        let users: [(String, String, [String], String)] = [
            (a.alias, a.nofilesGroup, [], Path.join(home, "alias")),
            (a.qmaild, a.nofilesGroup, ["qcerts"], home),
            (a.qmaill, a.nofilesGroup, [], home),
            (a.qmailp, a.nofilesGroup, [], home),
            (a.qmailq, a.qmailGroup, [], home),
            (a.qmailr, a.qmailGroup, ["qcerts"], home),
            (a.qmails, a.qmailGroup, ["qcerts"], home),
            ("qscand", "qscand", [a.qmailGroup], home),
            (a.indimail, "indimail", ["qcerts"], home),
        ]
        return (groups, users)
    }

    /// Idempotent: existing accounts are left as they are. Needs root; otherwise says so.
    func users() -> Int32 {
        guard settings.isRoot else {
            FD.writeAll(2, Array("svctool: warning: --config=users needs root; no accounts created\n".utf8))
            return 0
        }
        let plan = accountPlan
        var status: Int32 = 0
        for group in plan.groups {
            if case .success = Accounts.group(group) { continue }
            let code = tool.runProgram(["groupadd", "-r", group])
            if code != 0 { status = diag.fatal(ExitCode.temporary, "groupadd \(group) failed with status \(code)") } else {
                tool.say("created group \(group)")
            }
        }
        for (user, group, extra, home) in plan.users {
            if case .success = Accounts.user(user) { continue }
            var argv = ["useradd", "-r", "-M", "-g", group, "-d", home, "-s", "/sbin/nologin"]
            let present = extra.filter { if case .success = Accounts.group($0) { return true } else { return false } }
            if !present.isEmpty { argv += ["-G", present.joined(separator: ",")] }
            let code = tool.runProgram(argv + [user])
            if code != 0 { status = diag.fatal(ExitCode.temporary, "useradd \(user) failed with status \(code)") } else {
                tool.say("created user \(user)")
            }
        }
        return status
    }

    // MARK: control files

    func hostname() -> String {
        if let h = options.value("hostname") { return h }
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty ? "localhost" : name
    }

    /// Writes a control file unless it exists (or --force).
    func control(_ name: String, _ lines: [String], in dir: String? = nil) -> Int32 {
        let path = Path.join(dir ?? settings.controlDirectory, name)
        if Path.exists(path) && !options.flag("force") { return 0 }
        if case .failure(let e) = Path.makeDirectories(Path.dirname(path)) { return diag.fatal(e) }
        let text = lines.map { $0 + "\n" }.joined()
        if case .failure(let e) = ServiceWriter.writeFile(path, text, mode: 0o644) { return diag.fatal(e) }
        return 0
    }

    /// The reference's defaults derived from the host name; existing files are kept.
    func qmail() -> Int32 {
        let host = hostname()
        let parts = host.split(separator: ".")
        let domain = options.value("default-domain") ?? (parts.count > 1 ? parts.dropFirst().joined(separator: ".") : host)
        let files: [(String, [String])] = [
            ("me", [host]), ("defaulthost", [host]), ("defaultdomain", [domain]), ("plusdomain", [domain]),
            ("envnoathost", [host]), ("localiphost", [host]),
            ("locals", [host, "localhost"]), ("rcpthosts", [host, "localhost"]),
            ("defaultdelivery", ["./Maildir/"]), ("servicedir.conf", [settings.serviceDirectory]),
            ("nodnscheck", ["1"]), ("smtpgreeting", ["\(host) (NO UCE) ESMTP IndiMail"]),
            ("databytes", ["0"]), ("timeoutsmtpd", ["300"]), ("timeoutremote", ["300"]),
            ("chkrcptdomains", [domain]), ("chksenderdomains", [domain]),
        ]
        for (name, lines) in files {
            if case let code = control(name, lines), code != 0 { return code }
        }
        let globals = settings.globalVariables
        if case .failure(let e) = Path.makeDirectories(globals) { return diag.fatal(e) }
        _ = control("DEFAULT_DOMAIN", [domain], in: globals)
        _ = control("QMAILDEFAULTHOST", [host], in: globals)
        let assign = SuitePaths(environment: tool.context.environment).assignDirectory
        _ = control("assign", ["."], in: assign)
        // tcpserver access rules: loopback may relay; everyone else may connect.
        let rules: [(String, [String])] = [
            ("tcp.smtp", ["127.:allow,RELAYCLIENT=\"\"", "::1:allow,RELAYCLIENT=\"\"", ":allow"]),
            ("tcp.qmtp", ["127.:allow,RELAYCLIENT=\"\"", "::1:allow,RELAYCLIENT=\"\"", ":allow"]),
            ("tcp.qmqp", ["127.:allow", "::1:allow", ":deny"]),
        ]
        let tcp = Path.join(settings.sysconfDirectory, "tcp")
        for (name, lines) in rules {
            if case let code = control(name, lines, in: tcp), code != 0 { return code }
            let cdb = Path.join(tcp, name + ".cdb")
            if Path.exists(cdb) && !options.flag("force") { continue }
            let code = tool.runSelf(["tcprules", cdb, cdb + ".tmp"], stdin: Path.join(tcp, name), quiet: true)
            if code != 0 { return diag.fatal(ExitCode.temporary, "tcprules \(cdb) failed with status \(code)") }
        }
        tool.say("control files in \(settings.controlDirectory) for \(host)")
        return 0
    }

    /// --config=recontrol: the control files follow a new host name or domain (a container
    /// started under another name): the host-named files get the new host, lines that named
    /// the old host in locals, rcpthosts, smtpgreeting and nodnscheck are rewritten.
    func recontrol() -> Int32 {
        let host = hostname()
        let parts = host.split(separator: ".")
        let domain = options.value("default-domain") ?? (parts.count > 1 ? parts.dropFirst().joined(separator: ".") : host)
        let control = ControlFiles(directory: settings.controlDirectory)
        let old = (try? control.value("me").get()) ?? nil
        func write(_ name: String, _ text: String, in dir: String? = nil) -> Int32 {
            let path = Path.join(dir ?? settings.controlDirectory, name)
            if case .success(let now) = FD.readFile(path), now == Array(text.utf8) { return 0 }
            if case .failure(let e) = Path.makeDirectories(Path.dirname(path)) { return diag.fatal(e) }
            if case .failure(let e) = ServiceWriter.writeFile(path, text, mode: 0o644) { return diag.fatal(e) }
            tool.say("updated \(path)")
            return 0
        }
        for name in ["me", "defaulthost", "envnoathost", "localiphost"] {
            if case let code = write(name, host + "\n"), code != 0 { return code }
        }
        for name in ["defaultdomain", "plusdomain"] {
            if case let code = write(name, domain + "\n"), code != 0 { return code }
        }
        for name in ["locals", "rcpthosts", "smtpgreeting", "nodnscheck"] {
            guard case .success(let bytes) = FD.readFile(control.path(name)) else { continue }
            var lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            if lines.last == "" { lines.removeLast() }
            if let old, old != host {
                lines = lines.map { line in
                    for prefix in [old, "@" + old] where line.hasPrefix(prefix) {
                        let rest = line.dropFirst(prefix.count)
                        if rest.isEmpty || rest.first == " " { return (prefix.hasPrefix("@") ? "@" : "") + host + rest }
                    }
                    return line
                }
            }
            if (name == "locals" || name == "rcpthosts") && !lines.contains(host) { lines.insert(host, at: 0) }
            if case let code = write(name, lines.map { $0 + "\n" }.joined()), code != 0 { return code }
        }
        let globals = settings.globalVariables
        if case let code = write("DEFAULT_DOMAIN", domain + "\n", in: globals), code != 0 { return code }
        return write("QMAILDEFAULTHOST", host + "\n", in: globals)
    }

    // MARK: certificate

    /// A self-signed server certificate (key and certificate in one PEM, as the reference's
    /// servercert.pem) made by the openssl command.
    func cert() -> Int32 {
        let dir = options.value("certdir") ?? Path.join(settings.sysconfDirectory, "certs")
        let pem = Path.join(dir, "servercert.pem")
        if Path.exists(pem) && !options.flag("force") && !options.flag("update-certs") {
            tool.say("\(pem) exists (use --force to replace it)")
            return 0
        }
        if case .failure(let e) = Path.makeDirectories(dir) { return diag.fatal(e) }
        let cn = options.value("common_name") ?? hostname()
        let days = options.value("validity_days") ?? "366"
        var subject = "/CN=\(cn)"
        if let pm = options.value("postmaster") { subject += "/emailAddress=\(pm)" }
        let key = Path.join(dir, ".servercert.key.\(getpid())"), crt = Path.join(dir, ".servercert.crt.\(getpid())")
        defer { unlink(key); unlink(crt) }
        let code = tool.runProgram(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
                                    "-keyout", key, "-out", crt, "-days", days, "-subj", subject], quiet: true)
        guard code == 0, case .success(let k) = FD.readFile(key), case .success(let c) = FD.readFile(crt) else {
            return diag.fatal(ExitCode.temporary, "openssl req failed with status \(code)")
        }
        if case .failure(let e) = ServiceWriter.writeFile(pem, k + c, mode: 0o640) { return diag.fatal(e) }
        if settings.isRoot, case .success(let g) = Accounts.group("qcerts") { _ = chown(pem, 0, g) }
        let client = Path.join(dir, "clientcert.pem")
        if !Path.exists(client) { symlink("servercert.pem", client) }
        tool.say("created \(pem) for CN=\(cn), valid \(days) days")
        return 0
    }

    // MARK: alternatives

    /// --config=add-alt / remove-alt: register the suite's sendmail (with mailq, rmail,
    /// newaliases and /usr/lib/sendmail as followers) as the system MTA with
    /// update-alternatives, or withdraw it. `--altroot` (the program's --root) lets the
    /// whole registration happen inside another tree.
    func alternatives(add: Bool) -> Int32 {
        let candidates: [String] = ["/usr/bin/update-alternatives", "/usr/sbin/update-alternatives", "/usr/sbin/alternatives"]
        let program = candidates.first { access($0, X_OK) == 0 }
        guard let program else {
            return diag.fatal(ExitCode.temporary, "update-alternatives not found: link /usr/sbin/sendmail to \(settings.program("bin", "sendmail")) by hand")
        }
        let sendmail = settings.program("bin", "sendmail")
        var argv = [program]
        if let root = options.value("altroot") { argv += ["--root", root] }
        func inTree(_ path: String) -> String { Path.join(options.value("altroot") ?? "/", String(path.dropFirst())) }
        if add {
            guard Path.exists(inTree(sendmail)) else {
                return diag.fatal(ExitCode.temporary, "\(sendmail) is not installed")
            }
            argv += ["--install", "/usr/sbin/sendmail", "mta", sendmail, "120"]
            let followers: [(String, String, String)] = [
                ("/usr/bin/mailq", "mta-mailq", settings.program("bin", "qmail-qread")),
                ("/usr/bin/rmail", "mta-rmail", settings.program("bin", "irmail")),
                ("/usr/bin/newaliases", "mta-newaliases", settings.program("bin", "inewaliases")),
                ("/usr/lib/sendmail", "mta-sendmail", sendmail),
            ]
            for (link, name, target) in followers where Path.exists(inTree(target)) {
                argv += ["--slave", link, name, target]
            }
        } else {
            argv += ["--remove", "mta", sendmail]
        }
        let code = tool.runProgram(argv, quiet: options.flag("silent"))
        guard code == 0 else { return diag.fatal(ExitCode.temporary, "update-alternatives failed with status \(code)") }
        return 0
    }

    // MARK: boot

    var unitDirectory: String {
        options.value("unitdir") ?? tool.context.environment.nonEmpty("SYSTEMD_UNITDIR") ?? "/etc/systemd/system"
    }

    /// The installed service-templates/svscan.service with its prefix and scan directory
    /// filled in, or the built-in unit when none is installed.
    var unitText: String {
        let installed = Path.join(settings.prefix, "share/indimail/service-templates/svscan.service")
        if case .success(let bytes) = FD.readFile(installed) {
            let text = String(decoding: bytes, as: UTF8.self)
            return ServiceTemplate.substitute(text, ["prefix": settings.prefix])
                .split(separator: "\n", omittingEmptySubsequences: false)
                .map { line in
                    // The scan directory appears as the operand of svscan and envdir.
                    guard line.hasPrefix("ExecStart=") || line.hasPrefix("# ExecStart=") || line.hasPrefix("Description=") else {
                        return String(line)
                    }
                    return String(line).replacingAll("/service", with: settings.serviceDirectory)
                }
                .joined(separator: "\n")
        }
        return builtInUnit
    }

    var builtInUnit: String {
        let svscan = settings.program("sbin", "svscan")
        return """
            # svscan as a systemd service, written by svctool --config=add-boot.
            # Type=notify: svscan says READY=1 after its first scan; KillMode=mixed lets it stop
            # the services in order before anything else gets a signal.
            [Unit]
            Description=svscan: supervise the services under \(settings.serviceDirectory)
            Documentation=man:svscan(8) man:svctool(8)
            After=local-fs.target network.target

            [Service]
            Type=notify
            NotifyAccess=main
            ExecStart=\(svscan) \(settings.serviceDirectory)
            ExecReload=/bin/kill -HUP $MAINPID
            KillMode=mixed
            KillSignal=SIGTERM
            TimeoutStopSec=30
            Restart=on-failure
            RestartSec=2
            LimitNOFILE=65536

            [Install]
            WantedBy=multi-user.target

            """
    }

    /// Only the real unit directory is announced to systemd; a chosen one is just written.
    var talksToSystemd: Bool {
        options.value("unitdir") == nil && tool.context.environment.nonEmpty("SYSTEMD_UNITDIR") == nil
            && settings.isRoot && Path.isDirectory("/run/systemd/system")
    }

    func addBoot() -> Int32 {
        let dir = unitDirectory
        if case .failure(let e) = Path.makeDirectories(dir) { return diag.fatal(e) }
        let unit = Path.join(dir, "svscan.service")
        if case .failure(let e) = ServiceWriter.writeFile(unit, unitText, mode: 0o644) { return diag.fatal(e) }
        if talksToSystemd {
            _ = tool.runProgram(["systemctl", "daemon-reload"])
            _ = tool.runProgram(["systemctl", "enable", "svscan.service"])
        }
        tool.say("installed \(unit)")
        return 0
    }

    func removeBoot() -> Int32 {
        let unit = Path.join(unitDirectory, "svscan.service")
        guard Path.exists(unit) else { tool.say("\(unit) is not installed"); return 0 }
        if talksToSystemd { _ = tool.runProgram(["systemctl", "disable", "svscan.service"]) }
        if unlink(unit) != 0 { return diag.fatal(SystemError("unable to remove", unit)) }
        if talksToSystemd { _ = tool.runProgram(["systemctl", "daemon-reload"]) }
        tool.say("removed \(unit)")
        return 0
    }
}

extension String {
    /// Every occurrence of `target` replaced (no Foundation).
    func replacingAll(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var out = ""
        var rest = Substring(self)
        while let i = rest.firstRange(of: target) {
            out += rest[..<i.lowerBound] + replacement
            rest = rest[i.upperBound...]
        }
        return out + rest
    }
}
