// The wire format between queue clients and qmail-queued. One request per connection on a
// local stream socket: three netstrings (the client's environment as NUL-terminated
// `NAME=value` entries, the message, the client envelope), answered by one netstring
// holding qmail-queue's exit code and the pid of the worker that wrote the files
// (`0 4321`). The exit codes and their meaning are qmail-queue's (QueueExit).
import Core
import Glibc

public enum QueueService {
    /// Beyond these sizes a client queues through qmail-queue instead: a request is held
    /// whole in memory on both sides, and a worker is busy only while it writes.
    public static let maximumMessage = 1 << 20
    public static let maximumEnvelope = 256 * 1024
    public static let maximumEnvironment = 64 * 1024
    /// A worker waits this long for a whole request before giving up on the client.
    public static let requestSeconds = 60.0

    /// What a worker needs to queue one message.
    public struct Request: Equatable, Sendable {
        public var environment: Environment
        public var message: [UInt8]
        public var envelope: [UInt8]

        public init(environment: Environment, message: [UInt8], envelope: [UInt8]) {
            self.environment = environment
            self.message = message
            self.envelope = envelope
        }

        public var bytes: [UInt8] {
            var env: [UInt8] = []
            for entry in environment.entries { env += entry + [0] }
            var out = Netstring.encode(env)
            out.reserveCapacity(out.count + message.count + envelope.count + 24)
            out += Netstring.encode(message)
            out += Netstring.encode(envelope)
            return out
        }
    }

    public enum RequestError: Error, Equatable, Sendable, CustomStringConvertible {
        case framing(NetstringError)
        case tooLarge(String)
        case timeout
        case readFailed(String)

        public var description: String {
            switch self {
            case .framing(let e): return "bad request: \(e)"
            case .tooLarge(let part): return "bad request: \(part) too large"
            case .timeout: return "client too slow"
            case .readFailed(let e): return e
            }
        }
    }

    /// Decodes the environment netstring: entries end with NUL; an entry without `=` or
    /// with an empty name is dropped, as exec would never pass one.
    public static func environment(_ bytes: [UInt8]) -> Environment {
        var entries: [[UInt8]] = []
        var start = 0
        for (i, b) in bytes.enumerated() where b == 0 {
            let entry = Array(bytes[start..<i])
            start = i + 1
            guard let eq = entry.firstIndex(of: UInt8(ascii: "=")), eq > 0 else { continue }
            entries.append(entry)
        }
        return Environment(entries: entries)
    }

    public static func reply(code: Int32, pid: pid_t) -> [UInt8] {
        Netstring.encode("\(code) \(pid)")
    }

    /// The exit code and worker pid of a reply netstring's content; nil when malformed.
    public static func parseReply(_ content: [UInt8]) -> (code: Int32, pid: pid_t)? {
        let parts = content.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
        guard parts.count == 2,
              let code = decimal(parts[0]), code <= 255,
              let pid = decimal(parts[1]), pid <= Int(Int32.max) else { return nil }
        return (Int32(code), pid_t(pid))
    }

    private static func decimal(_ digits: ArraySlice<UInt8>) -> Int? {
        guard !digits.isEmpty, digits.count <= 10 else { return nil }
        var n = 0
        for d in digits {
            guard d >= 48, d <= 57 else { return nil }
            n = n * 10 + Int(d - 48)
        }
        return n
    }

    /// Reads one whole request from `fd` before the monotonic `deadline`.
    public static func readRequest(_ fd: Int32, deadline: Double) -> Result<Request, RequestError> {
        var reader = DeadlineReader(fd: fd, deadline: deadline)
        func field(_ name: String, limit: Int) -> Result<[UInt8], RequestError> {
            var stream = NetstringStream(source: { reader.byte() })
            let length: Int
            switch stream.length() {
            case .success(let n): length = n
            case .failure(let e): return .failure(reader.failure ?? .framing(e))
            }
            guard length <= limit else { return .failure(.tooLarge(name)) }
            guard let value = reader.bytes(length) else { return .failure(reader.failure ?? .framing(.truncated)) }
            var tail = NetstringStream(source: { reader.byte() })
            if case .failure(let e) = tail.comma() { return .failure(reader.failure ?? .framing(e)) }
            return .success(value)
        }
        let env: [UInt8], message: [UInt8], envelope: [UInt8]
        switch field("environment", limit: maximumEnvironment) { case .success(let v): env = v; case .failure(let e): return .failure(e) }
        switch field("message", limit: maximumMessage) { case .success(let v): message = v; case .failure(let e): return .failure(e) }
        switch field("envelope", limit: maximumEnvelope) { case .success(let v): envelope = v; case .failure(let e): return .failure(e) }
        return .success(Request(environment: environment(env), message: message, envelope: envelope))
    }
}

/// Buffered reads from a socket that give up at a monotonic deadline.
struct DeadlineReader {
    let fd: Int32
    let deadline: Double
    private var buffer = [UInt8](repeating: 0, count: 16384)
    private var start = 0
    private var end = 0
    private(set) var failure: QueueService.RequestError?

    init(fd: Int32, deadline: Double) {
        self.fd = fd
        self.deadline = deadline
    }

    private mutating func fill() -> Bool {
        guard failure == nil else { return false }
        while true {
            guard FD.waitUntil(fd, events: Int16(POLLIN), deadline: deadline) else {
                failure = .timeout
                return false
            }
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n > 0 { start = 0; end = n; return true }
            if n == 0 { return false }
            if errno == EINTR || errno == EAGAIN { continue }
            failure = .readFailed(SystemError("unable to read request").description)
            return false
        }
    }

    mutating func byte() -> UInt8? {
        if start == end, !fill() { return nil }
        defer { start += 1 }
        return buffer[start]
    }

    /// Exactly `count` bytes, or nil at end of input.
    mutating func bytes(_ count: Int) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(count)
        while out.count < count {
            if start == end, !fill() { return nil }
            let take = min(count - out.count, end - start)
            out += buffer[start..<(start + take)]
            start += take
        }
        return out
    }
}

/// The input of one qmail-queued request: both parts already in memory.
struct RequestInput: InjectionInput {
    let message: [UInt8]
    let envelope: [UInt8]

    mutating func copyMessage(into out: BufferedWriter) -> Int32? {
        out.write(message).isSuccess ? nil : QueueExit.writeError.rawValue
    }

    mutating func readEnvelope() -> Result<Envelope, EnvelopeError> {
        var reader = EnvelopeReader()
        for b in envelope {
            switch reader.feed(b) {
            case .needMore: continue
            case .complete: return .success(reader.envelope)
            case .failed(let e): return .failure(e)
            }
        }
        return .failure(.truncated)
    }

    /// The network client is named by TCPREMOTEIP or not at all: the worker's own
    /// descriptors say nothing about the injector's.
    func peerAddress() -> String? { nil }
}
