// dotls's command line as a value (ucspi-tcp §12.1), parsed without effects.
import Core

struct DotlsOptions: Equatable {
    enum Mode: Equatable {
        /// Under tcpserver: fds 0/1 are the client.
        case server
        /// Under tcpclient: fds 6/7 are the server; prog gets fds 0/1 (-T) or 6/7 (-C).
        case client(programOnSixSeven: Bool)
    }

    var verbosity = 1
    var mode = Mode.server
    var tls = TLSOptions()
    /// -t: the handshake's bound.
    var handshakeTimeout = 60.0
    /// -D: idle bound of the relay and of the plaintext dialogue.
    var dataTimeout = 300.0
    var startTLS: StartTLSProtocol?
    var providerDetails = false
    var program: [[UInt8]] = []

    static let usage = "dotls [ -qQvNCTz ] [ -h host ] [ -D timeoutdata ] [ -t timeoutconn ] [ -d certdir ] [ -n cert ] [ -f cipherfile ] [ -M method ] [ -c cafile ] [ -L crlfile ] [ -s smtp|pop3|imap ] program [ arg ... ]"

    static func parse(_ arguments: [[UInt8]]) -> Result<DotlsOptions, TcpclientOptions.ParseError> {
        var o = DotlsOptions()
        let strings = arguments.map { String(decoding: $0, as: UTF8.self) }
        let parsed: (items: [OptionParser.Item], operandIndex: Int)
        switch OptionParser("qQvCTNd:s:h:t:n:c:L:f:M:D:z").parse(strings) {
        case .success(let p): parsed = p
        case .failure(let e): return .failure(.usage(e.description))
        }
        for item in parsed.items {
            switch item {
            case .flag("q"): o.verbosity = 0
            case .flag("Q"): o.verbosity = 1
            case .flag("v"): o.verbosity = 2
            case .flag("C"): o.mode = .client(programOnSixSeven: true)
            case .flag("T"): if o.mode == .server { o.mode = .client(programOnSixSeven: false) }
            case .flag("N"): o.tls.allowClientRenegotiation = true
            case .flag("z"): o.providerDetails = true
            case .value("h", let v): o.tls.verifyHost = v.isEmpty ? nil : v
            case .value("D", let v): o.dataTimeout = TcpclientOptions.leadingNumber(Substring(v)).value
            case .value("t", let v): o.handshakeTimeout = TcpclientOptions.leadingNumber(Substring(v)).value
            case .value("d", let v): o.tls.certificateDirectory = v.isEmpty ? nil : v
            case .value("n", let v): o.tls.certificate = v.isEmpty ? nil : v
            case .value("c", let v): o.tls.caFile = v.isEmpty ? nil : v
            case .value("L", let v): o.tls.crlFile = v.isEmpty ? nil : v
            case .value("f", let v): o.tls.cipherFile = v
            case .value("M", let v): o.tls.method = v
            case .value("s", let v):
                guard let p = StartTLSProtocol(option: v) else { return .failure(.usage("-s wants smtp, pop3 or imap")) }
                o.startTLS = p
            default: return .failure(.usage("unknown option"))
            }
        }
        o.program = Array(arguments[parsed.operandIndex...])
        guard !o.program.isEmpty else { return .failure(.usage("missing program")) }
        return .success(o)
    }
}
