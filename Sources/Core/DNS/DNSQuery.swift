// One question in flight: UDP to each server in turn with growing timeouts, TCP when an
// answer comes back truncated. Non-blocking throughout, so an event loop (tcpserver) can
// poll `fd` for `events` next to its other descriptors and call `receive()`.
import Glibc

/// How a lookup failed. NXDOMAIN and "no records of that type" are answers, not failures,
/// but they carry no records, so they are reported here too.
public enum DNSError: Error, Equatable, Sendable, CustomStringConvertible {
    /// NXDOMAIN: the name does not exist.
    case nameNotFound
    /// The name exists but has no record of the asked type.
    case noData
    /// Worth trying again later: timeouts, SERVFAIL, network errors, malformed answers.
    case temporary(String)
    /// Will not get better by retrying: an unusable name, every server refusing.
    case permanent(String)

    public var isTemporary: Bool { if case .temporary = self { return true } else { return false } }

    public var description: String {
        switch self {
        case .nameNotFound: return "name does not exist"
        case .noData: return "no records of that type"
        case .temporary(let why): return "temporary DNS failure: \(why)"
        case .permanent(let why): return "permanent DNS failure: \(why)"
        }
    }
}

public final class DNSQuery {
    public enum Progress: Sendable {
        /// Still waiting: poll `fd` for `events` until `deadline`, then call `receive()` again.
        case pending
        /// The server's answer (rcode NOERROR or NXDOMAIN), or why there is none.
        case done(Result<DNSMessage, DNSError>)
    }

    public let question: DNSQuestion
    /// The socket to watch; it changes from one attempt to the next, and is -1 once done.
    public private(set) var fd: Int32 = -1
    /// POLLIN or POLLOUT, for `fd`.
    public private(set) var events = Int16(POLLIN)
    /// When `receive()` must be called even if `fd` never becomes ready (monotonic seconds).
    public private(set) var deadline: Double

    /// djbdns's retransmission schedule for a recursive server: each round asks every
    /// server once and waits longer.
    public static let udpTimeouts: [Double] = [3, 11, 45]
    /// How long one TCP server gets, to connect and then again to answer.
    public static let tcpTimeout: Double = 10

    private enum State {
        case udp(round: Int, server: Int)
        case tcpConnecting(first: Int, tried: Int)
        case tcpWriting(first: Int, tried: Int, sent: Int)
        case tcpReading(first: Int, tried: Int)
        case finished
    }

    private let servers: [DNSServer]
    private let udpTimeouts: [Double]
    private let overallDeadline: Double
    private var state = State.finished
    private var id: UInt16 = 0
    private var packet: [UInt8] = []
    private var tcpBuffer: [UInt8] = []
    private var outcome: Result<DNSMessage, DNSError>?
    // Why attempts failed, to choose between temporary and permanent at the end.
    private var temporaryReason: String?
    private var refusalReason: String?

    /// Starts asking `servers` about `question`; gives up after `timeout` seconds in all.
    public init(_ question: DNSQuestion, servers: [DNSServer], timeout: Double,
                udpTimeouts: [Double] = DNSQuery.udpTimeouts, now: Double = MonotonicClock.now()) {
        self.question = question
        self.servers = Array(servers.prefix(DNSServer.maxServers))
        self.udpTimeouts = udpTimeouts.isEmpty ? DNSQuery.udpTimeouts : udpTimeouts
        self.overallDeadline = now + max(0, timeout)
        self.deadline = overallDeadline
        if self.servers.isEmpty {
            finish(.failure(.temporary("no name servers")))
            return
        }
        startUDP(round: 0, server: 0, now: now)
    }

    deinit { closeSocket() }

    public var isFinished: Bool { outcome != nil }

    /// Does whatever I/O is ready (never blocks) and reports where the query stands.
    public func receive(now: Double = MonotonicClock.now()) -> Progress {
        if let outcome { return .done(outcome) }
        if now >= overallDeadline {
            finish(.failure(.temporary("timed out")))
            return progress
        }
        switch state {
        case .udp(let round, let server): receiveUDP(round: round, server: server, now: now)
        case .tcpConnecting(let first, let tried): checkConnected(first: first, tried: tried, now: now)
        case .tcpWriting(let first, let tried, let sent): sendTCP(first: first, tried: tried, sent: sent, now: now)
        case .tcpReading(let first, let tried): receiveTCP(first: first, tried: tried, now: now)
        case .finished: break
        }
        return progress
    }

    /// Blocks (poll) until the query is done.
    public func wait() -> Result<DNSMessage, DNSError> {
        while true {
            if case .done(let result) = receive() { return result }
            let remaining = deadline - MonotonicClock.now()
            if remaining > 0 {
                var p = pollfd(fd: fd, events: events, revents: 0)
                _ = poll(&p, 1, Int32(min(remaining * 1000 + 1, 3_600_000)))
            }
        }
    }

    private var progress: Progress { outcome.map { .done($0) } ?? .pending }

    private func finish(_ result: Result<DNSMessage, DNSError>) {
        closeSocket()
        state = .finished
        outcome = result
        fd = -1
    }

    private func failAll() {
        if let temporaryReason {
            finish(.failure(.temporary(temporaryReason)))
        } else if let refusalReason {
            finish(.failure(.permanent(refusalReason)))
        } else {
            finish(.failure(.temporary("no usable name server")))
        }
    }

    private func noteTemporary(_ why: String) { temporaryReason = why }

    private func closeSocket() {
        if fd >= 0 { _ = close(fd) }
        fd = -1
    }

    /// A fresh random id (getrandom, through the standard library's system generator)
    /// and the query packet carrying it.
    private func newPacket() {
        var generator = SystemRandomNumberGenerator()
        id = UInt16.random(in: 0...UInt16.max, using: &generator)
        packet = (try? DNSMessage.query(id: id, question).encode(compress: false).get()) ?? []
    }

    // MARK: UDP

    private func startUDP(round: Int, server: Int, now: Double) {
        var round = round, index = server
        while round < udpTimeouts.count {
            while index < servers.count {
                if now >= overallDeadline { failAll(); return }
                if sendUDP(to: servers[index]) {
                    state = .udp(round: round, server: index)
                    events = Int16(POLLIN)
                    deadline = min(now + udpTimeouts[round], overallDeadline)
                    return
                }
                index += 1
            }
            round += 1
            index = 0
        }
        failAll()
    }

    private func nextUDP(round: Int, server: Int, now: Double) {
        closeSocket()
        startUDP(round: round, server: server + 1, now: now)
    }

    /// A new connected datagram socket: the kernel picks a random source port when it
    /// binds it implicitly, which is all the port randomisation a stub needs.
    private func sendUDP(to server: DNSServer) -> Bool {
        closeSocket()
        newPacket()
        guard let s = DNSSocket.open(server, stream: false) else {
            noteTemporary("unable to create socket for \(server): \(SystemError.describe(errno))")
            return false
        }
        fd = s
        guard DNSSocket.connect(s, server) == 0 else {
            noteTemporary("unable to reach \(server): \(SystemError.describe(errno))")
            closeSocket()
            return false
        }
        let sent = packet.withUnsafeBytes { send(s, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard sent == packet.count else {
            noteTemporary("unable to send to \(server): \(SystemError.describe(errno))")
            closeSocket()
            return false
        }
        return true
    }

    private func receiveUDP(round: Int, server: Int, now: Double) {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_TRUNC)) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { break }
                // ECONNREFUSED and the like: nobody answers there; move on at once.
                noteTemporary("\(servers[server]): \(SystemError.describe(errno))")
                nextUDP(round: round, server: server, now: now)
                return
            }
            // Without EDNS a server keeps to 512 bytes; anything that did not fit is not ours.
            guard n <= buffer.count else { continue }
            let reply = Array(buffer[0..<n])
            guard isRelevant(reply) else { continue }
            let header = decodeHeader(reply)
            if header.truncated {
                startTCP(first: server, tried: 0, now: now)
                return
            }
            if !accept(reply, from: servers[server]) {
                nextUDP(round: round, server: server, now: now)
            }
            return
        }
        if now >= deadline {
            noteTemporary("timed out")
            nextUDP(round: round, server: server, now: now)
        }
    }

    // MARK: answers

    private func decodeHeader(_ reply: [UInt8]) -> (truncated: Bool, rcode: DNSResponseCode) {
        guard reply.count >= 4 else { return (false, .formatError) }
        return (reply[2] & 0x02 != 0, DNSResponseCode(rawValue: reply[3] & 15))
    }

    /// A response to this very query: our id, the QR bit, a standard query, and our
    /// question echoed. Anything else (spoofing attempts, late answers to an earlier
    /// attempt) is ignored.
    private func isRelevant(_ reply: [UInt8]) -> Bool {
        guard case .success(let m) = DNSMessage.decodeHeaderAndQuestions(reply) else { return false }
        return m.id == id && m.isResponse && m.opcode == 0 && m.questions.count == 1
            && m.questions[0].name == question.name && m.questions[0].type == question.type
            && m.questions[0].dnsClass == question.dnsClass
    }

    /// Finishes with a usable answer, or notes why this server's answer is not one.
    private func accept(_ reply: [UInt8], from server: DNSServer) -> Bool {
        let rcode = decodeHeader(reply).rcode
        switch rcode {
        case .noError, .nameError:
            switch DNSMessage.decode(reply) {
            case .success(let message):
                finish(.success(message))
                return true
            case .failure(let error):
                noteTemporary("\(server): \(error)")
                return false
            }
        case .serverFailure:
            noteTemporary("\(server): SERVFAIL")
            return false
        default:
            refusalReason = "\(server): \(rcode)"
            return false
        }
    }

    // MARK: TCP

    private func startTCP(first: Int, tried: Int, now: Double) {
        closeSocket()
        var tried = tried
        while tried < servers.count {
            if now >= overallDeadline { failAll(); return }
            let server = servers[(first + tried) % servers.count]
            newPacket()
            if let s = DNSSocket.open(server, stream: true) {
                fd = s
                deadline = min(now + DNSQuery.tcpTimeout, overallDeadline)
                events = Int16(POLLOUT)
                if DNSSocket.connect(s, server) == 0 {
                    state = .tcpWriting(first: first, tried: tried, sent: 0)
                    return
                }
                if errno == EINPROGRESS || errno == EAGAIN {
                    state = .tcpConnecting(first: first, tried: tried)
                    return
                }
                noteTemporary("unable to connect to \(server): \(SystemError.describe(errno))")
                closeSocket()
            } else {
                noteTemporary("unable to create socket for \(server): \(SystemError.describe(errno))")
            }
            tried += 1
        }
        failAll()
    }

    private func nextTCP(first: Int, tried: Int, now: Double, reason: String?) {
        if let reason { noteTemporary("\(servers[(first + tried) % servers.count]) (TCP): \(reason)") }
        startTCP(first: first, tried: tried + 1, now: now)
    }

    private func checkConnected(first: Int, tried: Int, now: Double) {
        var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        if poll(&p, 1, 0) <= 0 {
            if now >= deadline { nextTCP(first: first, tried: tried, now: now, reason: "connect timed out") }
            return
        }
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        if getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0 { error = errno }
        guard error == 0 else {
            nextTCP(first: first, tried: tried, now: now, reason: SystemError.describe(error))
            return
        }
        state = .tcpWriting(first: first, tried: tried, sent: 0)
        sendTCP(first: first, tried: tried, sent: 0, now: now)
    }

    private func sendTCP(first: Int, tried: Int, sent: Int, now: Double) {
        let framed = [UInt8(packet.count >> 8), UInt8(packet.count & 0xff)] + packet
        var sent = sent
        while sent < framed.count {
            let n = framed.withUnsafeBytes { send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK {
                    state = .tcpWriting(first: first, tried: tried, sent: sent)
                    if now >= deadline { nextTCP(first: first, tried: tried, now: now, reason: "timed out") }
                    return
                }
                nextTCP(first: first, tried: tried, now: now, reason: SystemError.describe(errno))
                return
            }
            sent += n
        }
        tcpBuffer = []
        state = .tcpReading(first: first, tried: tried)
        events = Int16(POLLIN)
        deadline = min(now + DNSQuery.tcpTimeout, overallDeadline)
    }

    private func receiveTCP(first: Int, tried: Int, now: Double) {
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { break }
                nextTCP(first: first, tried: tried, now: now, reason: SystemError.describe(errno))
                return
            }
            if n == 0 {
                nextTCP(first: first, tried: tried, now: now, reason: "connection closed before the answer")
                return
            }
            tcpBuffer += chunk[0..<n]
            guard tcpBuffer.count >= 2 else { continue }
            let length = Int(tcpBuffer[0]) << 8 | Int(tcpBuffer[1])
            guard tcpBuffer.count >= 2 + length else { continue }
            let reply = Array(tcpBuffer[2..<(2 + length)])
            let server = servers[(first + tried) % servers.count]
            guard isRelevant(reply) else {
                nextTCP(first: first, tried: tried, now: now, reason: "answer does not match the question")
                return
            }
            if !accept(reply, from: server) { startTCP(first: first, tried: tried + 1, now: now) }
            return
        }
        if now >= deadline { nextTCP(first: first, tried: tried, now: now, reason: "timed out") }
    }
}

/// Socket calls for the resolver, over IPv4 or IPv6 as the server's address asks.
enum DNSSocket {
    static func open(_ server: DNSServer, stream: Bool) -> Int32? {
        let family = server.address.isIPv4 ? AF_INET : AF_INET6
        let kind = (stream ? Int32(SOCK_STREAM.rawValue) : Int32(SOCK_DGRAM.rawValue))
            | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        let s = socket(family, kind, 0)
        return s >= 0 ? s : nil
    }

    /// connect(2), retried on EINTR; returns 0 or -1 with errno set.
    static func connect(_ fd: Int32, _ server: DNSServer) -> Int32 {
        withAddress(server) { address, length in
            while true {
                let r = Glibc.connect(fd, address, length)
                if r == 0 || errno != EINTR { return r }
            }
        }
    }

    static func withAddress<T>(_ server: DNSServer, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
        if server.address.isIPv4 {
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = server.port.bigEndian
            withUnsafeMutableBytes(of: &sa.sin_addr) { raw in
                for i in 0..<4 { raw[i] = server.address.bytes[i] }
            }
            return withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
        var sa = sockaddr_in6()
        sa.sin6_family = sa_family_t(AF_INET6)
        sa.sin6_port = server.port.bigEndian
        sa.sin6_scope_id = server.scopeID
        withUnsafeMutableBytes(of: &sa.sin6_addr) { raw in
            for i in 0..<16 { raw[i] = server.address.bytes[i] }
        }
        return withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
        }
    }
}
