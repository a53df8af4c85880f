// tcpserver's command line as a value: parsed without touching the process.
import Core

struct TCPServerOptions: Equatable {
    enum ChildLimit: Equatable { case count(Int), file(String) }
    enum Listen: Equatable { case tcp(host: String, port: String), unix(String) }

    struct TLS: Equatable {
        var certificateFile: String?   // -n (empty = default), nil with -s
        var certificateDirectory: String?
        var caFile: String?
        var crlFile: String?
        var cipherFile: String?
        var method: String?
        var allowRenegotiation = false
        var handshakeTimeout = 60.0
        var providerDetails = false
    }

    var verbosity = 1
    var pidFile: String?
    var childLimit = ChildLimit.count(40)
    var perIPLimit = 20
    var rulesFile: String?
    var rulesMissingOK = false
    var banner: [UInt8]?
    var backlog: Int32 = 20
    var keepIPOptions = false
    var noDelay = false
    var printPort = false
    var ipv4Only = false
    var forceV6 = false
    var interface: String?
    var user: String?
    var group: String?
    var identityFromEnvironment = false
    var reverseLookup = true
    var paranoid = false
    var localHostName: String?
    var ident = true
    var identTimeout = 26.0
    var tlsIdleTimeout = 300.0
    var tls: TLS?
    var listen = Listen.tcp(host: "0", port: "0")
    var program: [[UInt8]] = []

    static let usage = "tcpserver [ -461UXpPhHrRoOdDqQvsNz ] [ -c limit ] [ -C perIPlimit ] [ -x rules.cdb ] [ -B banner ] [ -g gid ] [ -u uid ] [ -b backlog ] [ -l localname ] [ -t timeout ] [ -T idletimeout ] [ -e pidfile ] [ -I interface ] [ -n certfile ] [ -i certdir ] [ -a cafile ] [ -L crlfile ] [ -f cipherfile ] [ -M method ] [ -S timeout ] host port program | socketpath program"

    enum ParseError: Error, Equatable, CustomStringConvertible {
        case usage(String)
        var description: String { if case .usage(let why) = self { return why } else { return "" } }
    }

    /// `maxPerIP` is $MAXPERIP, read before the options as the reference.
    static func parse(_ arguments: [[UInt8]], maxPerIP: String?) -> Result<TCPServerOptions, ParseError> {
        var o = TCPServerOptions()
        if let m = maxPerIP, let n = Int(m), n >= 0 { o.perIPLimit = n }
        let strings = arguments.map { String(decoding: $0, as: UTF8.self) }
        let parser = OptionParser("qQve:c:C:x:Xm:B:b:oOdD146I:u:g:UhHpPl:rRt:T:n:si:a:L:f:M:NS:z")
        let parsed: (items: [OptionParser.Item], operandIndex: Int)
        switch parser.parse(strings) {
        case .success(let p): parsed = p
        case .failure(let e): return .failure(.usage(e.description))
        }
        func number(_ flag: Character, _ text: String) -> Result<Int, ParseError> {
            guard let n = Int(text), n >= 0 else { return .failure(.usage("-\(flag) wants a number: \(text)")) }
            return .success(n)
        }
        var tls = TLS()
        var tlsOn = false
        for item in parsed.items {
            switch item {
            case .flag("q"): o.verbosity = 0
            case .flag("Q"): o.verbosity = 1
            case .flag("v"): o.verbosity = 2
            case .value("e", let v): o.pidFile = v
            case .value("c", let v):
                guard !v.isEmpty else { return .failure(.usage("-c wants a number or a file name")) }
                // All digits: a number; anything else names a file (re-read on SIGHUP).
                if !v.isEmpty, v.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let n = Int(v) {
                    o.childLimit = .count(n)
                } else {
                    o.childLimit = .file(v)
                }
            case .value("C", let v):
                switch number("C", v) { case .success(let n): o.perIPLimit = n; case .failure(let e): return .failure(e) }
            case .value("x", let v): o.rulesFile = v
            case .flag("X"): o.rulesMissingOK = true
            case .value("m", _): return .failure(.usage("-m (MySQL rules) is not supported; use -x with a cdb"))
            case .value("B", let v): o.banner = Array(v.utf8)
            case .value("b", let v):
                switch number("b", v) { case .success(let n): o.backlog = Int32(clamping: n); case .failure(let e): return .failure(e) }
            case .flag("o"): o.keepIPOptions = true
            case .flag("O"): o.keepIPOptions = false
            case .flag("d"): o.noDelay = false
            case .flag("D"): o.noDelay = true
            case .flag("1"): o.printPort = true
            case .flag("4"): o.ipv4Only = true
            case .flag("6"): o.forceV6 = true
            case .value("I", let v): o.interface = v
            case .value("u", let v): o.user = v
            case .value("g", let v): o.group = v
            case .flag("U"): o.identityFromEnvironment = true
            case .flag("h"): o.reverseLookup = true
            case .flag("H"): o.reverseLookup = false
            case .flag("p"): o.paranoid = true
            case .flag("P"): o.paranoid = false
            case .value("l", let v): o.localHostName = v
            case .flag("r"): o.ident = true
            case .flag("R"): o.ident = false
            case .value("t", let v):
                switch number("t", v) { case .success(let n): o.identTimeout = Double(n); case .failure(let e): return .failure(e) }
            case .value("T", let v):
                switch number("T", v) { case .success(let n): o.tlsIdleTimeout = Double(n); case .failure(let e): return .failure(e) }
            case .value("n", let v): tlsOn = true; tls.certificateFile = v.isEmpty ? nil : v
            case .flag("s"): tlsOn = true
            case .value("i", let v): tls.certificateDirectory = v
            case .value("a", let v): tls.caFile = v
            case .value("L", let v): tls.crlFile = v
            case .value("f", let v): tls.cipherFile = v
            case .value("M", let v): tls.method = v
            case .flag("N"): tls.allowRenegotiation = true
            case .value("S", let v):
                switch number("S", v) { case .success(let n): tls.handshakeTimeout = Double(n); case .failure(let e): return .failure(e) }
            case .flag("z"): tls.providerDetails = true
            default: return .failure(.usage("unexpected option"))
            }
        }
        if tlsOn { o.tls = tls }
        var operands = Array(strings[parsed.operandIndex...])
        var raw = Array(arguments[parsed.operandIndex...])
        guard let first = operands.first else { return .failure(.usage("missing host")) }
        if first.hasPrefix("/") {
            o.listen = .unix(first)
            operands.removeFirst(); raw.removeFirst()
        } else {
            guard operands.count >= 2 else { return .failure(.usage("missing port")) }
            o.listen = .tcp(host: first.isEmpty ? "0" : first, port: operands[1])
            operands.removeFirst(2); raw.removeFirst(2)
        }
        guard !raw.isEmpty else { return .failure(.usage("missing program")) }
        o.program = raw
        return .success(o)
    }
}
