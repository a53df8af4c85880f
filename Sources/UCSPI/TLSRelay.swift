// The relay between a TLS channel and a program's plain pipe pair ("translate" in the
// reference): decrypted network data to the program, its output encrypted back.
import Core
import Glibc

public enum TLSRelay {
    /// Copies until either side ends; false on an error or when `idleTimeout` seconds pass
    /// with no data in either direction.
    public static func run(channel: any TLSChannel, clearInput: Int32, clearOutput: Int32,
                           idleTimeout: Double, diagnostics: Diagnostics) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            if channel.pending == 0 {
                var fds = [pollfd(fd: channel.fd, events: Int16(POLLIN), revents: 0),
                           pollfd(fd: clearInput, events: Int16(POLLIN), revents: 0)]
                let ready = poll(&fds, 2, Int32(min(idleTimeout, 86400) * 1000))
                if ready == 0 {
                    diagnostics.warning("timeout reached without input from network or child")
                    return false
                }
                if ready < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                if fds[1].revents != 0 {
                    let n = buffer.withUnsafeMutableBytes { read(clearInput, $0.baseAddress, $0.count) }
                    if n <= 0 { return n == 0 }
                    var sent = 0
                    while sent < n {
                        let w = buffer.withUnsafeBytes { channel.write(UnsafeRawBufferPointer(rebasing: $0[sent..<n])) }
                        guard case .success(let k) = w, k > 0 else { return false }
                        sent += k
                    }
                }
                if fds[0].revents == 0 { continue }
            }
            switch buffer.withUnsafeMutableBytes({ channel.read(into: $0) }) {
            case .failure: return false
            case .success(0): return true
            case .success(let n):
                guard case .success = buffer.withUnsafeBytes({ FD.writeAll(clearOutput, UnsafeRawBufferPointer(rebasing: $0[0..<n])) }) else {
                    return false
                }
            }
        }
    }
}
