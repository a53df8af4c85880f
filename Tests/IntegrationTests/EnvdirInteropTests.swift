// envdir against daemontools' envdir on the same directories, plus the indimail extensions.
import Core
import Glibc
import Testing

@Suite struct EnvdirInteropTests {
    static let djbEnvdir = "/usr/bin/envdir"

    /// `env` output of `<envdir> dir env` with a fixed starting environment, sorted.
    func environment(_ envdir: [String], _ dir: String, base: [String: String]) -> (Int32?, [String]) {
        let r = run(envdir + [dir, "/usr/bin/env"], environment: base, inheritEnvironment: false)
        return (r.exitCode, r.out.split(separator: "\n").map(String.init).sorted())
    }

    @Test func matchesDaemontoolsOnTheCommonSubset() throws {
        let djb = try #require(peer(Self.djbEnvdir), "daemontools envdir missing: run scripts/deps --test")
        let box = Sandbox()
        let dir = box.directory("env")
        box.write("env/PLAIN", "value\n")
        box.write("env/NONEWLINE", "value")
        box.write("env/TRAILING", "value \t \nsecond line\n")
        box.write("env/EMPTYLINE", "\n")
        box.write("env/NULS", [UInt8(ascii: "a"), 0, UInt8(ascii: "b"), 10])
        box.write("env/REMOVED", "")
        box.write("env/LEADING", "  spaced")
        box.write("env/.hidden", "not a variable\n")
        let base = ["PATH": "/usr/bin:/bin", "REMOVED": "before", "KEPT": "yes"]
        let ours = environment([Build.indimail, "envdir"], dir, base: base)
        let theirs = environment([djb], dir, base: base)
        #expect(ours.0 == 0)
        #expect(theirs.0 == 0)
        #expect(ours.1 == theirs.1)
        #expect(ours.1.contains("TRAILING=value"))
        #expect(!ours.1.contains { $0.hasPrefix("REMOVED=") })
        #expect(ours.1.contains("KEPT=yes"))
    }

    @Test func missingDirectoryFailsLikeTheReference() throws {
        let djb = try #require(peer(Self.djbEnvdir))
        let ours = run([Build.indimail, "envdir", "/nonexistent/env", "/bin/true"])
        let theirs = run([djb, "/nonexistent/env", "/bin/true"])
        #expect(ours.exitCode == 111)
        #expect(theirs.exitCode == 111)
        #expect(ours.err.hasPrefix("envdir: fatal: unable to open environment directory: /nonexistent/env: "))
    }

    @Test func usageAndExecErrors() {
        #expect(run([Build.indimail, "envdir"]).exitCode == 100)
        #expect(run([Build.indimail, "envdir", "/tmp"]).exitCode == 100)
        #expect(run([Build.indimail, "envdir", "-z", "/tmp", "/bin/true"]).exitCode == 100)
        let box = Sandbox()
        let r = run([Build.indimail, "envdir", box.directory("e"), "no-such-program-here"])
        #expect(r.exitCode == 111)
        #expect(r.err.contains("unable to run no-such-program-here"))
    }

    @Test func clearStartsFromNothingAndPathOptionSearchesTheNewPath() {
        let box = Sandbox()
        let dir = box.directory("env")
        box.write("env/ONLY", "1\n")
        let cleared = run([Build.indimail, "envdir", "-c", dir, "/usr/bin/env"], environment: ["OTHER": "x"])
        #expect(cleared.out == "ONLY=1\n")

        // A program only on the directory's PATH is found with -p, not without.
        box.write("tools/only-here", "#!/bin/sh\necho found\n", mode: 0o755)
        box.write("env/PATH", box.at("tools") + "\n")
        #expect(run([Build.indimail, "envdir", "-p", dir, "only-here"]).out == "found\n")
        #expect(run([Build.indimail, "envdir", dir, "only-here"]).exitCode == 111)
    }

    @Test func ignoreAndWarnOptions() {
        let box = Sandbox()
        let dir = box.directory("env")
        box.write("env/GOOD", "1\n")
        box.directory("env/ADIRECTORY")  // unreadable as a variable: EISDIR
        let strict = run([Build.indimail, "envdir", dir, "/usr/bin/env"])
        #expect(strict.exitCode == 111)
        #expect(strict.err.contains("unable to open environment file"))

        let ignoring = run([Build.indimail, "envdir", "-i", dir, "/usr/bin/env"], inheritEnvironment: false)
        #expect(ignoring.exitCode == 0)
        #expect(ignoring.out == "GOOD=1\n")

        // -w: warn, then run the child with the original environment (even -c is undone).
        let warned = run([Build.indimail, "envdir", "-w", "-c", dir, "/usr/bin/env"],
                         environment: ["ORIGINAL": "kept"], inheritEnvironment: false)
        #expect(warned.exitCode == 0)
        #expect(warned.out == "ORIGINAL=kept\n")
        #expect(warned.err.contains("envdir: warning: unable to open environment file"))
    }

    @Test func recursesThroughEnvdirAndEnvfile() {
        let box = Sandbox()
        box.write("global/SHARED", "from-global\n")
        box.write("global/OVERRIDDEN", "global\n")
        box.write("global/.envdir", box.at("svc") + "\n")  // a cycle back to svc: loaded once
        box.write("svc/OVERRIDDEN", "local\n")
        symlink(box.at("global"), box.at("svc/.envdir"))
        box.write("svc/.envfile", "# comment\n  FROMFILE=a=b \nUNSETME\n")
        let r = run([Build.indimail, "envdir", box.at("svc"), "/usr/bin/env"],
                    environment: ["UNSETME": "x"], inheritEnvironment: false, timeout: 10)
        #expect(!r.timedOut)
        #expect(r.exitCode == 0)
        let lines = Set(r.out.split(separator: "\n").map(String.init))
        #expect(lines == ["SHARED=from-global", "OVERRIDDEN=local", "FROMFILE=a=b "])
    }
}
