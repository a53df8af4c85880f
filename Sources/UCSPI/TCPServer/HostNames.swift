// Reverse and forward host-name lookups for tcpserver's children (the system resolver:
// tcpserver lives in the dynamically linked indimail-tls, so NSS is available), and the
// RFC 1413 ident query.
import Core
import Glibc

enum HostNames {
    /// The lowercased name of `ip`, or nil when it has none.
    static func reverse(_ ip: IPAddress) -> String? {
        SocketAddress.inet(ip.unmapped, port: 0, scope: 0).withSockaddr { address, length -> String? in
            var host = [CChar](repeating: 0, count: 1025)
            guard getnameinfo(address, length, &host, socklen_t(host.count), nil, 0, NI_NAMEREQD) == 0 else { return nil }
            return String(cString: host).lowercased()
        }
    }

    /// Every address `name` resolves to (A and AAAA).
    static func forward(_ name: String) -> [IPAddress] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(name, nil, &hints, &list) == 0 else { return [] }
        defer { freeaddrinfo(list) }
        var result: [IPAddress] = []
        var cursor = list
        while let entry = cursor {
            if let sa = entry.pointee.ai_addr {
                var storage = sockaddr_storage()
                withUnsafeMutableBytes(of: &storage) { raw in
                    raw.copyMemory(from: UnsafeRawBufferPointer(start: sa, count: Int(entry.pointee.ai_addrlen)))
                }
                if let address = SocketAddress(storage: storage, length: entry.pointee.ai_addrlen)?.ip {
                    result.append(address.unmapped)
                }
            }
            cursor = entry.pointee.ai_next
        }
        return result
    }

    /// RFC 1413: ask the client's identd (port 113) who owns the connection, within `timeout`.
    static func ident(local: IPAddress, localPort: UInt16, remote: IPAddress, remotePort: UInt16,
                      timeout: Double) -> String? {
        let deadline = MonotonicClock.now() + timeout
        guard case .success(let fd) = Socket.connect(to: .inet(remote.unmapped, port: 113, scope: 0),
                                                     from: local.unmapped, timeout: timeout) else { return nil }
        defer { close(fd) }
        FD.setNonBlocking(fd)
        let query = Array("\(remotePort) , \(localPort)\r\n".utf8)
        guard case .success = FD.writeAll(fd, query) else { return nil }
        var reply: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 512)
        while !reply.contains(10) {
            let left = deadline - MonotonicClock.now()
            guard left > 0, FD.waitUntil(fd, events: Int16(POLLIN), timeout: Int32(left * 1000)) else { return nil }
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { return nil }
            reply += chunk[0..<n]
            if reply.count > 4096 { return nil }
        }
        return parseIdentReply(reply)
    }

    /// Skips blanks and CR, drops everything up to the third ':', keeps at most 256 bytes
    /// up to the newline (the reference's parse).
    static func parseIdentReply(_ reply: [UInt8]) -> String? {
        var colons = 0
        var info: [UInt8] = []
        for byte in reply {
            if byte == 10 { return colons >= 3 ? String(decoding: info, as: UTF8.self) : nil }
            if byte == 32 || byte == 9 || byte == 13 { continue }
            if colons < 3 {
                if byte == UInt8(ascii: ":") { colons += 1 }
                continue
            }
            if info.count < 256 { info.append(byte) }
        }
        return nil
    }
}

enum ServerLog {
    /// Log field as the reference prints it: bytes outside 33…126 and '%' become '?',
    /// and long fields are cut at 100 bytes with "..." appended.
    static func field(_ text: String) -> String {
        var bytes = Array(text.utf8)
        let cut = bytes.count > 100
        if cut { bytes = Array(bytes.prefix(100)) }
        let safe = bytes.map { $0 < 33 || $0 > 126 || $0 == UInt8(ascii: "%") ? UInt8(ascii: "?") : $0 }
        return String(decoding: safe, as: UTF8.self) + (cut ? "..." : "")
    }
}
