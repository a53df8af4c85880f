// The service kinds svctool creates: each turns the options into a ServiceBlueprint with
// the reference's directory name, run script and variables.
import Core
import Glibc

public struct ServiceFactory {
    public let options: SvctoolOptions
    public let settings: SvctoolSettings

    public init(options: SvctoolOptions, settings: SvctoolSettings) {
        self.options = options
        self.settings = settings
    }

    /// `NAME=value ... svctool --option ...`: a shell command line that makes this again.
    var commandLine: String {
        let assignments = settings.recordedEnvironment.map { "\($0.name)=" + shellQuote($0.value) }
        return (assignments + (["svctool"] + options.arguments).map(shellQuote)).joined(separator: " ")
    }

    func tag(_ natural: String) -> String { options.value("servicetag") ?? natural }

    func common(_ service: String, logName: String) -> [String: String] {
        [
            "SERVICE": service, "COMMANDLINE": commandLine, "PREFIX": settings.prefix,
            "SYSCONFDIR": settings.sysconfDirectory, "CONTROLDIR": settings.controlDirectory,
            "SERVICEDIR": settings.serviceDirectory, "LOGDIR": settings.logDirectory, "LOGNAME": logName,
            "LOGUSER": settings.accounts.qmaill, "USER": settings.accounts.qmaild,
        ]
    }

    func logRun(_ service: String, _ logName: String) -> String {
        ServiceTemplate.log.render(common(service, logName: logName))
    }

    func blueprint(_ name: String, logName: String, run: String?, variablesMode: mode_t = 0o550) -> ServiceBlueprint {
        var b = ServiceBlueprint(name: name, run: run, logRun: logRun(name, logName),
                                 logDirectory: Path.join(settings.logDirectory, logName),
                                 envdir: settings.globalVariables, options: commandLine,
                                 down: options.flag("down"), variablesMode: variablesMode)
        b.set("PATH", .value(settings.servicePath))
        if settings.controlDirectoryChosen { b.set("CONTROLDIR", .value(settings.controlDirectory)) } else { b.set("CONTROLDIR", .unset) }
        return b
    }

    /// QMAILQUEUE and the queue collection (or one queue with --no-multi), as the reference.
    func queueVariables(_ b: inout ServiceBlueprint, delivery: Bool = false) {
        let spam = options.value("spamfilter")
        if options.flag("no-multi") {
            b.set("QUEUEDIR", .value(Path.join(settings.queueBase, "queue\(settings.queueStart)")))
            if delivery {
                b.set("QMAILQUEUE", .unset)
            } else {
                b.set("QMAILQUEUE", .value(spam != nil ? settings.program("sbin", "qmail-spamfilter") : settings.program("sbin", "qmail-queue")))
            }
        } else {
            b.set("QUEUEDIR", .unset)
            b.set("QMAILQUEUE", .value(spam != nil && !delivery ? settings.program("sbin", "qmail-spamfilter") : settings.program("sbin", "qmail-multi")))
            b.set("QUEUE_BASE", .value(settings.queueBase))
            b.set("QUEUE_COUNT", .value(String(settings.queueCount)))
            b.set("QUEUE_START", .value(String(settings.queueStart)))
        }
        if !delivery {
            if let chosen = options.value("qmailqueue") { b.set("QMAILQUEUE", .value(chosen)) }
            dkimVerify(&b)
        }
        // --use-queued: injections go to the qmail-queued pool. Its workers do what
        // qmail-multi and qmail-queue would, so a plain QMAILQUEUE goes; a filter chain (or a
        // program the operator named) stays, and clients then keep running it.
        if options.flag("use-queued") {
            b.set("QUEUE_SOCKET", .value(queueSocket))
            if delivery || plainQueue { b.set("QMAILQUEUE", .unset) }
        }
        if options.flag("fsync") { b.set("USE_FSYNC", .value("1")) }
        if options.flag("fdatasync") { b.set("USE_FDATASYNC", .value("1")) }
        if options.flag("syncdir") { b.set("USE_SYNCDIR", .value("1")) }
        b.set("MIN_FREE", .value(options.value("min-free") ?? "52428800"))
    }

    /// The qmail-queued socket: --queue-socket, else QBASE/queued/socket.
    public var queueSocket: String {
        options.value("queue-socket") ?? Path.join(settings.queueBase, "queued/socket")
    }

    /// True when a listener's QMAILQUEUE would be qmail-multi or qmail-queue itself: no spam
    /// filter, no DKIM verification, no program chosen with --qmailqueue.
    var plainQueue: Bool {
        options.value("spamfilter") == nil && options.value("qmailqueue") == nil
            && (options.value("dkverify") ?? "none") == "none"
    }

    /// --dkverify: the listener queues through qmail-dkim, which verifies and then runs the
    /// queue (after the spam filter when there is one).
    func dkimVerify(_ b: inout ServiceBlueprint) {
        guard let mode = options.value("dkverify"), mode != "none" else { return }
        let dkim = settings.program("sbin", "qmail-dkim")
        let chain = options.value("spamfilter") != nil ? settings.program("sbin", "qmail-spamfilter") + " " + dkim : dkim
        b.set("QMAILQUEUE", .value(chain))
        b.set("DKIMVERIFY", mode == "dkimstrict" ? .value("FGHIKLMNOQRTUVWjp") : .empty)
        b.set("UNSIGNED_SUBJECT", mode == "dkimstrict" ? .unset : .empty)
        b.set("UNSIGNED_FROM", .unset)
    }

    func spamVariables(_ b: inout ServiceBlueprint) {
        if let spam = options.value("spamfilter") {
            b.set("SPAMFILTER", .value(spam))
            b.set("MAKE_SEEKABLE", .value("1"))
        } else {
            b.set("SPAMFILTER", .unset)
        }
        b.set("QHPSI", options.value("qhpsi").map { .value($0) } ?? .unset)
    }

    func listenerBasics(_ b: inout ServiceBlueprint, port: String) {
        b.set("LOCALIP", .value(options.value("localip") ?? "0"))
        b.set("PORT", .value(port))
        b.set("MAXDAEMONS", .value(options.value("maxdaemons") ?? "150"))
        b.set("MAXPERIP", .value(options.value("maxperip") ?? "10"))
        b.set("SOFT_MEM", .value(options.value("memory") ?? "52428800"))
    }

    /// Group list for tcpserver -g: the qmail group, plus indimail when that group exists.
    var listenerGroups: String {
        if case .success = Accounts.group("indimail"), settings.accounts.qmailGroup == "qmail" {
            return settings.accounts.qmailGroup + ",indimail"
        }
        return settings.accounts.qmailGroup
    }

    // MARK: kinds

    /// --smtp=PORT: qmail-smtpd.PORT. 465 (or --ssl) is SMTPS, 587 submission (AUTH required).
    public func smtp(port: String) -> ServiceBlueprint {
        let name = "qmail-smtpd." + tag(port)
        let logName = "smtpd." + tag(port)
        let smtps = options.flag("ssl") || (port == "465" && !options.flag("starttls"))
        let submission = port == "587" && !smtps
        let requireAuth = options.flag("forceauthsmtp") || submission
        let auth = requireAuth || options.flag("authsmtp")
        let kind: ServiceTemplate = smtps ? .smtps : submission ? .submission : .smtp
        var values = common(name, logName: logName)
        values["GROUPS"] = listenerGroups
        values["LOOKUP"] = options.value("rbl") != nil ? "-h" : "-H"
        values["SMTPDARGS"] = auth ? " $HOSTNAME $AUTHMODULES /bin/false" : ""
        values["SMTPD"] = options.value("qmailsmtpd") ?? settings.program("sbin", "qmail-smtpd")
        var b = blueprint(name, logName: logName, run: kind.render(values))
        listenerBasics(&b, port: port)
        b.set("ENVHEADERS", .empty)
        b.set("DISABLE_PLUGIN", .empty)
        b.set("SMTPS", .flag(smtps))
        b.set("FORCE_TLS", .flag(options.flag("forcetls")))
        let starttls = options.flag("starttls") || submission
        b.set("STARTTLS", .flag(starttls))
        if smtps || starttls || options.flag("forcetls") {
            b.set("CERTDIR", .value(options.value("certdir") ?? Path.join(settings.sysconfDirectory, "certs")))
        }
        queueVariables(&b)
        spamVariables(&b)
        b.set("QREGEX", .flag(options.flag("qregex")))
        b.set("VIRUSCHECK", options.value("viruscheck").map { .value($0) } ?? .unset)
        b.set("BODYCHECK", .unset)
        b.set("MASQUERADE", .flag(options.flag("masquerade")))
        b.set("CHECKRECIPIENT", options.flag("chkrecipient") ? .value("1") : .unset)
        // The reference writes CHECKRECIPIENT for --chksender (a known slip); ours names it right.
        b.set("CHECKSENDER", options.flag("chksender") ? .value("1") : .unset)
        b.set("ANTISPOOFING", .flag(options.flag("antispoof")))
        b.set("CUGMAIL", .flag(options.flag("cugmail")))
        b.set("NODNSCHECK", .flag(!options.flag("dnscheck")))
        b.set("ENFORCE_FQDN_HELO", .flag(options.flag("helofqdn")))
        b.set("BADHELOCHECK", .flag(options.flag("helocheck")))
        b.set("SECURE_AUTH", options.flag("secureauth") ? .value("1") : .unset)
        b.set("ENABLE_CRAM", options.flag("enablecram") ? .value("1") : .unset)
        if requireAuth {
            b.set("REQUIREAUTH", .empty); b.set("AUTH_ALL", .unset); b.set("CHECKRELAY", .unset)
        } else {
            b.set("REQUIREAUTH", .unset)
            b.set("AUTH_ALL", .flag(options.flag("authall")))
            b.set("CHECKRELAY", .flag(!options.flag("authall") && options.flag("chkrelay")))
        }
        b.set("UTF8", .flag(options.flag("utf8")))
        b.set("STRIP_DOMAIN", .value("1"))
        b.set("ALLOW_BARELF", options.flag("barelf") ? .value("1") : .unset)
        if auth {
            b.set("AUTHMODULES", .value(settings.program("sbin", "sys-checkpwd")))
        } else {
            b.set("AUTHMODULES", .unset)
            b.set("DISABLE_VRFY", .empty)
        }
        b.set("HIDE_HOST", options.flag("hidehost") ? .value("1") : .unset)
        if let rbl = options.value("rbl") {
            b.set("RBLCOMMAND", .value(settings.program("bin", "rblsmtpd") + " " + rbl))
        } else {
            b.set("RBLCOMMAND", .unset)
        }
        if let d = options.value("default-domain") { b.set("DEFAULT_DOMAIN", .value(d)) }
        if let d = options.value("databytes") { b.set("DATABYTES", .value(d)) }
        b.set("LOGFILTER", options.value("logfilter").map { .value($0) } ?? .unset)
        return b
    }

    /// --qmtp=PORT / --qmqp=PORT: qmail-qmtpd.PORT / qmail-qmqpd.PORT.
    public func qmtpOrQmqp(qmtp: Bool, port: String) -> ServiceBlueprint {
        let type = qmtp ? "qmtpd" : "qmqpd"
        let name = "qmail-\(type)." + tag(port)
        let logName = "\(type)." + tag(port)
        var values = common(name, logName: logName)
        values["GROUPS"] = settings.accounts.qmailGroup
        let template: ServiceTemplate = qmtp ? .qmtp : .qmqp
        var b = blueprint(name, logName: logName, run: template.render(values))
        listenerBasics(&b, port: port)
        queueVariables(&b)
        spamVariables(&b)
        b.set("HIDE_HOST", qmtp && options.flag("hidehost") ? .value("1") : .unset)
        if let d = options.value("databytes") { b.set("DATABYTES", .value(d)) }
        b.set("LOGFILTER", options.value("logfilter").map { .value($0) } ?? .unset)
        return b
    }

    /// --delivery=IDENT (and the send half of --smtp): qmail-send.IDENT running qscheduler.
    public func delivery(ident: String) -> ServiceBlueprint {
        let name = "qmail-send." + tag(ident)
        let logName = "deliver." + tag(ident)
        var values = common(name, logName: logName)
        let qtype = options.value("qtype") ?? "static"
        values["QTYPE"] = qtype == "static" ? "-s" : qtype == "dynamic" ? "-d" : "-cd"
        values["MSGQ"] = qtype == "static" ? "" : "-q $MSGQSIZE "
        values["ULIMIT"] = qtype == "static" ? "" : "# POSIX message queues: raise the hard limit where allowed.\nulimit -q unlimited 2>/dev/null\n"
        var b = blueprint(name, logName: logName, run: ServiceTemplate.qmailSend.render(values), variablesMode: 0o500)
        queueVariables(&b, delivery: true)
        b.set("MSGQSIZE", .value(options.value("msgqsize") ?? "8388608"))
        let tls = options.flag("ssl") || options.flag("starttls")
        if tls { b.set("CERTDIR", .value(options.value("certdir") ?? Path.join(settings.sysconfDirectory, "certs"))) }
        b.set("USE_SETGROUPS", options.flag("setgroups") ? .value("1") : .unset)
        b.set("UTF8", options.flag("utf8") ? .value("1") : .unset)
        b.set("ROUTES", options.value("routes").map { .value($0) } ?? .unset)
        b.set("DISABLE_CNAME_LOOKUP", options.flag("enable-cname-lookup") ? .unset : .value("1"))
        b.set("SETUSER_PRIVILEGES", .unset)
        b.set("SANITIZE_ENV", .unset)
        b.set("MAILCOUNT_LIMIT", options.value("deliverylimit-count").map { .value($0) } ?? .unset)
        b.set("MAILSIZE_LIMIT", options.value("deliverylimit-size").map { .value($0) } ?? .unset)
        b.set("DOMAIN_LIMITS", .unset)
        b.set("FAST_QUOTA", .unset)
        b.set("MAILDIRSIZE_MAX_SIZE", .value("8192"))
        b.set("MAILDIRSIZE_MAX_AGE", .value("43200"))
        b.set("OVERQUOTA_MAILSIZE", options.value("overquota_mailsize").map { .value($0) } ?? .unset)
        b.set("SOFT_MEM", .value(options.value("dmemory") ?? "83886080"))
        if options.flag("persistdb") {
            b.set("ROUTE_NULL_USER", .value("postmaster")); b.set("AUTHSELF", .empty)
        } else {
            b.set("ROUTE_NULL_USER", .unset); b.set("AUTHSELF", .unset)
        }
        b.set("AUTH_SMTP", options.value("remote-authsmtp").map { .value($0) } ?? .unset)
        b.set("QMAILLOCAL", options.flag("localfilter") ? .value(settings.program("sbin", "spawn-filter")) : .unset)
        b.set("QMAILREMOTE", options.flag("remotefilter") ? .value(settings.program("sbin", "spawn-filter")) : .unset)
        if let d = options.value("default-domain") { b.set("DEFAULT_DOMAIN", .value(d)) }
        b.set("LOGLOCK", .empty)
        if options.value("dksign") == "dkim", let key = options.value("private_key") {
            b.set("DKIMSIGN", .value(key))
            b.set("UNSIGNED_SUBJECT", .unset)
            b.set("UNSIGNED_FROM", .unset)
        }
        b.set("HIDE_HOST", options.flag("hidehost") ? .value("1") : .unset)
        return b
    }

    /// --slowq: slowq-send on the rate-limited queue QBASE/slowq, with the delivery variables.
    public func slowq() -> ServiceBlueprint {
        var b = delivery(ident: "slowq")
        let name = "slowq-send"
        b.name = name
        b.logRun = logRun(name, "slowq")
        b.logDirectory = Path.join(settings.logDirectory, "slowq")
        b.run = ServiceTemplate.slowq.render(common(name, logName: "slowq"))
        for v in ["QUEUE_BASE", "QUEUE_COUNT", "QUEUE_START", "MSGQSIZE"] { b.variables.removeAll { $0.name == v } }
        b.set("QMAILQUEUE", .unset)
        b.set("QUEUEDIR", .value(Path.join(settings.queueBase, "slowq")))
        b.set("RATELIMIT_DIR", .value(Path.join(settings.queueBase, "slowq/ratelimit")))
        return b
    }

    /// --queued: qmail-queued, the resident qmail-queue pool, on QUEUE_SOCKET. Started as
    /// root it binds the socket and runs as qmailq; the socket's directory belongs to that
    /// account so the pool can remove the socket when it stops.
    public func queued() -> ServiceBlueprint {
        let name = "qmail-queued"
        let values = common(name, logName: "queued")
        var b = blueprint(name, logName: "queued", run: ServiceTemplate.queued.render(values), variablesMode: 0o500)
        b.set("QUEUE_SOCKET", .value(queueSocket))
        b.set("QUEUED_WORKERS", .value(options.value("workers") ?? "10"))
        b.set("QUEUED_REQUESTS", .value("10000"))
        b.set("QUEUED_TIMEOUT", .value("60"))
        b.set("QUEUED_MODE", .value("666"))
        b.set("SOFT_MEM", .value(options.value("memory") ?? "52428800"))
        return b
    }

    /// --svscanlog: .svscan/ with svscan's own logger, its variables and the shutdown script.
    public func svscanlog() -> ServiceBlueprint {
        let values = common(".svscan", logName: "svscan")
        var b = ServiceBlueprint(name: ".svscan", run: nil, logRun: logRun(".svscan", "svscan"),
                                 logDirectory: Path.join(settings.logDirectory, "svscan"),
                                 envdir: settings.globalVariables, options: commandLine,
                                 extraFiles: [("shutdown", ServiceTemplate.svscanShutdown.render(values), 0o755)],
                                 variablesMode: 0o500)
        b.set("INITCMD", options.value("initcmd").map { .value($0) } ?? .unset)
        b.set("PATH", .value(settings.servicePath))
        b.set("SCANINTERVAL", .value(options.value("scanint") ?? "300"))
        b.set("SCANLOG", .empty)
        b.set("UNSHARE", .flag(options.flag("unshare")))
        b.set("AUTOSCAN", .value("1"))
        return b
    }

    /// --queueParam=NAME: an envdir CONTROLDIR/NAME (e.g. defaultqueue) for the injectors.
    public func queueParam() -> [(name: String, value: VariableValue)] {
        var b = ServiceBlueprint(name: "", run: nil, logRun: "", logDirectory: "", options: commandLine)
        queueVariables(&b)
        spamVariables(&b)
        b.set("QREGEX", .flag(options.flag("qregex")))
        b.set("VIRUSCHECK", options.value("viruscheck").map { .value($0) } ?? .unset)
        b.set("HIDE_HOST", options.flag("hidehost") ? .value("1") : .unset)
        b.set("LOGFILTER", options.value("logfilter").map { .value($0) } ?? .unset)
        return b.variables
    }
}
