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

/// One message on its way into the queue: write it with `write`, then call `finish` once.
/// It goes to a running qmail-queue (or QMAILQUEUE) through pipes, or, when QUEUE_SOCKET
/// names a qmail-queued socket, is gathered here and handed over whole at `finish`.
public struct QueueSubmission: ~Copyable {
    private enum Route {
        case process(pid: pid_t, messageFD: Int32, envelopeFD: Int32, errorFD: Int32)
        case service(socket: String)
        /// qmail-queue could not be started after the message outgrew the service.
        case failed
        /// A warm-up's: everything is built as for the real route, nothing is sent or run.
        case rehearsal(service: Bool)
    }

    private var route: Route
    private let environment: Environment
    private let arguments: [[UInt8]]
    /// The message so far, while it goes to qmail-queued.
    private var gathered: [UInt8] = []
    private var writeFailed = false

    /// The pid of the queue program when one runs already (not while the message is
    /// gathered for qmail-queued): the verdict carries the pid that wrote the files.
    public var pid: pid_t? {
        if case .process(let pid, _, _, _) = route { return pid }
        return nil
    }

    /// The program chosen as the reference does: `$QMAILQUEUE` when set and non-empty,
    /// else `qmail-queue` next to the running suite (`$PREFIX/sbin/qmail-queue` when
    /// PREFIX is set, found on PATH otherwise).
    public static func program(environment env: Environment) -> String {
        if let chosen = env.nonEmpty("QMAILQUEUE") { return chosen }
        if let prefix = env.nonEmpty("PREFIX") { return Path.join(prefix, "sbin/qmail-queue") }
        return "qmail-queue"
    }

    /// The qmail-queued socket to use: QUEUE_SOCKET, unless QMAILQUEUE names a program
    /// (filters and qmail-multi keep working), arguments are given, or a path the queue
    /// depends on is relative (it would mean the caller's directory, not the worker's).
    public static func serviceSocket(environment env: Environment, arguments: [[UInt8]] = []) -> String? {
        guard let socket = env.nonEmpty("QUEUE_SOCKET"), env.nonEmpty("QMAILQUEUE") == nil, arguments.isEmpty else { return nil }
        for name in ["QUEUEDIR", "QUEUE_BASE", "SYSCONFDIR", "CONTROLDIR", "QMAILHOME"] {
            if let value = env[name], !value.hasPrefix("/") { return nil }
        }
        return socket
    }

    /// Starts the submission with `environment`. `arguments` follow the program name
    /// (normally none).
    public static func start(environment: Environment, arguments: [[UInt8]] = []) -> Result<QueueSubmission, SystemError> {
        if let socket = serviceSocket(environment: environment, arguments: arguments) {
            return .success(QueueSubmission(route: .service(socket: socket), environment: environment, arguments: arguments))
        }
        switch spawn(environment: environment, arguments: arguments) {
        case .failure(let e): return .failure(e)
        case .success(let route): return .success(QueueSubmission(route: route, environment: environment, arguments: arguments))
        }
    }

    /// A submission for a warm-up (PreloadingCommand.warmUp): it takes the message as the
    /// real one would and builds the request or the spawn plan, but connects to nothing,
    /// starts nothing, and reports acceptance by this process.
    public static func rehearsal(environment: Environment, arguments: [[UInt8]] = []) -> QueueSubmission {
        let service = serviceSocket(environment: environment, arguments: arguments) != nil
        return QueueSubmission(route: .rehearsal(service: service), environment: environment, arguments: arguments)
    }

    /// Where qmail-queue's fds 0, 1 (and 2 for a custom error filter) come from.
    private static func fileMoves(message: Int32, envelope: Int32, errors: Int32, customErrors: Bool) -> [(Int32, Int32)] {
        [(message, 0), (envelope, 1)] + (customErrors ? [(errors, Int32(2))] : [])
    }

    private static func spawn(environment: Environment, arguments: [[UInt8]]) -> Result<Route, SystemError> {
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
        options.fileMoves = fileMoves(message: message.read, envelope: envelope.read, errors: errors.write, customErrors: customErrors)
        let started = Spawn.start([Array(program.utf8)] + arguments, environment: environment, options: options)
        FD.close(message.read); FD.close(envelope.read); FD.close(errors.write)
        switch started {
        case .failure(let e):
            FD.close(message.write); FD.close(envelope.write); FD.close(errors.read)
            return .failure(e)
        case .success(let pid):
            FD.setCloseOnExec(message.write); FD.setCloseOnExec(envelope.write); FD.setCloseOnExec(errors.read)
            return .success(.process(pid: pid, messageFD: message.write, envelopeFD: envelope.write, errorFD: errors.read))
        }
    }

    private init(route: Route, environment: Environment, arguments: [[UInt8]]) {
        self.route = route
        self.environment = environment
        self.arguments = arguments
    }

    /// Streams part of the message. A failure (the queue program quit early) is remembered
    /// and reported by `finish`; later writes are skipped.
    public mutating func write(_ bytes: some Collection<UInt8>) {
        guard !writeFailed, !bytes.isEmpty else { return }
        switch route {
        case .failed: return
        case .process(_, let messageFD, _, _):
            if case .failure = FD.writeAll(messageFD, Array(bytes)) { writeFailed = true }
        case .service:
            gathered += bytes
            if gathered.count > QueueService.maximumMessage { switchToProcess() }
        case .rehearsal:
            gathered += bytes
        }
    }

    /// Hands what was gathered to a qmail-queue of our own and streams from there on.
    private mutating func switchToProcess() {
        switch Self.spawn(environment: environment, arguments: arguments) {
        case .failure:
            route = .failed
        case .success(let started):
            route = started
            if case .process(_, let messageFD, _, _) = started,
               case .failure = FD.writeAll(messageFD, gathered) { writeFailed = true }
        }
        gathered = []
    }

    /// Closes the message, sends the envelope and waits for the verdict.
    public consuming func finish(_ envelope: Envelope) -> QueueVerdict {
        let envelopeBytes = envelope.clientBytes
        if case .rehearsal(let service) = route {
            if service {
                let request = QueueService.Request(environment: environment, message: gathered, envelope: envelopeBytes).bytes
                let reply = QueueService.reply(code: 0, pid: getpid())
                if case .success(let (content, _)) = Netstring.parse(reply, from: 0), request.count > 0,
                   let (_, pid) = QueueService.parseReply(content) {
                    return .accepted(pid: pid)
                }
            } else {
                _ = Self.fileMoves(message: -1, envelope: -1, errors: -1, customErrors: environment.contains("CUSTOM_ERR_FILTER"))
                _ = ExecBlock(arguments: [Array(Self.program(environment: environment).utf8)] + arguments, environment: environment)
            }
            return .accepted(pid: getpid())
        }
        if case .service(let socket) = route {
            if envelopeBytes.count <= QueueService.maximumEnvelope, let verdict = submit(to: socket, envelopeBytes) {
                return verdict
            }
            // No qmail-queued (or too many recipients for it): qmail-queue as usual.
            switchToProcess()
        }
        switch route {
        case .process(let pid, let messageFD, let envelopeFD, let errorFD):
            FD.close(messageFD)
            _ = FD.writeAll(envelopeFD, envelopeBytes)
            FD.close(envelopeFD)
            return Self.collect(pid: pid, errorFD: errorFD)
        case .failed, .service, .rehearsal:
            return .refused(code: QueueExit.execQueue.rawValue, custom: nil)
        }
    }

    /// One request to qmail-queued; nil when it cannot be reached or the request could not
    /// be sent whole (nothing is queued then, so qmail-queue may take over).
    private func submit(to socket: String, _ envelope: [UInt8]) -> QueueVerdict? {
        guard case .success(let fd) = Socket.connect(to: .unix(socket), timeout: 5) else { return nil }
        defer { FD.close(fd) }
        let request = QueueService.Request(environment: environment, message: gathered, envelope: envelope).bytes
        var offset = 0
        while offset < request.count {
            let n = request.withUnsafeBytes { all in
                let rest = UnsafeRawBufferPointer(rebasing: all[offset...])
                return Glibc.send(fd, rest.baseAddress, rest.count, Int32(MSG_NOSIGNAL))
            }
            if n < 0 {
                if errno == EINTR { continue }
                return nil
            }
            offset += n
        }
        // From here the worker may have queued the message: no second attempt.
        let reply = Self.read(fd, limit: 64) { $0.last == UInt8(ascii: ",") }
        guard case .success(let (content, _)) = Netstring.parse(reply, from: 0),
              let (code, pid) = QueueService.parseReply(content) else {
            return .crashed("qmail-queued gave no verdict")
        }
        return code == 0 ? .accepted(pid: pid) : .refused(code: code, custom: nil)
    }

    /// Gives up on the submission: the queue program sees a truncated message and exits
    /// without queueing anything.
    public consuming func abandon() {
        if case .process(let pid, let messageFD, let envelopeFD, let errorFD) = route {
            FD.close(messageFD)
            FD.close(envelopeFD)
            _ = Self.collect(pid: pid, errorFD: errorFD)
        }
    }

    /// Reads until end of input, about `limit` bytes, or `whole` says the text is complete.
    private static func read(_ fd: Int32, limit: Int, whole: ([UInt8]) -> Bool = { _ in false }) -> [UInt8] {
        var text: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: min(limit, 1024))
        while text.count < limit {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            if n <= 0 { break }
            text += buffer[0..<n]
            if whole(text) { break }
        }
        return text
    }

    private static func collect(pid: pid_t, errorFD: Int32) -> QueueVerdict {
        let custom = read(errorFD, limit: 4096)
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
