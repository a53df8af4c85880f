// The service manager readiness protocol (systemd's sd_notify) spoken natively: one datagram
// of NAME=VALUE lines to the AF_UNIX socket named by NOTIFY_SOCKET. No libsystemd.
import Glibc

public struct SystemdNotify: Equatable, Sendable {
    public enum AddressError: Error, Equatable, Sendable, CustomStringConvertible {
        /// Neither a path nor an abstract name ("@name"); e.g. systemd's "vsock:" form.
        case unsupported(String)
        case tooLong(String)
        public var description: String {
            switch self {
            case .unsupported(let a): return "unsupported NOTIFY_SOCKET address: \(a)"
            case .tooLong(let a): return "NOTIFY_SOCKET address too long: \(a)"
            }
        }
    }

    /// The environment variable systemd sets for Type=notify services.
    public static let variable = "NOTIFY_SOCKET"

    /// The address as given: a socket path, or "@name" for the abstract namespace.
    public let address: String

    public init(address: String) { self.address = address }

    /// The notifier for `environment`, nil when NOTIFY_SOCKET is unset or empty.
    public init?(environment: Environment) {
        guard let value = environment.nonEmpty(SystemdNotify.variable) else { return nil }
        self.init(address: value)
    }

    /// The bytes of sun_path and the address length to pass to sendto: a path ends with a
    /// NUL that the length counts; an abstract name starts with a NUL and has none at the end.
    public static func socketPath(_ address: String) -> Result<(path: [UInt8], length: Int), AddressError> {
        var bytes = Array(address.utf8)
        let capacity = MemoryLayout.size(ofValue: sockaddr_un().sun_path)
        let base = MemoryLayout<sa_family_t>.size
        switch bytes.first {
        case UInt8(ascii: "/"):
            guard bytes.count < capacity else { return .failure(.tooLong(address)) }
            return .success((bytes + [0], base + bytes.count + 1))
        case UInt8(ascii: "@"):
            guard bytes.count > 1, bytes.count <= capacity else { return .failure(.tooLong(address)) }
            bytes[0] = 0
            return .success((bytes, base + bytes.count))
        default:
            return .failure(.unsupported(address))
        }
    }

    /// One datagram's text: `NAME=VALUE` lines in order. Newlines inside a value would start a
    /// new assignment, so they become spaces.
    public static func message(_ fields: [(String, String)]) -> String {
        fields.map { name, value in
            name + "=" + String(value.map { $0 == "\n" || $0 == "\r" ? " " : $0 })
        }.joined(separator: "\n") + "\n"
    }

    /// `READY=1`, a status line and the main pid, as a supervisor reports its first start.
    public static func ready(status: String, mainPID: pid_t) -> String {
        message([("READY", "1"), ("STATUS", status), ("MAINPID", String(mainPID))])
    }

    /// `STOPPING=1` and a status line, sent when an orderly shutdown begins.
    public static func stopping(status: String) -> String {
        message([("STOPPING", "1"), ("STATUS", status)])
    }

    /// Sends `message` as one datagram. A manager that is gone is an error, never a signal.
    public func send(_ message: String) -> Result<Void, SystemError> {
        let target: (path: [UInt8], length: Int)
        switch SystemdNotify.socketPath(address) {
        case .success(let t): target = t
        case .failure: return .failure(SystemError("unable to notify", address, errno: EINVAL))
        }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failure(SystemError("unable to create socket for", address)) }
        defer { Glibc.close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in target.path.enumerated() where i < raw.count { raw[i] = b }
        }
        let payload = Array(message.utf8)
        while true {
            let sent = withUnsafePointer(to: &addr) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                    payload.withUnsafeBytes { buf in
                        sendto(fd, buf.baseAddress, buf.count, Int32(MSG_NOSIGNAL), sa, socklen_t(target.length))
                    }
                }
            }
            if sent >= 0 { return .success(()) }
            if errno != EINTR { return .failure(SystemError("unable to notify", address)) }
        }
    }
}
