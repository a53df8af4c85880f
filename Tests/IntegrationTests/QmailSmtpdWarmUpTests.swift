// tcpserver's parent warms in-process qmail-smtpd up (a rehearsed conversation, at start-up
// and on SIGHUP) so forked children inherit the runtime's caches: it must leave no trace,
// and sessions after it must read exactly as sessions of a qmail-smtpd that never had one.
import Core
import Glibc
import Testing

@Suite("qmail-smtpd warm-up", .serialized)
struct QmailSmtpdWarmUpTests {
    /// What the fds of `pid` point at ("pipe:[inode]", "socket:[inode]", paths).
    func descriptors(of pid: String) -> [String] {
        guard case .success(let names) = Path.entries("/proc/\(pid)/fd") else { return ["unreadable"] }
        return names.compactMap { name in
            var buffer = [CChar](repeating: 0, count: 256)
            let n = readlink("/proc/\(pid)/fd/\(name)", &buffer, buffer.count - 1)
            guard n > 0 else { return nil }
            return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }.sorted()
    }

    /// Pipes and sockets the server made itself (not inherited from this test process): a
    /// rehearsal that forgot its pipes, or asked the DNS, would leave some.
    func ownChannels(of pid: pid_t) -> [String] {
        let inherited = Set(descriptors(of: "self"))
        return descriptors(of: String(pid)).filter { ($0.hasPrefix("pipe:") || $0.hasPrefix("socket:")) && !inherited.contains($0) }
    }

    /// Every run of digits as one '#': dates, times and pids differ between servers.
    func masked(_ text: String) -> String {
        var out = ""
        for c in text where !(c.isNumber && out.last == "#") { out.append(c.isNumber ? "#" : c) }
        return out
    }

    /// Replies of a raw pipelined session, digits masked (dates, times, pids differ).
    func session(_ f: SmtpdFixture, port: UInt16) -> String {
        let payload = "EHLO client.test\r\nMAIL FROM:<a@b.org>\r\nRCPT TO:<u@example.com>\r\nRCPT TO:<x@elsewhere.org>\r\n"
            + "DATA\r\nSubject: w\r\n\r\n..dot\r\nbody\r\n.\r\nHELO again.test\r\nMAIL FROM:<>\r\nRCPT TO:<v@example.com>\r\n"
            + "DATA\r\nSubject: w2\r\n\r\nx\r\n.\r\nVRFY u\r\nHELP\r\nNONSENSE\r\nQUIT\r\n"
        let out = f.client("raw", ["b'" + payload.replacingCRLF() + "'"], port: port).first ?? ""
        return masked(out)
    }

    @Test("start-up and SIGHUP rehearsals write nothing (no log line, no file, no queue program) and leak no fd")
    func noTrace() throws {
        let f = SmtpdFixture()
        // The queue program as the server sees it: leaves a mark whenever it runs.
        let mark = f.box.at("queue-program-ran")
        let wrapper = f.box.write("qq", "#!/bin/sh\ntouch \(mark)\nexec \(Build.qmailQueue)\n", mode: 0o755)
        let before = QueueTest.files(f.box.path)
        let server = try #require(f.start(["QMAILQUEUE": wrapper], unset: ["NODNSCHECK"]))
        let startLog = server.log
        #expect(startLog == [String(server.port)], "\(startLog)")
        #expect(access(mark, F_OK) != 0)
        // Only the server's own log file is new.
        func unchanged(_ list: [String]) -> [String] { list.filter { !$0.hasPrefix("server-") && !$0.hasPrefix("bin/") } }
        #expect(unchanged(QueueTest.files(f.box.path)) == unchanged(before))
        // The listening socket only.
        let channels = ownChannels(of: server.child.pid)
        #expect(channels.count == 1 && channels.allSatisfy { $0.hasPrefix("socket:") }, "\(channels)")

        kill(server.child.pid, SIGHUP)
        #expect(eventually(within: 10) { server.log.count >= 2 })
        let afterHUP = server.log
        #expect(afterHUP.count == 2 && afterHUP.last?.hasPrefix("tcpserver: sighup: ") == true, "\(afterHUP)")
        #expect(access(mark, F_OK) != 0)
        #expect(QueueTest.files(f.queue).filter { !$0.hasPrefix("lock/") } == [])
        #expect(ownChannels(of: server.child.pid) == channels)

        // The wrapper is the program a real message goes through.
        let out = f.client("raw", ["b'HELO x\\r\\nMAIL FROM:<a@[192.0.2.7]>\\r\\nRCPT TO:<u@example.com>\\r\\nDATA\\r\\nx\\r\\n.\\r\\nQUIT\\r\\n'"])
        #expect(out.first?.contains("|250 ok ") == true, "\(out)")
        #expect(access(mark, F_OK) == 0)
    }

    @Test("after the warm-up a session reads as one of an exec'd qmail-smtpd (never warmed up), queue contents too")
    func sameSessions() throws {
        let warmed = SmtpdFixture(), cold = SmtpdFixture()
        let inProcess = try #require(warmed.start())
        let execd = try #require(cold.start(exec: true))
        let a = session(warmed, port: inProcess.port), b = session(cold, port: execd.port)
        #expect(a == b)
        #expect(a.contains("|# go ahead|# ok # qp #|") && a.hasSuffix("|# mx.test closing connection|"), "\(a)")
        func queue(_ f: SmtpdFixture) -> [String] { f.queued.map { masked($0.envelope + "\n" + $0.message) }.sorted() }
        let queuedWarm = queue(warmed), queuedCold = queue(cold)
        #expect(queuedWarm.count == 2)
        #expect(queuedWarm == queuedCold)
    }
}
