// The OpenSSL module on its own: a server and a client context in this process,
// handshaking over a socketpair; verification, versions, channel binding, failures.
import Core
import Glibc
import Testing
import TLS
import UCSPI

/// A handshaken pair: the server side ran on a thread.
struct TLSPair {
    let server: any TLSChannel
    let client: any TLSChannel
    let fds: (Int32, Int32)

    func close() { Glibc.close(fds.0); Glibc.close(fds.1) }
}

func serverSettings(_ certs: TestCertificates) -> TLSSettings {
    var s = TLSSettings()
    s.certificateFile = certs.server
    return s
}

/// Handshakes both sides; the failure texts when either side fails.
func handshake(server: TLSSettings, client: TLSSettings, serverName: String? = "localhost",
               timeout: Double = 10) -> Result<TLSPair, TLSError> {
    signal(SIGPIPE, SIG_IGN)  // a write to a closed peer must fail, not kill the test run
    let serverContext: any TLSContext
    let clientContext: any TLSContext
    switch (OpenSSLLibrary.serverContext(server), OpenSSLLibrary.clientContext(client)) {
    case (.failure(let e), _), (_, .failure(let e)): return .failure(e)
    case (.success(let s), .success(let c)): serverContext = s; clientContext = c
    }
    let fds = socketPair()
    let far = ThreadRunner { serverContext.accept(fd: fds.0, timeout: timeout) }
    let near = clientContext.connect(fd: fds.1, serverName: serverName, timeout: timeout)
    if case .failure = near { shutdown(fds.1, Int32(SHUT_RDWR)) }  // let the server side give up at once
    let accepted = far.join() ?? .failure(TLSError("server thread lost"))
    switch (accepted, near) {
    case (.success(let s), .success(let c)): return .success(TLSPair(server: s, client: c, fds: fds))
    case (_, .failure(let e)), (.failure(let e), _):  // the client's reason first
        Glibc.close(fds.0); Glibc.close(fds.1)
        return .failure(e)
    }
}

extension TLSChannel {
    func send(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        return (try? bytes.withUnsafeBytes { write($0) }.get()) == bytes.count
    }

    /// Reads until `count` bytes or EOF (blocking read with ioTimeout).
    func receive(_ count: Int) -> String {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        while out.count < count {
            guard case .success(let n) = chunk.withUnsafeMutableBytes({ read(into: $0) }), n > 0 else { break }
            out += chunk[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }
}

@Suite struct TLSChannelTests {
    @Test func handshakeAndExchangeBothWays() throws {
        let box = Sandbox()
        let certs = try #require(TestCertificates(in: box))
        let pair = try handshake(server: serverSettings(certs), client: TLSSettings()).get()
        defer { pair.close() }
        pair.client.ioTimeout = 5
        pair.server.ioTimeout = 5
        #expect(pair.client.send("hello server\n"))
        #expect(pair.server.receive(13) == "hello server\n")
        #expect(pair.server.send("hello client\n"))
        #expect(pair.client.receive(13) == "hello client\n")
        #expect(pair.client.protocolVersion == "TLSv1.3")
        #expect(pair.server.protocolVersion == "TLSv1.3")
        #expect(pair.client.cipherName.hasPrefix("TLS_"))
        #expect(pair.client.cipherBits >= 128)
        #expect(pair.client.peerSubject?.contains("CN=server.test") == true)
        #expect(pair.server.peerSubject == nil)  // no client certificate offered
        // tls-exporter: both ends derive the same 32 bytes.
        let a = try #require(pair.client.channelBinding)
        #expect(a.count == 32)
        #expect(pair.server.channelBinding == a)
        // close_notify reads as end of file on the other side.
        pair.client.shutdown()
        #expect(pair.server.receive(1) == "")
    }

    @Test func tls12TlsUniqueMatches() throws {
        let box = Sandbox()
        let certs = try #require(TestCertificates(in: box))
        var client = TLSSettings()
        client.maximumVersion = "TLSv1_2"
        let pair = try handshake(server: serverSettings(certs), client: client).get()
        defer { pair.close() }
        #expect(pair.client.protocolVersion == "TLSv1.2")
        let unique = try #require(pair.client.channelBinding)
        #expect(unique.count == 12)
        #expect(pair.server.channelBinding == unique)
    }

    @Test func clientCertificateIsRequestedAndAnyAccepted() throws {
        let box = Sandbox()
        let certs = try #require(TestCertificates(in: box))
        // Not signed by anything the server trusts, and still accepted (§9.2).
        let selfSigned = run(["/bin/sh", "-c", "cd \"$1\" && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout k.pem -out c.pem -days 1 -subj /CN=stranger 2>/dev/null && cat c.pem k.pem > stranger.pem", "sh", box.path])
        #expect(selfSigned.exitCode == 0)
        var client = TLSSettings()
        client.certificateFile = box.at("stranger.pem")
        let pair = try handshake(server: serverSettings(certs), client: client).get()
        defer { pair.close() }
        #expect(pair.server.peerSubject?.contains("CN=stranger") == true)
    }

    @Test func verifiedHostNames() throws {
        let box = Sandbox()
        let certs = try #require(TestCertificates(in: box))
        var good = TLSSettings()
        good.caFile = certs.ca
        good.verifyHost = "localhost"
        #expect(throws: Never.self) { try handshake(server: serverSettings(certs), client: good).get().close() }
        good.verifyHost = "127.0.0.1"
        #expect(throws: Never.self) { try handshake(server: serverSettings(certs), client: good, serverName: nil).get().close() }

        var wrongName = good
        wrongName.verifyHost = "mail.example.org"
        let e1 = try #require(failure(handshake(server: serverSettings(certs), client: wrongName)))
        #expect(e1.description.contains("verify"), "\(e1)")

        var untrusted = TLSSettings()
        untrusted.verifyHost = "localhost"
        untrusted.certificateDirectory = box.directory("empty")
        let e2 = try #require(failure(handshake(server: serverSettings(certs), client: untrusted)))
        #expect(e2.description.contains("verify"), "\(e2)")
    }

    @Test func versionBoundsAndCiphers() throws {
        let box = Sandbox()
        let certs = try #require(TestCertificates(in: box))
        var server = serverSettings(certs)
        server.minimumVersion = "TLSv1_3"
        var old = TLSSettings()
        old.maximumVersion = "TLSv1_2"
        #expect(failure(handshake(server: server, client: old)) != nil)

        var suites = serverSettings(certs)
        suites.cipherSuites = "TLS_CHACHA20_POLY1305_SHA256"
        let pair = try handshake(server: suites, client: TLSSettings()).get()
        #expect(pair.client.cipherName == "TLS_CHACHA20_POLY1305_SHA256")
        pair.close()

        var list = serverSettings(certs)
        list.maximumVersion = "TLSv1_2"
        list.cipherList = "ECDHE-ECDSA-AES128-GCM-SHA256"
        let pair12 = try handshake(server: list, client: TLSSettings()).get()
        #expect(pair12.client.cipherName == "ECDHE-ECDSA-AES128-GCM-SHA256")
        pair12.close()
    }

    @Test func contextErrorsCarryOpenSSLText() throws {
        let box = Sandbox()
        let certs = try #require(TestCertificates(in: box))
        var missing = TLSSettings()
        missing.certificateFile = box.at("nothing.pem")
        let e1 = try #require(failure(OpenSSLLibrary.serverContext(missing)))
        #expect(e1.description.contains("nothing.pem"))
        #expect(e1.description.contains("error:"), "\(e1)")  // OpenSSL's queue text

        var sslv3 = serverSettings(certs)
        sslv3.minimumVersion = "SSLv3"
        #expect(failure(OpenSSLLibrary.serverContext(sslv3))?.description.contains("not supported") == true)

        var badCiphers = serverSettings(certs)
        badCiphers.cipherList = "NO-SUCH-CIPHER"
        #expect(failure(OpenSSLLibrary.serverContext(badCiphers))?.description.contains("cipher") == true)

        #expect(failure(OpenSSLLibrary.serverContext(TLSSettings())) != nil)  // a server needs a certificate
    }

    @Test func handshakeTimesOut() throws {
        let box = Sandbox()
        let certs = try #require(TestCertificates(in: box))
        let context = try OpenSSLLibrary.serverContext(serverSettings(certs)).get()
        let (a, b) = socketPair()
        defer { close(a); close(b) }
        let start = monotonicSeconds()
        let r = context.accept(fd: a, timeout: 0.5)
        #expect(failure(r)?.description.contains("timed out") == true)
        #expect(monotonicSeconds() - start < 5)
    }

    @Test func garbageFromPeerFailsTheHandshake() throws {
        let box = Sandbox()
        let certs = try #require(TestCertificates(in: box))
        let context = try OpenSSLLibrary.serverContext(serverSettings(certs)).get()
        let (a, b) = socketPair()
        defer { close(a); close(b) }
        FD.writeAll(b, Array("EHLO not tls at all\r\n".utf8))
        #expect(failure(context.accept(fd: a, timeout: 5)) != nil)
    }
}

func failure<T>(_ r: Result<T, TLSError>) -> TLSError? {
    if case .failure(let e) = r { return e }
    return nil
}
