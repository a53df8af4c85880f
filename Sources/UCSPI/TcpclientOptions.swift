// tcpclient's command line as a value (ucspi-tcp §6.1, §6.2), parsed without effects.
import Core

/// The STARTTLS dialogue tcpclient runs before the handshake (-s).
public enum StartTLSProtocol: String, Equatable, Sendable {
    case smtp, pop3, imap

    public init?(option: String) { self.init(rawValue: option.lowercased()) }
}

struct TcpclientOptions: Equatable {
    enum Target: Equatable {
        case tcp(host: String, port: String)
        case unix(String)
    }

    var verbosity = 1
    var noDelay = false
    var reverseLookup = true
    var ident = true
    var identTimeout = 26.0
    /// -T x+y: every address gets x seconds, then those that timed out get y more.
    var connectFirst = 2.0
    var connectSecond = 58.0
    var dataTimeout = 300.0
    var localIP: IPAddress?
    var localPort: UInt16 = 0
    var localHostName: String?
    var ipv4Only = false
    var forceV6 = false
    var interface: String?
    var useHostsFile = false
    /// -n given: TLS on (its value, possibly empty, is the certificate).
    var tls: TLSOptions?
    var startTLS: StartTLSProtocol?
    var providerDetails = false
    var target = Target.tcp(host: "", port: "")
    var program: [[UInt8]] = []

    static let usage = "tcpclient [ -46hHrRdDqQvez ] [ -i localip ] [ -p localport ] [ -l localname ] [ -I interface ] [ -T timeoutconn ] [ -t timeoutinfo ] [ -a timeoutdata ] [ -n clientcert ] [ -C certdir ] [ -c cafile ] [ -L crlfile ] [ -f cipherfile ] [ -M method ] [ -m host ] [ -s smtp|pop3|imap ] host port [ program ] | socketpath [ program ]"

    enum ParseError: Error, Equatable, CustomStringConvertible {
        case usage(String)
        /// -s without -n: the reference's exit 100 with its own message.
        case startTLSWithoutTLS
        var description: String {
            switch self {
            case .usage(let why): return why
            case .startTLSWithoutTLS: return "STARTTLS options require Certificates"
            }
        }
    }

    /// The leading decimal digits of `text` (scan_ulong: "12x" is 12, "x" is 0).
    static func leadingNumber(_ text: Substring) -> (value: Double, rest: Substring) {
        let digits = text.prefix { $0.isASCII && $0.isNumber }
        return (Double(digits.prefix(15)).map { $0 } ?? 0, text.dropFirst(digits.count))
    }

    static func parse(_ arguments: [[UInt8]]) -> Result<TcpclientOptions, ParseError> {
        var o = TcpclientOptions()
        let strings = arguments.map { String(decoding: $0, as: UTF8.self) }
        let parser = OptionParser("dDvqQhHrRi:p:t:T:l:a:e46I:n:c:C:s:m:f:M:L:z")
        let parsed: (items: [OptionParser.Item], operandIndex: Int)
        switch parser.parse(strings) {
        case .success(let p): parsed = p
        case .failure(let e): return .failure(.usage(e.description))
        }
        var tls = TLSOptions()
        var tlsOn = false
        for item in parsed.items {
            switch item {
            case .flag("d"): o.noDelay = false
            case .flag("D"): o.noDelay = true
            case .flag("v"): o.verbosity = 2
            case .flag("q"): o.verbosity = 0
            case .flag("Q"): o.verbosity = 1
            case .flag("h"): o.reverseLookup = true
            case .flag("H"): o.reverseLookup = false
            case .flag("r"): o.ident = true
            case .flag("R"): o.ident = false
            case .flag("e"): o.useHostsFile = true
            case .flag("4"): o.ipv4Only = true
            case .flag("6"): o.forceV6 = true
            case .flag("z"): o.providerDetails = true
            case .value("i", let v):
                guard let ip = IPAddress.parse(v) else { return .failure(.usage("invalid local IP address \(v)")) }
                o.localIP = ip
            case .value("p", let v):
                let n = leadingNumber(Substring(v)).value
                guard n <= 65535 else { return .failure(.usage("invalid local port \(v)")) }
                o.localPort = UInt16(n)
            case .value("t", let v): o.identTimeout = leadingNumber(Substring(v)).value
            case .value("T", let v):
                let first = leadingNumber(Substring(v))
                var rest = first.rest
                if rest.first == "+" { rest = rest.dropFirst() }
                o.connectFirst = first.value
                o.connectSecond = leadingNumber(rest).value
            case .value("l", let v): o.localHostName = v
            case .value("a", let v): o.dataTimeout = leadingNumber(Substring(v)).value
            case .value("I", let v): o.interface = v
            case .value("n", let v): tlsOn = true; tls.certificate = v.isEmpty ? nil : v
            case .value("c", let v): tls.caFile = v.isEmpty ? nil : v
            case .value("C", let v): tls.certificateDirectory = v.isEmpty ? nil : v
            case .value("L", let v): tls.crlFile = v.isEmpty ? nil : v
            case .value("f", let v): tls.cipherFile = v
            case .value("M", let v): tls.method = v
            case .value("m", let v): tls.verifyHost = v
            case .value("s", let v):
                guard let p = StartTLSProtocol(option: v) else { return .failure(.usage("-s wants smtp, pop3 or imap")) }
                o.startTLS = p
            default: return .failure(.usage("unknown option"))
            }
        }
        if tlsOn { o.tls = tls }
        var rest = Array(arguments[parsed.operandIndex...])
        guard let hostBytes = rest.first else { return .failure(.usage("missing host")) }
        rest.removeFirst()
        var host = String(decoding: hostBytes, as: UTF8.self)
        if host.hasPrefix("/") {
            o.target = .unix(host)
        } else {
            guard let port = rest.first else { return .failure(.usage("missing port")) }
            rest.removeFirst()
            if host.isEmpty || host == "0" { host = o.ipv4Only ? "127.0.0.1" : "::1" }
            o.target = .tcp(host: host, port: String(decoding: port, as: UTF8.self))
        }
        o.program = rest
        if o.startTLS != nil && o.tls == nil { return .failure(.startTLSWithoutTLS) }
        return .success(o)
    }
}
