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
        var provider = "tcpserver, "
        if options.tls?.providerDetails == true {
            provider = "tcpserver, TLS Server=\(serverProtocol), Client=\(channel.protocolVersion), Ciphers=\(channel.cipherName), bits=\(channel.cipherBits)"
        }
        env["TLS_PROVIDER"] = provider

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
        ConnectionHandler.log(setup, "encrypted session, sslpid=\(getpid()), childpid=\(child), TLS Server=\(serverProtocol), Client=\(channel.protocolVersion), Ciphers=\(channel.cipherName), bits=\(channel.cipherBits)")
        let clean = TLSRelay.run(channel: channel, clearInput: fromProgram.read, clearOutput: toProgram.write,
                                 idleTimeout: options.tlsIdleTimeout, diagnostics: diag)
        channel.shutdown()
        close(fromProgram.read)
        close(toProgram.write)
        var raw: Int32 = 0
        _ = waitpid(child, &raw, 0)
        return clean ? ExitCode.success : ExitCode.temporary
    }
}
