// lock/tcpto: the shared table of addresses that recently failed to connect, so every
// qmail-remote skips a dead host for a while instead of waiting on it again.
// 64 records of 32 bytes: family at 0 (2 = IPv4, 10 = IPv6), failure count at 4,
// little-endian seconds of the last failure at 8..11, the address at 16.
import Core
import Glibc

public struct TCPTimeoutTable: Equatable, Sendable {
    public static let size = 2048
    public static let recordSize = 32
    /// Seconds a twice-failed address is avoided (plus a pid-dependent spread).
    public static let defaultPenalty = 3600
    /// Failures closer together than this count once.
    public static let defaultTolerance = 120

    public var bytes: [UInt8]

    public init(bytes: [UInt8]) {
        // Whole records only, as the reference reads them.
        self.bytes = Array(bytes.prefix(TCPTimeoutTable.size / TCPTimeoutTable.recordSize * TCPTimeoutTable.recordSize))
        self.bytes.removeLast(self.bytes.count % TCPTimeoutTable.recordSize)
    }

    public struct Entry: Equatable, Sendable {
        public var address: IPAddress
        public var failures: Int
        public var lastFailure: UInt32
    }

    var recordCount: Int { bytes.count / TCPTimeoutTable.recordSize }

    static func family(_ ip: IPAddress) -> UInt8 { ip.unmappedIsV4 ? 2 : 10 }

    static func addressBytes(_ ip: IPAddress) -> [UInt8] { ip.unmapped.bytes }

    private func matches(_ record: Int, _ ip: IPAddress) -> Bool {
        let base = record * TCPTimeoutTable.recordSize
        let family = TCPTimeoutTable.family(ip)
        guard bytes[base] == family else { return false }
        let addr = TCPTimeoutTable.addressBytes(ip)
        return Array(bytes[(base + 16)..<(base + 16 + addr.count)]) == addr
    }

    private func when(_ record: Int) -> UInt32 {
        let b = record * TCPTimeoutTable.recordSize + 8
        return UInt32(bytes[b]) | UInt32(bytes[b + 1]) << 8 | UInt32(bytes[b + 2]) << 16 | UInt32(bytes[b + 3]) << 24
    }

    private mutating func setWhen(_ record: Int, _ t: UInt32) {
        let b = record * TCPTimeoutTable.recordSize + 8
        for i in 0..<4 { bytes[b + i] = UInt8(truncatingIfNeeded: t >> (8 * UInt32(i))) }
    }

    /// Entries with a non-zero failure count, in table order.
    public var entries: [Entry] {
        (0..<recordCount).compactMap { r in
            let base = r * TCPTimeoutTable.recordSize
            guard bytes[base + 4] >= 1 else { return nil }
            let ip: IPAddress?
            switch bytes[base] {
            case 2: ip = IPAddress(bytes: Array(bytes[(base + 16)..<(base + 20)]))
            case 10: ip = IPAddress(bytes: Array(bytes[(base + 16)..<(base + 32)]))
            default: ip = nil
            }
            guard let ip else { return nil }
            return Entry(address: ip, failures: Int(bytes[base + 4]), lastFailure: when(r))
        }
    }

    /// Whether `ip` should be skipped now: two or more failures, the last one less than
    /// `penalty` (plus `spread`) seconds ago. A negative penalty means exactly -penalty.
    public func shouldSkip(_ ip: IPAddress, now: UInt32, penalty: Int, spread: Int) -> Bool {
        for r in 0..<recordCount where matches(r, ip) {
            let base = r * TCPTimeoutTable.recordSize
            guard bytes[base + 4] >= 2 else { return false }
            let window = penalty > 0 ? penalty + spread : -penalty
            return Int64(now) - Int64(when(r)) < Int64(window)
        }
        return false
    }

    /// The reference's pid-dependent extra: 64–97 minutes in all with the default penalty.
    public static func spread(pid: Int32) -> Int { ((60 + Int(pid & 31)) << 6) - defaultPenalty }

    /// Records a failed (`failed`) or successful connection to `ip`. Returns the index of
    /// the record changed, nil when nothing changed.
    @discardableResult
    public mutating func record(_ ip: IPAddress, failed: Bool, now: UInt32, tolerance: Int) -> Int? {
        for r in 0..<recordCount where matches(r, ip) {
            let base = r * TCPTimeoutTable.recordSize
            if !failed {
                bytes[base + 4] = 0
            } else {
                if bytes[base + 4] != 0 && Int64(now) < Int64(tolerance) + Int64(when(r)) { return nil }
                bytes[base + 4] = min(bytes[base + 4] &+ 1, 10)
                setWhen(r, now)
            }
            return r
        }
        guard failed, recordCount > 0 else { return nil }
        var slot = (0..<recordCount).first { bytes[$0 * TCPTimeoutTable.recordSize + 4] == 0 }
        if slot == nil {
            // Full: overwrite the record that is oldest once its failures are weighed in.
            slot = (0..<recordCount).min { a, b in
                let wa = Int64(when(a)) + Int64(bytes[a * 32 + 4]) << 10
                let wb = Int64(when(b)) + Int64(bytes[b * 32 + 4]) << 10
                return wa < wb
            }
        }
        guard let r = slot else { return nil }
        let base = r * TCPTimeoutTable.recordSize
        for i in 0..<TCPTimeoutTable.recordSize { bytes[base + i] = 0 }
        bytes[base] = TCPTimeoutTable.family(ip)
        let addr = TCPTimeoutTable.addressBytes(ip)
        for (i, b) in addr.enumerated() { bytes[base + 16 + i] = b }
        setWhen(r, now)
        bytes[base + 4] = 1
        return r
    }
}

/// The table on disk, locked while read and updated.
public struct TCPTimeoutFile: Sendable {
    public let path: String

    public init(queueDirectory: String) { path = Path.join(queueDirectory, "lock/tcpto") }

    /// The table as it is now; nil when the file cannot be opened (the reference then
    /// skips the table silently).
    public func read() -> TCPTimeoutTable? {
        guard case .success(let fd) = FD.open(path, O_RDWR) else { return nil }
        defer { FD.close(fd) }
        guard case .success = FileLock.exclusive(fd) else { return nil }
        return readLocked(fd)
    }

    private func readLocked(_ fd: Int32) -> TCPTimeoutTable? {
        var buffer = [UInt8](repeating: 0, count: TCPTimeoutTable.size)
        var total = 0
        while total < buffer.count {
            let n = buffer[total...].withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(total)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            total += n
        }
        return TCPTimeoutTable(bytes: Array(buffer[0..<total]))
    }

    /// Applies `change` under the lock and writes back the record it reports.
    public func update(_ change: (inout TCPTimeoutTable) -> Int?) {
        guard case .success(let fd) = FD.open(path, O_RDWR) else { return }
        defer { FD.close(fd) }
        guard case .success = FileLock.exclusive(fd), var table = readLocked(fd) else { return }
        guard let r = change(&table) else { return }
        let record = Array(table.bytes[(r * 32)..<(r * 32 + 32)])
        _ = record.withUnsafeBytes { pwrite(fd, $0.baseAddress, 32, off_t(r * 32)) }
    }

    /// Zeroes the whole table (qmail-tcpok).
    public func clear() -> Result<Void, SystemError> {
        FD.open(path, O_WRONLY).flatMap { fd in
            defer { FD.close(fd) }
            return FileLock.exclusive(fd).flatMap { _ in
                FD.writeAll(fd, [UInt8](repeating: 0, count: TCPTimeoutTable.size))
            }
        }
    }
}
