// tai64n / tai64nlocal / tai64nunix against daemontools' tai64n and tai64nlocal.
import Core
import Glibc
import Testing

@Suite struct TimestampInteropTests {
    static let input = Array("first line\nsecond\n\nlast without newline".utf8)

    func isLabelledLine(_ line: Substring) -> Bool {
        let bytes = Array(line.utf8)
        guard bytes.count >= 26, bytes[0] == UInt8(ascii: "@"), bytes[25] == 32 else { return false }
        return bytes[1..<25].allSatisfy { Hex.lowercaseValue($0) != nil }
    }

    @Test func labelsLikeDaemontools() throws {
        let djb = try #require(peer("/usr/bin/tai64n"), "daemontools tai64n missing: run scripts/deps --test")
        let ours = run([Build.indimail, "tai64n"], stdin: Self.input)
        let theirs = run([djb], stdin: Self.input)
        #expect(ours.exitCode == 0)
        let ourLines = ours.out.split(separator: "\n", omittingEmptySubsequences: false)
        let theirLines = theirs.out.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(ourLines.count == theirLines.count)
        for (a, b) in zip(ourLines, theirLines) {
            #expect(isLabelledLine(a) == isLabelledLine(b))
            #expect(a.dropFirst(26) == b.dropFirst(26))
        }
        // Same clock: the seconds of both labels agree within a few seconds.
        let ourSecs = TAI64N.parseLabel(Array(ours.stdout))?.0.unixSeconds ?? 0
        let theirSecs = TAI64N.parseLabel(Array(theirs.stdout))?.0.unixSeconds ?? 0
        #expect(abs(ourSecs - theirSecs) < 5)
    }

    @Test func localTimeMatchesDaemontoolsBothWays() throws {
        let djbStamp = try #require(peer("/usr/bin/tai64n"))
        let djbLocal = try #require(peer("/usr/bin/tai64nlocal"))
        let labelled = run([djbStamp], stdin: Self.input).stdout
        var corpus = labelled + [10]
        corpus += Array("@4000000037c219bf2ef02e94 fixed vector\nno label here\n".utf8)
        let tz = ["TZ": "Asia/Kolkata"]
        let ours = run([Build.indimail, "tai64nlocal"], stdin: corpus, environment: tz)
        let theirs = run([djbLocal], stdin: corpus, environment: tz)
        #expect(ours.exitCode == 0)
        #expect(ours.out == theirs.out)
        #expect(ours.out.contains("1999-08-24 09:34:05.787492500 fixed vector\n"))
        let utc = run([Build.indimail, "tai64nlocal"], stdin: Array("@4000000037c219bf2ef02e94 v\n".utf8),
                      environment: ["TZ": "UTC"])
        #expect(utc.out == "1999-08-24 04:04:05.787492500 v\n")
    }

    /// Labels no calendar can hold crash daemontools' tai64nlocal; ours leaves them as they are.
    @Test func unconvertibleLabelsPassUnchanged() {
        let input = Array("@ short\n@4000000037c219bfXYZ caps\n@400000003d6387281f8fa4ac99 extra digits\n".utf8)
        let r = run([Build.indimail, "tai64nlocal"], stdin: input, environment: ["TZ": "UTC"])
        #expect(r.exitCode == 0)
        #expect(r.stdout == input)
    }

    @Test func unixSecondsVector() {
        let r = run([Build.indimail, "tai64nunix"], stdin: Array("@400000003d6387281f8fa4ac x\nplain\n".utf8))
        #expect(r.out == "1029932830.529507500 x\nplain\n")
    }

    @Test func stampsEachLineOfALongStreamOnce() {
        var input: [UInt8] = []
        for i in 0..<20000 { input += Array("line \(i) ".utf8) + [UInt8](repeating: 120, count: i % 300) + [10] }
        let r = run([Build.indimail, "tai64n"], stdin: input)
        #expect(r.exitCode == 0)
        let lines = r.out.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        #expect(lines.count == 20000)
        #expect(lines.allSatisfy(isLabelledLine))
        // Stripping the labels gives the input back exactly.
        let stripped = lines.map { Array($0.utf8.dropFirst(26)) + [10] }.flatMap { $0 }
        let same = stripped == input  // outside #expect: no diff of large arrays
        #expect(same)
    }
}
