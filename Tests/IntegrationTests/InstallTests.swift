// scripts/install into a scratch prefix: links where the reference puts them, idempotent,
// and an uninstall that leaves nothing of ours behind.
import Core
import Glibc
import Testing

@Suite struct InstallTests {
    static let script: String = {
        // Build dir is <top>/.build/<triple>/debug; the scripts live at <top>/scripts.
        var dir = Build.directory
        while dir != "/" && !Path.exists(Path.join(dir, "scripts/install")) { dir = Path.dirname(dir) }
        return Path.join(dir, "scripts/install")
    }()

    func files(under root: String) -> [String] {
        run(["/usr/bin/find", root, "-mindepth", "1", "(", "-type", "f", "-o", "-type", "l", ")"]).out
            .split(separator: "\n").map { String($0.dropFirst(root.count + 1)) }.sorted()
    }

    @Test func installsIdempotentlyAndUninstallsCleanly() throws {
        let box = Sandbox()
        let prefix = box.at("prefix")
        let first = run(["/bin/sh", Self.script, "--prefix", prefix, "--from", Build.directory], timeout: 60)
        #expect(first.exitCode == 0, "\(first.err)")
        let afterFirst = files(under: prefix)
        #expect(afterFirst.contains("bin/indimail"))
        #expect(afterFirst.contains("bin/indimail-tls"))
        // The setuid program is its own executable (0755 here: no qmailq account).
        #expect(afterFirst.contains("sbin/qmail-queue"))
        #expect(Path.isRegularFile(Path.join(prefix, "sbin/qmail-queue")))
        #expect(afterFirst.contains("share/indimail/install-manifest"))

        // Every command of the registry has its link, and the link runs it.
        let listing = run([Build.indimail, "--install-list"]).out.split(separator: "\n")
        for line in listing {
            let parts = line.split(separator: " ").map(String.init)
            let place = parts[0] == "libexec" ? "libexec/indimail/\(parts[1])" : "\(parts[0])/\(parts[1])"
            #expect(afterFirst.contains(place))
            #expect(Path.isRegularFile(Path.join(prefix, place)))  // resolves to the binary
        }
        let tai = run([Path.join(prefix, "bin/tai64nunix")], stdin: Array("@400000003d6387281f8fa4ac\n".utf8))
        #expect(tai.out == "1029932830.529507500\n")

        let second = run(["/bin/sh", Self.script, "--prefix", prefix, "--from", Build.directory], timeout: 60)
        #expect(second.exitCode == 0)
        #expect(files(under: prefix) == afterFirst)

        // A file of the operator's in the same dirs survives the uninstall.
        box.write("prefix/bin/operators-own", "#!/bin/sh\n", mode: 0o755)
        let gone = run(["/bin/sh", Self.script, "--prefix", prefix, "--uninstall"], timeout: 60)
        #expect(gone.exitCode == 0)
        #expect(files(under: prefix) == ["bin/operators-own"])
    }

    @Test func refusesUnknownArguments() {
        let r = run(["/bin/sh", Self.script, "--bogus"])
        #expect(r.exitCode == 100)
        #expect(r.err.contains("usage"))
    }
}
