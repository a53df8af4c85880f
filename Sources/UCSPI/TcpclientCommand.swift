// tcpclient: connect to a TCP or UNIX-domain server, then run a program on fds 6/7 or
// relay stdin/stdout, optionally through TLS (ucspi-tcp §6, §9.4).
import Core
import Glibc

public struct TcpclientCommand: Command {
    public static let name = "tcpclient"
    public static let installDirectory = InstallDirectory.bin
    public static let summary = "connect to a TCP or UNIX-domain server, with optional TLS"

    public static func run(_ context: CommandContext) -> Int32 {
        let options: TcpclientOptions
        switch TcpclientOptions.parse(context.arguments) {
        case .success(let o): options = o
        case .failure(.startTLSWithoutTLS):
            return context.diagnostics.fatal(ExitCode.permanent, TcpclientOptions.ParseError.startTLSWithoutTLS.description)
        case .failure(.usage):
            return context.diagnostics.usage(TcpclientOptions.usage)
        }
        Signals.ignore(SIGPIPE)
        var client = TcpclientRun(options: options, context: context)
        return client.run()
    }
}

/// Messages as the reference prints them: -q silences everything, -v adds status lines.
struct TcpclientLog {
    let verbosity: Int

    /// "tcpclient: text" (the reference's status and connection lines have no level).
    func line(_ text: String) { if verbosity >= 1 { FD.writeAll(2, Array("tcpclient: \(text)\n".utf8)) } }
    func status(_ text: String) { if verbosity >= 2 { line(text) } }

    @discardableResult
    func fatal(_ code: Int32, _ text: String) -> Int32 {
        if verbosity >= 1 { FD.writeAll(2, Array("tcpclient: fatal: \(text)\n".utf8)) }
        return code
    }

    var diagnostics: Diagnostics? { verbosity >= 1 ? Diagnostics(program: "tcpclient") : nil }
}

/// An exit code carried out of a helper that already printed why.
struct EndOfRun: Error { let code: Int32 }

private struct TcpclientRun {
    let options: TcpclientOptions
    let context: CommandContext
    let log: TcpclientLog
    var environment: Environment

    init(options: TcpclientOptions, context: CommandContext) {
        self.options = options
        self.context = context
        log = TcpclientLog(verbosity: options.verbosity)
        environment = context.environment
    }

    mutating func run() -> Int32 {
        // TLS files first: a bad certificate fails before any connection is made.
        var tlsContext: (any TLSContext)?
        if let tls = options.tls {
            guard let library = context.tls else {
                return log.fatal(ExitCode.temporary, "TLS is not available in this binary: use indimail-tls")
            }
            let settings: TLSSettings
            switch tls.settings(.tcpclient, environment: environment) {
            case .failure(let e): return log.fatal(ExitCode.temporary, "unable to initialize TLS: \(e)")
            case .success(let s): settings = s
            }
            log.status("using certificate \(settings.certificateFile ?? "(none)")")
            switch library.clientContext(settings) {
            case .failure(let e): return log.fatal(ExitCode.temporary, "unable to initialize TLS: \(e)")
            case .success(let c): tlsContext = c
            }
        } else {
            log.status("using un-encrypted connection")
        }

        let socket: Int32
        var helloName = "localhost"
        switch options.target {
        case .unix(let path):
            switch TcpclientNetwork.connectUnix(path, timeout: options.connectFirst + options.connectSecond) {
            case .failure(let e):
                return log.fatal(ExitCode.temporary, "unable to connect to socket \(path): \(e.reason)")
            case .success(let fd): socket = fd
            }
            environment["PROTO"] = "UNIX"
        case .tcp(let host, let portText):
            guard let port = TcpclientNetwork.port(portText) else {
                return log.fatal(ExitCode.temporary, "unable to figure out port number for \(portText)")
            }
            switch connect(host: host, port: port) {
            case .failure(let end): return end.code
            case .success(let fd): socket = fd
            }
            if options.noDelay { Socket.setNoDelay(socket) }
            if case .failure(let e) = describeConnection(socket, helloName: &helloName) {
                close(socket)
                return log.fatal(ExitCode.temporary, e.description)
            }
        }

        var channel: (any TLSChannel)?
        if let tlsContext {
            FD.setNonBlocking(socket)
            if let proto = options.startTLS {
                var lines = SocketLines(fd: socket, timeout: options.dataTimeout)
                let dialogue = StartTLSClient.negotiate(proto, helloName: helloName, over: &lines) { line in
                    FD.writeAll(1, line)
                }
                if case .failure(let e) = dialogue { return log.fatal(ExitCode.temporary, e.description) }
            }
            let serverVersion = tlsContext.protocolName
            switch tlsContext.connect(fd: socket, serverName: serverName(), timeout: options.connectFirst + options.connectSecond) {
            case .failure(let e): return log.fatal(ExitCode.temporary, e.description)
            case .success(let c): channel = c
            }
            environment["TLS_PROVIDER"] = TLSSetup.providerText(program: "tcpclient", details: options.providerDetails,
                                                                serverVersion: serverVersion, channel: channel, bits: false)
        }

        if options.program.isEmpty {
            // Client mode: stdin to the network, the network to stdout.
            let ending = TLSRelay.run(channel ?? PlainChannel(socket: socket), clearIn: 0, clearOut: 1,
                                      idleTimeout: options.dataTimeout, stopAtNetworkEOF: true,
                                      diagnostics: log.diagnostics)
            channel = nil
            close(socket)
            if case .failed = ending { return ExitCode.temporary }
            return ExitCode.success
        }
        guard let channel else { return execProgram(socket: socket) }
        return runProgramBehindTLS(channel, socket: socket)
    }

    /// The name for SNI: -m's host, else the host argument when it is a name.
    func serverName() -> String? {
        if let verify = options.tls?.verifyHost, !verify.isEmpty { return verify }
        guard case .tcp(let host, _) = options.target else { return nil }
        var name = Substring(host)
        if name.hasPrefix("[") && name.hasSuffix("]") { name = name.dropFirst().dropLast() }
        return IPAddress.parse(name) == nil ? host : nil
    }

    /// Tries every address with the first timeout, then those that timed out with the
    /// second; a single address gets one try of both together (§6.2 -T).
    func connect(host: String, port: UInt16) -> Result<Int32, EndOfRun> {
        let addresses: [IPAddress]
        switch TcpclientNetwork.resolve(host, ipv4Only: options.ipv4Only) {
        case .success(let list): addresses = list
        case .failure(.noAddress): return .failure(EndOfRun(code: log.fatal(ExitCode.temporary, "no IP address for \(host)")))
        case .failure(.temporary(let why)):
            return .failure(EndOfRun(code: log.fatal(ExitCode.temporary, "temporarily unable to figure out IP address for \(host): \(why)")))
        }
        var scope: UInt32 = 0
        if let name = options.interface {
            scope = if_nametoindex(name)
            if scope == 0 { return .failure(EndOfRun(code: log.fatal(ExitCode.temporary, "unknown interface \(name)"))) }
        }
        var rounds = [options.connectFirst, options.connectSecond]
        if addresses.count == 1 { rounds = [options.connectFirst + options.connectSecond] }
        var todo = addresses
        for (round, timeout) in rounds.enumerated() {
            var timedOut: [IPAddress] = []
            for ip in todo {
                let shown = ip.unmapped.description
                log.status("trying  ip \(shown) port \(port)")
                switch TcpclientNetwork.connect(to: ip, port: port, scope: scope, from: options.localIP,
                                                localPort: options.localPort, ipv4Only: options.ipv4Only,
                                                forceV6: options.forceV6, timeout: timeout) {
                case .success(let fd): return .success(fd)
                case .failure(let e):
                    if e.operation == "unable to bind socket" {
                        return .failure(EndOfRun(code: log.fatal(ExitCode.temporary, "unable to bind socket: \(e.reason)")))
                    }
                    if round == 0 && rounds.count == 2 && e.errno == ETIMEDOUT { timedOut.append(ip) }
                    log.line("unable to connect to \(shown) port \(port): \(e.reason)")
                }
            }
            todo = timedOut
        }
        return .failure(EndOfRun(code: ExitCode.temporary))
    }

    /// The environment of §6.3 for prog; the EHLO name for STARTTLS.
    mutating func describeConnection(_ fd: Int32, helloName: inout String) -> Result<Void, SystemError> {
        guard case .inet(let localIP, let localPort, let scope)? = Socket.localAddress(fd) else {
            return .failure(SystemError("unable to get local address"))
        }
        guard case .inet(let remoteIP, let remotePort, _)? = Socket.remoteAddress(fd) else {
            return .failure(SystemError("unable to get remote address"))
        }
        let unspecified = localIP.mapped16.allSatisfy { $0 == 0 }
        let fakeV4 = !options.forceV6 && (localIP.unmappedIsV4 || unspecified)
        func text(_ ip: IPAddress) -> String { fakeV4 ? ip.unmapped.description : ip.compactV6 }
        environment["PROTO"] = fakeV4 ? "TCP" : "TCP6"
        environment["TCPLOCALPORT"] = String(localPort)
        environment["TCPLOCALIP"] = text(localIP)
        let localName = options.localHostName ?? TcpclientNetwork.reverseName(localIP, scope: scope)
        environment["TCPLOCALHOST"] = localName
        environment["TCPREMOTEPORT"] = String(remotePort)
        environment["TCPREMOTEIP"] = text(remoteIP)
        log.status("connected to \(text(remoteIP)) port \(remotePort)")
        environment["TCPREMOTEHOST"] = options.reverseLookup ? TcpclientNetwork.reverseName(remoteIP, scope: scope) : nil
        environment["TCPREMOTEINFO"] = options.ident
            ? TcpclientNetwork.remoteInfo(local: localIP, localPort: localPort, remote: remoteIP, remotePort: remotePort,
                                          scope: scope, timeout: options.identTimeout)
            : nil
        if let name = localName, !name.isEmpty, name != "0" {
            helloName = name
        } else {
            helloName = localIP.unmappedIsV4 ? "[\(localIP.unmapped)]" : "[IPv6:\(localIP.compactV6)]"
        }
        return .success(())
    }

    /// No TLS: the socket becomes fds 6 and 7 and prog replaces this process.
    func execProgram(socket: Int32) -> Int32 {
        guard case .success = FD.move(socket, to: 6), dup2(6, 7) == 7 else {
            return log.fatal(ExitCode.temporary, "unable to set up descriptors: \(SystemError.describe(errno))")
        }
        Signals.setDefault(SIGPIPE)
        let error = Exec.replace(arguments: options.program, environment: environment)
        return log.fatal(ExitCode.temporary, error.description)
    }

    /// TLS with prog: prog gets pipes on fds 6 and 7, this process relays them to the
    /// session, then reports how prog ended and exits with its status.
    func runProgramBehindTLS(_ channel: any TLSChannel, socket: Int32) -> Int32 {
        guard case .success(let toProgram) = FD.pipe(), case .success(let fromProgram) = FD.pipe() else {
            return log.fatal(ExitCode.temporary, "unable to create pipe: \(SystemError.describe(errno))")
        }
        // Out of the way of 6 and 7, so the child's dup2s cannot clobber each other.
        let childIn = aboveTen(toProgram.read), childOut = aboveTen(fromProgram.write)
        var spawn = SpawnOptions()
        spawn.fileMoves = [(childIn, 6), (childOut, 7)]
        let started = Spawn.start(options.program, environment: environment, options: spawn)
        close(childIn)
        close(childOut)
        guard case .success(let pid) = started else {
            close(toProgram.write)
            close(fromProgram.read)
            if case .failure(let e) = started { return log.fatal(ExitCode.temporary, e.description) }
            return ExitCode.temporary
        }
        signal(SIGTERM) { _ in _exit(0) }
        let ending = TLSRelay.run(channel, clearIn: fromProgram.read, clearOut: toProgram.write,
                                  idleTimeout: options.dataTimeout, diagnostics: log.diagnostics)
        close(fromProgram.read)
        // prog has normally ended by now (its output reached end of file); don't wait long.
        var status: WaitStatus?
        let deadline = MonotonicClock.now() + 2
        var raw: Int32 = 0
        while status == nil && MonotonicClock.now() < deadline {
            let r = waitpid(pid, &raw, WNOHANG)
            if r == pid { status = WaitStatus(raw: raw) } else if r < 0 && errno != EINTR { break } else { usleep(5000) }
        }
        _ = socket
        switch status {
        case .exited(let code)?:
            log.line("end \(pid) status \(code)")
            return code
        case .signaled(let signal, _)?:
            log.line("end \(pid) killed by signal \(signal)")
            return ExitCode.temporary
        default:
            return ending == .closed ? ExitCode.success : ExitCode.temporary
        }
    }

    func aboveTen(_ fd: Int32) -> Int32 {
        let copy = fcntl(fd, F_DUPFD_CLOEXEC, 10)
        guard copy >= 0 else { return fd }
        close(fd)
        return copy
    }
}
