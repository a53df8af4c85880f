// setuidgid against daemontools' setuidgid, plus the indimail -s, -g and -e options.
import Core
import Glibc
import Testing

/// A throwaway account: primary group, one group listing it as a member, one unrelated
/// group for -g. Removed again (user first, then groups) when the value goes away.
final class ThrowawayAccount {
    let user: String
    let primary: String
    let member: String
    let extra: String
    private(set) var created = false

    init() {
        let tag = "\(getpid() % 100_000)x\(UInt16.random(in: 0...UInt16.max))"
        user = "imtu\(tag)"
        primary = "imtp\(tag)"
        member = "imtm\(tag)"
        extra = "imte\(tag)"
        for group in [primary, member, extra] {
            guard run(["/usr/sbin/groupadd", group], timeout: 30).exitCode == 0 else { return }
        }
        let added = run(["/usr/sbin/useradd", "-M", "-N", "-g", primary, "-G", member, "-d", "/nonexistent-imt",
                         "-s", "/usr/sbin/nologin", user], timeout: 30)
        created = added.exitCode == 0
    }

    func gid(_ group: String) -> gid_t? {
        guard case .success(let g) = Accounts.group(group) else { return nil }
        return g
    }

    deinit {
        _ = run(["/usr/sbin/userdel", user], timeout: 30)
        for group in [primary, member, extra] { _ = run(["/usr/sbin/groupdel", group], timeout: 30) }
    }
}

@Suite(.serialized, .enabled(if: getuid() == 0, "changing ids needs root"))
struct SetuidgidTests {
    static let djb = "/usr/bin/setuidgid"
    var ours: [String] { [Build.indimail, "setuidgid"] }

    /// The supplementary list the kernel holds for the child, as /proc shows it (Linux
    /// keeps it sorted, whatever order setgroups was given).
    func kernelGroups(_ prefix: [String], _ options: [String] = [], _ account: String) -> [gid_t]? {
        let r = run(prefix + options + [account, "/bin/grep", "^Groups:", "/proc/self/status"])
        guard r.exitCode == 0 else { return nil }
        return r.out.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).dropFirst()
            .compactMap { gid_t(String($0)) }
    }

    @Test func idMatchesDaemontoolsForNobody() throws {
        let djb = try #require(peer(Self.djb), "daemontools setuidgid missing: run scripts/deps --test")
        let mine = run(ours + ["nobody", "/usr/bin/id"])
        let theirs = run([djb, "nobody", "/usr/bin/id"])
        #expect(mine.exitCode == 0)
        #expect(mine.out == theirs.out)
        #expect(mine.out.hasPrefix("uid=65534(nobody) gid="))
        // Real and effective ids both changed, and no group of ours survives.
        let status = run(ours + ["nobody", "/bin/grep", "-E", "^(Uid|Gid|Groups):", "/proc/self/status"])
        let theirStatus = run([djb, "nobody", "/bin/grep", "-E", "^(Uid|Gid|Groups):", "/proc/self/status"])
        #expect(status.out == theirStatus.out)
        #expect(status.out.contains("Uid:\t65534\t65534\t65534\t65534"))
    }

    @Test func supplementaryGroupsWithSAndG() throws {
        let djb = try #require(peer(Self.djb))
        let account = ThrowawayAccount()
        try #require(account.created, "useradd/groupadd failed")
        let primary = try #require(account.gid(account.primary))
        let member = try #require(account.gid(account.member))
        let extra = try #require(account.gid(account.extra))

        // Default: only the primary group, exactly as daemontools.
        #expect(kernelGroups(ours, [], account.user) == [primary])
        #expect(kernelGroups([djb], [], account.user) == [primary])
        // -s: the primary group, then every group listing the user.
        #expect(kernelGroups(ours, ["-s"], account.user) == [primary, member].sorted())
        // -g alone: exactly the groups named (by name or number), as the reference.
        #expect(kernelGroups(ours, ["-g", "\(account.extra),7"], account.user) == [extra, 7].sorted())
        // Both: memberships and the -g list.
        #expect(kernelGroups(ours, ["-s", "-g", account.extra], account.user) == [primary, member, extra].sorted())
        #expect(kernelGroups(ours, ["-sg\(extra)"], account.user) == [primary, member, extra].sorted())

        let id = run(ours + ["-s", account.user, "/usr/bin/id", "-G"])
        #expect(id.out == "\(primary) \(member)\n")
        let idG = run(ours + ["-g", account.extra, account.user, "/usr/bin/id", "-G"])
        #expect(idG.out == "\(primary) \(extra)\n")
    }

    @Test func environmentOption() {
        let plain = run(ours + ["nobody", "/usr/bin/env"], environment: ["HOME": "/root", "USER": "root"],
                        inheritEnvironment: false)
        #expect(plain.out.contains("HOME=/root\n"))
        #expect(plain.out.contains("USER=root\n"))
        #expect(!plain.out.contains("LOGNAME="))
        let set = run(ours + ["-e", "nobody", "/usr/bin/env"], environment: ["HOME": "/root", "USER": "root"],
                      inheritEnvironment: false)
        let lines = Set(set.out.split(separator: "\n").map(String.init))
        #expect(lines.contains("USER=nobody"))
        #expect(lines.contains("LOGNAME=nobody"))
        if case .success(let nobody) = Accounts.user("nobody") {
            #expect(lines.contains("HOME=" + nobody.home))
        }
    }

    @Test func errorsMatchDaemontools() throws {
        let djb = try #require(peer(Self.djb))
        for args in [["no-such-user-imt", "/bin/true"], ["nobody", "/no/such/program"]] {
            let mine = run(ours + args)
            let theirs = run([djb] + args)
            #expect(mine.exitCode == 111)
            #expect(theirs.exitCode == 111)
        }
        #expect(run(ours + ["no-such-user-imt", "/bin/true"]).err == "setuidgid: fatal: unknown account no-such-user-imt\n")
        #expect(run(ours + ["nobody", "/no/such/program"]).err
            == "setuidgid: fatal: unable to run /no/such/program: No such file or directory\n")
        for args in [[], ["nobody"]] {
            #expect(run(ours + args).exitCode == 100)
            #expect(run([djb] + args).exitCode == 100)
        }
        #expect(run(ours + ["-z", "nobody", "/bin/true"]).exitCode == 100)
        #expect(run(ours + ["-g"]).exitCode == 100)
    }

    @Test func badGroupListsAreRefused() {
        let unknown = run(ours + ["-g", "no-such-group-imt", "nobody", "/bin/true"])
        #expect(unknown.exitCode == 111)
        #expect(unknown.err == "setuidgid: fatal: unknown group no-such-group-imt\n")
        // The reference reads an empty entry as gid 0 (root); we refuse it.
        for list in ["", "5,", ",5", "5,,6"] {
            let r = run(ours + ["-g", list, "nobody", "/bin/true"])
            #expect(r.exitCode == 111, "list \(list)")
            #expect(r.err.contains("empty group name"))
        }
        let huge = run(ours + ["-g", "99999999999999999999", "nobody", "/bin/true"])
        #expect(huge.exitCode == 111)
    }

    @Test func unprivilegedCallerFailsTemporarily() {
        // Already nobody: switching to root must fail cleanly with 111.
        let r = run(ours + ["nobody", Build.indimail, "setuidgid", "root", "/usr/bin/id"])
        #expect(r.exitCode == 111)
        #expect(r.err.hasPrefix("setuidgid: fatal: unable to set "))
        #expect(r.out.isEmpty)
    }
}
