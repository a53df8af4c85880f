// The tcprules line parser: every form of spec §3.2, the keys each expands to, every error.
import Testing
import UCSPI

@Suite struct RuleSyntaxTests {
    func parse(_ line: String) -> Result<RuleDefinition?, RuleSyntaxError> { RuleSyntax.parse(bytes(line)) }

    func rule(_ line: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> RuleDefinition {
        try #require(try parse(line).get(), sourceLocation: sourceLocation)
    }

    func keys(_ line: String) throws -> [String] { try rule(line).keys.map(text) }

    func error(_ line: String) -> RuleSyntaxError? {
        if case .failure(let e) = parse(line) { return e }
        return nil
    }

    @Test func commentsAndBlankLinesAreSkipped() throws {
        for line in ["#", "# comment: allow", "#1.2.3.4:deny", "", "\n", "   ", " \t \n"] {
            #expect(try parse(line).get() == nil, "\(line)")
        }
    }

    @Test func allowAndDeny() throws {
        let a = try rule("1.2.3.4:allow\n")
        #expect(a.action == .allow && a.environment.isEmpty && a.keys == [bytes("1.2.3.4")])
        #expect(a.value == [])
        let d = try rule("1.2.3.4:deny")
        #expect(d.action == .deny && d.value == bytes("D\0"))
        let empty = try rule(":allow")
        #expect(empty.address == [] && empty.keys == [[]])
    }

    @Test func trailingBlanksAreTrimmedLeadingOnesKept() throws {
        #expect(try keys(" 1.2.3.4 :allow \t \n") == [" 1.2.3.4 "])
        #expect(try rule("1.2.3.4:deny,A=/x/  \t").environment == [RuleEnvironmentChange(set: "A", to: "x")])
    }

    @Test func anyDelimiterQuotesAValue() throws {
        for (line, value) in [(":allow,X=\"a b\"", "a b"), (":allow,X=/a,b/", "a,b"), (":allow,X=+t+", "t"),
                              (":allow,X==e=", "e"), (":allow,X=''", ""), (":allow,X=xyx", "y"),
                              (":allow,X=,B,", "B")] {
            #expect(try rule(line).environment == [RuleEnvironmentChange(set: "X", to: value)], "\(line)")
        }
    }

    @Test func severalInstructionsInOrder() throws {
        let r = try rule("10.0.:deny,RELAYCLIENT=\"\",!GREY,TCPLOCALHOST=/movie.edu/,!B")
        #expect(r.action == .deny)
        #expect(r.environment == [RuleEnvironmentChange(set: "RELAYCLIENT", to: ""), RuleEnvironmentChange(unset: "GREY"),
                                  RuleEnvironmentChange(set: "TCPLOCALHOST", to: "movie.edu"), RuleEnvironmentChange(unset: "B")])
        #expect(r.value == bytes("D\0+RELAYCLIENT=\0-GREY\0+TCPLOCALHOST=movie.edu\0-B\0"))
    }

    @Test func oddButAcceptedNames() throws {
        // What the reference accepts, byte for byte: an empty name, `!` inside a set.
        #expect(try rule(":allow,=/x/").value == bytes("+=x\0"))
        #expect(try rule(":allow,!A=/x/").value == bytes("+!A=x\0"))
        #expect(try rule(":allow,!A!B").value == bytes("-A!B\0"))
    }

    @Test func unsetWithTrailingEqualsAsTheReferenceManPageWritesIt() throws {
        #expect(try rule("10.0.:allow,!RELAYCLIENT=").environment == [RuleEnvironmentChange(unset: "RELAYCLIENT")])
        #expect(error("10.0.:allow,!=") == .missingValue)
    }

    @Test func separatorIsTheFirstColonBeforeAllowOrDeny() throws {
        #expect(try keys("x:y:allow") == ["x:y"])
        #expect(try keys("2001:db8::1:deny") == ["2001:db8::1"])
        #expect(try keys("::1:allow,A=/x/") == ["::1"])
        #expect(error("a:deny:allow") == .unexpectedText)
        #expect(error("a:allowed:deny") == .unexpectedText)  // `allow` is a prefix match, as in the reference
    }

    @Test func ranges() throws {
        #expect(try keys("1.2.3.37-53:allow") == (37...53).map { "1.2.3.\($0)" })
        #expect(try keys("10.2-3.:allow") == ["10.2.", "10.3."])
        #expect(try keys("1.2-3.4.5:allow") == ["1.2.4.5", "1.3.4.5"])
        #expect(try keys("1.2.3.250-300:allow") == (250...255).map { "1.2.3.\($0)" })
        #expect(try keys("1.2.3.-1:allow") == ["1.2.3.0", "1.2.3.1"])       // empty is 0
        #expect(try keys("1.2.3.007-8:allow") == ["1.2.3.7", "1.2.3.8"])
        #expect(try keys("5-3:allow") == [])
        #expect(try keys("-:allow") == ["0"])
        #expect(try keys("1.2.3.99999999999999999999-1:allow") == [])      // wraps, as C does
        #expect(error("1.2.a-1:allow") == .badRange)
        #expect(error("ab-c:allow") == .badRange)
        #expect(error("1.2.3.4-5 :allow") == .badRange)
    }

    @Test func hostsAndInfoAreVerbatim() throws {
        #expect(try keys("=known.edu:allow") == ["=known.edu"])
        #expect(try keys("=.abuser.edu:deny") == ["=.abuser.edu"])
        #expect(try keys("=:deny") == ["="])
        #expect(try keys("=a-b.example:deny") == ["=a-b.example"])       // no range with =
        #expect(try keys("joe@127.0.0.1:allow") == ["joe@127.0.0.1"])
        #expect(try keys("a-b@1.2.3.4-5:allow") == ["a-b@1.2.3.4-5"])   // no range with @
        #expect(try keys("joe@=host.example:allow") == ["joe@=host.example"])
        #expect(try keys("joe@1.2.3.0/24:allow") == ["joe@1.2.3.0/24"])  // no CIDR with @
        #expect(try keys("1.2.3.:allow") == ["1.2.3."])
        #expect(try keys("weird text:allow") == ["weird text"])
    }

    @Test func ipv6LiteralsGetTheExpandedKeyOnlyWhenNeeded() throws {
        // Compact (as tcpserver prints) and expanded forms are found by the lookup as written.
        #expect(try keys("2001:db8::1:allow") == ["2001:db8::1"])
        #expect(try keys("2001:0db8:0000:0000:0000:0000:0000:0001:allow") == ["2001:0db8:0000:0000:0000:0000:0000:0001"])
        #expect(try keys("::ffff:1.2.3.4:allow") == ["::ffff:1.2.3.4"])
        // Other spellings would never match: the expanded form is added.
        let expanded = "2001:0db8:0000:0000:0000:0000:0000:0001"
        #expect(try keys("2001:DB8::1:allow") == ["2001:DB8::1", expanded])
        #expect(try keys("2001:db8:0::1:allow") == ["2001:db8:0::1", expanded])
        #expect(try keys("2001:db8:0:0:0:0:0:1:allow") == ["2001:db8:0:0:0:0:0:1", expanded])
        #expect(try keys("joe@2001:db8::01:allow") == ["joe@2001:db8::01", "joe@" + expanded])
        #expect(try keys("joe@2001:db8::1:allow") == ["joe@2001:db8::1"])
        // Not an address: verbatim.
        #expect(try keys("2001:db8::zz:allow") == ["2001:db8::zz"])
        #expect(try keys("2001:db8::allow") == ["2001:db8:"])
        #expect(try keys("2001:db8:::allow") == ["2001:db8::"])
    }

    @Test func ipv4CIDR() throws {
        #expect(try keys("127.0/8:allow") == ["_0bcdefgh"])
        #expect(try keys("10.0.0.0/8:allow") == ["_0000e0g0"])
        #expect(try keys("10/8:allow") == ["_0000e0g0"])
        #expect(try keys("10.1.2.3/8:allow") == ["_0000e0g0"])        // host bits dropped
        #expect(try keys("192.168.1.0/24:deny") == ["_" + text(Array(IPAddressText.ipv4Bits([192, 168, 1, 0]).prefix(24)))])
        #expect(try keys("1.2.3.4/32:deny") == ["_" + text(IPAddressText.ipv4Bits([1, 2, 3, 4]))])
        #expect(try keys("172.16/12:deny") == ["_a0c0ef00000l"])
        #expect(try keys("128.0.0.0/2:deny") == ["_a0"])
        // /1 and /0 are never looked up: they become their /2 parts.
        #expect(try keys("128.0.0.0/1:deny") == ["_a0", "_ab"])
        #expect(try keys("0.0.0.0/1:deny") == ["_00", "_0b"])
        #expect(try keys("0.0.0.0/0:deny") == ["_00", "_0b", "_a0", "_ab"])
        #expect(try keys("10/0:deny") == ["_00", "_0b", "_a0", "_ab"])
    }

    @Test func ipv6CIDR() throws {
        let key = try keys("2001:db8::/32:deny")
        #expect(key.count == 1)
        #expect(try rule("2001:db8::/32:deny").keys == [[UInt8(ascii: "^")] + bytes("00`00000" + "0000000a" + "0000bc0d" + "e0fgh000")])
        #expect(try rule("::/0:deny").keys == [bytes("^00"), bytes("^0`"), bytes("^`0"), bytes("^`a")])
        #expect(try rule("8000::/1:deny").keys == [bytes("^`0"), bytes("^`a")])
        #expect(try rule("2001:DB8::1/128:deny").keys == [[UInt8(ascii: "^")] + IPAddressText.ipv6Bits(IPAddressText.parseIPv6(bytes("2001:db8::1"))!)])
        #expect(try rule("::ffff:10.0.0.0/104:deny").keys.first?.count == 105)
    }

    @Test func badCIDR() {
        for line in ["10/9:deny", "10.0/17:deny", "1.2.3.4/33:deny", "1.2.3.4/:deny", "1.2.3.4/x:deny",
                     "/8:deny", "1.2.3.256/24:deny", "1.2.3.4-5/24:deny", "2001:db8::/129:deny",
                     "2001:db8::g/64:deny", "2001:db8:/32:deny", "1.2.3.4/0024:deny", "a/b:deny", "1.2.3.4/-1:deny"] {
            guard case .badCIDR? = error(line) else { Issue.record("\(line) gave \(String(describing: error(line)))"); continue }
        }
    }

    @Test func syntaxErrors() {
        #expect(error("1.2.3.4") == .noSeparator)
        #expect(error("1.2.3.4 allow") == .noSeparator)
        #expect(error("1.2.3.4:alow") == .noSeparator)
        #expect(error("  # indented comment: not one") == .noSeparator)
        #expect(error(":allowx") == .unexpectedText)
        #expect(error(":deny ,A=/b/") == .unexpectedText)
        #expect(error("1.2.3.4:allow\r") == .unexpectedText)
        #expect(error(":allow,A=/b/x") == .unexpectedText)
        #expect(error(":allow,") == .emptyInstruction)
        #expect(error(":allow,,A=/b/") == .emptyInstruction)
        #expect(error(":allow,A") == .instructionWithoutValue)
        #expect(error(":allow,A,B=/c/") == .instructionWithoutValue)
        #expect(error(":allow,!") == .unsetWithoutName)
        #expect(error(":allow,!,A=/b/") == .unsetWithoutName)
        #expect(error(":allow,A=") == .missingValue)
        #expect(error(":allow,A=/b") == .unterminatedValue)
        #expect(error(":allow,A=\"1,2\",B=x") == .unterminatedValue)
    }

    @Test func uselessRulesAreFlagged() throws {
        for line in [" 1.2.3.4:deny", "\t=host:deny", "2001:db8::allow", "joe@fe80::deny", "x:y:allow"] {
            #expect(try rule(line).uselessness != nil, "\(line)")
        }
        for line in ["1.2.3.4:deny", "=a:b:deny", "2001:db8::1:deny", "2001:db8::/32:deny", "joe@::1:allow", ":allow"] {
            #expect(try rule(line).uselessness == nil, "\(line)")
        }
    }

    @Test func errorsDescribeThemselves() {
        let all: [RuleSyntaxError] = [.noSeparator, .unexpectedText, .emptyInstruction, .instructionWithoutValue,
                                      .unsetWithoutName, .missingValue, .unterminatedValue, .badRange, .badCIDR("x")]
        #expect(Set(all.map { $0.description }).count == all.count)
    }
}
