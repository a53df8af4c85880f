// Outgoing stream connections with a deadline, for mconnect: address literals, the
// "0" shorthand for this host, UNIX-domain paths.
import Core
import Glibc

/// Where a client connects to.
enum RemoteAddress: Equatable, CustomStringConvertible {
    case v4(in_addr_t)                        // network byte order
    case v6([UInt8], scope: UInt32)           // 16 bytes
    case unix(String)

    /// An IPv4 or IPv6 literal (IPv6 may carry a `%interface` or `%index` scope); nil for
    /// anything else.
    static func parse(_ text: String) -> RemoteAddress? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return .v4(v4.s_addr) }
        var literal = Substring(text), scope: UInt32 = 0
        if let percent = text.firstIndex(of: "%") {
            literal = text[..<percent]
            let name = String(text[text.index(after: percent)...])
            if let index = UInt32(name) { scope = index } else {
                scope = if_nametoindex(name)
                if scope == 0 { return nil }
            }
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, String(literal), &v6) == 1 else { return nil }
        let bytes = withUnsafeBytes(of: v6) { Array($0) }
        return .v6(bytes, scope: scope)
    }

    var description: String {
        switch self {
        case .v4(let raw):
            let b = withUnsafeBytes(of: raw) { Array($0) }
            return "\(b[0]).\(b[1]).\(b[2]).\(b[3])"
        case .v6(let bytes, let scope):
            var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
            var address = in6_addr()
            withUnsafeMutableBytes(of: &address) { $0.copyBytes(from: bytes.prefix(16)) }
            guard inet_ntop(AF_INET6, &address, &buffer, socklen_t(buffer.count)) != nil else { return "?" }
            let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            return scope == 0 ? text : "\(text)%\(scope)"
        case .unix(let path):
            return path
        }
    }
}

enum Connect {
    /// A connected, blocking, close-on-exec stream socket to `address` (`port` is ignored for
    /// UNIX-domain paths), or the error; ETIMEDOUT when `seconds` pass first.
    static func open(_ address: RemoteAddress, port: UInt16, timeout seconds: Int) -> Result<Int32, SystemError> {
        let family: Int32
        switch address {
        case .v4: family = AF_INET
        case .v6: family = AF_INET6
        case .unix: family = AF_UNIX
        }
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return .failure(SystemError("unable to create socket")) }

        var result: Int32
        switch address {
        case .v4(let raw):
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = port.bigEndian
            sa.sin_addr = in_addr(s_addr: raw)
            result = withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        case .v6(let bytes, let scope):
            var sa = sockaddr_in6()
            sa.sin6_family = sa_family_t(AF_INET6)
            sa.sin6_port = port.bigEndian
            sa.sin6_scope_id = scope
            withUnsafeMutableBytes(of: &sa.sin6_addr) { $0.copyBytes(from: bytes.prefix(16)) }
            result = withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        case .unix(let path):
            var sa = sockaddr_un()
            sa.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8)
            guard !bytes.isEmpty, bytes.count < MemoryLayout.size(ofValue: sa.sun_path) else {
                close(fd)
                return .failure(SystemError("unable to connect", errno: ENAMETOOLONG))
            }
            withUnsafeMutableBytes(of: &sa.sun_path) { $0.copyBytes(from: bytes) }
            result = withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
        }

        if result != 0 {
            guard errno == EINPROGRESS || errno == EINTR || errno == EAGAIN else {
                let e = SystemError("unable to connect")
                close(fd)
                return .failure(e)
            }
            // Wait for the handshake against a deadline that EINTR does not extend.
            let deadline = MonotonicDeadline(seconds: seconds)
            var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            while true {
                let r = poll(&p, 1, deadline.remainingMilliseconds)
                if r > 0 { break }
                if r == 0 || (errno != EINTR) {
                    let e = SystemError("unable to connect", errno: r == 0 ? ETIMEDOUT : errno)
                    close(fd)
                    return .failure(e)
                }
            }
            var soError: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            if getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &length) != 0 { soError = errno }
            if soError != 0 {
                close(fd)
                return .failure(SystemError("unable to connect", errno: soError))
            }
        }
        FD.setNonBlocking(fd, false)
        return .success(fd)
    }
}

/// A point in the future on the monotonic clock, for poll timeouts that survive EINTR.
struct MonotonicDeadline {
    private let end: Double

    init(seconds: Int) { end = MonotonicClock.now() + Double(seconds) }

    var remainingMilliseconds: Int32 {
        let left = (end - MonotonicClock.now()) * 1000
        return left <= 0 ? 0 : Int32(min(left, Double(Int32.max)))
    }
}
