// How a service tells supervise it is ready: s6's notification-fd (a newline on an fd) or
// systemd's NOTIFY_SOCKET (a READY=1 datagram). Parsing here; the fds live in Supervisor.
import Core
import Glibc

public enum ReadinessProtocol: Equatable, Sendable {
    case none
    /// The service writes a newline on this fd.
    case notificationFD(Int32)
    /// The service sends READY=1 to $NOTIFY_SOCKET.
    case notifySocket
    case both(Int32)

    /// Reads the service directory's `notification-fd` and `notify-socket` files.
    public struct ConfigError: Error, Equatable, Sendable, CustomStringConvertible {
        public let description: String
    }

    public static func configured(in serviceDirectory: String) -> Result<ReadinessProtocol, ConfigError> {
        let socket = Path.exists(Path.join(serviceDirectory, SuperviseFiles.notifySocket))
        let fdPath = Path.join(serviceDirectory, SuperviseFiles.notificationFD)
        guard let bytes = try? FD.readFile(fdPath).get() else {
            return .success(socket ? .notifySocket : .none)
        }
        let text = String(decoding: bytes.prefix { $0 != 10 }, as: UTF8.self).trimmingBlanks()
        // 0–2 are the service's stdio; the reference protocol (s6) requires 3 or more.
        guard let fd = Int32(text), fd >= 3, fd < 1024 else {
            return .failure(ConfigError(description:
                "invalid notification-fd \(text.isEmpty ? "(empty)" : text): want a number from 3 to 1023"))
        }
        return .success(socket ? .both(fd) : .notificationFD(fd))
    }

    public var descriptor: Int32? {
        switch self {
        case .notificationFD(let fd), .both(let fd): return fd
        default: return nil
        }
    }

    public var usesSocket: Bool {
        switch self {
        case .notifySocket, .both: return true
        default: return false
        }
    }

    public var isTracked: Bool { self != .none }
}

public enum NotifyMessage {
    /// True when a sd_notify datagram says READY=1 (one assignment per line).
    public static func saysReady(_ datagram: some Collection<UInt8>) -> Bool {
        datagram.split(separator: 10).contains { Array($0) == Array("READY=1".utf8) }
    }
}
