// OptionParser: POSIX getopt as the reference's sgetopt, without permutation.
import Core
import Testing

@Suite("OptionParser")
struct OptionParserTests {
    typealias Item = OptionParser.Item

    func parse(_ spec: String, _ args: [String]) -> Result<(items: [Item], operandIndex: Int), OptionParser.Failure> {
        OptionParser(spec).parse(args)
    }

    @Test("clustered flags")
    func clusters() throws {
        let r = try parse("abc", ["-abc", "-b", "file"]).get()
        #expect(r.items == [.flag("a"), .flag("b"), .flag("c"), .flag("b")])
        #expect(r.operandIndex == 2)
    }

    @Test("values attached, separate, and ending a cluster")
    func values() throws {
        let r = try parse("u:g:v", ["-uroot", "-g", "wheel", "-vu", "nobody", "-gv", "prog"]).get()
        #expect(r.items == [.value("u", "root"), .value("g", "wheel"), .flag("v"), .value("u", "nobody"), .value("g", "v")])
        #expect(r.operandIndex == 6)
        // A separate value may itself look like an option or be empty.
        let s = try parse("u:v", ["-u", "-v", "-u", "", "x"]).get()
        #expect(s.items == [.value("u", "-v"), .value("u", "")])
        #expect(s.operandIndex == 4)
    }

    @Test("-- ends options and is skipped")
    func doubleDash() throws {
        let r = try parse("ab", ["-a", "--", "-b", "file"]).get()
        #expect(r.items == [.flag("a")])
        #expect(r.operandIndex == 2)
        let onlyDash = try parse("a", ["--"]).get()
        #expect(onlyDash.items.isEmpty)
        #expect(onlyDash.operandIndex == 1)
    }

    @Test("the first operand stops parsing; '-' alone is an operand")
    func firstOperandStops() throws {
        let r = try parse("ab", ["-a", "prog", "-b"]).get()
        #expect(r.items == [.flag("a")])
        #expect(r.operandIndex == 1)
        let dash = try parse("a", ["-", "-a"]).get()
        #expect(dash.items.isEmpty)
        #expect(dash.operandIndex == 0)
        let none = try parse("a", []).get()
        #expect(none.items.isEmpty)
        #expect(none.operandIndex == 0)
        let allFlags = try parse("a", ["-a", "-a"]).get()
        #expect(allFlags.operandIndex == 2)
    }

    @Test("unknown options fail, naming the letter")
    func unknown() {
        #expect(failure(parse("ab", ["-ax"])) == .unknown("x"))
        #expect(failure(parse("ab", ["--long"])) == .unknown("-"))
        #expect(failure(parse("u:", ["-:"])) == .unknown(":"))
        #expect(OptionParser.Failure.unknown("x").description == "illegal option -- x")
    }

    @Test("a missing value fails")
    func missingValue() {
        #expect(failure(parse("u:", ["-u"])) == .missingValue("u"))
        #expect(failure(parse("vu:", ["-v", "-vu"])) == .missingValue("u"))
        #expect(OptionParser.Failure.missingValue("u").description == "option requires an argument -- u")
    }
}
