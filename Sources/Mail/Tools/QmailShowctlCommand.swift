// qmail-showctl: explains the configuration: paths, queues, concurrency limits and every
// control file with what its value means.
import Core
import Glibc

public struct QmailShowctlCommand: Command {
    public static let name = "qmail-showctl"
    public static let installDirectory = InstallDirectory.bin
    public static let summary = "describe the mail system's configuration"

    enum Kind {
        /// A number; the default text when missing.
        case integer(default: String, pre: String, post: String)
        /// A single value; `me` stands in when missing and `useMe` is set.
        case value(useMe: Bool, default: String, pre: String)
        /// One entry per line.
        case list(missing: String, pre: String, post: String)
    }

    /// The control files explained, in the reference's order and wording style.
    static let table: [(String, Kind)] = [
        ("me", .value(useMe: false, default: "undefined! Uh-oh", pre: "My name is ")),
        ("rcpthosts", .list(missing: "SMTP clients may send messages to any recipient.", pre: "SMTP clients may send messages to recipients at ", post: ".")),
        ("morercpthosts", .list(missing: "No effect", pre: "SMTP clients may send messages to recipients at ", post: ".")),
        ("locals", .list(missing: "Messages for me are delivered locally.", pre: "Messages for ", post: " are delivered locally.")),
        ("defaultdomain", .value(useMe: true, default: "defaultdomain", pre: "Default domain name is ")),
        ("defaulthost", .value(useMe: true, default: "defaulthost", pre: "Default host name is ")),
        ("defaultdelivery", .value(useMe: false, default: "undefined! Uh-oh", pre: "Default Delivery is: ")),
        ("smtpgreeting", .value(useMe: true, default: "smtpgreeting", pre: "SMTP greeting: 220 ")),
        ("smtproutes", .list(missing: "No artificial SMTP routes.", pre: "SMTP route: ", post: "")),
        ("remote_auth", .list(missing: "No users for remote authenticated SMTP", pre: "Remote SMTP Auth Users: ", post: "")),
        ("signaturedomains", .list(missing: "No DKIM signature domains.", pre: "DKIM signature domain(s): ", post: "")),
        ("virtualdomains", .list(missing: "No virtual domains.", pre: "Virtual domain: ", post: "")),
        ("blackholedsender", .list(missing: "Any SMTP connection is allowed.", pre: "", post: " is immediately dropped for MAIL FROM.")),
        ("blackholedpatterns", .list(missing: "Any SMTP connection is allowed.", pre: "", post: " is immediately dropped for MAIL FROM. (Not if line starts with !).")),
        ("blackholedrcpt", .list(missing: "Any SMTP connection is allowed.", pre: "", post: " is immediately dropped for RCPT TO.")),
        ("blackholedrcptpatterns", .list(missing: "Any SMTP connection is allowed.", pre: "", post: " is immediately dropped for RCPT TO. (Not if line starts with !).")),
        ("badhelo", .list(missing: "Any HELO/EHLO greeting is allowed.", pre: "", post: " not accepted in HELO/EHLO.")),
        ("badhost", .list(missing: "Any external remote hosts are allowed.", pre: "", post: " pattern will be rejected for external host.")),
        ("badip", .list(missing: "Any external IP are allowed.", pre: "", post: " pattern will be rejected for external IP.")),
        ("badmailfrom", .list(missing: "Any MAIL FROM is allowed.", pre: "", post: " not accepted in MAIL FROM.")),
        ("badmailpatterns", .list(missing: "Any MAIL FROM is allowed.", pre: "", post: " not accepted in MAIL FROM (Not if line starts with !).")),
        ("badrcptto", .list(missing: "Any RCPT TO is allowed.", pre: "", post: " not accepted in RCPT TO.")),
        ("badrcptpatterns", .list(missing: "Any RCPT TO is allowed.", pre: "", post: " not accepted in RCPT TO (Not if line starts with !).")),
        ("badext", .list(missing: "All attachments are allowed.", pre: "", post: " not accepted in attachments.")),
        ("badextpatterns", .list(missing: "All attachments are allowed.", pre: "", post: " not accepted in attachments. (Not if line starts with !).")),
        ("spamignore", .list(missing: "Any MAIL FROM exceeding spam count will be blocked by chowkidar", pre: "", post: " will not be treated as spammers.")),
        ("spamignorepatterns", .list(missing: "Any MAIL FROM exceeding spam count will be blocked by chowkidar", pre: "", post: " will not be treated as spammers.")),
        ("spamredirect", .list(missing: "No spam redirection", pre: "", post: " spam redirection.")),
        ("bouncemessage", .list(missing: "No bouncemessage defined", pre: "", post: "")),
        ("doublebouncemessage", .list(missing: "No doublebouncemessage defined", pre: "", post: "")),
        ("bouncemaxbytes", .list(missing: "No bouncemaxbytes defined.", pre: "Actual Bouncemaxbytes: ", post: "")),
        ("dnsbllist", .list(missing: "No dnsbl list configured.", pre: "List at ", post: " configured for dnsbl check.")),
        ("bindroutes", .list(missing: "No binding routes.", pre: "Binding route: ", post: "")),
        ("domainbindings", .list(missing: "No sender domain based local ip bindings.", pre: "Sender domain local IP binding: ", post: "")),
        ("percenthack", .list(missing: "The percent hack is not allowed.", pre: "The percent hack is allowed for user%host@", post: ".")),
        ("qmqpservers", .list(missing: "No QMQP servers.", pre: "QMQP server: ", post: ".")),
        ("globalspamredirect", .value(useMe: false, default: "none", pre: "spam redirected to ")),
        ("bouncefrom", .value(useMe: false, default: "MAILER-DAEMON", pre: "Bounce user name is ")),
        ("bouncehost", .value(useMe: true, default: "bouncehost", pre: "Bounce host name is ")),
        ("bouncesubject", .value(useMe: false, default: "\"failure notice\"", pre: "Bounce Subject is ")),
        ("doublebouncesubject", .value(useMe: false, default: "\"failure notice\"", pre: "Double Bounce Subject is ")),
        ("doublebouncehost", .value(useMe: true, default: "doublebouncehost", pre: "2B recipient host: ")),
        ("doublebounceto", .value(useMe: false, default: "postmaster", pre: "2B recipient user: ")),
        ("envnoathost", .value(useMe: true, default: "envnoathost", pre: "Presumed domain name is ")),
        ("helohost", .value(useMe: true, default: "helohost", pre: "SMTP client HELO host name is ")),
        ("idhost", .value(useMe: true, default: "idhost", pre: "Message-ID host name is ")),
        ("localiphost", .value(useMe: true, default: "localiphost", pre: "Hostname for local ip addresses ")),
        ("outgoingip", .value(useMe: false, default: "0.0.0.0", pre: "Outgoingip IP address is ")),
        ("plusdomain", .value(useMe: true, default: "plusdomain", pre: "Plus domain name is ")),
        ("maxhops", .integer(default: "100", pre: "MAX Hops is ", post: " hops")),
        ("extraqueue", .list(missing: "No extra recipient.", pre: "Extra recipient for queued message: '", post: "'.")),
        ("domainqueue", .list(missing: "No Domain Queues defined.", pre: "Domain Queues: ", post: "")),
        ("queuelifetime", .integer(default: "604800", pre: "Message lifetime in the queue is ", post: " seconds")),
        ("maxdeliveredto", .integer(default: "0", pre: "Maximum Delivered-To lines: ", post: "")),
        ("bouncelifetime", .integer(default: "604800", pre: "Bounce message lifetime in the queue is ", post: " seconds (or max of queuelifetime)")),
        ("holdremote", .integer(default: "0", pre: "Hold Remote is ", post: "")),
        ("holdlocal", .integer(default: "0", pre: "Hold Local is ", post: "")),
        ("originipfield", .integer(default: "0", pre: "X-Originating-IP header is set to ", post: "")),
        ("qmtproutes", .list(missing: "No artificial QMTP routes.", pre: "QMTP route: ", post: "")),
        ("databytes", .integer(default: "0", pre: "SMTP DATA limit is ", post: " bytes")),
        ("maxcmdlen", .integer(default: "0", pre: "Max SMTP Command Length is ", post: "")),
        ("timeoutconnect", .integer(default: "60", pre: "SMTP client connection timeout is ", post: " seconds")),
        ("timeoutremote", .integer(default: "1200", pre: "SMTP client data timeout is ", post: " seconds")),
        ("timeoutsmtpd", .integer(default: "1200", pre: "SMTP server data timeout is ", post: " seconds")),
        ("timeoutread", .integer(default: "4", pre: "InServer Read data timeout is ", post: " seconds")),
        ("timeoutwrite", .integer(default: "4", pre: "InServer Write data timeout is ", post: " seconds")),
        ("etrnhosts", .list(missing: "No ETRN/ATRN domains.", pre: "ETRN/ATRN domain(s): ", post: "")),
        ("chkrcptdomains", .list(missing: "All Recipient Domains will be checked for User Status", pre: "Recipient Domains checked for User Status: ", post: "")),
        ("recipients", .list(missing: "No recipients extension defined", pre: "recipients extension rules: ", post: "")),
        ("authdomains", .list(missing: "Auth not reqd for mails to local domains ", pre: "SMTP/IMAP/POP3 auth required for: ", post: "")),
        ("relayclients", .list(missing: "No Relayclients defined.", pre: "Allowed Relayclients: ", post: "")),
        ("relaydomains", .list(missing: "No Relaydomains defined.", pre: "Allowed Relaydomains: ", post: "")),
        ("relaymailfrom", .list(missing: "No Relaymailfrom defined.", pre: "Allowed <Mail from: Relayaddresses>: ", post: "")),
        ("tarpitcount", .list(missing: "No Tarpitcount defined.", pre: "Actual Tarpitcount: ", post: "")),
        ("maxrecipients", .list(missing: "No limit on number of Recipients defined.", pre: "Actual Maxrecipients: ", post: "")),
        ("tarpitdelay", .list(missing: "No Tarpitdelay defined.", pre: "Actual Tarpitdelay: ", post: "")),
        ("envheaders", .list(missing: "No envheaders defined.", pre: "header: ", post: "")),
        ("logheaders", .list(missing: "No logheaders defined.", pre: "header: ", post: "")),
        ("signatures", .list(missing: "No virus signatures defined.", pre: "virus signatures: ", post: "")),
        ("bodycheck", .list(missing: "No Content-filters.", pre: "Content-filters: ", post: "")),
        ("from.envrules", .list(missing: "No Sender Envrules defined.", pre: "Sender Envrules: ", post: "")),
        ("rcpt.envrules", .list(missing: "No Recipient Envrules defined.", pre: "Recipient Envrules: ", post: "")),
        ("bounce.envrules", .list(missing: "No Bounce Envrules defined.", pre: "Bounce Envrules: ", post: "")),
        ("nodnscheck", .list(missing: "Any MAIL FROM is checked for existing Domains.", pre: "", post: " excluded for DNS checks in MAIL FROM.")),
    ]

    /// Files the explanation knows besides the table (shown by -e as not unknown).
    static let otherKnown: Set<String> = [
        "concurrencylocal", "concurrencyremote", "queue_base", "qbase", "servicedir.conf", "global_vars",
        "defaultqueue", "timeoutread", "timeoutwrite", "greetdelay", "spfbehavior", "conf-fsync", "conf-fdatasync",
        "conf-syncdir", "todointerval", "morercpthosts.cdb", "signatures", "bodycheck", "badext", "badextpatterns",
        "authdomains", "accesslist", "hostaccess", "notipme", "moreipme", "helohostbyip", "tlsclientmethod",
        "tlsservermethod", "servercert.pem", "clientcert.pem", "clientca.pem", "clientcrl.pem", "dh1024.pem",
        "dh512.pem", "rsa512.pem", "tlsclients", "bounce.envrules", "auth.envrules", "fromd.envrules",
        "libindimail", "ratelimit", "cache", "filters.d", "domainkeys", "remote_auth.cdb", "moresmtproutes.cdb",
        "users", "srs_domain", "srs_secrets", "relaymailfrom", "goodrcptto", "goodrcptpatterns",
        "blackholedpatterns", "blackholedrcptpatterns", "badhost", "badip", "spamignore", "spamignorepatterns",
        "msgqueuelen", "msgqueuesize", "mailarchive", "quarantine", "removeheaders", "bindroutes",
        "domainbindings", "signaturedomains", "nosignaturedomains",
    ]

    static func safe(_ bytes: some Sequence<UInt8>) -> String {
        String(decoding: bytes.map { $0 >= 32 && $0 <= 126 ? $0 : UInt8(ascii: "?") }, as: UTF8.self)
    }

    static func padded(_ name: String) -> String {
        name.count >= 22 ? name : name + String(repeating: " ", count: 22 - name.count)
    }

    /// The explanation of one control file.
    static func explain(_ name: String, _ kind: Kind, control: ControlFiles, me: String?) -> Result<String, ControlError> {
        var s = padded(name) + ": "
        switch kind {
        case .integer(let def, let pre, let post):
            switch control.value(name) {
            case .failure(let e): return .failure(e)
            case .success(nil): s += "\(pre)\(def)\(post) (Default)\n\n"
            case .success(let text?):
                let n = max(0, QueueLayout.leadingNumber(text))
                s += "\(pre)\(n)\(post)\n\n"
            }
        case .value(let useMe, let def, let pre):
            switch control.contents(name) {
            case .failure(let e): return .failure(e)
            case .success(nil):
                s += pre + ((useMe ? me : nil) ?? def) + " (Default) \n\n"
            case .success(let bytes?):
                var line = Array(bytes.prefix { $0 != 10 })
                while let last = line.last, last == 32 || last == 9 || last == 13 { line.removeLast() }
                s += pre + safe(line) + "\n\n"
            }
        case .list(let missing, let pre, let post):
            switch control.list(name) {
            case .failure(let e): return .failure(e)
            case .success(nil): s += "\(missing) (Default)\n\n"
            case .success(let entries?):
                for (i, entry) in entries.enumerated() {
                    if i > 0 { s += String(repeating: " ", count: 24) }
                    s += pre + safe(entry.utf8) + post + "\n"
                }
                s += "\n"
            }
        }
        return .success(s)
    }

    /// Whether morercpthosts.cdb is there and newer than the text it is built from.
    static func morercpthostsStatus(_ files: ControlFiles) -> String {
        let text = Path.status(files.path("morercpthosts")), cdb = Path.status(files.path("morercpthosts.cdb"))
        let verdict: String
        switch (text, cdb) {
        case (nil, nil): verdict = "(Default.) No effect"
        case (nil, _?): verdict = "Oops! morercpthosts.cdb exists but morercpthosts doesn't."
        case (_?, nil): verdict = "Oops! morercpthosts exists but morercpthosts.cdb doesn't."
        case (let t?, let c?):
            verdict = t.st_mtim.tv_sec > c.st_mtim.tv_sec ? "Oops! morercpthosts.cdb is older than morercpthosts."
                                                          : "Modified recently enough; hopefully up to date."
        }
        return padded("morercpthosts.cdb") + ": " + verdict + "\n\n"
    }

    public static func run(_ context: CommandContext) -> Int32 {
        let diag = Diagnostics(program: name)
        var control = false, concurrency = false, internals = false, queues = false, errors = false, env = false
        switch OptionParser("acCiqeE").parse(context.strings) {
        case .failure:
            return diag.fatal(ExitCode.permanent, "usage: qmail-showctl [-acCiqeE]")
        case .success(let parsed):
            for item in parsed.items {
                switch item {
                case .flag("a"): (control, concurrency, internals, queues, errors, env) = (true, true, true, true, true, true)
                case .flag("c"): control = true
                case .flag("C"): concurrency = true
                case .flag("i"): internals = true
                case .flag("q"): queues = true
                case .flag("e"): errors = true
                case .flag("E"): env = true
                default: break
                }
            }
        }
        if !(control || concurrency || internals || queues || errors || env) { (queues, internals) = (true, true) }

        // As the reference: start from an empty environment (HOME and the locations of the
        // installation kept), so that what is shown is what the envdirs give everyone.
        var environment = Environment()
        for name in ["HOME", "SYSCONFDIR", "CONTROLDIR", "QMAILHOME", "ASSIGNDIR", "PREFIX"] {
            if let value = context.environment.bytes(name) { environment.set(name, value) }
        }
        switch DefaultQueue.load(environment, diagnostics: diag) {
        case .success(let e): environment = e
        case .failure(let e): return diag.fatal(e)
        }
        let paths = SuitePaths(environment: environment)
        let files = ControlFiles(paths: paths)
        var out = ""
        if env {
            out += "------------------ begin show env ----------------------------\n"
            for entry in environment.entries { out += String(decoding: entry, as: UTF8.self) + "\n" }
            out += "\n"
        }
        if internals {
            out += "------------------ begin show internals ----------------------\n"
            out += "indimail-mta  home dir: \(paths.qmailHome)\n"
            out += "user        assign dir: \(paths.assignDirectory)\n"
            out += "tcp         access dir: \(paths.sysconfDirectory)/tcp\n"
            out += "certificates       dir: \(paths.sysconfDirectory)/certs\n"
            out += "control            dir: \(paths.controlDirectory)\n"
            out += "global environment dir: \(paths.controlDirectory)/defaultqueue\n"
            if let home = environment["HOME"], Path.isDirectory(Path.join(home, ".defaultqueue")) {
                out += "user   environment dir: \(home)/.defaultqueue\n"
            }
            out += "\n"
        }
        if queues {
            let layout = QueueLayout(directory: "", environment: environment)
            out += "--------------------- begin show queues ----------------------\n"
            out += "subdirectory split      : \(layout.split)\n"
            out += "big todo / big intd     : \(layout.bigTodo ? "Yes" : "No")\n"
            switch QmailQreadCommand.collection(environment) {
            case .failure(let e): return diag.fatal(e)
            case .success(let dirs):
                for dir in dirs { out += "queue                   : \(dir)\n" }
                if let single = environment["QUEUEDIR"] { out += "QUEUEDIR                : \(single)\n" }
            }
            out += "\n"
        }
        if concurrency || control || errors {
            guard case .success(let names) = Path.entries(paths.controlDirectory) else {
                return diag.fatal(ExitCode.temporary, "Oops! Unable to chdir to \(paths.controlDirectory).")
            }
            let sorted = names.sorted()
            if concurrency {
                out += "-------------------- concurrency limits ----------------------\n"
                var parts: [(String, Kind)] = [
                    ("concurrencylocal", .integer(default: "10", pre: "Global Local  concurrency is ", post: "")),
                    ("concurrencyremote", .integer(default: "20", pre: "Global Remote concurrency is ", post: "")),
                ]
                for n in sorted where n.hasPrefix("concurrencyl.") {
                    parts.append((n, .integer(default: "10", pre: "Local   Queue concurrency is ", post: "")))
                }
                for n in sorted where n.hasPrefix("concurrencyr.") {
                    parts.append((n, .integer(default: "20", pre: "Remote  Queue concurrency is ", post: "")))
                }
                for (n, k) in parts {
                    switch explain(n, k, control: files, me: nil) {
                    case .success(let s): out += s
                    case .failure(let e): return diag.fatal(ExitCode.temporary, "unable to read \(n): \(e)")
                    }
                }
            }
            if control {
                let me: String?
                switch files.value("me") {
                case .failure: return diag.fatal(ExitCode.temporary, "Oops! Trouble reading \(files.path("me")).")
                case .success(let v): me = v
                }
                out += "------------------- begin control files ----------------------\n"
                let hasRcpthosts = Path.exists(files.path("rcpthosts"))
                for (n, k) in table {
                    var kind = k
                    if n == "morercpthosts", !hasRcpthosts {
                        kind = .list(missing: "No rcpthosts; morercpthosts is irrelevant.",
                                     pre: "No rcpthosts; doesn't matter that morercpthosts has ", post: ".")
                    }
                    if n == "locals" { out += morercpthostsStatus(files) }
                    switch explain(n, kind, control: files, me: me) {
                    case .success(let s): out += s
                    case .failure(let e): return diag.fatal(ExitCode.temporary, "unable to read \(n): \(e)")
                    }
                }
                out += "\n"
            }
            FD.writeAll(1, Array(out.utf8))
            out = ""
            if errors {
                let known = Set(table.map(\.0)).union(otherKnown)
                var report = "------------------- begin unknown files ----------------------\n"
                for n in sorted where !known.contains(n) && !n.hasPrefix("concurrencyl.") && !n.hasPrefix("concurrencyr.")
                    && !(n.hasSuffix(".cdb") && known.contains(String(n.dropLast(4)))) {
                    report += "\(n): I have no idea what this file does\n"
                }
                FD.writeAll(2, Array(report.utf8))
            }
        }
        FD.writeAll(1, Array(out.utf8))
        return 0
    }
}
