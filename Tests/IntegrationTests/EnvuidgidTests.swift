// envuidgid against daemontools' envuidgid.
import Core
import Glibc
import Testing

@Suite struct EnvuidgidTests {
    static let djb = "/usr/bin/envuidgid"

    func ids(_ argv: [String]) -> (Int32?, [String]) {
        let r = run(argv + ["/usr/bin/env"], environment: ["UID": "1", "GID": "2", "KEEP": "x"], inheritEnvironment: false)
        return (r.exitCode, r.out.split(separator: "\n").map(String.init).sorted())
    }

    @Test func setsUIDAndGIDLikeDaemontools() throws {
        let djb = try #require(peer(Self.djb), "daemontools envuidgid missing: run scripts/deps --test")
        for account in ["nobody", "root"] {
            let mine = ids([Build.indimail, "envuidgid", account])
            let theirs = ids([djb, account])
            #expect(mine.0 == 0)
            #expect(mine.1 == theirs.1)
        }
        let mine = ids([Build.indimail, "envuidgid", "nobody"]).1
        #expect(mine.contains("UID=65534"))
        #expect(mine.contains("KEEP=x"))
        let gid = (try? Accounts.user("nobody").get().gid).map { String($0) } ?? "?"
        #expect(mine.contains("GID=" + gid))
        // Only the environment changes: the child still runs as us.
        #expect(run([Build.indimail, "envuidgid", "nobody", "/usr/bin/id", "-u"]).out == "\(getuid())\n")
    }

    @Test func errorsMatchDaemontools() throws {
        let djb = try #require(peer(Self.djb))
        for (args, code) in [([String](), Int32(100)), (["nobody"], 100), (["no-such-user-imt", "/bin/true"], 111),
                             (["nobody", "/no/such/program"], 111)] {
            let mine = run([Build.indimail, "envuidgid"] + args)
            let theirs = run([djb] + args)
            #expect(mine.exitCode == code, "\(args)")
            #expect(theirs.exitCode == code, "\(args)")
        }
        #expect(run([Build.indimail, "envuidgid", "no-such-user-imt", "/bin/true"]).err
            == "envuidgid: fatal: unknown account no-such-user-imt\n")
        #expect(run([Build.indimail, "envuidgid", "nobody", "/no/such/program"]).err
            == "envuidgid: fatal: unable to run /no/such/program: No such file or directory\n")
    }
}
