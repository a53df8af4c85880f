// Path: string helpers and the file-system queries, on a real temp tree.
import Core
import Glibc
import Testing

@Suite("Path")
struct PathTests {
    @Test("basename and dirname as the shell utilities")
    func names() {
        let cases: [(String, String, String)] = [
            ("/a/b/c", "c", "/a/b"), ("a/b/", "b", "a"), ("c", "c", "."), ("/", "/", "/"),
            ("/c", "c", "/"), ("a//", "a", "."), ("", "", "."), ("./x", "x", "."),
        ]
        for (path, base, dir) in cases {
            #expect(Path.basename(path) == base, "basename \(path)")
            #expect(Path.dirname(path) == dir, "dirname \(path)")
        }
    }

    @Test("join: absolute second part wins, one slash between")
    func join() {
        #expect(Path.join("/etc", "control") == "/etc/control")
        #expect(Path.join("/etc/", "control") == "/etc/control")
        #expect(Path.join("/etc", "/abs") == "/abs")
        #expect(Path.join("", "rel") == "rel")
        #expect(Path.join("a", "") == "a/")
    }

    @Test("status, kinds, entries and mkdir -p on a real tree")
    func fileSystem() throws {
        let dir = try TempDir(); defer { dir.remove() }
        try Path.makeDirectories(dir.file("a/b/c")).get()
        try Path.makeDirectories(dir.file("a/b/c")).get()  // existing: fine
        #expect(Path.isDirectory(dir.file("a/b/c")))
        try writeFile(dir.file("a/file"), "x")
        try makeSymlink("file", at: dir.file("a/link"))
        #expect(Path.isRegularFile(dir.file("a/file")))
        #expect(Path.isRegularFile(dir.file("a/link")))  // followed
        #expect(!Path.isDirectory(dir.file("a/file")))
        #expect(Path.exists(dir.file("a/link")))
        #expect(!Path.exists(dir.file("a/missing")))
        let link = try #require(Path.status(dir.file("a/link"), followLinks: false))
        #expect(link.st_mode & S_IFMT == S_IFLNK)
        #expect(Path.status(dir.file("a/missing")) == nil)

        #expect(try Path.entries(dir.file("a")).get().sorted() == ["b", "file", "link"])
        #expect(try Path.entries(dir.file("a/b/c")).get() == [])
        #expect(failure(Path.entries(dir.file("nope")))?.errno == ENOENT)
        // A file in the way of mkdir -p is an error.
        #expect(failure(Path.makeDirectories(dir.file("a/file/sub")))?.errno == ENOTDIR)
    }

    @Test("currentDirectory is an absolute path that exists")
    func currentDirectory() throws {
        let cwd = try #require(Path.currentDirectory())
        #expect(cwd.hasPrefix("/"))
        #expect(Path.isDirectory(cwd))
    }
}
