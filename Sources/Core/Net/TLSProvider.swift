// The seam between the network programs and a TLS library. Core only names the shapes;
// the OpenSSL implementation lives in the TLS module, linked into indimail-tls alone, and
// reaches commands through CommandContext.tls.

public struct TLSError: Error, Equatable, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Where a context's files come from and how it negotiates (ucspi-tcp §9).
public struct TLSSettings: Equatable, Sendable {
    /// PEM file with the certificate chain and the private key.
    public var certificateFile: String?
    /// Directory of trusted certificates (hashed names, as OpenSSL's -CApath).
    public var certificateDirectory: String?
    public var caFile: String?
    public var crlFile: String?
    /// OpenSSL cipher string for TLS 1.2 and older.
    public var cipherList: String?
    /// TLS 1.3 cipher suites.
    public var cipherSuites: String?
    /// "TLSv1_2", "TLSv1_3", … as the reference's -M; nil = library default (TLS 1.2+).
    public var minimumVersion: String?
    public var maximumVersion: String?
    public var allowClientRenegotiation = false
    /// Client side: verify the server's certificate against caFile/certificateDirectory and
    /// this host name.
    public var verifyHost: String?
    /// Server side: ask for a client certificate (any is accepted, as the reference).
    public var requestClientCertificate = true

    public init() {}
}

/// One TLS session over a connected socket.
public protocol TLSChannel: AnyObject {
    var fd: Int32 { get }
    /// Decrypted bytes; 0 means the peer closed the session.
    func read(into buffer: UnsafeMutableRawBufferPointer) -> Result<Int, TLSError>
    func write(_ bytes: UnsafeRawBufferPointer) -> Result<Int, TLSError>
    /// Decrypted bytes already buffered inside the library (readable without poll).
    var pending: Int { get }
    func shutdown()
    var protocolVersion: String { get }
    var cipherName: String { get }
    var cipherBits: Int32 { get }
    /// Channel-binding data (tls-unique or tls-exporter) for SCRAM-PLUS, when available.
    var channelBinding: [UInt8]? { get }
}

public protocol TLSContext: AnyObject {
    /// Server handshake on `fd`, bounded by `timeout` seconds.
    func accept(fd: Int32, timeout: Double) -> Result<any TLSChannel, TLSError>
    /// Client handshake on `fd` (SNI = serverName), bounded by `timeout` seconds.
    func connect(fd: Int32, serverName: String?, timeout: Double) -> Result<any TLSChannel, TLSError>
    /// The protocol version this context prefers, for TLS_PROVIDER's "Server=" field.
    var protocolName: String { get }
}

public protocol TLSLibrary {
    static var versionText: String { get }
    static func serverContext(_ settings: TLSSettings) -> Result<any TLSContext, TLSError>
    static func clientContext(_ settings: TLSSettings) -> Result<any TLSContext, TLSError>
}
