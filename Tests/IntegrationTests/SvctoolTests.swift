// svctool writing service directories into a private tree: their shape, modes and variables,
// refusal of bad or conflicting requests, refresh, enable/disable, the variables family and
// the configuration actions.
import Core
import Glibc
import Testing

@Suite struct SvctoolTests {
    /// The repository's service-templates/ directory.
    static var templatesDirectory: String {
        Path.join(Path.dirname(Path.dirname(Path.dirname(#filePath))), "service-templates")
    }

    func mode(_ path: String) -> mode_t? { QueueTest.mode(path) }

    @Test func qmtpServiceShape() throws {
        let t = SvctoolTree()
        let made = t.svctool(["--qmtp=2209", "--servicedir=\(t.serviceDirectory)", "--qbase=\(t.queueBase)",
                              "--qcount=2", "--no-multi", "--localip=127.0.0.1", "--maxdaemons=7", "--hidehost"])
        #expect(made.exitCode == 0, "\(made.err)")
        let dir = "service/qmail-qmtpd.2209"
        #expect(mode(t.box.at(dir + "/run")) == 0o755)
        #expect(mode(t.box.at(dir + "/log/run")) == 0o755)
        // The reference's 0550; as root it is exactly that.
        #expect(mode(t.box.at(dir + "/variables")) == (getuid() == 0 ? 0o550 : 0o750))
        #expect(Path.isDirectory(t.box.at("log/qmtpd.2209")))
        #expect(!Path.exists(t.box.at(dir + "/down")))
        let v = t.variables("qmail-qmtpd.2209")
        let expected: [String: String] = [
            "PORT": "2209\n", "LOCALIP": "127.0.0.1\n", "MAXDAEMONS": "7\n", "MAXPERIP": "10\n",
            "SOFT_MEM": "52428800\n", "MIN_FREE": "52428800\n", "HIDE_HOST": "1\n",
            "QUEUEDIR": t.queueBase + "/queue1\n", "QMAILQUEUE": t.prefix + "/sbin/qmail-queue\n",
            "CONTROLDIR": t.control + "\n", "SPAMFILTER": "", "QHPSI": "", "LOGFILTER": "",
            ".envdir": t.control + "/global_vars\n",
            "PATH": "\(t.prefix)/bin:\(t.prefix)/sbin:/bin:/usr/bin:/usr/sbin:/sbin\n",
        ]
        for (name, value) in expected { #expect(v[name] == value, "\(name): \(v[name] ?? "missing")") }
        #expect(v[".options"]?.contains(" svctool --qmtp=2209 ") == true)
        #expect(v[".options"]?.hasPrefix("SYSCONFDIR=\(t.box.at("etc")) ") == true)
        let run = t.read(dir + "/run")
        #expect(run.contains("\(t.prefix)/bin/tcpserver -v -H -R -l $HOSTNAME"))
        #expect(run.contains("-x \(t.box.at("etc"))/tcp/tcp.qmtp.cdb"))
        #expect(run.contains("IDS=\"-u nobody -g nogroup\""))
        #expect(run.contains("\(t.prefix)/sbin/qmail-qmtpd'"))
        #expect(t.read(dir + "/log/run").contains("multilog t \(t.box.at("log"))/qmtpd.2209"))
        // Shared variables made on first use.
        #expect(t.read("etc/control/global_vars/CONFSPLIT") == "3\n")
        #expect(t.read("etc/control/global_vars/BIGTODO") == "0\n")
        // No temp directory left behind.
        let leftovers = ((try? Path.entries(t.serviceDirectory).get()) ?? []).filter { $0.hasPrefix(".svctool") }
        #expect(leftovers.isEmpty)
    }

    @Test func smtpMakesListenerDeliveryAndQueues() throws {
        let t = SvctoolTree()
        let made = t.svctool(["--smtp=2525", "--qbase=\(t.queueBase)", "--qcount=2", "--qstart=3", "--down",
                              "--chksender", "--persistdb", "--remote-authsmtp=plain"])
        #expect(made.exitCode == 0, "\(made.err)")
        for q in ["nqueue", "queue3", "queue4"] { #expect(Path.isDirectory(t.box.at("queue/\(q)/todo")), "\(q)") }
        #expect(!Path.exists(t.box.at("queue/queue1")))
        #expect(t.read("etc/control/queue_base") == t.queueBase + "\n")
        let smtp = t.variables("qmail-smtpd.2525")
        #expect(smtp["QMAILQUEUE"] == t.prefix + "/sbin/qmail-multi\n")
        #expect(smtp["QUEUE_BASE"] == t.queueBase + "\n")
        #expect(smtp["QUEUE_COUNT"] == "2\n" && smtp["QUEUE_START"] == "3\n")
        #expect(smtp["QUEUEDIR"] == "")
        #expect(smtp["CHECKSENDER"] == "1\n")
        #expect(smtp["CHECKRECIPIENT"] == "")
        #expect(smtp["STARTTLS"] == "" && smtp["SMTPS"] == "" && smtp["REQUIREAUTH"] == "")
        #expect(smtp["ENVHEADERS"] == "\n" && smtp["DISABLE_VRFY"] == "\n")
        #expect(Path.exists(t.box.at("service/qmail-smtpd.2525/down")))
        #expect(t.read("service/qmail-smtpd.2525/run").contains("Refusing to start SMTP listener"))
        let send = t.variables("qmail-send.2525")
        #expect(send["SOFT_MEM"] == "83886080\n" && send["MSGQSIZE"] == "8388608\n")
        #expect(send["AUTHSELF"] == "\n" && send["ROUTE_NULL_USER"] == "postmaster\n")
        #expect(send["AUTH_SMTP"] == "plain\n")
        #expect(mode(t.box.at("service/qmail-send.2525/variables")) == (getuid() == 0 ? 0o500 : 0o700))
        #expect(t.read("service/qmail-send.2525/run").contains("qscheduler -s \"$defaultdelivery\""))
        #expect(t.read("service/qmail-send.2525/log/run").contains("/deliver.2525"))
    }

    @Test func smtpsAndSubmission() throws {
        let t = SvctoolTree()
        #expect(t.svctool(["--smtp=465", "--skipsend"]).exitCode == 0)
        #expect(t.svctool(["--smtp=587", "--skipsend"]).exitCode == 0)
        #expect(!Path.exists(t.box.at("service/qmail-send.465")))
        let smtps = t.variables("qmail-smtpd.465")
        #expect(smtps["SMTPS"] == "\n" && smtps["CERTDIR"] == t.box.at("etc") + "/certs\n")
        let sub = t.variables("qmail-smtpd.587")
        #expect(sub["REQUIREAUTH"] == "\n" && sub["STARTTLS"] == "\n")
        #expect(sub["AUTHMODULES"] == t.prefix + "/sbin/sys-checkpwd\n")
        #expect(t.read("service/qmail-smtpd.587/run").contains("qmail-smtpd $HOSTNAME $AUTHMODULES /bin/false'"))
        #expect(t.read("service/qmail-smtpd.587/run").contains("service-templates/submission.run"))
    }

    @Test func miniHostAndDKIMOptions() throws {
        let t = SvctoolTree()
        // indimail-mini: an SMTP listener whose queue is a QMQP client, no delivery of its own.
        let mini = t.svctool(["--smtp=25", "--skipsend", "--no-multi", "--qmailqueue=/usr/sbin/qmail-qmqpc",
                              "--qmailsmtpd=/usr/sbin/mini-smtpd", "--rbl=-rzen.example", "--rbl=-rbl.example"])
        #expect(mini.exitCode == 0, "\(mini.err)")
        let v = t.variables("qmail-smtpd.25")
        #expect(v["QMAILQUEUE"] == "/usr/sbin/qmail-qmqpc\n")
        #expect(v["RBLCOMMAND"] == t.prefix + "/bin/rblsmtpd -rzen.example -rbl.example\n")
        #expect(t.read("service/qmail-smtpd.25/run").contains("/usr/sbin/mini-smtpd'"))
        #expect(!Path.exists(t.box.at("service/qmail-send.25")))

        #expect(t.svctool(["--qmtp=209", "--dkverify=dkimstrict", "--spamfilter=/bin/bogofilter -p"]).exitCode == 0)
        let q = t.variables("qmail-qmtpd.209")
        #expect(q["QMAILQUEUE"] == "\(t.prefix)/sbin/qmail-spamfilter \(t.prefix)/sbin/qmail-dkim\n")
        #expect(q["DKIMVERIFY"] == "FGHIKLMNOQRTUVWjp\n" && q["SPAMFILTER"] == "/bin/bogofilter -p\n")

        #expect(t.svctool(["--delivery=1", "--qcount=1", "--dksign=dkim"]).exitCode == 100)
        #expect(t.svctool(["--delivery=1", "--qcount=1", "--dksign=dkim", "--private_key=/k/default"]).exitCode == 0)
        #expect(t.variables("qmail-send.1")["DKIMSIGN"] == "/k/default\n")
        #expect(t.read("etc/control/filterargs") == "*:remote:\(t.prefix)/sbin/qmail-dkim:DKIMQUEUE=\(t.prefix)/bin/qcat\n")
        #expect(t.svctool(["--qmqp=628", "--dkverify=maybe"]).exitCode == 100)
    }

    @Test func everyRunScriptPassesShellSyntaxCheck() throws {
        let t = SvctoolTree()
        #expect(t.svctool(["--smtp=25", "--qcount=1", "--qtype=dynamic", "--rbl=-rzen.example"]).exitCode == 0)
        #expect(t.svctool(["--smtp=465", "--skipsend"]).exitCode == 0)
        #expect(t.svctool(["--smtp=587", "--skipsend"]).exitCode == 0)
        #expect(t.svctool(["--qmtp=209"]).exitCode == 0)
        #expect(t.svctool(["--qmqp=628"]).exitCode == 0)
        #expect(t.svctool(["--delivery=slow", "--qcount=1", "--qtype=compat"]).exitCode == 0)
        #expect(t.svctool(["--svscanlog", "--scanint=60"]).exitCode == 0)
        #expect(t.svctool(["--queued"]).exitCode == 0)
        let slowq = t.svctool(["--slowq", "--qbase=\(t.queueBase)"])
        #expect(slowq.exitCode == 0 && slowq.out.contains("Creating delivery only slowq"), "\(slowq.err)")
        #expect(Path.isDirectory(t.box.at("queue/slowq/ratelimit")))
        #expect(t.variables("slowq-send")["QUEUEDIR"] == t.queueBase + "/slowq\n")
        #expect(t.variables("slowq-send")["RATELIMIT_DIR"] == t.queueBase + "/slowq/ratelimit\n")
        var scripts: [String] = []
        for name in (try? Path.entries(t.serviceDirectory).get()) ?? [] {
            for file in ["run", "log/run", "shutdown"] {
                let path = Path.join(Path.join(t.serviceDirectory, name), file)
                if Path.exists(path) { scripts.append(path) }
            }
        }
        #expect(scripts.count == 20, "\(scripts)")
        for script in scripts {
            let check = run(["/bin/sh", "-n", script])
            #expect(check.exitCode == 0, "\(script): \(check.err)")
        }
        #expect(t.read("service/qmail-send.25/run").contains("softlimit -q $MSGQSIZE -m $SOFT_MEM"))
        #expect(t.read("service/qmail-send.slow/run").contains("qscheduler -cd"))
        #expect(t.variables("qmail-smtpd.25")["RBLCOMMAND"] == t.prefix + "/bin/rblsmtpd -rzen.example\n")
        #expect(t.read("service/qmail-smtpd.25/run").contains("tcpserver -v -h -R"))
        let svscan = t.variables(".svscan")
        #expect(svscan["SCANINTERVAL"] == "60\n" && svscan["AUTOSCAN"] == "1\n" && svscan["SCANLOG"] == "\n")
        #expect(t.read("service/.svscan/shutdown").contains("svc -dx \(t.serviceDirectory)/*"))
        #expect(!Path.exists(t.box.at("service/.svscan/run")))
    }

    @Test func servicesTemplatesMatchTheRepository() {
        for template in ["smtp", "smtps", "submission", "qmtp", "qmqp", "qmail-send", "slowq", "qmail-queued", "log",
                         "svscan-shutdown"] {
            let printed = run([Build.indimail, "svctool", "--template=\(template)"])
            #expect(printed.exitCode == 0)
            let stored = readText(Path.join(Self.templatesDirectory, template + ".run"))
            #expect(!stored.isEmpty && printed.out == stored, "service-templates/\(template).run differs")
        }
        #expect(run([Build.indimail, "svctool", "--template=nope"]).exitCode == 100)
    }

    @Test func queuedServiceShape() throws {
        let t = SvctoolTree()
        let made = t.svctool(["--queued", "--qbase=\(t.queueBase)", "--workers=4"])
        #expect(made.exitCode == 0, "\(made.err)")
        let dir = "service/qmail-queued"
        #expect(mode(t.box.at(dir + "/run")) == 0o755)
        #expect(mode(t.box.at(dir + "/variables")) == (getuid() == 0 ? 0o500 : 0o700))
        let socket = t.queueBase + "/queued/socket"
        let v = t.variables("qmail-queued")
        let expected: [String: String] = [
            "QUEUE_SOCKET": socket + "\n", "QUEUED_WORKERS": "4\n", "QUEUED_REQUESTS": "10000\n",
            "QUEUED_TIMEOUT": "60\n", "QUEUED_MODE": "666\n", "SOFT_MEM": "52428800\n",
            ".envdir": t.control + "/global_vars\n",
        ]
        for (name, value) in expected { #expect(v[name] == value, "\(name): \(v[name] ?? "missing")") }
        #expect(v[".options"]?.contains(" svctool --queued ") == true)
        let script = t.read(dir + "/run")
        #expect(script.contains("service-templates/qmail-queued.run"))
        #expect(script.contains("\(t.prefix)/sbin/qmail-queued -c $QUEUED_WORKERS -n $QUEUED_REQUESTS -t $QUEUED_TIMEOUT -m $QUEUED_MODE"))
        #expect(script.contains("\"$QUEUE_SOCKET\"'"))
        #expect(t.read(dir + "/log/run").contains("multilog t \(t.box.at("log"))/queued"))
        for file in ["run", "log/run"] {
            let check = run(["/bin/sh", "-n", t.box.at(dir + "/" + file)])
            #expect(check.exitCode == 0, "\(file): \(check.err)")
        }
        // The socket's directory: 0755, and as root the pool's account (QMAILQ_USER) owns it.
        let socketDir = t.queueBase + "/queued"
        #expect(mode(socketDir) == 0o755)
        if getuid() == 0 { #expect(QueueTest.owner(socketDir).map { [$0.0, $0.1] } == [QueueTest.nobody, QueueTest.nogroup]) }
        #expect(!Path.exists(socket))
        // Once only, unless --force; a refresh rebuilds it from its stored command line.
        #expect(t.svctool(["--queued", "--qbase=\(t.queueBase)"]).exitCode == 100)
        t.box.write(dir + "/variables/QUEUED_WORKERS", "99\n")
        #expect(t.svctool(["--refreshsvc=qmail-queued"]).exitCode == 0)
        #expect(t.variables("qmail-queued")["QUEUED_WORKERS"] == "4\n")
        // A socket elsewhere: a directory the operator made is left as it is.
        let own = t.box.directory("own")
        chmod(own, 0o700)
        #expect(t.svctool(["--queued", "--queue-socket=\(own)/q.sock", "--force"]).exitCode == 0)
        #expect(t.variables("qmail-queued")["QUEUE_SOCKET"] == own + "/q.sock\n")
        #expect(mode(own) == 0o700)
        // Bad values and paths that cannot be a socket address.
        let long = "/" + String(repeating: "d", count: 120)
        for bad in [["--queued", "--workers=0"], ["--queued", "--workers=1001"], ["--queued", "--workers=x"],
                    ["--queued", "--queue-socket=relative/sock"], ["--queued", "--queue-socket=\(long)"],
                    ["--queued", "--qbase=\(long)"], ["--qmtp=209", "--use-queued", "--qbase=\(long)"],
                    ["--queued", "--qmtp=209"]] {
            let r = t.svctool(bad)
            #expect(r.exitCode == 100 && !r.err.isEmpty, "\(bad): \(r.err)")
        }
        #expect(!Path.exists(t.box.at("service/qmail-qmtpd.209")))
    }

    @Test func listenersUseQueuedUnlessAFilterQueues() throws {
        let t = SvctoolTree()
        let socket = t.queueBase + "/queued/socket"
        // qmail-multi's collection: QMAILQUEUE goes, the queue variables stay for the worker.
        #expect(t.svctool(["--smtp=2525", "--qcount=2", "--use-queued", "--min-free=1000"]).exitCode == 0)
        let smtp = t.variables("qmail-smtpd.2525")
        #expect(smtp["QUEUE_SOCKET"] == socket + "\n")
        #expect(smtp["QMAILQUEUE"] == "")
        #expect(smtp["QUEUE_BASE"] == t.queueBase + "\n" && smtp["QUEUE_COUNT"] == "2\n" && smtp["QUEUE_START"] == "1\n")
        #expect(smtp["MIN_FREE"] == "1000\n")
        // The delivery half (bounces, forwards) too.
        let send = t.variables("qmail-send.2525")
        #expect(send["QUEUE_SOCKET"] == socket + "\n" && send["QMAILQUEUE"] == "")
        // One queue (--no-multi): qmail-queue goes, QUEUEDIR stays.
        #expect(t.svctool(["--qmtp=209", "--no-multi", "--use-queued"]).exitCode == 0)
        let qmtp = t.variables("qmail-qmtpd.209")
        #expect(qmtp["QUEUE_SOCKET"] == socket + "\n" && qmtp["QMAILQUEUE"] == "")
        #expect(qmtp["QUEUEDIR"] == t.queueBase + "/queue1\n")
        // A filter chain keeps QMAILQUEUE, so clients keep running it.
        #expect(t.svctool(["--qmqp=628", "--use-queued", "--spamfilter=/bin/bogofilter -p"]).exitCode == 0)
        #expect(t.variables("qmail-qmqpd.628")["QMAILQUEUE"] == t.prefix + "/sbin/qmail-spamfilter\n")
        #expect(t.svctool(["--smtp=465", "--skipsend", "--use-queued", "--dkverify=dkim"]).exitCode == 0)
        #expect(t.variables("qmail-smtpd.465")["QMAILQUEUE"] == t.prefix + "/sbin/qmail-dkim\n")
        #expect(t.svctool(["--smtp=26", "--skipsend", "--use-queued", "--no-multi", "--qmailqueue=/usr/sbin/qmail-qmqpc"]).exitCode == 0)
        #expect(t.variables("qmail-smtpd.26")["QMAILQUEUE"] == "/usr/sbin/qmail-qmqpc\n")
        // --dkverify=none is no filter.
        #expect(t.svctool(["--smtp=27", "--skipsend", "--use-queued", "--dkverify=none"]).exitCode == 0)
        #expect(t.variables("qmail-smtpd.27")["QMAILQUEUE"] == "")
        // A chosen socket; and without --use-queued nothing changes.
        #expect(t.svctool(["--smtp=587", "--skipsend", "--use-queued", "--queue-socket=/run/q/socket"]).exitCode == 0)
        #expect(t.variables("qmail-smtpd.587")["QUEUE_SOCKET"] == "/run/q/socket\n")
        #expect(t.svctool(["--qmtp=210"]).exitCode == 0)
        #expect(t.variables("qmail-qmtpd.210")["QUEUE_SOCKET"] == nil)
        #expect(t.variables("qmail-qmtpd.210")["QMAILQUEUE"] == t.prefix + "/sbin/qmail-multi\n")
        // A refresh without the switch in the stored line drops QUEUE_SOCKET again.
        #expect(t.svctool(["--qmtp=209", "--no-multi", "--force"]).exitCode == 0)
        #expect(t.variables("qmail-qmtpd.209")["QUEUE_SOCKET"] == nil)
        #expect(t.variables("qmail-qmtpd.209")["QMAILQUEUE"] == t.prefix + "/sbin/qmail-queue\n")
        // The injectors' defaultqueue envdir follows the same rule.
        #expect(t.svctool(["--queueParam=defaultqueue", "--use-queued"]).exitCode == 0)
        #expect(t.read("etc/control/defaultqueue/QUEUE_SOCKET") == socket + "\n")
        #expect(t.read("etc/control/defaultqueue/QMAILQUEUE") == "")
    }

    /// The generated pool serves a listener made with --use-queued: the message is written by
    /// one of its workers; after TERM the socket is gone and the same injection falls back to
    /// qmail-queue.
    @Test func generatedQueuedServesAListener() throws {
        let t = SvctoolTree()
        let queue = Path.join(t.queueBase, "queue1")
        _ = Path.makeDirectories(t.queueBase)
        #expect(QueueTest.queueFix(["-s", "3", "-b", "0", queue]).exitCode == 0)
        #expect(t.svctool(["--queued", "--workers=2"]).exitCode == 0)
        #expect(t.svctool(["--qmtp=209", "--no-multi", "--use-queued"]).exitCode == 0)
        let service = t.box.at("service/qmail-queued")
        let socket = t.queueBase + "/queued/socket"
        let pool = try #require(BackgroundChild(["/bin/sh", "-c", "cd \"$0\" && exec ./run", service],
                                                output: t.box.at("queued.log"), environment: t.environment))
        defer {
            let workers = QueuedDaemon.workers(of: pool.pid)
            kill(pool.pid, SIGTERM)
            if pool.waitExit(within: 10) == nil { for w in workers { kill(w, SIGKILL) } }
        }
        let up = eventually(within: 10) { access(socket, F_OK) == 0 && QueuedDaemon.workers(of: pool.pid).count == 2 }
        #expect(up, "\(t.read("queued.log"))")
        if getuid() == 0 { #expect(QueueTest.owner("/proc/\(pool.pid)")?.0 == QueueTest.nobody) }
        let workers = QueuedDaemon.workers(of: pool.pid)
        // An injection with the listener's own variables, as qmail-qmtpd would run it.
        func inject(_ subject: String) -> pid_t? {
            let r = run([Build.indimail, "envdir", t.box.at("service/qmail-qmtpd.209/variables"),
                         Build.indimail, "qmail-inject", "-f", "a@example.org", "b@example.com"],
                        stdin: Array("Subject: \(subject)\n\nbody\n".utf8), environment: t.environment)
            #expect(r.exitCode == 0, "\(r.err)")
            let todo = QueueTest.messageFiles(queue).filter { $0.hasPrefix("todo/") }
            let record = todo.map { readText(Path.join(queue, $0)) }.first { _ in true } ?? ""
            for f in QueueTest.messageFiles(queue) where !f.hasPrefix("lock") { unlink(Path.join(queue, f)) }
            let fields = record.split(separator: "\0", omittingEmptySubsequences: false)
            return fields.count > 1 ? pid_t(fields[1].dropFirst()) : nil
        }
        let served = inject("through the pool")
        #expect(served.map { workers.contains($0) } == true, "\(String(describing: served)) not in \(workers)")
        kill(pool.pid, SIGTERM)
        #expect(pool.waitExit(within: 10) == .exited(0))
        #expect(!Path.exists(socket))
        let fallback = inject("qmail-queue again")
        #expect(fallback != nil && !workers.contains(fallback ?? 0))
    }

    @Test func refusesExistingDirectoryAndBadOptions() {
        let t = SvctoolTree()
        #expect(t.svctool(["--qmtp=209"]).exitCode == 0)
        let again = t.svctool(["--qmtp=209"])
        #expect(again.exitCode == 100)
        #expect(again.err.contains("exists"))
        for bad in [["--qmtp=0"], ["--qmtp=209", "--qmqp=628"], ["--frobnicate"], ["--smtp=25", "--ssl", "--starttls"], []] {
            let r = t.svctool(bad)
            #expect(r.exitCode == 100, "\(bad): \(r.err)")
            #expect(!r.err.isEmpty)
        }
        // Nothing half-made by the refusals.
        let names = ((try? Path.entries(t.serviceDirectory).get()) ?? []).sorted()
        #expect(names == ["qmail-qmtpd.209"])
    }

    @Test func forceAndRefreshRewriteInPlace() throws {
        let t = SvctoolTree()
        #expect(t.svctool(["--qmtp=209", "--maxdaemons=5"]).exitCode == 0)
        let dir = t.box.at("service/qmail-qmtpd.209")
        // A running supervise keeps its state directory: refresh must not replace the directory.
        _ = t.box.directory("service/qmail-qmtpd.209/supervise")
        let inode = Path.status(dir)?.st_ino
        unlink(Path.join(dir, "run"))
        t.box.write("service/qmail-qmtpd.209/variables/MAXDAEMONS", "99\n")
        let refreshed = t.svctool(["--refreshsvc=\(dir)"])
        #expect(refreshed.exitCode == 0, "\(refreshed.err)")
        #expect(Path.exists(Path.join(dir, "run")))
        #expect(t.variables("qmail-qmtpd.209")["MAXDAEMONS"] == "5\n")
        #expect(Path.isDirectory(Path.join(dir, "supervise")))
        #expect(Path.status(dir)?.st_ino == inode)
        // --run-file-only keeps the variables.
        t.box.write("service/qmail-qmtpd.209/variables/MAXDAEMONS", "42\n")
        unlink(Path.join(dir, "run"))
        #expect(t.svctool(["--refreshsvc=\(dir)", "--run-file-only"]).exitCode == 0)
        #expect(Path.exists(Path.join(dir, "run")))
        #expect(t.variables("qmail-qmtpd.209")["MAXDAEMONS"] == "42\n")
        // autorefresh off: refresh skips it; all still refreshes the others.
        #expect(t.svctool(["--qmqp=628"]).exitCode == 0)
        #expect(t.svctool(["--autorefresh=0 \(dir)"]).exitCode == 0)
        #expect(Path.exists(Path.join(dir, "variables/.norefreshsvc")))
        unlink(Path.join(dir, "run"))
        unlink(t.box.at("service/qmail-qmqpd.628/run"))
        #expect(t.svctool(["--refreshsvc=all"]).exitCode == 0)
        #expect(!Path.exists(Path.join(dir, "run")))
        #expect(Path.exists(t.box.at("service/qmail-qmqpd.628/run")))
        #expect(t.svctool(["--autorefresh=1 \(dir)"]).exitCode == 0)
        #expect(!Path.exists(Path.join(dir, "variables/.norefreshsvc")))
        // The stored environment wins over the refreshing one: same paths as at creation.
        unlink(t.box.at("service/qmail-qmqpd.628/run"))
        let otherLogs = t.box.at("other-logs")
        #expect(t.svctool(["--refreshsvc=qmail-qmqpd.628"], extra: ["PREFIX": "/elsewhere", "LOGDIR": otherLogs]).exitCode == 0)
        #expect(t.read("service/qmail-qmqpd.628/run").contains("\(t.prefix)/bin/tcpserver"))
        #expect(t.read("service/qmail-qmqpd.628/log/run").contains("multilog t \(t.box.at("log"))/qmqpd.628"))
        // --force on a create: same in-place rewrite with the new options.
        #expect(t.svctool(["--qmtp=209", "--maxdaemons=8", "--force"]).exitCode == 0)
        #expect(t.variables("qmail-qmtpd.209")["MAXDAEMONS"] == "8\n")
    }

    @Test func disableAndEnable() {
        let t = SvctoolTree()
        #expect(t.svctool(["--qmqp=628"]).exitCode == 0)
        let dir = t.box.at("service/qmail-qmqpd.628")
        #expect(t.svctool(["--rmsvc=\(dir)"]).exitCode == 0)
        #expect(!Path.exists(dir) && Path.isDirectory(t.box.at("service/.qmail-qmqpd.628")))
        #expect(t.svctool(["--ensvc=qmail-qmqpd.628"]).exitCode == 0)
        #expect(Path.isDirectory(dir) && !Path.exists(t.box.at("service/.qmail-qmqpd.628")))
        #expect(t.svctool(["--ensvc=\(t.box.at("service/none"))"]).exitCode == 100)
    }

    @Test func variablesFamilyRoundTrip() throws {
        let t = SvctoolTree()
        #expect(t.svctool(["--qmtp=209"]).exitCode == 0)
        let svc = ["--service-name=qmail-qmtpd.209"]
        #expect(t.svctool(["--set-variable=DATABYTES", "--variable-value=1000"] + svc).exitCode == 0)
        let again = t.svctool(["--set-variable=DATABYTES", "--variable-value=5"] + svc)
        #expect(again.exitCode == 100 && again.err.contains("exists"))
        #expect(t.svctool(["--set-variable=DATABYTES", "--variable-value=5", "--force"] + svc).exitCode == 0)
        #expect(t.svctool(["--modify-variable=NOPE", "--variable-value=1"] + svc).exitCode == 100)
        #expect(t.svctool(["--set-variable=EMPTY"] + svc).exitCode == 0)
        #expect(t.svctool(["--unset-variable=MAXPERIP"] + svc).exitCode == 0)
        #expect(t.svctool(["--remove-variable=LOGFILTER"] + svc).exitCode == 0)
        let v = t.variables("qmail-qmtpd.209")
        #expect(v["DATABYTES"] == "5\n" && v["EMPTY"] == "\n" && v["MAXPERIP"] == "" && v["LOGFILTER"] == nil)
        #expect(v[".variables"]?.contains("DATABYTES=5\n") == true)

        let exported = t.box.at("exported")
        #expect(t.svctool(["--export-variables=\(exported)"] + svc).exitCode == 0)
        let text = readText(exported)
        #expect(text.contains("DATABYTES=5\n") && text.contains("EMPTY=\"\"\n") && text.contains("MAXPERIP=\n"))
        #expect(t.svctool(["--export-variables=\(exported)"] + svc).exitCode == 100)

        // Import into a second service reproduces the same variables.
        #expect(t.svctool(["--qmqp=628"]).exitCode == 0)
        let other = ["--service-name=qmail-qmqpd.628"]
        #expect(t.svctool(["--import-variables=\(exported)", "--force"] + other).exitCode == 0)
        let w = t.variables("qmail-qmqpd.628")
        for name in ["DATABYTES", "EMPTY", "MAXPERIP", "PORT", "QMAILQUEUE"] { #expect(w[name] == v[name], "\(name)") }
        // Without --force existing ones stay.
        t.box.write("changed", "PORT=1\nNEWONE=x\n")
        #expect(t.svctool(["--import-variables=\(t.box.at("changed"))"] + other).exitCode == 0)
        #expect(t.variables("qmail-qmqpd.628")["PORT"] == "209\n")
        #expect(t.variables("qmail-qmqpd.628")["NEWONE"] == "x\n")

        let printed = t.svctool(["--print-variables"] + svc)
        #expect(printed.exitCode == 0)
        #expect(printed.out.contains("DATABYTES=5\n") && printed.out.contains("EMPTY=\n"))
        #expect(!printed.out.contains("MAXPERIP="))
        // Variables from .envdir (control/global_vars) are part of the service's environment.
        #expect(printed.out.contains("CONFSPLIT=3\n"))
        #expect(printed.out.contains("NOTE: additional variables were obtained from .envdir"))
        #expect(t.svctool(["--print-variables"]).exitCode == 100)
        #expect(t.svctool(["--set-variable=X", "--service-name=missing"]).exitCode == 100)
    }

    @Test func saveAndRestoreAllVariables() {
        let t = SvctoolTree()
        #expect(t.svctool(["--qmtp=209"]).exitCode == 0)
        #expect(t.svctool(["--svscanlog"]).exitCode == 0)
        #expect(t.svctool(["--queueParam=defaultqueue"]).exitCode == 0)
        #expect(t.svctool(["--save-variables"]).exitCode == 0)
        for dir in ["service/qmail-qmtpd.209/variables", "service/.svscan/variables", "etc/control/defaultqueue"] {
            #expect(t.read(dir + "/.variables").contains("="), "\(dir)")
        }
        let before = t.variables("qmail-qmtpd.209")
        t.box.write("service/qmail-qmtpd.209/variables/PORT", "1\n")
        t.box.write("service/qmail-qmtpd.209/variables/STRAY", "x\n")
        #expect(t.svctool(["--restore-variables", "--service-name=qmail-qmtpd.209"]).exitCode == 0)
        #expect(t.variables("qmail-qmtpd.209") == before)
        t.box.write("service/.svscan/variables/SCANINTERVAL", "5\n")
        #expect(t.svctool(["--restore-all-variables"]).exitCode == 0)
        #expect(t.read("service/.svscan/variables/SCANINTERVAL") == "300\n")
        let all = t.svctool(["--print-all-variables"])
        #expect(all.exitCode == 0)
        #expect(all.out.contains("environment variables for \(t.serviceDirectory)/qmail-qmtpd.209 ")
                && all.out.contains("environment variables for \(t.serviceDirectory)/.svscan "))
    }

    @Test func queueParamConfigAndBoot() throws {
        let t = SvctoolTree()
        #expect(t.svctool(["--queueParam=defaultqueue", "--qbase=\(t.queueBase)", "--qcount=3"]).exitCode == 0)
        #expect(t.read("etc/control/defaultqueue/QUEUE_COUNT") == "3\n")
        #expect(t.read("etc/control/defaultqueue/QMAILQUEUE") == t.prefix + "/sbin/qmail-multi\n")
        #expect(readText(t.box.at("etc/control/global_vars/QUEUE_COUNT")) == "3\n")
        #expect(t.read("etc/control/defaultqueue/.envdir") == t.control + "/global_vars\n")
        #expect(t.svctool(["--queueParam=defaultqueue", "--death=100000", "--force"]).exitCode == 0)
        #expect(t.read("etc/control/global_vars/DEATH") == "100000\n")
        #expect(t.read("etc/control/global_vars/OSSIFIED") == "150000\n")

        let config = t.svctool(["--config=qmail", "--hostname=mx.example.org"])
        #expect(config.exitCode == 0, "\(config.err)")
        #expect(t.read("etc/control/me") == "mx.example.org\n")
        #expect(t.read("etc/control/defaultdomain") == "example.org\n")
        #expect(t.read("etc/control/rcpthosts") == "mx.example.org\nlocalhost\n")
        #expect(t.read("etc/users/assign") == ".\n")
        #expect(Path.exists(t.box.at("etc/tcp/tcp.qmtp.cdb")))
        // Idempotent: an operator's edit survives a second run.
        t.box.write("etc/control/me", "edited\n")
        #expect(t.svctool(["--config=qmail", "--hostname=mx.example.org"]).exitCode == 0)
        #expect(t.read("etc/control/me") == "edited\n")

        let units = t.box.at("units")
        #expect(t.svctool(["--config=add-boot", "--unitdir=\(units)"]).exitCode == 0)
        let unit = readText(Path.join(units, "svscan.service"))
        #expect(unit.contains("Type=notify") && unit.contains("ExecStart=\(t.prefix)/sbin/svscan \(t.serviceDirectory)"))
        #expect(t.svctool(["--config=rm-boot", "--unitdir=\(units)"]).exitCode == 0)
        #expect(!Path.exists(Path.join(units, "svscan.service")))
        // An installed service-templates/svscan.service is the one used, filled in.
        let shared = t.box.directory("prefix/share/indimail/service-templates")
        _ = run(["/bin/cp", Path.join(Self.templatesDirectory, "svscan.service"), shared])
        #expect(t.svctool(["--config=add-boot", "--unitdir=\(units)"]).exitCode == 0)
        let installed = readText(Path.join(units, "svscan.service"))
        #expect(installed.contains("KillMode=mixed") && !installed.contains("@prefix@"))
        #expect(installed.contains("ExecStart=\(t.prefix)/sbin/svscan \(t.serviceDirectory)\n"))
        #expect(t.svctool(["--config=bogus"]).exitCode == 100)
        // --queuefix repairs a queue with the installation's split.
        let fixed = t.svctool(["--queuefix=\(t.box.at("fixme"))"])
        #expect(fixed.exitCode == 0 && Path.isDirectory(t.box.at("fixme/mess/2")) && !Path.exists(t.box.at("fixme/mess/3")))
        // Without --servicedir or SERVICEDIR, control/servicedir.conf says where services go.
        t.box.write("etc/control/servicedir.conf", t.box.at("elsewhere") + "\n")
        #expect(t.svctool(["--qmqp=628"], extra: ["SERVICEDIR": ""]).exitCode == 0)
        #expect(Path.isDirectory(t.box.at("elsewhere/qmail-qmqpd.628")))

        let dump = t.svctool(["--dumpconfig"])
        #expect(dump.exitCode == 0 && dump.out.contains("---- me ----\nedited\n"))

        #expect(t.svctool(["--qmtp=209"]).exitCode == 0)
        _ = t.box.directory("service/qmail-qmtpd.209/supervise")
        let backup = t.svctool(["--backup=\(t.box.at("backup"))"])
        #expect(backup.exitCode == 0, "\(backup.err)")
        let archives = (try? Path.entries(t.box.at("backup")).get()) ?? []
        #expect(archives.count == 1 && archives.first?.hasSuffix(".tar.gz") == true)
        let listing = run(["tar", "tzf", Path.join(t.box.at("backup"), archives.first ?? "")]).out
        #expect(listing.contains("service/qmail-qmtpd.209/run") && listing.contains("etc/control/me"))
        #expect(!listing.contains("supervise"))
        // Every run that changed something is in LOGDIR/svctool.log.
        let history = t.read("log/svctool.log")
        #expect(history.contains("svctool --queueParam=defaultqueue") && history.contains("svctool --qmtp=209"))
        #expect(!history.contains("--dumpconfig"))
    }

    @Test func recontrolFollowsANewHostName() {
        let t = SvctoolTree()
        #expect(t.svctool(["--config=qmail", "--hostname=mx.example.org"]).exitCode == 0)
        t.box.write("etc/control/rcpthosts", "mx.example.org\nlocalhost\nkeep.example\n")
        let r = t.svctool(["--config=recontrol", "--hostname=mail.other.net"])
        #expect(r.exitCode == 0, "\(r.err)")
        #expect(t.read("etc/control/me") == "mail.other.net\n")
        #expect(t.read("etc/control/defaultdomain") == "other.net\n")
        #expect(t.read("etc/control/rcpthosts") == "mail.other.net\nlocalhost\nkeep.example\n")
        #expect(t.read("etc/control/smtpgreeting") == "mail.other.net (NO UCE) ESMTP IndiMail\n")
        #expect(t.read("etc/control/global_vars/DEFAULT_DOMAIN") == "other.net\n")
    }

    @Test func systemMTAAlternatives() throws {
        try #require(peer("/usr/bin/update-alternatives") != nil, "update-alternatives missing")
        let t = SvctoolTree()
        let root = t.box.directory("root")
        for dir in ["etc/alternatives", "var/lib/dpkg/alternatives", "usr/sbin", "usr/bin", "usr/lib", "p/bin"] {
            _ = t.box.directory("root/" + dir)
        }
        t.box.write("root/p/bin/sendmail", "#!/bin/sh\n", mode: 0o755)
        t.box.write("root/p/bin/qmail-qread", "#!/bin/sh\n", mode: 0o755)
        let env = ["PREFIX": "/p"]
        #expect(t.svctool(["--config=add-alt", "--altroot=\(root)", "--silent"], extra: env).exitCode == 0)
        var buffer = [CChar](repeating: 0, count: 256)
        let n = readlink(t.box.at("root/etc/alternatives/mta"), &buffer, 255)
        #expect(n > 0 && String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) == "/p/bin/sendmail")
        #expect(Path.status(t.box.at("root/usr/bin/mailq"), followLinks: false) != nil)
        #expect(Path.status(t.box.at("root/usr/bin/rmail"), followLinks: false) == nil)
        #expect(t.svctool(["--config=remove-alt", "--altroot=\(root)", "--silent"], extra: env).exitCode == 0)
        #expect(Path.status(t.box.at("root/usr/sbin/sendmail"), followLinks: false) == nil)
        // Nothing to register without an installed sendmail.
        #expect(t.svctool(["--config=add-alt", "--altroot=\(root)"], extra: ["PREFIX": "/absent"]).exitCode == 111)
    }

    @Test func selfSignedCertificate() throws {
        try #require(peer("/usr/bin/openssl") != nil, "openssl missing")
        let t = SvctoolTree()
        let made = t.svctool(["--config=cert", "--common_name=mx.example.org", "--validity_days=30"])
        #expect(made.exitCode == 0, "\(made.err)")
        let pem = t.box.at("etc/certs/servercert.pem")
        let text = readText(pem)
        #expect(text.contains("PRIVATE KEY") && text.contains("BEGIN CERTIFICATE"))
        let subject = run(["/usr/bin/openssl", "x509", "-noout", "-subject", "-in", pem])
        #expect(subject.out.contains("mx.example.org"))
    }

    @Test func usersNeedsRoot() throws {
        try #require(getuid() == 0 && peer("/usr/bin/setpriv") != nil)
        let t = SvctoolTree()
        let r = run(["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                     Build.indimail, "svctool", "--config=users"], environment: t.environment)
        #expect(r.exitCode == 0)
        #expect(r.err.contains("needs root"))
    }
}
