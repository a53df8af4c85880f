// The lookup order of spec §4.1 on real cdbs: the rts.tests vectors, CIDR, IPv6, hosts, info.
import Testing
import UCSPI

@Suite struct RuleLookupTests {
    @Test func rtsBasicVectors() throws {
        let r = try rules("""
            joe@127.0.0.1:allow,which=/first/
            18.23.0.32:allow,which="second"
            127.:allow,which=+third+
            :allow,which==fourth=
            """)
        let m = try #require(try r.lookup(ip: "127.0.0.1", host: nil, info: "joe").get())
        #expect(m == RuleMatch(action: .allow, environment: [RuleEnvironmentChange(set: "which", to: "first")],
                               key: bytes("joe@127.0.0.1")))
        #expect(try decidingKey(r, ip: "18.23.0.32", info: "joe") == "18.23.0.32")
        #expect(try decidingKey(r, ip: "127.0.0.1", info: "bill") == "127.")
        #expect(try decidingKey(r, ip: "10.119.75.39", info: "bill") == "")
    }

    @Test func rangesAndDeny() throws {
        let r = try rules("127.0-5.:allow,which=/first/,where=/whatever/\n# comment\n1.2.3.4:deny")
        for n in 0...10 {
            #expect(try decidingKey(r, ip: "127.\(n).0.1") == (n <= 5 ? "127.\(n)." : nil))
        }
        #expect(try r.lookup(ip: "1.2.3.4", host: nil, info: nil).get()?.action == .deny)
        #expect(try r.lookup(ip: "1.2.3.5", host: nil, info: nil).get() == nil)
    }

    @Test func hostSuffixesNeedTheLeadingDot() throws {
        let r = try rules("=known.edu:allow,which=/known/\n=.abuser.edu:deny\n:allow,which=/anybody/")
        #expect(try decidingKey(r, ip: "1.2.3.4", host: "known.edu") == "=known.edu")
        #expect(try decidingKey(r, ip: "1.2.3.4", host: "random.edu") == "")
        #expect(try decidingKey(r, ip: "1.2.3.4", host: "abuser.edu") == "")
        #expect(try decidingKey(r, ip: "1.2.3.4", host: "x.abuser.edu") == "=.abuser.edu")
        #expect(try decidingKey(r, ip: "1.2.3.4", host: "x.y.abuser.edu") == "=.abuser.edu")
    }

    /// rts.tests' eleven-rule order test, with the answers djb's tcprulescheck gives.
    @Test(arguments: [
        ("86.75.30.9", "one.two.three", "xyz", "first"),
        ("86.75.30.9", nil, "xyz", "first"),
        ("86.75.30.10", "one.two.three", "xyz", "second"),
        ("86.75.30.9", "one.two.three", "abc", "third"),
        ("86.75.30.9", nil, "abc", "third"),
        ("86.75.30.9", "one.two.three", nil, "third"),
        ("86.75.30.9", nil, nil, "third"),
        ("86.75.30.10", "one.two.three", "abc", "fourth"),
        ("86.75.30.10", "one.two.three", nil, "fourth"),
        ("86.75.30.10", "four.two.three", nil, "fifth"),
        ("86.75.30.10", nil, nil, "fifth"),
        ("86.75.20.10", "four.two.three", "abc", "sixth"),
        ("86.75.20.10", nil, "abc", "sixth"),
        ("86.75.20.10", "four.two.three", nil, "sixth"),
        ("86.75.20.10", nil, nil, "sixth"),
        ("86.85.20.10", "four.two.three", "abc", "seventh"),
        ("86.85.20.10", nil, "abc", "seventh"),
        ("86.85.20.10", "four.two.three", nil, "seventh"),
        ("86.85.20.10", nil, nil, "seventh"),
        ("96.85.20.10", "four.two.three", "abc", "eighth"),
        ("96.85.20.10", "four.three", nil, "ninth"),
        ("96.85.20.10", "three", nil, "tenth"),
        ("96.85.20.10", "", nil, "tenth"),
        ("96.85.20.10", nil, "abc", "eleventh"),
    ] as [(String, String?, String?, String)])
    func rtsOrder(_ ip: String, _ host: String?, _ info: String?, _ which: String) throws {
        let r = try Self.orderRules()
        let m = try #require(try r.lookup(ip: ip, host: host, info: info).get())
        #expect(m.environment == [RuleEnvironmentChange(set: "which", to: which)])
    }

    static func orderRules() throws -> TCPRules {
        try rules("""
            xyz@86.75.30.9:allow,which=/first/
            xyz@=one.two.three:allow,which=/second/
            86.75.30.9:allow,which=/third/
            =one.two.three:allow,which=/fourth/
            86.75.30.:allow,which=/fifth/
            86.75.:allow,which=/sixth/
            86.:allow,which=/seventh/
            =.two.three:allow,which=/eighth/
            =.three:allow,which=/ninth/
            =:allow,which=/tenth/
            :allow,which=/eleventh/
            """)
    }

    @Test func candidateOrderIPv4() {
        let keys = RuleCandidates.keys(ip: bytes("1.2.3.4"), host: bytes("a.b.c"), info: bytes("joe")).map(text)
        let bits = text(IPAddressText.ipv4Bits([1, 2, 3, 4]))
        let cidr = stride(from: 32, through: 2, by: -1).map { "_" + bits.prefix($0) }
        #expect(keys == ["joe@1.2.3.4", "joe@=a.b.c", "1.2.3.4", "=a.b.c", "1.2.3.", "1.2.", "1."] + cidr
                + ["=.b.c", "=.c", "=", ""])
        #expect(RuleCandidates.keys(ip: bytes("1.2.3.4"), host: nil, info: nil).map(text)
                == ["1.2.3.4", "1.2.3.", "1.2.", "1."] + cidr + [""])
    }

    @Test func candidateOrderIPv6() {
        let ip = bytes("2001:db8::1"), expanded = "2001:0db8:0000:0000:0000:0000:0000:0001"
        let keys = RuleCandidates.keys(ip: ip, host: bytes("h.x"), info: bytes("joe")).map(text)
        let bits = text(IPAddressText.ipv6Bits(IPAddressText.parseIPv6(ip)!))
        let cidr = stride(from: 128, through: 2, by: -1).map { "^" + bits.prefix($0) }
        #expect(keys == ["joe@" + expanded, "joe@2001:db8::1", "joe@=h.x", expanded, "2001:db8::1", "=h.x"]
                + cidr + ["=.x", "=", ""])
        // No colon prefixes in IPv6 mode; an unparsable ip is still tried verbatim.
        #expect(RuleCandidates.keys(ip: bytes("zz:1"), host: nil, info: nil).map(text) == ["zz:1", ""])
        // An IPv4 ip that is not a dotted quad gets prefixes but no CIDR keys.
        #expect(RuleCandidates.keys(ip: bytes("10.1"), host: nil, info: nil).map(text) == ["10.1", "10.", ""])
    }

    @Test func cidrLongestPrefixWins() throws {
        let r = try rules("""
            10.0.0.0/8:deny
            10.1.0.0/16:allow,NET=/16/
            10.1.2.128/25:deny
            10.1.2.3/32:allow,NET=/32/
            """)
        #expect(try r.lookup(ip: "10.9.9.9", host: nil, info: nil).get()?.action == .deny)
        #expect(try r.lookup(ip: "10.1.9.9", host: nil, info: nil).get()?.environment == [RuleEnvironmentChange(set: "NET", to: "16")])
        #expect(try r.lookup(ip: "10.1.2.200", host: nil, info: nil).get()?.action == .deny)
        #expect(try r.lookup(ip: "10.1.2.127", host: nil, info: nil).get()?.action == .allow)
        #expect(try r.lookup(ip: "10.1.2.3", host: nil, info: nil).get()?.environment == [RuleEnvironmentChange(set: "NET", to: "32")])
        #expect(try r.lookup(ip: "11.0.0.1", host: nil, info: nil).get() == nil)
    }

    @Test func cidrAfterExactHostAndClassPrefixBeforeHostSuffixes() throws {
        let r = try rules("""
            10.0.0.0/8:deny
            10.1.:allow,W=/class/
            =exact.host:allow,W=/host/
            =.example:allow,W=/suffix/
            """)
        #expect(try decidingKey(r, ip: "10.1.2.3") == "10.1.")
        #expect(try decidingKey(r, ip: "10.2.2.3", host: "exact.host") == "=exact.host")
        #expect(try decidingKey(r, ip: "10.2.2.3", host: "a.example") == "_0000e0g0")
        #expect(try decidingKey(r, ip: "11.2.2.3", host: "a.example") == "=.example")
    }

    @Test func cidrSlashOneAndZero() throws {
        let r = try rules("128.0.0.0/1:deny\n0.0.0.0/0:allow,ALL=/yes/\n::/0:allow,ALL=/six/")
        #expect(try r.lookup(ip: "200.1.1.1", host: nil, info: nil).get()?.action == .deny)
        #expect(try r.lookup(ip: "128.0.0.0", host: nil, info: nil).get()?.action == .deny)
        #expect(try r.lookup(ip: "127.255.255.255", host: nil, info: nil).get()?.environment == [RuleEnvironmentChange(set: "ALL", to: "yes")])
        #expect(try r.lookup(ip: "::1", host: nil, info: nil).get()?.environment == [RuleEnvironmentChange(set: "ALL", to: "six")])
        #expect(try r.lookup(ip: "ffff::1", host: nil, info: nil).get()?.environment == [RuleEnvironmentChange(set: "ALL", to: "six")])
    }

    @Test func ipv6Rules() throws {
        let r = try rules("""
            2001:db8::1:deny
            2001:DB8::2:allow,W=/upper/
            2001:0db8:0000:0000:0000:0000:0000:0003:allow,W=/expanded/
            2001:db8::/48:allow,W=/48/
            2001:db8::/32:deny
            fe80::/10:allow,W=/linklocal/
            """)
        #expect(try r.lookup(ip: "2001:db8::1", host: nil, info: nil).get()?.action == .deny)
        #expect(try decidingKey(r, ip: "2001:db8::2") == "2001:0db8:0000:0000:0000:0000:0000:0002")
        #expect(try decidingKey(r, ip: "2001:db8::3") == "2001:0db8:0000:0000:0000:0000:0000:0003")
        #expect(try r.lookup(ip: "2001:db8:0:1::5", host: nil, info: nil).get()?.environment == [RuleEnvironmentChange(set: "W", to: "48")])
        #expect(try r.lookup(ip: "2001:db8:1::5", host: nil, info: nil).get()?.action == .deny)
        // The reference bug (§4.3) hid IPv6 CIDR rules whenever the host was known.
        #expect(try r.lookup(ip: "fe80::1", host: "h.example", info: nil).get()?.environment == [RuleEnvironmentChange(set: "W", to: "linklocal")])
        #expect(try r.lookup(ip: "2002::1", host: nil, info: nil).get() == nil)
        // IPv4 clients never see IPv6 rules (tcpserver gives them as dotted quads).
        #expect(try r.lookup(ip: "1.2.3.4", host: nil, info: nil).get() == nil)
    }

    @Test func infoWithIPv6() throws {
        let r = try rules("joe@::1:allow,W=/compact/\nann@0000:0000:0000:0000:0000:0000:0000:0001:allow,W=/expanded/\n:deny")
        #expect(try decidingKey(r, ip: "::1", info: "joe") == "joe@::1")
        #expect(try decidingKey(r, ip: "::1", info: "ann") == "ann@0000:0000:0000:0000:0000:0000:0000:0001")
        #expect(try decidingKey(r, ip: "::1", info: "bob") == "")
    }

    @Test func duplicateKeysFirstWins() throws {
        let r = try rules("1.2.3.4:allow,N=/1/\n1.2.3.4:deny")
        #expect(try r.lookup(ip: "1.2.3.4", host: nil, info: nil).get()?.action == .allow)
    }

    @Test func unsetAndDenyReachTheMatch() throws {
        let r = try rules("127.:deny,!GREYIP,A=/b/")
        let m = try #require(try r.lookup(ip: "127.0.0.1", host: nil, info: nil).get())
        #expect(m.action == .deny)
        #expect(m.environment == [RuleEnvironmentChange(unset: "GREYIP"), RuleEnvironmentChange(set: "A", to: "b")])
        #expect(m.key == bytes("127."))
    }

    @Test func openReportsMissingFile() {
        guard case .failure(.system(let e)) = TCPRules.open("/nonexistent/rules.cdb") else {
            Issue.record("expected a system error"); return
        }
        #expect(e.errno == 2)
    }
}
