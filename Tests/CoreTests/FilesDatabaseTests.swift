// FilesDatabase: the /etc/passwd and /etc/group reader static executables use instead of NSS.
import Core
import Glibc
import Testing

@Suite("FilesDatabase")
struct FilesDatabaseTests {
    func file(_ text: String) -> String {
        var template = Array("/tmp/files-db-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        _ = FD.writeAll(fd, Array(text.utf8))
        FD.close(fd)
        return template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    @Test("passwd: well-formed entries only; comments, NIS markers and short lines skipped")
    func passwd() {
        let path = file("root:x:0:0:root:/root:/bin/bash\n# comment\n+nis\nbad:x:zero:0::/:/bin/sh\nshort:x:1\n"
                        + "joe:x:1000:100:Joe:/home/joe:/bin/sh\n\n")
        defer { unlink(path) }
        let users = FilesDatabase.users(path: path)
        #expect(users == [Account(name: "root", uid: 0, gid: 0, home: "/root"),
                          Account(name: "joe", uid: 1000, gid: 100, home: "/home/joe")])
        #expect(FilesDatabase.users(path: "/nonexistent/passwd").isEmpty)
    }

    @Test("group: gid and member lists")
    func group() {
        let path = file("root:x:0:\nmail:x:8:joe,ann\nbroken:x:\n")
        defer { unlink(path) }
        let groups = FilesDatabase.groups(path: path)
        #expect(groups == [FilesDatabase.Group(name: "root", gid: 0, members: []),
                           FilesDatabase.Group(name: "mail", gid: 8, members: ["joe", "ann"])])
    }

    @Test("this test process is dynamically linked, so lookups still go through NSS")
    func dynamic() {
        #expect(!Accounts.isStaticExecutable)
        #expect((try? Accounts.user("root").get())?.uid == 0)
        #expect(throws: AccountError.noSuchUser("no-such-user-xyz")) { try Accounts.user("no-such-user-xyz").get() }
    }
}
