// fixcrio against ucspi-tcp's: the bytes the program receives and the bytes it sends,
// compared one for one, including a CR and its LF split across read chunks.
import Core
import Glibc
import Testing

@Suite struct FixcrioTests {
    static let debian = "/usr/bin/fixcrio"
    var ours: [String] { [Build.indimail, "fixcrio"] }

    static let inputs: [[UInt8]] = [
        Array("plain\nlines\n".utf8),
        Array("a\nb\r\nc\r\r\n\n\r\rno end".utf8),
        [0, 10, 13, 0, 13, 10, 13],
        // The CR ends the first 256-byte read, its LF starts the second.
        Array(repeating: UInt8(ascii: "x"), count: 255) + [13, 10] + Array("bare\n".utf8),
        // The LF starts the second read after a bare byte: gets its CR.
        Array(repeating: UInt8(ascii: "y"), count: 256) + Array("\nz\n".utf8),
        Array(repeating: Array("line\n".utf8), count: 20000).flatMap { $0 },
        [],
    ]

    /// A program that saves what it receives and prints bare-LF, CRLF and CR CR LF lines.
    static func program(_ saved: String) -> [String] {
        ["/bin/sh", "-c", "cat > \"$0\"; printf 'bare\\ncrlf\\r\\ncrcr\\r\\r\\n\\n\\rtail'", saved]
    }

    @Test func bothDirectionsMatchUcspiTcp() throws {
        let debian = try #require(peer(Self.debian), "ucspi-tcp fixcrio missing: run scripts/deps --test")
        let box = Sandbox()
        for (index, input) in Self.inputs.enumerated() {
            let mine = run(ours + Self.program(box.at("mine\(index)")), stdin: input)
            let theirs = run([debian] + Self.program(box.at("theirs\(index)")), stdin: input)
            #expect(mine.exitCode == 0)
            #expect(!mine.timedOut)
            // Compared outside #expect, which would diff large arrays at length on failure.
            let sameOutput = mine.stdout == theirs.stdout
            let sameInput = contents(box.at("mine\(index)")) == contents(box.at("theirs\(index)"))
            #expect(sameOutput, "output, input \(index)")
            #expect(sameInput, "input \(index)")
            #expect(mine.stderr.isEmpty)
        }
    }

    @Test func insertsOnlyMissingCRs() {
        let box = Sandbox()
        let saved = box.at("in")
        let r = run(ours + Self.program(saved), stdin: Array("a\nb\r\n".utf8))
        #expect(contents(saved) == Array("a\r\nb\r\n".utf8))
        #expect(r.stdout == Array("bare\r\ncrlf\r\ncrcr\r\r\n\r\n\rtail".utf8))
    }

    @Test func largeStreamThroughCat() throws {
        let debian = try #require(peer(Self.debian))
        let input = Array(repeating: Array("x\ny\r\n\r".utf8), count: 30000).flatMap { $0 }
        let mine = run(ours + ["/bin/cat"], stdin: input)
        let same = mine.stdout == run([debian, "/bin/cat"], stdin: input).stdout
        #expect(same)
        #expect(mine.stdout.count == input.count + 30000)
    }

    @Test func exitStatusUsageAndExecFailure() throws {
        let debian = try #require(peer(Self.debian))
        #expect(run(ours + ["/bin/sh", "-c", "exit 9"]).exitCode == 9)
        let usage = run(ours)
        #expect(usage.exitCode == 100)
        #expect(usage.err == "fixcrio: usage: fixcrio program [ arg ... ]\n")
        #expect(usage.err == run([debian]).err)
        let missing = run(ours + ["/nonexistent/program"])
        #expect(missing.exitCode == 111)
        #expect(missing.err.hasPrefix("fixcrio: fatal: unable to run /nonexistent/program: "))
    }

    @Test func programGetsOnlyItsOwnDescriptors() throws {
        // The pipes replace 0 and 1 and nothing else leaks in.
        _ = try #require(peer("/usr/bin/python3"))
        let list = ["/bin/sh", "-c", "ls /proc/$$/fd; :"]
        #expect(run(withOnlyStdio(ours + list)).out == "0\r\n1\r\n2\r\n")
    }
}
