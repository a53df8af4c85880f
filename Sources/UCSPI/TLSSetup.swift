// From command-line TLS options and the environment to TLSSettings (ucspi-tcp §9.1, §9.2):
// the part tcpserver, tcpclient and dotls share.
import Core
import Glibc

/// Default file names, and the variables overriding them, for one side of a session.
public struct TLSFileDefaults: Sendable {
    public var certificateVariable = "TLS_CERTFILE"
    public var certificateName: String
    public var caVariable: String
    public var caName: String
    public var crlVariable: String
    public var crlName: String
    /// A default-derived certificate that cannot be read is left out (a client may go
    /// without one) instead of failing the context.
    public var certificateOptional: Bool
    /// Server side: Diffie-Hellman parameters from certdir/dh<$SSL_BITS>.pem.
    public var dhParameters: Bool

    public init(certificateName: String, caVariable: String, caName: String, crlVariable: String,
                crlName: String, certificateOptional: Bool, dhParameters: Bool) {
        self.certificateName = certificateName
        self.caVariable = caVariable
        self.caName = caName
        self.crlVariable = crlVariable
        self.crlName = crlName
        self.certificateOptional = certificateOptional
        self.dhParameters = dhParameters
    }

    /// tcpserver and dotls in server mode.
    public static let server = TLSFileDefaults(certificateName: "servercert.pem", caVariable: "CLIENTCA",
                                               caName: "clientca.pem", crlVariable: "CLIENTCRL",
                                               crlName: "clientcrl.pem", certificateOptional: false,
                                               dhParameters: true)
    /// tcpclient: the server's CA and CRL.
    public static let tcpclient = TLSFileDefaults(certificateName: "clientcert.pem", caVariable: "SERVERCA",
                                                  caName: "serverca.pem", crlVariable: "SERVERCRL",
                                                  crlName: "servercrl.pem", certificateOptional: true,
                                                  dhParameters: false)
    /// dotls -T/-C: a client certificate, but the CLIENTCA/CLIENTCRL names as the reference.
    public static let dotlsClient = TLSFileDefaults(certificateName: "clientcert.pem", caVariable: "CLIENTCA",
                                                    caName: "clientca.pem", crlVariable: "CLIENTCRL",
                                                    crlName: "clientcrl.pem", certificateOptional: true,
                                                    dhParameters: false)
}

/// What a program's command line said about TLS.
public struct TLSOptions: Equatable, Sendable {
    /// -n: nil or empty means the default file.
    public var certificate: String?
    public var certificateDirectory: String?
    public var caFile: String?
    public var crlFile: String?
    /// -f: a file whose content, up to the first white space, is the cipher string.
    public var cipherFile: String?
    /// -M: "min:max", ":max", "min:" or a single version (the maximum).
    public var method: String?
    public var allowClientRenegotiation = false
    /// Client side -m/-h: verify the chain and this host name.
    public var verifyHost: String?

    public init() {}

    /// The settings for a context, with every default of §9.1 applied.
    public func settings(_ defaults: TLSFileDefaults, environment env: Environment) -> Result<TLSSettings, TLSError> {
        var s = TLSSettings()
        let certdir = TLSSetup.certificateDirectory(option: certificateDirectory, environment: env)
        s.certificateDirectory = certdir
        if let cert = certificate, !cert.isEmpty {
            s.certificateFile = cert
        } else {
            let path = TLSSetup.underDirectory(env.nonEmpty(defaults.certificateVariable) ?? defaults.certificateName, certdir)
            if !defaults.certificateOptional || access(path, R_OK) == 0 { s.certificateFile = path }
        }
        // Explicit CA/CRL files are used as given; default ones only when readable.
        if let ca = caFile, !ca.isEmpty { s.caFile = ca } else {
            let path = TLSSetup.underDirectory(env.nonEmpty(defaults.caVariable) ?? defaults.caName, certdir)
            if access(path, R_OK) == 0 { s.caFile = path }
        }
        if let crl = crlFile, !crl.isEmpty { s.crlFile = crl } else {
            let path = TLSSetup.underDirectory(env.nonEmpty(defaults.crlVariable) ?? defaults.crlName, certdir)
            if access(path, R_OK) == 0 { s.crlFile = path }
        }
        let versions: (minimum: String?, maximum: String?)
        switch TLSSetup.parseMethod(method) {
        case .failure(let e): return .failure(e)
        case .success(let v): versions = v
        }
        s.minimumVersion = versions.minimum
        s.maximumVersion = versions.maximum
        // The reference's rule: a maximum below TLS 1.3 means a TLS 1.2-style cipher list;
        // otherwise TLS 1.3 suites, with TLS_CIPHER_LIST still applied to older versions.
        let below13 = versions.maximum.map { $0 != "TLSv1_3" } ?? false
        if let file = cipherFile {
            switch TLSSetup.readCipherFile(file) {
            case .failure(let e): return .failure(e)
            case .success(let ciphers):
                if !below13 && TLSSetup.looksLikeSuites(ciphers) { s.cipherSuites = ciphers } else { s.cipherList = ciphers }
            }
        } else {
            s.cipherList = env.nonEmpty("TLS_CIPHER_LIST")
            if !below13 { s.cipherSuites = env.nonEmpty("TLS_CIPHER_SUITE") }
        }
        s.allowClientRenegotiation = allowClientRenegotiation
        s.verifyHost = verifyHost.flatMap { $0.isEmpty ? nil : $0 }
        if defaults.dhParameters {
            let bits = env.nonEmpty("SSL_BITS").flatMap { Int($0) } ?? 2048
            s.dhParametersFile = Path.join(certdir, "dh\(bits).pem")
        }
        return .success(s)
    }
}

public enum TLSSetup {
    public static let defaultCertificateDirectory = "/etc/indimail/certs"

    /// certdir: the option, then $CERTDIR, then /etc/indimail/certs.
    public static func certificateDirectory(option: String?, environment env: Environment) -> String {
        if let option, !option.isEmpty { return option }
        return env.nonEmpty("CERTDIR") ?? defaultCertificateDirectory
    }

    /// A default-derived name not starting with "/" or "." lives in certdir.
    public static func underDirectory(_ name: String, _ certdir: String) -> String {
        name.hasPrefix("/") || name.hasPrefix(".") ? name : Path.join(certdir, name)
    }

    /// -M text to (minimum, maximum), names normalised to "TLSv1_2" form; "SSLv23" and
    /// empty halves mean no bound. SSLv2/SSLv3 and unknown names are errors.
    public static func parseMethod(_ text: String?) -> Result<(minimum: String?, maximum: String?), TLSError> {
        guard let text, !text.isEmpty else { return .success((nil, nil)) }
        func version(_ part: Substring) -> Result<String?, TLSError> {
            let name = String(part.map { $0 == "." ? "_" : $0 })
            switch name {
            case "", "SSLv23": return .success(nil)
            case "TLSv1", "TLSv1_0": return .success("TLSv1")
            case "TLSv1_1", "TLSv1_2", "TLSv1_3": return .success(name)
            case "SSLv2", "SSLv3": return .failure(TLSError("\(part) is not supported"))
            default:
                return .failure(TLSError("invalid TLS method \(text): use TLSv1, TLSv1_1, TLSv1_2 or TLSv1_3, or min:max"))
            }
        }
        let halves = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        if halves.count == 1 {
            return version(halves[0]).map { (nil, $0) }
        }
        switch (version(halves[0]), version(halves[1])) {
        case (.failure(let e), _), (_, .failure(let e)): return .failure(e)
        case (.success(let lo), .success(let hi)): return .success((lo, hi))
        }
    }

    /// The cipher string in a -f file: its content up to the first white space.
    public static func readCipherFile(_ path: String) -> Result<String, TLSError> {
        switch FD.readFile(path) {
        case .failure(let e): return .failure(TLSError(e.description))
        case .success(let bytes):
            let text = bytes.prefix { !($0 == 32 || ($0 >= 9 && $0 <= 13)) }
            guard !text.isEmpty else { return .failure(TLSError("no ciphers in \(path)")) }
            return .success(String(decoding: text, as: UTF8.self))
        }
    }

    /// TLS 1.3 suite names all start with "TLS_" (TLS_AES_256_GCM_SHA384 …).
    public static func looksLikeSuites(_ ciphers: String) -> Bool {
        ciphers.split(separator: ":").allSatisfy { $0.hasPrefix("TLS_") }
    }

    /// The TLS_PROVIDER value (§9.3): "prog, " alone, or with the session's details.
    public static func providerText(program: String, details: Bool, serverVersion: String,
                                    channel: (any TLSChannel)?, bits: Bool) -> String {
        guard details, let channel else { return "\(program), " }
        var text = "\(program), TLS Server=\(serverVersion), Client=\(channel.protocolVersion), Ciphers=\(channel.cipherName)"
        if bits { text += ", bits=\(channel.cipherBits)" }
        return text
    }

    /// The log line after a handshake: "TLS Server=…, Client=…, Ciphers=…, bits=…".
    public static func sessionSummary(serverVersion: String, channel: any TLSChannel) -> String {
        "TLS Server=\(serverVersion), Client=\(channel.protocolVersion), Ciphers=\(channel.cipherName), bits=\(channel.cipherBits)"
    }
}
