// An SSL_CTX built once from TLSSettings; each connection gets its own SSL from it.
import COpenSSL
import Core
import Glibc

/// Any certificate the client sends, or none, is accepted (§9.2): the request only lets
/// the program see who the client claims to be.
private let acceptAnyCertificate: @convention(c) (Int32, OpaquePointer?) -> Int32 = { _, _ in 1 }

final class OpenSSLContext: TLSContext {
    let ctx: OpaquePointer
    let isServer: Bool
    let protocolName: String

    private init(ctx: OpaquePointer, isServer: Bool) {
        self.ctx = ctx
        self.isServer = isServer
        var name = "TLSv1.3"
        if let probe = SSL_new(ctx) {
            if let v = SSL_get_version(probe) { name = String(cString: v) }
            SSL_free(probe)
        }
        protocolName = name
    }

    deinit { SSL_CTX_free(ctx) }

    static func make(_ settings: TLSSettings, server: Bool) -> Result<OpenSSLContext, TLSError> {
        ERR_clear_error()
        guard let ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method()) else {
            return .failure(OpenSSLErrors.error("unable to create TLS context"))
        }
        // Owned from here on: any failure below frees it with the object.
        let context = OpenSSLContext(ctx: ctx, isServer: server)
        if let error = context.configure(settings) {
            ERR_clear_error()
            return .failure(error)
        }
        return .success(context)
    }

    /// Applies the settings; the first failure, or nil.
    private func configure(_ s: TLSSettings) -> TLSError? {
        // Versions: TLS 1.2 minimum by default, never SSLv2/3.
        var minimum: Int32 = TLS1_2_VERSION
        var maximum: Int32 = 0
        if let name = s.minimumVersion {
            switch OpenSSLLibrary.protocolVersion(name) {
            case .failure(let e): return e
            case .success(let v): minimum = v ?? TLS1_VERSION
            }
        }
        if let name = s.maximumVersion {
            switch OpenSSLLibrary.protocolVersion(name) {
            case .failure(let e): return e
            case .success(let v):
                maximum = v ?? 0
                // "-M TLSv1_1" alone asks for that version: lower the default minimum to it.
                if s.minimumVersion == nil, let v, v < minimum { minimum = v }
            }
        }
        if maximum != 0 && maximum < minimum {
            return TLSError("TLS maximum version is below the minimum")
        }
        guard cs_ssl_ctx_set_min_proto_version(ctx, minimum) == 1 else {
            return OpenSSLErrors.error("unable to set the minimum TLS version")
        }
        if maximum != 0, cs_ssl_ctx_set_max_proto_version(ctx, maximum) != 1 {
            return OpenSSLErrors.error("unable to set the maximum TLS version")
        }

        var options = cs_ssl_op_no_sslv2_v3() | cs_ssl_op_no_compression() | cs_ssl_op_ignore_unexpected_eof()
        if isServer { options |= cs_ssl_op_no_resumption_on_renegotiation() }
        options |= s.allowClientRenegotiation && isServer ? cs_ssl_op_allow_client_renegotiation()
                                                        : cs_ssl_op_no_renegotiation()
        SSL_CTX_set_options(ctx, options)
        // Writes come from buffers that move between retries (Swift arrays) and may be
        // partial: the relay keeps the rest for later.
        _ = cs_ssl_ctx_set_mode(ctx, Int(SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER
                                         | SSL_MODE_AUTO_RETRY))
        _ = cs_ssl_ctx_set_session_cache_mode(ctx, Int(SSL_SESS_CACHE_OFF))
        if isServer {
            let id = Array("tcpserver".utf8)
            guard SSL_CTX_set_session_id_context(ctx, id, UInt32(id.count)) == 1 else {
                return OpenSSLErrors.error("unable to set the session id context")
            }
        }

        if let list = s.cipherList, !list.isEmpty, SSL_CTX_set_cipher_list(ctx, list) != 1 {
            return OpenSSLErrors.error("unable to set cipher list \(list)")
        }
        if let suites = s.cipherSuites, !suites.isEmpty, SSL_CTX_set_ciphersuites(ctx, suites) != 1 {
            return OpenSSLErrors.error("unable to set cipher suites \(suites)")
        }

        if let error = loadTrust(s) { return error }

        if let cert = s.certificateFile {
            guard SSL_CTX_use_certificate_chain_file(ctx, cert) == 1 else {
                return OpenSSLErrors.error("unable to load certificate \(cert)")
            }
            guard SSL_CTX_use_PrivateKey_file(ctx, cert, SSL_FILETYPE_PEM) == 1 else {
                return OpenSSLErrors.error("unable to load private key from \(cert)")
            }
            guard SSL_CTX_check_private_key(ctx) == 1 else {
                return OpenSSLErrors.error("private key does not match the certificate in \(cert)")
            }
        } else if isServer {
            return TLSError("a server needs a certificate")
        }

        if isServer {
            SSL_CTX_set_verify(ctx, s.requestClientCertificate ? SSL_VERIFY_PEER : SSL_VERIFY_NONE,
                               acceptAnyCertificate)
            if !loadDHParameters(s.dhParametersFile) { _ = cs_ssl_ctx_set_dh_auto(ctx, 1) }
        } else if let host = s.verifyHost {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
            guard let param = SSL_CTX_get0_param(ctx) else { return OpenSSLErrors.error("no verify parameters") }
            let ok: Int32
            if IPAddress.parse(host) != nil {
                ok = X509_VERIFY_PARAM_set1_ip_asc(param, host)
            } else {
                X509_VERIFY_PARAM_set_hostflags(param, UInt32(X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS))
                ok = X509_VERIFY_PARAM_set1_host(param, host, 0)
            }
            guard ok == 1 else { return OpenSSLErrors.error("unable to verify host \(host)") }
        } else {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nil)
        }
        return nil
    }

    /// CA file, CA directory and CRL. A server also trusts its own certificate file and
    /// certdir, as the reference does; a verifying client without a CA file adds the
    /// system store to the directory.
    private func loadTrust(_ s: TLSSettings) -> TLSError? {
        if isServer, let cert = s.certificateFile {
            if SSL_CTX_load_verify_file(ctx, cert) != 1 { ERR_clear_error() }
        }
        if let dir = s.certificateDirectory, isServer || s.verifyHost != nil {
            if SSL_CTX_load_verify_dir(ctx, dir) != 1 { ERR_clear_error() }
        }
        if let ca = s.caFile {
            guard SSL_CTX_load_verify_file(ctx, ca) == 1 else {
                return OpenSSLErrors.error("unable to load CA file \(ca)")
            }
            // Names the acceptable issuers in the certificate request.
            if isServer, let names = SSL_load_client_CA_file(ca) { SSL_CTX_set_client_CA_list(ctx, names) }
        } else if !isServer && s.verifyHost != nil {
            // No CA file: the system's trust store as well as the certificate directory.
            if SSL_CTX_set_default_verify_paths(ctx) != 1 { ERR_clear_error() }
        }
        if let crl = s.crlFile {
            guard let store = SSL_CTX_get_cert_store(ctx),
                  let lookup = X509_STORE_add_lookup(store, X509_LOOKUP_file()),
                  X509_load_crl_file(lookup, crl, X509_FILETYPE_PEM) >= 1 else {
                return OpenSSLErrors.error("unable to load CRL file \(crl)")
            }
            X509_STORE_set_flags(store, UInt(X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL))
        }
        return nil
    }

    private func loadDHParameters(_ path: String?) -> Bool {
        guard let path, access(path, R_OK) == 0, let bio = BIO_new_file(path, "r") else { return false }
        defer { BIO_free(bio) }
        guard let key = PEM_read_bio_Parameters(bio, nil) else { ERR_clear_error(); return false }
        if SSL_CTX_set0_tmp_dh_pkey(ctx, key) != 1 {
            EVP_PKEY_free(key)
            ERR_clear_error()
            return false
        }
        return true
    }

    // MARK: sessions

    func accept(input: Int32, output: Int32, timeout: Double) -> Result<any TLSChannel, TLSError> {
        session(input: input, output: output, serverName: nil, timeout: timeout, server: true)
    }

    func connect(input: Int32, output: Int32, serverName: String?, timeout: Double) -> Result<any TLSChannel, TLSError> {
        session(input: input, output: output, serverName: serverName, timeout: timeout, server: false)
    }

    private func session(input: Int32, output: Int32, serverName: String?, timeout: Double,
                         server: Bool) -> Result<any TLSChannel, TLSError> {
        ERR_clear_error()
        guard server == isServer else {
            return .failure(TLSError(server ? "a client context cannot accept" : "a server context cannot connect"))
        }
        guard let ssl = SSL_new(ctx) else { return .failure(OpenSSLErrors.error("unable to set up TLS session")) }
        let ok = input == output ? SSL_set_fd(ssl, input) : (SSL_set_rfd(ssl, input) & SSL_set_wfd(ssl, output))
        guard ok == 1 else {
            SSL_free(ssl)
            return .failure(OpenSSLErrors.error("unable to attach TLS session to descriptor"))
        }
        if let name = serverName, !name.isEmpty, IPAddress.parse(name) == nil {
            _ = cs_ssl_set_tlsext_host_name(ssl, name)
        }
        if server { SSL_set_accept_state(ssl) } else { SSL_set_connect_state(ssl) }
        let channel = OpenSSLChannel(ssl: ssl, input: input, output: output)
        return channel.handshake(timeout: timeout).map { channel }
    }
}
