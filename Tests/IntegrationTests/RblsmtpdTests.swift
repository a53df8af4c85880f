// rblsmtpd end to end: lookups against a private dnsmasq, the blocked SMTP dialogue on
// fds 0/1 (raw lines and Python's smtplib through Debian's tcpserver), timeouts, and the
// codes Debian's rblsmtpd (ucspi-tcp-ipv6) gives for the same cases.
import Core
import Glibc
import Testing

@Suite("rblsmtpd", .serialized)
struct RblsmtpdTests {
    static let v6Client = "2001:db8::1"
    static let dialogue = "HELO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nNOOP\r\nRSET\r\nQUIT\r\n"
    static let longText = String(repeating: "L", count: 150)

    static func zoneRecords() -> [String] {
        let v6 = IPAddress(v6Client)!.reversedLabels
        return [
            "--txt-record=2.0.0.127.bl.test,listed %IP% here",
            "--txt-record=3.0.0.127.bl.test,also listed",
            "--txt-record=4.0.0.127.bl.test,\(longText),\(longText)",
            "--txt-record=1.0.0.127.bl.test,Listed: see http://bl.test/",
            "--txt-record=\(v6).bl.test,v6 listed",
            "--host-record=2.0.0.127.abl.test,127.0.0.2",
            "--host-record=3.0.0.127.white.test,127.0.0.2",
        ]
    }

    static func startDNS(addresses: [String] = ["127.0.0.1", "::1"], port: UInt16? = nil) throws -> Dnsmasq {
        try #require(Dnsmasq(addresses: addresses, port: port, zones: ["bl.test", "abl.test", "white.test"], records: zoneRecords()),
                     "dnsmasq did not start (apt-get install dnsmasq-base)")
    }

    /// Runs `program` (our rblsmtpd by default) with a clean environment.
    static func rbl(_ args: [String], _ env: [String: String] = [:], stdin: String = "", program: [String]? = nil,
                    timeout: Double = 20) -> Outcome {
        var environment = ["PATH": "/usr/bin:/bin", "TCPREMOTEIP": "127.0.0.2"]
        for (k, v) in env { environment[k] = v }
        return run((program ?? [Build.indimail, "rblsmtpd"]) + args, stdin: Array(stdin.utf8),
                   environment: environment, inheritEnvironment: false, timeout: timeout)
    }

    static func lines(_ o: Outcome) -> [String] {
        // By bytes: as Characters, "\r\n" is one grapheme and never equals "\n".
        o.stdout.split(separator: 10, omittingEmptySubsequences: false).dropLast().map { String(decoding: $0, as: UTF8.self) }
    }

    static func occurrences(of needle: String, in text: String) -> Int {
        let n = Array(needle.utf8), h = Array(text.utf8)
        guard !n.isEmpty, h.count >= n.count else { return 0 }
        return (0...(h.count - n.count)).filter { Array(h[$0..<($0 + n.count)]) == n }.count
    }

    static func blockedDialogue(_ refusal: String, greeting: String = "rblsmtpd.indimail") -> [String] {
        ["220 \(greeting)\r", "250 \(greeting)\r", "250 \(greeting)\r", "\(refusal)\r", "\(refusal)\r",
         "250 \(greeting)\r", "250 \(greeting)\r", "221 \(greeting)\r"]
    }

    // MARK: DNS sources

    @Test func listedViaTXT() throws {
        let dns = try Self.startDNS()
        let env = ["DNSCACHEIP": dns.dnscacheip()]
        let o = Self.rbl(["-r", "bl.test", "/bin/echo", "ran"], env, stdin: Self.dialogue)
        #expect(o.exitCode == 0)
        // The TXT text is used as it is: %IP% is only substituted in our own texts.
        #expect(Self.lines(o) == Self.blockedDialogue("451 listed %IP% here"))
        #expect(o.err.contains("rblsmtpd:  pid "))
        #expect(o.err.contains(" from 127.0.0.2: 451 listed %IP% here\n"))
        #expect(o.err.contains(" from 127.0.0.2: Sender <a@b>\n"))
        #expect(o.err.contains(" from 127.0.0.2: Recipient <c@d>\n"))
        let bounce = Self.rbl(["-b", "-r", "bl.test", "-t0", "/bin/echo", "ran"], env)
        #expect(bounce.out == "553 listed %IP% here\r\n" && bounce.exitCode == 0)
        // Two TXT strings are joined; the message is cut to 200 bytes.
        let long = Self.rbl(["-t0", "-r", "bl.test", "/bin/echo"], env.merging(["TCPREMOTEIP": "127.0.0.4"]) { $1 })
        #expect(long.out == "451 " + String((Self.longText + Self.longText).prefix(200)) + "\r\n")
        // Over IPv6 to the server, for an IPv6 client.
        let v6 = Self.rbl(["-t0", "-r", "bl.test", "/bin/echo"],
                          ["DNSCACHEIP": dns.dnscacheip("::1"), "PROTO": "TCP6", "TCPREMOTEIP": Self.v6Client])
        #expect(v6.out == "451 v6 listed\r\n")
        // A v4-mapped client is looked up (and shown) as IPv4.
        let mapped = Self.rbl(["-t0", "-r", "abl.test:mapped %IP%", "/bin/echo"],
                              ["DNSCACHEIP": dns.dnscacheip(), "PROTO": "TCP6", "TCPREMOTEIP": "::ffff:127.0.0.2"])
        #expect(mapped.out == "451 mapped 127.0.0.2\r\n")
        #expect(mapped.err.contains(" from 127.0.0.2: 451 mapped"))
    }

    @Test func listedViaAddressRecord() throws {
        let dns = try Self.startDNS()
        let env = ["DNSCACHEIP": dns.dnscacheip()]
        let o = Self.rbl(["-t0", "-r", "abl.test:Blocked %IP%, see %URL%", "/bin/echo", "ran"], env)
        #expect(o.out == "451 Blocked 127.0.0.2, see %URL%\r\n")
        // A TXT-only listing does not count for the address form, and vice versa.
        #expect(Self.rbl(["-t0", "-r", "bl.test:x", "/bin/echo", "ran"], env).out == "ran\n")
        #expect(Self.rbl(["-t0", "-r", "abl.test", "/bin/echo", "ran"], env).out == "ran\n")
        // The port may also come from DNSPORT.
        let viaPort = Self.rbl(["-t0", "-b", "-r", "abl.test:x", "/bin/echo"], ["DNSCACHEIP": "127.0.0.1", "DNSPORT": "\(dns.port)"])
        #expect(viaPort.out == "553 x\r\n")
    }

    @Test func notListedRunsTheProgram() throws {
        let dns = try Self.startDNS()
        let env = ["DNSCACHEIP": dns.dnscacheip(), "TCPREMOTEIP": "127.0.0.9"]
        let o = Self.rbl(["-r", "bl.test", "-r", "abl.test:x", "/bin/sh", "-c", "echo \"$0|$1|$TCPREMOTEIP\"", "arg one", "two"], env)
        #expect(o.exitCode == 0)
        #expect(o.out == "arg one|two|127.0.0.9\n")
        #expect(o.err == "")
        // The program's exit code is the process's.
        #expect(Self.rbl(["-r", "bl.test", "/bin/sh", "-c", "exit 7"], env).exitCode == 7)
        // Anti-RBL: a whitelisted client is let through before the RBL is asked.
        let white = Self.rbl(["-a", "white.test", "-r", "bl.test", "/bin/echo", "ran"], ["DNSCACHEIP": dns.dnscacheip(), "TCPREMOTEIP": "127.0.0.3"])
        #expect(white.out == "ran\n")
        let order = Self.rbl(["-t0", "-r", "bl.test", "-a", "white.test", "/bin/echo", "ran"],
                             ["DNSCACHEIP": dns.dnscacheip(), "TCPREMOTEIP": "127.0.0.3"])
        #expect(order.out == "451 also listed\r\n")
        // The second run stopped at the RBL: white.test was asked once, by the first.
        #expect(Self.occurrences(of: "query[A] 3.0.0.127.white.test", in: dns.log) == 1)
    }

    // MARK: $RBLSMTPD

    @Test func environmentOverridesLookups() {
        // DNS is pointed at a closed port: none of these may need it.
        let noDNS = "127.0.0.1:\(closedUDPPort())"
        let accept = Self.rbl(["-r", "bl.test", "/bin/echo", "ran"], ["RBLSMTPD": "", "DNSCACHEIP": noDNS])
        #expect(accept.out == "ran\n" && accept.exitCode == 0)
        let permanent = Self.rbl(["-r", "bl.test", "/bin/echo", "ran"], ["RBLSMTPD": "-No mail from %IP% (%IP)", "DNSCACHEIP": noDNS],
                                 stdin: Self.dialogue)
        #expect(Self.lines(permanent) == Self.blockedDialogue("553 No mail from 127.0.0.2 (%IP)"))
        #expect(permanent.exitCode == 0)
        let temporary = Self.rbl(["-b", "-r", "bl.test", "/bin/echo"], ["RBLSMTPD": "Try later", "RBLGREETING": "mx.test"],
                                 stdin: Self.dialogue)
        #expect(Self.lines(temporary) == Self.blockedDialogue("451 Try later", greeting: "mx.test"))
        let once = Self.rbl(["-t0", "-r", "bl.test", "/bin/echo"], ["RBLSMTPD": "-Error"])
        #expect(once.out == "553 Error\r\n")
        #expect(once.err.hasSuffix(": Session terminated: quitting\n"))
    }

    // MARK: failing DNS

    @Test func temporaryDNSFailures() throws {
        let closed = "127.0.0.1:\(closedUDPPort())"
        let started = MonotonicClock.now()
        // Fail-open: the program runs.
        #expect(Self.rbl(["-r", "bl.test", "-a", "abl.test", "/bin/echo", "ran"], ["DNSCACHEIP": closed]).out == "ran\n")
        // Fail-closed: blocked, 451 even with -b.
        let closedMode = Self.rbl(["-c", "-b", "-t0", "-r", "bl.test", "/bin/echo", "ran"], ["DNSCACHEIP": closed])
        #expect(closedMode.out == "451 temporary RBL lookup error\r\n")
        #expect(MonotonicClock.now() - started < 5)
        // A failed source earlier forbids 553 for a later listing.
        let dns = try Self.startDNS()
        let mixed = Self.rbl(["-b", "-t0", "-r", "down.test", "-r", "bl.test", "/bin/echo"],
                             ["DNSCACHEIP": "\(closed) \(dns.dnscacheip())"])
        #expect(mixed.out == "451 listed %IP% here\r\n")

        // A server that never answers: DNSTIMEOUT bounds each lookup.
        let silent = SilentDNSServer()
        let silentEnv = ["DNSCACHEIP": "127.0.0.1:\(silent.port)", "DNSTIMEOUT": "1"]
        let t0 = MonotonicClock.now()
        #expect(Self.rbl(["-r", "bl.test", "/bin/echo", "ran"], silentEnv).out == "ran\n")
        let elapsed = MonotonicClock.now() - t0
        #expect(elapsed >= 0.9 && elapsed < 5)
        #expect(Self.rbl(["-c", "-t0", "-r", "bl.test", "/bin/echo"], silentEnv).out == "451 temporary RBL lookup error\r\n")
    }

    // MARK: the session

    @Test func sessionTimeoutAndLimits() throws {
        let sandbox = Sandbox()
        let out = sandbox.at("out")
        let child = try #require(BackgroundChild([Build.indimail, "rblsmtpd", "-t", "1", "-r", "bl.test", "/bin/echo"],
                                                 stdinPipe: true, output: out, environment: ["RBLSMTPD": "held"]))
        child.send(Array("HELO x\r\n".utf8))  // no QUIT, input left open
        let status = child.waitExit(within: 5)
        #expect(status == .exited(0))
        let text = String(decoding: contents(out) ?? [], as: UTF8.self)
        #expect(text.contains("220 rblsmtpd.indimail\r\n250 rblsmtpd.indimail\r\n"))
        #expect(!text.contains("Session terminated"))

        // A 100 kB line, NULs, bare LFs and a partial last line.
        let junk = "HELO x\r\n" + String(repeating: "A", count: 100_000) + "\r\nmail from:<a\u{0}b>\nRCPT TO:<" +
            String(repeating: "r", count: 2000) + ">\r\nQUIT"
        let o = Self.rbl(["-r", "bl.test", "/bin/echo"], ["RBLSMTPD": "-no"], stdin: junk)
        #expect(Self.lines(o) == ["220 rblsmtpd.indimail\r", "250 rblsmtpd.indimail\r", "553 no\r", "250 rblsmtpd.indimail\r", "553 no\r"])
        #expect(o.err.contains("Sender <a?b>"))
        #expect(o.err.contains("RCPT with too long address"))
        #expect(o.err.hasSuffix("Session terminated: quitting\n"))
        #expect(o.exitCode == 0)

        let ehlo = Self.rbl(["-r", "bl.test", "/bin/echo"], ["RBLSMTPD": "-no", "RBLEHLO": "1"], stdin: "EHLO x\r\nVRFY y\r\n")
        #expect(Self.lines(ehlo).dropFirst() == ["250-rblsmtpd.indimail\r", "250-PIPELINING\r", "250-8BITMIME\r", "250-STARTTLS\r",
                                                 "250 HELP\r", "252 rblsmtpd.indimail\r"])
    }

    @Test func smtplibThroughTcpserver() throws {
        let tcpserver = try #require(peer("/usr/bin/tcpserver"), "ucspi-tcp-ipv6 missing: run scripts/deps --test")
        let dns = try Self.startDNS()
        let sandbox = Sandbox()
        let portFile = sandbox.at("port")
        let server = try #require(BackgroundChild([tcpserver, "-1", "-R", "-H", "-l", "localhost", "127.0.0.1", "0",
                                                   Build.indimail, "rblsmtpd", "-b", "-r", "bl.test", "/bin/echo", "not blocked"],
                                                  output: portFile, environment: ["DNSCACHEIP": dns.dnscacheip()]))
        var port = ""
        #expect(eventually(within: 5) {
            port = String(decoding: (contents(portFile) ?? []).prefix { $0 != 10 }, as: UTF8.self)
            return UInt16(port) != nil
        })
        let script = """
        import smtplib, sys
        s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), timeout=10)
        print(s.ehlo()[0], s.mail('a@b.test')[0])
        code, text = s.rcpt('c@d.test')
        print(code, text.decode())
        print(s.docmd('DATA')[0], s.noop()[0], s.quit()[0])
        """
        let o = run(["/usr/bin/python3", "-c", script, port], timeout: 15)
        #expect(o.out == "250 250\n553 Listed: see http://bl.test/\n553 250 221\n", "\(o.err)")
        _ = server
    }

    // MARK: greeting delay

    @Test func greetingDelay() {
        let t0 = MonotonicClock.now()
        let delayed = Self.rbl(["-w", "1", "-r", "bl.test", "/bin/echo", "ran"], ["RBLSMTPD": ""])
        #expect(delayed.out == "ran\n")
        #expect(MonotonicClock.now() - t0 >= 0.95)
        #expect(delayed.err.contains(" from 127.0.0.2: greetdelay: 1\n"))
        // $GREETDELAY wins over -w; -W alone takes it.
        let t1 = MonotonicClock.now()
        #expect(Self.rbl(["-w", "30", "-r", "bl.test", "/bin/echo", "ran"], ["RBLSMTPD": "", "GREETDELAY": "0"]).out == "ran\n")
        #expect(MonotonicClock.now() - t1 < 5)
        let t2 = MonotonicClock.now()
        let fromEnv = Self.rbl(["-W", "-t0", "-r", "bl.test", "/bin/echo"], ["RBLSMTPD": "x", "GREETDELAY": "1"])
        #expect(fromEnv.out == "451 x\r\n")
        #expect(MonotonicClock.now() - t2 >= 0.95)
        #expect(Self.rbl(["-W", "-r", "bl.test", "/bin/echo", "ran"], ["RBLSMTPD": ""]).err == "")
    }

    // MARK: errors

    @Test func usageAndExecFailures() {
        for args in [[], ["/bin/echo"], ["-r", "bl.test"], ["-t", "x", "-r", "bl.test", "/bin/echo"], ["-R", "-r", "x", "/bin/echo"]] {
            let o = Self.rbl(args, ["RBLSMTPD": ""])
            #expect(o.exitCode == 100, "\(args)")
            #expect(o.err.contains("rblsmtpd: usage: rblsmtpd"))
        }
        let missing = Self.rbl(["-r", "bl.test", "/nonexistent/smtpd"], ["RBLSMTPD": ""])
        #expect(missing.exitCode == 111)
        #expect(missing.err == "rblsmtpd: fatal: unable to run /nonexistent/smtpd: No such file or directory\n")
    }

    // MARK: against Debian's rblsmtpd

    /// Reply codes (first three bytes of each line) and the text of refusals.
    static func summary(_ o: Outcome) -> [String] {
        lines(o).map { line in
            let code = String(line.prefix(3))
            return code == "451" || code == "553" ? line : code
        }
    }

    @Test func sameCodesAsUcspiTcp() throws {
        let theirs = try #require(peer("/usr/bin/rblsmtpd"), "ucspi-tcp-ipv6 missing: run scripts/deps --test")
        // djb's resolver has no port syntax: a dnsmasq on port 53 of a private loopback address.
        let dns = try #require(Dnsmasq(addresses: ["127.53.0.1"], port: 53, zones: ["bl.test", "abl.test", "white.test"],
                                       records: Self.zoneRecords()),
                               "dnsmasq could not bind 127.53.0.1:53 (tests must run as root)")
        let env = ["DNSCACHEIP": dns.dnscacheip()]
        let cases: [([String], [String: String], String)] = [
            (["-r", "bl.test", "/bin/echo", "ran"], ["RBLSMTPD": "-blocked"], Self.dialogue),
            (["-r", "bl.test", "/bin/echo", "ran"], ["RBLSMTPD": "later"], Self.dialogue),
            (["-r", "bl.test", "/bin/echo", "ran"], ["RBLSMTPD": ""], ""),
            (["-t0", "-r", "bl.test", "/bin/echo", "ran"], ["RBLSMTPD": "x"], ""),
            (["-r", "bl.test", "/bin/echo", "ran"], env, Self.dialogue),
            (["-b", "-r", "bl.test", "/bin/echo", "ran"], env, Self.dialogue),
            (["-t0", "-r", "bl.test", "/bin/echo", "ran"], env.merging(["TCPREMOTEIP": "127.0.0.4"]) { $1 }, ""),
            (["-r", "bl.test", "/bin/echo", "ran"], env.merging(["TCPREMOTEIP": "127.0.0.9"]) { $1 }, ""),
            // Not compared: -r base:text (Debian's build has no such form: it asks for the TXT
            // record of "d.c.b.a.base:text"), VRFY and RBLEHLO (indimail additions), greetings.
            (["-a", "white.test", "-r", "bl.test", "/bin/echo", "ran"], env.merging(["TCPREMOTEIP": "127.0.0.3"]) { $1 }, ""),
            (["-t0", "-r", "bl.test", "-a", "white.test", "/bin/echo", "ran"], env.merging(["TCPREMOTEIP": "127.0.0.3"]) { $1 }, ""),
            (["-r", "bl.test", "/nonexistent/smtpd"], ["RBLSMTPD": ""], ""),
            (["-z", "-r", "bl.test", "/bin/echo"], ["RBLSMTPD": ""], ""),
            ([], ["RBLSMTPD": ""], ""),
        ]
        for (args, environment, input) in cases {
            let ours = Self.rbl(args, environment, stdin: input)
            let peer = Self.rbl(args, environment, stdin: input, program: [theirs])
            #expect(ours.exitCode == peer.exitCode, "\(args) \(environment)")
            #expect(Self.summary(ours) == Self.summary(peer), "\(args) \(environment)")
        }
    }
}
