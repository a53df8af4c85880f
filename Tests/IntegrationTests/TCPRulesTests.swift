// tcprules and tcprulescheck against ucspi-tcp-ipv6's (Debian, /usr/bin): byte-identical
// cdbs, each tool reading the other's, the rts.tests vectors, atomic rebuild, CIDR.
import Core
import Glibc
import Testing

@Suite struct TCPRulesTests {
    /// Inputs in the syntax both implementations share (no CIDR, no `!NAME`, only lines
    /// ucspi-tcp neither loops on nor rejects).
    static let commonInputs: [String] = [
        "joe@127.0.0.1:allow,which=/first/\n18.23.0.32:allow,which=\"second\"\n127.:allow,which=+third+\n:allow,which==fourth=\n",
        "127.0-5.:allow,which=/first/,where=/whatever/\n# comment\n",
        "=known.edu:allow,which=/known/\n=.abuser.edu:deny\n:allow,which=/anybody/\n",
        """
        xyz@86.75.30.9:allow,which=/first/
        xyz@=one.two.three:allow,which=/second/
        86.75.30.9:allow,which=/third/
        =one.two.three:allow,which=/fourth/
        86.75.30.:allow,which=/fifth/
        86.75.:allow,which=/sixth/
        86.:allow,which=/seventh/
        =.two.three:allow,which=/eighth/
        =.three:allow,which=/ninth/
        =:allow,which=/tenth/
        :allow,which=/eleventh/

        """,
        "1.2.3.4:deny\n",
        "1.2.3.37-53:allow,RELAYCLIENT=\"\"\n10.2-3.:deny\n1.2.3.250-300:allow\n1.2.3.-1:allow\n5-3:allow\n",
        "#x\n\n\n:deny",                                              // last line without LF
        " 1.2.3.4 :allow \t\n:allow,=/x/\n:allow,A=,B,\n:deny,A=/1/,B='2',C=\"a,b\"\n",
        "a@b-c:allow\nx:y:allow\n=a-b.example:deny\n",
        "::1:allow,A=\"x\"\n2001:db8::1:deny\nfe80::a:b:cd:1234:allow\n::ffff:1.2.3.4:deny\n",
        "127.0.0.1:allow,RELAYCLIENT=\"\",TCPLOCALHOST=\"movie.edu\"\n::1:allow,RELAYCLIENT=\"\",TCPLOCALHOST=\"movie.edu\"\n",
        String(repeating: "10.0.0.1:allow,X=/y/\n", count: 300) + (0..<2000).map { "10.\($0 % 250).\($0 / 250).1:deny\n" }.joined(),
        "",
    ]

    /// Clients to ask both tcprulescheck programs about (IPv4 only: ucspi-tcp matches
    /// IPv6 by text prefix, which the reference does not, see tcprules(1)).
    static let clients: [[String: String]] = [
        ["TCPREMOTEIP": "127.0.0.1", "TCPREMOTEINFO": "joe"],
        ["TCPREMOTEIP": "18.23.0.32", "TCPREMOTEINFO": "joe"],
        ["TCPREMOTEIP": "127.0.0.1", "TCPREMOTEINFO": "bill"],
        ["TCPREMOTEIP": "10.119.75.39", "TCPREMOTEINFO": "bill"],
        ["TCPREMOTEIP": "127.3.0.1"], ["TCPREMOTEIP": "127.6.0.1"],
        ["TCPREMOTEIP": "1.2.3.4", "TCPREMOTEHOST": "known.edu"],
        ["TCPREMOTEIP": "1.2.3.4", "TCPREMOTEHOST": "abuser.edu"],
        ["TCPREMOTEIP": "1.2.3.4", "TCPREMOTEHOST": "x.y.abuser.edu"],
        ["TCPREMOTEIP": "86.75.30.9", "TCPREMOTEHOST": "one.two.three", "TCPREMOTEINFO": "xyz"],
        ["TCPREMOTEIP": "86.75.30.10", "TCPREMOTEHOST": "one.two.three", "TCPREMOTEINFO": "xyz"],
        ["TCPREMOTEIP": "86.75.30.10", "TCPREMOTEHOST": "four.two.three"],
        ["TCPREMOTEIP": "86.75.20.10", "TCPREMOTEINFO": "abc"],
        ["TCPREMOTEIP": "86.85.20.10"], ["TCPREMOTEIP": "96.85.20.10", "TCPREMOTEHOST": "four.two.three"],
        ["TCPREMOTEIP": "96.85.20.10", "TCPREMOTEHOST": ""],
        ["TCPREMOTEIP": "1.2.3.40"], ["TCPREMOTEIP": "1.2.3.255"], ["TCPREMOTEIP": "10.3.0.1"],
        ["TCPREMOTEIP": "10.7.3.1"], ["TCPREMOTEIP": "1.2.3.0"],
        ["TCPREMOTEIP": "::1"], ["TCPREMOTEIP": "2001:db8::1"],
        [:],
    ]

    func tcprules(_ tool: String, _ dir: Sandbox, _ input: String, name: String) -> Outcome {
        run(tool == "ours" ? [Build.indimail, "tcprules", dir.at(name), dir.at(name + ".tmp")]
                           : [tool, dir.at(name), dir.at(name + ".tmp")],
            stdin: Array(input.utf8), timeout: 10)
    }

    func check(_ tool: String, _ cdb: String, _ client: [String: String]) -> Outcome {
        run(tool == "ours" ? [Build.indimail, "tcprulescheck", cdb] : [tool, cdb],
            environment: client, inheritEnvironment: false, timeout: 10)
    }

    @Test(arguments: 0..<commonInputs.count)
    func byteIdenticalToUcspiTcp(_ index: Int) throws {
        let theirs = try #require(peer("/usr/bin/tcprules"), "ucspi-tcp-ipv6 missing: run scripts/deps --test")
        let dir = Sandbox()
        let input = Self.commonInputs[index]
        let a = tcprules(theirs, dir, input, name: "theirs.cdb")
        let b = tcprules("ours", dir, input, name: "ours.cdb")
        #expect(a.exitCode == 0 && b.exitCode == 0, "\(a.err) \(b.err)")
        let mine = try FD.readFile(dir.at("ours.cdb")).get()
        #expect(try FD.readFile(dir.at("theirs.cdb")).get() == mine, "cdb differs for input \(index)")
        #expect(run(["/usr/bin/cmp", dir.at("theirs.cdb"), dir.at("ours.cdb")]).exitCode == 0)
        #expect(access(dir.at("ours.cdb.tmp"), F_OK) != 0, "tmp left behind")
    }

    @Test(arguments: 0..<commonInputs.count)
    func eachToolReadsTheOthersDatabase(_ index: Int) throws {
        let theirRules = try #require(peer("/usr/bin/tcprules"), "ucspi-tcp-ipv6 missing")
        let theirCheck = try #require(peer("/usr/bin/tcprulescheck"), "ucspi-tcp-ipv6 missing")
        let dir = Sandbox()
        let input = Self.commonInputs[index]
        #expect(tcprules(theirRules, dir, input, name: "theirs.cdb").exitCode == 0)
        #expect(tcprules("ours", dir, input, name: "ours.cdb").exitCode == 0)
        for client in Self.clients where !(client["TCPREMOTEIP"] ?? "").contains(":") {
            let reference = check(theirCheck, dir.at("theirs.cdb"), client)
            #expect(reference.exitCode == 0)
            for (tool, cdb) in [("ours", "theirs.cdb"), (theirCheck, "ours.cdb"), ("ours", "ours.cdb")] {
                let o = check(tool, dir.at(cdb), client)
                #expect(o.exitCode == 0)
                #expect(o.out == reference.out, "input \(index), \(client), \(tool) on \(cdb)")
            }
        }
    }

    @Test func ipv6LiteralsAsUcspiTcpMatchesThem() throws {
        let theirCheck = try #require(peer("/usr/bin/tcprulescheck"), "ucspi-tcp-ipv6 missing")
        let dir = Sandbox()
        #expect(tcprules("ours", dir, Self.commonInputs[9], name: "r.cdb").exitCode == 0)
        for ip in ["::1", "2001:db8::1", "fe80::a:b:cd:1234", "::ffff:1.2.3.4", "2001:db8::2"] {
            let client = ["TCPREMOTEIP": ip]
            #expect(check("ours", dir.at("r.cdb"), client).out == check(theirCheck, dir.at("r.cdb"), client).out, "\(ip)")
        }
    }

    /// rts.tests' tcprules section, output and exit codes compared with ucspi-tcp's.
    @Test func rtsSequence() throws {
        let theirRules = try #require(peer("/usr/bin/tcprules"), "ucspi-tcp-ipv6 missing")
        let theirCheck = try #require(peer("/usr/bin/tcprulescheck"), "ucspi-tcp-ipv6 missing")
        for (rules, check) in [(theirRules, theirCheck), ("ours", "ours")] {
            let dir = Sandbox()
            let cdb = dir.at("test.cdb"), tmp = dir.at("test.tmp")
            func rulesRun(_ args: [String], _ input: String) -> Outcome {
                run(rules == "ours" ? [Build.indimail, "tcprules"] + args : [rules] + args,
                    stdin: Array(input.utf8), directory: dir.path, timeout: 10)
            }
            let usage = rulesRun(["test.cdb"], "")
            #expect(usage.exitCode == 100 && usage.err == "tcprules: usage: tcprules rules.cdb rules.tmp\n", "\(rules)")
            let noTmp = rulesRun([cdb, "/dev/nonexistent/tmp"], "1.2.3.4:deny\n")
            #expect(noTmp.exitCode == 111 && noTmp.err.hasPrefix("tcprules: fatal: unable to create /dev/nonexistent/tmp: "))
            let noMove = rulesRun(["/dev/nonexistent/cdb", tmp], "1.2.3.4:deny\n")
            #expect(noMove.exitCode == 111 && noMove.err.hasPrefix("tcprules: fatal: unable to move \(tmp) to /dev/nonexistent/cdb: "))
            #expect(rulesRun([cdb, tmp], "1.2.3.4:deny\n").exitCode == 0)
            let deny = self.check(check, cdb, ["TCPREMOTEIP": "1.2.3.4"])
            #expect(deny.out == "rule 1.2.3.4:\ndeny connection\n" && deny.exitCode == 0, "\(check)")
            #expect(self.check(check, cdb, ["TCPREMOTEIP": "1.2.3.5"]).out == "default:\nallow connection\n")
            #expect(rulesRun([cdb, tmp], Self.commonInputs[0]).exitCode == 0)
            #expect(self.check(check, cdb, ["TCPREMOTEIP": "127.0.0.1", "TCPREMOTEINFO": "joe"]).out
                    == "rule joe@127.0.0.1:\nset environment variable which=first\nallow connection\n")
            #expect(self.check(check, cdb, ["TCPREMOTEIP": "10.119.75.39"]).out
                    == "rule :\nset environment variable which=fourth\nallow connection\n")
        }
    }

    @Test func tcprulescheckUsageAndErrors() throws {
        let theirCheck = try #require(peer("/usr/bin/tcprulescheck"), "ucspi-tcp-ipv6 missing")
        let usage = run([Build.indimail, "tcprulescheck"])
        #expect(usage.exitCode == 100 && usage.err == "tcprulescheck: usage: tcprulescheck rules.cdb\n")
        #expect(run([theirCheck]).exitCode == 100)
        let missing = run([Build.indimail, "tcprulescheck", "/nonexistent/rules.cdb"])
        #expect(missing.exitCode == 111 && missing.err.hasPrefix("tcprulescheck: fatal: unable to read /nonexistent/rules.cdb: "))
        let dir = Sandbox()
        let short = dir.write("short.cdb", "not a cdb")
        #expect(run([Build.indimail, "tcprulescheck", short]).exitCode == 111)
    }

    @Test func defaultClientIsZeroAddress() {
        let dir = Sandbox()
        #expect(tcprules("ours", dir, "0.0.0.0:deny\n", name: "r.cdb").exitCode == 0)
        #expect(check("ours", dir.at("r.cdb"), [:]).out == "rule 0.0.0.0:\ndeny connection\n")
    }

    @Test func unsetAndOrderOfRecords() {
        let dir = Sandbox()
        let made = tcprules("ours", dir, "127.:allow,!GREYIP,A=/1/,!RELAYCLIENT=\n=x:deny,B=/2/\n", name: "r.cdb")
        #expect(made.exitCode == 0)
        #expect(check("ours", dir.at("r.cdb"), ["TCPREMOTEIP": "127.0.0.1"]).out
                == "rule 127.:\nunset environment variable GREYIP\nset environment variable A=1\nunset environment variable RELAYCLIENT\nallow connection\n")
        #expect(check("ours", dir.at("r.cdb"), ["TCPREMOTEIP": "9.9.9.9", "TCPREMOTEHOST": "x"]).out
                == "rule =x:\ndeny connection\n")
    }

    @Test func failedRebuildLeavesTheOldDatabaseAndNoTmp() throws {
        let dir = Sandbox()
        #expect(tcprules("ours", dir, "1.2.3.4:deny\n", name: "r.cdb").exitCode == 0)
        let before = try FD.readFile(dir.at("r.cdb")).get()
        for (input, line) in [("# ok\n1.2.3.5:deny\n:allowx\n", 3), ("1.2.3.4:deny\n\nnot a rule\n", 3),
                              ("10.0.0.0/33:deny\n", 1), (":allow,A=/x\n", 1), ("1.2.3.4:allow\r\n", 1),
                              ("   \n1.2.3.4:alow\n", 2)] {
            let o = tcprules("ours", dir, input, name: "r.cdb")
            #expect(o.exitCode == 100, "\(input)")
            #expect(o.err.hasPrefix("tcprules: fatal: unable to parse line \(line) ("), "\(o.err)")
            #expect(try FD.readFile(dir.at("r.cdb")).get() == before)
            #expect(access(dir.at("r.cdb.tmp"), F_OK) != 0, "tmp left behind after \(input)")
        }
        #expect(check("ours", dir.at("r.cdb"), ["TCPREMOTEIP": "1.2.3.4"]).out == "rule 1.2.3.4:\ndeny connection\n")
    }

    @Test func tmpIsTheSecondArgumentAndIsReplaced() throws {
        let dir = Sandbox()
        dir.write("stale.tmp", "old junk")
        let o = run([Build.indimail, "tcprules", dir.at("r.cdb"), dir.at("stale.tmp")], stdin: Array(":deny\n".utf8))
        #expect(o.exitCode == 0)
        #expect(access(dir.at("stale.tmp"), F_OK) != 0)
        #expect(check("ours", dir.at("r.cdb"), ["TCPREMOTEIP": "1.1.1.1"]).out == "rule :\ndeny connection\n")
        // A directory in the tmp's place: cannot create, nothing changes.
        dir.directory("busy.tmp")
        let busy = run([Build.indimail, "tcprules", dir.at("r.cdb"), dir.at("busy.tmp")], stdin: Array(":allow\n".utf8))
        #expect(busy.exitCode == 111 && busy.err.hasPrefix("tcprules: fatal: unable to create"))
        #expect(check("ours", dir.at("r.cdb"), ["TCPREMOTEIP": "1.1.1.1"]).out == "rule :\ndeny connection\n")
    }

    @Test func unreadableInputIsTemporary() {
        let dir = Sandbox()
        // A directory as standard input: read(2) fails with EISDIR.
        let o = run(["/bin/sh", "-c", "exec \"$0\" tcprules \"$1\" \"$2\" < /", Build.indimail,
                     dir.at("r.cdb"), dir.at("r.tmp")])
        #expect(o.exitCode == 111 && o.err.hasPrefix("tcprules: fatal: unable to read input: "))
        #expect(access(dir.at("r.cdb"), F_OK) != 0 && access(dir.at("r.tmp"), F_OK) != 0)
    }

    @Test func cidrRulesMatch() {
        let dir = Sandbox()
        let input = """
            10.0.0.0/8:deny
            10.1.0.0/16:allow,NET=/16/
            192.168.1.128/25:allow,NET=/25/
            2001:db8::/32:deny
            2001:db8:1::/48:allow,NET=/48/
            fe80::/10:allow,NET=/ll/
            0.0.0.0/0:allow,NET=/any4/

            """
        #expect(tcprules("ours", dir, input, name: "r.cdb").exitCode == 0)
        let cases: [(String, String?, String)] = [
            ("10.200.1.1", nil, "deny connection\n"),
            ("10.1.2.3", nil, "set environment variable NET=16\nallow connection\n"),
            ("192.168.1.200", nil, "set environment variable NET=25\nallow connection\n"),
            ("192.168.1.100", nil, "set environment variable NET=any4\nallow connection\n"),
            ("2001:db8:5::1", nil, "deny connection\n"),
            ("2001:db8:1:2::1", "host.example", "set environment variable NET=48\nallow connection\n"),
            ("fe80::1", "host.example", "set environment variable NET=ll\nallow connection\n"),
        ]
        for (ip, host, tail) in cases {
            var client = ["TCPREMOTEIP": ip]
            client["TCPREMOTEHOST"] = host
            let o = check("ours", dir.at("r.cdb"), client)
            #expect(o.exitCode == 0 && o.out.hasPrefix("rule ") && o.out.hasSuffix(tail), "\(ip): \(o.out)")
        }
        #expect(check("ours", dir.at("r.cdb"), ["TCPREMOTEIP": "2002::1"]).out == "default:\nallow connection\n")
    }

    @Test func warnsAboutRulesThatCannotMatch() {
        let dir = Sandbox()
        let o = tcprules("ours", dir, "2001:db8::allow\n 1.2.3.4:deny\n1.2.3.4:deny\n", name: "r.cdb")
        #expect(o.exitCode == 0)
        #expect(o.err.contains("tcprules: warning: line 1: 2001:db8:: "))
        #expect(o.err.contains("tcprules: warning: line 2:  1.2.3.4: "))
        #expect(!o.err.contains("line 3"))
    }
}
