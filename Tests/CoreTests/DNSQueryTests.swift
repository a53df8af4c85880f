// The resolver's transport against scripted servers on loopback: answers, retries across
// servers, SERVFAIL, spoofed and malformed replies, truncation and TCP, timeouts, refusals.
import Core
import Foundation
import Glibc
import Testing

/// A name server on 127.0.0.1 or ::1 (UDP and TCP on the same port) that answers each
/// query as `script` says. Runs on its own thread until `stop()`.
final class FakeDNSServer: @unchecked Sendable {
    enum Reply {
        case message(DNSMessage)
        case raw([UInt8])
        /// Several datagrams in a row (spoofs first, then the real one).
        case several([[UInt8]])
        case silence
    }
    enum Transport { case udp, tcp }

    let port: UInt16
    let ipv6: Bool
    private let udp: Int32
    private let tcp: Int32
    private let script: @Sendable (DNSMessage, Transport) -> Reply
    private let lock = NSLock()
    private var log: [(DNSQuestion, Transport)] = []
    /// (query id, client port) of every UDP query.
    private var origins: [(UInt16, UInt16)] = []
    private var running = true
    private var thread: Thread?

    init?(ipv6: Bool = false, tcp wantTCP: Bool = true, _ script: @escaping @Sendable (DNSMessage, Transport) -> Reply) {
        self.ipv6 = ipv6
        self.script = script
        guard let sockets = FakeDNSServer.openPair(ipv6: ipv6, tcp: wantTCP) else { return nil }
        (udp, tcp, port) = sockets
        let t = Thread { [unowned self] in self.serve() }
        thread = t
        t.start()
    }

    var server: DNSServer { DNSServer(IPAddress(ipv6 ? "::1" : "127.0.0.1")!, port: port) }

    var questions: [(DNSQuestion, Transport)] {
        lock.lock(); defer { lock.unlock() }
        return log
    }

    var udpOrigins: [(id: UInt16, port: UInt16)] {
        lock.lock(); defer { lock.unlock() }
        return origins.map { (id: $0.0, port: $0.1) }
    }

    func stop() {
        lock.lock(); running = false; lock.unlock()
        while thread?.isFinished == false { usleep(1000) }
        close(udp)
        if tcp >= 0 { close(tcp) }
    }

    private var isRunning: Bool { lock.lock(); defer { lock.unlock() }; return running }

    private func serve() {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while isRunning {
            var fds = [pollfd(fd: udp, events: Int16(POLLIN), revents: 0)]
            if tcp >= 0 { fds.append(pollfd(fd: tcp, events: Int16(POLLIN), revents: 0)) }
            guard poll(&fds, nfds_t(fds.count), 20) > 0 else { continue }
            if fds[0].revents != 0 {
                var from = sockaddr_storage()
                var fromLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
                let n = withUnsafeMutablePointer(to: &from) { p in
                    p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                        buffer.withUnsafeMutableBytes { recvfrom(udp, $0.baseAddress, $0.count, 0, sa, &fromLength) }
                    }
                }
                if n >= 2 {
                    let port = withUnsafePointer(to: &from) { p in
                        p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
                    }
                    lock.lock(); origins.append((UInt16(buffer[0]) << 8 | UInt16(buffer[1]), port)); lock.unlock()
                }
                if n > 0, let replies = answer(Array(buffer[0..<n]), .udp) {
                    for reply in replies {
                        _ = withUnsafePointer(to: &from) { p in
                            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                                reply.withUnsafeBytes { sendto(udp, $0.baseAddress, $0.count, 0, sa, fromLength) }
                            }
                        }
                    }
                }
            }
            if fds.count > 1, fds[1].revents != 0 {
                let c = accept(tcp, nil, nil)
                if c >= 0 { serveTCP(c) }
            }
        }
    }

    private func serveTCP(_ c: Int32) {
        defer { close(c) }
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            if data.count >= 2 {
                let length = Int(data[0]) << 8 | Int(data[1])
                if data.count >= 2 + length { break }
            }
            let n = chunk.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return }
            data += chunk[0..<n]
        }
        let length = Int(data[0]) << 8 | Int(data[1])
        guard let replies = answer(Array(data[2..<(2 + length)]), .tcp) else { return }
        for reply in replies {
            let framed = [UInt8(reply.count >> 8), UInt8(reply.count & 0xff)] + reply
            FD.writeAll(c, framed)
        }
    }

    private func answer(_ query: [UInt8], _ transport: Transport) -> [[UInt8]]? {
        guard case .success(let m) = DNSMessage.decode(query), let q = m.questions.first else { return nil }
        lock.lock(); log.append((q, transport)); lock.unlock()
        switch script(m, transport) {
        case .silence: return nil
        case .raw(let bytes): return [bytes]
        case .several(let list): return list
        case .message(let reply): return (try? reply.encode().get()).map { [$0] }
        }
    }

    /// UDP on an ephemeral port, then TCP on the same number; another test may hold that
    /// number for TCP already, so a few ports are tried.
    static func openPair(ipv6: Bool, tcp wantTCP: Bool) -> (Int32, Int32, UInt16)? {
        let family = ipv6 ? AF_INET6 : AF_INET
        for _ in 0..<50 {
            let udp = socket(family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard udp >= 0 else { return nil }
            guard bind(udp, ipv6: ipv6, port: 0) else { close(udp); return nil }
            let port = localPort(udp)
            guard wantTCP else { return (udp, -1, port) }
            let tcp = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            var one: Int32 = 1
            if tcp >= 0 { setsockopt(tcp, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size)) }
            if tcp >= 0, bind(tcp, ipv6: ipv6, port: port), listen(tcp, 8) == 0 { return (udp, tcp, port) }
            if tcp >= 0 { close(tcp) }
            close(udp)
        }
        return nil
    }

    static func bind(_ fd: Int32, ipv6: Bool, port: UInt16) -> Bool {
        if ipv6 {
            var sa = sockaddr_in6()
            sa.sin6_family = sa_family_t(AF_INET6)
            sa.sin6_port = port.bigEndian
            sa.sin6_addr = in6addr_loopback
            return withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            } == 0
        }
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        sa.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        return withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    static func localPort(_ fd: Int32) -> UInt16 {
        var sa = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return withUnsafePointer(to: &sa) { p in
            p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
        }
    }

    /// A reply to `query` carrying `answers`.
    static func reply(_ query: DNSMessage, _ answers: [DNSRecord] = [], rcode: DNSResponseCode = .noError,
                      truncated: Bool = false, recursive: Bool = true) -> DNSMessage {
        var r = query
        r.isResponse = true
        r.recursionAvailable = recursive
        r.responseCode = rcode
        r.truncated = truncated
        r.answers = answers
        return r
    }
}

/// A UDP port with nothing listening: queries there are refused by the kernel at once.
func closedUDPPort() -> UInt16 {
    let s = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    defer { close(s) }
    _ = FakeDNSServer.bind(s, ipv6: false, port: 0)
    return FakeDNSServer.localPort(s)
}

@Suite("DNS queries over the network", .serialized)
struct DNSQueryTests {
    static let host = DNSName("host.test")!

    static func a(_ name: DNSName, _ ip: String) -> DNSRecord { DNSRecord(name: name, ttl: 60, .a(IPAddress(ip)!)) }

    @Test func answersAndHelpers() throws {
        let server = try #require(FakeDNSServer { q, _ in
            let question = q.questions[0]
            switch (question.name.description, question.type) {
            case ("host.test", .a): return .message(FakeDNSServer.reply(q, [Self.a(question.name, "192.0.2.7")]))
            case ("host.test", .aaaa): return .message(FakeDNSServer.reply(q, [DNSRecord(name: question.name, .aaaa(IPAddress("2001:db8::7")!))]))
            case ("v4only.test", .a): return .message(FakeDNSServer.reply(q, [Self.a(question.name, "192.0.2.8")]))
            case ("host.test", .mx):
                return .message(FakeDNSServer.reply(q, [
                    DNSRecord(name: question.name, .mx(preference: 20, exchange: DNSName("b.test")!)),
                    DNSRecord(name: question.name, .mx(preference: 10, exchange: DNSName("a.test")!)),
                ]))
            case ("host.test", .txt):
                return .message(FakeDNSServer.reply(q, [DNSRecord(name: question.name, .txt([Array("one ".utf8), Array("two".utf8)]))]))
            case ("7.2.0.192.in-addr.arpa", .ptr):
                return .message(FakeDNSServer.reply(q, [DNSRecord(name: question.name, .ptr(DNSName("Host.TEST")!))]))
            case ("alias.test", .a):
                return .message(FakeDNSServer.reply(q, [DNSRecord(name: question.name, .cname(Self.host)), Self.a(Self.host, "192.0.2.7")]))
            case ("hop.test", .a):  // a non-recursive server: the client must ask again
                return .message(FakeDNSServer.reply(q, [DNSRecord(name: question.name, .cname(Self.host))], recursive: false))
            case ("loop.test", .a):
                return .message(FakeDNSServer.reply(q, [DNSRecord(name: question.name, .cname(question.name))], recursive: false))
            case (let n, _) where n.hasSuffix("host.test") || n == "v4only.test":
                return .message(FakeDNSServer.reply(q))
            default:
                return .message(FakeDNSServer.reply(q, rcode: .nameError))
            }
        })
        defer { server.stop() }
        let resolver = DNSResolver(servers: [server.server], timeout: 5)
        #expect(try resolver.query("host.test", .a).get() == [Self.a(Self.host, "192.0.2.7")])
        #expect(resolver.query("nothere.test", .a) == .failure(.nameNotFound))
        #expect(resolver.query("host.test", .ns) == .failure(.noData))
        #expect(try resolver.addresses(for: "host.test").get().map(\.description) == ["2001:db8::7", "192.0.2.7"])
        #expect(try resolver.addresses(for: "v4only.test").get().map(\.description) == ["192.0.2.8"])
        #expect(try resolver.addresses(for: "10.1.2.3").get().map(\.description) == ["10.1.2.3"])
        #expect(resolver.addresses(for: "nothere.test") == .failure(.nameNotFound))
        #expect(try resolver.mx(for: "host.test").get().map(\.preference) == [10, 20])
        #expect(try resolver.txt(for: "host.test").get() == [Array("one two".utf8)])
        #expect(try resolver.ptr(for: IPAddress("192.0.2.7")!).get().map(\.description) == ["host.test"])
        #expect(try resolver.query("alias.test", .a).get() == [Self.a(Self.host, "192.0.2.7")])
        #expect(try resolver.query("hop.test", .a).get() == [Self.a(Self.host, "192.0.2.7")])
        if case .failure(.permanent) = resolver.query("loop.test", .a) {} else { Issue.record("CNAME loop not reported") }
        if case .failure(.permanent) = resolver.query(String(repeating: "x", count: 70), .a) {} else { Issue.record("bad name accepted") }
        // Asynchronous use: the fd can be polled next to others.
        let query = resolver.start(Self.host, .a)
        #expect(query.fd >= 0)
        var result: Result<DNSMessage, DNSError>?
        while result == nil {
            var p = pollfd(fd: query.fd, events: query.events, revents: 0)
            _ = poll(&p, 1, 100)
            if case .done(let r) = query.receive() { result = r }
        }
        #expect(query.fd == -1)
        let message = try #require(try result?.get())
        #expect(DNSAnswer.extract(message, for: query.question) == .records([Self.a(Self.host, "192.0.2.7")]))
    }

    @Test func randomIDsAndSourcePorts() throws {
        let server = try #require(FakeDNSServer(ipv6: true) { q, _ in .message(FakeDNSServer.reply(q, rcode: .nameError)) })
        defer { server.stop() }
        let resolver = DNSResolver(servers: [server.server], timeout: 5)
        for i in 0..<30 { #expect(resolver.query("n\(i).test", .a) == .failure(.nameNotFound)) }
        let origins = server.udpOrigins
        #expect(origins.count == 30)
        #expect(Set(origins.map(\.id)).count >= 25)
        #expect(Set(origins.map(\.port)).count >= 25)
    }

    @Test func fallsBackAcrossServers() throws {
        let failing = try #require(FakeDNSServer { q, _ in .message(FakeDNSServer.reply(q, rcode: .serverFailure)) })
        defer { failing.stop() }
        let refusing = try #require(FakeDNSServer { q, _ in .message(FakeDNSServer.reply(q, rcode: .refused)) })
        defer { refusing.stop() }
        let good = try #require(FakeDNSServer(ipv6: true) { q, _ in .message(FakeDNSServer.reply(q, [Self.a(q.questions[0].name, "192.0.2.1")])) })
        defer { good.stop() }
        let closed = DNSServer(IPAddress("127.0.0.1")!, port: closedUDPPort())
        let resolver = DNSResolver(servers: [closed, failing.server, refusing.server, good.server], timeout: 5)
        let started = MonotonicClock.now()
        #expect(try resolver.query("x.test", .a).get().count == 1)
        #expect(MonotonicClock.now() - started < 2)
        #expect(failing.questions.count == 1 && refusing.questions.count == 1 && good.questions.count == 1)

        // Only SERVFAIL: temporary, after every round.
        let onlyFailing = DNSResolver(servers: [failing.server], timeout: 5, udpTimeouts: [0.5, 0.5])
        if case .failure(.temporary) = onlyFailing.query("x.test", .a) {} else { Issue.record("SERVFAIL not temporary") }
        // Only refusals: permanent.
        let onlyRefusing = DNSResolver(servers: [refusing.server], timeout: 5, udpTimeouts: [0.5])
        if case .failure(.permanent) = onlyRefusing.query("x.test", .a) {} else { Issue.record("REFUSED not permanent") }
        // Nobody listening: temporary, and quickly.
        let t0 = MonotonicClock.now()
        if case .failure(.temporary) = DNSResolver(servers: [closed], timeout: 5).query("x.test", .a) {} else {
            Issue.record("closed port not temporary")
        }
        #expect(MonotonicClock.now() - t0 < 2)
    }

    @Test func silentServerTimesOut() throws {
        let silent = try #require(FakeDNSServer { _, _ in .silence })
        defer { silent.stop() }
        let started = MonotonicClock.now()
        let result = DNSResolver(servers: [silent.server], timeout: 1.2).query("x.test", .a)
        let elapsed = MonotonicClock.now() - started
        #expect(result == .failure(.temporary("timed out")))
        #expect(elapsed >= 1.1 && elapsed < 3)
        // Retransmissions with a short schedule: one query per round.
        let retries = DNSResolver(servers: [silent.server], timeout: 5, udpTimeouts: [0.2, 0.2, 0.2]).query("y.test", .a)
        #expect(retries.isTemporaryFailure)
        #expect(silent.questions.filter { $0.0.name.description == "y.test" }.count == 3)
    }

    @Test func ignoresSpoofedAndAcceptsTheRealAnswer() throws {
        let server = try #require(FakeDNSServer { q, _ in
            var wrongID = FakeDNSServer.reply(q, [Self.a(q.questions[0].name, "6.6.6.6")])
            wrongID.id &+= 1
            var wrongName = FakeDNSServer.reply(q, [Self.a(DNSName("evil.test")!, "6.6.6.6")])
            wrongName.questions = [DNSQuestion(DNSName("evil.test")!, .a)]
            var notResponse = FakeDNSServer.reply(q, [Self.a(q.questions[0].name, "6.6.6.6")])
            notResponse.isResponse = false
            let real = FakeDNSServer.reply(q, [Self.a(q.questions[0].name, "192.0.2.2")])
            return .several([try! wrongID.encode().get(), try! wrongName.encode().get(), try! notResponse.encode().get(),
                             [1, 2, 3], try! real.encode().get()])
        })
        defer { server.stop() }
        let records = try DNSResolver(servers: [server.server], timeout: 5).query("Real.Test", .a).get()
        #expect(records.map(\.data) == [.a(IPAddress("192.0.2.2")!)])
    }

    @Test func malformedAnswerIsTemporary() throws {
        let server = try #require(FakeDNSServer { q, _ in
            // Header and question right, then an answer count with garbage behind it.
            var r = try! FakeDNSServer.reply(q).encode().get()
            r[7] = 3
            return .raw(r + [0xc0, 0xff, 0, 1])
        })
        defer { server.stop() }
        let result = DNSResolver(servers: [server.server], timeout: 5, udpTimeouts: [0.3]).query("x.test", .a)
        #expect(result.isTemporaryFailure)
    }

    @Test func truncatedAnswerSwitchesToTCP() throws {
        let many = (0..<60).map { DNSRecord(name: DNSName("big.test")!, .txt([Array(repeating: UInt8(65 + $0 % 26), count: 200)])) }
        let server = try #require(FakeDNSServer { q, transport in
            transport == .udp ? .message(FakeDNSServer.reply(q, Array(many.prefix(1)), truncated: true))
                              : .message(FakeDNSServer.reply(q, many))
        })
        defer { server.stop() }
        let records = try DNSResolver(servers: [server.server], timeout: 5).txt(for: "big.test").get()
        #expect(records.count == 60)
        #expect(server.questions.map(\.1) == [.udp, .tcp])

        // TCP that is not there: temporary failure.
        let udpOnly = try #require(FakeDNSServer(tcp: false) { q, _ in .message(FakeDNSServer.reply(q, truncated: true)) })
        defer { udpOnly.stop() }
        #expect(DNSResolver(servers: [udpOnly.server], timeout: 5).query("big.test", .txt).isTemporaryFailure)
    }
}

extension Result where Failure == DNSError {
    var isTemporaryFailure: Bool { if case .failure(let e) = self { return e.isTemporary } else { return false } }
}
