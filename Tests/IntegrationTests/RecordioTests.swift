// recordio against ucspi-tcp's: the log on stderr (pids normalised, each direction on its
// own since the two interleave by timing), the bytes passed through, the exit codes, the
// descriptors the program gets, and the half-close cases.
import Core
import Glibc
import Testing

@Suite struct RecordioTests {
    static let debian = "/usr/bin/recordio"
    var ours: [String] { [Build.indimail, "recordio"] }

    /// Log lines of one direction ("<" or ">") with the pid replaced by PID.
    static func direction(_ log: String, _ arrow: Character) -> [String] {
        log.split(separator: "\n", omittingEmptySubsequences: false).compactMap { line in
            guard let space = line.firstIndex(of: " "), line[..<space].allSatisfy(\.isNumber) else { return nil }
            let rest = line[line.index(after: space)...]
            return rest.first == arrow ? "PID " + rest : nil
        }
    }

    static func compare(_ program: [String], input: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let debian = try #require(peer(Self.debian), "ucspi-tcp recordio missing: run scripts/deps --test")
        let mine = run([Build.indimail, "recordio"] + program, stdin: input)
        let theirs = run([debian] + program, stdin: input)
        #expect(!mine.timedOut, sourceLocation: sourceLocation)
        #expect(mine.exitCode == theirs.exitCode, sourceLocation: sourceLocation)
        #expect(mine.stdout == theirs.stdout, sourceLocation: sourceLocation)
        for arrow: Character in ["<", ">"] {
            #expect(direction(mine.err, arrow) == direction(theirs.err, arrow),
                    "direction \(arrow) of \(program)", sourceLocation: sourceLocation)
        }
        // Nothing but log lines on stderr.
        #expect(direction(mine.err, "<").count + direction(mine.err, ">").count
                == mine.err.split(separator: "\n").count, sourceLocation: sourceLocation)
    }

    @Test func echoingChildMatchesUcspiTcp() throws {
        let echo = ["/bin/sh", "-c", "while read l; do echo \"got $l\"; done"]
        try Self.compare(echo, input: Array("one\ntwo\nthree\n".utf8))
        let mine = run(ours + echo, stdin: Array("one\ntwo\n".utf8))
        #expect(mine.out == "got one\ngot two\n")
        #expect(Self.direction(mine.err, "<") == ["PID < one ", "PID < two ", "PID < [EOF]"])
        #expect(Self.direction(mine.err, ">") == ["PID > got one ", "PID > got two ", "PID > [EOF]"])
    }

    @Test func specExampleFromRtsTests() throws {
        // ( echo test; sleep 1 ) | recordio cat
        let mine = run(ours + ["/bin/cat"], stdin: Array("test\n".utf8))
        #expect(mine.exitCode == 0)
        #expect(mine.out == "test\n")
        #expect(Self.direction(mine.err, "<") == ["PID < test ", "PID < [EOF]"])
        #expect(Self.direction(mine.err, ">") == ["PID > test ", "PID > [EOF]"])
        try Self.compare(["/bin/cat"], input: Array("test\n".utf8))
    }

    @Test func partialLastLinesAreMarked() throws {
        let partial = ["/bin/sh", "-c", "cat >/dev/null; printf 'line\\nno end'"]
        try Self.compare(partial, input: Array("a\nb".utf8))
        let mine = run(ours + partial, stdin: Array("a\nb".utf8))
        #expect(Self.direction(mine.err, "<") == ["PID < a ", "PID < b+", "PID < [EOF]"])
        #expect(Self.direction(mine.err, ">") == ["PID > line ", "PID > no end+", "PID > [EOF]"])
    }

    @Test func longLinesSplitAtReadChunks() throws {
        // 600-byte line, empty lines, NUL and CR bytes: the input side reads 256 bytes at a
        // time from a pipe filled by one write, so its log is deterministic.
        var input = Array(repeating: UInt8(ascii: "x"), count: 600) + [10, 10, 0, 13, 10]
        input += Array("tail without newline".utf8)
        try Self.compare(["/bin/sh", "-c", "cat >/dev/null; echo done"], input: input)
        let mine = run(ours + ["/bin/sh", "-c", "cat >/dev/null"], stdin: input)
        let log = Self.direction(mine.err, "<")
        #expect(log.first == "PID < " + String(repeating: "x", count: 256) + "+")
        #expect(log.last == "PID < [EOF]")
    }

    /// The data of one direction put back together from its log lines.
    static func reassemble(_ log: [UInt8], _ arrow: UInt8) -> [UInt8] {
        var data: [UInt8] = []
        for slice in log.split(separator: 10, omittingEmptySubsequences: false) {
            let line = Array(slice)
            guard let space = line.firstIndex(of: 32), line.count >= space + 3,
                  line[space + 1] == arrow, line[space + 2] == 32 else { continue }
            let body = line[(space + 3)...]
            if body.elementsEqual(Array("[EOF]".utf8)) { continue }
            if body.last == 43 { data += body.dropLast() } else { data += body.dropLast() + [10] }
        }
        return data
    }

    @Test func largeStreamsAreCopiedAndLoggedWithoutLoss() {
        // Both directions busy at once (the program writes before it reads): a relay that
        // blocked on one side would deadlock here.
        var input: [UInt8] = []
        for i in 0..<20000 { input += Array("line \(i) \(String(repeating: "z", count: i % 300))\n".utf8) }
        input += Array("no newline at the end".utf8)
        let program = ["/bin/sh", "-c", "head -c 300000 /dev/zero | tr '\\0' 'o'; cat"]
        let mine = run(ours + program, stdin: input, timeout: 60)
        #expect(!mine.timedOut)
        #expect(mine.exitCode == 0)
        // Compared outside #expect: a failing comparison of arrays this size would have
        // the test library compute a diff for ever.
        #expect(mine.stdout.count == 300000 + input.count)
        let passedThrough = Array(mine.stdout.suffix(input.count)) == input
        let inputLogged = Self.reassemble(mine.stderr, UInt8(ascii: "<")) == input
        let outputLogged = Self.reassemble(mine.stderr, UInt8(ascii: ">")) == mine.stdout
        #expect(passedThrough)
        #expect(inputLogged)
        #expect(outputLogged)
    }

    @Test func emptyInputAndSilentProgram() throws {
        try Self.compare(["/bin/true"], input: [])
        let mine = run(ours + ["/bin/true"])
        #expect(Self.direction(mine.err, "<") == ["PID < [EOF]"])
        #expect(Self.direction(mine.err, ">") == ["PID > [EOF]"])
    }

    @Test func pidIsTheProgramsAndExitStatusIsItsOwn() {
        let mine = run(ours + ["/bin/sh", "-c", "echo $$; exit 7"])
        #expect(mine.exitCode == 7)
        let pid = mine.out.dropLast()
        #expect(!pid.isEmpty)
        #expect(mine.err.split(separator: "\n").allSatisfy { $0.hasPrefix(pid + " ") })
    }

    @Test func usageAndExecFailure() throws {
        let debian = try #require(peer(Self.debian))
        let usage = run(ours)
        #expect(usage.exitCode == 100)
        #expect(usage.err == "recordio: usage: recordio program [ arg ... ]\n")
        #expect(usage.err == run([debian]).err)

        let missing = run(ours + ["/nonexistent/program"])
        #expect(missing.exitCode == 111)
        #expect(missing.err.contains("recordio: fatal: unable to run /nonexistent/program: "))
        #expect(run([debian, "/nonexistent/program"]).exitCode == 111)
    }

    @Test func programGetsOnlyItsOwnDescriptors() throws {
        // The pipes replace 0 and 1 and nothing else leaks in.
        _ = try #require(peer("/usr/bin/python3"))
        let list = ["/bin/sh", "-c", "ls /proc/$$/fd; :"]
        #expect(run(withOnlyStdio(ours + list)).out == "0\n1\n2\n")
    }

    @Test func outputEndFinishesTheRelayWithStdinStillOpen() throws {
        let debian = try #require(peer(Self.debian))
        let box = Sandbox()
        // The program closes its output and lingers: the log ends with "> [EOF]" while our
        // stdin is still open, and the program itself keeps running.
        for (index, recordio) in [ours, [debian]].enumerated() {
            let log = box.at("log\(index)")
            let child = try #require(BackgroundChild(recordio + ["/bin/sh", "-c", "exec >&-; exec sleep 30"],
                                                     stdinPipe: true, output: log))
            #expect(eventually(within: 10) { (contents(log) ?? []).count > 0 }, "\(recordio)")
            usleep(100_000)
            let text = String(decoding: contents(log) ?? [], as: UTF8.self)
            #expect(Self.direction(text, ">") == ["PID > [EOF]"], "\(recordio)")
            #expect(Self.direction(text, "<") == [], "\(recordio)")
            #expect(child.isRunning, "\(recordio)")
        }
    }

    @Test func programThatStopsReadingStillHasItsOutputRelayed() throws {
        // The program closes its stdin, then input arrives, then it writes. The reference
        // relay quits on the failed write to the program and the output is lost; ours stops
        // only the input side and keeps copying the output to its end.
        let box = Sandbox()
        let out = box.at("out")
        let child = try #require(BackgroundChild(ours + ["/bin/sh", "-c", "exec <&-; sleep 0.5; echo after"],
                                                 stdinPipe: true, output: out))
        usleep(200_000)
        child.send(Array("input nobody reads\n".utf8))
        let status = child.waitExit(within: 10)
        #expect(status == .exited(0))
        // The relay is the program's child and may write its last lines after it exits.
        var text = ""
        eventually(within: 10) {
            text = String(decoding: contents(out) ?? [], as: UTF8.self)
            return text.contains("> [EOF]")
        }
        #expect(text.contains("\nafter\n") || text.hasPrefix("after\n"))
        #expect(Self.direction(text, ">") == ["PID > after ", "PID > [EOF]"])
        #expect(Self.direction(text, "<") == ["PID < input nobody reads "])
    }
}
