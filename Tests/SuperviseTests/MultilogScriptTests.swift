// The multilog script parser: every action, the reference's clamps, and the refusals.
import Testing
@testable import Supervise

@Suite struct MultilogScriptTests {
    func parse(_ args: [String]) -> Result<MultilogScript, MultilogScriptError> {
        MultilogScript.parse(args.map { Array($0.utf8) })
    }

    func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

    @Test func everyActionParses() throws {
        let script = try parse(["t", "-*", "+*fatal*", "e", "=status", "s5000", "n3", "!gzip", "r3600", "./main", "/var/log/x"]).get()
        #expect(script.timestamp)
        #expect(script.actions == [
            .timestamp, .deselect(bytes("*")), .select(bytes("*fatal*")), .alert, .status(bytes("status")),
            .size(5000), .count(3), .processor(bytes("gzip")), .rotateEvery(3600),
            .directory(bytes("./main")), .directory(bytes("/var/log/x")),
        ])
        #expect(script.lineActions == [.deselect(bytes("*")), .select(bytes("*fatal*")), .alert, .status(0),
                                       .directory(0), .directory(1)])
        #expect(script.statusFiles == [bytes("status")])
        #expect(script.rotationInterval == 3600)
        #expect(!script.selectsEverything)
    }

    @Test func settingsApplyToTheDirectoriesThatFollow() throws {
        let script = try parse(["./a", "s4096", "n5", "./b", "!cat", "s0", "./c"]).get()
        #expect(script.directories == [
            LogDirectoryConfig(path: bytes("./a"), maxSize: nil, keep: 10, processor: nil),
            LogDirectoryConfig(path: bytes("./b"), maxSize: 4096, keep: 5, processor: nil),
            LogDirectoryConfig(path: bytes("./c"), maxSize: nil, keep: 5, processor: bytes("cat")),
        ])
        #expect(script.selectsEverything)
        #expect(!script.timestamp)
    }

    @Test func sizesAreClampedAsTheReference() throws {
        #expect(try parse(["s1"]).get().actions == [.size(4096)])
        #expect(try parse(["s4095"]).get().actions == [.size(4096)])
        #expect(try parse(["s4096"]).get().actions == [.size(4096)])
        #expect(try parse(["s16777215"]).get().actions == [.size(16_777_215)])
        #expect(try parse(["s16777216"]).get().actions == [.size(16_777_215)])
        #expect(try parse(["s0"]).get().actions == [.size(nil)])
        // Far past Int: saturates, then clamps (the reference would wrap).
        #expect(try parse(["s99999999999999999999999999"]).get().actions == [.size(16_777_215)])
    }

    @Test func countsAndIntervalsHaveAFloor() throws {
        #expect(try parse(["n0"]).get().actions == [.count(2)])
        #expect(try parse(["n1"]).get().actions == [.count(2)])
        #expect(try parse(["n2"]).get().actions == [.count(2)])
        #expect(try parse(["n1000"]).get().actions == [.count(1000)])
        #expect(try parse(["r0"]).get().actions == [.rotateEvery(1)])
        #expect(try parse(["r99999999999999999999"]).get().actions == [.rotateEvery(Int(Int32.max))])
        #expect(try parse(["r10", "r20"]).get().rotationInterval == 20)
    }

    @Test func patternsMayBeEmptyOrHoldAnything() throws {
        #expect(try parse(["+", "-"]).get().actions == [.select([]), .deselect([])])
        #expect(try parse(["-x y\tz"]).get().actions == [.deselect(bytes("x y\tz"))])
        let raw: [UInt8] = [UInt8(ascii: "+"), 0xff, 0x80]
        #expect(MultilogScript.parse([raw]) == .success(MultilogScript(actions: [.select([0xff, 0x80])])))
    }

    @Test func directoriesStartWithDotOrSlash() throws {
        #expect(try parse(["."]).get().directories.map(\.path) == [bytes(".")])
        #expect(try parse(["..x"]).get().directories.map(\.path) == [bytes("..x")])
        #expect(try parse(["/"]).get().directories.map(\.path) == [bytes("/")])
    }

    @Test func bogusActionsAreRefused() throws {
        #expect(parse(["T"]) == .failure(.unknownAction("T")))
        #expect(parse(["main"]) == .failure(.unknownAction("main")))
        #expect(parse(["tt"]) == .failure(.unknownAction("tt")))
        #expect(parse(["echo"]) == .failure(.unknownAction("echo")))
        #expect(parse(["./a", "t"]) == .failure(.misplacedTimestamp(position: 2)))
        #expect(parse(["./a", ""]) == .failure(.emptyAction(position: 2)))
        #expect(parse(["s"]) == .failure(.badNumber("s")))
        #expect(parse(["s100k"]) == .failure(.badNumber("s100k")))
        #expect(parse(["n-1"]) == .failure(.badNumber("n-1")))
        #expect(parse(["r"]) == .failure(.badNumber("r")))
        #expect(parse(["="]) == .failure(.emptyStatusFile))
        #expect(parse(["!"]) == .failure(.emptyProcessor))
        #expect(parse(["!r3600"]) == .failure(.processorLooksLikeRotation("!r3600")))
        // A processor that merely starts with r is fine.
        #expect(try parse(["!rm -f x"]).get().actions == [.processor(bytes("rm -f x"))])
    }

    @Test func errorsReadWell() {
        #expect(MultilogScriptError.unknownAction("T").description == "unknown action: T")
        #expect(MultilogScriptError.processorLooksLikeRotation("!r60").description.contains("r60 without the !"))
        #expect(MultilogScriptError.misplacedTimestamp(position: 3).description.contains("first"))
    }

    @Test func emptyScriptIsValid() throws {
        let script = try parse([]).get()
        #expect(script.directories.isEmpty)
        #expect(script.lineActions.isEmpty)
    }
}

/// Random scripts never crash the parser, and what it accepts rebuilds the same script.
@Suite struct MultilogScriptPropertyTests {
    struct Generator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state >> 33
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    }

    static let alphabet: [UInt8] = Array("tTens!=+-./*r0123456789 abc".utf8) + [0, 0xff, 10]

    @Test func randomScriptsNeverCrash() {
        var g = Generator(state: 0x5eed)
        var accepted = 0
        for _ in 0..<5000 {
            var script: [[UInt8]] = []
            for _ in 0..<g.below(8) {
                var arg: [UInt8] = []
                for _ in 0..<g.below(12) { arg.append(Self.alphabet[g.below(Self.alphabet.count)]) }
                script.append(arg)
            }
            switch MultilogScript.parse(script) {
            case .success(let parsed):
                accepted += 1
                #expect(parsed.actions.count == script.count)
                #expect(parsed.directories.count == script.filter { $0.first == 46 || $0.first == 47 }.count)
                #expect(parsed.directories.allSatisfy { $0.keep >= 2 && ($0.maxSize ?? 4096) >= 4096 })
                #expect(MultilogScript(actions: parsed.actions) == parsed)
            case .failure(let error):
                #expect(!error.description.isEmpty)
            }
        }
        #expect(accepted > 0)
    }

    @Test func numbersOfEveryLengthNeverCrash() {
        for length in 0...40 {
            let digits = [UInt8](repeating: UInt8(ascii: "9"), count: length)
            for letter in ["s", "n", "r"] {
                _ = MultilogScript.parse([Array(letter.utf8) + digits])
            }
        }
    }
}
