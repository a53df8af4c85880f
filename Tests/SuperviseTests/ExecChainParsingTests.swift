// The pure parts of the exec-chain tools: limit values, group lists, option parsing, the
// readproctitle window and the tai line rewriting, tested without processes.
import Core
import Glibc
import Testing
@testable import Supervise

@Suite struct LimitParsingTests {
    @Test func limitValues() {
        #expect(LimitValue("=") == .hard)
        #expect(LimitValue("-1") == .unlimited)
        #expect(LimitValue("0") == .value(0))
        #expect(LimitValue("+42") == .value(42))
        #expect(LimitValue("007") == .value(7))
        #expect(LimitValue("18446744073709551615") == .value(rlim_t.max))
        #expect(LimitValue("99999999999999999999999999") == .value(rlim_t.max))  // saturates
        for bad in ["", "+", "-", "-0", "-2", "--1", "1k", " 1", "1 ", "==", "0x10", "１"] {
            #expect(LimitValue(bad) == nil, "'\(bad)'")
        }
    }

    @Test func applyingAValue() {
        let current = rlimit(rlim_cur: 10, rlim_max: 100)
        #expect(LimitValue.hard.applied(to: current).rlim_cur == 100)
        #expect(LimitValue.value(50).applied(to: current).rlim_cur == 50)
        #expect(LimitValue.value(500).applied(to: current).rlim_cur == 100)  // never above hard
        #expect(LimitValue.value(500).applied(to: current).rlim_max == 100)
        let unlimited = LimitValue.unlimited.applied(to: current)
        #expect(unlimited.rlim_cur == rlim_t.max && unlimited.rlim_max == rlim_t.max)
    }

    @Test func flagsCoverTheReferenceResources() {
        #expect(Resource.forFlag("m") == [.data, .stack, .lockedMemory, .addressSpace])
        #expect(Resource.forFlag("a") == [.addressSpace])
        #expect(Resource.forFlag("o") == [.openFiles])
        #expect(Resource.forFlag("q") == [.messageQueues])
        for flag in "acdflmopqrst" { #expect(!Resource.forFlag(flag).isEmpty) }
        #expect(Resource.forFlag("z").isEmpty)
    }

    @Test func softlimitCommandLine() throws {
        let context = CommandContext(name: "softlimit", arguments: ["-o", "5", "-m=", "--", "prog", "-o"],
                                     environment: Environment())
        let (changes, child) = try SoftlimitCommand.parse(context).get()
        #expect(changes.map(\.value) == [.value(5), .hard, .hard, .hard, .hard])
        #expect(child == [Array("prog".utf8), Array("-o".utf8)])
        let bad = CommandContext(name: "softlimit", arguments: ["-o", "x", "prog"], environment: Environment())
        #expect(throws: SoftlimitCommand.ParseFailure.badLimit("o", "x")) { try SoftlimitCommand.parse(bad).get() }
    }
}

@Suite struct GroupListTests {
    func lookup(_ name: String) -> Result<gid_t, AccountError> {
        ["wheel": 10, "mail": 12][name].map { .success($0) } ?? .failure(.noSuchGroup(name))
    }

    @Test func namesAndNumbers() throws {
        #expect(try Privileges.parseGroups("wheel,100,mail", lookup: lookup).get() == [10, 100, 12])
        #expect(try Privileges.parseGroups("0", lookup: lookup).get() == [0])
    }

    @Test func badEntries() {
        #expect(throws: AccountError.noSuchGroup("nope")) { try Privileges.parseGroups("wheel,nope", lookup: lookup).get() }
        // The reference turns an empty entry into gid 0; here it names no group.
        for list in ["", ",", "wheel,", ",wheel", "wheel,,mail"] {
            #expect(throws: AccountError.noSuchGroup("")) { try Privileges.parseGroups(list, lookup: lookup).get() }
        }
        // Too large for a gid.
        #expect(throws: AccountError.noSuchGroup("4294967296")) {
            try Privileges.parseGroups("4294967296", lookup: lookup).get()
        }
    }

    @Test func setuidgidCommandLine() throws {
        let context = CommandContext(name: "setuidgid", arguments: ["-es", "-g", "a,b", "user", "prog", "-x"],
                                     environment: Environment())
        let request = try SetuidgidCommand.parse(context).get()
        #expect(request.setEnvironment && request.memberships)
        #expect(request.extraGroups == "a,b")
        #expect(request.account == "user")
        #expect(request.child.count == 2)
        let short = CommandContext(name: "setuidgid", arguments: ["user"], environment: Environment())
        #expect(throws: SetuidgidCommand.ParseFailure.missingOperands) { try SetuidgidCommand.parse(short).get() }
    }
}

@Suite struct ProcTitleTests {
    /// The reference's algorithm, one byte at a time.
    func reference(_ length: Int, _ input: [UInt8]) -> [UInt8] {
        var buf = [UInt8](repeating: UInt8(ascii: "."), count: length)
        for ch in input where ch != 0 {
            for i in 4..<length { buf[i - 1] = buf[i] }
            buf[length - 1] = ch
        }
        return buf
    }

    @Test func chunkedFeedingEqualsByteByByte() {
        var generator = SystemRandomNumberGenerator()
        for length in [5, 6, 12, 40] {
            var title = ReadproctitleCommand.Title(length: length)
            var all: [UInt8] = []
            for _ in 0..<50 {
                let chunk = (0..<Int.random(in: 0...60, using: &generator)).map { _ in
                    UInt8.random(in: 0...3, using: &generator) == 0 ? 0 : UInt8.random(in: 97...122, using: &generator)
                }
                title.feed(chunk)
                all += chunk
                #expect(title.bytes == reference(length, all))
            }
            #expect(title.bytes.prefix(3) == [46, 46, 46])
        }
    }
}

@Suite struct TaiLineTests {
    func convert(_ rewriter: LinePrefixRewriter, _ input: String, chunk: Int) -> String {
        var r = rewriter
        var out: [UInt8] = []
        let bytes = Array(input.utf8)
        var i = 0
        while i < bytes.count {
            r.process(bytes[i..<min(i + chunk, bytes.count)], into: &out)
            i += chunk
        }
        r.finish(into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    @Test func sameOutputWhateverTheChunking() {
        let input = "@400000003d6387281f8fa4ac x\nplain\n@4000\n1029932840.529507500 y\n12.5\n\n7"
        for make in [Tai64n2TaiCommand.makeRewriter, Tai2Tai64nCommand.makeRewriter] {
            let whole = convert(make(), input, chunk: input.utf8.count)
            for size in [1, 2, 3, 7, 25, 26] { #expect(convert(make(), input, chunk: size) == whole) }
        }
        #expect(convert(Tai64n2TaiCommand.makeRewriter(), input, chunk: 1)
            == "1029932840.529507500 x\nplain\n@4000\n1029932840.529507500 y\n12.5\n\n7")
        #expect(convert(Tai2Tai64nCommand.makeRewriter(), input, chunk: 1)
            == "@400000003d6387281f8fa4ac x\nplain\n@4000\n@400000003d6387281f8fa4ac y\n"
            + "@400000000000000c1dcd6500\n\n@400000000000000700000000")
    }

    @Test func stampEdges() {
        #expect(TaiStamp.parseLabel(Array("@3fffffffffffffff00000000".utf8)) == nil)   // before 2^62
        #expect(TaiStamp.parseLabel(Array("@40000000000000003b9aca00".utf8)) == nil)   // 10^9 ns
        #expect(TaiStamp.parseLabel(Array("@4000000100000000000000ff".utf8))! == (1 << 32, 255))
        #expect(TaiStamp.decimal(seconds: 1 << 32, nanoseconds: 255) == Array("4294967296.000000255".utf8))
        #expect(TaiStamp.parseDecimal(Array("4611686018427387904".utf8)) == nil)        // 2^62
        #expect(TaiStamp.parseDecimal(Array("1.1234567899 r".utf8))! == (1, 123_456_789, 12))
    }
}
