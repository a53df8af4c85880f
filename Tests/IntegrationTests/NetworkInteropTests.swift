// The network layer against Debian's ucspi-tcp-ipv6 and other real peers: rules cdbs made
// by either tcprules and served by either tcpserver, ucspi-tcp's tcpclient over IPv6,
// openssl s_client and Python ssl over IPv6 against our TLS tcpserver, and our tcpclient
// doing STARTTLS with a private Postfix instance.
import Core
import Glibc
import Testing

let loopback6 = IPAddress.v6([UInt8](repeating: 0, count: 15) + [1])

/// Connects from `source` to the loopback address of the same family, half-closes, reads
/// to end of file. nil when the connection could not be made or did not end in time.
func exchange(from source: IPAddress, port: UInt16, input: [UInt8] = [], timeout: Double = 10) -> [UInt8]? {
    let target: IPAddress = source.unmappedIsV4 ? .v4(127, 0, 0, 1) : loopback6
    guard case .success(let fd) = Socket.connect(to: .inet(target, port: port, scope: 0), from: source, timeout: timeout) else { return nil }
    defer { close(fd) }
    if !input.isEmpty { FD.writeAll(fd, input) }
    shutdown(fd, Int32(SHUT_WR))
    return readToEnd(fd, within: timeout)
}

/// Everything until end of file (or a reset), or nil at the deadline.
func readToEnd(_ fd: Int32, within timeout: Double) -> [UInt8]? {
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    let deadline = monotonicSeconds() + timeout
    while monotonicSeconds() < deadline {
        guard FD.waitUntil(fd, events: Int16(POLLIN), timeout: 200) else { continue }
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n <= 0 { return out }
        out += chunk[0..<n]
    }
    return nil
}

/// Compiles rules text with our tcprules or Debian's; the cdb's path.
func compileRules(_ box: Sandbox, _ text: String, with compiler: String, name: String = "rules") throws -> String {
    let binary: [String]
    if compiler == "debian" {
        binary = [try #require(peer("/usr/bin/tcprules"), "ucspi-tcp tcprules missing: run scripts/deps --test")]
    } else {
        binary = [Build.indimail, "tcprules"]
    }
    let cdb = box.at("\(name).cdb")
    let r = run(binary + [cdb, box.at("\(name).tmp")], stdin: Array(text.utf8), timeout: 60)
    #expect(r.exitCode == 0, "\(compiler) tcprules: \(r.err)")
    return cdb
}

/// Debian's tcpserver listening on every address (`::0`: dual stack), in its own process
/// group so that teardown kills its children too.
func startDebianTcpserver(_ box: Sandbox, _ arguments: [String]) -> PeerServer? {
    guard let tcpserver = peer("/usr/bin/tcpserver") else { return nil }
    let output = box.at("debian-tcpserver.\(UInt64(monotonicSeconds() * 1e6)).out")
    guard let child = BackgroundChild([tcpserver, "-1", "-R", "-H", "-l", "0"] + arguments,
                                      output: output, newProcessGroup: true) else { return nil }
    var port: UInt16 = 0
    eventually(within: 15) {
        guard let text = contents(output), let nl = text.firstIndex(of: 10),
              let p = UInt16(String(decoding: text[..<nl], as: UTF8.self)) else { return !child.isRunning }
        port = p
        return true
    }
    if port == 0 { killpg(child.pid, SIGKILL); return nil }
    return PeerServer(child: child, port: port, output: output, ownGroup: true)
}

@Suite struct NetworkInteropTests {
    static let rulesText = """
        # the same text for both compilers: nothing indimail-only (no ,!NAME, no CIDR)
        127.0.0.1:allow,WHO="one"
        127.0.0.2:deny
        127.0.0.3:allow,WHO="three",LIST="a,b"
        127.0.0.5-6:allow,WHO="range"
        ::1:allow,WHO="six"
        :allow,WHO="default"

        """

    /// Rules compiled by either tcprules, served by either tcpserver: every combination
    /// decides the same for clients from 127.0.0.1/.2/.3/.5 and ::1.
    @Test(arguments: ["ours", "debian"], ["ours", "debian"])
    func rulesInterop(compiler: String, server: String) throws {
        let box = Sandbox()
        let cdb = try compileRules(box, Self.rulesText, with: compiler)
        let arguments = ["-x", cdb, "::0", "0", "/usr/bin/env"]
        // Ours as `::` is dual stack like Debian's `::0`; both present v4-mapped clients as
        // dotted quads in TCPREMOTEIP (and PROTO=TCP), IPv6 clients in compact form.
        var ours: RunningServer?
        var debian: PeerServer?
        let port: UInt16
        if server == "ours" {
            ours = try #require(RunningServer(box, ["-v", "-H", "-R", "-l", "0", "-x", cdb, "::", "0", "/usr/bin/env"]))
            port = ours!.port
        } else {
            debian = try #require(startDebianTcpserver(box, arguments), "ucspi-tcp tcpserver missing")
            port = debian!.port
        }
        defer { _ = (ours, debian) }

        let expected: [(IPAddress, String, String?, String?)] = [
            (.v4(127, 0, 0, 1), "127.0.0.1", "one", nil),
            (.v4(127, 0, 0, 3), "127.0.0.3", "three", "a,b"),
            (.v4(127, 0, 0, 5), "127.0.0.5", "range", nil),
            (.v4(127, 0, 0, 7), "127.0.0.7", "default", nil),
            // Debian's tcpserver looks an IPv6 client up under its compact form, the same key
            // both tcprules store for `::1`; ours tries the expanded form first, then the
            // compact one: the same rule wins either way.
            (loopback6, "::1", "six", nil),
        ]
        for (source, ip, who, list) in expected {
            let out = try #require(exchange(from: source, port: port), "\(compiler)/\(server) \(ip): no answer")
            let env = environmentDump(out)
            #expect(env["TCPREMOTEIP"] == ip, "\(compiler)/\(server) \(ip)")
            #expect(env["PROTO"] == (ip.contains(":") ? "TCP6" : "TCP"), "\(compiler)/\(server) \(ip)")
            #expect(env["WHO"] == who, "\(compiler)/\(server) \(ip)")
            #expect(env["LIST"] == list, "\(compiler)/\(server) \(ip)")
            #expect(env["TCPREMOTEHOST"] == nil && env["TCPREMOTEINFO"] == nil)
        }
        // Denied: the connection is closed without the program running.
        #expect(exchange(from: .v4(127, 0, 0, 2), port: port) == [], "\(compiler)/\(server) deny")
        if let ours { #expect(eventually(within: 5) { ours.logged("deny ").count == 1 }) }
        // Still serving after the deny.
        #expect(environmentDump(try #require(exchange(from: .v4(127, 0, 0, 1), port: port)))["WHO"] == "one")
    }

    /// The two compilers make cdbs that our tcprulescheck reads the same way.
    @Test func bothCompilersGiveTheSameAnswers() throws {
        let box = Sandbox()
        let mine = try compileRules(box, Self.rulesText, with: "ours", name: "ours")
        let theirs = try compileRules(box, Self.rulesText, with: "debian", name: "debian")
        for ip in ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.6", "127.0.0.9", "::1"] {
            let a = run([Build.indimail, "tcprulescheck", mine], environment: ["TCPREMOTEIP": ip], timeout: 10)
            let b = run([Build.indimail, "tcprulescheck", theirs], environment: ["TCPREMOTEIP": ip], timeout: 10)
            #expect(a.out == b.out && !a.out.isEmpty, "\(ip): \(a.out) vs \(b.out)")
            if let debian = peer("/usr/bin/tcprulescheck") {
                let c = run([debian, mine], environment: ["TCPREMOTEIP": ip], timeout: 10)
                #expect(c.out == a.out, "Debian's tcprulescheck on our cdb, \(ip): \(c.out)")
            }
        }
    }

    @Test func debianTcpclientOverIPv6() throws {
        let tcpclient = try #require(peer("/usr/bin/tcpclient"), "ucspi-tcp tcpclient missing")
        let box = Sandbox()
        let server = try #require(RunningServer(box, ["-H", "-R", "-l", "0", "::1", "0", "/bin/sh", "-c",
                                                      "echo \"$PROTO $TCPREMOTEIP\"; read line; echo \"got $line\""]))
        let r = run([tcpclient, "-H", "-R", "::1", String(server.port), "/bin/sh", "-c",
                     "echo ping >&7; cat <&6; env | grep '^TCP6\\?REMOTEIP=\\|^PROTO='"], timeout: 10)
        #expect(r.exitCode == 0, "\(r.err)")
        let out = r.out.split(separator: "\n").map(String.init)
        #expect(out.prefix(2) == ["TCP6 ::1", "got ping"], "\(r.out)")
        #expect(out.contains("PROTO=TCP6"))
        #expect(out.contains("TCPREMOTEIP=::1"))
    }

    @Test func opensslClientAgainstTLSServer() throws {
        let box = Sandbox()
        let certs = try #require(TestCertificates(in: box))
        let server = try #require(RunningServer(box, ["-v", "-H", "-R", "-l", "0", "-n", certs.server, "::", "0",
                                                      "/bin/sh", "-c", "read line; echo \"got $line over $PROTO\""]))
        for host in ["127.0.0.1", "[::1]"] {
            let r = run(["openssl", "s_client", "-quiet", "-connect", "\(host):\(server.port)", "-CAfile", certs.ca,
                         "-verify_return_error", "-verify_ip", host == "[::1]" ? "::1" : host],
                        stdin: Array("hello\n".utf8), timeout: 15)
            #expect(r.out.contains("got hello over \(host == "[::1]" ? "TCP6" : "TCP")"), "\(host): \(r.out) \(r.err)")
            #expect(r.err.contains("verify return:1"), "\(r.err)")
        }
    }

    @Test func pythonSSLOverIPv6WithHostnameCheck() throws {
        let box = Sandbox()
        let certs = try #require(TestCertificates(in: box))
        let server = try #require(RunningServer(box, ["-H", "-R", "-l", "0", "-n", certs.server, "::1", "0", "/bin/cat"]))
        let script = """
            import socket, ssl, sys
            ctx = ssl.create_default_context(cafile=sys.argv[2])
            s = ctx.wrap_socket(socket.create_connection(('::1', int(sys.argv[1])), timeout=10), server_hostname='::1')
            s.sendall(b'x' * 100000)
            got = b''
            while len(got) < 100000:
                d = s.recv(65536)
                if not d: break
                got += d
            print(s.version(), len(got), got == b'x' * 100000)
            """
        let r = run(["python3", "-c", script, String(server.port), certs.ca], timeout: 20)
        #expect(r.out.hasPrefix("TLSv1.3 100000 True") || r.out.hasPrefix("TLSv1.2 100000 True"), "\(r.out) \(r.err)")
    }
}

/// A private Postfix (master, smtpd, tlsmgr, anvil, proxymap, postlogd) configured in a
/// sandbox: listens on 127.0.0.1:port, offers STARTTLS with the test certificate, logs to
/// a file. `postfix stop` at the end, SIGKILL for whatever is left.
final class PostfixInstance {
    let box: Sandbox
    let port: UInt16
    var config: String { box.at("conf") }
    var logFile: String { box.at("postfix.log") }
    private var started = false

    init?(_ box: Sandbox, _ certs: TestCertificates) {
        self.box = box
        port = freePort()
        guard peer("/usr/sbin/postfix") != nil, port != 0 else { return nil }
        chmod(box.path, 0o755)  // the postfix user walks into the queue directory
        box.directory("queue")
        let data = box.directory("data")
        chown(data, getpwnam("postfix").map { $0.pointee.pw_uid } ?? 0, gid_t.max)
        box.write("conf/main.cf", """
            compatibility_level = 3.6
            queue_directory = \(box.at("queue"))
            data_directory = \(data)
            meta_directory = /etc/postfix
            mail_owner = postfix
            setgid_group = postdrop
            inet_interfaces = 127.0.0.1
            inet_protocols = ipv4
            myhostname = postfix.test
            mydestination =
            local_recipient_maps =
            biff = no
            maillog_file = \(box.at("postfix.log"))
            maillog_file_prefixes = /tmp
            smtpd_banner = $myhostname ESMTP private-postfix
            smtpd_tls_cert_file = \(certs.serverCert)
            smtpd_tls_key_file = \(certs.serverKey)
            smtpd_tls_security_level = may

            """)
        box.write("conf/master.cf", """
            127.0.0.1:\(port) inet n - n - - smtpd
            tlsmgr unix - - n 1000? 1 tlsmgr
            anvil unix - - n - 1 anvil
            proxymap unix - - n - - proxymap
            postlog unix-dgram n - n - 1 postlogd

            """)
        let r = run(["/usr/sbin/postfix", "-c", config, "start"], timeout: 60)
        started = true
        guard r.exitCode == 0, waitForListener(port, within: 20) else { return nil }
    }

    var log: String { contents(logFile).map { String(decoding: $0, as: UTF8.self) } ?? "" }

    var masterPID: pid_t? {
        contents(box.at("queue/pid/master.pid")).flatMap { pid_t(String(decoding: $0.filter { $0 >= 48 && $0 <= 57 }, as: UTF8.self)) }
    }

    deinit {
        guard started else { return }
        let master = masterPID
        _ = run(["/usr/sbin/postfix", "-c", config, "stop"], timeout: 30)
        if let master, !eventually(within: 10, { kill(master, 0) != 0 }) {
            for pid in childPIDs(of: master) { kill(pid, SIGKILL) }
            kill(master, SIGKILL)
        }
    }
}

/// Processes whose parent is `parent`, from /proc.
func childPIDs(of parent: pid_t) -> [pid_t] {
    guard let dir = opendir("/proc") else { return [] }
    defer { closedir(dir) }
    var result: [pid_t] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        guard let pid = pid_t(name), let stat = contents("/proc/\(pid)/stat") else { continue }
        // pid (comm) state ppid …: comm may hold spaces, so parse after the last ')'.
        guard let close = stat.lastIndex(of: UInt8(ascii: ")")) else { continue }
        let fields = stat[(close + 1)...].split(separator: UInt8(ascii: " "))
        if fields.count > 1, pid_t(String(decoding: fields[1], as: UTF8.self)) == parent { result.append(pid) }
    }
    return result
}

@Suite struct NetworkInteropPostfixTests {
    /// Our tcpclient -s smtp against a real Postfix: the program behind it talks SMTP inside
    /// TLS and sees Postfix's post-TLS capabilities (no STARTTLS offered any more).
    @Test func tcpclientStartTLSWithPostfix() throws {
        let box = Sandbox()
        let certs = try #require(TestCertificates(in: box))
        let postfix = try #require(PostfixInstance(box, certs), "postfix missing or not startable: run scripts/deps --test")
        let transcript = box.at("transcript")
        let envFile = box.at("env")
        let script = """
            env > \(envFile)
            exec 3>\(transcript)
            say() { printf '%s\\r\\n' "$1" >&7; }
            reply() { while IFS= read -r l <&6; do l=$(printf '%s' "$l" | tr -d '\\r'); printf '%s\\n' "$l" >&3; case "$l" in ???-*) ;; *) break ;; esac; done; }
            say 'EHLO client.test'; reply
            say 'NOOP'; reply
            say 'QUIT'; reply
            """
        let r = run([Build.indimailTLS, "tcpclient", "-RH", "-s", "smtp", "-n", "", "127.0.0.1", String(postfix.port),
                     "/bin/sh", "-c", script], environment: ["SERVERCA": certs.ca, "CERTDIR": box.directory("nocerts")], timeout: 30)
        #expect(r.exitCode == 0, "\(r.out) \(r.err)")
        #expect(r.out.hasPrefix("220 postfix.test ESMTP private-postfix"), "the plaintext greeting is shown: \(r.out)")
        let seen = lines(transcript)
        #expect(seen.first == "250-postfix.test", "\(seen)")
        #expect(seen.contains("250 CHUNKING") || seen.contains { $0.hasPrefix("250 ") }, "\(seen)")
        #expect(!seen.contains { $0.uppercased().contains("STARTTLS") }, "STARTTLS is no longer offered inside TLS: \(seen)")
        #expect(seen.contains { $0.hasPrefix("250 2.0.0 Ok") }, "NOOP answered: \(seen)")
        #expect(seen.last?.hasPrefix("221 ") == true, "\(seen)")
        #expect(environmentFile(envFile)["TLS_PROVIDER"]?.contains("tcpclient") == true, "\(environmentFile(envFile))")
        #expect(eventually(within: 10) { postfix.log.contains("starttls=1") }, "\(postfix.log)")
        #expect(postfix.log.contains("ehlo=2"), "EHLO before and inside TLS: \(postfix.log)")
    }
}
