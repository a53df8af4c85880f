// The client side of qmail-queue, shared by every front end (qmail-inject, sendmail,
// qmail-smtpd, qmail-qmtpd, qmail-qmqpd, bounces): start the queue program, stream the
// message into its fd 0, hand it the envelope on fd 1, and read its verdict.
import Core
import Glibc

/// What a queue program said about one submission.
public enum QueueVerdict: Equatable, Sendable {
    /// Exit 0: the message is safely queued. `pid` is the queue program's pid (the `qp`
    /// of "250 ok ... qp N").
    case accepted(pid: pid_t)
    /// A non-zero exit: `code` is the reference's exit code (see QueueExit), `custom` the
    /// text of a custom error (exit 88: the program wrote `Dtext` or `Ztext` on fd 2
    /// when CUSTOM_ERR_FILTER was set).
    case refused(code: Int32, custom: String?)
    /// The queue program died on a signal or could not be waited for.
    case crashed(String)

    public var isPermanent: Bool {
        if case .refused(let code, _) = self { return QueueExit.isPermanent(code) }
        return false
    }

    /// The reference's text for the verdict, led by its D (permanent) or Z (temporary)
    /// letter as in QueueExit.replyText.
    public var replyText: String {
        switch self {
        case .accepted: return "Kok"
        case .refused(let code, let custom): return QueueExit.replyText(for: code, custom: custom)
        case .crashed: return QueueExit.replyText(for: QueueExit.crashed.rawValue)
        }
    }
}

/// One running qmail-queue: write the message with `write`, then call `finish` once.
public struct QueueSubmission: ~Copyable {
    public let pid: pid_t
    private let messageFD: Int32
    private let envelopeFD: Int32
    private let errorFD: Int32
    private var writeFailed = false

    /// The program chosen as the reference does: `$QMAILQUEUE` when set and non-empty,
    /// else `qmail-queue` next to the running suite (`$PREFIX/sbin/qmail-queue` when
    /// PREFIX is set, found on PATH otherwise).
    public static func program(environment env: Environment) -> String {
        if let chosen = env.nonEmpty("QMAILQUEUE") { return chosen }
        if let prefix = env.nonEmpty("PREFIX") { return Path.join(prefix, "sbin/qmail-queue") }
        return "qmail-queue"
    }

    /// Starts the queue program with `environment`. `arguments` follow the program name
    /// (normally none).
    public static func start(environment: Environment, arguments: [[UInt8]] = []) -> Result<QueueSubmission, SystemError> {
        let program = Self.program(environment: environment)
        let message: (read: Int32, write: Int32), envelope: (read: Int32, write: Int32), errors: (read: Int32, write: Int32)
        switch FD.pipe() { case .success(let p): message = p; case .failure(let e): return .failure(e) }
        switch FD.pipe() {
        case .success(let p): envelope = p
        case .failure(let e): FD.close(message.read); FD.close(message.write); return .failure(e)
        }
        switch FD.pipe() {
        case .success(let p): errors = p
        case .failure(let e):
            for fd in [message.read, message.write, envelope.read, envelope.write] { FD.close(fd) }
            return .failure(e)
        }
        var options = SpawnOptions()
        // fd 2 is kept only when a custom error filter may talk on it; otherwise the
        // child inherits ours so its diagnostics reach the log.
        let customErrors = environment.contains("CUSTOM_ERR_FILTER")
        options.fileMoves = [(message.read, 0), (envelope.read, 1)] + (customErrors ? [(errors.write, Int32(2))] : [])
        let started = Spawn.start([Array(program.utf8)] + arguments, environment: environment, options: options)
        FD.close(message.read); FD.close(envelope.read); FD.close(errors.write)
        switch started {
        case .failure(let e):
            FD.close(message.write); FD.close(envelope.write); FD.close(errors.read)
            return .failure(e)
        case .success(let pid):
            FD.setCloseOnExec(message.write); FD.setCloseOnExec(envelope.write); FD.setCloseOnExec(errors.read)
            return .success(QueueSubmission(pid: pid, messageFD: message.write, envelopeFD: envelope.write, errorFD: errors.read))
        }
    }

    private init(pid: pid_t, messageFD: Int32, envelopeFD: Int32, errorFD: Int32) {
        self.pid = pid
        self.messageFD = messageFD
        self.envelopeFD = envelopeFD
        self.errorFD = errorFD
    }

    /// Streams part of the message. A failure (the queue program quit early) is remembered
    /// and reported by `finish`; later writes are skipped.
    public mutating func write(_ bytes: some Collection<UInt8>) {
        guard !writeFailed, !bytes.isEmpty else { return }
        if case .failure = FD.writeAll(messageFD, Array(bytes)) { writeFailed = true }
    }

    /// Closes the message, sends the envelope and waits for the verdict.
    public consuming func finish(_ envelope: Envelope) -> QueueVerdict {
        FD.close(messageFD)
        _ = FD.writeAll(envelopeFD, envelope.clientBytes)
        FD.close(envelopeFD)
        return collect()
    }

    /// Gives up on the submission: the queue program sees a truncated message and exits
    /// without queueing anything.
    public consuming func abandon() {
        FD.close(messageFD)
        FD.close(envelopeFD)
        _ = collect()
    }

    private func collect() -> QueueVerdict {
        var custom: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1024)
        while custom.count < 4096 {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(errorFD, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            if n <= 0 { break }
            custom += buffer[0..<n]
        }
        FD.close(errorFD)
        switch Wait.for(pid) {
        case .failure(let e): return .crashed(e.description)
        case .success(.exited(0)): return .accepted(pid: pid)
        case .success(.exited(let code)):
            let text = custom.isEmpty ? nil : Self.customText(custom)
            return .refused(code: code, custom: text)
        case .success(let other): return .crashed(other.description)
        }
    }

    /// The custom error message (leading D/Z letter kept) without its line end.
    private static func customText(_ bytes: [UInt8]) -> String {
        var text = bytes
        while let last = text.last, last == 10 || last == 13 || last == 0 { text.removeLast() }
        return String(decoding: text, as: UTF8.self)
    }
}
