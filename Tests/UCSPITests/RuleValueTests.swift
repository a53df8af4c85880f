// The cdb value format of spec §3.3: encoding, decoding, and what tcpserver makes of it.
import Core
import Testing
import UCSPI

@Suite struct RuleValueTests {
    @Test func encodes() {
        #expect(RuleValue.encode(action: .allow, environment: []) == [])
        #expect(RuleValue.encode(action: .deny, environment: []) == bytes("D\0"))
        #expect(RuleValue.encode(action: .allow, environment: [RuleEnvironmentChange(set: "A", to: "1"),
                                                               RuleEnvironmentChange(unset: "B"),
                                                               RuleEnvironmentChange(set: "C", to: "")])
                == bytes("+A=1\0-B\0+C=\0"))
    }

    @Test func decodes() {
        #expect(RuleValue.records(bytes("D\0+A=1\0-B\0+C=x=y\0")) ==
                [.deny, .set(name: bytes("A"), value: bytes("1")), .unset(name: bytes("B")),
                 .set(name: bytes("C"), value: bytes("x=y"))])
        // A `+` without `=` and unknown records are skipped by tcpserver; a tail with no NUL is no record.
        #expect(RuleValue.records(bytes("+NOEQ\0X\0\0Dx\0+A=1")) ==
                [.ignored(bytes("+NOEQ")), .ignored(bytes("X")), .ignored([]), .deny])
        #expect(RuleValue.records([]) == [])
        #expect(RuleValue.rawRecords(bytes("a\0\0b")) == [bytes("a")[...], []])
    }

    @Test func roundTrips() {
        let env = [RuleEnvironmentChange(set: "RELAYCLIENT", to: ""), RuleEnvironmentChange(unset: "GREY"),
                   RuleEnvironmentChange(name: [0xff, 1], value: [0xc3, 0x28])]
        for action in [RuleAction.allow, .deny] {
            let m = RuleValue.match(key: bytes("k"), value: RuleValue.encode(action: action, environment: env))
            #expect(m == RuleMatch(action: action, environment: env, key: bytes("k")))
        }
    }

    @Test func denyAnywhereDenies() {
        let m = RuleValue.match(key: [], value: bytes("+A=1\0D\0"))
        #expect(m.action == .deny && m.environment == [RuleEnvironmentChange(set: "A", to: "1")])
    }

    @Test func appliesChangesInOrder() {
        var env = Environment([("TCPLOCALHOST", "a"), ("GREYIP", "1"), ("KEEP", "k")])
        let m = RuleValue.match(key: [], value: bytes("+TCPLOCALHOST=b\0-GREYIP\0+NEW=x\0+NEW=y\0-ABSENT\0"))
        m.apply(to: &env)
        #expect(env["TCPLOCALHOST"] == "b" && env["GREYIP"] == nil && env["NEW"] == "y" && env["KEEP"] == "k")
    }
}
