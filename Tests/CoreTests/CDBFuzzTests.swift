// The cdb reader never trusts its file: corrupted databases give values or `.corrupt`,
// never a crash or a hang. Deterministic (seeded) so any failure reproduces.
import Core
import Glibc
import Testing

@Suite("cdb reader against corrupted files")
struct CDBFuzzTests {
    /// A few valid databases to corrupt, with the records they hold.
    static func corpus() throws -> [(bytes: [UInt8], records: [Record])] {
        let dir = try TempDir(); defer { dir.remove() }
        var generator = SeededGenerator(seed: 42)
        var sets: [[Record]] = [
            [],
            [(bytes("a"), bytes("1"))],
            (0..<40).map { (bytes("key\($0 % 13)"), bytes("value \($0)")) },
            [([], []), ([], bytes("x")), ([0, 0], [255]), (bytes("long"), [UInt8](repeating: 7, count: 600))],
        ]
        sets.append((0..<60).map { _ in
            ((0..<Int.random(in: 0...8, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) },
             (0..<Int.random(in: 0...30, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) })
        })
        return try sets.enumerated().map { i, records in
            let path = dir.file("db\(i).cdb")
            try buildCDB(path, records)
            return (try readFile(path), records)
        }
    }

    /// What a pass over a database saw; a non-corrupt error on an in-memory cdb is a bug.
    struct Tally {
        var values = 0, corrupt = 0, unexpected: [String] = []

        mutating func note<T>(_ result: Result<T, CDBError>) {
            switch result {
            case .success: values += 1
            case .failure(.corrupt): corrupt += 1
            case .failure(let e): unexpected.append(e.description)
            }
        }
    }

    /// Every read operation on `db`; returns what each key lookup gave.
    static func exercise(_ db: CDB, keys: [[UInt8]], tally: inout Tally) -> [Result<[[UInt8]], CDBError>] {
        var lookups: [Result<[[UInt8]], CDBError>] = []
        for key in keys {
            tally.note(db.find(key))
            let all = db.findAll(key)
            tally.note(all)
            lookups.append(all)
        }
        var count = 0
        tally.note(db.forEachRecord { _, _ in count += 1; return true })
        return lookups
    }

    static func store(_ value: UInt32, into bytes: inout [UInt8], at offset: Int) {
        guard offset >= 0, offset + 4 <= bytes.count else { return }
        for i in 0..<4 { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(i))) }
    }

    static func load(_ bytes: [UInt8], at offset: Int) -> Int {
        Int(bytes[offset]) | Int(bytes[offset + 1]) << 8 | Int(bytes[offset + 2]) << 16 | Int(bytes[offset + 3]) << 24
    }

    @Test("truncation at every offset: exact values or .corrupt, never wrong data")
    func truncationEverywhere() throws {
        var tally = Tally()
        var wrongValues: [String] = []
        var wrongWalks: [String] = []
        for (index, entry) in try Self.corpus().enumerated() {
            let keys = entry.records.map(\.key) + [bytes("absent")]
            let expected = keys.map { key in entry.records.filter { $0.key == key }.map(\.value) }
            let dataEnd = Self.load(entry.bytes, at: 0)
            for length in 0...entry.bytes.count {
                let db = CDB(bytes: Array(entry.bytes[0..<length]))
                // Every byte present is original, so a lookup cannot invent or lose values.
                for (key, result) in zip(expected, Self.exercise(db, keys: keys, tally: &tally)) {
                    if case .success(let values) = result, values != key {
                        wrongValues.append("db\(index) cut at \(length)")
                    }
                }
                // Records end where the tables start: cut before that the walk must fail.
                var walked: [Record] = []
                let walk = db.forEachRecord { k, v in walked.append((Array(k), Array(v))); return true }
                switch walk {
                case .success where length < dataEnd:
                    wrongWalks.append("db\(index) cut at \(length) walked without error")
                case .success where walked.map(\.key) != entry.records.map(\.key) || walked.map(\.value) != entry.records.map(\.value):
                    wrongWalks.append("db\(index) cut at \(length) walked wrong records")
                case .failure where length >= dataEnd:
                    wrongWalks.append("db\(index) cut at \(length) failed to walk an intact data area")
                default: break
                }
            }
        }
        #expect(tally.unexpected.isEmpty, "\(tally.unexpected.prefix(5))")
        #expect(wrongValues.isEmpty, "\(wrongValues.prefix(5))")
        #expect(wrongWalks.isEmpty, "\(wrongWalks.prefix(5))")
        #expect(tally.corrupt > 0 && tally.values > 0)
    }

    @Test("random byte flips, garbage files and hostile lengths never crash")
    func randomCorruption() throws {
        let corpus = try Self.corpus()
        var generator = SeededGenerator(seed: 0xC0FFEE)
        var tally = Tally()
        let iterations = 3000
        for iteration in 0..<iterations {
            let entry = corpus[iteration % corpus.count]
            var data = entry.bytes
            var keys = entry.records.map(\.key).prefix(8).map { $0 }
            keys.append((0..<Int.random(in: 0...6, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) })

            switch iteration % 4 {
            case 0:  // flip a few random bytes anywhere
                for _ in 0..<Int.random(in: 1...12, using: &generator) {
                    data[Int.random(in: 0..<data.count, using: &generator)] ^= UInt8.random(in: 1...255, using: &generator)
                }
            case 1:  // pure garbage of any length, sometimes with a plausible header
                data = (0..<Int.random(in: 0...5000, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
                if data.count >= 2048, Bool.random(using: &generator) {
                    Self.store(UInt32(Int.random(in: 2048...data.count, using: &generator)), into: &data, at: 0)
                }
            case 2:  // hostile values in the header: table positions and slot counts
                for _ in 0..<Int.random(in: 1...4, using: &generator) {
                    let table = Int.random(in: 0..<256, using: &generator)
                    let hostile: [UInt32] = [0, 1, 2047, 2048, UInt32(data.count), UInt32(data.count) &- 4,
                                             UInt32(data.count) &+ 8, 0x7fff_ffff, 0xffff_fff8, 0xffff_ffff,
                                             UInt32.random(in: 0...UInt32.max, using: &generator)]
                    Self.store(hostile.randomElement(using: &generator)!, into: &data, at: table * 8 + (Bool.random(using: &generator) ? 0 : 4))
                }
            default:  // hostile record lengths and slot pointers past the header
                let dataEnd = Self.load(data, at: 0)
                let hostile: [UInt32] = [0xffff_ffff, 0xffff_fff0, 0x8000_0000, UInt32(data.count), UInt32(data.count) &- 7,
                                         UInt32.random(in: 0...UInt32.max, using: &generator)]
                for _ in 0..<Int.random(in: 1...3, using: &generator) where data.count > 2052 {
                    // Anywhere after the header: record klen/dlen when in the data area, slot
                    // hash/position when in the tables.
                    let offset = Int.random(in: 2048...(data.count - 4), using: &generator)
                    let aligned = offset < dataEnd ? offset : 2048 + ((offset - 2048) / 4) * 4
                    Self.store(hostile.randomElement(using: &generator)!, into: &data, at: aligned)
                }
            }
            _ = Self.exercise(CDB(bytes: data), keys: keys, tally: &tally)
        }
        #expect(tally.unexpected.isEmpty, "\(tally.unexpected.prefix(5))")
        #expect(tally.corrupt > 100, "corruption went unnoticed: \(tally.corrupt) corrupt of \(tally.values + tally.corrupt)")
        #expect(tally.values > 100)
    }

    @Test("huge lengths in a record header and out-of-range table pointers are .corrupt")
    func targetedCorruption() throws {
        let dir = try TempDir(); defer { dir.remove() }
        let path = dir.file("t.cdb")
        try buildCDB(path, [(bytes("alpha"), bytes("first")), (bytes("beta"), bytes("second"))])
        let original = try readFile(path)
        let bucket = Int(CDBHash.hash(bytes("alpha")) & 255)

        func expectCorrupt(_ data: [UInt8], _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
            let db = CDB(bytes: data)
            guard case .corrupt? = failure(db.find(bytes("alpha")), sourceLocation: sourceLocation) else {
                Issue.record("\(what): find is not corrupt", sourceLocation: sourceLocation); return
            }
        }

        // klen of the first record (at 2048) = 0xffffffff.
        var data = original
        Self.store(0xffff_ffff, into: &data, at: 2048)
        expectCorrupt(data, "huge klen")
        guard case .corrupt? = failure(CDB(bytes: data).forEachRecord { _, _ in true }) else {
            Issue.record("forEachRecord accepted a huge klen"); return
        }
        // dlen of the first record = 0xffffffff.
        data = original
        Self.store(0xffff_ffff, into: &data, at: 2052)
        expectCorrupt(data, "huge dlen")
        // The table of alpha's bucket far past the end, or with an absurd slot count.
        data = original
        Self.store(0xffff_fff0, into: &data, at: bucket * 8)
        expectCorrupt(data, "table position past the end")
        data = original
        Self.store(0xffff_ffff, into: &data, at: bucket * 8 + 4)
        expectCorrupt(data, "absurd slot count")
        // Every slot of that table pointing past the end of the file.
        data = original
        let table = Self.load(original, at: bucket * 8), slots = Self.load(original, at: bucket * 8 + 4)
        for slot in 0..<slots where Self.load(original, at: table + slot * 8 + 4) != 0 {
            Self.store(0xffff_fff0, into: &data, at: table + slot * 8 + 4)
        }
        expectCorrupt(data, "record position past the end")
        // The first-table offset (end of records) past the file.
        data = original
        Self.store(0xffff_ffff, into: &data, at: 0)
        guard case .corrupt? = failure(CDB(bytes: data).forEachRecord { _, _ in true }) else {
            Issue.record("forEachRecord accepted an out-of-range data end"); return
        }
        // Files on disk go through the same checks (mmap path).
        try writeFile(path, data)
        let db = try CDB.open(path).get()
        // Lookups do not use that field (beta hashes to table 87, not 0) and still work.
        #expect(CDBHash.hash(bytes("beta")) & 255 == 87)
        #expect(try db.find(bytes("beta")).get() == bytes("second"))
        guard case .corrupt? = failure(db.forEachRecord { _, _ in true }) else {
            Issue.record("mapped forEachRecord accepted an out-of-range data end"); return
        }
    }

    @Test("tiny in-memory databases are corrupt, not crashes")
    func tinyBuffers() {
        for size in [0, 1, 3, 4, 7, 8, 100, 2047] {
            let db = CDB(bytes: [UInt8](repeating: 0xff, count: size))
            guard case .corrupt? = failure(db.find("x")) else { Issue.record("size \(size): find"); continue }
            guard case .corrupt? = failure(db.forEachRecord { _, _ in true }) else { Issue.record("size \(size): walk"); continue }
        }
    }
}
