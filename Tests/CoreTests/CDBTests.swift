// CDB and CDBWriter on real files: round trips, duplicates, binary data, atomic rebuild.
import Core
import Glibc
import Testing

@Suite("cdb read/write")
struct CDBTests {
    @Test("djb hash vectors")
    func hashVectors() {
        #expect(CDBHash.hash([UInt8]()) == 5381)
        // (5381 * 33) ^ 'a'
        #expect(CDBHash.hash(bytes("a")) == 177_604)
        // Wraps on 32 bits instead of trapping.
        let long = [UInt8](repeating: 0xff, count: 1000)
        var h: UInt32 = 5381
        for c in long { h = (h &* 33) ^ UInt32(c) }
        #expect(CDBHash.hash(long) == h)
    }

    @Test("100,000 keys written with rebuild are each found again")
    func roundTrip100000() throws {
        let dir = try TempDir(); defer { dir.remove() }
        let path = dir.file("big.cdb")
        let count = 100_000
        func key(_ i: Int) -> [UInt8] { bytes("key-\(i)") }
        func value(_ i: Int) -> [UInt8] { bytes("value \(i &* 7919) for \(i)") }

        try CDBWriter.rebuild(path, temporary: dir.file("big.tmp")) { writer in
            for i in 0..<count {
                if case .failure(let e) = writer.add(key: key(i), value: value(i)) { return .failure(e) }
            }
            return .success(())
        }.get()

        let db = try CDB.open(path).get()
        var wrong: [Int] = []
        for i in 0..<count {
            guard case .success(let found) = db.find(key(i)), found == value(i) else {
                wrong.append(i)
                if wrong.count > 10 { break }
                continue
            }
        }
        #expect(wrong.isEmpty, "keys read back wrong: \(wrong)")
        #expect(try db.find(key(count)).get() == nil)
        #expect(try db.find("no such key").get() == nil)

        // The file walks back in insertion order, every record once.
        var seen = 0
        var outOfOrder = 0
        try db.forEachRecord { k, v in
            if !k.elementsEqual(key(seen)) || !v.elementsEqual(value(seen)) { outOfOrder += 1 }
            seen += 1
            return true
        }.get()
        #expect(seen == count)
        #expect(outOfOrder == 0)
    }

    @Test("several values under one key, empty keys and values, binary bytes")
    func duplicatesEmptyAndBinary() throws {
        let dir = try TempDir(); defer { dir.remove() }
        let path = dir.file("mixed.cdb")
        let allBytes = (0...255).map { UInt8($0) }
        let big = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }  // > writer buffer
        let records: [Record] = [
            (bytes("dup"), bytes("one")),
            (bytes("other"), bytes("x")),
            (bytes("dup"), bytes("two")),
            ([], []),
            (bytes("dup"), []),
            ([], bytes("second empty-key value")),
            ([0, 255, 10, 13, 0], allBytes),
            (allBytes, [0, 0, 0]),
            (bytes("big"), big),
            (bytes("dup"), bytes("four")),
        ]
        try buildCDB(path, records)
        let db = try CDB.open(path).get()

        #expect(try db.find(bytes("dup")).get() == bytes("one"))
        #expect(try db.findAll(bytes("dup")).get() == [bytes("one"), bytes("two"), [], bytes("four")])
        #expect(try db.find([UInt8]()).get() == [])
        #expect(try db.findAll([UInt8]()).get() == [[], bytes("second empty-key value")])
        #expect(try db.find([0, 255, 10, 13, 0]).get() == allBytes)
        #expect(try db.find(allBytes).get() == [0, 0, 0])
        #expect(try db.find(bytes("big")).get() == big)
        #expect(try db.findAll(bytes("absent")).get() == [])
        // A key that differs only by a trailing byte is a different key.
        #expect(try db.find([0, 255, 10, 13]).get() == nil)

        // forEachValue stops when the body says so.
        var visited = 0
        try db.forEachValue(bytes("dup")) { _ in visited += 1; return visited < 2 }.get()
        #expect(visited == 2)

        // The in-memory reader sees the same database.
        let memory = CDB(bytes: try readFile(path))
        #expect(memory.size == db.size)
        #expect(try memory.findAll(bytes("dup")).get() == [bytes("one"), bytes("two"), [], bytes("four")])
        #expect(try memory.find(bytes("big")).get() == big)
    }

    @Test("forEachRecord walks records in file order and stops on request")
    func recordOrder() throws {
        let dir = try TempDir(); defer { dir.remove() }
        let path = dir.file("order.cdb")
        let records: [Record] = (0..<50).map { i in (bytes("k\(i % 7)"), bytes("v\(i)")) }
        try buildCDB(path, records)
        let db = try CDB.open(path).get()

        var walked: [Record] = []
        try db.forEachRecord { k, v in walked.append((Array(k), Array(v))); return true }.get()
        #expect(walked.map(\.key) == records.map(\.key))
        #expect(walked.map(\.value) == records.map(\.value))

        var firstThree: [[UInt8]] = []
        try db.forEachRecord { _, v in firstThree.append(Array(v)); return firstThree.count < 3 }.get()
        #expect(firstThree == [bytes("v0"), bytes("v1"), bytes("v2")])

        // findAll keeps insertion order among equal keys.
        #expect(try db.findAll(bytes("k3")).get() == [3, 10, 17, 24, 31, 38, 45].map { bytes("v\($0)") })
    }

    @Test("an empty database is a 2048-byte header of empty tables")
    func emptyDatabase() throws {
        let dir = try TempDir(); defer { dir.remove() }
        let path = dir.file("empty.cdb")
        try buildCDB(path, [])
        let raw = try readFile(path)
        #expect(raw.count == 2048)
        var headerOK = true
        for i in 0..<256 {
            let pos = UInt32(raw[i * 8]) | UInt32(raw[i * 8 + 1]) << 8 | UInt32(raw[i * 8 + 2]) << 16 | UInt32(raw[i * 8 + 3]) << 24
            let len = raw[(i * 8 + 4)..<(i * 8 + 8)]
            if pos != 2048 || len.contains(where: { $0 != 0 }) { headerOK = false }
        }
        #expect(headerOK)

        let db = try CDB.open(path).get()
        #expect(try db.find("anything").get() == nil)
        #expect(try db.find([UInt8]()).get() == nil)
        #expect(try db.findAll(bytes("x")).get() == [])
        var records = 0
        try db.forEachRecord { _, _ in records += 1; return true }.get()
        #expect(records == 0)
    }

    @Test("open reports a missing file as ENOENT and a short one as corrupt")
    func openErrors() throws {
        let dir = try TempDir(); defer { dir.remove() }
        guard case .system(let e)? = failure(CDB.open(dir.file("missing.cdb"))) else {
            Issue.record("missing file is not a system error"); return
        }
        #expect(e.errno == ENOENT)

        for size in [0, 1, 2047] {
            try writeFile(dir.file("short"), [UInt8](repeating: 0, count: size))
            guard case .corrupt? = failure(CDB.open(dir.file("short"))) else {
                Issue.record("a \(size)-byte file is not reported corrupt"); continue
            }
        }
    }

    @Test("rebuild replaces the target atomically and leaves no temporary behind")
    func rebuildIsAtomic() throws {
        let dir = try TempDir(); defer { dir.remove() }
        let path = dir.file("data.cdb"), temporary = dir.file("data.tmp")
        try buildCDB(path, [(bytes("version"), bytes("1"))])
        #expect(access(path + ".tmp", F_OK) != 0)

        let old = try CDB.open(path).get()
        let oldInode = try #require(Path.status(path)).st_ino

        // A stale temporary from an interrupted run is simply overwritten.
        try writeFile(temporary, "garbage from a crashed rebuild")
        try CDBWriter.rebuild(path, temporary: temporary) { writer in
            writer.add(key: "version", value: "2")
        }.get()

        #expect(access(temporary, F_OK) != 0, "temporary file left behind")
        #expect(try #require(Path.status(path)).st_ino != oldInode, "target was rewritten in place, not replaced")
        #expect(try CDB.open(path).get().find("version").get() == bytes("2"))
        // A reader that had the old database open keeps a consistent old view.
        #expect(try old.find("version").get() == bytes("1"))

        // A failing fill removes the temporary and leaves the target alone.
        let failed = CDBWriter.rebuild(path, temporary: temporary) { writer in
            _ = writer.add(key: "version", value: "3")
            return .failure(.corrupt("fill gave up"))
        }
        #expect(failure(failed) == .corrupt("fill gave up"))
        #expect(access(temporary, F_OK) != 0, "temporary file left behind after failure")
        #expect(try CDB.open(path).get().find("version").get() == bytes("2"))

        // The temporary is never followed through a symlink.
        try makeSymlink(dir.file("elsewhere"), at: temporary)
        guard case .system(let e)? = failure(CDBWriter.rebuild(path, temporary: temporary) { _ in .success(()) }) else {
            Issue.record("rebuild through a symlinked temporary did not fail"); return
        }
        #expect(e.errno == ELOOP)
        #expect(access(dir.file("elsewhere"), F_OK) != 0)
        #expect(try CDB.open(path).get().find("version").get() == bytes("2"))
    }
}
