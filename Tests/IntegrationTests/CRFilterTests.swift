// addcr and delcr against ucspi-tcp's C versions, including the edge cases of the spec.
import Glibc
import Testing

@Suite struct CRFilterTests {
    static let cases: [[UInt8]] = [
        Array("a\nb\r\nc\r\r\nd\re\n".utf8),
        Array("trailing cr\r".utf8),
        Array("no newline".utf8),
        [0, 10, 13, 0, 13, 10, 13],
        Array(repeating: Array("x\r\n".utf8), count: 50000).flatMap { $0 },  // crosses read boundaries
        Array(repeating: 13, count: 70000) + [10],
        [],
    ]

    @Test(arguments: ["addcr", "delcr"])
    func matchesUcspiTcp(_ tool: String) throws {
        let c = try #require(peer("/usr/bin/\(tool)"), "ucspi-tcp \(tool) missing: run scripts/deps --test")
        for input in Self.cases {
            let ours = run([Build.indimail, tool], stdin: input)
            let theirs = run([c], stdin: input)
            #expect(ours.exitCode == 0)
            let same = ours.stdout == theirs.stdout  // outside #expect: no diff of large arrays
            #expect(same, "\(tool) differs on \(input.prefix(20))")
        }
    }

    @Test func delcrEdgeCases() {
        #expect(run([Build.indimail, "delcr"], stdin: Array("\r\r\n".utf8)).stdout == Array("\r\n".utf8))
        #expect(run([Build.indimail, "delcr"], stdin: Array("a\rb".utf8)).stdout == Array("a\rb".utf8))
        #expect(run([Build.indimail, "delcr"], stdin: Array("end\r".utf8)).stdout == Array("end\r".utf8))
        #expect(run([Build.indimail, "addcr"], stdin: Array("a\nb".utf8)).stdout == Array("a\r\nb".utf8))
    }
}
