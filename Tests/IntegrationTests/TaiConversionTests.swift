// tai64n2tai and tai2tai64n: vectors, agreement with tai64nunix, round trips, and the
// read/write error exit codes.
import Core
import Glibc
import Testing

@Suite struct TaiConversionTests {
    func filter(_ name: String, _ input: String) -> Outcome {
        run([Build.indimail, name], stdin: Array(input.utf8))
    }

    @Test func tai64n2taiVectors() {
        let r = filter("tai64n2tai", "@400000003d6387281f8fa4ac x\nplain line\n@4000000037C219BF2EF02E94 upper\n"
            + "@40000000 short\n@40000000zzzzzzzz2ef02e94 bad hex\n\n@400000003d6387281f8fa4ac")
        #expect(r.exitCode == 0)
        #expect(r.out == "1029932840.529507500 x\nplain line\n0935467455.787492500 upper\n"
            + "@40000000 short\n@40000000zzzzzzzz2ef02e94 bad hex\n\n1029932840.529507500")
    }

    @Test func tai64n2taiIsTai64nunixPlusTen() {
        let labels = (0..<20).map { i in TAI64N(unixSeconds: Int64(i) * 86_400_007 + 3, nanoseconds: UInt32(i) * 49_999_999) }
        let input = labels.map { $0.labelString + " line\n" }.joined()
        let tai = filter("tai64n2tai", input).out.split(separator: "\n")
        let unix = filter("tai64nunix", input).out.split(separator: "\n")
        #expect(tai.count == 20 && unix.count == 20)
        for (t, u) in zip(tai, unix) {
            let ts = t.split(separator: ".").first.flatMap { Int64($0) }
            let us = u.split(separator: ".").first.flatMap { Int64($0) }
            #expect(ts != nil && ts == us.map { $0 + 10 })
            #expect(t.drop { $0 != "." } == u.drop { $0 != "." })
        }
    }

    @Test func tai2tai64nVectorsAndRoundTrip() {
        let r = filter("tai2tai64n", "1029932840.529507500 x\nhello\n12.5\n123\n1. dot\n.5 no seconds\n"
            + "99999999999999999999 too big\n123")
        #expect(r.exitCode == 0)
        #expect(r.out == "@400000003d6387281f8fa4ac x\nhello\n@400000000000000c1dcd6500\n"
            + "@400000000000007b00000000\n@400000000000000100000000 dot\n.5 no seconds\n"
            + "99999999999999999999 too big\n@400000000000007b00000000")
        let labelled = run([Build.indimail, "tai64n"], stdin: Array("one\ntwo\n".utf8)).stdout
        let back = run([Build.indimail, "tai2tai64n"], stdin: run([Build.indimail, "tai64n2tai"], stdin: labelled).stdout)
        #expect(back.stdout == labelled)
    }

    @Test func longLinesPassInOnePiece() {
        let long = String(repeating: "7", count: 200_000) + " x\n" + String(repeating: "@", count: 100_000) + "\n"
        #expect(filter("tai2tai64n", long).out == long)
        #expect(filter("tai64n2tai", long).out == long)
    }

    @Test func readAndWriteErrors() {
        for name in ["tai2tai64n", "tai64n2tai"] {
            let read = run(["/bin/sh", "-c", "exec \"$@\" < /", "sh", Build.indimail, name])
            #expect(read.exitCode == 1, "\(name)")
            #expect(read.err.hasPrefix("\(name): fatal: unable to read"))
            let write = run(["/bin/sh", "-c", "echo 1 | \"$@\" >&-", "sh", Build.indimail, name])
            #expect(write.exitCode == 2, "\(name)")
            #expect(write.err.hasPrefix("\(name): fatal: unable to write"))
        }
    }
}
