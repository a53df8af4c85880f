// The Core stub resolver against a real name server (a private dnsmasq on loopback).
import Core
import Testing

@Suite("DNS resolver against dnsmasq")
struct DNSResolverDnsmasqTests {
    static let big = String(repeating: "x", count: 200)

    static func start() throws -> Dnsmasq {
        try #require(Dnsmasq(zones: ["test", "in-addr.arpa"], records: [
            "--host-record=host.test,192.0.2.7,2001:db8::7",
            "--cname=alias.test,host.test",
            "--mx-host=mail.test,mx1.test,20",
            "--mx-host=mail.test,mx2.test,5",
            "--txt-record=txt.test,one,two",
        ] + (0..<8).map { "--txt-record=big.test,\($0)\(big)" }),
        "dnsmasq did not start (apt-get install dnsmasq-base)")
    }

    @Test func lookupsByType() throws {
        let dns = try Self.start()
        for address in dns.addresses {
            let resolver = DNSResolver(servers: [dns.server(address)], timeout: 5)
            #expect(try resolver.addresses(for: "host.test").get().map(\.description) == ["2001:db8::7", "192.0.2.7"])
            #expect(try resolver.addresses(for: "Alias.Test").get().map(\.description) == ["2001:db8::7", "192.0.2.7"])
            let viaAlias = try resolver.query("alias.test", .a).get()
            #expect(viaAlias.map(\.name.description) == ["host.test"])
            #expect(try resolver.mx(for: "mail.test").get().map { "\($0.preference) \($0.exchange)" } == ["5 mx2.test", "20 mx1.test"])
            #expect(try resolver.txt(for: "txt.test").get() == [Array("onetwo".utf8)])
            #expect(try resolver.ptr(for: IPAddress("192.0.2.7")!).get().map(\.description) == ["host.test"])
            #expect(resolver.query("nothere.test", .a) == .failure(.nameNotFound))
            #expect(resolver.query("host.test", .mx) == .failure(.noData))
            // Outside every zone dnsmasq knows, with no upstream: REFUSED.
            if case .failure(.permanent) = resolver.query("example.invalid", .a) {} else { Issue.record("REFUSED not permanent") }
        }
    }

    @Test func largeAnswerComesOverTCP() throws {
        let dns = try Self.start()
        let resolver = DNSResolver(servers: [dns.server()], timeout: 5)
        let records = try resolver.txt(for: "big.test").get()
        #expect(records.count == 8)
        #expect(records.allSatisfy { $0.count == 201 })
    }

    @Test func environmentSelectsTheServer() throws {
        let dns = try Self.start()
        for env in [[("DNSCACHEIP", dns.dnscacheip())],
                    [("DNSCACHEIP", dns.dnscacheip("::1"))],
                    [("DNSCACHEIP", "127.0.0.1"), ("DNSPORT", "\(dns.port)")],
                    [("DNSCACHEIP", "127.0.0.1:\(closedUDPPort()) \(dns.dnscacheip())")]] {
            let resolver = DNSResolver(environment: Environment(env))
            #expect(try resolver.addresses(for: "host.test").get().count == 2, "\(env)")
        }
    }
}
