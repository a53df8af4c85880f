// The pure parts of the small ucspi-tcp tools: CR insertion across chunks, recordio's log
// lines, and mconnect's address, hosts-file and port rules.
import Core
import Testing
@testable import UCSPI

@Suite struct CRInsertionTests {
    @Test func bareLFOnlyGetsACR() {
        var fix = CRInsertion(.bareLF)
        #expect(fix.apply(Array("a\nb\r\nc\r\r\n\n".utf8)) == Array("a\r\nb\r\nc\r\r\n\r\n".utf8))
    }

    @Test func crAtTheEndOfOneChunkCoversTheLFOfTheNext() {
        var fix = CRInsertion(.bareLF)
        #expect(fix.apply(Array("x\r".utf8)) == Array("x\r".utf8))
        #expect(fix.apply(Array("\ny".utf8)) == Array("\ny".utf8))
        #expect(fix.apply(Array("\n".utf8)) == Array("\r\n".utf8))
        // A CR followed by something else does not cover a later LF.
        #expect(fix.apply(Array("\rz\n".utf8)) == Array("\rz\r\n".utf8))
    }

    @Test func everyLFGetsACRInMconnectMode() {
        var add = CRInsertion(.everyLF)
        #expect(add.apply(Array("a\nb\r\n".utf8)) == Array("a\r\nb\r\r\n".utf8))
        #expect(add.apply([]) == [])
        #expect(add.apply([0, 10, 0]) == [0, 13, 10, 0])
    }
}

@Suite struct RecordLogTests {
    let log = RecordLog(pid: 42)

    func text(_ lines: [[UInt8]]) -> [String] { lines.map { String(decoding: $0, as: UTF8.self) } }

    @Test func completeAndPartialLines() {
        #expect(text(log.lines(Array("one\ntwo\n".utf8), direction: .input)) == ["42 < one \n", "42 < two \n"])
        #expect(text(log.lines(Array("one\ntw".utf8), direction: .output)) == ["42 > one \n", "42 > tw+\n"])
        #expect(text(log.lines(Array("\n\n".utf8), direction: .input)) == ["42 <  \n", "42 <  \n"])
        #expect(text(log.lines([], direction: .input)) == [])
    }

    @Test func endOfFileMarkers() {
        #expect(String(decoding: log.endOfFile(.input), as: UTF8.self) == "42 < [EOF]\n")
        #expect(String(decoding: log.endOfFile(.output), as: UTF8.self) == "42 > [EOF]\n")
    }

    @Test func bytesPassUnchanged() {
        let lines = log.lines([0, 13, 255, 10, 7], direction: .input)
        #expect(lines == [Array("42 < ".utf8) + [0, 13, 255, 32, 10], Array("42 < ".utf8) + [7, 43, 10]])
    }
}

@Suite struct MconnectTargetTests {
    static let hosts = Array("""
        # comment line
        127.0.0.1\tlocalhost
        ::1     localhost ip6-localhost   # trailing comment
        192.0.2.7 mail.example.com mail
        192.0.2.7 MAIL.example.com.
        garbage-without-names
        not-an-address broken.example
        """.utf8)
    static let services = Array("""
        smtp\t\t25/tcp\t\tmail
        submission\t587/tcp
        domain 53/udp
        # nope 1/tcp
        """.utf8)

    @Test func hostsFileLookups() {
        #expect(HostsFile.addresses(for: "localhost", in: Self.hosts) == ["127.0.0.1", "::1"])
        #expect(HostsFile.addresses(for: "Mail.Example.COM.", in: Self.hosts) == ["192.0.2.7", "192.0.2.7"])
        #expect(HostsFile.addresses(for: "nowhere", in: Self.hosts) == [])
        #expect(HostsFile.addresses(for: "", in: Self.hosts) == [])
        #expect(HostsFile.addresses(for: "x", in: [0xff, 0xfe, 10, 0]) == [])
    }

    static func noDNS(_ name: String) -> Result<[IPAddress], DNSError> { .failure(.temporary("no DNS in this test")) }

    func resolve(_ host: String, hosts: [UInt8] = [],
                 dns: (String) -> Result<[IPAddress], DNSError> = noDNS) -> Result<[String], DNSError> {
        MconnectTarget.resolve(host, hosts: { hosts }, dns: dns).map { $0.map(\.description) }
    }

    @Test func addressRules() {
        #expect(resolve("0") == .success(["127.0.0.1", "::1"]))
        #expect(resolve("") == .success(["127.0.0.1", "::1"]))
        #expect(resolve("10.1.2.3") == .success(["10.1.2.3"]))
        #expect(resolve("2001:DB8::1") == .success(["2001:db8::1"]))
        // The hosts file first; duplicates collapse; unparsable entries are skipped.
        #expect(resolve("mail", hosts: Self.hosts) == .success(["192.0.2.7"]))
        #expect(resolve("localhost", hosts: Self.hosts) == .success(["127.0.0.1", "::1"]))
        // Then the DNS, with its failures passed on.
        let dns = { (name: String) -> Result<[IPAddress], DNSError> in
            name == "mx.example.net" ? .success([IPAddress("2001:db8::25")!, IPAddress("192.0.2.25")!]) : .failure(.nameNotFound)
        }
        #expect(resolve("mx.example.net", hosts: Self.hosts, dns: dns) == .success(["2001:db8::25", "192.0.2.25"]))
        #expect(resolve("broken.example", hosts: Self.hosts, dns: dns) == .failure(.nameNotFound))
        #expect(resolve("elsewhere") == .failure(.temporary("no DNS in this test")))
        #expect(resolve("name%eth0", dns: dns) == .failure(.nameNotFound))
    }

    @Test func literalsParse() {
        #expect(MconnectTarget.literal("::ffff:1.2.3.4")?.description == "::ffff:1.2.3.4")
        #expect(MconnectTarget.literal("fe80::1%1")?.description == "fe80::1%1")
        #expect(MconnectTarget.literal("fe80::1%lo")?.scope == 1)
        #expect(MconnectTarget.literal("fe80::1%no-such-interface-name") == nil)
        #expect(MconnectTarget.literal("fe80::1%") == nil)
        #expect(MconnectTarget.literal("1.2.3.4%1") == nil)
        #expect(MconnectTarget.literal("256.1.1.1") == nil)
        #expect(MconnectTarget.literal("1.2.3") == nil)
        #expect(MconnectTarget.literal("") == nil)
    }

    @Test func portRules() {
        #expect(MconnectTarget.port("25", services: { [] }) == 25)
        #expect(MconnectTarget.port("0", services: { [] }) == 0)
        #expect(MconnectTarget.port("65535", services: { [] }) == 65535)
        #expect(MconnectTarget.port("65536", services: { [] }) == nil)
        #expect(MconnectTarget.port("000025", services: { [] }) == nil)
        #expect(MconnectTarget.port("", services: { Self.services }) == nil)
        #expect(MconnectTarget.port("smtp", services: { Self.services }) == 25)
        #expect(MconnectTarget.port("mail", services: { Self.services }) == 25)
        #expect(MconnectTarget.port("submission", services: { Self.services }) == 587)
        #expect(MconnectTarget.port("domain", services: { Self.services }) == nil)
        #expect(MconnectTarget.port("nope", services: { Self.services }) == nil)
    }
}
