// The OpenSSL implementation of Core's TLS seam: contexts built from TLSSettings (§9.2).
import COpenSSL
import Core
import Glibc

public enum OpenSSLLibrary: TLSLibrary {
    public static var versionText: String {
        OpenSSL_version(Int32(OPENSSL_VERSION)).map { String(cString: $0) } ?? "OpenSSL"
    }

    public static func serverContext(_ settings: TLSSettings) -> Result<any TLSContext, TLSError> {
        OpenSSLContext.make(settings, server: true).map { $0 }
    }

    public static func clientContext(_ settings: TLSSettings) -> Result<any TLSContext, TLSError> {
        OpenSSLContext.make(settings, server: false).map { $0 }
    }

    /// The protocol constant for a -M name; nil for "SSLv23" (no bound).
    static func protocolVersion(_ name: String) -> Result<Int32?, TLSError> {
        switch name.replacingDots() {
        case "SSLv23", "": return .success(nil)
        case "TLSv1", "TLSv1_0": return .success(TLS1_VERSION)
        case "TLSv1_1": return .success(TLS1_1_VERSION)
        case "TLSv1_2": return .success(TLS1_2_VERSION)
        case "TLSv1_3": return .success(TLS1_3_VERSION)
        case "SSLv2", "SSLv3": return .failure(TLSError("\(name) is not supported"))
        default: return .failure(TLSError("unknown TLS method \(name): use TLSv1, TLSv1_1, TLSv1_2 or TLSv1_3"))
        }
    }
}

extension OpenSSLLibrary: TLSDigests {
    public static func hmac(_ algorithm: String, key: [UInt8], data: [UInt8]) -> [UInt8]? {
        guard let md = EVP_get_digestbyname(algorithm) else { return nil }
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let ok = key.withUnsafeBytes { k in
            data.withUnsafeBufferPointer { d in
                HMAC(md, k.baseAddress, Int32(k.count), d.baseAddress, d.count, &out, &length)
            }
        }
        guard ok != nil else { ERR_clear_error(); return nil }
        return Array(out.prefix(Int(length)))
    }

    public static func digest(_ algorithm: String, data: [UInt8]) -> [UInt8]? {
        guard let md = EVP_get_digestbyname(algorithm) else { return nil }
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let ok = data.withUnsafeBytes { EVP_Digest($0.baseAddress, $0.count, &out, &length, md, nil) }
        guard ok == 1 else { ERR_clear_error(); return nil }
        return Array(out.prefix(Int(length)))
    }

    public static func pbkdf2(_ algorithm: String, password: [UInt8], salt: [UInt8], iterations: Int,
                              length: Int) -> [UInt8]? {
        guard let md = EVP_get_digestbyname(algorithm), iterations > 0, iterations <= Int(Int32.max),
              length > 0, length <= 1024 else { return nil }
        var out = [UInt8](repeating: 0, count: length)
        let ok = password.withUnsafeBytes { p in
            salt.withUnsafeBufferPointer { s in
                PKCS5_PBKDF2_HMAC(p.baseAddress?.assumingMemoryBound(to: CChar.self), Int32(p.count),
                                  s.baseAddress, Int32(s.count), Int32(iterations), md, Int32(length), &out)
            }
        }
        guard ok == 1 else { ERR_clear_error(); return nil }
        return out
    }
}

private extension String {
    func replacingDots() -> String { String(map { $0 == "." ? "_" : $0 }) }
}
