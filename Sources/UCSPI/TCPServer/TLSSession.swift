// tcpserver's implicit TLS: handshake on the socket, the program in a grandchild behind a
// pipe pair, and the relay between them (ucspi-tcp §9.2).
import Core
import Glibc

enum TLSSession {
    static func serve(socket fd: Int32, tls: any TLSContext, environment: Environment,
                      setup: ServerSetup, diag: Diagnostics) -> Int32 {
        let options = setup.options
        let serverProtocol = tls.protocolName
        let channel: any TLSChannel
        switch tls.accept(fd: fd, timeout: options.tls?.handshakeTimeout ?? 60) {
        case .success(let c): channel = c
        case .failure(let e): return diag.fatal(ExitCode.temporary, "unable to accept SSL connection: \(e)")
        }
        var env = environment
        env["TLS_PROVIDER"] = TLSSetup.providerText(program: "tcpserver", details: options.tls?.providerDetails == true,
                                                    serverVersion: serverProtocol, channel: channel, bits: true)

        guard case .success(let toProgram) = FD.pipe(), case .success(let fromProgram) = FD.pipe() else {
            return diag.fatal(ExitCode.temporary, "unable to create pipes")
        }
        let child = fork()
        if child < 0 { return diag.fatal(ExitCode.temporary, "unable to fork") }
        if child == 0 {
            close(fd)
            close(toProgram.write)
            close(fromProgram.read)
            guard case .success = FD.move(toProgram.read, to: 0), case .success = FD.move(fromProgram.write, to: 1) else {
                exit(ExitCode.temporary)
            }
            exit(ProgramLauncher.run(options.program, environment: env, context: setup.context,
                                     prepared: setup.prepared, diagnostics: diag))
        }
        close(toProgram.read)
        close(fromProgram.write)
        ConnectionHandler.log(setup, "encrypted session, sslpid=\(getpid()), childpid=\(child), "
                              + TLSSetup.sessionSummary(serverVersion: serverProtocol, channel: channel))
        Signals.ignore(SIGPIPE)  // the program may go away while the relay still writes to it
        let ending = TLSRelay.run(channel, clearIn: fromProgram.read, clearOut: toProgram.write,
                                  idleTimeout: options.tlsIdleTimeout, diagnostics: diag)
        channel.shutdown()
        close(fromProgram.read)
        lingeringClose(fd)
        var raw: Int32 = 0
        _ = waitpid(child, &raw, 0)
        return ending.status == 0 ? ExitCode.success : ExitCode.temporary
    }

    /// Closing a socket with unread input sends a reset, and a reset makes the client drop
    /// data it has not read yet (our last reply, the close_notify). So: FIN first, then
    /// discard what the client still sends until it closes too, for at most two seconds.
    static func lingeringClose(_ fd: Int32) {
        Glibc.shutdown(fd, Int32(SHUT_WR))
        var scratch = [UInt8](repeating: 0, count: 4096)
        let deadline = MonotonicClock.now() + 2
        while MonotonicClock.now() < deadline {
            guard FD.waitUntil(fd, events: Int16(POLLIN), timeout: 200) else { continue }
            let n = scratch.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
        }
        close(fd)
    }
}
