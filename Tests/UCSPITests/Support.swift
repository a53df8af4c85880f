// Helpers for the UCSPI unit tests: byte strings, temp dirs, rules cdbs built from text.
import Core
import Glibc
import Testing
import UCSPI

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

/// A fresh directory, removed (flat: tests only put files in it) by `remove()`.
struct TempDir {
    let path: String

    init() throws {
        var template = Array("/tmp/ucspitests.XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard let made else { throw SystemError("unable to create temp directory") }
        path = String(cString: made)
    }

    func file(_ name: String) -> String { path + "/" + name }

    func remove() {
        if let dir = opendir(path) {
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
                }
                if name != "." && name != ".." { unlink(file(name)) }
            }
            closedir(dir)
        }
        rmdir(path)
    }
}

/// Compiles rule text the way tcprules does (keys in input order) into a cdb file.
func compileRules(_ source: String, into path: String) throws {
    var definitions: [RuleDefinition] = []
    for line in source.split(separator: "\n", omittingEmptySubsequences: false) {
        if let rule = try RuleSyntax.parse(Array(line.utf8)).get() { definitions.append(rule) }
    }
    try CDBWriter.rebuild(path, temporary: path + ".tmp") { writer in
        for rule in definitions {
            for key in rule.keys {
                if case .failure(let e) = writer.add(key: key, value: rule.value) { return .failure(e) }
            }
        }
        return .success(())
    }.get()
}

/// An opened rules database compiled from `source`, kept in memory.
func rules(_ source: String) throws -> TCPRules {
    let dir = try TempDir()
    defer { dir.remove() }
    let path = dir.file("rules.cdb")
    try compileRules(source, into: path)
    return TCPRules(cdb: CDB(bytes: try FD.readFile(path).get()))
}

/// The key that decides for a client, as text (nil: no rule).
func decidingKey(_ r: TCPRules, ip: String, host: String? = nil, info: String? = nil) throws -> String? {
    try r.lookup(ip: ip, host: host, info: info).get().map { text($0.key) }
}

/// Deterministic generator (SplitMix64) so a failing fuzz case reproduces.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
