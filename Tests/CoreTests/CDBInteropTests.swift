// Our cdb against Debian's freecdb tools (cdbmake, cdbget, cdbdump): the format is shared,
// so each side must read what the other writes, and the files must be byte-identical.
import Core
import Glibc
import Testing

@Suite("cdb interoperability with freecdb")
struct CDBInteropTests {
    static let cdbmake = "/usr/bin/cdbmake"
    static let cdbget = "/usr/bin/cdbget"
    static let cdbdump = "/usr/bin/cdbdump"

    /// Records that exercise the format: duplicates, empty key and value, the characters
    /// cdbmake's text format uses as delimiters, NULs, high bytes, a long value.
    static func sampleRecords() -> [Record] {
        var records: [Record] = []
        for i in 0..<2000 {
            records.append((bytes("key\(i)"), bytes("value number \(i)")))
            if i % 250 == 0 { records.append((bytes("dup"), bytes("dup value \(i)"))) }
        }
        records.append(([], []))
        records.append(([], bytes("empty key, second value")))
        records.append((bytes("empty-value"), []))
        records.append((bytes("+3,5:one->Hello"), bytes("->\n:,+\n")))
        records.append(([0, 1, 2, 0, 255, 254], [10, 0, 10, 13, 128]))
        records.append((bytes("long"), (0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }))
        records.append((bytes("dup"), bytes("last dup")))
        return records
    }

    /// Feeds `records` to cdbmake and returns the path of the result.
    static func makeWithCdbmake(_ records: [Record], in dir: TempDir, name: String) throws -> String {
        let tool = try requireTool(cdbmake, package: "freecdb")
        let input = dir.file(name + ".input")
        try writeFile(input, cdbmakeText(records))
        let output = dir.file(name)
        let result = try runTool(tool, [output, output + ".tmp"], stdinPath: input)
        #expect(result.status == 0, "cdbmake failed: \(result.stderrText)")
        return output
    }

    @Test("cdbdump and cdbget read what CDBWriter writes")
    func peersReadOurs() throws {
        let dump = try requireTool(Self.cdbdump, package: "freecdb")
        let get = try requireTool(Self.cdbget, package: "freecdb")
        let dir = try TempDir(); defer { dir.remove() }
        let records = Self.sampleRecords()
        let path = dir.file("ours.cdb")
        try buildCDB(path, records)

        let dumped = try runTool(dump, [], stdinPath: path)
        #expect(dumped.status == 0, "cdbdump: \(dumped.stderrText)")
        #expect(dumped.stdout == cdbmakeText(records), "cdbdump output differs from the records written")

        for key in ["key0", "key1", "key999", "key1999", "empty-value", "long"] {
            let expected = try #require(records.first { $0.key == bytes(key) }).value
            let got = try runTool(get, [key], stdinPath: path)
            #expect(got.status == 0, "cdbget \(key): \(got.stderrText)")
            #expect(got.stdout == expected, "cdbget \(key)")
        }
        // The skip argument walks the values of a repeated key in insertion order.
        let dups = records.filter { $0.key == bytes("dup") }.map(\.value)
        for (skip, expected) in dups.enumerated() {
            let got = try runTool(get, ["dup", String(skip)], stdinPath: path)
            #expect(got.status == 0)
            #expect(got.stdout == expected, "cdbget dup \(skip)")
        }
        let missing = try runTool(get, ["no-such-key"], stdinPath: path)
        #expect(missing.status == 100)
        #expect(missing.stdout.isEmpty)
        let pastEnd = try runTool(get, ["dup", String(dups.count)], stdinPath: path)
        #expect(pastEnd.status == 100)
    }

    @Test("CDB reads what cdbmake writes")
    func weReadPeers() throws {
        let dir = try TempDir(); defer { dir.remove() }
        let records = Self.sampleRecords()
        let path = try Self.makeWithCdbmake(records, in: dir, name: "peer.cdb")
        let db = try CDB.open(path).get()

        var byKey: [[UInt8]: [[UInt8]]] = [:]
        for r in records { byKey[r.key, default: []].append(r.value) }
        var wrong: [String] = []
        for (key, values) in byKey {
            if case .success(let all) = db.findAll(key), all == values,
               case .success(let first) = db.find(key), first == values.first {
                continue
            }
            wrong.append(String(decoding: key, as: UTF8.self))
        }
        #expect(wrong.isEmpty, "keys read back wrong from cdbmake's file: \(wrong.prefix(10))")
        #expect(try db.find("absent").get() == nil)

        var walked: [Record] = []
        try db.forEachRecord { k, v in walked.append((Array(k), Array(v))); return true }.get()
        #expect(walked.count == records.count)
        #expect(walked.map(\.key) == records.map(\.key))
        #expect(walked.map(\.value) == records.map(\.value))
    }

    @Test("CDBWriter output is byte-identical to cdbmake's", arguments: [0, 1, 2, 3])
    func byteIdentical(variant: Int) throws {
        let dir = try TempDir(); defer { dir.remove() }
        let records: [Record]
        switch variant {
        case 0: records = []
        case 1: records = [(bytes("one"), bytes("Hello")), (bytes("two"), bytes("Goodbye"))]
        case 2: records = Self.sampleRecords()
        default:
            // Many keys landing in the same few tables: collision handling must match.
            var generator = SeededGenerator(seed: 0x5eed)
            records = (0..<5000).map { i in
                let key = (0..<Int.random(in: 0...12, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
                return (key, bytes("\(i)"))
            }
        }
        let peer = try Self.makeWithCdbmake(records, in: dir, name: "peer.cdb")
        let ours = dir.file("ours.cdb")
        try buildCDB(ours, records)
        let peerBytes = try readFile(peer), ourBytes = try readFile(ours)
        #expect(peerBytes.count == ourBytes.count)
        let firstDifference = zip(peerBytes, ourBytes).enumerated().first { $0.element.0 != $0.element.1 }?.offset
        #expect(peerBytes == ourBytes, "files differ (first at offset \(firstDifference.map(String.init) ?? "end"))")
    }
}
