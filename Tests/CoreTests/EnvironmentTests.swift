// Environment as a value: exact bytes, no prefix confusion, NUL → newline.
import Core
import Foundation
import Testing

@Suite("Environment")
struct EnvironmentTests {
    @Test("set, override and unset")
    func setOverrideUnset() {
        var env = Environment([("A", "1"), ("B", "2")])
        #expect(env["A"] == "1")
        env["A"] = "one"
        #expect(env["A"] == "one")
        #expect(env.entries == [bytes("A=one"), bytes("B=2")])  // replaced in place
        env["C"] = "3"
        #expect(env.names == ["A", "B", "C"])
        env["B"] = nil
        #expect(env["B"] == nil)
        #expect(!env.contains("B"))
        #expect(env.entries == [bytes("A=one"), bytes("C=3")])
        env.unset("never-set")
        #expect(env.entries.count == 2)
    }

    @Test("empty values are set but not non-empty")
    func emptyValues() {
        var env = Environment()
        env["E"] = ""
        #expect(env.contains("E"))
        #expect(env["E"] == "")
        #expect(env.nonEmpty("E") == nil)
        #expect(env.nonEmpty("missing") == nil)
        env["E"] = "x"
        #expect(env.nonEmpty("E") == "x")
    }

    @Test("names that prefix each other stay apart")
    func prefixCollisions() {
        var env = Environment(entries: [bytes("PATHX=/x"), bytes("PATH=/bin"), bytes("PAT=short"), bytes("P")])
        #expect(env["PATH"] == "/bin")
        #expect(env["PATHX"] == "/x")
        #expect(env["PAT"] == "short")
        #expect(env["PA"] == nil)
        // An entry without '=' is not a variable named "P" with no value.
        #expect(env["P"] == nil)
        env.unset("PATH")
        #expect(env["PATHX"] == "/x")
        #expect(env["PAT"] == "short")
        #expect(env["PATH"] == nil)
        env["PATH"] = "/usr/bin"
        #expect(env["PATHX"] == "/x")
        #expect(env.entries.filter { $0.starts(with: bytes("PATHX=")) } == [bytes("PATHX=/x")])
        // A value containing '=' is kept whole.
        env["Q"] = "a=b=c"
        #expect(env["Q"] == "a=b=c")
    }

    @Test("values are kept byte for byte, UTF-8 or not")
    func binaryValues() {
        var env = Environment()
        let raw: [UInt8] = [0xff, 0xfe, 0x80, 0x41, 0xc3]
        env.set("BIN", raw)
        #expect(env.bytes("BIN") == raw)
        #expect(env.entries == [bytes("BIN=") + raw])
        env.set(name: [0xe9, 0x74, 0xe9], value: [1, 2, 3])
        #expect(env.entries.last == [0xe9, 0x74, 0xe9, UInt8(ascii: "="), 1, 2, 3])
        env.unset(name: [0xe9, 0x74, 0xe9])
        #expect(env.entries.count == 1)
    }

    @Test("an inherited duplicate name: set keeps one entry, unset removes all")
    func duplicates() {
        var env = Environment(entries: [bytes("D=1"), bytes("X=x"), bytes("D=2"), bytes("DD=3")])
        #expect(env["D"] == "1")  // the first one wins, as getenv
        env["D"] = "new"
        #expect(env.entries == [bytes("D=new"), bytes("X=x"), bytes("DD=3")])
        var other = Environment(entries: [bytes("D=1"), bytes("D=2")])
        other.unset("D")
        #expect(other.entries.isEmpty)
    }

    @Test("NUL bytes in values become newlines on set")
    func nulToNewline() {
        var env = Environment()
        env.set("N", [0x61, 0, 0x62, 0])
        #expect(env.bytes("N") == [0x61, 10, 0x62, 10])
        #expect(!env.entries.contains { $0.contains(0) })
    }

    @Test("the current environment is what the process was given")
    func current() {
        let env = Environment.current()
        let reference = ProcessInfo.processInfo.environment
        #expect(!env.entries.isEmpty)
        #expect(!env.entries.contains { $0.contains(0) || !$0.contains(UInt8(ascii: "=")) })
        for (name, value) in reference {
            #expect(env[name] == value, "\(name)")
        }
        #expect(Set(env.names) == Set(reference.keys))
    }
}
