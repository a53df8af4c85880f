// qmail-newu, qmail-getpw and qmail-pw2u as operators run them; users/cdb checked with
// djb's cdbdump, qmail-getpw against the system's own accounts.
import Core
import Glibc
import Testing

@Suite struct UserCommandsTests {
    static let assign = "=joe:joe:1001:100:/home/joe:::\n+List-:lists:1003:100:/home/lists:-:l-:\n+:alias:7:7:/var/alias:-::\n.\n"

    @Test func qmailNewuWritesWhatCdbdumpReads() throws {
        let box = Sandbox()
        let users = box.directory("users")
        box.write("users/assign", UserCommandsTests.assign)
        let r = run([Build.indimail, "qmail-newu"], environment: ["ASSIGNDIR": users])
        #expect(r.exitCode == 0, "\(r.err)")
        let cdbdump = try #require(peer("/usr/bin/cdbdump"))
        let dump = run(["/bin/sh", "-c", "exec \"$0\" < \"$1\"", cdbdump, Path.join(users, "cdb")])
        let records: [(String, String)] = [
            ("!joe\0", "joe\u{0}1001\u{0}100\u{0}/home/joe\u{0}\u{0}"),
            ("!list-", "lists\u{0}1003\u{0}100\u{0}/home/lists\u{0}-\u{0}l-"),
            ("!", "alias\u{0}7\u{0}7\u{0}/var/alias\u{0}-\u{0}"),
            ("", "-"),
        ]
        let expected = records.map { "+\($0.0.utf8.count),\($0.1.utf8.count):\($0.0)->\($0.1)\n" }.joined() + "\n"
        #expect(dump.out == expected)
        #expect(!Path.exists(Path.join(users, "cdb.tmp")))
    }

    @Test func qmailNewuKeepsTheOldCdbOnBadInput() throws {
        let box = Sandbox()
        let dir = box.directory("elsewhere")
        box.write("elsewhere/assign", UserCommandsTests.assign)
        #expect(run([Build.indimail, "qmail-newu", dir]).exitCode == 0)
        let before = try FD.readFile(Path.join(dir, "cdb")).get()
        box.write("elsewhere/assign", "=joe:joe:1001\n.\n")
        let bad = run([Build.indimail, "qmail-newu", dir])
        #expect(bad.exitCode == 111)
        #expect(bad.err.contains("qmail-newu: fatal: bad format in users/assign line 1"))
        #expect(try FD.readFile(Path.join(dir, "cdb")).get() == before)
        #expect(!Path.exists(Path.join(dir, "cdb.tmp")))
        let missing = run([Build.indimail, "qmail-newu", box.at("nowhere")])
        #expect(missing.exitCode == 111)
    }

    /// An account qmail-getpw would accept: uid ≠ 0, lower case, home owned by it.
    func candidate() -> (name: String, uid: uid_t, gid: gid_t, home: String)? {
        setpwent()
        defer { endpwent() }
        while let p = getpwent() {
            guard let n = p.pointee.pw_name, let d = p.pointee.pw_dir else { continue }
            let name = String(cString: n), home = String(cString: d), uid = p.pointee.pw_uid
            guard uid != 0, name.count < 20, name == name.lowercased(), !name.contains("-"),
                  let st = Path.status(home), st.st_uid == uid else { continue }
            return (name, uid, p.pointee.pw_gid, home)
        }
        return nil
    }

    @Test func qmailGetpwAgainstTheSystemAccounts() throws {
        if let c = candidate() {
            let exact = run([Build.indimail, "qmail-getpw", c.name])
            #expect(exact.exitCode == 0)
            #expect(exact.out == "\(c.name)\0\(c.uid)\0\(c.gid)\0\(c.home)\0\0\0")
            let ext = run([Build.indimail, "qmail-getpw", c.name.uppercased() + "-Box-2"])
            #expect(ext.out == "\(c.name)\0\(c.uid)\0\(c.gid)\0\(c.home)\0-\0Box-2\0")
        }
        let nobody = try Accounts.user("nobody").get()
        let alias = run([Build.indimail, "qmail-getpw", "Zz-No-Such-User"], environment: ["ALIAS_USER": "nobody"])
        #expect(alias.exitCode == 0)
        #expect(alias.out == "nobody\0\(nobody.uid)\0\(nobody.gid)\0\(nobody.home)\0-\0Zz-No-Such-User\0")
        let noAlias = run([Build.indimail, "qmail-getpw", "zz-no-such"], environment: ["ALIAS_USER": "zz-no-alias"])
        #expect(noAlias.exitCode == 116)
        #expect(noAlias.stdout.isEmpty)
        #expect(run([Build.indimail, "qmail-getpw"]).exitCode == 100)
    }

    @Test func qmailPw2uWithTablesThenQmailNewu() throws {
        let box = Sandbox()
        let users = box.directory("users")
        box.write("users/include", "alias\njoe\n# comment\n")
        box.write("users/mailnames", "joe:joseph:jo\n")
        box.write("users/subusers", "help:joe:desk:\n")
        box.write("users/append", "=postmaster:alias:7:7:/var/alias:::\n")
        let passwd = "alias:x:7:7::\(box.at("h/alias")):/bin/false\njoe:x:1001:100::\(box.at("h/joe")):/bin/sh\nann:x:1002:100::\(box.at("h/ann")):/bin/sh\n"
        // Homes are not looked at with -H, so this works as any user.
        let r = run([Build.indimail, "qmail-pw2u", "-H", "-c+"], stdin: Array(passwd.utf8), environment: ["ASSIGNDIR": users])
        #expect(r.exitCode == 0, "\(r.err)")
        let a = box.at("h/alias"), j = box.at("h/joe")
        #expect(r.out == """
        +:alias:7:7:\(a):-::
        =alias:alias:7:7:\(a):::
        +alias+:alias:7:7:\(a):-::
        =joseph:joe:1001:100:\(j):::
        +joseph+:joe:1001:100:\(j):-::
        =jo:joe:1001:100:\(j):::
        +jo+:joe:1001:100:\(j):-::
        =help:joe:1001:100:\(j):-:desk:
        +help+:joe:1001:100:\(j):-:desk-:
        =postmaster:alias:7:7:/var/alias:::
        .

        """)
        box.write("users/assign", r.out)
        #expect(run([Build.indimail, "qmail-newu"], environment: ["ASSIGNDIR": users]).exitCode == 0)

        // Default -o: homes that do not exist are skipped, so alias is missing here.
        let o = run([Build.indimail, "qmail-pw2u"], stdin: Array(passwd.utf8), environment: ["ASSIGNDIR": users])
        #expect(o.exitCode == 111)
        #expect(o.err.contains("unable to find alias user"))
        #expect(run([Build.indimail, "qmail-pw2u", "-x"], environment: ["ASSIGNDIR": users]).exitCode == 100)
    }
}
