// qmail-qmqpc: a qmail-queue replacement that hands the message to a QMQP server instead
// of a local queue (message on fd 0, envelope on fd 1, qmail-queue's exit codes).
import Core
import Glibc

public struct QmqpcCommand: Command {
    public static let name = "qmail-qmqpc"
    public static let installDirectory = InstallDirectory.sbin
    public static let summary = "queue a message on a QMQP server"

    /// The request: netstring(netstring(message) netstring(sender) netstring(rcpt)...).
    /// Fails with qmail-queue's exit code for a malformed envelope.
    public static func request(message: [UInt8], envelope: [UInt8]) -> Result<[UInt8], QueueExitCode> {
        // Records are NUL-terminated: F<sender>, T<rcpt>..., then an empty record.
        var records: [[UInt8]] = []
        var current: [UInt8] = []
        var finished = false
        for b in envelope {
            if b == 0 {
                if current.isEmpty { finished = true; break }
                records.append(current)
                current = []
            } else {
                current.append(b)
            }
        }
        guard finished || !records.isEmpty else { return .failure(QueueExitCode(QueueExit.envelopeFormat.rawValue)) }
        guard let first = records.first, first.first == UInt8(ascii: "F") else {
            return .failure(QueueExitCode(QueueExit.envelopeFormat.rawValue))
        }
        guard finished else { return .failure(QueueExitCode(QueueExit.envelopeFormat.rawValue)) }
        var inner = Netstring.encode(message) + Netstring.encode(first.dropFirst())
        for r in records.dropFirst() {
            guard r.first == UInt8(ascii: "T") else { return .failure(QueueExitCode(QueueExit.envelopeFormat.rawValue)) }
            inner += Netstring.encode(r.dropFirst())
        }
        return .success(Netstring.encode(inner))
    }

    /// The exit code for a server's reply: K 0, Z 71, D 31; nil when it holds none.
    public static func verdict(_ reply: [UInt8]) -> Int32? {
        for b in reply {
            switch b {
            case UInt8(ascii: "K"): return 0
            case UInt8(ascii: "Z"): return QueueExit.temporaryReject.rawValue
            case UInt8(ascii: "D"): return QueueExit.permanentReject.rawValue
            default: continue
            }
        }
        return nil
    }

    public static func run(_ context: CommandContext) -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        let env = context.environment
        let control = ControlFiles(paths: SuitePaths(environment: env))
        let config = QueueExit.configError.rawValue
        var servers = context.strings
        var sticky = false
        if servers.isEmpty {
            switch control.list("qmqpservers") {
            case .success(let list?) where !list.isEmpty: servers = list
            default: return config
            }
            if let st = Path.status(control.path("qmqpservers")), st.st_mode & S_ISVTX != 0 { sticky = true }
        }
        guard case .success(let timeoutRemote) = control.integer("timeoutremote", default: 60),
              case .success(let timeoutConnect) = control.integer("timeoutconnect", default: 10) else { return config }

        let message: [UInt8]
        switch FD.readAll(0) {
        case .success(let m): message = m
        case .failure: return QueueExit.readError.rawValue
        }
        let envelope: [UInt8]
        switch FD.readAll(1) {
        case .success(let e): envelope = e
        case .failure: return QueueExit.readError.rawValue
        }
        let body: [UInt8]
        switch request(message: message, envelope: envelope) {
        case .success(let b): body = b
        case .failure(let failure): return failure.code
        }
        var local: IPAddress? = nil
        let outgoing: String? = env.nonEmpty("OUTGOINGIP") ?? ((try? control.value("outgoingip").get()) ?? nil)
        if let outgoing, outgoing != "0.0.0.0", outgoing != "::" {
            guard let ip = IPAddress.parse(outgoing) else { return QueueExit.envelopeFormat.rawValue }
            local = ip
        }
        var port: UInt16 = 628
        if let p = env.nonEmpty("PORT_QMQP") { port = UInt16(p) ?? port }

        // With the sticky bit on qmqpservers, start at (now mod n) to spread the load.
        if sticky, servers.count > 1 {
            let start = Int(time(nil) % time_t(servers.count))
            servers = Array(servers[start...] + servers[..<start])
        }
        var lastError = config
        for server in servers {
            guard let ip = IPAddress.parse(server) else { continue }
            let fd: Int32
            switch Socket.connect(to: .inet(ip, port: port, scope: 0), from: local, timeout: Double(timeoutConnect)) {
            case .success(let s): fd = s
            case .failure(let e):
                lastError = e.errno == ETIMEDOUT ? QueueExit.connectionTimeout.rawValue : QueueExit.connectionRejected.rawValue
                continue
            }
            defer { FD.close(fd) }
            return exchange(fd, body, timeout: Double(timeoutRemote))
        }
        return lastError
    }

    /// Sends the request and reads the reply; a dead or silent server is 74.
    static func exchange(_ fd: Int32, _ body: [UInt8], timeout: Double) -> Int32 {
        let failed = QueueExit.connectionFailed.rawValue
        var offset = 0
        let deadline = MonotonicClock.now() + timeout
        while offset < body.count {
            guard FD.waitUntil(fd, events: Int16(POLLOUT), deadline: deadline) else { return failed }
            let n = body[offset...].withUnsafeBytes { FD.write(fd, $0) }
            guard case .success(let written) = n, written > 0 else { return failed }
            offset += written
        }
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1024)
        while reply.count < 65536 {
            guard FD.waitUntil(fd, events: Int16(POLLIN), deadline: deadline) else { return failed }
            let r = buffer.withUnsafeMutableBytes { FD.read(fd, $0) }
            guard case .success(let n) = r, n > 0 else { break }
            reply += buffer[0..<n]
            if let code = verdict(reply) { return code }
        }
        return verdict(reply) ?? failed
    }
}

/// A qmail-queue exit code as an error value.
public struct QueueExitCode: Error, Equatable, Sendable {
    public let code: Int32
    public init(_ code: Int32) { self.code = code }
}
