// A TLSChannel without TLS: the socket itself, so one relay serves encrypted and
// clear-text sessions alike (tcpclient's client mode without -n).
import Core
import Glibc

public final class PlainChannel: TLSChannel {
    public let fd: Int32
    public let outputFD: Int32
    public var ioTimeout: Double = 300
    private var closeSent = false

    /// Makes `input`/`output` non-blocking; never closes them.
    public init(input: Int32, output: Int32) {
        fd = input
        outputFD = output
        FD.setNonBlocking(input)
        if output != input { FD.setNonBlocking(output) }
    }

    public convenience init(socket: Int32) { self.init(input: socket, output: socket) }

    public func tryRead(into buffer: UnsafeMutableRawBufferPointer) -> Result<TLSProgress, TLSError> {
        guard buffer.count > 0 else { return .failure(TLSError("read into an empty buffer")) }
        while true {
            let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if n >= 0 { return .success(.done(n)) }
            if errno == EINTR { continue }
            if errno == EAGAIN { return .success(.wantRead) }
            return .failure(TLSError(SystemError.describe(errno)))
        }
    }

    public func tryWrite(_ bytes: UnsafeRawBufferPointer) -> Result<TLSProgress, TLSError> {
        guard bytes.count > 0 else { return .success(.done(0)) }
        while true {
            let n = send(outputFD, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL))
            if n >= 0 { return .success(.done(n)) }
            if errno == ENOTSOCK {
                let w = Glibc.write(outputFD, bytes.baseAddress, bytes.count)
                if w >= 0 { return .success(.done(w)) }
            }
            if errno == EINTR { continue }
            if errno == EAGAIN { return .success(.wantWrite) }
            return .failure(TLSError(SystemError.describe(errno)))
        }
    }

    public var pending: Int { 0 }

    /// Half-closes a socket (FIN). The fd is the caller's: a pipe is left as it is.
    public func shutdown() {
        guard !closeSent else { return }
        closeSent = true
        _ = Glibc.shutdown(outputFD, Int32(SHUT_WR))
    }

    public var protocolVersion: String { "" }
    public var cipherName: String { "" }
    public var cipherBits: Int32 { 0 }
    public var channelBinding: [UInt8]? { nil }
    public var peerSubject: String? { nil }
}
