// readproctitle against daemontools' readproctitle: what /proc/<pid>/cmdline shows while
// it is being fed, and its exit codes.
import Core
import Glibc
import Testing

@Suite struct ReadproctitleTests {
    static let djb = "/usr/bin/readproctitle"
    static let dots = String(repeating: ".", count: 20)

    /// Starts `argv`, feeds it `input`, and returns its argument list once it stops
    /// changing (or after the deadline), then ends its input and reaps it.
    func title(_ argv: [String], feeding input: [UInt8], expecting expected: [String]? = nil) -> ([String], WaitStatus?) {
        guard let child = BackgroundChild(argv, stdinPipe: true) else { return ([], nil) }
        child.send(input)
        var seen: [String] = []
        _ = eventually(within: 10) {
            seen = (contents("/proc/\(child.pid)/cmdline") ?? []).split(separator: 0, omittingEmptySubsequences: false)
                .map { String(decoding: $0, as: UTF8.self) }
            if seen.last == "" { seen.removeLast() }
            return expected.map { seen == $0 } ?? false
        }
        child.closeInput()
        return (seen, child.waitExit(within: 10))
    }

    @Test func showsTheLatestInputLikeDaemontools() throws {
        let djb = try #require(peer(Self.djb), "daemontools readproctitle missing: run scripts/deps --test")
        let box = Sandbox()
        let link = Path.join(box.commandLinks(["readproctitle"]), "readproctitle")
        let input = Array("fatal error xyz\nwarning abc\n".utf8)
        let tail = "... xyz\nwarning abc\n"
        let (mine, myExit) = title([link, "io", "errors:", Self.dots], feeding: input,
                                   expecting: [link, "io", "errors:", tail])
        let (theirs, theirExit) = title([djb, "io", "errors:", Self.dots], feeding: input,
                                        expecting: [djb, "io", "errors:", tail])
        #expect(mine == [link, "io", "errors:", tail])
        #expect(Array(mine.dropFirst()) == Array(theirs.dropFirst()))
        #expect(myExit == .exited(0))
        #expect(theirExit == .exited(0))
    }

    @Test func rewritesTheLastArgumentWhenCalledThroughTheMultiCallName() {
        let input: [UInt8] = Array("ab".utf8) + [0] + Array("cdefghijklmnopqrstuvwxyz".utf8)
        let expected = [Build.indimail, "readproctitle", "...rstuvwxyz"]
        let (seen, exit) = title([Build.indimail, "readproctitle", "............"], feeding: input, expecting: expected)
        #expect(seen == expected)  // NUL bytes skipped; the three leading dots stay
        #expect(exit == .exited(0))
    }

    @Test func shortInputShiftsPartly() {
        let expected = [Build.indimail, "readproctitle", "x", ".....hi"]
        let (seen, _) = title([Build.indimail, "readproctitle", "x", "......."], feeding: Array("hi".utf8),
                              expecting: expected)
        #expect(seen == expected)
    }

    @Test func exitCodesMatchDaemontools() throws {
        let djb = try #require(peer(Self.djb))
        for args in [[], ["...."], ["label", "abcd"]] {
            #expect(run([Build.indimail, "readproctitle"] + args).exitCode == 100, "\(args)")
            #expect(run([djb] + args).exitCode == 100, "\(args)")
        }
        // Any five characters will do: they all become dots.
        #expect(run([Build.indimail, "readproctitle", "abcde"], stdin: Array("x".utf8)).exitCode == 0)
        #expect(run([djb, "abcde"], stdin: Array("x".utf8)).exitCode == 0)
        // A directory on stdin cannot be read: 111.
        let dir = run(["/bin/sh", "-c", "exec \"$@\" < /", "sh", Build.indimail, "readproctitle", "....."])
        #expect(dir.exitCode == 111)
        #expect(run(["/bin/sh", "-c", "exec \"$@\" < /", "sh", djb, "....."]).exitCode == 111)
    }
}
