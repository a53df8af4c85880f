// multilog against daemontools' multilog on the same input: same files, same cut points,
// same contents (time stamps aside), same modes.
import Core
import Glibc
import Testing

@Suite struct MultilogInteropTests {
    struct Side {
        let outcome: Outcome
        let root: String
        func snapshot(_ dir: String, stripStamps: Bool = false) -> LogSnapshot {
            LogSnapshot(Path.join(root, dir), stripStamps: stripStamps)
        }
    }

    /// Runs both implementations with `script` on `input`, each in its own directory
    /// (prepared by `setup`); returns (ours, theirs).
    func both(_ script: [String], input: [UInt8], box: Sandbox, setup: (String) -> Void = { _ in },
              environment: [String: String]? = nil) throws -> (Side, Side) {
        let reference = try #require(peer(Multilog.reference), "daemontools multilog missing: run scripts/deps --test")
        let inputFile = box.write("input", input)
        let ourRoot = box.directory("ours"), theirRoot = box.directory("theirs")
        setup(ourRoot)
        setup(theirRoot)
        let ours = Multilog.run(Multilog.ours, script, input: inputFile, in: ourRoot, environment: environment)
        let theirs = Multilog.run([reference], script, input: inputFile, in: theirRoot, environment: environment)
        return (Side(outcome: ours, root: ourRoot), Side(outcome: theirs, root: theirRoot))
    }

    func expectSame(_ ours: LogSnapshot, _ theirs: LogSnapshot, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(ours.files.map(\.name) == theirs.files.map(\.name), sourceLocation: sourceLocation)
        #expect(ours.files.map(\.mode) == theirs.files.map(\.mode), sourceLocation: sourceLocation)
        for (a, b) in zip(ours.files, theirs.files) {
            // A Bool, so a failure prints sizes rather than megabytes of bytes.
            let same = a.contents == b.contents
            #expect(same, "\(a.name): \(a.contents.count) vs \(b.contents.count) bytes", sourceLocation: sourceLocation)
        }
    }

    @Test func sizeRotationCutsAtTheSameLines() throws {
        let box = Sandbox()
        let input = Multilog.randomInput(lines: 1500, seed: 1)
        let (ours, theirs) = try both(["s4096", "n1000", "./log"], input: input, box: box)
        #expect(ours.outcome.exitCode == 0)
        #expect(theirs.outcome.exitCode == 0)
        let a = ours.snapshot("log"), b = theirs.snapshot("log")
        expectSame(a, b)
        #expect(a.files.filter { $0.name == "@.s" }.count > 20)
        // Nothing lost, nothing added: the logs put together are the input plus a final newline.
        let joined = a.files.filter { $0.name.hasPrefix("@") || $0.name == "current" }.flatMap(\.contents)
        let complete = joined == input + [10]
        #expect(complete)
        // Real names: "@" + 24 hex digits + ".s".
        let names = try Path.entries(box.at("ours/log")).get().filter { $0.hasPrefix("@") }
        #expect(!names.isEmpty && names.allSatisfy(LogSnapshot.isOldLogName))
    }

    @Test func timestampedLinesCutAtTheSameLines() throws {
        let box = Sandbox()
        let input = Multilog.randomInput(lines: 1500, seed: 2)
        let (ours, theirs) = try both(["t", "s5000", "n100", "./a", "s16000", "./b"], input: input, box: box)
        #expect(ours.outcome.exitCode == 0)
        for dir in ["a", "b"] {
            let a = ours.snapshot(dir, stripStamps: true), b = theirs.snapshot(dir, stripStamps: true)
            expectSame(a, b)
        }
        // Every line carries a stamp.
        let current = fileContents(box.at("ours/b/current"))
        let lines = current.split(separator: 10)
        #expect(lines.allSatisfy { LogSnapshot.isStamp(Array($0), at: 0) })
    }

    @Test func countKeepsTheNewestLogs() throws {
        let box = Sandbox()
        let input = Multilog.lines(3000, width: 80)
        let (ours, theirs) = try both(["s4096", "n3", "./three", "n2", "./two"], input: input, box: box)
        for dir in ["three", "two"] { expectSame(ours.snapshot(dir), theirs.snapshot(dir)) }
        #expect(ours.snapshot("three").files.filter { $0.name.hasPrefix("@") }.count == 2)
        #expect(ours.snapshot("two").files.filter { $0.name.hasPrefix("@") }.count == 1)
        // The logs kept are the newest: the last line is in current.
        #expect(ours.snapshot("two").allLines.last == Array("line 2999".utf8) + [UInt8](repeating: 120, count: 71))
    }

    @Test func selectionAlertsAndStatusFilesMatch() throws {
        let box = Sandbox()
        var input = Multilog.randomInput(lines: 400, seed: 3)
        input += Array("\nSTAT ok\nERROR: last\nSTAT final\n".utf8)
        input += [UInt8](repeating: 120, count: 300) + Array(" ERROR long\n".utf8)
        // s16777215 throughout: daemontools' default limit is 99999, the indimail reference's none.
        let script = ["s16777215", "-*", "+*ERROR*", "e", "./errors", "+*", "-*ERROR*", "./rest", "-*", "+STAT*", "=status", "+*", "=last"]
        let (ours, theirs) = try both(script, input: input, box: box)
        #expect(ours.outcome.exitCode == 0)
        let sameAlerts = ours.outcome.stderr == theirs.outcome.stderr
        #expect(sameAlerts, "stderr: \(ours.outcome.stderr.count) vs \(theirs.outcome.stderr.count) bytes")
        #expect(ours.outcome.err.contains("...\n"))
        for dir in ["errors", "rest"] { expectSame(ours.snapshot(dir), theirs.snapshot(dir)) }
        for file in ["status", "last"] {
            let a = fileContents(Path.join(ours.root, file)), b = fileContents(Path.join(theirs.root, file))
            #expect(a == b)
            #expect(a.count == 1001)
        }
        #expect(fileContents(box.at("ours/status")).starts(with: Array("STAT final\n\n".utf8)))
    }

    @Test func patternsSeeTheStamp() throws {
        let box = Sandbox()
        let input = Array("fatal: at start\nsomething fatal: inside\nplain\n".utf8)
        let (ours, theirs) = try both(["t", "-*", "+* fatal: *", "./f", "-*", "+@*", "./all"], input: input, box: box)
        for dir in ["f", "all"] {
            expectSame(ours.snapshot(dir, stripStamps: true), theirs.snapshot(dir, stripStamps: true))
        }
        #expect(LogSnapshot.stripStamps(fileContents(box.at("ours/f/current"))) == Array("fatal: at start\n".utf8))
        #expect(ours.snapshot("all", stripStamps: true).allLines.count == 3)
    }

    @Test func processorOutputAndStateMatch() throws {
        let box = Sandbox()
        let input = Multilog.lines(2000, width: 60)
        // Upper-cases each log and keeps a running count of rotations in the state.
        let processor = "!tr a-z A-Z; n=$(cat <&4); echo $((${n:-0} + 1)) >&5"
        let (ours, theirs) = try both(["s4096", "n200", processor, "./p"], input: input, box: box)
        #expect(ours.outcome.exitCode == 0)
        let a = ours.snapshot("p"), b = theirs.snapshot("p")
        expectSame(a, b)
        let old = a.files.filter { $0.name == "@.s" }
        #expect(old.count > 10)
        #expect(old.allSatisfy { !$0.contents.contains(UInt8(ascii: "l")) })
        #expect(fileContents(box.at("ours/p/state")) == Array("\(old.count)\n".utf8))
        #expect(!Path.exists(box.at("ours/p/previous")) && !Path.exists(box.at("ours/p/processed")))
    }

    @Test func failingProcessorIsRetried() throws {
        let box = Sandbox()
        let input = Multilog.lines(100, width: 60)
        // Fails on its first run in each tree, succeeds after.
        let processor = "!if [ -e ../tried ]; then cat; else touch ../tried; exit 1; fi"
        let (ours, theirs) = try both(["s4096", processor, "./p"], input: input, box: box)
        #expect(ours.outcome.exitCode == 0)
        #expect(ours.outcome.err.contains("processor failed in ./p"))
        #expect(theirs.outcome.err.contains("processor failed in ./p"))
        expectSame(ours.snapshot("p"), theirs.snapshot("p"))
        #expect(ours.snapshot("p").allLines.count == 100)
    }

    @Test func cleanExitIsResumed() throws {
        let box = Sandbox()
        let first = Multilog.lines(60, prefix: "first", width: 50)
        let second = Multilog.lines(60, prefix: "second", width: 50)
        let (ours, theirs) = try both(["s4096", "./log"], input: first, box: box)
        #expect(ours.snapshot("log").files.first { $0.name == "current" }?.mode == 0o744)
        let inputFile = box.write("input2", second)
        #expect(Multilog.run(Multilog.ours, ["s4096", "./log"], input: inputFile, in: ours.root).exitCode == 0)
        #expect(Multilog.run([Multilog.reference], ["s4096", "./log"], input: inputFile, in: theirs.root).exitCode == 0)
        let a = ours.snapshot("log"), b = theirs.snapshot("log")
        expectSame(a, b)
        #expect(a.allLines.count == 120)
    }

    /// Directory states a crash can leave, recovered by both the same way.
    @Test(arguments: ["crashed", "crashedInProcessor", "processorDone", "linkedNotUnlinked", "leftovers"])
    func crashRecoveryMatches(_ state: String) throws {
        let box = Sandbox()
        let setup: (String) -> Void = { root in
            let dir = Path.join(root, "log")
            _ = Path.makeDirectories(dir)
            func file(_ name: String, _ text: String, _ mode: mode_t) {
                let path = Path.join(dir, name)
                let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
                FD.writeAll(fd, Array(text.utf8))
                close(fd)
                chmod(path, mode)
            }
            file("@400000006000000000000000.s", "oldest\n", 0o744)
            switch state {
            case "crashed":  // killed while writing: current still 0644
                file("current", "was being written\n", 0o644)
                file("state", "kept?\n", 0o644)
            case "crashedInProcessor":  // killed while the processor ran
                file("previous", "to be processed\n", 0o744)
                file("processed", "half done\n", 0o644)
                file("newstate", "half state\n", 0o644)
                file("state", "old state\n", 0o644)
                file("current", "after rotation\n", 0o644)
            case "processorDone":  // killed after the processor's output was marked complete
                file("previous", "to be processed\n", 0o744)
                file("processed", "PROCESSED\n", 0o744)
                file("current", "after rotation\n", 0o644)
            case "linkedNotUnlinked":  // killed between link and unlink of previous
                file("previous", "finished\n", 0o744)
                link(Path.join(dir, "previous"), Path.join(dir, "@400000006100000000000000.s"))
                file("current", "", 0o644)
            default:  // stray files with a current that was closed cleanly
                file("current", "closed cleanly\n", 0o744)
                file("newstate", "stale\n", 0o644)
            }
        }
        let (ours, theirs) = try both(["s4096", "./log"], input: Array("new line\n".utf8), box: box, setup: setup)
        #expect(ours.outcome.exitCode == 0)
        #expect(theirs.outcome.exitCode == 0)
        expectSame(ours.snapshot("log"), theirs.snapshot("log"))
        #expect(ours.snapshot("log").allLines.last == Array("new line".utf8))
    }

    @Test func overlongLinesAndBinaryPassThroughWhole() throws {
        let box = Sandbox()
        var input: [UInt8] = []
        for (i, length) in [999, 1000, 1001, 4000, 5000, 20000, 3, 70000].enumerated() {
            input += Array("\(i):".utf8) + (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 7) | 1 } + [0, 10]
        }
        input += [0, 0, 0]  // partial binary line
        let script = ["-*", "+1*", "e", "=status", "+*", "s16777215", "./unlimited", "s4096", "./small"]
        let (ours, theirs) = try both(script, input: input, box: box)
        #expect(ours.outcome.exitCode == 0)
        let sameAlerts = ours.outcome.stderr == theirs.outcome.stderr
        #expect(sameAlerts, "stderr: \(ours.outcome.stderr.count) vs \(theirs.outcome.stderr.count) bytes")
        for dir in ["unlimited", "small"] { expectSame(ours.snapshot(dir), theirs.snapshot(dir)) }
        #expect(fileContents(box.at("ours/status")) == fileContents(box.at("theirs/status")))
        let whole = fileContents(box.at("ours/unlimited/current")) == input + [10]
        #expect(whole)
        let t = try both(["t", "./stamped"], input: input, box: Sandbox())
        expectSame(t.0.snapshot("stamped", stripStamps: true), t.1.snapshot("stamped", stripStamps: true))
    }

    @Test func modesMatchExceptTheDirectory() throws {
        let box = Sandbox()
        let (ours, theirs) = try both(["s4096", "!cat", "./log"], input: Multilog.lines(200, width: 60), box: box)
        let a = ours.snapshot("log"), b = theirs.snapshot("log")
        expectSame(a, b)
        #expect(a.files.first { $0.name == "lock" }?.mode == 0o600)
        #expect(a.files.first { $0.name == "state" }?.mode == 0o644)
        #expect(a.files.filter { $0.name == "@.s" }.allSatisfy { $0.mode == 0o744 })
        // The indimail reference makes the directory 0755 under the umask; djb's makes it 0700.
        #expect(a.directoryMode == 0o755 & ~currentUmask())
        #expect(b.directoryMode == 0o700)
    }

    @Test func uncreatableDirectoryFailsBeforeReadingInput() throws {
        let reference = try #require(peer(Multilog.reference))
        let box = Sandbox()
        box.write("plainfile", "not a directory\n")
        let dir = box.at("plainfile/log")
        let ours = run(Multilog.ours + ["./ok", dir], stdin: Array("x\n".utf8), directory: box.path)
        let theirs = run([reference, dir], stdin: Array("x\n".utf8), directory: box.path)
        #expect(ours.exitCode == 111)
        #expect(theirs.exitCode == 111)
        #expect(ours.err == "multilog: fatal: unable to create directory \(dir): Not a directory\n")
        let status = run(Multilog.ours + ["=" + box.at("plainfile/status")], stdin: [])
        #expect(status.exitCode == 111)
        #expect(status.err.hasPrefix("multilog: fatal: unable to create \(box.at("plainfile/status")): "))
    }

    @Test func aLockedDirectoryIsRefusedByEither() throws {
        let reference = try #require(peer(Multilog.reference))
        let box = Sandbox()
        let holder = try #require(LiveMultilog(Multilog.ours, ["./log"], in: box.path, errors: box.at("err")))
        #expect(eventually { Path.exists(box.at("log/current")) })
        let theirs = run([reference, "./log"], stdin: Array("x\n".utf8), directory: box.path)
        #expect(theirs.exitCode == 111)
        #expect(theirs.err.contains("unable to lock directory"))
        let ours = run(Multilog.ours + ["./log"], stdin: Array("x\n".utf8), directory: box.path)
        #expect(ours.exitCode == 111)
        #expect(ours.err.hasPrefix("multilog: fatal: unable to lock directory ./log: "))
        holder.closeInput()
        #expect(holder.wait() == .exited(0))
        // And the other way round: daemontools' lock keeps ours out.
        let held = try #require(LiveMultilog([reference], ["./log2"], in: box.path, errors: box.at("err2")))
        #expect(eventually { Path.exists(box.at("log2/current")) })
        #expect(run(Multilog.ours + ["./log2"], stdin: [], directory: box.path).exitCode == 111)
        held.closeInput()
        held.wait()
    }
}

/// The test process's umask, read without changing it (tests run in parallel).
func currentUmask() -> mode_t {
    let status = String(decoding: fileContents("/proc/self/status"), as: UTF8.self)
    guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Umask:") }),
          let value = mode_t(line.dropFirst(6).trimmingPrefix(while: { $0 == " " || $0 == "\t" }), radix: 8) else { return 0o022 }
    return value
}
