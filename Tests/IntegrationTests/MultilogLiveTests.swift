// multilog as a running logger: signals, timed rotation, a kill in the middle of a rotation,
// a full disk. Where daemontools' multilog has the feature, both run the same scenario.
import Core
import Glibc
import Testing

@Suite struct MultilogLiveTests {
    /// Ours, and daemontools' when installed.
    var implementations: [(String, [String])] {
        var list = [("ours", Multilog.ours)]
        if let reference = peer(Multilog.reference) { list.append(("daemontools", [reference])) }
        return list
    }

    @Test func alarmRotatesANonEmptyCurrentAtOnce() throws {
        #expect(implementations.count == 2, "daemontools multilog missing: run scripts/deps --test")
        var snapshots: [LogSnapshot] = []
        for (name, command) in implementations {
            let box = Sandbox()
            let log = try #require(LiveMultilog(command, ["./log"], in: box.path, errors: box.at("err")))
            log.write("a\nb\n")
            #expect(eventually { fileContents(box.at("log/current")) == Array("a\nb\n".utf8) }, "\(name)")
            log.signal(SIGALRM)
            #expect(eventually { LogSnapshot(box.at("log")).files.contains { $0.name == "@.s" } }, "\(name)")
            #expect(fileContents(box.at("log/current")).isEmpty)
            // An empty current is left alone.
            log.signal(SIGALRM)
            usleep(300_000)
            #expect(LogSnapshot(box.at("log")).files.filter { $0.name == "@.s" }.count == 1, "\(name)")
            log.write("c\n")
            log.closeInput()
            #expect(log.wait() == .exited(0), "\(name)")
            snapshots.append(LogSnapshot(box.at("log")))
        }
        #expect(snapshots.first?.files == snapshots.last?.files)
        #expect(snapshots.first?.allLines == [Array("a".utf8), Array("b".utf8), Array("c".utf8)])
    }

    @Test func termFinishesTheLineBeingReadAndLeavesTheRestUnread() throws {
        var results: [[UInt8]] = []
        for (name, command) in implementations {
            let box = Sandbox()
            let log = try #require(LiveMultilog(command, ["./log"], in: box.path, errors: box.at("err")))
            log.write("first\nabc")
            #expect(eventually { fileContents(box.at("log/current")) == Array("first\n".utf8) }, "\(name)")
            usleep(200_000)  // let it read "abc"
            log.signal(SIGTERM)
            usleep(300_000)
            #expect(!log.hasExited, "\(name) must wait for the end of the line")
            log.write("def\nghi\n")
            #expect(log.wait(seconds: 10) == .exited(0), "\(name)")
            #expect(log.input.unread() == Array("ghi\n".utf8), "\(name)")
            results.append(fileContents(box.at("log/current")))
            #expect(Path.status(box.at("log/current")).map { $0.st_mode & 0o777 } == 0o744)
        }
        #expect(results.allSatisfy { $0 == Array("first\nabcdef\n".utf8) })
    }

    @Test func termAtALineBoundaryExitsWithoutReadingMore() throws {
        let box = Sandbox()
        let log = try #require(LiveMultilog(Multilog.ours, ["./log"], in: box.path, errors: box.at("err")))
        log.write("one\n")
        #expect(eventually { fileContents(box.at("log/current")) == Array("one\n".utf8) })
        log.signal(SIGTERM)
        #expect(log.wait(seconds: 10) == .exited(0))
        log.write("two\n")
        #expect(log.input.unread() == Array("two\n".utf8))
    }

    @Test func intStopsLoggingAndHupResumesIt() throws {
        let box = Sandbox()
        let log = try #require(LiveMultilog(Multilog.ours, ["./log"], in: box.path, errors: box.at("err")))
        log.write("1\n")
        #expect(eventually { fileContents(box.at("log/current")) == Array("1\n".utf8) })
        log.signal(SIGINT)
        usleep(300_000)
        log.write("2 dropped\n")
        usleep(300_000)
        log.signal(SIGHUP)
        usleep(300_000)
        log.write("3\n")
        log.closeInput()
        #expect(log.wait() == .exited(0))
        #expect(fileContents(box.at("log/current")) == Array("1\n3\n".utf8))
    }

    @Test func timedRotationEverySecond() throws {
        let box = Sandbox()
        let log = try #require(LiveMultilog(Multilog.ours, ["t", "r1", "./log"], in: box.path, errors: box.at("err")))
        var sent: [[UInt8]] = []
        let start = monotonicSeconds()
        var i = 0
        while monotonicSeconds() - start < 3.5 {
            let line = Array("tick \(i)".utf8)
            log.write(line + [10])
            sent.append(line)
            i += 1
            usleep(250_000)
        }
        log.closeInput()
        #expect(log.wait() == .exited(0))
        let snapshot = LogSnapshot(box.at("log"), stripStamps: true)
        let rotated = snapshot.files.filter { $0.name == "@.s" }
        #expect(rotated.count >= 2 && rotated.count <= 5, "\(snapshot)")
        #expect(rotated.allSatisfy { !$0.contents.isEmpty })
        #expect(snapshot.allLines == sent)
    }

    /// Killed while its processor runs, then started again on the same pipe (as supervise
    /// would): recovery keeps every line exactly once, as daemontools' does.
    @Test func killedDuringTheProcessorLosesNothingOnRestart() throws {
        #expect(implementations.count == 2, "daemontools multilog missing: run scripts/deps --test")
        var snapshots: [LogSnapshot] = []
        for (name, command) in implementations {
            let box = Sandbox()
            let pipe = try #require(InputPipe())
            let stuck = "!echo $$ > ../processor.pid; exec sleep 60"
            var log = try #require(LiveMultilog(command, ["s4096", stuck, "./log"], in: box.path,
                                                errors: box.at("err"), input: pipe))
            var sent: [[UInt8]] = []
            // 600-byte lines, one per read: each is in current before the next is sent.
            while !Path.exists(box.at("log/previous")) && sent.count < 100 {
                let line = Array("line \(sent.count) ".utf8) + [UInt8](repeating: 120, count: 590)
                let before = fileContents(box.at("log/current")).count
                log.write(line + [10])
                sent.append(line)
                #expect(eventually(within: 5) {
                    Path.exists(box.at("log/previous")) || fileContents(box.at("log/current")).count > before
                }, "\(name)")
            }
            #expect(eventually { Path.exists(box.at("processor.pid")) }, "\(name)")
            // More lines arrive while the processor runs; they wait in the pipe.
            for j in 0..<3 {
                let line = Array("while stuck \(j)".utf8)
                pipe.send(line + [10])
                sent.append(line)
            }
            usleep(100_000)
            log.killHard()
            let processor = String(decoding: fileContents(box.at("processor.pid")), as: UTF8.self)
            if let pid = pid_t(processor.split(separator: "\n").first ?? "") { kill(pid, SIGKILL) }

            log = try #require(LiveMultilog(command, ["s4096", "!cat", "./log"], in: box.path,
                                            errors: box.at("err"), input: pipe))
            for j in 0..<3 {
                let line = Array("after restart \(j)".utf8)
                pipe.send(line + [10])
                sent.append(line)
            }
            pipe.closeWrite()
            #expect(log.wait() == .exited(0), "\(name)")
            let snapshot = LogSnapshot(box.at("log"))
            let got = snapshot.allLines
            #expect(got == sent, "\(name): \(got.count) lines, sent \(sent.count)")
            // The unprocessed log and the current of the killed run end as unfinished (.u).
            #expect(snapshot.files.filter { $0.name == "@.u" }.count == 2, "\(name): \(snapshot)")
            #expect(!Path.exists(box.at("log/previous")) && !Path.exists(box.at("log/processed")))
            snapshots.append(snapshot)
        }
        // Same files and modes as daemontools; how the lines that waited in the pipe split
        // between the killed run's current and the new one depends on scheduling.
        let shape = { (s: LogSnapshot?) in s?.files.map { "\($0.name) \(String($0.mode, radix: 8))" } }
        #expect(shape(snapshots.first) == shape(snapshots.last))
    }

    @Test func crashedProcessorIsRetried() throws {
        let box = Sandbox()
        let processor = "!if [ -e ../tried ]; then cat; else touch ../tried; kill -9 $$; fi"
        let r = Multilog.run(Multilog.ours, ["s4096", processor, "./p"], input: box.write("in", Multilog.lines(100, width: 60)),
                             in: box.path)
        #expect(r.exitCode == 0)
        #expect(r.err.contains("multilog: warning: processor crashed in ./p (signal KILL), pausing"))
        #expect(LogSnapshot(box.at("p")).allLines.count == 100)
    }

    /// A full disk: multilog warns, pauses, retries, and loses nothing once space is freed.
    @Test(.enabled(if: getuid() == 0, "mounting a small tmpfs needs root"))
    func fullDiskPausesAndRetries() throws {
        #expect(implementations.count == 2, "daemontools multilog missing: run scripts/deps --test")
        for (name, command) in implementations {
            let box = Sandbox()
            let disk = box.directory("disk")
            let mounted = run(["/bin/mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", disk])
            try #require(mounted.exitCode == 0, "cannot mount tmpfs: \(mounted.err)")
            defer { _ = run(["/bin/umount", "-l", disk]) }
            // Leave about one page free.
            box.write("disk/filler", [UInt8](repeating: 0, count: 15 * 4096))
            let log = try #require(LiveMultilog(command, ["./log"], in: disk, errors: box.at("err")))
            var sent: [UInt8] = []
            for i in 0..<40 { sent += Array("line \(i) ".utf8) + [UInt8](repeating: 121, count: 250) + [10] }
            log.write(sent)
            // daemontools words ENOSPC its own way ("out of disk space").
            #expect(eventually(within: 10) { log.errors.contains("unable to write to ./log/current, pausing: ") }, "\(name)")
            if name == "ours" { #expect(log.errors.contains("pausing: No space left on device")) }
            #expect(!log.hasExited)
            unlink(box.at("disk/filler"))
            log.closeInput()
            #expect(log.wait(seconds: 20) == .exited(0), "\(name)")
            let complete = fileContents(box.at("disk/log/current")) == sent
            #expect(complete, "\(name): \(fileContents(box.at("disk/log/current")).count) of \(sent.count) bytes")
        }
    }

    @Test func bogusActionsAreRefusedBeforeAnythingIsTouched() throws {
        let box = Sandbox()
        for script in [["./log", "T"], ["./log", "s12k"], ["./log", "x"], ["./log", "t"], ["!r60", "./log"], ["./log", "="]] {
            let r = run(Multilog.ours + script, stdin: Array("x\n".utf8), directory: box.path)
            #expect(r.exitCode == 111, "\(script)")
            #expect(r.err.hasPrefix("multilog: fatal: "), "\(script)")
            #expect(!Path.exists(box.at("log")), "\(script)")
        }
        // The reference ignores what it does not know; documented as a deliberate difference.
        if let reference = peer(Multilog.reference) {
            let r = run([reference, "s4096", "T", "./log"], stdin: Array("x\n".utf8), directory: box.path)
            #expect(r.exitCode == 0)
            #expect(fileContents(box.at("log/current")) == Array("x\n".utf8))
        }
    }

    @Test func emptyInputLeavesAnEmptyCompleteCurrent() throws {
        let box = Sandbox()
        let r = run(Multilog.ours + ["t", "./log"], stdin: [], directory: box.path)
        #expect(r.exitCode == 0)
        #expect(fileContents(box.at("log/current")).isEmpty)
        #expect(Path.status(box.at("log/current")).map { $0.st_mode & 0o777 } == 0o744)
        #expect(Path.exists(box.at("log/lock")) && Path.exists(box.at("log/state")))
    }
}
