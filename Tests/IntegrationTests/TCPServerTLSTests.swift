// tcpserver's implicit TLS against openssl s_client and our tcpclient: handshake,
// TLS_PROVIDER, relay both ways, TLS 1.2 minimum, bad certificates.
import Core
import Glibc
import Testing

@Suite struct TCPServerTLSTests {
    /// A Python ssl client: connects, sends `input`, reads to the end; `version` pins the
    /// protocol ("TLSv1_1", "TLSv1_2"). Prints what it read, or "handshake failed".
    func pythonClient(_ port: UInt16, ca: String? = nil, version: String? = nil, input: String) -> Outcome {
        let script = """
        import socket, ssl, sys
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        if sys.argv[2]: ctx.load_verify_locations(sys.argv[2])
        else: ctx.verify_mode = ssl.CERT_NONE
        if sys.argv[3]:
            v = getattr(ssl.TLSVersion, sys.argv[3])
            ctx.minimum_version = v; ctx.maximum_version = v
        try:
            s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', int(sys.argv[1]))))
        except (ssl.SSLError, OSError) as e:
            print('handshake failed'); sys.exit(0)
        s.sendall(sys.argv[4].encode())
        data = b''
        while True:
            d = s.recv(4096)
            if not d: break
            data += d
        sys.stdout.write(data.decode())
        """
        return run(["/usr/bin/python3", "-c", script, String(port), ca ?? "", version ?? "", input], timeout: 15)
    }

    @Test func servesAProgramOverTLS() throws {
        let box = Sandbox()
        let certs = try #require(TestCertificates(in: box))
        let server = try #require(RunningServer(box, ["-v", "-H", "-R", "-l", "0", "-z", "-n", certs.server, "127.0.0.1", "0",
                                                      "/bin/sh", "-c", "echo \"provider=$TLS_PROVIDER\"; read line; echo \"got $line\""]))
        let r = pythonClient(server.port, ca: certs.ca, input: "hello\n")
        #expect(r.out.contains("provider=tcpserver, TLS Server="))
        #expect(r.out.contains("Ciphers="))
        #expect(r.out.contains("got hello"))
        #expect(eventually(within: 5) { server.log.contains { $0.contains("encrypted session") } })
    }

    @Test func refusesOldProtocolsByDefault() throws {
        let box = Sandbox()
        let certs = try #require(TestCertificates(in: box))
        let server = try #require(RunningServer(box, ["-H", "-R", "-l", "0", "-n", certs.server, "127.0.0.1", "0", "/bin/echo", "secret"]))
        let old = pythonClient(server.port, version: "TLSv1_1", input: "")
        #expect(old.out.contains("handshake failed"))
        let modern = pythonClient(server.port, version: "TLSv1_2", input: "")
        #expect(modern.out == "secret\n")
    }

    @Test func ourTcpclientTalksToOurTcpserver() throws {
        let box = Sandbox()
        let certs = try #require(TestCertificates(in: box))
        let server = try #require(RunningServer(box, ["-H", "-R", "-l", "0", "-n", certs.server, "127.0.0.1", "0", "/bin/echo", "over tls"]))
        let r = run([Build.indimailTLS, "tcpclient", "-H", "-R", "-n", certs.client, "127.0.0.1", String(server.port),
                     "/bin/sh", "-c", "cat <&6"], environment: ["SERVERCA": certs.ca], timeout: 15)
        #expect(r.out == "over tls\n", "\(r.err)")
    }

    @Test func badCertificateStopsStartup() {
        let box = Sandbox()
        box.write("junk.pem", "not a certificate\n")
        let r = run([Build.indimailTLS, "tcpserver", "-n", box.at("junk.pem"), "127.0.0.1", "0", "/bin/true"], timeout: 10)
        #expect(r.exitCode == 111)
        #expect(r.err.contains("unable to initialize TLS"))
    }

    @Test func plaintextClientIsDroppedAfterTheHandshakeTimeout() throws {
        let box = Sandbox()
        let certs = try #require(TestCertificates(in: box))
        let server = try #require(RunningServer(box, ["-v", "-H", "-R", "-l", "0", "-S", "1", "-n", certs.server, "127.0.0.1", "0", "/bin/echo", "x"]))
        let reply = exchange(port: server.port, input: Array("EHLO plain\r\n".utf8), keepOpen: true, timeout: 10)
        #expect(reply.map { !String(decoding: $0, as: UTF8.self).contains("x\n") } ?? true)
        #expect(eventually(within: 5) { server.log.contains { $0.contains("unable to accept SSL connection") } })
    }
}
