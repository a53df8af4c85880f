// supervise/status: the reference's 21-byte layout (djb's 18 bytes readable too), followed by
// a readiness trailer that readers of the 21 bytes ignore.
import Core
import Glibc

public struct ServiceStatus: Equatable, Sendable {
    public enum Want: UInt8, Sendable {
        case up = 0x75      // 'u'
        case down = 0x64    // 'd'
        case once = 0       // svc -o: run once, no restart
    }

    public enum Readiness: Equatable, Sendable {
        /// The service has no readiness protocol: ready means up.
        case notTracked
        /// Up, readiness configured, no notification yet.
        case pending
        case ready(TAI64N)
    }

    /// Time of the last state change.
    public var changed: TAI64N
    /// The service's pid when up; supervise's own pid when down or waiting (indimail).
    public var pid: pid_t
    public var paused: Bool
    public var want: Want
    /// 0 not waiting; -2 blocked on the dependency; >0 seconds of delay before the next start.
    public var waitSeconds: Int16
    /// ./run is running.
    public var running: Bool
    public var readiness: Readiness

    public init(changed: TAI64N, pid: pid_t, paused: Bool = false, want: Want = .up,
                waitSeconds: Int16 = 0, running: Bool = false, readiness: Readiness = .notTracked) {
        self.changed = changed
        self.pid = pid
        self.paused = paused
        self.want = want
        self.waitSeconds = waitSeconds
        self.running = running
        self.readiness = readiness
    }

    /// Size of the reference layout; the file is `encodedSize` long with the trailer.
    public static let referenceSize = 21
    public static let djbSize = 18
    public static let encodedSize = 34

    public func encoded() -> [UInt8] {
        var bytes = changed.packed                    // 0-11: TAI64N, big-endian
        let p = UInt32(bitPattern: pid)
        bytes += [UInt8(truncatingIfNeeded: p), UInt8(truncatingIfNeeded: p >> 8),
                  UInt8(truncatingIfNeeded: p >> 16), UInt8(truncatingIfNeeded: p >> 24)]  // 12-15: LE
        bytes.append(paused && running ? 1 : 0)       // 16
        bytes.append(want.rawValue)                   // 17
        // 18-19: host-endian int16, as the reference writes it (x86: little-endian).
        withUnsafeBytes(of: waitSeconds) { bytes += $0 }
        bytes.append(running ? 1 : 0)                 // 20
        switch readiness {                            // 21-33: trailer
        case .notTracked: bytes += [0] + [UInt8](repeating: 0, count: 12)
        case .pending: bytes += [1] + [UInt8](repeating: 0, count: 12)
        case .ready(let at): bytes += [2] + at.packed
        }
        return bytes
    }

    public enum FormatError: Error, Equatable, Sendable, CustomStringConvertible {
        case tooShort(Int)
        public var description: String {
            switch self { case .tooShort(let n): return "bad format: status file has \(n) bytes" }
        }
    }

    /// Decodes ours (21 or 34 bytes) or djb's (18 bytes, pid 0 when down).
    public static func decode(_ bytes: [UInt8]) -> Result<ServiceStatus, FormatError> {
        guard bytes.count >= djbSize, bytes.count != 19, bytes.count != 20,
              let changed = TAI64N(packed: bytes[0..<12]) else {
            return .failure(.tooShort(bytes.count))
        }
        let pid = pid_t(bitPattern: UInt32(bytes[12]) | UInt32(bytes[13]) << 8
                        | UInt32(bytes[14]) << 16 | UInt32(bytes[15]) << 24)
        let want = Want(rawValue: bytes[17]) ?? .up
        if bytes.count == djbSize {
            return .success(ServiceStatus(changed: changed, pid: pid, paused: bytes[16] != 0, want: want,
                                          running: pid != 0))
        }
        let wait = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 18, as: Int16.self) }
        var readiness = Readiness.notTracked
        if bytes.count >= encodedSize {
            switch bytes[21] {
            case 1: readiness = .pending
            case 2: readiness = TAI64N(packed: bytes[22..<34]).map { .ready($0) } ?? .pending
            default: readiness = .notTracked
            }
        }
        return .success(ServiceStatus(changed: changed, pid: pid, paused: bytes[16] != 0, want: want,
                                      waitSeconds: wait, running: bytes[20] != 0, readiness: readiness))
    }

    /// Reads `path`; a file of another length than the known layouts is a format error.
    public static func read(_ path: String) -> Result<ServiceStatus, StatusReadError> {
        switch FD.readFile(path, flags: O_NONBLOCK) {
        case .failure(let e): return .failure(.system(e))
        case .success(let bytes): return decode(Array(bytes.prefix(encodedSize))).mapError { .format($0) }
        }
    }
}

public enum StatusReadError: Error, Equatable, Sendable, CustomStringConvertible {
    case system(SystemError)
    case format(ServiceStatus.FormatError)
    public var description: String {
        switch self {
        case .system(let e): return e.description
        case .format(let e): return e.description
        }
    }
}
