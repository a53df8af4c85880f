// qmail-smtpd: receive mail over SMTP on fd 0/1 (under tcpserver, exec'd or in-process)
// and hand each message to qmail-queue. Protocol decisions live in SMTPSession; this file
// does the effects: reading, writing, TLS, the checkpassword chain, the queue.
import Core
import Glibc
import UCSPI

public struct QmailSmtpdCommand: PreloadingCommand, LibraryWantingCommand {
    public static let name = "qmail-smtpd"
    public static let installDirectory = InstallDirectory.sbin
    public static let summary = "receive mail via SMTP"
    public static let version = "1.0"
    /// Command lines longer than this are refused even without maxcmdlen (bounded memory).
    static let hardLineLimit = 65536

    /// What tcpserver's parent reads once: the control files and, when this binary has
    /// OpenSSL and TLS is configured, the server TLS context.
    public struct Preloaded {
        public var controls: SMTPControls
        var tls: (settings: TLSSettings, context: any TLSContext)?
    }

    public static func preload(_ context: CommandContext) -> Preloaded {
        let env = context.environment
        let controls = SMTPControls.load(env)
        var preloaded = Preloaded(controls: controls, tls: nil)
        if let library = context.tls, env.contains("STARTTLS") || env.contains("SMTPS"),
           case .success(let s) = tlsSettings(env, controls: controls),
           let cert = s.certificateFile, access(cert, R_OK) == 0,
           case .success(let c) = library.serverContext(s) {
            preloaded.tls = (s, c)
        }
        return preloaded
    }

    public static func run(_ context: CommandContext) -> Int32 {
        if let handedOver = handOverForTLS(context) { return handedOver }
        return serve(context, controls: SMTPControls.load(context.environment))
    }

    public static func run(_ context: CommandContext, preloaded: Preloaded) -> Int32 {
        if let handedOver = handOverForTLS(context) { return handedOver }
        return serve(context, controls: controls(context.environment, preloaded), preloadedTLS: preloaded.tls)
    }

    /// The preloaded controls, unless a per-connection variable naming other files (set by
    /// tcprules) needs a fresh read.
    static func controls(_ env: Environment, _ preloaded: Preloaded) -> SMTPControls {
        for name in ["BADMAILFROM", "BADRCPTTO", "GOODRCPTTO", "BADHELO", "RELAYCLIENTS", "BADMAILPATTERNS",
                     "BADRCPTPATTERNS", "GOODRCPTPATTERNS", "QREGEX"] where env.contains(name) {
            return SMTPControls.load(env)
        }
        return preloaded.controls
    }

    /// A whole conversation through `serve` in rehearsal: the client's side is a script in
    /// a pipe, the replies go to another pipe, log lines are formatted but not written, and
    /// the effects (signals, TLS, delays, DNS, checkpassword, qmail-queue) are left out.
    /// Everything else is the code a connection child runs.
    public static func warmUp(_ context: CommandContext, preloaded: Preloaded) {
        _ = rehearse(context, preloaded: preloaded)
    }

    /// The rehearsal; returns the replies (what a client would have read).
    static func rehearse(_ context: CommandContext, preloaded: Preloaded) -> [UInt8] {
        _ = wantsTLSHandOver(context)
        guard case .success(let toServer) = FD.pipe() else { return [] }
        guard case .success(let fromServer) = FD.pipe() else { FD.close(toServer.read); FD.close(toServer.write); return [] }
        defer { FD.close(toServer.read); FD.close(fromServer.read) }
        // Both far below a pipe's capacity: the script is written whole before serve
        // reads it, the replies wait in the other pipe until serve is done.
        let recipient = rehearsalRecipient(preloaded.controls)
        _ = FD.writeAll(toServer.write, rehearsalScript(recipient: recipient))
        FD.close(toServer.write)
        // The messages must reach DATA: a recipient outside rcpthosts is relayed.
        var rehearsal = context
        if case .success(false) = preloaded.controls.recipientAllowed(Array(recipient.utf8)),
           !rehearsal.environment.contains("RELAYCLIENT") {
            rehearsal.environment.set("RELAYCLIENT", [])
        }
        let controls = controls(rehearsal.environment, preloaded)
        let stage = SMTPStage(input: toServer.read, output: fromServer.write, log: -1, rehearsal: true)
        _ = serve(rehearsal, controls: controls, stage: stage)
        FD.close(fromServer.write)
        var replies: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fromServer.read, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            replies += chunk[0..<n]
        }
        return replies
    }

    static func rehearsalRecipient(_ controls: SMTPControls) -> String {
        "postmaster@" + (controls.me.isEmpty ? "localhost" : controls.me)
    }

    /// The client side of the rehearsal: a pipelined and a lock-step transaction, the
    /// second with a dot-stuffed multi-line body, then the usual small talk.
    static func rehearsalScript(recipient: String) -> [UInt8] {
        // The sender's domain is a literal: no DNS check even when one is configured.
        let text = "EHLO rehearsal.invalid\r\n"
            + "MAIL FROM:<rehearsal@[192.0.2.1]> SIZE=300 BODY=8BITMIME\r\nRCPT TO:<\(recipient)>\r\nDATA\r\n"
            + "Received: from rehearsal\r\nSubject: rehearsal\r\n\r\nbody\r\n..dot\r\n.\r\n"
            + "RSET\r\nHELO rehearsal.invalid\r\nMAIL FROM:<>\r\nRCPT TO:<\(recipient)>\r\nDATA\r\n"
            + "From: <rehearsal@[192.0.2.1]>\r\nTo: <\(recipient)>\r\n\r\n" + String(repeating: "line of text\r\n", count: 8) + ".\r\n"
            + "NOOP\r\nVRFY postmaster\r\nHELP\r\nBOGUS\r\nQUIT\r\n"
        return Array(text.utf8)
    }

    /// Whether a connection with this environment needs indimail-tls: SMTPS, or STARTTLS
    /// with a readable certificate (without one STARTTLS is simply not offered), unless
    /// tcpserver already does the TLS (TLS_PROVIDER).
    public static func wantsLibraries(_ env: Environment) -> Bool {
        guard !env.contains("TLS_PROVIDER"), env.contains("SMTPS") || env.contains("STARTTLS") else { return false }
        return env.contains("SMTPS") || access(certificatePath(env), R_OK) == 0
    }

    /// The static base binary has no OpenSSL: when this connection wants TLS, continue in
    /// indimail-tls (same arguments, same fds). nil = carry on here.
    static func handOverForTLS(_ context: CommandContext) -> Int32? {
        let env = context.environment
        guard wantsTLSHandOver(context) else { return nil }
        guard let me = realpath("/proc/self/exe", nil) else { return nil }
        let path = String(cString: me)
        free(me)
        let tlsBinary = Path.join(Path.dirname(path), "indimail-tls")
        guard access(tlsBinary, X_OK) == 0, Path.basename(path) != "indimail-tls" else {
            // STARTTLS is then simply not offered; SMTPS cannot work at all.
            if env.contains("SMTPS") && !env.contains("TLS_PROVIDER") {
                return context.diagnostics.fatal(ExitCode.temporary, "SMTPS needs indimail-tls next to \(path)")
            }
            return nil
        }
        let error = Exec.replace(arguments: [Array(tlsBinary.utf8), Array(name.utf8)] + context.arguments,
                                 environment: env)
        return context.diagnostics.fatal(ExitCode.temporary, "unable to run indimail-tls: \(error)")
    }

    /// Whether this binary lacks a library the connection needs (TLS, or SCRAM: AUTH
    /// offered and a credential file present).
    static func wantsTLSHandOver(_ context: CommandContext) -> Bool {
        guard context.tls == nil else { return false }
        let env = context.environment
        if wantsLibraries(env) { return true }
        // The credential file's path only when AUTH is configured at all.
        guard context.arguments.count >= 2 else { return false }
        let scramPath = SCRAMCredentialStore.path(env, controlDirectory: ControlFiles(paths: SuitePaths(environment: env)).directory)
        return access(scramPath, R_OK) == 0
    }

    static func serve(_ context: CommandContext, controls: SMTPControls,
                      preloadedTLS: (settings: TLSSettings, context: any TLSContext)? = nil,
                      stage: SMTPStage = .live) -> Int32 {
        let live = !stage.rehearsal
        if live { signal(SIGPIPE, SIG_IGN) }
        let env = context.environment
        let args = context.arguments
        let log = SMTPLog(remoteIP: env.nonEmpty("TCPREMOTEIP") ?? "unknown", fd: stage.log)
        let connection = SMTPServerConnection(input: stage.input, output: stage.output, timeout: Double(max(1, controls.timeout)))
        // SIGTERM is answered between commands with 421 (see the read loop).
        let terminationSignals = SignalSet([SIGTERM])
        let termination = live ? try? SignalFD(terminationSignals) : nil
        connection.interruptFD = termination?.fd
        if let problem = controls.problem {
            log.write(problem)
            connection.send(Array("421 unable to read controls (#4.3.0)\r\n".utf8))
            connection.flush()
            return 1
        }
        var settings = SMTPSettings.make(env, controls: controls,
                                         authHostname: args.count >= 2 ? String(decoding: args[0], as: UTF8.self) : nil)
        settings.version = version
        settings.pid = getpid()
        settings.now = time(nil)
        let checkpassword = Array(args.dropFirst())

        // TLS: a context only when this binary has the library and the certificate is readable.
        var tlsContext: (any TLSContext)?
        if live, let library = context.tls, env.contains("STARTTLS") || env.contains("SMTPS") {
            switch tlsSettings(env, controls: controls) {
            case .success(let s):
                // The parent's context serves when this connection asks for the same thing
                // (certificates and settings are then re-read on SIGHUP, as the controls).
                if let preloaded = preloadedTLS, preloaded.settings == s {
                    tlsContext = preloaded.context
                } else if let cert = s.certificateFile, access(cert, R_OK) == 0 {
                    switch library.serverContext(s) {
                    case .success(let c): tlsContext = c
                    case .failure(let e): log.write("TLS unavailable: \(e)")
                    }
                }
            case .failure(let e): log.write("TLS unavailable: \(e)")
            }
        }
        settings.startTLSAvailable = tlsContext != nil && env.contains("STARTTLS")

        var smtpsChannel: (any TLSChannel)?
        if live && env.contains("SMTPS") && !env.contains("TLS_PROVIDER") {
            guard let tls = tlsContext else {
                log.write("SMTPS: no TLS context (certificate missing or unreadable)")
                return 1
            }
            switch tls.accept(input: 0, output: 1, timeout: Double(max(1, controls.timeout))) {
            case .success(let channel):
                connection.useTLS(channel)
                smtpsChannel = channel
                settings.tlsActive = true
                settings.tlsDescription = tlsDescription(channel)
                log.write("SMTPS: \(channel.protocolVersion) \(channel.cipherName)")
            case .failure(let e):
                log.write("SMTPS handshake failed: \(e)")
                return 1
            }
        }

        if live && !greetDelay(env, controls: controls, connection: connection) { return 1 }
        var session = SMTPSession(settings: settings, controls: controls)
        if live && settings.authHostname != nil {
            session.scram = scramSetup(context, controls: controls, log: log)
            if let channel = smtpsChannel { bindChannel(&session, channel) }
        }
        if settings.senderDNSCheck {
            if live {
                // The resolver (and resolv.conf) only when a sender needs checking.
                var resolver: DNSResolver?
                session.senderDomainLookup = { domain in
                    if resolver == nil { resolver = DNSResolver(environment: env) }
                    return senderDomain(domain, resolver: resolver ?? DNSResolver(environment: env))
                }
            } else {
                session.senderDomainLookup = { _ in .exists }
            }
        }
        let lineLimit = controls.maxCommandLength > 0 ? min(controls.maxCommandLength + 2, hardLineLimit) : hardLineLimit
        if case .close(let status) = write(session.greeting(), &session, connection, log, stage) { return status }

        while true {
            let read = connection.readLine(limit: session.expectsAuthResponse ? hardLineLimit : lineLimit)
            let line: [UInt8]
            switch read {
            case .line(let l): line = l
            case .tooLong:
                connection.send(Array("553 sorry, the given command is too long! (#5.5.2)\r\n".utf8))
                log.write("command too long")
                connection.lingeringClose(seconds: live ? 2 : 0)
                return 1
            case .endOfFile: return 0
            case .timeout:
                connection.send(Array("451 Sorry, I reached a timeout reading from client (#4.4.2)\r\n".utf8))
                connection.flush()
                log.write("timeout reading from client")
                return 1
            case .terminated:
                log.write("going down on SIGTERM")
                connection.send(Array(session.respond("421", suffix: " Service not available, closing transmission channel (#4.3.2)").utf8))
                connection.flush()
                return 1
            case .failed(let why):
                log.write("read error: \(why)")
                return 1
            }
            let step = session.command(line)
            // A refused SCRAM proof is decided here, not by the checkpassword chain: PENALTY too.
            if live, step.reply.starts(with: Array("535 ".utf8)),
               let penalty = env.nonEmpty("PENALTY").flatMap({ Int($0) }), penalty > 0 {
                connection.flush()
                sleep(UInt32(min(penalty, 3600)))
            }
            switch write(step, &session, connection, log, stage) {
            case .close(let status): return status
            case .none: continue
            case .beginData:
                if let status = receiveMessage(&session, connection, env, log, stage) { return status }
            case .startTLS:
                connection.flush()
                connection.discardBufferedInput()
                guard live, let tls = tlsContext else { return 1 }
                switch tls.accept(input: 0, output: 1, timeout: Double(max(1, controls.timeout))) {
                case .success(let channel):
                    connection.useTLS(channel)
                    session.tlsStarted(tlsDescription(channel))
                    bindChannel(&session, channel)
                    log.write("STARTTLS: \(channel.protocolVersion) \(channel.cipherName)")
                case .failure(let e):
                    log.write("STARTTLS handshake failed: \(e)")
                    return 1
                }
            case .authenticate(let request):
                // The rehearsal runs no program: as if the chain could not be run.
                let status = live ? checkPassword(checkpassword, request, env) : nil
                if live, status == nil || status != 0 && status != 3 {
                    if let penalty = env.nonEmpty("PENALTY").flatMap({ Int($0) }), penalty > 0 { sleep(UInt32(min(penalty, 3600))) }
                }
                if case .close(let s) = write(session.authFinished(request, status: status), &session, connection, log, stage) { return s }
            }
        }
    }

    /// Writes a step's reply (after its tarpit delay) and the session's log lines.
    static func write(_ step: SMTPStep, _ session: inout SMTPSession, _ connection: SMTPServerConnection, _ log: SMTPLog,
                      _ stage: SMTPStage) -> SMTPAction {
        for line in session.logLines { log.write(line) }
        session.logLines.removeAll()
        if step.delay > 0 && !stage.rehearsal {
            connection.flush()
            sleep(UInt32(min(step.delay, 3600)))
        }
        if !step.reply.isEmpty { connection.send(step.reply) }
        // A refusal that ends the session may leave client input unread: linger so the
        // reply is not lost to a reset.
        if case .close(let status) = step.action {
            if status == 0 { connection.flush() } else { connection.lingeringClose(seconds: stage.rehearsal ? 0 : 2) }
        }
        return step.action
    }

    /// What qmail-queue runs with: the connection's environment, and the AUTH user.
    static func queueEnvironment(_ env: Environment, _ session: SMTPSession) -> Environment {
        guard let user = session.authenticatedUser else { return env }
        var queueEnv = env
        queueEnv.set("TCPREMOTEINFO", user)
        queueEnv.set("AUTHINFO", user)
        return queueEnv
    }

    /// DATA: qmail-queue, "354", the message, the verdict. nil = keep serving.
    static func receiveMessage(_ session: inout SMTPSession, _ connection: SMTPServerConnection, _ env: Environment,
                               _ log: SMTPLog, _ stage: SMTPStage) -> Int32? {
        let queueEnv = queueEnvironment(env, session)
        var submission: QueueSubmission
        if stage.rehearsal {
            // Everything but the queue itself: the request to qmail-queued, or qmail-queue's
            // argv, envp and descriptors, is built, not sent or run; the verdict is an acceptance.
            submission = QueueSubmission.rehearsal(environment: queueEnv)
        } else {
            switch QueueSubmission.start(environment: queueEnv) {
            case .failure(let e):
                log.write("unable to start qmail-queue: \(e)")
                _ = write(session.queueUnavailable(), &session, connection, log, stage)
                return nil
            case .success(let s): submission = s
            }
        }
        let receiver: SMTPDataReceiver
        switch transferMessage(session, connection, sink: { submission.write($0) }) {
        case .problem(let problem):
            submission.abandon()
            return dataProblem(problem, session, connection, log, stage)
        case .complete(let r): receiver = r
        }
        let verdict: QueueVerdict?
        if receiver.tooBig || receiver.hops >= session.settings.maxHops {
            submission.abandon()
            verdict = nil
        } else {
            verdict = submission.finish(session.envelope)
        }
        return finishData(&session, receiver, verdict, connection, log, stage)
    }

    enum Transfer {
        case complete(SMTPDataReceiver)
        /// The message could not be read whole.
        case problem(SMTPReadResult)
    }

    /// "354", then our Received line and the client's message into `sink`.
    static func transferMessage(_ session: SMTPSession, _ connection: SMTPServerConnection, sink: ([UInt8]) -> Void) -> Transfer {
        connection.send(Array("354 go ahead\r\n".utf8))
        connection.flush()
        let now = time(nil)
        sink(session.receivedHeader(pid: getpid(), date: ReceivedHeader.date822(seconds: now)))
        var receiver = SMTPDataReceiver(allowBareLF: session.settings.allowBareLF, databytes: session.settings.databytes)
        if let problem = connection.readMessage(&receiver, sink: sink) { return .problem(problem) }
        return .complete(receiver)
    }

    /// The reply to a message cut short; the connection ends.
    static func dataProblem(_ problem: SMTPReadResult, _ session: SMTPSession, _ connection: SMTPServerConnection,
                            _ log: SMTPLog, _ stage: SMTPStage) -> Int32 {
        switch problem {
        case .failed("bare LF"):
            log.write("Bare LF received")
            connection.send(Array("451 Sorry, I received Bare LF. (#4.6.0)\r\n".utf8))
        case .timeout:
            log.write("timeout reading from client")
            connection.send(Array("451 Sorry, I reached a timeout reading from client (#4.4.2)\r\n".utf8))
        case .terminated:
            log.write("going down on SIGTERM")
            connection.send(Array(session.respond("421", suffix: " Service not available, closing transmission channel (#4.3.2)").utf8))
        default:
            log.write("connection lost during DATA")
        }
        connection.lingeringClose(seconds: stage.rehearsal ? 0 : 2)
        return 1
    }

    /// The reply after the message; nil = keep serving.
    static func finishData(_ session: inout SMTPSession, _ receiver: SMTPDataReceiver, _ verdict: QueueVerdict?,
                           _ connection: SMTPServerConnection, _ log: SMTPLog, _ stage: SMTPStage) -> Int32? {
        if case .close(let status) = write(session.dataFinished(receiver, verdict: verdict, now: time(nil)), &session, connection, log, stage) {
            return status
        }
        return nil
    }

    /// Runs the checkpassword chain with user/secret/response/method on fd 3; its exit
    /// status, nil when it could not run or was killed.
    static func checkPassword(_ argv: [[UInt8]], _ request: AuthRequest, _ env: Environment) -> Int32? {
        guard !argv.isEmpty, case .success(let pipe) = FD.pipe() else { return nil }
        var options = SpawnOptions()
        // fd 1 is the client (maybe under TLS): the program's output goes to the log.
        options.fileMoves = [(pipe.read, 3), (2, 1)]
        let started = Spawn.start(argv, environment: env, options: options)
        FD.close(pipe.read)
        guard case .success(let pid) = started else { FD.close(pipe.write); return nil }
        var bytes = request.checkpasswordBytes
        _ = FD.writeAll(pipe.write, bytes)
        for i in bytes.indices { bytes[i] = 0 }
        FD.close(pipe.write)
        switch Wait.for(pid) {
        case .success(.exited(let code)): return code
        default: return nil
        }
    }

    /// MX records, else addresses: any answer means the domain can receive bounces.
    static func senderDomain(_ domain: String, resolver: DNSResolver) -> SenderDomainCheck {
        func verdict(_ error: DNSError) -> SenderDomainCheck? {
            switch error {
            case .temporary: return .temporaryFailure
            case .nameNotFound, .permanent: return .missing
            case .noData: return nil
            }
        }
        switch resolver.mx(for: domain) {
        case .success(let records) where !records.isEmpty: return .exists
        case .success: break
        case .failure(let e): if let v = verdict(e) { return v }
        }
        switch resolver.addresses(for: domain) {
        case .success(let list): return list.isEmpty ? .missing : .exists
        case .failure(let e): return verdict(e) ?? .missing
        }
    }

    /// SCRAM needs the library's digests (indimail-tls) and a readable credential file
    /// (SCRAM_USERS, else CONTROLDIR/scram) with at least one entry.
    static func scramSetup(_ context: CommandContext, controls: SMTPControls, log: SMTPLog) -> SCRAMSetup? {
        guard let digests = context.tls as? any TLSDigests.Type else { return nil }
        let path = SCRAMCredentialStore.path(context.environment, controlDirectory: controls.controlDirectory)
        switch SCRAMCredentialSource.load(path) {
        case .failure(let e):
            log.write("SCRAM disabled: \(e)")
            return nil
        case .success(let source):
            guard let source, !source.isEmpty else { return nil }
            return SCRAMSetup(digests: digests, credentials: source)
        }
    }

    /// The TLS session's channel binding, for SCRAM-*-PLUS.
    static func bindChannel(_ session: inout SMTPSession, _ channel: any TLSChannel) {
        session.scram?.channelBinding = channel.channelBinding
        session.scram?.bindingType = channel.protocolVersion == "TLSv1.3" ? "tls-exporter" : "tls-unique"
    }

    static func tlsDescription(_ channel: any TLSChannel) -> String {
        "\(channel.protocolVersion) \(channel.cipherName) bits=\(channel.cipherBits)"
    }

    /// SERVERCERT (default servercert.pem) under CERTDIR.
    static func certificatePath(_ env: Environment) -> String {
        let certdir = TLSSetup.certificateDirectory(option: nil, environment: env)
        return TLSSetup.underDirectory(env.nonEmpty("SERVERCERT") ?? "servercert.pem", certdir)
    }

    static func tlsSettings(_ env: Environment, controls: SMTPControls) -> Result<TLSSettings, TLSError> {
        var options = TLSOptions()
        options.certificate = certificatePath(env)
        let control = ControlFiles(directory: controls.controlDirectory)
        if access(control.path("tlsserverciphers"), R_OK) == 0 { options.cipherFile = control.path("tlsserverciphers") }
        if case .success(let method?) = control.value("tlsservermethod") { options.method = method }
        options.allowClientRenegotiation = env.contains("CLIENT_RENEGOTIATION")
        return options.settings(.server, environment: env)
    }

    /// greetdelay / GREETDELAY: wait before the banner; a negative value also drops a
    /// client that talks first.
    static func greetDelay(_ env: Environment, controls: SMTPControls, connection: SMTPServerConnection) -> Bool {
        var delay = controls.greetDelay
        if let text = env["GREETDELAY"], let n = Int(text.smtpTrimmed()) { delay = n }
        guard delay != 0 else { return true }
        let seconds = delay < 0 ? (delay < -3600 ? 3600 : -delay) : min(delay, 3600)
        if delay < 0 {
            if FD.waitUntil(0, events: Int16(POLLIN), timeout: Int32(seconds * 1000)) {
                connection.send(Array("554 SMTP protocol violation. Polite people say hello after the server greets them (#5.7.1)\r\n".utf8))
                connection.lingeringClose()
                return false
            }
        } else {
            sleep(UInt32(seconds))
        }
        return true
    }
}

/// Where `serve` talks: the client on fd 0/1 and the log on fd 2, or a rehearsal (the
/// warm-up) with no effects beyond its own pipes.
struct SMTPStage {
    var input: Int32 = 0
    var output: Int32 = 1
    /// -1: log lines are formatted but written nowhere.
    var log: Int32 = 2
    /// No signal handling, TLS, greeting delay, tarpit, DNS, checkpassword or qmail-queue.
    var rehearsal = false

    static let live = SMTPStage()
}

/// qmail-smtpd's log lines on fd 2: `qmail-smtpd: pid N from IP text`.
struct SMTPLog {
    let prefix: String
    let fd: Int32

    init(remoteIP: String, fd: Int32 = 2) {
        prefix = "qmail-smtpd: pid \(getpid()) from \(remoteIP) "
        self.fd = fd
    }

    func write(_ text: String) {
        let line = Array((prefix + text + "\n").utf8)
        guard fd >= 0 else { return }
        _ = FD.writeAll(fd, line)
    }
}
