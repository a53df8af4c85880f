// Exec (pathexec rules), Spawn (posix_spawn with a clean signal state), Wait, WaitStatus.
import Core
import Foundation
import Glibc
import Testing

@Suite("Exec.candidates and resolve")
struct ExecTests {
    @Test("a name with a slash is used as is")
    func slash() {
        #expect(Exec.candidates(for: "/bin/sh", path: "/usr/bin") == ["/bin/sh"])
        #expect(Exec.candidates(for: "./run", path: nil) == ["./run"])
        #expect(Exec.candidates(for: "sub/prog", path: "/a:/b") == ["sub/prog"])
    }

    @Test("PATH elements in order; default /bin:/usr/bin; empty element means the program itself")
    func pathRules() {
        #expect(Exec.candidates(for: "ls", path: nil) == ["/bin/ls", "/usr/bin/ls"])
        #expect(Exec.candidates(for: "ls", path: "/a:/b/") == ["/a/ls", "/b//ls"])
        #expect(Exec.candidates(for: "ls", path: ":/bin:") == ["ls", "/bin/ls", "ls"])
        #expect(Exec.candidates(for: "ls", path: "/x::/y") == ["/x/ls", "ls", "/y/ls"])
        #expect(Exec.candidates(for: "ls", path: "") == ["ls"])
    }

    @Test("resolve skips missing files, directories and non-executables")
    func resolve() throws {
        let dir = try TempDir(); defer { dir.remove() }
        try makeDirectory(dir.file("sh"))
        try writeFile(dir.file("tool"), "#!/bin/sh\n", mode: 0o644)
        #expect(Exec.resolve("sh", path: "\(dir.path):/nonexistent:/bin") == "/bin/sh")
        #expect(Exec.resolve("tool", path: dir.path) == nil)
        chmod(dir.file("tool"), 0o755)
        #expect(Exec.resolve("tool", path: "/nonexistent:\(dir.path)") == dir.file("tool"))
        #expect(Exec.resolve("surely-not-a-command-anywhere", path: "/bin:/usr/bin") == nil)
        #expect(Exec.resolve("/bin/sh", path: "") == "/bin/sh")
    }

    @Test("replace returns the most telling errno when nothing can run")
    func replaceFailures() throws {
        let dir = try TempDir(); defer { dir.remove() }
        let noexec = dir.file("noexec")
        try makeDirectory(noexec)
        try writeFile(noexec + "/prog", "#!/bin/sh\n", mode: 0o644)  // no x bit: EACCES even for root
        let env = Environment([("PATH", "/nonexistent-1:/nonexistent-2")])
        let missing = Exec.replace(arguments: [bytes("prog")], environment: env)
        #expect(missing.errno == ENOENT)
        #expect(missing.description == "unable to run prog: No such file or directory")
        // EACCES lets the search go on, and is remembered over a later ENOENT.
        let denied = Exec.replace(arguments: [bytes("prog")], environment: env, searchPath: "\(noexec):/nonexistent")
        #expect(denied.errno == EACCES)
        #expect(Exec.replace(arguments: [], environment: env).errno == EINVAL)
    }
}

@Suite("WaitStatus")
struct WaitStatusTests {
    @Test("decodes raw wait statuses")
    func decode() {
        #expect(WaitStatus(raw: 0) == .exited(0))
        #expect(WaitStatus(raw: 7 << 8) == .exited(7))
        #expect(WaitStatus(raw: 255 << 8) == .exited(255))
        #expect(WaitStatus(raw: SIGKILL) == .signaled(SIGKILL, coreDumped: false))
        #expect(WaitStatus(raw: SIGSEGV | 0x80) == .signaled(SIGSEGV, coreDumped: true))
        #expect(WaitStatus(raw: 0x7f | SIGSTOP << 8) == .stopped)
        #expect(WaitStatus.exited(3).shellStatus == 3)
        #expect(WaitStatus.signaled(SIGTERM, coreDumped: false).shellStatus == 128 + SIGTERM)
        #expect(WaitStatus.exited(7).description == "exited 7")
        #expect(WaitStatus.signaled(9, coreDumped: true).description == "killed by signal 9 (core dumped)")
    }
}

@Suite("Spawn and Wait")
struct SpawnTests {
    let env = Environment([("PATH", "/bin:/usr/bin")])

    @Test("exit codes come back as .exited")
    func exitCode() throws {
        #expect(try Spawn.run([bytes("/bin/sh"), bytes("-c"), bytes("exit 7")], environment: env).get() == .exited(7))
        #expect(try Spawn.run([bytes("true")], environment: env).get() == .exited(0))
        #expect(try Spawn.run([bytes("sh"), bytes("-c"), bytes("exit 255")], environment: Environment()).get() == .exited(255))
    }

    @Test("a child killed by a signal is .signaled")
    func signaled() throws {
        let term = try Spawn.run([bytes("/bin/sh"), bytes("-c"), bytes("kill -TERM $$; sleep 5")], environment: env).get()
        #expect(term == .signaled(SIGTERM, coreDumped: false))
        let kill = try Spawn.run([bytes("/bin/sh"), bytes("-c"), bytes("kill -KILL $$")], environment: env).get()
        #expect(kill == .signaled(SIGKILL, coreDumped: false))
        #expect(kill.shellStatus == 137)
    }

    @Test("a missing program fails before any fork")
    func missingProgram() {
        #expect(failure(Spawn.start([bytes("no-such-program-xyz")], environment: env))?.errno == ENOENT)
        #expect(failure(Spawn.start([], environment: env))?.errno == EINVAL)
    }

    @Test("fileMoves put a pipe on the child's stdout")
    func redirectStdout() throws {
        let pipe = try TestPipe()
        var options = SpawnOptions()
        options.fileMoves = [(pipe.write, 1)]
        let status = try Spawn.run([bytes("/bin/sh"), bytes("-c"), bytes("echo hello; echo to-stdout-too")],
                                   environment: env, options: options).get()
        #expect(status == .exited(0))
        pipe.closeWrite()
        #expect(try FD.readAll(pipe.read).get() == bytes("hello\nto-stdout-too\n"))
    }

    @Test("the environment is passed exactly, bytes and order, NUL as newline")
    func environmentExact() throws {
        let entries: [[UInt8]] = [
            bytes("FIRST=1"), bytes("EMPTY="), bytes("SPACES=  a b  "), bytes("EQ=x=y"),
            bytes("BIN=") + [0xff, 0xfe, 0x80], bytes("NUL=a") + [0] + bytes("b"),
        ]
        let pipe = try TestPipe()
        var options = SpawnOptions()
        options.fileMoves = [(pipe.write, 1)]
        let status = try Spawn.run([bytes("/usr/bin/env")], environment: Environment(entries: entries), options: options).get()
        #expect(status == .exited(0))
        pipe.closeWrite()
        let expected = entries.map { $0.map { $0 == 0 ? 10 : $0 } + [10] }.flatMap { $0 }
        #expect(try FD.readAll(pipe.read).get() == expected)
    }

    @Test("the child starts with an empty signal mask and default handlers")
    func cleanSignalState() throws {
        let pipe = try TestPipe()
        var options = SpawnOptions()
        options.fileMoves = [(pipe.write, 1)]
        // Ignore SIGPIPE (process-wide, harmless here) and block SIGUSR2 in this thread: the
        // child must inherit neither.
        signal(SIGPIPE, SIG_IGN)
        var block = sigset_t(), saved = sigset_t()
        sigemptyset(&block)
        sigaddset(&block, SIGUSR2)
        pthread_sigmask(SIG_BLOCK, &block, &saved)
        let result = Spawn.run([bytes("/bin/sh"), bytes("-c"), bytes("grep -E '^(SigBlk|SigIgn)' /proc/self/status")],
                               environment: env, options: options)
        pthread_sigmask(SIG_SETMASK, &saved, nil)
        #expect(try result.get() == .exited(0))
        pipe.closeWrite()
        let text = String(decoding: try FD.readAll(pipe.read).get(), as: UTF8.self)
        var masks: [String: UInt64] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":")
            if parts.count == 2 { masks[String(parts[0])] = UInt64(parts[1].trimmingCharacters(in: .whitespaces), radix: 16) }
        }
        // Signals 1-31 only: glibc keeps its internal real-time signals (32, 33) out of
        // sigfillset, so posix_spawn cannot reset those.
        let standard: UInt64 = 0x7fff_ffff
        let blocked = try #require(masks["SigBlk"], "\(text)")
        let ignored = try #require(masks["SigIgn"], "\(text)")
        #expect(blocked & standard == 0, "blocked in the child: \(String(blocked, radix: 16))")
        #expect(ignored & standard == 0, "ignored in the child: \(String(ignored, radix: 16))")
    }

    @Test("a fd moved onto its own number stays open in the child and leaks nothing")
    func sameNumberMove() throws {
        // fd counts are only stable in a single-threaded process: check in a child.
        let env = self.env
        let expected = bytes("ok\nok\nok\n")
        let run: () -> Int32 = {
            // Pipe ends well above 7, so putting the write end on 7 closes neither.
            guard case .success(let raw) = FD.pipe() else { return 10 }
            let p = (read: fcntl(raw.read, F_DUPFD_CLOEXEC, 20), write: fcntl(raw.write, F_DUPFD_CLOEXEC, 20))
            close(raw.read)
            close(raw.write)
            guard p.read >= 20, p.write >= 20, dup2(p.write, 7) == 7 else { return 11 }
            close(p.write)
            FD.setCloseOnExec(7)
            func openFDs() -> Int { (try? Path.entries("/proc/self/fd").get().count) ?? -1 }
            let before = openFDs()
            var options = SpawnOptions()
            options.fileMoves = [(7, 7)]
            for _ in 0..<3 {
                guard case .success(.exited(0)) = Spawn.run([bytes("/bin/sh"), bytes("-c"), bytes("echo ok >&7")],
                                                            environment: env, options: options) else { return 12 }
            }
            guard openFDs() == before else { return 13 }
            close(7)
            guard case .success(let out) = FD.readAll(p.read), out == expected else { return 14 }
            return 0
        }
        // Same code paths once in this process (see inForkedChild), on a harmless target.
        var warm = SpawnOptions()
        warm.fileMoves = [(2, 2)]
        _ = Spawn.run([bytes("/bin/true")], environment: env, options: warm)
        _ = (try? Path.entries("/proc/self/fd").get().count) ?? -1
        let warmPipe = try TestPipe()
        try warmPipe.feed(expected)
        #expect(try FD.readAll(warmPipe.read).get() == expected)
        let status = inForkedChild(run)
        #expect(status == .exited(0), "child reported \(String(describing: status)) (13: a descriptor leaked per spawn)")
    }

    @Test("Wait.for reports a child started with start")
    func startAndWait() throws {
        let pid = try Spawn.start([bytes("/bin/sh"), bytes("-c"), bytes("exit 3")], environment: env).get()
        #expect(pid > 0)
        #expect(try Wait.for(pid).get() == .exited(3))
        // Once reaped it is gone.
        #expect(failure(Wait.for(pid))?.errno == ECHILD)
    }

    @Test("newSession puts the child in its own session")
    func newSession() throws {
        let pipe = try TestPipe()
        var options = SpawnOptions()
        options.fileMoves = [(pipe.write, 1)]
        options.newSession = true
        let status = try Spawn.run([bytes("/bin/sh"), bytes("-c"), bytes("cut -d' ' -f6 /proc/$$/stat; echo $$")],
                                   environment: env, options: options).get()
        #expect(status == .exited(0))
        pipe.closeWrite()
        let lines = String(decoding: try FD.readAll(pipe.read).get(), as: UTF8.self).split(separator: "\n")
        #expect(lines.count == 2)
        #expect(lines.first == lines.last, "session id is not the child's own pid: \(lines)")
    }
}
