// ControlFiles and ControlSet: qmail's control-file conventions on real directories.
import Core
import Glibc
import Testing

@Suite("ControlFiles")
struct ControlFilesTests {
    @Test("a missing file gives the default")
    func missingDefaults() throws {
        let dir = try TempDir(); defer { dir.remove() }
        let control = ControlFiles(directory: dir.path)
        #expect(control.path("me") == dir.file("me"))
        #expect(try control.value("me").get() == nil)
        #expect(try control.value("me", default: "fallback").get() == "fallback")
        #expect(try control.integer("timeoutsmtpd", default: 1200).get() == 1200)
        #expect(try control.list("locals").get() == nil)
        #expect(try control.contents("me").get() == nil)
    }

    @Test("value: first line only, trailing blanks and CR trimmed, leading kept")
    func firstLine() throws {
        let dir = try TempDir(); defer { dir.remove() }
        let control = ControlFiles(directory: dir.path)
        try writeFile(dir.file("me"), "mail.example.com \t\r\nsecond.example.com\n")
        #expect(try control.value("me", default: "x").get() == "mail.example.com")
        try writeFile(dir.file("greeting"), "  ESMTP ready")
        #expect(try control.value("greeting").get() == "  ESMTP ready")
        try writeFile(dir.file("empty"), "")
        #expect(try control.value("empty", default: "d").get() == "")  // present: not the default
        try writeFile(dir.file("blankfirst"), "\nsecond\n")
        #expect(try control.value("blankfirst").get() == "")
        try writeFile(dir.file("raw"), [0x61, 0x62, 0x00, 0x0a])
        #expect(try control.value("raw").get() == "ab")
        #expect(try control.contents("raw").get() == [0x61, 0x62, 0x00, 0x0a])
    }

    @Test("integers: digits only, invalid text is an error naming the file")
    func integers() throws {
        let dir = try TempDir(); defer { dir.remove() }
        let control = ControlFiles(directory: dir.path)
        try writeFile(dir.file("n"), "42 \r\nignored\n")
        #expect(try control.integer("n", default: 7).get() == 42)
        try writeFile(dir.file("n"), "0")
        #expect(try control.integer("n", default: 7).get() == 0)
        try writeFile(dir.file("n"), "007\n")
        #expect(try control.integer("n", default: 7).get() == 7)

        for bad in ["", "-1", "+5", " 5", "12abc", "0x10", "99999999999999999999999", "1 2"] {
            try writeFile(dir.file("n"), bad + "\n")
            let error = failure(control.integer("n", default: 7))
            #expect(error == .invalid(path: dir.file("n"), reason: "not a number: \(bad)"), "input \(bad)")
        }
        try writeFile(dir.file("n"), "abc\n")
        #expect(failure(control.integer("n", default: 7))?.description == "unable to parse \(dir.file("n")): not a number: abc")
    }

    @Test("lists skip blank lines and # comments and trim trailing blanks")
    func lists() throws {
        let dir = try TempDir(); defer { dir.remove() }
        let control = ControlFiles(directory: dir.path)
        try writeFile(dir.file("rcpthosts"), "example.com\n\n# a comment\nexample.org  \r\n \t\n#another\nlast.example")
        #expect(try control.list("rcpthosts").get() == ["example.com", "example.org", "last.example"])
        try writeFile(dir.file("emptylist"), "")
        #expect(try control.list("emptylist").get() == [])
        try writeFile(dir.file("comments"), "# only\n#comments\n\n")
        #expect(try control.list("comments").get() == [])
    }

    @Test("a file that cannot be read is an error, not the default")
    func unreadable() throws {
        let dir = try TempDir(); defer { dir.remove() }
        let control = ControlFiles(directory: dir.path)
        try makeDirectory(dir.file("me"))
        guard case .unreadable(let e)? = failure(control.value("me", default: "d")) else {
            Issue.record("a directory in place of a control file was not an error"); return
        }
        #expect(e.errno == EISDIR)
        guard case .unreadable? = failure(control.list("me")) else { Issue.record("list"); return }
        guard case .unreadable? = failure(control.integer("me", default: 1)) else { Issue.record("integer"); return }
        // A missing control directory is only missing files.
        let absent = ControlFiles(directory: dir.file("no-such-dir"))
        #expect(try absent.value("me", default: "d").get() == "d")
    }

    @Test("ControlFiles(paths:) uses CONTROLDIR")
    func fromSuitePaths() {
        let paths = SuitePaths(environment: Environment([("SYSCONFDIR", "/srv/etc"), ("CONTROLDIR", "ctl")]))
        #expect(ControlFiles(paths: paths).directory == "/srv/etc/ctl")
    }
}

@Suite("ControlSet")
struct ControlSetTests {
    @Test("from a text list, lowercased by default")
    func fromText() throws {
        let dir = try TempDir(); defer { dir.remove() }
        let control = ControlFiles(directory: dir.path)
        try writeFile(dir.file("rcpthosts"), "Example.COM\n# comment\n\nfoo.org\n")
        let set = try ControlSet.load("rcpthosts", in: control).get()
        #expect(!set.isEmpty)
        #expect(try set.contains("example.com").get())
        #expect(try set.contains("foo.org").get())
        #expect(try !set.contains("Example.COM").get())
        #expect(try !set.contains("# comment").get())
        #expect(try !set.contains("").get())

        let exact = try ControlSet.load("rcpthosts", in: control, lowercased: false).get()
        #expect(try exact.contains("Example.COM").get())
        #expect(try !exact.contains("example.com").get())
    }

    @Test("missing everywhere is empty; an empty list is empty")
    func empty() throws {
        let dir = try TempDir(); defer { dir.remove() }
        let control = ControlFiles(directory: dir.path)
        let missing = try ControlSet.load("badmailfrom", in: control).get()
        #expect(missing.isEmpty)
        #expect(try !missing.contains("anything").get())
        try writeFile(dir.file("badmailfrom"), "# nothing\n")
        #expect(try ControlSet.load("badmailfrom", in: control).get().isEmpty)
    }

    @Test("<name>.cdb takes precedence over the text file")
    func cdbFirst() throws {
        let dir = try TempDir(); defer { dir.remove() }
        let control = ControlFiles(directory: dir.path)
        try writeFile(dir.file("rcpthosts"), "text.example\n")
        try buildCDB(dir.file("rcpthosts.cdb"), [(bytes("cdb.example"), []), (bytes("Mixed.Case"), bytes("1"))])
        let set = try ControlSet.load("rcpthosts", in: control).get()
        #expect(!set.isEmpty)
        #expect(try set.contains("cdb.example").get())
        #expect(try set.contains("Mixed.Case").get())  // keys are looked up as given
        #expect(try !set.contains("text.example").get())

        // An empty cdb is still the source: the text file is not consulted.
        try buildCDB(dir.file("rcpthosts.cdb"), [])
        let emptyCDB = try ControlSet.load("rcpthosts", in: control).get()
        #expect(try !emptyCDB.contains("text.example").get())
    }

    @Test("a corrupt .cdb is an error, at load or at lookup")
    func corruptCDB() throws {
        let dir = try TempDir(); defer { dir.remove() }
        let control = ControlFiles(directory: dir.path)
        try writeFile(dir.file("rcpthosts"), "text.example\n")
        try writeFile(dir.file("rcpthosts.cdb"), "far too short to be a cdb")
        guard case .cdb(let path, .corrupt)? = failure(ControlSet.load("rcpthosts", in: control)) else {
            Issue.record("a short .cdb was accepted"); return
        }
        #expect(path == dir.file("rcpthosts.cdb"))

        // Long enough, but every table points outside the file.
        try writeFile(dir.file("rcpthosts.cdb"), [UInt8](repeating: 0xff, count: 4096))
        let set = try ControlSet.load("rcpthosts", in: control).get()
        guard case .cdb(_, .corrupt)? = failure(set.contains("text.example")) else {
            Issue.record("lookup in a corrupt cdb did not fail"); return
        }
    }
}
