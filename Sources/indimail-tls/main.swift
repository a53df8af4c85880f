// indimail-tls: the multi-call binary for programs that need OpenSSL, libgsasl, libidn2 or
// libsystemd. Kept apart so per-message programs do not pay for loading those libraries.
import CGSASL
import CIDN2
import COpenSSL
import CSystemd
import Commands
import Core
import Glibc
import IDN
import TLS

func libraryVersions() -> String {
    let ssl = OpenSSL_version(Int32(OPENSSL_VERSION)).map { String(cString: $0) } ?? "unknown"
    let idn = idn2_check_version(nil).map { String(cString: $0) } ?? "unknown"
    let sasl = gsasl_check_version(nil).map { String(cString: $0) } ?? "unknown"
    let booted = sd_booted() > 0 ? "systemd running" : "systemd not running"
    return "indimail-tls \(MultiCall.version)\n\(ssl)\nlibidn2 \(idn)\nlibgsasl \(sasl)\nlibsystemd (\(booted))"
}

exit(MultiCall.main(binary: "indimail-tls", commands: CommandRegistry.base + CommandRegistry.network,
                    arguments: MultiCall.processArguments(), environment: Environment.current(),
                    tls: OpenSSLLibrary.self, idn: LibIDN2.self, version: libraryVersions))
