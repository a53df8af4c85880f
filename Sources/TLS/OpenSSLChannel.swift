// One TLS session over non-blocking fds: handshake, reads and writes bounded by poll
// timeouts, close_notify, and what the programs log about a session.
import COpenSSL
import Core
import Glibc

final class OpenSSLChannel: TLSChannel {
    private let ssl: OpaquePointer
    let fd: Int32
    let outputFD: Int32
    var ioTimeout: Double = 300
    /// After a fatal error OpenSSL forbids SSL_shutdown.
    private var broken = false
    private var closeSent = false

    init(ssl: OpaquePointer, input: Int32, output: Int32) {
        self.ssl = ssl
        self.fd = input
        self.outputFD = output
    }

    deinit { SSL_free(ssl) }

    // MARK: handshake

    func handshake(timeout: Double) -> Result<Void, TLSError> {
        FD.setNonBlocking(fd)
        if outputFD != fd { FD.setNonBlocking(outputFD) }
        let deadline = MonotonicClock.now() + timeout
        let isServer = SSL_is_server(ssl) != 0
        let what = isServer ? "TLS accept" : "TLS connect"
        while true {
            ERR_clear_error()
            errno = 0
            let r = SSL_do_handshake(ssl)
            if r == 1 { return .success(()) }
            let savedErrno = errno
            let code = SSL_get_error(ssl, r)
            switch code {
            case SSL_ERROR_WANT_READ:
                if !FD.waitUntil(fd, events: Int16(POLLIN), deadline: deadline) {
                    broken = true
                    return .failure(TLSError("\(what): timed out"))
                }
            case SSL_ERROR_WANT_WRITE:
                if !FD.waitUntil(outputFD, events: Int16(POLLOUT), deadline: deadline) {
                    broken = true
                    return .failure(TLSError("\(what): timed out"))
                }
            default:
                broken = true
                var reason = OpenSSLErrors.drain()
                    ?? (savedErrno != 0 ? SystemError.describe(savedErrno) : "connection closed by peer")
                let verify = SSL_get_verify_result(ssl)
                if !isServer, verify != X509_V_OK, let text = X509_verify_cert_error_string(verify) {
                    reason += " (\(String(cString: text)))"
                }
                return .failure(TLSError("\(what): \(reason)"))
            }
        }
    }

    // MARK: I/O

    func tryRead(into buffer: UnsafeMutableRawBufferPointer) -> Result<TLSProgress, TLSError> {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return .failure(TLSError("read into an empty buffer")) }
        while true {
            ERR_clear_error()
            errno = 0
            let n = SSL_read(ssl, base, Int32(clamping: buffer.count))
            if n > 0 { return .success(.done(Int(n))) }
            let savedErrno = errno
            switch SSL_get_error(ssl, n) {
            case SSL_ERROR_ZERO_RETURN: return .success(.done(0))
            case SSL_ERROR_WANT_READ: return .success(.wantRead)
            case SSL_ERROR_WANT_WRITE: return .success(.wantWrite)
            case SSL_ERROR_SYSCALL:
                if let queued = OpenSSLErrors.drain() { broken = true; return .failure(TLSError(queued)) }
                if savedErrno == EINTR { continue }
                broken = true
                // EOF without close_notify counts as the end of the session.
                if savedErrno == 0 { return .success(.done(0)) }
                return .failure(TLSError(SystemError.describe(savedErrno)))
            default:
                broken = true
                return .failure(OpenSSLErrors.error("TLS read"))
            }
        }
    }

    func tryWrite(_ bytes: UnsafeRawBufferPointer) -> Result<TLSProgress, TLSError> {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return .success(.done(0)) }
        while true {
            ERR_clear_error()
            errno = 0
            let n = SSL_write(ssl, base, Int32(clamping: bytes.count))
            if n > 0 { return .success(.done(Int(n))) }
            let savedErrno = errno
            switch SSL_get_error(ssl, n) {
            case SSL_ERROR_WANT_READ: return .success(.wantRead)
            case SSL_ERROR_WANT_WRITE: return .success(.wantWrite)
            case SSL_ERROR_SYSCALL:
                if let queued = OpenSSLErrors.drain() { broken = true; return .failure(TLSError(queued)) }
                if savedErrno == EINTR { continue }
                broken = true
                return .failure(TLSError(savedErrno != 0 ? SystemError.describe(savedErrno) : "connection closed by peer"))
            case SSL_ERROR_ZERO_RETURN:
                broken = true
                return .failure(TLSError("session closed by peer"))
            default:
                broken = true
                return .failure(OpenSSLErrors.error("TLS write"))
            }
        }
    }

    var pending: Int {
        let n = Int(SSL_pending(ssl))
        return n > 0 ? n : (SSL_has_pending(ssl) != 0 ? 1 : 0)
    }

    func shutdown() {
        guard !closeSent, !broken else { return }
        closeSent = true
        // One close_notify; a full socket buffer gets a short wait, never the peer's reply.
        let deadline = MonotonicClock.now() + 1
        while true {
            ERR_clear_error()
            let r = SSL_shutdown(ssl)
            if r >= 0 { break }
            if SSL_get_error(ssl, r) == SSL_ERROR_WANT_WRITE,
               FD.waitUntil(outputFD, events: Int16(POLLOUT), deadline: deadline) { continue }
            break
        }
        ERR_clear_error()
    }

    // MARK: what the logs say

    var protocolVersion: String { SSL_get_version(ssl).map { String(cString: $0) } ?? "unknown" }

    var cipherName: String {
        guard let cipher = SSL_get_current_cipher(ssl), let name = SSL_CIPHER_get_name(cipher) else { return "NONE" }
        return String(cString: name)
    }

    var cipherBits: Int32 {
        guard let cipher = SSL_get_current_cipher(ssl) else { return 0 }
        return SSL_CIPHER_get_bits(cipher, nil)
    }

    var channelBinding: [UInt8]? {
        guard SSL_is_init_finished(ssl) != 0 else { return nil }
        if SSL_version(ssl) >= TLS1_3_VERSION {
            var out = [UInt8](repeating: 0, count: 32)
            let label = Array("EXPORTER-Channel-Binding".utf8).map { CChar(bitPattern: $0) }
            let ok = SSL_export_keying_material(ssl, &out, out.count, label, label.count, nil, 0, 0)
            ERR_clear_error()
            return ok == 1 ? out : nil
        }
        // tls-unique: the first Finished message of the handshake, the client's on a full
        // handshake, the server's on a resumed one.
        var out = [UInt8](repeating: 0, count: 128)
        let server = SSL_is_server(ssl) != 0
        let resumed = SSL_session_reused(ssl) != 0
        let ownIsFirst = server == resumed
        let n = ownIsFirst ? SSL_get_finished(ssl, &out, out.count) : SSL_get_peer_finished(ssl, &out, out.count)
        guard n > 0, n <= out.count else { return nil }
        return Array(out[0..<n])
    }

    var peerSubject: String? {
        guard let cert = SSL_get1_peer_certificate(ssl) else { return nil }
        defer { X509_free(cert) }
        guard let name = X509_get_subject_name(cert) else { return nil }
        var buffer = [CChar](repeating: 0, count: 512)
        guard X509_NAME_oneline(name, &buffer, Int32(buffer.count)) != nil else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
