// tcpserver under load and abuse: -c under a flood, -C per source address, SIGHUP reloads
// (limit file, rules, TLS certificate) with a live connection, huge rules files, silent,
// half-open and garbage clients, and no file descriptor leak over thousands of connections.
import Core
import Glibc
import Testing

/// The number of open descriptors of `pid`.
func openFDCount(_ pid: pid_t) -> Int {
    guard let dir = opendir("/proc/\(pid)/fd") else { return -1 }
    defer { closedir(dir) }
    var n = 0
    while let entry = readdir(dir) {
        if entry.pointee.d_name.0 != UInt8(ascii: ".") { n += 1 }
    }
    return n
}

/// A Python TLS client: prints the SHA-256 of the server's certificate; with a gate file,
/// sends "first", prints the echo, waits for the gate, sends "second", prints the echo.
let pythonFingerprintClient = """
    import hashlib, os, socket, ssl, sys, time
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=20))
    print(hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest(), flush=True)
    if len(sys.argv) > 2:
        s.sendall(b'first\\n'); print(s.recv(100).decode().strip(), flush=True)
        deadline = time.time() + 20
        while not os.path.exists(sys.argv[2]) and time.time() < deadline: time.sleep(0.02)
        s.sendall(b'second\\n'); print(s.recv(100).decode().strip(), flush=True)
    s.close()
    """

@Suite struct NetworkLimitTests {
    /// 30 clients at once against -c 3: never more than 3 children, all 30 served.
    @Test func childLimitHoldsUnderAFlood() throws {
        let box = Sandbox()
        let server = try #require(RunningServer(box, ["-v", "-H", "-R", "-l", "0", "-c", "3", "-b", "64", "127.0.0.1", "0",
                                                      "/bin/sh", "-c", "sleep 0.2; echo done"]))
        var fds: [Int32] = []
        defer { for fd in fds { close(fd) } }
        for _ in 0..<30 {
            guard case .success(let fd) = Socket.connect(to: .inet(.v4(127, 0, 0, 1), port: server.port, scope: 0), timeout: 5) else { continue }
            shutdown(fd, Int32(SHUT_WR))
            fds.append(fd)
        }
        #expect(fds.count == 30)
        var answers = [[UInt8]](repeating: [], count: fds.count)
        var open = Set(fds.indices)
        var most = 0
        var chunk = [UInt8](repeating: 0, count: 256)
        let deadline = monotonicSeconds() + 30
        while !open.isEmpty && monotonicSeconds() < deadline {
            most = max(most, childPIDs(of: server.child.pid).count)
            var polls = open.map { pollfd(fd: fds[$0], events: Int16(POLLIN), revents: 0) }
            _ = poll(&polls, nfds_t(polls.count), 10)
            for p in polls where p.revents != 0 {
                guard let i = fds.firstIndex(of: p.fd) else { continue }
                let n = chunk.withUnsafeMutableBytes { read(p.fd, $0.baseAddress, $0.count) }
                if n > 0 { answers[i] += chunk[0..<n] } else { open.remove(i) }
            }
        }
        #expect(open.isEmpty, "\(open.count) clients not finished")
        #expect(answers.allSatisfy { $0 == Array("done\n".utf8) })
        #expect(most == 3, "the most children seen at once: \(most)")
        #expect(server.logged("ok ").count == 30)
        #expect(!server.log.contains { $0.contains("status: 4/") })
    }

    /// -C 2: a third connection from 127.0.0.1 is dropped while .2 and .3 still get in.
    @Test func perIPLimitIsPerSourceAddress() throws {
        let box = Sandbox()
        // The program answers, then lets go of the socket but keeps its slot for a while.
        let server = try #require(RunningServer(box, ["-v", "-H", "-R", "-l", "0", "-C", "2", "127.0.0.1", "0",
                                                      "/bin/sh", "-c", "echo served; exec sleep 4 </dev/null >/dev/null"]))
        let one = IPAddress.v4(127, 0, 0, 1)
        #expect(exchange(from: one, port: server.port) == Array("served\n".utf8))
        #expect(exchange(from: one, port: server.port) == Array("served\n".utf8))
        #expect(exchange(from: one, port: server.port) == [], "third from 127.0.0.1")
        #expect(eventually(within: 5) { server.logged("end 127.0.0.1 perIPlimit 2").count == 1 })
        for last in [2, 3] as [UInt8] {
            #expect(exchange(from: .v4(127, 0, 0, last), port: server.port) == Array("served\n".utf8), "127.0.0.\(last)")
            #expect(exchange(from: .v4(127, 0, 0, last), port: server.port) == Array("served\n".utf8), "127.0.0.\(last) again")
            #expect(exchange(from: .v4(127, 0, 0, last), port: server.port) == [], "third from 127.0.0.\(last)")
        }
        #expect(server.logged("end 127.0.0.1 perIPlimit").count == 1)
    }

    /// A larger -c file after SIGHUP lets a queued client in; the live connection made
    /// before the HUP keeps talking.
    @Test func hangupReloadsTheLimitFileWithoutDroppingAConnection() throws {
        let box = Sandbox()
        box.write("control/concurrency", "1\n")
        let server = try #require(RunningServer(box, ["-v", "-H", "-R", "-l", "0", "-c", "concurrency", "127.0.0.1", "0", "/bin/cat"],
                                                environment: ["CONTROLDIR": box.at("control")]))
        let live = connectLoopback(server.port)
        try #require(live >= 0)
        defer { close(live) }
        FD.writeAll(live, Array("before\n".utf8))
        #expect(readSome(live, atLeast: 7, within: 5) == Array("before\n".utf8))
        let waiting = connectLoopback(server.port)  // queued in the backlog: no slot
        try #require(waiting >= 0)
        defer { close(waiting) }
        FD.writeAll(waiting, Array("queued\n".utf8))
        #expect(readSome(waiting, atLeast: 1, within: 1) == [], "served beyond -c 1")
        box.write("control/concurrency", "2\n")
        kill(server.child.pid, SIGHUP)
        #expect(eventually(within: 5) { server.logged("sighup: ").contains { $0.hasSuffix("/2") } })
        #expect(readSome(waiting, atLeast: 7, within: 5) == Array("queued\n".utf8))
        FD.writeAll(live, Array("after\n".utf8))
        #expect(readSome(live, atLeast: 6, within: 5) == Array("after\n".utf8))
        #expect(server.child.isRunning)
    }

    /// The cdb is opened per connection: a recompiled rule applies to the next client,
    /// before and after a SIGHUP.
    @Test func ruleChangesTakeEffect() throws {
        let box = Sandbox()
        let cdb = try compileRules(box, "127.0.0.1:allow,PHASE=\"one\"\n", with: "ours")
        let server = try #require(RunningServer(box, ["-v", "-H", "-R", "-l", "0", "-x", cdb, "127.0.0.1", "0", "/usr/bin/env"]))
        #expect(environmentDump(try #require(exchange(port: server.port)))["PHASE"] == "one")
        _ = try compileRules(box, "127.0.0.1:allow,PHASE=\"two\"\n", with: "ours")
        #expect(environmentDump(try #require(exchange(port: server.port)))["PHASE"] == "two")
        _ = try compileRules(box, "127.0.0.1:deny\n", with: "ours")
        kill(server.child.pid, SIGHUP)
        #expect(eventually(within: 5) { server.logged("sighup: ").count == 1 })
        #expect(exchange(port: server.port) == [])
        _ = try compileRules(box, "127.0.0.1:allow,PHASE=\"three\"\n", with: "ours")
        #expect(environmentDump(try #require(exchange(port: server.port)))["PHASE"] == "three")
    }

    /// SIGHUP loads the new certificate for the next handshake; a TLS session made with the
    /// old one goes on.
    @Test func hangupReloadsTheCertificateWithoutDroppingAConnection() throws {
        let boxA = Sandbox(), boxB = Sandbox(), box = Sandbox()
        let a = try #require(TestCertificates(in: boxA))
        let b = try #require(TestCertificates(in: boxB))
        let current = box.at("current.pem")
        #expect(run(["/bin/cp", a.server, current]).exitCode == 0)
        let server = try #require(RunningServer(box, ["-v", "-H", "-R", "-l", "0", "-n", current, "127.0.0.1", "0", "/bin/cat"]))
        let first = run(["python3", "-c", pythonFingerprintClient, String(server.port)], timeout: 20)
        let before = first.out.split(separator: "\n").first.map(String.init)
        #expect(before?.count == 64, "\(first.out) \(first.err)")

        let gate = box.at("gate"), liveOut = box.at("live.out")
        let live = try #require(BackgroundChild(["python3", "-c", pythonFingerprintClient, String(server.port), gate], output: liveOut))
        #expect(eventually(within: 15) { lines(liveOut).count >= 2 }, "\(lines(liveOut))")

        #expect(run(["/bin/cp", b.server, box.at("new.pem")]).exitCode == 0)
        #expect(rename(box.at("new.pem"), current) == 0)
        kill(server.child.pid, SIGHUP)
        #expect(eventually(within: 5) { server.logged("sighup: ").count == 1 })
        let second = run(["python3", "-c", pythonFingerprintClient, String(server.port)], timeout: 20)
        let after = second.out.split(separator: "\n").first.map(String.init)
        #expect(after?.count == 64 && after != before, "\(String(describing: before)) then \(second.out) \(second.err)")

        box.write("gate", "")
        #expect(live.waitExit(within: 20) == .exited(0))
        #expect(lines(liveOut) == [before ?? "?", "first", "second"], "the old session lives on")
    }
}

@Suite struct NetworkLimitBadInputTests {
    /// 100,000 rules compile in bounded time, and lookups find the first, middle and last.
    @Test func hundredThousandLineRulesFile() throws {
        let box = Sandbox()
        var text = "# generated\n"
        text.reserveCapacity(3_000_000)
        for i in 0..<100_000 {
            text += "10.\(i >> 16).\((i >> 8) & 255).\(i & 255):allow,N=\"\(i)\"\n"
        }
        text += "127.0.0.1:allow,LAST=\"yes\"\n:deny\n"
        let start = monotonicSeconds()
        let cdb = try compileRules(box, text, with: "ours")
        let took = monotonicSeconds() - start
        #expect(took < 60, "tcprules took \(took) s")
        for (ip, expected) in [("10.0.0.0", "N=0"), ("10.0.195.80", "N=50000"), ("10.1.134.159", "N=99999"),
                               ("127.0.0.1", "LAST=yes"), ("10.1.134.160", "deny connection")] {
            let r = run([Build.indimail, "tcprulescheck", cdb], environment: ["TCPREMOTEIP": ip], timeout: 10)
            #expect(r.out.contains(expected), "\(ip): \(r.out)")
        }
        let server = try #require(RunningServer(box, ["-H", "-R", "-l", "0", "-x", cdb, "127.0.0.1", "0", "/usr/bin/env"]))
        #expect(environmentDump(try #require(exchange(port: server.port)))["LAST"] == "yes")
    }

    /// Clients that send nothing and leave (with a FIN or a reset), half-open clients, and
    /// garbage: the server serves on, and its descriptors stay as they were.
    @Test func silentAndHalfOpenClients() throws {
        let box = Sandbox()
        let server = try #require(RunningServer(box, ["-H", "-R", "-l", "0", "127.0.0.1", "0", "/bin/sh", "-c", "cat; echo end"]))
        #expect(exchange(port: server.port, input: Array("warm\n".utf8)) == Array("warm\nend\n".utf8))
        #expect(eventually(within: 5) { childPIDs(of: server.child.pid).isEmpty })
        let fdsBefore = openFDCount(server.child.pid)
        for i in 0..<40 {
            let fd = connectLoopback(server.port)
            guard fd >= 0 else { Issue.record("connection \(i) failed"); continue }
            if i % 2 == 1 {  // abortive close: RST instead of FIN
                var l = linger(l_onoff: 1, l_linger: 0)
                setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
            }
            close(fd)
        }
        // Half-open: the client stops writing at once and still reads everything.
        for _ in 0..<5 {
            #expect(exchange(port: server.port) == Array("end\n".utf8))
        }
        #expect(exchange(port: server.port, input: [UInt8](repeating: 0xff, count: 100_000)).map { $0.count } == 100_004)
        #expect(server.child.isRunning)
        #expect(eventually(within: 10) { childPIDs(of: server.child.pid).isEmpty })
        #expect(openFDCount(server.child.pid) == fdsBefore)
        #expect(exchange(port: server.port, input: Array("still\n".utf8)) == Array("still\nend\n".utf8))
    }

    /// Bytes that are not TLS, a truncated ClientHello, and a client that leaves during the
    /// handshake: each drops only its own connection.
    @Test func garbageToATLSServer() throws {
        let box = Sandbox()
        let certs = try #require(TestCertificates(in: box))
        let server = try #require(RunningServer(box, ["-v", "-H", "-R", "-l", "0", "-S", "2", "-n", certs.server, "127.0.0.1", "0",
                                                      "/bin/echo", "secret"]))
        var random = [UInt8](repeating: 0, count: 8192)
        for i in random.indices { random[i] = UInt8.random(in: 0...255) }
        // A ClientHello record header promising more than is sent.
        let truncatedHello: [UInt8] = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03] + [UInt8](repeating: 0x41, count: 20)
        let inputs: [[UInt8]] = [random, Array("GET / HTTP/1.0\r\n\r\n".utf8), truncatedHello, [], [0x16]]
        for input in inputs {
            let out = exchange(port: server.port, input: input, timeout: 10)
            #expect(out.map { !String(decoding: $0, as: UTF8.self).contains("secret") } ?? true)
        }
        #expect(server.child.isRunning)
        let r = run(["openssl", "s_client", "-quiet", "-connect", "127.0.0.1:\(server.port)", "-CAfile", certs.ca, "-verify_return_error"],
                    timeout: 15)
        #expect(r.out == "secret\n", "\(r.err)")
        #expect(eventually(within: 10) { childPIDs(of: server.child.pid).isEmpty })
        #expect(server.log.filter { $0.contains("unable to accept SSL connection") }.count >= 3)
    }

    /// Thousands of short connections to an in-process program: the parent's descriptor
    /// count is the same before and after.
    @Test func noDescriptorLeakOverManyConnections() throws {
        let box = Sandbox()
        let bin = box.commandLinks(["addcr"], binary: Build.indimailTLS)
        let server = try #require(RunningServer(box, ["-q", "-H", "-R", "-l", "0", "-c", "20", "127.0.0.1", "0", "addcr"],
                                                environment: ["PATH": bin + ":/usr/bin:/bin"]))
        for _ in 0..<10 { _ = exchange(port: server.port, input: Array("x\n".utf8)) }
        #expect(eventually(within: 5) { childPIDs(of: server.child.pid).isEmpty })
        let before = openFDCount(server.child.pid)
        #expect(before > 0)
        let wanted = 10_000
        var done = 0, answered = 0
        let start = monotonicSeconds()
        // Bounded: stop at 50 s whatever the count (a slow debug build on 2 cores).
        while done < wanted && monotonicSeconds() - start < 50 {
            if exchange(port: server.port, input: Array("x\n".utf8), timeout: 5) == Array("x\r\n".utf8) { answered += 1 }
            done += 1
        }
        #expect(done >= 3_000, "only \(done) connections in 50 s")
        #expect(answered == done)
        #expect(eventually(within: 10) { childPIDs(of: server.child.pid).isEmpty })
        #expect(openFDCount(server.child.pid) == before, "\(done) connections in \(monotonicSeconds() - start) s")
        #expect(server.child.isRunning)
    }
}
