// MailIdentity: qmail's defaulting chain, every host setting falling back to `me`.
import Core
import Foundation
import Mail
import Testing

@Suite("MailIdentity")
struct MailIdentityTests {
    /// A fresh control directory, removed by the caller.
    func controlDirectory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("mailtests.\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        return path
    }

    func write(_ dir: String, _ name: String, _ text: String) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: dir + "/" + name))
    }

    @Test("a missing or empty `me` is .missingMe naming the file")
    func missingMe() throws {
        let dir = try controlDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let control = ControlFiles(directory: dir)
        try write(dir, "defaultdomain", "example.org\n")
        #expect(MailIdentity.load(control) == .failure(.missingMe(dir + "/me")))
        try write(dir, "me", "")
        #expect(MailIdentity.load(control) == .failure(.missingMe(dir + "/me")))
        try write(dir, "me", "  \t\n")  // blank after trimming trailing white space
        #expect(MailIdentity.load(control) == .failure(.missingMe(dir + "/me")))
        #expect(MailConfigError.missingMe(dir + "/me").description
                == "unable to read controls: \(dir)/me is missing or empty")
    }

    @Test("every other setting defaults to `me`, locals to [me]")
    func defaultsToMe() throws {
        let dir = try controlDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try write(dir, "me", "mx.example.com  \nignored second line\n")
        let id = try MailIdentity.load(ControlFiles(directory: dir)).get()
        #expect(id.me == "mx.example.com")
        for value in [id.defaultDomain, id.defaultHost, id.idHost, id.plusDomain, id.envNoAtHost,
                      id.heloHost, id.smtpGreeting, id.localIPHost] {
            #expect(value == "mx.example.com")
        }
        #expect(id.locals == ["mx.example.com"])
    }

    @Test("explicit files override the default, each on its own")
    func explicitOverrides() throws {
        let dir = try controlDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let files = [
            "me": "mx.example.com", "defaultdomain": "example.com", "defaulthost": "host.example.com",
            "idhost": "id.example.com", "plusdomain": "plus.example.com", "envnoathost": "noat.example.com",
            "helohost": "helo.example.com", "smtpgreeting": "mx.example.com ESMTP ready",
            "localiphost": "ip.example.com",
        ]
        for (name, value) in files { try write(dir, name, value + "\r\n") }
        try write(dir, "locals", "localhost\n# comment\n\nexample.com\n")
        let id = try MailIdentity.load(ControlFiles(directory: dir)).get()
        #expect(id.me == "mx.example.com")
        #expect(id.defaultDomain == "example.com")
        #expect(id.defaultHost == "host.example.com")
        #expect(id.idHost == "id.example.com")
        #expect(id.plusDomain == "plus.example.com")
        #expect(id.envNoAtHost == "noat.example.com")
        #expect(id.heloHost == "helo.example.com")
        #expect(id.smtpGreeting == "mx.example.com ESMTP ready")
        #expect(id.localIPHost == "ip.example.com")
        #expect(id.locals == ["localhost", "example.com"])

        // Removing one file brings back just that default.
        try FileManager.default.removeItem(atPath: dir + "/helohost")
        let partial = try MailIdentity.load(ControlFiles(directory: dir)).get()
        #expect(partial.heloHost == "mx.example.com")
        #expect(partial.idHost == "id.example.com")
    }

    @Test("an empty locals file means no local domains, not [me]")
    func emptyLocals() throws {
        let dir = try controlDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try write(dir, "me", "mx.example.com\n")
        try write(dir, "locals", "")
        #expect(try MailIdentity.load(ControlFiles(directory: dir)).get().locals == [])
    }

    @Test("an unreadable control file is a .control error")
    func unreadable() throws {
        let dir = try controlDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try write(dir, "me", "mx.example.com\n")
        try FileManager.default.createDirectory(atPath: dir + "/idhost", withIntermediateDirectories: false)
        guard case .failure(.control(.unreadable(let e))) = MailIdentity.load(ControlFiles(directory: dir)) else {
            Issue.record("a directory named idhost was not reported"); return
        }
        #expect(e.errno == EISDIR)

        // The same for `me` itself: unreadable is not the same as missing.
        try FileManager.default.removeItem(atPath: dir + "/idhost")
        try FileManager.default.removeItem(atPath: dir + "/me")
        try FileManager.default.createDirectory(atPath: dir + "/me", withIntermediateDirectories: false)
        guard case .failure(.control(.unreadable(let me))) = MailIdentity.load(ControlFiles(directory: dir)) else {
            Issue.record("a directory named me was not reported"); return
        }
        #expect(me.errno == EISDIR)
    }
}
