// Socket addresses and the socket calls tcpserver/tcpclient need, EINTR handled here.
import CSupport
import Glibc

public enum SocketAddress: Hashable, Sendable, CustomStringConvertible {
    case inet(IPAddress, port: UInt16, scope: UInt32)
    case unix(String)

    public var description: String {
        switch self {
        case .inet(let ip, let port, _): return ip.isIPv4 ? "\(ip):\(port)" : "[\(ip)]:\(port)"
        case .unix(let path): return path
        }
    }

    public var ip: IPAddress? { if case .inet(let ip, _, _) = self { return ip } else { return nil } }
    public var port: UInt16 { if case .inet(_, let port, _) = self { return port } else { return 0 } }

    /// Decodes a kernel sockaddr (IPv4, IPv6, or AF_UNIX).
    public init?(storage: sockaddr_storage, length: socklen_t) {
        var copy = storage
        switch Int32(storage.ss_family) {
        case AF_INET:
            let sin = withUnsafeBytes(of: &copy) { $0.load(as: sockaddr_in.self) }
            let a = UInt32(bigEndian: sin.sin_addr.s_addr)
            self = .inet(.v4(UInt8(a >> 24), UInt8(a >> 16 & 255), UInt8(a >> 8 & 255), UInt8(a & 255)),
                         port: UInt16(bigEndian: sin.sin_port), scope: 0)
        case AF_INET6:
            let sin6 = withUnsafeBytes(of: &copy) { $0.load(as: sockaddr_in6.self) }
            let bytes = withUnsafeBytes(of: sin6.sin6_addr) { Array($0) }
            self = .inet(.v6(bytes), port: UInt16(bigEndian: sin6.sin6_port), scope: sin6.sin6_scope_id)
        case AF_UNIX:
            let path = withUnsafeBytes(of: &copy) { raw -> String in
                let start = MemoryLayout<sa_family_t>.size
                let end = min(Int(length), raw.count)
                guard end > start else { return "" }
                return String(decoding: raw[start..<end].prefix { $0 != 0 }, as: UTF8.self)
            }
            self = .unix(path)
        default:
            return nil
        }
    }

    /// The kernel form; IPv4 addresses become v4-mapped when `family` is AF_INET6.
    public func withSockaddr<R>(family: Int32? = nil, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        switch self {
        case .inet(let ip, let port, let scope):
            if ip.isIPv4 && family != AF_INET6 {
                let b = ip.bytes
                var sin = sockaddr_in()
                sin.sin_family = sa_family_t(AF_INET)
                sin.sin_port = port.bigEndian
                sin.sin_addr.s_addr = (UInt32(b[0]) << 24 | UInt32(b[1]) << 16 | UInt32(b[2]) << 8 | UInt32(b[3])).bigEndian
                return withUnsafePointer(to: &sin) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                }
            }
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            sin6.sin6_port = port.bigEndian
            sin6.sin6_scope_id = scope
            let bytes = ip.mapped16
            withUnsafeMutableBytes(of: &sin6.sin6_addr) { $0.copyBytes(from: bytes) }
            return withUnsafePointer(to: &sin6) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        case .unix(let path):
            var sun = sockaddr_un()
            sun.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8.prefix(MemoryLayout.size(ofValue: sun.sun_path) - 1))
            withUnsafeMutableBytes(of: &sun.sun_path) { raw in
                for (i, b) in bytes.enumerated() { raw[i] = b }
            }
            return withUnsafePointer(to: &sun) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    body($0, socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + 1))
                }
            }
        }
    }
}

public enum Socket {
    /// A listening TCP socket. `address` nil means every local address (dual stack when
    /// IPv6 works, IPv4 only when `ipv4Only` or IPv6 is unavailable).
    public static func listenTCP(address: IPAddress?, port: UInt16, backlog: Int32, ipv4Only: Bool,
                                 scope: UInt32 = 0) -> Result<Int32, SystemError> {
        let useV6 = !ipv4Only && (address.map { !$0.unmappedIsV4 } ?? true)
        var fd = socket(useV6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var family = useV6 ? AF_INET6 : AF_INET
        if fd < 0 && useV6 && address == nil {  // no IPv6 on this host: fall back to IPv4
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            family = AF_INET
        }
        guard fd >= 0 else { return .failure(SystemError("unable to create socket")) }
        var on: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        if family == AF_INET6 {
            var off: Int32 = 0  // dual stack: IPv4 clients arrive v4-mapped
            setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &off, socklen_t(MemoryLayout<Int32>.size))
        }
        let bindAddress: SocketAddress = .inet(address?.unmapped ?? (family == AF_INET6 ? .v6([UInt8](repeating: 0, count: 16)) : .v4(0, 0, 0, 0)),
                                               port: port, scope: scope)
        let bound = bindAddress.withSockaddr(family: family) { bind(fd, $0, $1) }
        guard bound == 0 else {
            let e = SystemError("unable to bind", bindAddress.description)
            close(fd)
            return .failure(e)
        }
        guard Glibc.listen(fd, backlog) == 0 else {
            let e = SystemError("unable to listen")
            close(fd)
            return .failure(e)
        }
        return .success(fd)
    }

    public static func listenUnix(path: String, backlog: Int32) -> Result<Int32, SystemError> {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failure(SystemError("unable to create socket")) }
        let bound = SocketAddress.unix(path).withSockaddr { bind(fd, $0, $1) }
        guard bound == 0, Glibc.listen(fd, backlog) == 0 else {
            let e = SystemError("unable to bind", path)
            close(fd)
            return .failure(e)
        }
        return .success(fd)
    }

    /// accept4 with close-on-exec, retried on EINTR and ECONNABORTED.
    public static func accept(_ fd: Int32) -> Result<(Int32, SocketAddress?), SystemError> {
        while true {
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let client = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { cs_accept4(fd, $0, &length, Int32(SOCK_CLOEXEC.rawValue)) }
            }
            if client >= 0 { return .success((client, SocketAddress(storage: storage, length: length))) }
            if errno == EINTR || errno == ECONNABORTED { continue }
            return .failure(SystemError("unable to accept"))
        }
    }

    public static func localAddress(_ fd: Int32) -> SocketAddress? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let r = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return r == 0 ? SocketAddress(storage: storage, length: length) : nil
    }

    public static func remoteAddress(_ fd: Int32) -> SocketAddress? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let r = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) }
        }
        return r == 0 ? SocketAddress(storage: storage, length: length) : nil
    }

    /// Connects within `timeout` seconds, optionally from `local`; returns a blocking socket.
    public static func connect(to remote: SocketAddress, from local: IPAddress? = nil,
                               timeout: Double) -> Result<Int32, SystemError> {
        let family: Int32
        switch remote {
        case .unix: family = AF_UNIX
        case .inet(let ip, _, _): family = ip.unmappedIsV4 ? AF_INET : AF_INET6
        }
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return .failure(SystemError("unable to create socket")) }
        if let local {
            let r = SocketAddress.inet(local, port: 0, scope: 0).withSockaddr(family: family) { bind(fd, $0, $1) }
            if r != 0 {
                let e = SystemError("unable to bind", local.description)
                close(fd)
                return .failure(e)
            }
        }
        let target: SocketAddress
        if case .inet(let ip, let port, let scope) = remote { target = .inet(ip.unmapped, port: port, scope: scope) } else { target = remote }
        let r = target.withSockaddr(family: family) { Glibc.connect(fd, $0, $1) }
        if r != 0 && errno != EINPROGRESS {
            let e = SystemError("unable to connect to", remote.description)
            close(fd)
            return .failure(e)
        }
        if r != 0 {
            guard FD.waitUntil(fd, events: Int16(POLLOUT), timeout: Int32(timeout * 1000)) else {
                close(fd)
                return .failure(SystemError("unable to connect to", remote.description, errno: ETIMEDOUT))
            }
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
            if error != 0 {
                close(fd)
                return .failure(SystemError("unable to connect to", remote.description, errno: error))
            }
        }
        FD.setNonBlocking(fd, false)
        return .success(fd)
    }

    public static func setNoDelay(_ fd: Int32) {
        var on: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Drops IP options a client may have set (source routing), as tcpserver -O.
    public static func removeIPOptions(_ fd: Int32) {
        setsockopt(fd, Int32(IPPROTO_IP), IP_OPTIONS, nil, 0)
    }

    public static func setLinger(_ fd: Int32, seconds: Int32) {
        var l = linger(l_onoff: 1, l_linger: seconds)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
    }
}

