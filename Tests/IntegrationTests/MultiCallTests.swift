// The multi-call binaries: dispatch by link name and by first argument, listings, refusals.
import Commands
import Core
import Glibc
import Testing

@Suite struct MultiCallTests {
    @Test func dispatchesOnLinkName() {
        let box = Sandbox()
        let bin = box.commandLinks(["tai64nunix"])
        let r = run([Path.join(bin, "tai64nunix")], stdin: Array("@400000003d6387281f8fa4ac x\n".utf8))
        #expect(r.exitCode == 0)
        #expect(r.out == "1029932830.529507500 x\n")
    }

    @Test func dispatchesOnFirstArgument() {
        let r = run([Build.indimail, "tai64nunix"], stdin: Array("@400000003d6387281f8fa4ac x\n".utf8))
        #expect(r.exitCode == 0)
        #expect(r.out == "1029932830.529507500 x\n")
    }

    @Test func listsEveryRegisteredCommand() {
        let r = run([Build.indimail, "--list"])
        #expect(r.exitCode == 0)
        let names = r.out.split(separator: "\n").map { String($0.split(separator: "\t")[0]) }
        #expect(names == CommandRegistry.base.map { $0.name }.sorted())
    }

    @Test func installListNamesADirectoryForEachCommand() {
        let r = run([Build.indimail, "--install-list"])
        #expect(r.exitCode == 0)
        for line in r.out.split(separator: "\n") {
            let fields = line.split(separator: " ")
            #expect(fields.count == 2)
            #expect(InstallDirectory(rawValue: String(fields[0])) != nil)
        }
        #expect(r.out.contains("bin envdir\n"))
    }

    @Test func unknownCommandIsAUsageError() {
        let r = run([Build.indimail, "no-such-command"])
        #expect(r.exitCode == 100)
        #expect(r.err.contains("indimail: fatal: unknown command: no-such-command"))
        let bare = run([Build.indimail])
        #expect(bare.exitCode == 100)
        #expect(bare.err.contains("usage:"))
    }

    @Test func unknownLinkNameFallsBackToFirstArgument() {
        let box = Sandbox()
        let link = box.at("renamed")
        symlink(Build.indimail, link)
        #expect(run([link, "tai64nunix"], stdin: Array("@400000003d6387281f8fa4ac\n".utf8)).out
                == "1029932830.529507500\n")
    }

    @Test func tlsBinaryReportsItsLibraries() {
        let r = run([Build.indimailTLS, "--version"])
        #expect(r.exitCode == 0)
        #expect(r.out.contains("OpenSSL 3"))
        #expect(r.out.contains("libidn2"))
        #expect(r.out.contains("libgsasl"))
        // Same registry: the small tools answer there too.
        #expect(run([Build.indimailTLS, "tai64nunix"], stdin: Array("@400000003d6387281f8fa4ac\n".utf8)).out
                == "1029932830.529507500\n")
    }

    /// A setuid copy must refuse to run: any command would otherwise run with its owner's rights.
    @Test(.enabled(if: getuid() == 0, "needs root to make a setuid file for another user"))
    func refusesToRunSetuid() throws {
        let box = Sandbox()
        let copy = box.at("indimail")
        let cp = run(["/bin/cp", Build.indimail, copy])
        #expect(cp.exitCode == 0)
        #expect(chown(copy, 65534, 65534) == 0)
        #expect(chmod(copy, 0o4755) == 0)
        // The sandbox must be traversable by everyone for the kernel to honour the bit.
        chmod(box.path, 0o755)
        let r = run([copy, "--list"])
        #expect(r.exitCode == 100)
        #expect(r.err.contains("refusing to run with real and effective ids differing"))
        #expect(r.stdout.isEmpty)

        #expect(chmod(copy, 0o2755) == 0)  // setgid alone is refused too
        #expect(run([copy, "--list"]).exitCode == 100)
    }
}
