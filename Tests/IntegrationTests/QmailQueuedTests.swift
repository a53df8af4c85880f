// qmail-queued: the resident qmail-queue. Injectors reach it through QUEUE_SOCKET and get
// the same files qmail-queue writes; it survives bad and slow clients and dead workers; it
// falls back to qmail-queue when absent; TERM ends it and its workers.
import Core
import Glibc
import Mail
import Testing

/// A running qmail-queued on `sandbox/queued.sock` serving the sandbox's queue (as nobody
/// when the tests run as root).
final class QueuedDaemon {
    let sandbox: Sandbox
    let queue: String
    let socket: String
    let child: BackgroundChild
    let log: String

    init?(_ sandbox: Sandbox, workers: Int = 3, extra: [String] = []) {
        self.sandbox = sandbox
        queue = QueueTest.makeQueue(sandbox)
        // The socket's directory belongs to the pool's account so it can remove the socket.
        let dir = sandbox.directory("run")
        chown(dir, QueueTest.nobody, QueueTest.nogroup)
        socket = Path.join(dir, "queued.sock")
        log = sandbox.at("queued.log")
        guard let c = BackgroundChild([Build.indimail, "qmail-queued", "-c", String(workers)] + extra + [socket],
                                      output: log, environment: QueueTest.accounts) else { return nil }
        child = c
        guard eventually(within: 10, { access(socket, F_OK) == 0 && QueuedDaemon.workers(of: c.pid).count == workers }) else { return nil }
    }

    /// What an injector needs in its environment to use this daemon.
    var clientEnvironment: [String: String] {
        // No PREFIX and no qmail-queue on PATH: a fallback to qmail-queue would fail loudly.
        ["QUEUE_SOCKET": socket, "QUEUEDIR": queue, "CONFSPLIT": "3", "BIGTODO": "0",
         "PATH": "/usr/bin:/bin", "HOSTNAME": "mx.test"]
    }

    static func workers(of parent: pid_t) -> [pid_t] {
        guard case .success(let names) = Path.entries("/proc") else { return [] }
        return names.compactMap { name -> pid_t? in
            guard let pid = pid_t(name), case .success(let stat) = FD.readFile("/proc/\(name)/stat") else { return nil }
            // Field 4 (ppid) follows the ")" that ends the command name.
            let text = String(decoding: stat, as: UTF8.self)
            guard let close = text.lastIndex(of: ")") else { return nil }
            let fields = text[text.index(after: close)...].split(separator: " ")
            return fields.count > 2 && pid_t(fields[1]) == parent ? pid : nil
        }
    }

    /// The exit code of a reply, nil when there is none or it is malformed.
    static func code(_ reply: [UInt8]) -> Int32? {
        guard case .success(let (content, _)) = Netstring.parse(reply, from: 0) else { return nil }
        return QueueService.parseReply(content)?.code
    }

    /// Sends raw bytes, half-closes, and returns the reply (empty when none).
    func exchange(_ bytes: [UInt8], halfClose: Bool = true) -> [UInt8] {
        guard case .success(let fd) = Socket.connect(to: .unix(socket), timeout: 5) else { return [] }
        defer { close(fd) }
        FD.writeAll(fd, bytes)
        if halfClose { shutdown(fd, Int32(SHUT_WR)) }
        _ = FD.waitUntil(fd, events: Int16(POLLIN), timeout: 10_000)
        guard case .success(let reply) = FD.readAll(fd) else { return [] }
        return reply
    }
}

@Suite("qmail-queued", .serialized)
struct QmailQueuedTests {
    let message = Array("Subject: test\n\nhello\n".utf8)
    let envelope = Array("Fa@example.org\0Tb@example.com\0Tc@example.net\0\0".utf8)

    func request(_ env: [String: String], message: [UInt8], envelope: [UInt8]) -> [UInt8] {
        QueueService.Request(environment: Environment(env.map { ($0.key, $0.value) }), message: message, envelope: envelope).bytes
    }

    func inject(_ daemon: QueuedDaemon, environment extra: [String: String] = [:]) -> Outcome {
        var env = daemon.clientEnvironment
        for (k, v) in extra { env[k] = v }
        return run([Build.indimail, "qmail-inject", "-f", "a@example.org", "b@example.com"],
                   stdin: Array("Subject: via service\n\nbody\n".utf8), environment: env)
    }

    @Test("qmail-inject queues through the daemon: one worker wrote the files, the caller's uid is recorded")
    func queuesThroughService() throws {
        let sandbox = Sandbox()
        let daemon = try #require(QueuedDaemon(sandbox))
        let workers = QueuedDaemon.workers(of: daemon.child.pid)
        let r = inject(daemon)
        #expect(r.exitCode == 0, "\(r.err)")
        let files = QueueTest.messageFiles(daemon.queue)
        let todo = files.filter { $0.hasPrefix("todo/") }
        let mess = files.filter { $0.hasPrefix("mess/") }
        try #require(todo.count == 1 && mess.count == 1, "\(files)")
        let stored = String(decoding: try FD.readFile(daemon.queue + "/" + todo[0]).get(), as: UTF8.self)
        let fields = stored.split(separator: "\0", omittingEmptySubsequences: false)
        #expect(fields[0] == "u0")
        let writer = pid_t(fields[1].dropFirst()) ?? 0
        #expect(workers.contains(writer), "pid \(writer) not among the workers \(workers)")
        #expect(stored.hasSuffix("\0Fa@example.org\0Tb@example.com\0"))
        let body = String(decoding: try FD.readFile(daemon.queue + "/" + mess[0]).get(), as: UTF8.self)
        #expect(body.hasPrefix("Received: indimail-mta queue \(writer) by host mx.test\n (invoked by uid 0); "))
        #expect(body.contains("Subject: via service\n"))
        // Files owned by the pool's account, as qmail-queue's setuid bit would make them.
        #expect(QueueTest.owner(daemon.queue + "/" + mess[0])?.0 == QueueTest.nobody)
    }

    @Test("the same bytes as qmail-queue: envelope record and message after the Received line")
    func sameFilesAsQmailQueue() throws {
        let sandbox = Sandbox()
        let daemon = try #require(QueuedDaemon(sandbox))
        let env = ["QQEH": "X-Extra: 1", "TCPREMOTEIP": "192.0.2.7"]
        let direct = QueueTest.inject(sandbox, message: message, envelope: envelope, queue: daemon.queue,
                                      environment: env.merging(["HOSTNAME": "mx.test"]) { a, _ in a })
        #expect(direct.exitCode == 0, "\(direct.err)")
        let reply = daemon.exchange(request(daemon.clientEnvironment.merging(env) { a, _ in a }, message: message, envelope: envelope))
        #expect(QueuedDaemon.code(reply) == 0, "\(reply)")
        let todo = QueueTest.messageFiles(daemon.queue).filter { $0.hasPrefix("todo/") }
        try #require(todo.count == 2)
        func normalized(_ path: String) throws -> (envelope: String, message: String) {
            let e = String(decoding: try FD.readFile(daemon.queue + "/" + path).get(), as: UTF8.self)
            let id = Path.basename(path)
            let mess = QueueTest.messageFiles(daemon.queue).first { $0.hasPrefix("mess/") && $0.hasSuffix("/" + id) } ?? ""
            let m = String(decoding: try FD.readFile(daemon.queue + "/" + mess).get(), as: UTF8.self)
            // Drop the pid record and the Received line's pid and date.
            let envelopeTail = e.split(separator: "\0", omittingEmptySubsequences: false).dropFirst(2).joined(separator: "\0")
            let lines = m.split(separator: "\n", omittingEmptySubsequences: false)
            let first = lines[0].split(separator: " ").enumerated().map { $0.offset == 3 ? "PID" : String($0.element) }.joined(separator: " ")
            let second = String(lines[1].split(separator: ";")[0])
            return (envelopeTail, ([first, second] + lines.dropFirst(2).map(String.init)).joined(separator: "\n"))
        }
        let a = try normalized(todo[0]), b = try normalized(todo[1])
        #expect(a.envelope == b.envelope)
        #expect(a.message == b.message)
        #expect(a.message.contains("(invoked from network 192.0.2.7, by uid 0)"))
        #expect(a.envelope.hasSuffix("eX-Extra: 1\n\0"))
    }

    @Test("qmail-queue's verdicts come back: a bad envelope is refused with 79, MIN_FREE with 53; nothing is left")
    func refusals() throws {
        let sandbox = Sandbox()
        let daemon = try #require(QueuedDaemon(sandbox))
        let reply = daemon.exchange(request(daemon.clientEnvironment, message: message, envelope: Array("Fa@b\0Xc\0\0".utf8)))
        #expect(QueuedDaemon.code(reply) == 79, "\(reply)")
        #expect(QueueTest.messageFiles(daemon.queue).isEmpty)
        // MIN_FREE, as qmail-multi applies it: no room, a temporary refusal (53).
        let full = daemon.exchange(request(daemon.clientEnvironment.merging(["MIN_FREE": "999999999999999999"]) { _, b in b },
                                           message: message, envelope: envelope))
        #expect(QueuedDaemon.code(full) == 53, "\(full)")
        #expect(QueueTest.messageFiles(daemon.queue).isEmpty)
        let room = daemon.exchange(request(daemon.clientEnvironment.merging(["MIN_FREE": "1024"]) { _, b in b },
                                           message: message, envelope: envelope))
        #expect(QueuedDaemon.code(room) == 0, "\(room)")
        for file in QueueTest.messageFiles(daemon.queue) { unlink(daemon.queue + "/" + file) }
        // Through the client library: the same refusal, as a permanent verdict.
        var env = Environment(daemon.clientEnvironment.map { ($0.key, $0.value) })
        env.set("QUEUE_SOCKET", Array(daemon.socket.utf8))
        var submission = try QueueSubmission.start(environment: env).get()
        submission.write(message)
        let verdict = submission.finish(Envelope(sender: Array("a@b".utf8), recipients: [Array(String(repeating: "x", count: 1100).utf8)]))
        #expect(verdict == .refused(code: 11, custom: nil))
        #expect(verdict.isPermanent)
    }

    @Test("bad clients get 54 and leave nothing; the daemon keeps serving", arguments: [
        Array("garbage".utf8), Array("5:ab".utf8), Array("99999999:".utf8), Array("0:,3:abc,".utf8),
        Array("0:,2000000:".utf8),
    ])
    func badRequests(_ bytes: [UInt8]) throws {
        let sandbox = Sandbox()
        let daemon = try #require(QueuedDaemon(sandbox))
        let reply = daemon.exchange(bytes)
        #expect(QueuedDaemon.code(reply) == 54, "\(reply)")
        #expect(QueueTest.messageFiles(daemon.queue).isEmpty)
        #expect(inject(daemon).exitCode == 0)
    }

    @Test("a client that stops sending is dropped after -t seconds")
    func slowClient() throws {
        let sandbox = Sandbox()
        let daemon = try #require(QueuedDaemon(sandbox, workers: 1, extra: ["-t", "1"]))
        let partial = Array(request(daemon.clientEnvironment, message: message, envelope: envelope).dropLast(5))
        let reply = daemon.exchange(partial, halfClose: false)
        #expect(QueuedDaemon.code(reply) == 54, "\(reply)")
        #expect(QueueTest.messageFiles(daemon.queue).isEmpty)
        // The one worker is free again.
        #expect(inject(daemon).exitCode == 0)
    }

    @Test("killed workers are replaced; queueing goes on")
    func workersReplaced() throws {
        let sandbox = Sandbox()
        let daemon = try #require(QueuedDaemon(sandbox, workers: 2))
        let first = QueuedDaemon.workers(of: daemon.child.pid)
        for pid in first { kill(pid, SIGKILL) }
        #expect(eventually(within: 10) {
            let now = QueuedDaemon.workers(of: daemon.child.pid)
            return now.count == 2 && Set(now).isDisjoint(with: first)
        })
        #expect(inject(daemon).exitCode == 0)
    }

    @Test("no daemon: the client runs qmail-queue instead; a dead socket file too")
    func fallback() throws {
        let sandbox = Sandbox()
        let q = QueueTest.makeQueue(sandbox)
        let prefix = sandbox.directory("prefix")
        _ = Path.makeDirectories(prefix + "/sbin")
        symlink(Build.qmailQueue, prefix + "/sbin/qmail-queue")
        let env = ["QUEUE_SOCKET": sandbox.at("missing.sock"), "QUEUEDIR": q, "CONFSPLIT": "3", "BIGTODO": "0", "PREFIX": prefix]
        let r = run([Build.indimail, "qmail-inject", "-f", "a@example.org", "b@example.com"],
                    stdin: Array("Subject: fallback\n\nbody\n".utf8), environment: env)
        #expect(r.exitCode == 0, "\(r.err)")
        #expect(QueueTest.messageFiles(q).filter { $0.hasPrefix("todo/") }.count == 1)
        // Without the fallback program the failure is reported, not hidden.
        let none = run([Build.indimail, "qmail-inject", "-f", "a@example.org", "b@example.com"],
                       stdin: Array("Subject: fallback\n\nbody\n".utf8),
                       environment: env.merging(["PREFIX": sandbox.at("nowhere")]) { _, b in b })
        #expect(none.exitCode != 0)
    }

    @Test("a message over the service's limit goes to qmail-queue, whole")
    func largeMessageFallsBack() throws {
        let sandbox = Sandbox()
        let daemon = try #require(QueuedDaemon(sandbox))
        let prefix = sandbox.directory("prefix")
        _ = Path.makeDirectories(prefix + "/sbin")
        symlink(Build.qmailQueue, prefix + "/sbin/qmail-queue")
        var env = Environment(daemon.clientEnvironment.map { ($0.key, $0.value) })
        env.set("PREFIX", Array(prefix.utf8))
        var submission = try QueueSubmission.start(environment: env).get()
        let line = Array(String(repeating: "x", count: 99).utf8) + [10]
        for _ in 0..<(QueueService.maximumMessage / 100 + 50) { submission.write(line) }
        let verdict = submission.finish(Envelope(sender: Array("a@b".utf8), recipients: [Array("c@d".utf8)]))
        guard case .accepted(let pid) = verdict else { Issue.record("\(verdict)"); return }
        #expect(!QueuedDaemon.workers(of: daemon.child.pid).contains(pid))
        let mess = QueueTest.messageFiles(daemon.queue).filter { $0.hasPrefix("mess/") }
        try #require(mess.count == 1)
        let size = Path.status(daemon.queue + "/" + mess[0]).map { Int($0.st_size) } ?? 0
        #expect(size > (QueueService.maximumMessage / 100 + 50) * 100)
    }

    @Test("the caller's uid comes from the socket, not the environment")
    func peerUID() throws {
        let sandbox = Sandbox()
        let daemon = try #require(QueuedDaemon(sandbox))
        let env = daemon.clientEnvironment.merging(["UID": "0", "USER": "root"]) { _, b in b }
        var argv = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
        argv += [Build.indimail, "qmail-inject", "-f", "a@example.org", "b@example.com"]
        let r = run(argv, stdin: Array("Subject: x\n\nbody\n".utf8), environment: env)
        #expect(r.exitCode == 0, "\(r.err)")
        let mess = QueueTest.messageFiles(daemon.queue).filter { $0.hasPrefix("mess/") }
        let body = String(decoding: (try? FD.readFile(daemon.queue + "/" + (mess.first ?? "")).get()) ?? [], as: UTF8.self)
        #expect(body.contains("(invoked by uid 65534)"), "\(body.prefix(200))")
    }

    @Test("qmail-smtpd in-process: 250 ok … qp names the worker that queued the message")
    func smtpThroughService() throws {
        let f = SmtpdFixture()
        let daemon = try #require(QueuedDaemon(f.box))
        try #require(f.start(["QUEUE_SOCKET": daemon.socket, "PATH": "/usr/bin:/bin"], unset: ["QMAILQUEUE"]) != nil)
        let out = f.client("plain")
        let data = out.first { $0.hasPrefix("data 250 ok ") } ?? ""
        let qp = pid_t(data.split(separator: " ").last ?? "") ?? 0
        #expect(QueuedDaemon.workers(of: daemon.child.pid).contains(qp), "\(out)")
        let q = f.queued
        try #require(q.count == 1)
        #expect(q[0].message.hasPrefix("Received: indimail-mta queue \(qp) "))
        #expect(q[0].envelope.hasSuffix("\0Fa@b.org\0Tu@example.com\0"))
    }

    @Test("a stale socket is replaced, a live one refused, another file left alone")
    func socketPath() throws {
        let sandbox = Sandbox()
        // A socket file nobody listens on any more.
        let stale = sandbox.at("stale.sock")
        if case .success(let fd) = Socket.listenUnix(path: stale, backlog: 1) { close(fd) }
        let revived = try #require(BackgroundChild([Build.indimail, "qmail-queued", "-c", "1", stale],
                                                   environment: QueueTest.accounts))
        #expect(eventually(within: 10) { QueuedDaemon.workers(of: revived.pid).count == 1 })
        #expect(revived.isRunning)
        let daemon = try #require(QueuedDaemon(sandbox, workers: 1))
        let second = run([Build.indimail, "qmail-queued", daemon.socket], environment: QueueTest.accounts)
        #expect(second.exitCode == 111 && second.err.contains("another qmail-queued answers"), "\(second.err)")
        let plain = sandbox.write("plain", "keep")
        let third = run([Build.indimail, "qmail-queued", plain], environment: QueueTest.accounts)
        #expect(third.exitCode == 111 && third.err.contains("not a socket"))
        #expect(contents(plain) == Array("keep".utf8))
        #expect(run([Build.indimail, "qmail-queued", "-c", "0", daemon.socket]).exitCode == 100)
    }

    @Test("TERM during start-up still removes the socket")
    func termAtStartUp() throws {
        let sandbox = Sandbox()
        chmod(sandbox.path, 0o755)  // the pool (nobody, as root) must reach its directory
        let dir = sandbox.directory("run")
        chown(dir, QueueTest.nobody, QueueTest.nogroup)
        let socket = Path.join(dir, "queued.sock")
        for _ in 0..<5 {
            let child = try #require(BackgroundChild([Build.indimail, "qmail-queued", "-c", "2", socket],
                                                     environment: QueueTest.accounts))
            #expect(eventually(within: 10) { access(socket, F_OK) == 0 })
            kill(child.pid, SIGTERM)
            #expect(child.waitExit(within: 10) == .exited(0))
            #expect(access(socket, F_OK) != 0)
        }
    }

    @Test("TERM: the workers end, the socket goes, clients fall back")
    func stops() throws {
        let sandbox = Sandbox()
        let daemon = try #require(QueuedDaemon(sandbox, workers: 2))
        let workers = QueuedDaemon.workers(of: daemon.child.pid)
        kill(daemon.child.pid, SIGTERM)
        #expect(daemon.child.waitExit(within: 10) == .exited(0))
        #expect(access(daemon.socket, F_OK) != 0)
        #expect(eventually(within: 5) { workers.allSatisfy { kill($0, 0) != 0 } })
    }
}
