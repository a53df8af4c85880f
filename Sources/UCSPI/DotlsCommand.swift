// dotls: TLS for a program that has none, under tcpserver (direct TLS or a STARTTLS proxy
// for SMTP, POP3 and IMAP) or under tcpclient (-T/-C), per ucspi-tcp §12.
import Core
import Glibc

public struct DotlsCommand: Command {
    public static let name = "dotls"
    public static let installDirectory = InstallDirectory.bin
    public static let summary = "add TLS or STARTTLS to a program run by tcpserver or tcpclient"

    public static func run(_ context: CommandContext) -> Int32 {
        let options: DotlsOptions
        switch DotlsOptions.parse(context.arguments) {
        case .success(let o): options = o
        case .failure: return context.diagnostics.usage(DotlsOptions.usage)
        }
        Signals.ignore(SIGPIPE)
        var run = DotlsRun(options: options, context: context)
        return run.run()
    }
}

private struct DotlsRun {
    let options: DotlsOptions
    let context: CommandContext
    var environment: Environment
    let remote: String

    init(options: DotlsOptions, context: CommandContext) {
        self.options = options
        self.context = context
        environment = context.environment
        remote = context.environment.nonEmpty("TCP6REMOTEIP") ?? context.environment.nonEmpty("TCPREMOTEIP") ?? "unknown"
    }

    var isServer: Bool { options.mode == .server }
    /// The network side: the client on 0/1 under tcpserver, the server on 6/7 under tcpclient.
    var networkIn: Int32 { isServer ? 0 : 6 }
    var networkOut: Int32 { isServer ? 1 : 7 }

    func line(_ text: String) { if options.verbosity >= 1 { FD.writeAll(2, Array("dotls: \(text)\n".utf8)) } }
    func status(_ text: String) { if options.verbosity >= 2 { line(text) } }

    @discardableResult
    func fatal(_ code: Int32, _ text: String) -> Int32 {
        if options.verbosity >= 1 { FD.writeAll(2, Array("dotls: fatal: \(text)\n".utf8)) }
        return code
    }

    var diagnostics: Diagnostics? { options.verbosity >= 1 ? Diagnostics(program: "dotls") : nil }

    mutating func run() -> Int32 {
        if isServer && environment.contains("NOTLS") {
            Signals.setDefault(SIGPIPE)
            return fatal(ExitCode.temporary, Exec.replace(arguments: options.program, environment: environment).description)
        }
        guard let library = context.tls else {
            return fatal(ExitCode.temporary, "TLS is not available in this binary: use indimail-tls")
        }
        let settings: TLSSettings
        switch options.tls.settings(isServer ? .server : .dotlsClient, environment: environment) {
        case .failure(let e): return fatal(ExitCode.temporary, "unable to initialize TLS: \(e)")
        case .success(let s): settings = s
        }
        let tls: any TLSContext
        switch isServer ? library.serverContext(settings) : library.clientContext(settings) {
        case .failure(let e): return fatal(ExitCode.temporary, "unable to initialize TLS: \(e)")
        case .success(let c): tls = c
        }
        // The program must not inherit the network: it talks through our pipes only.
        FD.setCloseOnExec(networkIn)
        FD.setCloseOnExec(networkOut)

        if let proto = options.startTLS, isServer { return startTLSProxy(proto, tls) }
        if options.providerDetails {
            // The details exist only after the handshake, so prog starts after it.
            guard let channel = handshake(tls) else { return ExitCode.temporary }
            environment["TLS_PROVIDER"] = TLSSetup.providerText(program: "dotls", details: true,
                                                                serverVersion: tls.protocolName, channel: channel, bits: false)
            guard let child = startProgram() else { return ExitCode.temporary }
            return relay(channel, child)
        }
        environment["TLS_PROVIDER"] = "dotls, "
        guard let child = startProgram() else { return ExitCode.temporary }
        guard let channel = handshake(tls) else {
            close(child.input); close(child.output)
            return ExitCode.temporary
        }
        return relay(channel, child)
    }

    /// BANNER (server mode) in clear, then the handshake on the network fds.
    func handshake(_ tls: any TLSContext) -> (any TLSChannel)? {
        if isServer, let banner = environment["BANNER"] {
            FD.writeAll(networkOut, Array((banner + "\n").utf8))
        }
        let result = isServer
            ? tls.accept(input: networkIn, output: networkOut, timeout: options.handshakeTimeout)
            : tls.connect(input: networkIn, output: networkOut, serverName: options.tls.verifyHost, timeout: options.handshakeTimeout)
        switch result {
        case .failure(let e):
            fatal(ExitCode.temporary, isServer ? "unable to accept SSL connection: \(e)" : "unable to connect SSL: \(e)")
            return nil
        case .success(let channel):
            status("pid \(getpid()) from \(remote) \(TLSSetup.sessionSummary(serverVersion: tls.protocolName, channel: channel))")
            return channel
        }
    }

    /// Our ends of the program's pipes: `input` is its stdin (or fd 6), `output` its
    /// stdout (or fd 7).
    struct Child { let pid: pid_t; let input: Int32; let output: Int32 }

    func startProgram() -> Child? {
        guard case .success(let toProgram) = FD.pipe(), case .success(let fromProgram) = FD.pipe() else {
            fatal(ExitCode.temporary, "unable to create pipe: \(SystemError.describe(errno))")
            return nil
        }
        let sixSeven = options.mode == .client(programOnSixSeven: true)
        let childIn = aboveTen(toProgram.read), childOut = aboveTen(fromProgram.write)
        var spawn = SpawnOptions()
        spawn.fileMoves = [(childIn, sixSeven ? 6 : 0), (childOut, sixSeven ? 7 : 1)]
        let started = Spawn.start(options.program, environment: environment, options: spawn)
        close(childIn)
        close(childOut)
        switch started {
        case .failure(let e):
            close(toProgram.write); close(fromProgram.read)
            fatal(ExitCode.temporary, e.description)
            return nil
        case .success(let pid):
            return Child(pid: pid, input: toProgram.write, output: fromProgram.read)
        }
    }

    func relay(_ channel: any TLSChannel, _ child: Child) -> Int32 {
        let ending = TLSRelay.run(channel, clearIn: child.output, clearOut: child.input,
                                  idleTimeout: options.dataTimeout, diagnostics: diagnostics)
        close(child.output)
        reap(child.pid)
        if ending == .closed {
            status("pid \(getpid()) from \(remote) exiting...")
            return ExitCode.success
        }
        status("pid \(getpid()) from \(remote), status=-1 exiting...")
        return ExitCode.temporary
    }

    /// STARTTLS proxy: plaintext until the client asks, then the handshake and the relay.
    mutating func startTLSProxy(_ proto: StartTLSProtocol, _ tls: any TLSContext) -> Int32 {
        environment["TLS_PROVIDER"] = "dotls, starttls"
        guard let child = startProgram() else { return ExitCode.temporary }
        var proxy = StartTLSProxy(proto, clientIn: networkIn, clientOut: networkOut, programIn: child.input,
                                  programOut: child.output, timeout: options.dataTimeout)
        switch proxy.run() {
        case .startTLS:
            break
        case .programEnded:
            _ = Glibc.shutdown(networkOut, Int32(SHUT_WR))
            close(networkOut)
            close(child.output)
            reap(child.pid)
            return ExitCode.success
        case .idle:
            status("idle timeout reached without input [\(Int(options.dataTimeout)) sec]")
            return ExitCode.temporary
        case .failed(let why):
            return fatal(ExitCode.temporary, why)
        }
        guard let channel = handshake(tls) else { return ExitCode.temporary }
        return relay(channel, child)
    }

    /// Reports how the program ended (-v), waiting briefly: it normally has by now.
    func reap(_ pid: pid_t) {
        var raw: Int32 = 0
        let deadline = MonotonicClock.now() + 2
        while MonotonicClock.now() < deadline {
            let r = waitpid(pid, &raw, WNOHANG)
            if r == pid {
                switch WaitStatus(raw: raw) {
                case .exited(let code) where code != 0: status("end \(pid) status \(code)")
                case .signaled(let signal, _): status("end \(pid) killed by signal \(signal)")
                default: break
                }
                status("pid \(pid) from \(remote) child exiting...")
                return
            }
            if r < 0 && errno != EINTR { return }
            usleep(5000)
        }
    }

    func aboveTen(_ fd: Int32) -> Int32 {
        let copy = fcntl(fd, F_DUPFD_CLOEXEC, 10)
        guard copy >= 0 else { return fd }
        close(fd)
        return copy
    }
}
