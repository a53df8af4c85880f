// Accounts (NSS lookups) and DynamicLibrary (dlopen on first use).
import Core
import Glibc
import Testing

@Suite("Accounts")
struct AccountsTests {
    @Test("root is uid 0, gid 0, both ways")
    func root() throws {
        let root = try Accounts.user("root").get()
        #expect(root.uid == 0)
        #expect(root.gid == 0)
        #expect(root.home.hasPrefix("/"))
        #expect(Accounts.user(uid: 0) == root)
        #expect(try Accounts.group("root").get() == 0)
    }

    @Test("unknown names are reported as such")
    func unknown() {
        #expect(failure(Accounts.user("no-such-user-xyzzy")) == .noSuchUser("no-such-user-xyzzy"))
        #expect(failure(Accounts.group("no-such-group-xyzzy")) == .noSuchGroup("no-such-group-xyzzy"))
        #expect(Accounts.user(uid: 4_000_000_000) == nil)
        #expect(AccountError.noSuchUser("qmaild").description == "unknown account qmaild")
        #expect(AccountError.noSuchGroup("nofiles").description == "unknown group nofiles")
    }
}

@Suite("DynamicLibrary")
struct DynamicLibraryTests {
    @Test("the first loadable name is used and its symbols can be called")
    func loadAndCall() throws {
        let lib = try DynamicLibrary.open(["libdoes-not-exist.so.9", "libc.so.6"]).get()
        #expect(lib.name == "libc.so.6")
        let raw = try lib.symbol("strlen").get()
        typealias Strlen = @convention(c) (UnsafePointer<CChar>) -> Int
        let strlenC = unsafeBitCast(raw, to: Strlen.self)
        #expect("indimail".withCString { strlenC($0) } == 8)
    }

    @Test("missing libraries and symbols are errors naming them")
    func failures() throws {
        let error = try #require(failure(DynamicLibrary.open(["libnope-a.so", "libnope-b.so"])))
        #expect(error.message.hasPrefix("unable to load libnope-a.so or libnope-b.so: "))
        let lib = try DynamicLibrary.open(["libc.so.6"]).get()
        #expect(failure(lib.symbol("no_such_symbol_xyzzy"))?.message == "libc.so.6: missing symbol no_such_symbol_xyzzy")
    }
}
