// tcpclient against real peers: a Python echo server (plain TCP, IPv4 and IPv6), openssl
// s_server (TLS), and Python servers doing STARTTLS for SMTP, POP3 and IMAP.
import Core
import Glibc
import Testing

/// NAME=VALUE lines of a file written by `env`.
func environmentFile(_ path: String) -> [String: String] {
    var out: [String: String] = [:]
    for line in lines(path) {
        guard let eq = line.firstIndex(of: "=") else { continue }
        out[String(line[..<eq])] = String(line[line.index(after: eq)...])
    }
    return out
}

@Suite struct TcpclientTests {
    let tcpclient = [Build.indimailTLS, "tcpclient"]

    @Test func clientModeRelaysStdinAndStdout() throws {
        let box = Sandbox()
        let server = try #require(startPython(box, "echo", code: pythonEcho))
        let r = run(tcpclient + ["-RH", "127.0.0.1", String(server.port)], stdin: Array("hello\nworld\n".utf8))
        #expect(r.exitCode == 0, "\(r.err)")
        #expect(r.out == "hello\nworld\n")
    }

    @Test func programGetsSixAndSevenAndTheEnvironment() throws {
        let box = Sandbox()
        let server = try #require(startPython(box, "echo", code: pythonEcho))
        let envFile = box.at("env"), echoed = box.at("echoed")
        let script = "env > \(envFile); echo ping >&7; read x <&6; echo \"$x\" > \(echoed); exit 7"
        let r = run(tcpclient + ["-R", "-H", "-l", "client.local", "127.0.0.1", String(server.port), "sh", "-c", script],
                    environment: ["TCPREMOTEHOST": "stale.example", "TCPREMOTEINFO": "stale"])
        #expect(r.exitCode == 7, "prog's status is tcpclient's: \(r.err)")
        #expect(lines(echoed) == ["ping"])
        let env = environmentFile(envFile)
        #expect(env["PROTO"] == "TCP")
        #expect(env["TCPLOCALIP"] == "127.0.0.1")
        #expect(env["TCPREMOTEIP"] == "127.0.0.1")
        #expect(env["TCPREMOTEPORT"] == String(server.port))
        #expect(env["TCPLOCALPORT"].flatMap { UInt16($0) } != nil)
        #expect(env["TCPLOCALHOST"] == "client.local")
        #expect(env["TCPREMOTEHOST"] == nil, "-H removes an inherited value")
        #expect(env["TCPREMOTEINFO"] == nil, "-R removes an inherited value")
        #expect(env["TLS_PROVIDER"] == nil)
        #expect(env.keys.allSatisfy { !$0.hasPrefix("TCP6") })
    }

    @Test func ipv6AndForcedV6Presentation() throws {
        let box = Sandbox()
        // IPv6 loopback may be missing in a container: then only the -6 form is checked.
        let v6 = startPython(box, "echo6", code: pythonEcho, environment: ["LISTEN6": "1"])
        if let v6 {
            let envFile = box.at("env6")
            let r = run(tcpclient + ["-RH", "::1", String(v6.port), "sh", "-c", "env > \(envFile)"])
            #expect(r.exitCode == 0, "\(r.err)")
            let env = environmentFile(envFile)
            #expect(env["PROTO"] == "TCP6")
            #expect(env["TCPLOCALIP"] == "::1")
            #expect(env["TCPREMOTEIP"] == "::1")
        }
        let v4 = try #require(startPython(box, "echo", code: pythonEcho))
        let envFile = box.at("env4")
        let r = run(tcpclient + ["-6", "-RH", "127.0.0.1", String(v4.port), "sh", "-c", "env > \(envFile)"])
        #expect(r.exitCode == 0, "\(r.err)")
        let env = environmentFile(envFile)
        #expect(env["PROTO"] == "TCP6")
        #expect(env["TCPREMOTEIP"] == "::ffff:127.0.0.1")
    }

    @Test func reverseLookupAndIdentFailureLeaveVariablesUnset() throws {
        let box = Sandbox()
        let server = try #require(startPython(box, "echo", code: pythonEcho))
        let envFile = box.at("env")
        // -h: 127.0.0.1 resolves through /etc/hosts (nsswitch) to a lowercase name;
        // -r: nothing answers on port 113, so TCPREMOTEINFO ends up unset.
        let r = run(tcpclient + ["-h", "-r", "-t", "2", "127.0.0.1", String(server.port), "sh", "-c", "env > \(envFile)"],
                    environment: ["TCPREMOTEINFO": "stale"])
        #expect(r.exitCode == 0, "\(r.err)")
        let env = environmentFile(envFile)
        #expect(env["TCPREMOTEINFO"] == nil)
        if let host = env["TCPREMOTEHOST"] { #expect(host == host.lowercased()) }
    }

    @Test func connectionFailuresAndUsage() {
        let refused = run(tcpclient + ["-RH", "127.0.0.1", "1"])
        #expect(refused.exitCode == 111)
        #expect(refused.err.contains("tcpclient: unable to connect to 127.0.0.1 port 1: "))
        #expect(run(tcpclient + ["-q", "-RH", "127.0.0.1", "1"]).err.isEmpty, "-q silences")
        #expect(run(tcpclient + ["127.0.0.1"]).exitCode == 100)
        #expect(run(tcpclient).exitCode == 100)
        #expect(run(tcpclient + ["-Z", "h", "1"]).exitCode == 100)
        let badPort = run(tcpclient + ["127.0.0.1", "no-such-service-name"])
        #expect(badPort.exitCode == 111)
        #expect(badPort.err.contains("unable to figure out port number for no-such-service-name"))
        let noName = run(tcpclient + ["no-such-host.invalid", "25"], timeout: 30)
        #expect(noName.exitCode == 111)
        let starttls = run(tcpclient + ["-s", "smtp", "127.0.0.1", "25"])
        #expect(starttls.exitCode == 100)
        #expect(starttls.err == "tcpclient: fatal: STARTTLS options require Certificates\n")
        let verbose = run(tcpclient + ["-v", "-RH", "127.0.0.1", "1"])
        #expect(verbose.err.contains("tcpclient: using un-encrypted connection"))
        #expect(verbose.err.contains("tcpclient: trying  ip 127.0.0.1 port 1"))
    }

    @Test func unixSocket() throws {
        let box = Sandbox()
        let path = box.at("sock")
        let server = try #require(BackgroundChild(["python3", "-c", """
            import socket, sys
            import os
            s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1] + '.new'); s.listen(1); s.settimeout(30)
            os.rename(sys.argv[1] + '.new', sys.argv[1])  # the name appears once connections work
            c, _ = s.accept(); c.sendall(c.recv(100).upper()); c.close()
            """, path]))
        #expect(eventually { access(path, F_OK) == 0 })
        let envFile = box.at("env")
        let r = run(tcpclient + [path, "sh", "-c", "env > \(envFile); echo hi >&7; cat <&6"])
        #expect(r.exitCode == 0, "\(r.err)")
        #expect(r.out == "HI\n")
        #expect(environmentFile(envFile)["PROTO"] == "UNIX")
        _ = server.waitExit(within: 5)
    }

    // MARK: TLS

    @Test func tlsClientModeAgainstOpenSSL() throws {
        let box = Sandbox()
        let certs = try #require(TestCertificates(in: box))
        let server = try #require(startOpenSSLServer(box, certs, ["-rev"]))
        let r = run(tcpclient + ["-RH", "-n", "", "-m", "localhost", "-c", certs.ca, "127.0.0.1", String(server.port)],
                    stdin: Array("hello tls\n".utf8), environment: ["CERTDIR": box.directory("nocerts")])
        #expect(r.exitCode == 0, "\(r.err)")
        #expect(r.out == "slt olleh\n")
    }

    @Test func tlsProgramWithProviderDetails() throws {
        let box = Sandbox()
        let certs = try #require(TestCertificates(in: box))
        let server = try #require(startOpenSSLServer(box, certs, ["-rev"]))
        let envFile = box.at("env"), got = box.at("got")
        let r = run(tcpclient + ["-z", "-RH", "-n", certs.client, "127.0.0.1", String(server.port),
                                 "sh", "-c", "env > \(envFile); echo abc >&7; read x <&6; echo \"$x\" > \(got); exit 3"])
        #expect(r.exitCode == 3, "prog's status, not 0 as the reference: \(r.err)")
        #expect(lines(got) == ["cba"])
        let provider = environmentFile(envFile)["TLS_PROVIDER"] ?? ""
        #expect(provider.hasPrefix("tcpclient, TLS Server=TLSv1.3, Client=TLSv1.3, Ciphers=TLS_"), "\(provider)")
        #expect(!provider.contains("bits="))
    }

    @Test func tlsWithoutDetailsAndHTTPPage() throws {
        let box = Sandbox()
        let certs = try #require(TestCertificates(in: box))
        let server = try #require(startOpenSSLServer(box, certs, ["-www"]))
        let envFile = box.at("env")
        let r = run(tcpclient + ["-RH", "-n", "", "127.0.0.1", String(server.port), "sh", "-c",
                                 "env > \(envFile); printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&7; cat <&6"],
                    environment: ["CERTDIR": box.directory("nocerts")])
        #expect(r.exitCode == 0, "\(r.err)")
        #expect(r.out.contains("200 ok"), "\(r.out.prefix(200))")
        #expect(environmentFile(envFile)["TLS_PROVIDER"] == "tcpclient, ")
    }

    @Test func tlsVerificationFailures() throws {
        let box = Sandbox()
        let certs = try #require(TestCertificates(in: box))
        let server = try #require(startOpenSSLServer(box, certs, ["-rev"]))
        let r = run(tcpclient + ["-RH", "-n", "", "-m", "mail.example.org", "-c", certs.ca, "127.0.0.1", String(server.port)],
                    stdin: Array("x\n".utf8), environment: ["CERTDIR": box.directory("nocerts")])
        #expect(r.exitCode == 111)
        #expect(r.err.contains("tcpclient: fatal: TLS connect:"), "\(r.err)")
        #expect(r.err.contains("verify"), "\(r.err)")
        let missing = run(tcpclient + ["-RH", "-n", box.at("missing.pem"), "127.0.0.1", String(server.port)])
        #expect(missing.exitCode == 111)
        #expect(missing.err.contains("unable to initialize TLS"), "\(missing.err)")
        let badMethod = run(tcpclient + ["-RH", "-n", "", "-M", "SSLv3", "127.0.0.1", String(server.port)])
        #expect(badMethod.exitCode == 111)
        #expect(badMethod.err.contains("not supported"), "\(badMethod.err)")
    }

    @Test(arguments: ["smtp", "pop3", "imap"])
    func startTLSAgainstPython(_ proto: String) throws {
        let box = Sandbox()
        let certs = try #require(TestCertificates(in: box))
        let log = box.at("server.log")
        let server = try #require(startPython(box, "starttls", code: pythonStartTLS,
                                              arguments: [proto, certs.serverCert, certs.serverKey, log]))
        let quit = proto == "imap" ? "a002 LOGOUT" : "QUIT"
        let r = run(tcpclient + ["-RH", "-n", "", "-s", proto, "127.0.0.1", String(server.port)],
                    stdin: Array("hello over tls\r\n\(quit)\r\n".utf8), environment: ["CERTDIR": box.directory("nocerts")])
        #expect(r.exitCode == 0, "\(r.err)")
        #expect(r.out.contains("echo: hello over tls\r\n"), "\(r.out)")
        #expect(r.out.contains("echo: \(quit)\r\n"))
        let seen = lines(log)
        #expect(seen.contains("tls: hello over tls"), "\(seen)")
        switch proto {
        case "smtp":
            #expect(r.out.hasPrefix("220 py ESMTP\r\n"), "the greeting is shown")
            #expect(seen.first == "plain: EHLO localhost" || seen.first?.hasPrefix("plain: EHLO ") == true, "\(seen)")
            #expect(seen.contains("plain: STARTTLS"))
        case "pop3":
            #expect(r.out.hasPrefix("+OK begin TLS\r\n"))
            #expect(seen.first == "plain: STLS")
        default:
            #expect(seen.first == "plain: a001 STARTTLS", "a tagged command, unlike the reference")
            #expect(r.out.hasPrefix("a001 OK Begin TLS negotiation now\r\n"), "\(r.out)")
        }
    }
}
