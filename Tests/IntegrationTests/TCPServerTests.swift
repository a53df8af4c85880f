// tcpserver on loopback: environment, rules (cdbs made by ucspi-tcp's tcprules), limits,
// banner, UNIX sockets, in-process programs, plugins, signals, bad input.
import Core
import Glibc
import Testing

@Suite struct TCPServerEnvironmentTests {
    @Test func ipv4ListenerSetsTheTCPVariablesOnly() throws {
        let box = Sandbox()
        let server = try #require(RunningServer(box, ["-v", "-H", "-R", "-l", "0", "127.0.0.1", "0", "/usr/bin/env"],
                                                environment: ["TCPREMOTEHOST": "stale", "TCPREMOTEINFO": "stale"]))
        let env = environmentDump(try #require(exchange(port: server.port)))
        #expect(env["PROTO"] == "TCP")
        #expect(env["TCPLOCALIP"] == "127.0.0.1")
        #expect(env["TCPLOCALPORT"] == String(server.port))
        #expect(env["TCPLOCALHOST"] == "0")
        #expect(env["TCPREMOTEIP"] == "127.0.0.1")
        #expect(env["TCPREMOTEPORT"].flatMap { UInt16($0) } != nil)
        #expect(env["TCPREMOTEHOST"] == nil)   // -H removes an inherited value
        #expect(env["TCPREMOTEINFO"] == nil)   // -R too
        #expect(env["TCP6REMOTEIP"] == nil)    // an IPv4 address means IPv4-only mode
        #expect(server.logged("ok ").count == 1)
        #expect(server.logged("status: 0/40 startup").count == 1)
    }

    @Test func dualStackServesBothFamilies() throws {
        let box = Sandbox()
        let server = try #require(RunningServer(box, ["-H", "-R", "-l", "0", "::", "0", "/usr/bin/env"]))
        let v4 = environmentDump(try #require(exchange(port: server.port)))
        #expect(v4["PROTO"] == "TCP")
        #expect(v4["TCPREMOTEIP"] == "127.0.0.1")
        #expect(v4["TCP6REMOTEIP"] == "::ffff:127.0.0.1")
        let v6 = environmentDump(try #require(exchange(port: server.port, host: .v6([UInt8](repeating: 0, count: 15) + [1]))))
        #expect(v6["PROTO"] == "TCP6")
        #expect(v6["TCPREMOTEIP"] == "::1")
        #expect(v6["TCP6LOCALIP"] == "::1")
    }

    @Test func forcedIPv6Presentation() throws {
        let box = Sandbox()
        let server = try #require(RunningServer(box, ["-6", "-H", "-R", "-l", "0", "::", "0", "/usr/bin/env"]))
        let env = environmentDump(try #require(exchange(port: server.port)))
        #expect(env["PROTO"] == "TCP6")
        #expect(env["TCPREMOTEIP"] == "::ffff:127.0.0.1")
    }

    @Test func bannerComesFirst() throws {
        let box = Sandbox()
        let server = try #require(RunningServer(box, ["-H", "-R", "-l", "0", "-B", "hello\r\n", "127.0.0.1", "0", "/bin/echo", "program"]))
        #expect(exchange(port: server.port) == Array("hello\r\nprogram\n".utf8))
    }

    @Test func unixSocket() throws {
        let box = Sandbox()
        let path = box.at("sock")
        let log = box.at("unix.log")
        let child = try #require(BackgroundChild([Build.indimailTLS, "tcpserver", "-v", path, "/usr/bin/env"], output: log))
        // The name appears at bind(2), a moment before listen(2): wait for a connection.
        var connected: Int32 = -1
        #expect(eventually(within: 10) {
            if case .success(let fd) = Socket.connect(to: .unix(path), timeout: 5) { connected = fd }
            return connected >= 0
        })
        guard connected >= 0 else {
            Issue.record("no connection")
            return
        }
        let fd = connected
        let out = FD.readAll(fd)
        close(fd)
        let env = environmentDump((try? out.get()) ?? [])
        #expect(env["PROTO"] == "UNIX")
        #expect(env["UNIXLOCALPATH"] == path)
        kill(child.pid, SIGTERM)
        #expect(child.waitExit(within: 5) == .exited(0))
        #expect(!Path.exists(path))  // SIGTERM removes the socket
    }
}

@Suite struct TCPServerRulesTests {
    /// Builds a rules cdb with ucspi-tcp's own tcprules: our reader must take it as is.
    func rules(_ box: Sandbox, _ text: String) throws -> String {
        let tcprules = try #require(peer("/usr/bin/tcprules"), "ucspi-tcp tcprules missing: run scripts/deps --test")
        let cdb = box.at("rules.cdb")
        let r = run([tcprules, cdb, box.at("rules.tmp")], stdin: Array(text.utf8))
        #expect(r.exitCode == 0, "\(r.err)")
        return cdb
    }

    @Test func allowRuleSetsAndUnsetsVariables() throws {
        let box = Sandbox()
        let cdb = try rules(box, "127.0.0.1:allow,RELAYCLIENT=\"\",GREETING=\"hi there\"\n:deny\n")
        let server = try #require(RunningServer(box, ["-v", "-H", "-R", "-l", "0", "-x", cdb, "127.0.0.1", "0", "/usr/bin/env"],
                                                environment: ["GREETING": "inherited"]))
        let env = environmentDump(try #require(exchange(port: server.port)))
        #expect(env["RELAYCLIENT"] == "")
        #expect(env["GREETING"] == "hi there")
    }

    @Test func denyRuleDropsTheConnection() throws {
        let box = Sandbox()
        let cdb = try rules(box, "127.:deny\n")
        let server = try #require(RunningServer(box, ["-v", "-H", "-R", "-l", "0", "-x", cdb, "127.0.0.1", "0", "/bin/echo", "served"]))
        #expect(exchange(port: server.port) == [])
        #expect(eventually(within: 5) { server.logged("deny ").count == 1 })
        #expect(eventually(within: 5) { server.logged("end ").contains { $0.hasSuffix(" status 100") } })
    }

    @Test func missingRulesFile() throws {
        let box = Sandbox()
        let strict = try #require(RunningServer(box, ["-H", "-R", "-l", "0", "-x", box.at("none.cdb"), "127.0.0.1", "0", "/bin/echo", "served"]))
        #expect(exchange(port: strict.port) == [])
        #expect(eventually(within: 5) { strict.log.contains { $0.contains("unable to read cdb") } })
        let lenient = try #require(RunningServer(box, ["-X", "-H", "-R", "-l", "0", "-x", box.at("none.cdb"), "127.0.0.1", "0", "/bin/echo", "served"]))
        #expect(exchange(port: lenient.port) == Array("served\n".utf8))
    }

    @Test func ruleMaxPerIPLimitsTheChild() throws {
        let box = Sandbox()
        let cdb = try rules(box, "127.0.0.1:allow,MAXPERIP=\"1\"\n")
        let server = try #require(RunningServer(box, ["-v", "-H", "-R", "-l", "0", "-C", "5", "-x", cdb, "127.0.0.1", "0", "/bin/sleep", "3"]))
        guard case .success(let first) = Socket.connect(to: .inet(.v4(127, 0, 0, 1), port: server.port, scope: 0), timeout: 5) else {
            Issue.record("no first connection")
            return
        }
        defer { close(first) }
        #expect(eventually(within: 5) { server.logged("ok ").count == 1 })
        // The second child finds one connection from the same IP: over the rule's limit of 1.
        #expect(exchange(port: server.port, timeout: 5) == [])
        #expect(eventually(within: 5) { server.log.contains { $0.contains("no ip slots for 127.0.0.1") } })
    }
}

@Suite struct TCPServerLimitTests {
    @Test func perIPLimitInTheParent() throws {
        let box = Sandbox()
        let server = try #require(RunningServer(box, ["-v", "-H", "-R", "-l", "0", "-C", "1", "127.0.0.1", "0", "/bin/sleep", "3"]))
        guard case .success(let first) = Socket.connect(to: .inet(.v4(127, 0, 0, 1), port: server.port, scope: 0), timeout: 5) else {
            Issue.record("no first connection")
            return
        }
        defer { close(first) }
        #expect(eventually(within: 5) { server.logged("ok ").count == 1 })
        #expect(exchange(port: server.port, timeout: 5) == [])
        #expect(eventually(within: 5) { server.logged("end 127.0.0.1 perIPlimit 1").count == 1 })
    }

    @Test func childLimitQueuesConnections() throws {
        let box = Sandbox()
        let server = try #require(RunningServer(box, ["-v", "-H", "-R", "-l", "0", "-c", "1", "-C", "0", "127.0.0.1", "0",
                                                      "/bin/sh", "-c", "sleep 0.5; echo done"]))
        let start = monotonicSeconds()
        var results: [[UInt8]?] = []
        // Two clients at once: the second is accepted only after the first child ends.
        guard case .success(let a) = Socket.connect(to: .inet(.v4(127, 0, 0, 1), port: server.port, scope: 0), timeout: 5) else { return }
        results.append(exchange(port: server.port))
        close(a)
        #expect(results == [Array("done\n".utf8)])
        #expect(monotonicSeconds() - start >= 0.9)
    }

    @Test func limitFileIsReadAgainOnHangup() throws {
        let box = Sandbox()
        box.write("control/concurrency", "3\n")
        let server = try #require(RunningServer(box, ["-v", "-H", "-R", "-l", "0", "-c", "concurrency", "127.0.0.1", "0", "/bin/true"],
                                                environment: ["CONTROLDIR": box.at("control")]))
        #expect(server.logged("status: 0/3 startup").count == 1)
        box.write("control/concurrency", "7\n")
        kill(server.child.pid, SIGHUP)
        #expect(eventually(within: 5) { server.logged("sighup: 0/7").count == 1 })
    }

    @Test func termStopsAcceptingAndLeavesChildrenRunning() throws {
        let box = Sandbox()
        let server = try #require(RunningServer(box, ["-v", "-H", "-R", "-l", "0", "127.0.0.1", "0", "/bin/sh", "-c", "sleep 0.5; echo late"]))
        guard case .success(let fd) = Socket.connect(to: .inet(.v4(127, 0, 0, 1), port: server.port, scope: 0), timeout: 5) else { return }
        defer { close(fd) }
        #expect(eventually(within: 5) { server.logged("ok ").count == 1 })
        kill(server.child.pid, SIGTERM)
        #expect(server.child.waitExit(within: 5) == .exited(0))
        let answer = FD.readAll(fd)
        #expect((try? answer.get()) == Array("late\n".utf8))
        #expect(exchange(port: server.port, timeout: 2) == nil)  // nobody listens any more
    }
}

@Suite struct TCPServerProgramTests {
    /// A program named like one of our commands runs inside the forked child: no exec.
    @Test func ownCommandsRunInProcess() throws {
        let box = Sandbox()
        let bin = box.commandLinks(["addcr"], binary: Build.indimailTLS)
        let server = try #require(RunningServer(box, ["-v", "-H", "-R", "-l", "0", "127.0.0.1", "0", "addcr"],
                                                environment: ["PATH": bin + ":/usr/bin:/bin"]))
        guard case .success(let fd) = Socket.connect(to: .inet(.v4(127, 0, 0, 1), port: server.port, scope: 0), timeout: 5) else { return }
        FD.writeAll(fd, Array("one\n".utf8))
        #expect(eventually(within: 5) { server.logged("ok ").count == 1 })
        let pid = try #require(server.logged("ok ").first.flatMap { pid_t($0.split(separator: " ")[2]) })
        let cmdline = (try? FD.readFile("/proc/\(pid)/cmdline").get()) ?? []
        #expect(String(decoding: cmdline, as: UTF8.self).contains("tcpserver"))  // still tcpserver's image
        shutdown(fd, Int32(SHUT_WR))
        #expect((try? FD.readAll(fd).get()) == Array("one\r\n".utf8))
        close(fd)
    }

    @Test func sharedObjectPluginIsCalled() throws {
        let gcc = try #require(peer("/usr/bin/gcc") ?? peer("/usr/bin/cc"), "a C compiler is needed to build the test plugin")
        let box = Sandbox()
        box.write("hello.c", """
            #include <stdio.h>
            #include <string.h>
            #include <unistd.h>
            int hello(int argc, char **argv, char **envp) {
                const char *ip = "?";
                for (char **e = envp; *e; e++) if (!strncmp(*e, "TCPREMOTEIP=", 12)) ip = *e + 12;
                dprintf(1, "plugin %s %d %s\\n", argc > 1 ? argv[1] : "-", argc, ip);
                return 0;
            }
            static int inits;
            int hello_init(int reload) { FILE *f = fopen("init.log", "a"); fprintf(f, "init %d\\n", reload); fclose(f); return 0; }

            """)
        let plugin = box.at("hello.so")
        let cc = run([gcc, "-shared", "-fPIC", "-o", plugin, box.at("hello.c")])
        #expect(cc.exitCode == 0, "\(cc.err)")
        let server = try #require(RunningServer(box, ["-v", "-H", "-R", "-l", "0", "127.0.0.1", "0", plugin, "arg1"],
                                                environment: ["PLUGIN0": plugin, "PLUGIN0_init": "hello_init", "PLUGIN0_dir": box.path]))
        #expect(exchange(port: server.port) == Array("plugin arg1 2 127.0.0.1\n".utf8))
        #expect(lines(box.at("init.log")) == ["init 0"])
        kill(server.child.pid, SIGHUP)
        #expect(eventually(within: 5) { lines(box.at("init.log")) == ["init 0", "init 1"] })
    }

    @Test func daemontoolsStyleClientInterop() throws {
        let tcpclient = try #require(peer("/usr/bin/tcpclient"), "ucspi-tcp tcpclient missing")
        let box = Sandbox()
        let server = try #require(RunningServer(box, ["-H", "-R", "-l", "0", "127.0.0.1", "0", "/bin/echo", "from server"]))
        // ucspi-tcp's tcpclient gives its program the socket on fds 6 (read) and 7 (write).
        let r = run([tcpclient, "-H", "-R", "127.0.0.1", String(server.port), "/bin/sh", "-c", "cat <&6"], timeout: 10)
        #expect(r.exitCode == 0)
        #expect(r.out == "from server\n")
    }
}

@Suite struct TCPServerStaticBinaryTests {
    /// Plain service from the fully static base binary (cheaper forks than indimail-tls).
    @Test func baseBinaryServesPlainConnections() throws {
        let box = Sandbox()
        let server = try #require(RunningServer(box, ["-H", "-R", "-l", "0", "127.0.0.1", "0", "/usr/bin/env"], binary: Build.indimail))
        let env = environmentDump(try #require(exchange(port: server.port)))
        #expect(env["PROTO"] == "TCP")
        #expect(env["TCPREMOTEIP"] == "127.0.0.1")
    }
}

@Suite struct TCPServerBadInputTests {
    @Test func usageErrors() {
        for args in [["tcpserver"], ["tcpserver", "127.0.0.1"], ["tcpserver", "127.0.0.1", "25"], ["tcpserver", "-Z", "0", "0", "x"],
                     ["tcpserver", "-c", "", "0", "0", "x"], ["tcpserver", "-C", "many", "0", "0", "x"]] {
            let r = run([Build.indimailTLS] + args, timeout: 5)
            #expect(r.exitCode == 100, "\(args)")
        }
    }

    @Test func startupFailures() throws {
        let bad = run([Build.indimailTLS, "tcpserver", "127.0.0.1", "no-such-service-name", "/bin/true"], timeout: 5)
        #expect(bad.exitCode == 111)
        #expect(bad.err.contains("unable to figure out port number for no-such-service-name"))
        let box = Sandbox()
        let server = try #require(RunningServer(box, ["-H", "-R", "127.0.0.1", "0", "/bin/true"]))
        let busy = run([Build.indimailTLS, "tcpserver", "127.0.0.1", String(server.port), "/bin/true"], timeout: 5)
        #expect(busy.exitCode == 111)
        #expect(busy.err.contains("unable to bind"))
        // The static binary has no OpenSSL: it hands TLS over to indimail-tls (which then
        // fails here for want of the default certificate).
        let tlsInBase = run([Build.indimail, "tcpserver", "-s", "-i", box.at("nocerts"), "127.0.0.1", "0", "/bin/true"], timeout: 10)
        #expect(tlsInBase.exitCode == 111)
        #expect(tlsInBase.err.contains("unable to initialize TLS"))
    }

    @Test func missingProgramDropsOnlyThatConnection() throws {
        let box = Sandbox()
        let server = try #require(RunningServer(box, ["-H", "-R", "-l", "0", "127.0.0.1", "0", "/nonexistent/program"]))
        #expect(exchange(port: server.port) == [])
        #expect(eventually(within: 5) { server.log.contains { $0.contains("unable to run /nonexistent/program") } })
        #expect(server.child.isRunning)
        #expect(exchange(port: server.port) == [])  // still serving
    }
}
