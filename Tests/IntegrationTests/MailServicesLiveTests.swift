// Generated services running for real: svscan supervises a QMTP and a QMQP listener made by
// svctool, a Python QMTP client and qmail-qmqpc deliver into a private queue through the real
// qmail-queue, qmailctl drives the tree, and svscan as PID 1 of a namespace stops it cleanly.
import Core
import Glibc
import Testing

@Suite(.serialized) struct MailServicesLiveTests {
    /// A QMTP client in Python: sends each message (LF or CRLF form) and prints every reply
    /// netstring on its own line.
    static let qmtpClient = """
        import socket, sys
        def ns(b): return str(len(b)).encode() + b':' + b + b','
        port = int(sys.argv[1])
        s = socket.create_connection(('127.0.0.1', port), timeout=10)
        msgs = [
            (b'\\r' + b'Subject: dos\\r\\n\\r\\nline one\\r\\nline two\\r\\n', b'a@sender.example',
             [b'x@mx.example.org', b'y@elsewhere.example']),
            (b'\\n' + b'Subject: unix\\n\\nbody\\n', b'', [b'z@localhost']),
        ]
        expected = 0
        for body, sender, rcpts in msgs:
            s.sendall(ns(body) + ns(sender) + ns(b''.join(ns(r) for r in rcpts)))
            expected += len(rcpts)
        s.shutdown(socket.SHUT_WR)
        data = b''
        while True:
            chunk = s.recv(4096)
            if not chunk: break
            data += chunk
        while data:
            n, rest = data.split(b':', 1)
            n = int(n)
            print(rest[:n].decode())
            data = rest[n + 1:]
        """

    func queuedMessages(_ queue: String) -> [String] {
        QueueTest.messageFiles(queue).filter { $0.hasPrefix("mess/") }.map { readText(Path.join(queue, $0)) }
    }

    @Test func qmtpAndQmqpServicesQueueMail() throws {
        try #require(peer("/usr/bin/python3") != nil, "python3 missing")
        let t = SvctoolTree()
        let sv = SvscanUnderTest(box: t.box)
        defer { sv.stop() }
        let queue = Path.join(t.queueBase, "queue1")
        _ = Path.makeDirectories(t.queueBase)
        #expect(QueueTest.queueFix(["-s", "3", "-b", "0", queue]).exitCode == 0)
        #expect(t.svctool(["--config=qmail", "--hostname=mx.example.org"]).exitCode == 0)
        // Loopback gets no RELAYCLIENT here, so rcpthosts decides; qmailctl cdb rebuilds.
        t.box.write("etc/tcp/tcp.qmtp", "127.:allow\n:deny\n")
        let touched = t.box.at("etc/tcp/tcp.qmtp")
        var times = [timespec(tv_sec: time(nil) + 5, tv_nsec: 0), timespec(tv_sec: time(nil) + 5, tv_nsec: 0)]
        utimensat(AT_FDCWD, touched, &times, 0)
        let cdb = run([Build.indimail, "qmailctl", "cdb"], environment: t.environment)
        #expect(cdb.exitCode == 0 && cdb.out.contains("building \(touched).cdb: OK"), "\(cdb.out)\(cdb.err)")

        let qmtpPort = freePort(), qmqpPort = freePort()
        let common = ["--servicedir=\(sv.scanDirectory)", "--qbase=\(t.queueBase)", "--qcount=1", "--no-multi",
                      "--localip=127.0.0.1", "--memory=2000000000"]
        #expect(t.svctool(["--qmtp=\(qmtpPort)"] + common).exitCode == 0)
        #expect(t.svctool(["--qmqp=\(qmqpPort)"] + common).exitCode == 0)
        sv.start(environment: t.environment)
        #expect(waitForListener(qmtpPort) && waitForListener(qmqpPort), "\(sv.stderr)")

        let script = t.box.write("qmtp.py", Self.qmtpClient)
        let client = run(["/usr/bin/python3", script, String(qmtpPort)])
        #expect(client.exitCode == 0, "\(client.err)")
        let replies = client.out.split(separator: "\n").map(String.init)
        #expect(replies.count == 3, "\(replies)")
        if replies.count == 3 {
            #expect(replies[0].hasPrefix("Kok ") && replies[2].hasPrefix("Kok "))
            #expect(replies[1] == "Dsorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)")
        }
        let afterQMTP = queuedMessages(queue)
        #expect(afterQMTP.count == 2)
        let dos = afterQMTP.first { $0.contains("Subject: dos") } ?? ""
        #expect(dos.contains("Subject: dos\n\nline one\nline two\n") && !dos.contains("\r"))
        #expect(dos.contains("Received: indimail-mta qmtpd ") && dos.contains(" with QMTP; "))
        let envelopes = QueueTest.messageFiles(queue).filter { $0.hasPrefix("todo/") }.map { readText(Path.join(queue, $0)) }
        #expect(envelopes.contains { $0.contains("Fa@sender.example\0Tx@mx.example.org\0") && !$0.contains("elsewhere") })

        // qmail-qmqpc as the queue program of an injector: server from control/qmqpservers.
        t.box.write("etc/control/qmqpservers", "127.0.0.1\n")
        let envelopeFile = t.box.write("envelope", "Fq@sender.example\0Tr1@anywhere.example\0Tr2@else.example\0\0")
        var env = t.environment
        env["PORT_QMQP"] = String(qmqpPort)
        let qmqpc = run(["/bin/sh", "-c", "exec \"$@\" 1<\"$0\"", envelopeFile, Path.join(t.prefix, "sbin/qmail-qmqpc")],
                        stdin: Array("Subject: via qmqp\n\nhello\n".utf8), environment: env)
        #expect(qmqpc.exitCode == 0, "\(qmqpc.err)")
        let viaQMQP = queuedMessages(queue).filter { $0.contains("Subject: via qmqp") }
        #expect(viaQMQP.count == 1 && viaQMQP.first?.contains("Received: indimail-mta qmqpd ") == true)
        let qmqpEnvelopes = QueueTest.messageFiles(queue).filter { $0.hasPrefix("todo/") }.map { readText(Path.join(queue, $0)) }
        #expect(qmqpEnvelopes.contains { $0.contains("Fq@sender.example\0Tr1@anywhere.example\0Tr2@else.example\0") })
        // A malformed envelope never reaches the server; a dead server is a connection failure.
        let bad = t.box.write("bad-envelope", "Xq\0\0")
        let refused = run(["/bin/sh", "-c", "exec \"$@\" 1<\"$0\"", bad, Path.join(t.prefix, "sbin/qmail-qmqpc")],
                          stdin: Array("x\n".utf8), environment: env)
        #expect(refused.exitCode == 79)
        env["PORT_QMQP"] = String(freePort())
        let dead = run(["/bin/sh", "-c", "exec \"$@\" 1<\"$0\"", envelopeFile, Path.join(t.prefix, "sbin/qmail-qmqpc")],
                       stdin: Array("x\n".utf8), environment: env)
        #expect(dead.exitCode == 73)

        // The loggers wrote the listeners' lines.
        #expect(eventually { readText(t.box.at("log/qmtpd.\(qmtpPort)/current")).contains("tcpserver: ok") })

        // qmailctl over the running tree.
        var ctlEnv = t.environment
        ctlEnv["SERVICEDIR"] = sv.scanDirectory
        ctlEnv["SVSCAN_RUNDIR"] = sv.runDirectory
        let stat = run([Build.indimail, "qmailctl", "stat"], environment: ctlEnv)
        #expect(stat.out.contains("qmail-qmtpd.\(qmtpPort): up"), "\(stat.out)\(stat.err)")
        let stop = run([Build.indimail, "qmailctl", "stop"], environment: ctlEnv)
        #expect(stop.exitCode == 0, "\(stop.out)\(stop.err)")
        #expect(eventually {
            run([Build.indimail, "qmailctl", "stat"], environment: ctlEnv).out.contains("qmail-qmtpd.\(qmtpPort): down")
        })
        #expect(run([Build.indimail, "qmailctl", "bogus"], environment: ctlEnv).exitCode == 1)
    }

    /// The SMTP run script with a stand-in daemon (qmail-smtpd is another helper's): it waits
    /// for rcpthosts, then tcpserver hands each connection to the program with the AUTH
    /// arguments and the variables in its environment.
    @Test func smtpRunScriptStartsTheListener() throws {
        let t = SvctoolTree()
        let sv = SvscanUnderTest(box: t.box)
        defer { sv.stop() }
        let fake = t.box.write("fake-smtpd", "#!/bin/sh\necho \"220 fake $1 $3 STARTTLS=${STARTTLS-unset} REQUIREAUTH=${REQUIREAUTH-unset}\"\n",
                               mode: 0o755)
        _ = Path.makeDirectories(t.control)
        t.box.write("etc/tcp/tcp.smtp", ":allow\n")
        #expect(run([Build.indimail, "tcprules", t.box.at("etc/tcp/tcp.smtp.cdb"), t.box.at("etc/tcp/tcp.smtp.tmp")],
                    stdin: Array(":allow\n".utf8)).exitCode == 0)
        let port = freePort()
        #expect(t.svctool(["--smtp=\(port)", "--skipsend", "--servicedir=\(sv.scanDirectory)", "--localip=127.0.0.1",
                           "--forceauthsmtp", "--starttls", "--qmailsmtpd=\(fake)", "--memory=2000000000"]).exitCode == 0)
        sv.start(environment: t.environment)
        // No rcpthosts yet: the run script refuses, and says why in the log.
        #expect(eventually { readText(t.box.at("log/smtpd.\(port)/current")).contains("Refusing to start SMTP listener") })
        t.box.write("etc/control/rcpthosts", "example.org\n")
        #expect(waitForListener(port, within: 15), "\(readText(t.box.at("log/smtpd.\(port)/current")))")
        let greeting = String(decoding: exchange(port: port) ?? [], as: UTF8.self)
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, 255)
        let name = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        #expect(greeting == "220 fake \(name) /bin/false STARTTLS= REQUIREAUTH=\n", "\(greeting)")
    }

    @Test func svscanAsInitStopsAGeneratedTree() throws {
        let unshare = "/usr/bin/unshare"
        try #require(peer(unshare) != nil, "util-linux unshare missing")
        let t = SvctoolTree()
        let sv = SvscanUnderTest(box: t.box)
        defer { sv.stop() }
        _ = Path.makeDirectories(t.queueBase)
        #expect(QueueTest.queueFix(["-s", "3", "-b", "0", Path.join(t.queueBase, "queue1")]).exitCode == 0)
        #expect(t.svctool(["--config=qmail", "--hostname=mx.example.org"]).exitCode == 0)
        let port = freePort()
        #expect(t.svctool(["--svscanlog", "--servicedir=\(sv.scanDirectory)"]).exitCode == 0)
        #expect(t.svctool(["--qmtp=\(port)", "--servicedir=\(sv.scanDirectory)", "--qbase=\(t.queueBase)", "--qcount=1",
                           "--no-multi", "--localip=127.0.0.1", "--memory=2000000000"]).exitCode == 0)
        sv.start(environment: t.environment, launcher: [unshare, "--pid", "--fork", "--mount-proc", "--kill-child"])
        #expect(waitForListener(port), "\(sv.stderr)")
        let svscan = try #require(sv.child(of: sv.pid, matching: "svscan"))
        kill(svscan, SIGTERM)
        let status = sv.waitExit(20)
        #expect(status == .exited(0), "\(String(describing: status)): \(sv.stderr)")
        #expect(sv.liveSandboxProcesses().isEmpty, "left behind: \(sv.liveSandboxProcesses())")
    }
}

/// The same kind of tree made and run entirely by an unprivileged user: svctool, queue-fix,
/// svscan, the run scripts (which then skip tcpserver's -u/-g and setuidgid) and qmail-queue.
@Suite(.serialized) struct UnprivilegedServicesTests {
    @Test func qmtpServiceRunsWithoutRoot() throws {
        try #require(getuid() == 0 && peer("/usr/bin/setpriv") != nil && peer("/usr/bin/python3") != nil)
        let t = SvctoolTree()
        let sv = SvscanUnderTest(box: t.box)
        defer { sv.stop() }
        let asNobody = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
        _ = Path.makeDirectories(t.queueBase)
        _ = run(["/bin/chown", "-R", "65534:65534", t.box.path])
        let port = freePort()
        func svctool(_ args: [String]) -> Outcome {
            run(asNobody + [Build.indimail, "svctool"] + args, environment: t.environment)
        }
        #expect(svctool(["--config=qmail", "--hostname=mx.example.org"]).exitCode == 0)
        #expect(run(asNobody + [Build.indimail, "queue-fix", "-s", "3", "-b", "0", Path.join(t.queueBase, "queue1")],
                    environment: t.environment).exitCode == 0)
        let made = svctool(["--qmtp=\(port)", "--servicedir=\(sv.scanDirectory)", "--qbase=\(t.queueBase)", "--qcount=1",
                            "--no-multi", "--localip=127.0.0.1", "--memory=2000000000"])
        #expect(made.exitCode == 0, "\(made.err)")
        #expect(QueueTest.owner(t.box.at("sv/qmail-qmtpd.\(port)/run"))?.0 == 65534)
        // The owner keeps write access to variables/ so the variables family works unprivileged.
        #expect(svctool(["--set-variable=DATABYTES", "--variable-value=100000", "--service-name=qmail-qmtpd.\(port)",
                         "--servicedir=\(sv.scanDirectory)"]).exitCode == 0)
        sv.start(environment: t.environment, launcher: asNobody)
        #expect(waitForListener(port), "\(sv.stderr)")
        let script = t.box.write("qmtp.py", MailServicesLiveTests.qmtpClient)
        let client = run(["/usr/bin/python3", script, String(port)])
        #expect(client.out.split(separator: "\n").filter { $0.hasPrefix("Kok ") }.count == 3, "\(client.out)\(client.err)")
        let queue = Path.join(t.queueBase, "queue1")
        let todo = QueueTest.messageFiles(queue).filter { $0.hasPrefix("todo/") }
        #expect(todo.count == 2)
        // Queued by nobody: the Received line of qmail-queue says so.
        let mess = QueueTest.messageFiles(queue).filter { $0.hasPrefix("mess/") }.map { readText(Path.join(queue, $0)) }
        #expect(mess.allSatisfy { $0.contains("by uid 65534") })
        #expect(eventually { readText(t.box.at("log/qmtpd.\(port)/current")).contains("tcpserver: ok") })
    }
}
