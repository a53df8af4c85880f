// The README's main job end to end: scripts/start installs the built binaries into a private
// prefix, generates the whole service tree there and runs svscan on it; mail sent through
// every door (SMTP, submission with AUTH, SMTPS, QMTP, sendmail, QMQP) lands in the demo
// Maildir, the listeners' mail queued by workers of the qmail-queued service; a variables/ change plus `svc -r` changes a listener; stopping svscan leaves
// nothing behind, also when it is PID 1 of its own pid namespace.
import Core
import Glibc
import Testing

/// A prefix made by scripts/start in a sandbox, with the ports it chose.
final class MainJobPrefix {
    let box: Sandbox
    let prefix: String
    let portBase: Int

    static let script: String = {
        var dir = Build.directory
        while dir != "/" && !Path.exists(Path.join(dir, "scripts/start")) { dir = Path.dirname(dir) }
        return Path.join(dir, "scripts/start")
    }()

    init(box: Sandbox) {
        self.box = box
        chmod(box.path, 0o755)
        prefix = box.at("prefix")
        portBase = Self.freePortBase()
    }

    var smtp: UInt16 { UInt16(portBase + 25) }
    var smtps: UInt16 { UInt16(portBase + 465) }
    var submission: UInt16 { UInt16(portBase + 587) }
    var qmtp: UInt16 { UInt16(portBase + 209) }
    var qmqp: UInt16 { UInt16(portBase + 628) }
    var ports: [UInt16] { [smtp, smtps, submission, qmtp, qmqp] }

    var serviceDirectory: String { Path.join(prefix, "service") }
    var queueSocket: String { Path.join(prefix, "var/indimail/queue/queued/socket") }
    var maildir: String { Path.join(prefix, "home/demo/Maildir") }
    var envFile: String { Path.join(prefix, "etc/indimail-env.sh") }
    var password: String {
        String(readText(Path.join(prefix, "etc/indimail/demo.password")).prefix { $0 != "\n" })
    }

    /// A base whose five listener ports are free on loopback right now.
    static func freePortBase() -> Int {
        for _ in 0..<200 {
            let base = 20000 + Int.random(in: 0..<400) * 100
            let free = [25, 465, 587, 209, 628].allSatisfy { offset in
                guard case .success(let fd) = Socket.listenTCP(address: .v4(127, 0, 0, 1), port: UInt16(base + offset),
                                                              backlog: 1, ipv4Only: true) else { return false }
                close(fd)
                return true
            }
            if free { return base }
        }
        return 30000
    }

    /// scripts/start's arguments for this prefix, from the debug build.
    func startArguments(noRun: Bool) -> [String] {
        ["/bin/sh", Self.script, "--prefix", prefix, "--port-base", String(portBase), "--from", Build.directory]
            + (noRun ? ["--no-run"] : [])
    }

    /// Runs `command` with the client environment scripts/start wrote (sourced by the shell).
    func client(_ command: String, stdin: [UInt8] = [], extra: [String: String] = [:]) -> Outcome {
        run(["/bin/sh", "-c", ". \"$0\" && \(command)", envFile], stdin: stdin,
            environment: extra.merging(["INDIMAIL_TEST_SANDBOX": box.path]) { $1 })
    }

    /// Messages in the demo Maildir (new/ and cur/), as text.
    func delivered() -> [String] {
        ["new", "cur"].flatMap { sub -> [String] in
            let dir = Path.join(maildir, sub)
            return ((try? Path.entries(dir).get()) ?? []).map { readText(Path.join(dir, $0)) }
        }
    }

    /// The pid svstat reports for a service, nil when it is not up.
    func servicePID(_ name: String) -> pid_t? {
        let out = client("exec svstat \"$SERVICEDIR/\(name)\"").out
        guard out.contains(": up "), let range = out.firstRange(of: " pid ") else { return nil }
        return pid_t(out[range.upperBound...].prefix { $0.isNumber })
    }

    /// The pid qmail-queue (or a qmail-queued worker) recorded in a message's Received line.
    static func queuePID(_ message: String) -> pid_t? {
        guard let range = message.firstRange(of: "Received: indimail-mta queue ") else { return nil }
        return pid_t(message[range.upperBound...].prefix { $0.isNumber })
    }

    /// Live processes whose working directory or executable is under the sandbox, or that
    /// carry its tag.
    func leftovers(_ sv: SvscanUnderTest) -> [String] {
        var left = sv.liveSandboxProcesses()
        for p in ProcFS.allPIDs() ?? [] where p != getpid() {
            guard let stat = ProcFS.statText(p), ProcFS.state(statLine: stat) != "Z" else { continue }
            for link in ["cwd", "exe"] {
                var buffer = [CChar](repeating: 0, count: 4096)
                let n = readlink("/proc/\(p)/\(link)", &buffer, buffer.count - 1)
                guard n > 0 else { continue }
                let target = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
                if target.hasPrefix(box.path + "/") {
                    left.append("\(p) \(link)=\(target)")
                }
            }
        }
        return left
    }
}

@Suite(.serialized) struct MainJobTests {
    /// SMTP clients in Python: plain SMTP, submission (STARTTLS + AUTH PLAIN/LOGIN), SMTPS.
    /// Prints one result line per attempt.
    static let smtpClient = """
        import smtplib, ssl, sys
        mode, port = sys.argv[1], int(sys.argv[2])
        password = sys.argv[3] if len(sys.argv) > 3 else ''
        size = int(sys.argv[4]) if len(sys.argv) > 4 else 0
        ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
        def message(subject):
            body = 'Subject: %s\\r\\nFrom: sender@example.org\\r\\nTo: demo@localhost\\r\\n\\r\\nhello from %s\\r\\n' % (subject, mode)
            return body + ('x' * 70 + '\\r\\n') * (size // 72)
        def attempt(label, s, subject):
            try:
                s.sendmail('sender@example.org', ['demo@localhost'], message(subject))
                print(label, 'sent')
            except smtplib.SMTPException as e:
                print(label, 'refused', getattr(e, 'smtp_code', ''), getattr(e, 'recipients', ''))
        if mode == 'smtp':
            s = smtplib.SMTP('127.0.0.1', port, timeout=20)
            attempt('smtp', s, 'via smtp size %d' % size); s.quit()
        elif mode == 'submission':
            s = smtplib.SMTP('127.0.0.1', port, timeout=20)
            s.ehlo(); s.starttls(context=ctx); s.ehlo()
            attempt('noauth', s, 'via submission without auth')
            s.quit()
            s = smtplib.SMTP('127.0.0.1', port, timeout=20)
            s.ehlo(); s.starttls(context=ctx); s.ehlo()
            try:
                s.login('demo', 'wrong-' + password); print('badpass accepted')
            except smtplib.SMTPAuthenticationError as e:
                print('badpass refused', e.smtp_code)
            s.quit()
            s = smtplib.SMTP('127.0.0.1', port, timeout=20)
            s.ehlo(); s.starttls(context=ctx); s.ehlo()
            s.login('demo', password)
            attempt('auth', s, 'via submission')
            s.quit()
        elif mode == 'smtps':
            s = smtplib.SMTP_SSL('127.0.0.1', port, context=ctx, timeout=20)
            attempt('smtps', s, 'via smtps'); s.quit()
        """

    /// A QMTP client: one message to demo@localhost, prints the reply netstring.
    static let qmtpClient = """
        import socket, sys
        def ns(b): return str(len(b)).encode() + b':' + b + b','
        s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=20)
        body = b'\\n' + b'Subject: via qmtp\\n\\nhello from qmtp\\n'
        s.sendall(ns(body) + ns(b'qmtp@example.org') + ns(ns(b'demo@localhost')))
        s.shutdown(socket.SHUT_WR)
        data = b''
        while True:
            chunk = s.recv(4096)
            if not chunk: break
            data += chunk
        n, rest = data.split(b':', 1)
        print(rest[:int(n)].decode())
        """

    func python(_ box: Sandbox, _ name: String, _ script: String, _ arguments: [String]) -> Outcome {
        let path = box.write(name, script)
        return run(["/usr/bin/python3", path] + arguments, timeout: 60)
    }

    @Test func startRunsTheWholeMailSystem() throws {
        try #require(peer("/usr/bin/python3") != nil && peer("/usr/bin/openssl") != nil, "python3/openssl missing")
        let box = Sandbox()
        let job = MainJobPrefix(box: box)
        let sv = SvscanUnderTest(box: box)
        defer { sv.stop() }
        // The README's command itself, as a terminal would run it.
        sv.start(environment: ["PATH": "/usr/bin:/bin:/usr/sbin:/sbin"], command: job.startArguments(noRun: false))
        for port in job.ports {
            #expect(waitForListener(port, within: 60), "port \(port): \(sv.stdout)\(sv.stderr)")
        }
        #expect(sv.stdout.contains("AUTH: user demo, password \(job.password)"), "\(sv.stdout)")
        #expect(sv.stdout.contains(job.maildir + "/new/"))
        // svscan runs in its own session under the script, which passes Ctrl-C on to it.
        #expect(!sv.children(of: sv.pid, matching: "sbin/svscan").isEmpty)

        // SMTP, submission with AUTH, SMTPS.
        let smtp = python(box, "smtp.py", Self.smtpClient, ["smtp", String(job.smtp)])
        #expect(smtp.out == "smtp sent\n", "\(smtp.out)\(smtp.err)")
        let submission = python(box, "smtp.py", Self.smtpClient, ["submission", String(job.submission), job.password])
        let lines = submission.out.split(separator: "\n").map(String.init)
        #expect(lines.count == 3, "\(submission.out)\(submission.err)")
        if lines.count == 3 {
            #expect(lines[0].hasPrefix("noauth refused"))
            #expect(lines[1] == "badpass refused 535")
            #expect(lines[2] == "auth sent")
        }
        let smtps = python(box, "smtp.py", Self.smtpClient, ["smtps", String(job.smtps)])
        #expect(smtps.out == "smtps sent\n", "\(smtps.out)\(smtps.err)")

        // QMTP.
        let qmtp = python(box, "qmtp.py", Self.qmtpClient, [String(job.qmtp)])
        #expect(qmtp.out.hasPrefix("Kok "), "\(qmtp.out)\(qmtp.err)")

        // sendmail (local injection through qmail-queue) and qmail-qmqpc (QMQP to the listener).
        let sendmail = job.client("exec sendmail -f local@localhost demo@localhost",
                                  stdin: Array("Subject: via sendmail\n\nhello from sendmail\n".utf8))
        #expect(sendmail.exitCode == 0, "\(sendmail.err)")
        let envelope = box.write("envelope", "Fqmqp@example.org\0Tdemo@localhost\0\0")
        let qmqpc = job.client("exec qmail-qmqpc 1<\"\(envelope)\"", stdin: Array("Subject: via qmqp\n\nhello from qmqp\n".utf8))
        #expect(qmqpc.exitCode == 0, "\(qmqpc.err)")

        // Every message is delivered to the demo Maildir by qmail-send.
        let subjects = ["via smtp size 0", "via submission", "via smtps", "via qmtp", "via sendmail", "via qmqp"]
        let allThere = eventually(within: 30) {
            let mail = job.delivered()
            return subjects.allSatisfy { s in mail.contains { $0.contains("Subject: \(s)\n") || $0.contains("Subject: \(s)\r") } }
        }
        let mail = job.delivered()
        #expect(allThere, "delivered: \(mail.count): \(mail.map { $0.prefix(400) })")
        #expect(mail.count == subjects.count)
        #expect(mail.allSatisfy { $0.hasPrefix("Return-Path: <") && $0.contains("Delivered-To: demo@localhost") })
        #expect(!mail.contains { $0.contains("without auth") })
        #expect(mail.contains { $0.contains("Subject: via submission") && $0.contains("Received: ") })

        // Every door queued through a worker of the qmail-queued service: the listeners by
        // their variables, sendmail by the client environment file (QUEUE_SOCKET).
        let pool = try #require(job.servicePID("qmail-queued"))
        let workers = QueuedDaemon.workers(of: pool)
        #expect(workers.count == 4, "\(workers)")
        for message in mail {
            let writer = MainJobPrefix.queuePID(message)
            #expect(writer.map { workers.contains($0) } == true,
                    "queue pid \(String(describing: writer)), workers \(workers): \(message.prefix(600))")
        }
        // As root the pool runs as the queue's owner (nobody under a private prefix), which
        // also owns the socket's directory.
        if getuid() == 0 {
            #expect(QueueTest.owner("/proc/\(pool)")?.0 == QueueTest.nobody)
            #expect(QueueTest.owner(Path.dirname(job.queueSocket))?.0 == QueueTest.nobody)
        }

        // svstat and svps: every service and logger up.
        let services = ["qmail-queued", "qmail-smtpd.\(job.smtp)", "qmail-smtpd.\(job.smtps)", "qmail-smtpd.\(job.submission)",
                        "qmail-qmtpd.\(job.qmtp)", "qmail-qmqpd.\(job.qmqp)", "qmail-send.\(job.smtp)"]
        let dirs = services.flatMap { [Path.join(job.serviceDirectory, $0), Path.join(job.serviceDirectory, $0 + "/log")] }
        let svstat = job.client("exec svstat " + dirs.map { "'\($0)'" }.joined(separator: " "))
        let statLines = svstat.out.split(separator: "\n")
        #expect(statLines.count == dirs.count && statLines.allSatisfy { $0.contains(": up ") && $0.contains(" pid ") }, "\(svstat.out)\(svstat.err)")
        let svps = job.client("exec svps -a")
        for s in services {
            #expect(svps.out.split(separator: "\n").contains { $0.contains("/\(s) ") && $0.contains(" up ") }, "\(s): \(svps.out)\(svps.err)")
        }
        #expect(svps.out.contains(".svscan/log") && svps.out.contains("svscan"), "\(svps.out)")

        // variables/DATABYTES + svc -r: the SMTP listener now refuses a big message.
        let smtpService = "qmail-smtpd.\(job.smtp)"
        let set = job.client("exec svctool --set-variable=DATABYTES --variable-value=2000 --service-name=\(smtpService) --force")
        #expect(set.exitCode == 0, "\(set.err)")
        #expect(job.client("exec svc -r \"$SERVICEDIR/\(smtpService)\"").exitCode == 0)
        var big = Outcome(status: .exited(1), stdout: [], stderr: [], timedOut: false)
        let refused = eventually(within: 20) {
            guard waitForListener(job.smtp, within: 5) else { return false }
            big = python(box, "smtp.py", Self.smtpClient, ["smtp", String(job.smtp), "", "8000"])
            return big.out.hasPrefix("smtp refused 552")
        }
        #expect(refused, "\(big.out)\(big.err)")
        // A small one still passes.
        let small = python(box, "smtp.py", Self.smtpClient, ["smtp", String(job.smtp), "", "500"])
        #expect(small.out == "smtp sent\n", "\(small.out)\(small.err)")

        // Ctrl-C: the script passes it on, svscan runs the shutdown script and stops everything;
        // the script exits with svscan's status.
        sv.signal(SIGINT)
        let status = sv.waitExit(30)
        #expect(status == .exited(0), "\(String(describing: status)): \(sv.stderr)")
        let left = job.leftovers(sv)
        #expect(left.isEmpty, "left behind: \(left)")
        // qmail-queued removed its socket on the way out.
        #expect(!Path.exists(job.queueSocket))
    }

    /// The same command run by an ordinary user (nobody): no step needs root, the services
    /// run as that user, and mail still reaches the Maildir.
    @Test func startRunsUnprivileged() throws {
        try #require(getuid() == 0 && peer("/usr/bin/setpriv") != nil && peer("/usr/bin/python3") != nil
                     && peer("/usr/bin/openssl") != nil)
        let box = Sandbox()
        let job = MainJobPrefix(box: box)
        _ = box.directory("prefix")
        #expect(run(["/bin/chown", "65534:65534", job.prefix]).exitCode == 0)
        let sv = SvscanUnderTest(box: box)
        defer { sv.stop() }
        let asNobody = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
        sv.start(environment: ["PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "HOME": job.prefix],
                 command: asNobody + job.startArguments(noRun: false))
        #expect(waitForListener(job.smtp, within: 60) && waitForListener(job.submission, within: 30), "\(sv.stdout)\(sv.stderr)")
        let smtp = python(box, "smtp.py", Self.smtpClient, ["smtp", String(job.smtp)])
        #expect(smtp.out == "smtp sent\n", "\(smtp.out)\(smtp.err)")
        let sendmail = run(asNobody + ["/bin/sh", "-c", ". \"$0\" && exec sendmail -f n@localhost demo@localhost", job.envFile],
                           stdin: Array("Subject: via sendmail\n\nfrom nobody\n".utf8))
        #expect(sendmail.exitCode == 0, "\(sendmail.err)")
        #expect(eventually(within: 30) { job.delivered().count == 2 }, "\(job.delivered().count)")
        let mail = job.delivered()
        #expect(mail.contains { $0.contains("Subject: via sendmail") && $0.contains("Delivered-To: demo@localhost") })
        // Every process of the tree runs as nobody, the qmail-queued pool included, and the
        // SMTP message was queued by one of its workers.
        let svscan = try #require(sv.children(of: sv.pid, matching: "sbin/svscan").first)
        #expect(QueueTest.owner("/proc/\(svscan)")?.0 == 65534)
        let pool = try #require(job.servicePID("qmail-queued"))
        #expect(QueueTest.owner("/proc/\(pool)")?.0 == 65534)
        let workers = QueuedDaemon.workers(of: pool)
        let viaSMTP = mail.first { $0.contains("Subject: via smtp") } ?? ""
        #expect(MainJobPrefix.queuePID(viaSMTP).map { workers.contains($0) } == true, "\(workers): \(viaSMTP.prefix(600))")
        sv.signal(SIGTERM)
        #expect(sv.waitExit(30) == .exited(0), "\(sv.stderr)")
        let left = job.leftovers(sv)
        #expect(left.isEmpty, "left behind: \(left)")
        #expect(!Path.exists(job.queueSocket))
    }

    @Test func svscanAsPID1StopsTheGeneratedTree() throws {
        let unshare = "/usr/bin/unshare"
        try #require(peer(unshare) != nil && peer("/usr/bin/openssl") != nil, "util-linux unshare / openssl missing")
        let box = Sandbox()
        let job = MainJobPrefix(box: box)
        let sv = SvscanUnderTest(box: box)
        defer { sv.stop() }
        let made = run(job.startArguments(noRun: true), environment: ["INDIMAIL_TEST_SANDBOX": box.path], timeout: 120)
        #expect(made.exitCode == 0, "\(made.out)\(made.err)")
        #expect(made.out.contains("swaks --server 127.0.0.1:\(job.smtp)"))
        // Nothing runs after --no-run.
        #expect(!waitForListener(job.qmtp, within: 0.5))
        sv.start(command: [unshare, "--pid", "--fork", "--mount-proc", "--kill-child", "/bin/sh", "-c",
                           ". \"$0\" && exec svscan \"$SERVICEDIR\"", job.envFile])
        for port in job.ports {
            #expect(waitForListener(port, within: 30), "port \(port): \(sv.stderr)")
        }
        let svscan = try #require(sv.child(of: sv.pid, matching: "svscan"))
        // PID 1 inside: its status file in /proc says so.
        let nspid = readText("/proc/\(svscan)/status").split(separator: "\n").first { $0.hasPrefix("NSpid:") } ?? ""
        #expect(nspid.split(whereSeparator: { $0 == "\t" || $0 == " " }).last == "1", "\(nspid)")
        #expect(eventually(within: 10) { access(job.queueSocket, F_OK) == 0 })
        kill(svscan, SIGTERM)
        let status = sv.waitExit(30)
        #expect(status == .exited(0), "\(String(describing: status)): \(sv.stderr)")
        let left = job.leftovers(sv)
        #expect(left.isEmpty, "left behind: \(left)")
        #expect(!Path.exists(job.queueSocket))
    }
}
