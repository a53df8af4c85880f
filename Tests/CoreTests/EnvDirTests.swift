// EnvDirLoader: libqmail envdir() semantics with indimail's .envfile / .envdir (spec §4).
import Core
import Glibc
import Testing

@Suite("EnvDirLoader")
struct EnvDirTests {
    func load(_ dir: String, into env: Environment = Environment(), ignoreUnreadable: Bool = false) throws -> Environment {
        try EnvDirLoader.load(dir, into: env, ignoreUnreadable: ignoreUnreadable).get()
    }

    @Test("one variable per file: first line, trailing blanks cut, NUL → newline, empty file unsets")
    func variableFiles() throws {
        let dir = try TempDir(); defer { dir.remove() }
        try writeFile(dir.file("FIRST"), "hello\nsecond line\n")
        try writeFile(dir.file("BLANKS"), "value  \t \t\nmore")
        try writeFile(dir.file("LEADING"), "  lead")
        try writeFile(dir.file("NUL"), [0x61, 0, 0x62, 10, 0x63])
        try writeFile(dir.file("CR"), "keeps cr\r\n")
        try writeFile(dir.file("NONEWLINE"), "last")
        try writeFile(dir.file("EMPTYLINE"), "\nignored")
        try writeFile(dir.file("GONE"), "")
        try writeFile(dir.file("NEVER"), "")
        try writeFile(dir.file("HIGH"), [0xff, 0xfe, 0x20, 10])

        let base = Environment([("GONE", "old"), ("KEEP", "kept"), ("FIRST", "overridden")])
        let env = try load(dir.path, into: base)
        #expect(env["FIRST"] == "hello")
        #expect(env["BLANKS"] == "value")
        #expect(env["LEADING"] == "  lead")
        #expect(env.bytes("NUL") == [0x61, 10, 0x62])
        #expect(env["CR"] == "keeps cr\r")  // only spaces and tabs are trimmed
        #expect(env["NONEWLINE"] == "last")
        #expect(env.contains("EMPTYLINE") && env["EMPTYLINE"] == "")  // set, to the empty string
        #expect(!env.contains("GONE"))
        #expect(!env.contains("NEVER"))
        #expect(env["KEEP"] == "kept")
        #expect(env.bytes("HIGH") == [0xff, 0xfe])
    }

    @Test("a FIFO entry without a writer reads as empty instead of hanging")
    func fifoEntry() throws {
        let dir = try TempDir(); defer { dir.remove() }
        try FIFO.make(dir.file("PIPE")).get()
        try writeFile(dir.file("OTHER"), "o\n")
        let env = try load(dir.path, into: Environment([("PIPE", "old")]))
        #expect(!env.contains("PIPE"))
        #expect(env["OTHER"] == "o")
    }

    @Test("a path that is not a directory is an error")
    func notADirectory() throws {
        let dir = try TempDir(); defer { dir.remove() }
        try writeFile(dir.file("file"), "x\n")
        let error = try #require(failure(EnvDirLoader.load(dir.file("file"), into: Environment())))
        #expect(error.message == "unable to open environment directory")
        #expect(error.errno == ENOTDIR)
    }

    @Test("dotfiles are not variables")
    func dotfilesIgnored() throws {
        let dir = try TempDir(); defer { dir.remove() }
        try writeFile(dir.file(".hidden"), "secret\n")
        try writeFile(dir.file("..also"), "secret\n")
        try writeFile(dir.file("SHOWN"), "yes\n")
        let env = try load(dir.path)
        #expect(env.names == ["SHOWN"])
    }

    @Test("an unreadable entry is an error unless ignoreUnreadable")
    func unreadable() throws {
        let dir = try TempDir(); defer { dir.remove() }
        try writeFile(dir.file("A"), "a\n")
        try makeDirectory(dir.file("SUB"))  // reading a directory fails with EISDIR, even for root
        try writeFile(dir.file("Z"), "z\n")

        let error = try #require(failure(EnvDirLoader.load(dir.path, into: Environment())))
        #expect(error.message == "unable to open environment file")
        #expect(error.name == dir.file("SUB"))
        #expect(error.errno == EISDIR)
        #expect(error.description == "unable to open environment file: \(dir.file("SUB")): Is a directory")

        let env = try load(dir.path, ignoreUnreadable: true)
        #expect(env["A"] == "a")
        #expect(env["Z"] == "z")
        #expect(!env.contains("SUB"))
    }

    @Test("a missing directory is reported with the reference's wording")
    func missingDirectory() throws {
        let dir = try TempDir(); defer { dir.remove() }
        let missing = dir.file("nope")
        let error = try #require(failure(EnvDirLoader.load(missing, into: Environment())))
        #expect(error.message == "unable to open environment directory")
        #expect(error.name == missing)
        #expect(error.errno == ENOENT)
        #expect(error.description == "unable to open environment directory: \(missing): No such file or directory")
        // -i does not excuse a missing directory.
        #expect(failure(EnvDirLoader.load(missing, into: Environment(), ignoreUnreadable: true))?.errno == ENOENT)
    }

    @Test(".envfile: comments, leading blanks, NAME unsets, value verbatim after the first '='")
    func envFile() throws {
        let dir = try TempDir(); defer { dir.remove() }
        try writeFile(dir.file(".envfile"), """
            # a comment
               # an indented comment

            FOO=bar
              \tLEAD=x
            EQ=a=b = c  \t
            UNSETME
            EMPTY=
            =nameless
            BLANKNAME \t
            LAST=no newline at the end
            """)
        let base = Environment([("UNSETME", "1"), ("OTHER", "o"), ("BLANKNAME", "b")])
        let env = try load(dir.path, into: base)
        #expect(env["FOO"] == "bar")
        #expect(env["LEAD"] == "x")
        #expect(env["EQ"] == "a=b = c  \t")
        #expect(!env.contains("UNSETME"))
        #expect(env.contains("EMPTY") && env["EMPTY"] == "")
        #expect(env["LAST"] == "no newline at the end")
        #expect(env["OTHER"] == "o")
        #expect(!env.contains("BLANKNAME"))  // trailing blanks are not part of a bare name
        #expect(!env.names.contains { $0.hasPrefix("#") || $0.isEmpty })
    }

    @Test(".envfile as a symlink to a file is read; as a directory it is ignored")
    func envFileKinds() throws {
        let dir = try TempDir(); defer { dir.remove() }
        let linked = dir.file("linked"), plain = dir.file("plain")
        try makeDirectory(linked)
        try makeDirectory(plain)
        try writeFile(dir.file("settings"), "FROMLINK=yes\n")
        try makeSymlink(dir.file("settings"), at: linked + "/.envfile")
        #expect(try load(linked)["FROMLINK"] == "yes")

        try makeDirectory(plain + "/.envfile")
        try writeFile(plain + "/.envfile/X", "not a variable of plain\n")
        try writeFile(plain + "/V", "v\n")
        let env = try load(plain)
        #expect(env.names == ["V"])
    }

    @Test(".envdir as a directory and as a symlink to one is loaded first")
    func envDirDirectory() throws {
        let dir = try TempDir(); defer { dir.remove() }
        let main = dir.file("main")
        try makeDirectory(main)
        try makeDirectory(main + "/.envdir")
        try writeFile(main + "/.envdir/X", "from envdir\n")
        try writeFile(main + "/.envdir/Y", "y\n")
        try writeFile(main + "/X", "own\n")
        var env = try load(main)
        #expect(env["X"] == "own")
        #expect(env["Y"] == "y")

        let shared = dir.file("shared"), linking = dir.file("linking")
        try makeDirectory(shared)
        try makeDirectory(linking)
        try writeFile(shared + "/S", "shared\n")
        try writeFile(shared + "/T", "shared\n")
        try makeSymlink(shared, at: linking + "/.envdir")
        try writeFile(linking + "/T", "own\n")
        env = try load(linking)
        #expect(env["S"] == "shared")
        #expect(env["T"] == "own")
    }

    @Test(".envdir as a file listing directories, later ones winning")
    func envDirFile() throws {
        let dir = try TempDir(); defer { dir.remove() }
        let a = dir.file("a"), b = dir.file("b"), main = dir.file("main")
        for d in [a, b, main] { try makeDirectory(d) }
        try writeFile(a + "/V", "a\n")
        try writeFile(a + "/W", "a\n")
        try writeFile(b + "/V", "b\n")
        try writeFile(b + "/U", "b\n")
        try writeFile(main + "/U", "main\n")
        try writeFile(main + "/.envdir", "\(a)\n\(b)")  // last line without newline still counts
        let env = try load(main)
        #expect(env["V"] == "b")
        #expect(env["W"] == "a")
        #expect(env["U"] == "main")

        // A symlink to such a file works the same.
        let viaLink = dir.file("vialink")
        try makeDirectory(viaLink)
        try makeSymlink(main + "/.envdir", at: viaLink + "/.envdir")
        let linked = try load(viaLink)
        #expect(linked["V"] == "b")
        #expect(linked["W"] == "a")
    }

    @Test("a directory's own files override .envdir, which overrides .envfile")
    func precedence() throws {
        let dir = try TempDir(); defer { dir.remove() }
        let main = dir.file("main")
        try makeDirectory(main)
        try makeDirectory(main + "/.envdir")
        try writeFile(main + "/.envfile", "P=envfile\nQ=envfile\nR=envfile\n")
        try writeFile(main + "/.envdir/Q", "envdir\n")
        try writeFile(main + "/.envdir/R", "envdir\n")
        try writeFile(main + "/R", "own\n")
        let env = try load(main)
        #expect(env["P"] == "envfile")
        #expect(env["Q"] == "envdir")
        #expect(env["R"] == "own")
    }

    @Test(".envdir cycles load each directory once and terminate")
    func cycles() throws {
        let dir = try TempDir(); defer { dir.remove() }
        let a = dir.file("a"), b = dir.file("b")
        try makeDirectory(a)
        try makeDirectory(b)
        try writeFile(a + "/A", "1\n")
        try writeFile(b + "/B", "2\n")
        try makeSymlink(b, at: a + "/.envdir")
        try makeSymlink(a, at: b + "/.envdir")

        var loader = EnvDirLoader()
        try loader.load(a).get()
        #expect(loader.changes == [.set(name: bytes("B"), value: bytes("2")), .set(name: bytes("A"), value: bytes("1"))])

        // A listing file that names its own directory (and twice) is harmless too.
        let c = dir.file("c")
        try makeDirectory(c)
        try writeFile(c + "/C", "3\n")
        try writeFile(c + "/.envdir", "\(c)\n\(c)\n\(a)\n")
        var second = EnvDirLoader()
        try second.load(c).get()
        #expect(second.changes.count == 3)
        let env = second.apply(to: Environment())
        #expect(env["A"] == "1" && env["B"] == "2" && env["C"] == "3")
    }

    @Test("an empty line in a .envdir listing is an error; an empty listing is not")
    func envDirListingErrors() throws {
        let dir = try TempDir(); defer { dir.remove() }
        let a = dir.file("a"), main = dir.file("main")
        try makeDirectory(a)
        try makeDirectory(main)
        try writeFile(a + "/A", "1\n")

        try writeFile(main + "/.envdir", "\(a)\n\n")
        let error = try #require(failure(EnvDirLoader.load(main, into: Environment())))
        #expect(error.name == main + "/.envdir")
        #expect(error.message.contains(".envdir"))

        // A listing that names a missing directory fails like a missing directory.
        try writeFile(main + "/.envdir", "\(dir.file("missing"))\n")
        let missing = try #require(failure(EnvDirLoader.load(main, into: Environment())))
        #expect(missing.message == "unable to open environment directory")
        #expect(missing.errno == ENOENT)

        // An empty file lists no directories (the reference returns at once on sa.len == 0).
        try writeFile(main + "/.envdir", "")
        try writeFile(main + "/M", "m\n")
        let env = try load(main)
        #expect(env.names == ["M"])
    }

    @Test("changes are queued in order and applied later")
    func queuedChanges() throws {
        let dir = try TempDir(); defer { dir.remove() }
        try writeFile(dir.file(".envfile"), "X=1\nY\n")
        try writeFile(dir.file("Z"), "")
        var loader = EnvDirLoader()
        #expect(loader.changes.isEmpty)
        try loader.load(dir.path).get()
        #expect(loader.changes == [.set(name: bytes("X"), value: bytes("1")), .unset(name: bytes("Y")), .unset(name: bytes("Z"))])
        let env = loader.apply(to: Environment([("Y", "y"), ("Z", "z"), ("K", "k")]))
        #expect(env.entries == [bytes("K=k"), bytes("X=1")])
    }
}
