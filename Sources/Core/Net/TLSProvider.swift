// The seam between the network programs and a TLS library. Core only names the shapes;
// the OpenSSL implementation lives in the TLS module, linked into indimail-tls alone, and
// reaches commands through CommandContext.tls.

import Glibc

public struct TLSError: Error, Equatable, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Where a context's files come from and how it negotiates (ucspi-tcp §9).
public struct TLSSettings: Equatable, Sendable {
    /// PEM file with the certificate chain and the private key. Required for a server
    /// context; optional for a client (no client certificate is offered without it).
    public var certificateFile: String?
    /// Directory of trusted certificates (hashed names, as OpenSSL's -CApath).
    public var certificateDirectory: String?
    public var caFile: String?
    public var crlFile: String?
    /// OpenSSL cipher string for TLS 1.2 and older.
    public var cipherList: String?
    /// TLS 1.3 cipher suites.
    public var cipherSuites: String?
    /// "TLSv1", "TLSv1_1", "TLSv1_2", "TLSv1_3" (or with a dot: "TLSv1.2"), as the
    /// reference's -M; "SSLv23" means no bound. nil = the default: TLS 1.2 minimum, no
    /// maximum. SSLv2 and SSLv3 are refused.
    public var minimumVersion: String?
    public var maximumVersion: String?
    public var allowClientRenegotiation = false
    /// Client side: verify the server's certificate chain (caFile, or else the system store
    /// and certificateDirectory) and that it names this host (or IP address).
    public var verifyHost: String?
    /// Server side: ask for a client certificate (any is accepted, as the reference).
    public var requestClientCertificate = true
    /// Server side: PEM file of Diffie-Hellman parameters; automatic parameters when nil
    /// or unreadable.
    public var dhParametersFile: String?

    public init() {}
}

/// How far a non-blocking TLS call got.
public enum TLSProgress: Equatable, Sendable {
    /// Bytes moved. For a read, 0 means the peer ended the session (close_notify or EOF).
    case done(Int)
    /// Nothing moved: call again once the input fd is readable.
    case wantRead
    /// Nothing moved: call again once the output fd is writable.
    case wantWrite
}

/// One TLS session over a connected socket (or a pair of fds). The channel never closes
/// its fds; they stay non-blocking after the handshake. Writes to a peer that has gone
/// raise SIGPIPE unless the process ignores it, as every program of the suite does.
public protocol TLSChannel: AnyObject {
    /// The fd the session reads from.
    var fd: Int32 { get }
    /// The fd it writes to: `fd` itself unless the transport is a pair of pipes.
    var outputFD: Int32 { get }
    /// Seconds the blocking `read` and `write` wait for the peer before failing.
    var ioTimeout: Double { get set }
    /// Decrypted bytes, waiting up to ioTimeout; 0 means the peer closed the session.
    func read(into buffer: UnsafeMutableRawBufferPointer) -> Result<Int, TLSError>
    /// Writes every byte, waiting up to ioTimeout whenever the peer stalls.
    func write(_ bytes: UnsafeRawBufferPointer) -> Result<Int, TLSError>
    /// One non-blocking read. The buffer must not be empty.
    func tryRead(into buffer: UnsafeMutableRawBufferPointer) -> Result<TLSProgress, TLSError>
    /// One non-blocking write; after .wantRead/.wantWrite call again with the same bytes.
    func tryWrite(_ bytes: UnsafeRawBufferPointer) -> Result<TLSProgress, TLSError>
    /// Bytes readable without waiting for the fd (decrypted data buffered in the library;
    /// at least 1 when an undecrypted record is buffered).
    var pending: Int { get }
    /// Sends close_notify once, without waiting for the peer's; the session can still be
    /// read until the peer closes its side.
    func shutdown()
    var protocolVersion: String { get }
    var cipherName: String { get }
    var cipherBits: Int32 { get }
    /// Channel-binding data for SCRAM-PLUS: tls-exporter (RFC 9266) under TLS 1.3,
    /// tls-unique (RFC 5929) under TLS 1.2; nil when unavailable.
    var channelBinding: [UInt8]? { get }
    /// The peer certificate's subject in OpenSSL's one-line form, when one was sent.
    var peerSubject: String? { get }
}

/// The blocking forms, built once on the non-blocking ones for every channel.
extension TLSChannel {
    public func read(into buffer: UnsafeMutableRawBufferPointer) -> Result<Int, TLSError> {
        let deadline = MonotonicClock.now() + ioTimeout
        while true {
            switch tryRead(into: buffer) {
            case .failure(let e): return .failure(e)
            case .success(.done(let n)): return .success(n)
            case .success(.wantRead):
                guard FD.waitUntil(fd, events: Int16(POLLIN), deadline: deadline) else { return .failure(TLSError("timed out")) }
            case .success(.wantWrite):
                guard FD.waitUntil(outputFD, events: Int16(POLLOUT), deadline: deadline) else { return .failure(TLSError("timed out")) }
            }
        }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) -> Result<Int, TLSError> {
        var offset = 0
        var deadline = MonotonicClock.now() + ioTimeout
        while offset < bytes.count {
            switch tryWrite(UnsafeRawBufferPointer(rebasing: bytes[offset...])) {
            case .failure(let e): return .failure(e)
            case .success(.done(let n)):
                offset += n
                deadline = MonotonicClock.now() + ioTimeout
            case .success(.wantRead):
                guard FD.waitUntil(fd, events: Int16(POLLIN), deadline: deadline) else { return .failure(TLSError("timed out")) }
            case .success(.wantWrite):
                guard FD.waitUntil(outputFD, events: Int16(POLLOUT), deadline: deadline) else { return .failure(TLSError("timed out")) }
            }
        }
        return .success(offset)
    }
}

public protocol TLSContext: AnyObject {
    /// Server handshake reading `input` and writing `output`, bounded by `timeout` seconds.
    func accept(input: Int32, output: Int32, timeout: Double) -> Result<any TLSChannel, TLSError>
    /// Client handshake (SNI = serverName unless it is an IP literal), bounded by `timeout`.
    func connect(input: Int32, output: Int32, serverName: String?,
                 timeout: Double) -> Result<any TLSChannel, TLSError>
    /// The protocol version the library names before a handshake, for TLS_PROVIDER's
    /// "Server=" field (the reference's SSL_get_version on a fresh session).
    var protocolName: String { get }
}

extension TLSContext {
    /// Server handshake on a socket.
    public func accept(fd: Int32, timeout: Double) -> Result<any TLSChannel, TLSError> {
        accept(input: fd, output: fd, timeout: timeout)
    }

    /// Client handshake on a socket.
    public func connect(fd: Int32, serverName: String?, timeout: Double) -> Result<any TLSChannel, TLSError> {
        connect(input: fd, output: fd, serverName: serverName, timeout: timeout)
    }
}

/// A TLS implementation. Building a context reads files and nothing else (no global state,
/// no key generation), so a daemon can build a new one on SIGHUP and drop the old.
public protocol TLSLibrary {
    static var versionText: String { get }
    static func serverContext(_ settings: TLSSettings) -> Result<any TLSContext, TLSError>
    static func clientContext(_ settings: TLSSettings) -> Result<any TLSContext, TLSError>
}

/// Keyed digests from the TLS library, for challenge-response SASL mechanisms (CRAM-MD5 and
/// friends) in programs that already run inside indimail-tls.
public protocol TLSDigests {
    /// HMAC of `data` with `key` using the digest OpenSSL calls `algorithm` ("md5",
    /// "sha1", "sha256", "ripemd160", …); nil when the library does not know it.
    static func hmac(_ algorithm: String, key: [UInt8], data: [UInt8]) -> [UInt8]?
    /// The plain digest of `data`.
    static func digest(_ algorithm: String, data: [UInt8]) -> [UInt8]?
    /// PBKDF2 with HMAC-`algorithm` (SCRAM's salted password), `length` bytes.
    static func pbkdf2(_ algorithm: String, password: [UInt8], salt: [UInt8], iterations: Int, length: Int) -> [UInt8]?
}
