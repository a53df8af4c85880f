// mconnect-io and mconnect against ucspi-tcp's, talking to a one-shot Python listener on
// 127.0.0.1: what the server receives, what the user sees, and how each one ends.
import Core
import Glibc
import Testing

/// A Python TCP server on 127.0.0.1 for one connection. It greets, then (mode "talk")
/// collects bytes until "QUIT\r\n" or end of file and answers with what it got, or (mode
/// "close") hangs up at once. What it received lands in `received`.
final class OneShotServer {
    static let script = """
        import os, socket, sys, time
        portfile, received, mode = sys.argv[1], sys.argv[2], sys.argv[3]
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        s.settimeout(20)
        with open(portfile + ".tmp", "w") as f:
            f.write(str(s.getsockname()[1]))
        os.rename(portfile + ".tmp", portfile)
        c, _ = s.accept()
        c.settimeout(10)
        c.sendall(b"220 test.example ESMTP\\r\\n")
        data = b""
        if mode == "talk":
            try:
                while b"QUIT\\r\\n" not in data:
                    chunk = c.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except socket.timeout:
                pass
            time.sleep(0.2)
            c.sendall(b"250 received %d bytes\\r\\n221 bye\\r\\n" % len(data))
        with open(received + ".tmp", "wb") as f:
            f.write(data)
        os.rename(received + ".tmp", received)
        c.close()
        """

    let child: BackgroundChild
    let port: String
    let receivedPath: String

    init?(_ box: Sandbox, name: String, mode: String = "talk") {
        guard let python = peer("/usr/bin/python3") else { return nil }
        let script = box.write("server.py", Self.script)
        let portFile = box.at("\(name).port")
        receivedPath = box.at("\(name).received")
        guard let child = BackgroundChild([python, script, portFile, receivedPath, mode],
                                          output: box.at("\(name).log")) else { return nil }
        self.child = child
        var port: [UInt8]?
        guard eventually(within: 10, { port = contents(portFile); return port != nil }), let port else { return nil }
        self.port = String(decoding: port, as: UTF8.self)
    }

    /// What the server received, once it has finished with the connection.
    var received: [UInt8]? {
        var bytes: [UInt8]?
        eventually(within: 15) { bytes = contents(receivedPath); return bytes != nil }
        return bytes
    }
}

@Suite struct MconnectTests {
    static let debianIO = "/usr/bin/mconnect-io"
    static let debianMconnect = "/usr/bin/mconnect"
    static let tcpclient = "/usr/bin/tcpclient"
    static let session = Array("EHLO client\nMAIL FROM:<a@b>\r\nQUIT\n".utf8)
    static let expectedReceived = Array("EHLO client\r\nMAIL FROM:<a@b>\r\r\nQUIT\r\n".utf8)

    @Test func mconnectIOUnderTcpclientMatchesUcspiTcp() throws {
        let tcpclient = try #require(peer(Self.tcpclient), "ucspi-tcp missing: run scripts/deps --test")
        let debianIO = try #require(peer(Self.debianIO))
        let box = Sandbox()
        var results: [(Outcome, [UInt8]?)] = []
        for (index, io) in [[Build.indimail, "mconnect-io"], [debianIO]].enumerated() {
            let server = try #require(OneShotServer(box, name: "s\(index)"), "python3 missing")
            let r = run([tcpclient, "-RHl0", "--", "127.0.0.1", server.port] + io, stdin: Self.session)
            results.append((r, server.received))
        }
        let (mine, mineReceived) = results[0], (theirs, theirsReceived) = results[1]
        #expect(mine.exitCode == 0)
        #expect(!mine.timedOut)
        // Every LF gets a CR, even one that had one (the reference's mconnect-io does too).
        #expect(mineReceived == Self.expectedReceived)
        #expect(mineReceived == theirsReceived)
        #expect(mine.out == "220 test.example ESMTP\r\n250 received \(Self.expectedReceived.count) bytes\r\n221 bye\r\n")
        #expect(mine.stdout == theirs.stdout)
        #expect(mine.exitCode == theirs.exitCode)
    }

    @Test func mconnectIOUnderOurTcpclient() throws {
        // The reference's mconnect pipeline, all ours: tcpclient (indimail-tls) hands the
        // connection to mconnect-io on fds 6 and 7.
        let box = Sandbox()
        let server = try #require(OneShotServer(box, name: "ours"), "python3 missing")
        let r = run([Build.indimailTLS, "tcpclient", "-RHl0", "--", "127.0.0.1", server.port,
                     Build.indimail, "mconnect-io"], stdin: Self.session)
        #expect(r.exitCode == 0)
        #expect(server.received == Self.expectedReceived)
        #expect(r.out == "220 test.example ESMTP\r\n250 received \(Self.expectedReceived.count) bytes\r\n221 bye\r\n")
    }

    @Test func mconnectMatchesUcspiTcp() throws {
        let debian = try #require(peer(Self.debianMconnect), "ucspi-tcp mconnect missing: run scripts/deps --test")
        let box = Sandbox()
        var results: [(Outcome, [UInt8]?)] = []
        for (index, mconnect) in [[Build.indimail, "mconnect"], [debian]].enumerated() {
            let server = try #require(OneShotServer(box, name: "m\(index)"), "python3 missing")
            let r = run(mconnect + ["127.0.0.1", server.port], stdin: Self.session)
            results.append((r, server.received))
        }
        let (mine, mineReceived) = results[0], (theirs, theirsReceived) = results[1]
        #expect(mine.exitCode == 0)
        #expect(mine.exitCode == theirs.exitCode)
        #expect(mineReceived == Self.expectedReceived)
        #expect(mineReceived == theirsReceived)
        #expect(mine.stdout == theirs.stdout)
        #expect(mine.stderr.isEmpty)
    }

    @Test func zeroMeansThisHost() throws {
        // "0" tries 127.0.0.1 and ::1; the listener is IPv4 only. (ucspi-tcp's IPv6
        // tcpclient tries ::1 alone and would be refused here.)
        let box = Sandbox()
        let server = try #require(OneShotServer(box, name: "zero"))
        let r = run([Build.indimail, "mconnect", "0", server.port], stdin: Array("QUIT\n".utf8))
        #expect(r.exitCode == 0)
        #expect(r.out.hasPrefix("220 test.example ESMTP\r\n"))
        #expect(server.received == Array("QUIT\r\n".utf8))
    }

    @Test func serverHangingUpEndsTheSessionWhileStdinIsOpen() throws {
        let box = Sandbox()
        for (index, mconnect) in [[Build.indimail, "mconnect"], [Self.debianMconnect]].enumerated() {
            guard peer(mconnect[0]) != nil else { continue }
            let server = try #require(OneShotServer(box, name: "h\(index)", mode: "close"))
            let out = box.at("out\(index)")
            let client = try #require(BackgroundChild(mconnect + ["127.0.0.1", server.port],
                                                      stdinPipe: true, output: out))
            #expect(client.waitExit(within: 10) == .exited(0), "\(mconnect)")
            #expect(contents(out) == Array("220 test.example ESMTP\r\n".utf8), "\(mconnect)")
        }
    }

    @Test func refusedUnknownHostAndBadPort() throws {
        // A bound but not listening socket: its port refuses connections for the whole test.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { close(fd) }
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p -> Bool in
                bind(fd, p, length) == 0 && getsockname(fd, p, &length) == 0
            }
        }
        try #require(bound)
        let port = String(UInt16(bigEndian: sa.sin_port))

        let refused = run([Build.indimail, "mconnect", "127.0.0.1", port])
        #expect(refused.exitCode == 111)
        #expect(refused.err == "mconnect: fatal: unable to connect to 127.0.0.1 port \(port): Connection refused\n")
        if let debian = peer(Self.debianMconnect) { #expect(run([debian, "127.0.0.1", port]).exitCode == 111) }

        for bad in ["no-such-service", "65536", "", "12ab"] {
            let r = run([Build.indimail, "mconnect", "127.0.0.1", bad])
            #expect(r.exitCode == 111, "\(bad)")
            #expect(r.err == "mconnect: fatal: unable to figure out port number for \(bad)\n")
        }
    }

    @Test func namesResolveThroughHostsFileOrDNS() throws {
        let dns = try #require(Dnsmasq(addresses: ["127.0.0.1"], zones: ["mconnect.test"],
                                       records: ["--host-record=mail.mconnect.test,127.0.0.1"]),
                               "dnsmasq missing: run scripts/deps --test")
        let env = ["DNSCACHEIP": dns.dnscacheip()]
        let box = Sandbox()
        let server = try #require(OneShotServer(box, name: "dns"))
        let r = run([Build.indimail, "mconnect", "mail.mconnect.test", server.port],
                    stdin: Array("QUIT\n".utf8), environment: env)
        #expect(r.exitCode == 0)
        #expect(r.out.hasPrefix("220 test.example ESMTP\r\n"))
        #expect(server.received == Array("QUIT\r\n".utf8))

        // localhost comes from /etc/hosts, not from the name server (which would refuse it).
        let local = try #require(OneShotServer(box, name: "localhost"))
        let viaHosts = run([Build.indimail, "mconnect", "localhost", local.port],
                           stdin: Array("QUIT\n".utf8), environment: env)
        #expect(viaHosts.exitCode == 0)
        #expect(local.received == Array("QUIT\r\n".utf8))

        let unknown = run([Build.indimail, "mconnect", "nothere.mconnect.test", "25"], environment: env)
        #expect(unknown.exitCode == 111)
        #expect(unknown.err == "mconnect: fatal: no IP address for nothere.mconnect.test\n")

        // A name server that refuses (nothing listens on its port): a temporary failure.
        let refusing = run([Build.indimail, "mconnect", "mail.mconnect.test", "25"],
                           environment: ["DNSCACHEIP": "127.0.0.1:\(closedUDPPort())"], timeout: 90)
        #expect(refusing.exitCode == 111)
        #expect(refusing.err.hasPrefix("mconnect: fatal: temporarily unable to figure out IP address for mail.mconnect.test: "))
    }

    @Test func unixDomainSocketPath() throws {
        let box = Sandbox()
        let path = box.at("sock")
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { close(fd) }
        var sa = sockaddr_un()
        sa.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &sa.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let listening = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0 && listen(fd, 1) == 0
            }
        }
        try #require(listening)
        // The server side is this test: accept after the client has connected and sent.
        let client = try #require(BackgroundChild([Build.indimail, "mconnect", path],
                                                  stdinPipe: true, output: box.at("out")))
        client.send(Array("hello\n".utf8))
        #expect(FD.waitUntil(fd, events: Int16(POLLIN), timeout: 10_000))
        let conn = accept(fd, nil, nil)
        try #require(conn >= 0)
        FD.writeAll(conn, Array("banner\r\n".utf8))
        var got: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64)
        while got.count < 7, FD.waitUntil(conn, events: Int16(POLLIN), timeout: 10_000),
              case .success(let n) = buffer.withUnsafeMutableBytes({ FD.read(conn, $0) }), n > 0 {
            got += buffer[0..<n]
        }
        close(conn)
        #expect(got == Array("hello\r\n".utf8))
        #expect(client.waitExit(within: 10) == .exited(0))
        #expect(contents(box.at("out")) == Array("banner\r\n".utf8))
        let missing = run([Build.indimail, "mconnect", box.at("nothing-here")])
        #expect(missing.exitCode == 111)
        #expect(missing.err.hasPrefix("mconnect: fatal: unable to connect to socket \(box.at("nothing-here")): "))
    }
}
