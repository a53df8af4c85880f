// Name and address lookups shared by tcpclient and tcpserver: name to addresses, timed
// connects from a chosen local address, reverse names, the ident (RFC 1413) lookup.
import CSupport
import Core
import Glibc

enum NetworkLookups {
    enum ResolveFailure: Error, Equatable {
        case noAddress
        case temporary(String)
    }

    /// A literal (bare or in brackets) as itself; anything else through getaddrinfo, which
    /// on this dynamically linked binary honours nsswitch.conf (/etc/hosts, then DNS).
    static func resolve(_ host: String, ipv4Only: Bool) -> Result<[IPAddress], ResolveFailure> {
        var literal = Substring(host)
        if literal.hasPrefix("[") && literal.hasSuffix("]") { literal = literal.dropFirst().dropLast() }
        if let ip = IPAddress.parse(literal) { return .success([ip]) }
        var hints = addrinfo()
        hints.ai_family = ipv4Only ? AF_INET : AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_ADDRCONFIG
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, nil, &hints, &list)
        defer { if let list { freeaddrinfo(list) } }
        switch rc {
        case 0: break
        case EAI_NONAME, EAI_FAMILY, -5 /* EAI_NODATA, a GNU name Glibc does not export */:
            return .failure(.noAddress)
        case EAI_SYSTEM:
            return .failure(.temporary(SystemError.describe(errno)))
        default:
            return .failure(.temporary(gai_strerror(rc).map { String(cString: $0) } ?? "error \(rc)"))
        }
        var out: [IPAddress] = []
        var p = list
        while let entry = p {
            if let sa = entry.pointee.ai_addr {
                var storage = sockaddr_storage()
                withUnsafeMutableBytes(of: &storage) { raw in
                    raw.copyMemory(from: UnsafeRawBufferPointer(start: sa, count: min(Int(entry.pointee.ai_addrlen), raw.count)))
                }
                if let address = SocketAddress(storage: storage, length: entry.pointee.ai_addrlen)?.ip,
                   !out.contains(address) {
                    out.append(address)
                }
            }
            p = entry.pointee.ai_next
        }
        return out.isEmpty ? .failure(.noAddress) : .success(out)
    }

    /// A port number or a /etc/services name.
    static func port(_ text: String) -> UInt16? {
        if !text.isEmpty, text.allSatisfy({ $0.isASCII && $0.isNumber }) {
            return UInt16(text.prefix(6)).flatMap { $0 }
        }
        guard let entry = getservbyname(text, "tcp") else { return nil }
        return UInt16(bigEndian: UInt16(truncatingIfNeeded: entry.pointee.s_port))
    }

    /// Connects within `timeout` seconds; the socket is returned in blocking mode.
    /// On a timeout the error's errno is ETIMEDOUT.
    static func connect(to remote: IPAddress, port: UInt16, scope: UInt32, from local: IPAddress?,
                        localPort: UInt16, ipv4Only: Bool, forceV6: Bool,
                        timeout: Double) -> Result<Int32, SystemError> {
        let v4 = ipv4Only || (remote.unmappedIsV4 && (local?.unmappedIsV4 ?? true) && !forceV6)
        let family = v4 ? AF_INET : AF_INET6
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return .failure(SystemError("unable to create socket")) }
        if local != nil || localPort != 0 {
            let any: IPAddress = v4 ? .v4(0, 0, 0, 0) : .v6([UInt8](repeating: 0, count: 16))
            let bindTo = SocketAddress.inet(v4 ? (local ?? any).unmapped : (local ?? any), port: localPort, scope: scope)
            if bindTo.withSockaddr(family: family, { bind(fd, $0, $1) }) != 0 {
                let e = SystemError("unable to bind socket")
                close(fd)
                return .failure(e)
            }
        }
        let target = SocketAddress.inet(v4 ? remote.unmapped : remote, port: port, scope: scope)
        var r = target.withSockaddr(family: family) { Glibc.connect(fd, $0, $1) }
        if r != 0 && errno == EINTR { r = -1; errno = EINPROGRESS }
        if r != 0 && errno != EINPROGRESS {
            let e = SystemError("unable to connect")
            close(fd)
            return .failure(e)
        }
        if r != 0 {
            guard FD.waitUntil(fd, events: Int16(POLLOUT), deadline: MonotonicClock.now() + timeout) else {
                close(fd)
                return .failure(SystemError("unable to connect", errno: ETIMEDOUT))
            }
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
            if error != 0 {
                close(fd)
                return .failure(SystemError("unable to connect", errno: error))
            }
        }
        FD.setNonBlocking(fd, false)
        return .success(fd)
    }

    static func connectUnix(_ path: String, timeout: Double) -> Result<Int32, SystemError> {
        Socket.connect(to: .unix(path), timeout: timeout)
    }

    /// The reverse name of `ip`, lowercased, odd bytes escaped as \ooo; nil when none.
    static func reverseName(_ ip: IPAddress, scope: UInt32 = 0) -> String? {
        var host = [CChar](repeating: 0, count: 1025)
        let address = SocketAddress.inet(ip.unmapped, port: 0, scope: scope)
        let rc = address.withSockaddr { sa, length in
            getnameinfo(sa, length, &host, socklen_t(host.count), nil, 0, NI_NAMEREQD)
        }
        guard rc == 0 else { return nil }
        let bytes = host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        guard !bytes.isEmpty else { return nil }
        var out = ""
        for b in bytes {
            let c = (b >= 65 && b <= 90) ? b + 32 : b
            if (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c == 45 || c == 95 || c == 46 {
                out.unicodeScalars.append(Unicode.Scalar(c))
            } else {
                out += "\\" + String(c >> 6) + String((c >> 3) & 7) + String(c & 7)
            }
        }
        return out
    }

    /// RFC 1413: ask the remote host's identd who owns our connection, within `timeout`
    /// seconds for the whole exchange (§0). nil when anything fails.
    static func remoteInfo(local: IPAddress, localPort: UInt16, remote: IPAddress, remotePort: UInt16,
                           scope: UInt32, timeout: Double) -> String? {
        let deadline = MonotonicClock.now() + timeout
        guard timeout > 0, case .success(let fd) = connect(to: remote, port: 113, scope: scope, from: local, localPort: 0,
                                                             ipv4Only: false, forceV6: false, timeout: timeout) else { return nil }
        defer { close(fd) }
        FD.setNonBlocking(fd)
        let query = Array("\(remotePort) , \(localPort)\r\n".utf8)
        var sent = 0
        while sent < query.count {
            guard FD.waitUntil(fd, events: Int16(POLLOUT), deadline: deadline) else { return nil }
            let n = query[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n > 0 { sent += n } else if n < 0 && errno != EAGAIN && errno != EINTR { return nil }
        }
        var colons = 0
        var answer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 512)
        while true {
            guard FD.waitUntil(fd, events: Int16(POLLIN), deadline: deadline) else { return nil }
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && (errno == EAGAIN || errno == EINTR) { continue }
            guard n > 0 else { return nil }
            for b in chunk[0..<n] {
                if b == 10 { return String(decoding: answer, as: UTF8.self) }
                if b == 32 || b == 9 || b == 13 { continue }
                if colons < 3 {
                    if b == UInt8(ascii: ":") { colons += 1 }
                } else if answer.count < 256 {
                    answer.append(b)
                }
            }
        }
    }
}
