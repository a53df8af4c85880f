// Constant databases in djb's cdb format, byte-compatible with cdbmake/cdbget.
// Readers never trust the file: every offset is checked, corruption is an error value.
import Glibc

public enum CDBError: Error, Equatable, Sendable, CustomStringConvertible {
    case system(SystemError)
    /// The file is not a well-formed cdb (truncated, offsets out of range, …).
    case corrupt(String)
    /// A database over 4 GiB, which the format cannot address.
    case tooBig

    public var description: String {
        switch self {
        case .system(let e): return e.description
        case .corrupt(let why): return "corrupt cdb: \(why)"
        case .tooBig: return "cdb too big: the format is limited to 4 GiB"
        }
    }
}

public enum CDBHash {
    /// djb's hash: h = 5381; h = (h * 33) ^ c, on 32 bits.
    @inline(__always)
    public static func hash<Bytes: Sequence>(_ key: Bytes) -> UInt32 where Bytes.Element == UInt8 {
        var h: UInt32 = 5381
        for c in key { h = (h &<< 5 &+ h) ^ UInt32(c) }
        return h
    }
}

/// A read-only cdb, memory-mapped.
public final class CDB {
    private let base: UnsafeRawBufferPointer
    private let mapped: Bool

    /// Opens and maps `path`. A missing file is `.system` with errno ENOENT.
    public static func open(_ path: String) -> Result<CDB, CDBError> {
        let fd: Int32
        switch FD.open(path, O_RDONLY) {
        case .failure(let e): return .failure(.system(e))
        case .success(let f): fd = f
        }
        defer { FD.close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return .failure(.system(SystemError("unable to stat", path))) }
        let size = Int(st.st_size)
        guard size >= 2048 else { return .failure(.corrupt("\(path) is shorter than the 2048-byte header")) }
        guard size <= Int(UInt32.max) else { return .failure(.tooBig) }
        guard let p = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0), p != MAP_FAILED else {
            return .failure(.system(SystemError("unable to map", path)))
        }
        return .success(CDB(UnsafeRawBufferPointer(start: p, count: size), mapped: true))
    }

    /// A cdb held in memory (tests, small tables).
    public convenience init(bytes: [UInt8]) {
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 8)
        copy.copyBytes(from: bytes)
        self.init(UnsafeRawBufferPointer(rebasing: copy[0..<bytes.count]), mapped: false)
    }

    private init(_ base: UnsafeRawBufferPointer, mapped: Bool) {
        self.base = base
        self.mapped = mapped
    }

    deinit {
        if mapped {
            munmap(UnsafeMutableRawPointer(mutating: base.baseAddress), base.count)
        } else {
            UnsafeMutableRawBufferPointer(mutating: base).deallocate()
        }
    }

    public var size: Int { base.count }

    @inline(__always)
    private func uint32(at offset: Int) -> UInt32? {
        guard offset >= 0, offset <= base.count - 4 else { return nil }
        return UInt32(base[offset]) | UInt32(base[offset + 1]) << 8
            | UInt32(base[offset + 2]) << 16 | UInt32(base[offset + 3]) << 24
    }

    private func bytes(at offset: Int, count: Int) -> UnsafeRawBufferPointer? {
        guard offset >= 0, count >= 0, offset <= base.count, count <= base.count - offset else { return nil }
        return UnsafeRawBufferPointer(rebasing: base[offset..<(offset + count)])
    }

    /// The first value stored under `key`, or nil when there is none.
    public func find<Key: Collection>(_ key: Key) -> Result<[UInt8]?, CDBError> where Key.Element == UInt8 {
        var first: [UInt8]?
        let r = forEachValue(key) { value in first = Array(value); return false }
        return r.map { first }
    }

    /// Every value stored under `key`, in insertion order.
    public func findAll<Key: Collection>(_ key: Key) -> Result<[[UInt8]], CDBError> where Key.Element == UInt8 {
        var all: [[UInt8]] = []
        return forEachValue(key) { all.append(Array($0)); return true }.map { all }
    }

    public func find(_ key: String) -> Result<[UInt8]?, CDBError> { find(Array(key.utf8)) }

    /// Calls `body` for each value under `key` until it returns false.
    public func forEachValue<Key: Collection>(_ key: Key, _ body: (UnsafeRawBufferPointer) -> Bool)
        -> Result<Void, CDBError> where Key.Element == UInt8 {
        let keyBytes = Array(key)
        let h = CDBHash.hash(keyBytes)
        let header = Int(h & 255) * 8
        guard let tablePos = uint32(at: header), let slotCount = uint32(at: header + 4) else {
            return .failure(.corrupt("short header"))
        }
        guard slotCount > 0 else { return .success(()) }
        let slots = Int(slotCount)
        guard Int(tablePos) <= base.count, slots <= (base.count - Int(tablePos)) / 8 else {
            return .failure(.corrupt("hash table \(h & 255) lies outside the file"))
        }
        var slot = Int((h >> 8) % slotCount)
        for _ in 0..<slots {
            let at = Int(tablePos) + slot * 8
            guard let slotHash = uint32(at: at), let recordPos = uint32(at: at + 4) else {
                return .failure(.corrupt("truncated hash table"))
            }
            if recordPos == 0 { return .success(()) }
            if slotHash == h {
                let r = Int(recordPos)
                guard let klen = uint32(at: r), let dlen = uint32(at: r + 4) else {
                    return .failure(.corrupt("record header at \(r) lies outside the file"))
                }
                guard let k = bytes(at: r + 8, count: Int(klen)),
                      let d = bytes(at: r + 8 + Int(klen), count: Int(dlen)) else {
                    return .failure(.corrupt("record at \(r) runs past the end of the file"))
                }
                if k.elementsEqual(keyBytes) && !body(d) { return .success(()) }
            }
            slot += 1
            if slot == slots { slot = 0 }
        }
        return .success(())
    }

    /// Walks every record in file order (as cdbdump does) until `body` returns false.
    public func forEachRecord(_ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Bool) -> Result<Void, CDBError> {
        // Records run from 2048 to the first hash table, which starts where the data ends.
        guard let end = uint32(at: 0) else { return .failure(.corrupt("short header")) }
        let dataEnd = Int(end)
        guard dataEnd >= 2048, dataEnd <= base.count else {
            return .failure(.corrupt("first table offset \(dataEnd) is out of range"))
        }
        var pos = 2048
        while pos < dataEnd {
            guard pos <= dataEnd - 8, let klen = uint32(at: pos), let dlen = uint32(at: pos + 4) else {
                return .failure(.corrupt("truncated record header at \(pos)"))
            }
            let total = 8 + Int(klen) + Int(dlen)
            guard total <= dataEnd - pos,
                  let k = bytes(at: pos + 8, count: Int(klen)),
                  let d = bytes(at: pos + 8 + Int(klen), count: Int(dlen)) else {
                return .failure(.corrupt("record at \(pos) runs past the data area"))
            }
            if !body(k, d) { return .success(()) }
            pos += total
        }
        return .success(())
    }
}

/// Streams records into a new cdb; `finish` writes the hash tables and the header.
public final class CDBWriter {
    private struct Entry { var hash: UInt32; var position: UInt32 }

    private let fd: Int32
    private let out: BufferedWriter
    private var entries: [[Entry]] = Array(repeating: [], count: 256)
    private var position: UInt64 = 2048

    /// Writes to `fd` from offset 0 (the fd must be seekable; the header is written last).
    public init(fd: Int32) {
        self.fd = fd
        self.out = BufferedWriter(fd: fd, capacity: 65536)
    }

    public func start() -> Result<Void, CDBError> {
        guard lseek(fd, 0, SEEK_SET) == 0 else { return .failure(.system(SystemError("unable to seek"))) }
        return out.write([UInt8](repeating: 0, count: 2048)).mapError { .system($0) }
    }

    public func add<K: Collection, V: Collection>(key: K, value: V) -> Result<Void, CDBError>
        where K.Element == UInt8, V.Element == UInt8 {
        let k = Array(key), v = Array(value)
        let recordSize = UInt64(8 + k.count + v.count)
        guard k.count <= UInt32.max, v.count <= UInt32.max,
              position + recordSize <= UInt64(UInt32.max) else { return .failure(.tooBig) }
        let h = CDBHash.hash(k)
        entries[Int(h & 255)].append(Entry(hash: h, position: UInt32(position)))
        var header = [UInt8](repeating: 0, count: 8)
        CDBWriter.store(UInt32(k.count), into: &header, at: 0)
        CDBWriter.store(UInt32(v.count), into: &header, at: 4)
        for part in [header, k, v] {
            if case .failure(let e) = out.write(part) { return .failure(.system(e)) }
        }
        position += recordSize
        return .success(())
    }

    public func add(key: String, value: String) -> Result<Void, CDBError> {
        add(key: Array(key.utf8), value: Array(value.utf8))
    }

    /// Writes the 256 hash tables and the header. The caller syncs and closes the fd.
    public func finish() -> Result<Void, CDBError> {
        var header = [UInt8](repeating: 0, count: 2048)
        for (i, bucket) in entries.enumerated() {
            let slots = bucket.count * 2
            guard position + UInt64(slots * 8) <= UInt64(UInt32.max) else { return .failure(.tooBig) }
            CDBWriter.store(UInt32(position), into: &header, at: i * 8)
            CDBWriter.store(UInt32(slots), into: &header, at: i * 8 + 4)
            guard slots > 0 else { continue }
            var table = [Entry](repeating: Entry(hash: 0, position: 0), count: slots)
            for entry in bucket {
                var slot = Int((entry.hash >> 8) % UInt32(slots))
                while table[slot].position != 0 { slot = (slot + 1) % slots }
                table[slot] = entry
            }
            var raw = [UInt8](repeating: 0, count: slots * 8)
            for (j, entry) in table.enumerated() {
                CDBWriter.store(entry.hash, into: &raw, at: j * 8)
                CDBWriter.store(entry.position, into: &raw, at: j * 8 + 4)
            }
            if case .failure(let e) = out.write(raw) { return .failure(.system(e)) }
            position += UInt64(raw.count)
        }
        if case .failure(let e) = out.flush() { return .failure(.system(e)) }
        let written = header.withUnsafeBytes { pwrite(fd, $0.baseAddress, 2048, 0) }
        guard written == 2048 else { return .failure(.system(SystemError("unable to write cdb header"))) }
        return .success(())
    }

    private static func store(_ value: UInt32, into bytes: inout [UInt8], at offset: Int) {
        bytes[offset] = UInt8(truncatingIfNeeded: value)
        bytes[offset + 1] = UInt8(truncatingIfNeeded: value >> 8)
        bytes[offset + 2] = UInt8(truncatingIfNeeded: value >> 16)
        bytes[offset + 3] = UInt8(truncatingIfNeeded: value >> 24)
    }

    /// Builds `path` atomically: records go to `temporary` (created afresh), which is
    /// fsynced and renamed over `path`, then the directory is fsynced. Readers see the old
    /// database or the new one, never a partial file.
    public static func rebuild(_ path: String, temporary: String,
                               _ fill: (CDBWriter) -> Result<Void, CDBError>) -> Result<Void, CDBError> {
        let fd: Int32
        switch FD.open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, mode: 0o644) {
        case .failure(let e): return .failure(.system(e))
        case .success(let f): fd = f
        }
        let writer = CDBWriter(fd: fd)
        let result = writer.start()
            .flatMap { fill(writer) }
            .flatMap { writer.finish() }
            .flatMap { FD.sync(fd).mapError { CDBError.system($0) } }
        FD.close(fd)
        if case .failure = result {
            unlink(temporary)
            return result
        }
        guard rename(temporary, path) == 0 else {
            let e = SystemError("unable to move \(temporary) to", path)
            unlink(temporary)
            return .failure(.system(e))
        }
        Path.syncDirectory(containing: path)
        return .success(())
    }
}
