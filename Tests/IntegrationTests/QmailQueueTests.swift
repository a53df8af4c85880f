// qmail-queue: a real injection into a queue made by queue-fix; bad envelopes and read
// errors leave nothing; a kill mid-message leaves nothing queued; setuid works for the
// separate executable while the multi-call binary refuses it.
import Core
import Glibc
import Testing

@Suite("qmail-queue", .serialized)
struct QmailQueueTests {
    let message = Array("Subject: test\n\nhello\n".utf8)
    let envelope = Array("Fa@example.org\0Tb@example.com\0Tc@example.net\0\0".utf8)

    static let longAddress = String(repeating: "a", count: 1003)
    static let badEnvelopes: [BadEnvelope] = [
        BadEnvelope("Ta@b\0\0", 79), BadEnvelope("Fa@b\0Xc\0\0", 79), BadEnvelope("Fa@b\0b\0Tc\0\0", 79),
        BadEnvelope("Fa@b\0Tc@d\0", 54), BadEnvelope("Fa@b", 54), BadEnvelope("", 54),
        BadEnvelope("F" + longAddress + "\0\0", 11), BadEnvelope("F\0T" + longAddress + "\0\0", 11),
    ]

    func only(_ files: [String], prefix: String) -> [String] { files.filter { $0.hasPrefix(prefix) } }

    @Test("injects: mess/split/id, todo/id with the exact envelope, Received line, trigger pulled")
    func injects() throws {
        let sandbox = Sandbox()
        let q = QueueTest.makeQueue(sandbox)
        let trigger = open(q + "/lock/trigger", O_RDONLY | O_NONBLOCK)
        defer { close(trigger) }
        let r = QueueTest.inject(sandbox, message: message, envelope: envelope, queue: q,
                                 environment: ["HOSTNAME": "mx.test"])
        #expect(r.exitCode == 0, "\(r.err)")
        let files = QueueTest.messageFiles(q)
        let mess = only(files, prefix: "mess/")
        try #require(mess.count == 1, "\(files)")
        let id = UInt64(Path.basename(mess[0])) ?? 0
        #expect(mess[0] == "mess/\(id % 3)/\(id)")
        #expect(UInt64(Path.status(q + "/" + mess[0])?.st_ino ?? 0) == id)
        #expect(only(files, prefix: "todo/") == ["todo/\(id)"])
        #expect(only(files, prefix: "pid/").isEmpty)
        // The reference leaves intd/ to qmail-clean: same inode as todo.
        #expect(Path.status(q + "/intd/\(id)")?.st_ino == Path.status(q + "/todo/\(id)")?.st_ino)
        let stored = FD.readFile(q + "/todo/\(id)")
        guard case .success(let bytes) = stored else { Issue.record("todo unreadable"); return }
        let text = String(decoding: bytes, as: UTF8.self)
        let pidField = text.split(separator: "\0", omittingEmptySubsequences: false)[1]
        #expect(bytes == Array("u0\0\(pidField)\0Fa@example.org\0Tb@example.com\0Tc@example.net\0".utf8))
        guard case .success(let body) = FD.readFile(q + "/" + mess[0]) else { Issue.record("mess unreadable"); return }
        let lines = String(decoding: body, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines[0] == "Received: indimail-mta queue \(pidField.dropFirst()) by host mx.test")
        #expect(lines[1].hasPrefix(" (invoked by uid 0); "))
        // "; D Mon YYYY HH:MM:SS +ZZZZ"
        let date = lines[1].split(separator: ";")[1].split(separator: " ")
        #expect(date.count == 5 && Int(date[0]) != nil && date[1].count == 3 && date[2].count == 4)
        #expect(date[3].split(separator: ":").count == 3 && (date[4].hasPrefix("+") || date[4].hasPrefix("-")) && date[4].count == 5)
        #expect(Array(body.dropFirst(lines[0].count + lines[1].count + 2)) == message)
        var byte: UInt8 = 9
        #expect(read(trigger, &byte, 1) == 1 && byte == 0)
        // queue-fix finds mode problems only in ownership (root injected); modes are right.
        let fix = QueueTest.queueFix(["-s", "3", "-b", "0", q])
        #expect(!fix.out.contains("mode"), "\(fix.out)")
    }

    @Test("QQEH becomes an e record; HIDE_HOST hides the host; no trigger reader is fine")
    func extras() {
        let sandbox = Sandbox()
        let q = QueueTest.makeQueue(sandbox)
        let r = QueueTest.inject(sandbox, message: message, envelope: Array("F\0Tx@y\0\0".utf8), queue: q,
                                 environment: ["QQEH": "X-Extra: 1", "HIDE_HOST": "", "TCPREMOTEIP": "192.0.2.1",
                                               "USE_FSYNC": "0"])
        #expect(r.exitCode == 0, "\(r.err)")
        let todo = only(QueueTest.messageFiles(q), prefix: "todo/")
        let bytes = (try? FD.readFile(q + "/" + (todo.first ?? "")).get()) ?? []
        #expect(String(decoding: bytes, as: UTF8.self).hasSuffix("\0F\0Tx@y\0eX-Extra: 1\n\0"))
        let mess = only(QueueTest.messageFiles(q), prefix: "mess/")
        let body = String(decoding: (try? FD.readFile(q + "/" + (mess.first ?? "")).get()) ?? [], as: UTF8.self)
        #expect(body.hasPrefix("Received: indimail-mta queue ") && body.contains(" (invoked from network, by uid 0); "))
        #expect(!body.contains("192.0.2.1") && !body.contains("by host"))
    }

    @Test("bad envelopes: the reference's exit codes, and nothing left in the queue",
          arguments: QmailQueueTests.badEnvelopes)
    func badEnvelope(_ bad: BadEnvelope) {
        let envelope = bad.envelope, code = bad.code
        let sandbox = Sandbox()
        let q = QueueTest.makeQueue(sandbox)
        let r = QueueTest.inject(sandbox, message: message, envelope: Array(envelope.utf8), queue: q)
        #expect(r.exitCode == code, "\(r.err)")
        #expect(QueueTest.messageFiles(q).isEmpty, "\(QueueTest.messageFiles(q))")
    }

    @Test("longest allowed address (1002 bytes) is accepted")
    func longestAddress() {
        let sandbox = Sandbox()
        let q = QueueTest.makeQueue(sandbox)
        let a = String(repeating: "a", count: 1002)
        let r = QueueTest.inject(sandbox, message: message, envelope: Array("F\(a)\0T\(a)\0\0".utf8), queue: q)
        #expect(r.exitCode == 0, "\(r.err)")
    }

    @Test("message read error: temporary 54, nothing left; missing queue: 61")
    func readError() {
        let sandbox = Sandbox()
        let q = QueueTest.makeQueue(sandbox)
        let env = sandbox.write("env", Array("Fa\0Tb\0\0".utf8))
        let r = run(["/bin/sh", "-c", "exec \"$0\" 0<\"$1\" 1<\"$2\"", Build.qmailQueue, q, env],
                    environment: ["QUEUEDIR": q, "CONFSPLIT": "3", "BIGTODO": "0"])
        #expect(r.exitCode == 54)
        #expect(QueueTest.messageFiles(q).isEmpty)
        let missing = QueueTest.inject(sandbox, message: message, envelope: envelope, queue: sandbox.at("nope"))
        #expect(missing.exitCode == 61)
    }

    @Test("multi-queue: without QUEUEDIR a queue<N> under QUEUE_BASE is used")
    func multiQueue() {
        let sandbox = Sandbox()
        chmod(sandbox.path, 0o755)
        _ = QueueTest.queueFix(["-s", "3", "-b", "0", sandbox.at("queue7")])
        let r = QueueTest.inject(sandbox, message: message, envelope: envelope, queue: "",
                                 environment: ["QUEUEDIR": "", "QUEUE_BASE": sandbox.path, "QUEUE_START": "7",
                                               "QUEUE_COUNT": "1"])
        // An empty QUEUEDIR is the reference's "set": it means the current directory.
        #expect(r.exitCode == 61, "\(r.err)")
        let unset = run(["/bin/sh", "-c", "unset QUEUEDIR; exec \"$0\" 1<\"$1\"", Build.qmailQueue,
                         sandbox.write("env", envelope)], stdin: message,
                        environment: ["QUEUE_BASE": sandbox.path, "QUEUE_START": "7", "QUEUE_COUNT": "1",
                                      "CONFSPLIT": "3", "BIGTODO": "0"])
        #expect(unset.exitCode == 0, "\(unset.err)")
        #expect(only(QueueTest.messageFiles(sandbox.at("queue7")), prefix: "todo/").count == 1)
    }

    @Test("SIGKILL mid-message: no todo entry; queue-fix then finds nothing to repair")
    func killedMidMessage() throws {
        let sandbox = Sandbox()
        let q = QueueTest.makeQueue(sandbox)
        let binary = QueueTest.copy(Build.qmailQueue, to: sandbox, name: "qmail-queue")
        let env = sandbox.write("env", envelope)
        var environment = ["QUEUEDIR": q, "CONFSPLIT": "3", "BIGTODO": "0"]
        environment["PATH"] = "/usr/bin:/bin"
        let child = try #require(BackgroundChild(
            ["/bin/sh", "-c", "exec /usr/bin/setpriv --reuid=65534 --regid=65534 --clear-groups -- \"$0\" 1<\"$1\"",
             binary, env], stdinPipe: true, environment: environment))
        child.send(Array("Subject: slow\n\nfirst part\n".utf8))
        #expect(eventually { !only(QueueTest.messageFiles(q), prefix: "mess/").isEmpty })
        usleep(50_000)
        kill(child.pid, SIGKILL)
        let status = child.waitExit(within: 5)
        #expect(status != nil)
        let files = QueueTest.messageFiles(q)
        #expect(only(files, prefix: "todo/").isEmpty && only(files, prefix: "intd/").isEmpty && only(files, prefix: "pid/").isEmpty,
                "\(files)")
        let fix = QueueTest.queueFix(["-s", "3", "-b", "0", q])
        #expect(fix.exitCode == 0 && fix.out.isEmpty, "\(fix.out)")
        #expect(only(QueueTest.messageFiles(q), prefix: "todo/").isEmpty)
    }

    @Test("setuid: qmail-queue 4711 nobody queues for an unprivileged caller; the multi-call binary refuses")
    func setuid() {
        let sandbox = Sandbox()
        let q = QueueTest.makeQueue(sandbox)
        let qq = QueueTest.copy(Build.qmailQueue, to: sandbox, name: "qmail-queue", owner: QueueTest.nobody, mode: 0o4711)
        let multi = QueueTest.copy(Build.indimail, to: sandbox, name: "indimail", owner: QueueTest.nobody, mode: 0o4711)
        #expect(QueueTest.mode(qq) == 0o4711)
        let caller: (uid_t, gid_t) = (12345, 12345)
        let r = QueueTest.inject(sandbox, binary: qq, message: message, envelope: envelope, queue: q, asUser: caller)
        #expect(r.exitCode == 0, "\(r.err)")
        let todo = only(QueueTest.messageFiles(q), prefix: "todo/")
        #expect(todo.count == 1)
        let bytes = (try? FD.readFile(q + "/" + (todo.first ?? "")).get()) ?? []
        #expect(String(decoding: bytes, as: UTF8.self).hasPrefix("u12345\0p"))
        let mess = only(QueueTest.messageFiles(q), prefix: "mess/")
        #expect(QueueTest.owner(q + "/" + (mess.first ?? ""))?.0 == QueueTest.nobody)
        // Without setuid the caller cannot even enter the queue.
        chmod(qq, 0o755)
        let plain = QueueTest.inject(sandbox, binary: qq, message: message, envelope: envelope, queue: q, asUser: caller)
        #expect(plain.exitCode == 61)
        let refused = run(["/usr/bin/setpriv", "--reuid=12345", "--regid=12345", "--clear-groups", "--",
                           multi, "queue-fix", q])
        #expect(refused.exitCode == 100 && refused.err.contains("refusing to run"), "\(refused.err)")
    }
}

struct BadEnvelope: Sendable, CustomTestStringConvertible {
    let envelope: String
    let code: Int32
    init(_ envelope: String, _ code: Int32) { self.envelope = envelope; self.code = code }
    var testDescription: String { "\(envelope.prefix(20).debugDescription) → \(code)" }
}
