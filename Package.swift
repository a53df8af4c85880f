// swift-tools-version:6.0
// indimail-swift: daemontools + ucspi-tcp + qmail-derived MTA, one multi-call binary.
import PackageDescription

// Release builds carry the Swift runtime inside the binary: no libswiftCore.so to
// map and relocate on every exec of a short-lived command (DESIGN.md).
let releaseStatic: [LinkerSetting] = [.unsafeFlags(["-static-stdlib"], .when(configuration: .release))]
// The base binary goes further: fully static, no dynamic loader at all. Measured here:
// 0.8 ms per exec instead of 1.7 ms with -static-stdlib (C true: 0.6 ms); bench/RESULTS.md.
// Consequence: it must never dlopen (a second libc would load); C-library users live in
// indimail-tls.
let releaseFullyStatic: [LinkerSetting] = [.unsafeFlags(["-static-executable"], .when(configuration: .release))]

let package = Package(
    name: "indimail-swift",
    products: [
        .executable(name: "indimail", targets: ["indimail"]),
        .executable(name: "indimail-tls", targets: ["indimail-tls"]),
        .executable(name: "qmail-queue", targets: ["qmail-queue"]),
    ],
    targets: [
        // Linux syscalls Swift's Glibc module does not import (signalfd, prctl, flock…).
        .target(name: "CSupport"),
        // C libraries, linked only into indimail-tls (see DESIGN.md: exec cost).
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl",
                       providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CIDN2", pkgConfig: "libidn2",
                       providers: [.apt(["libidn2-dev"])]),
        .systemLibrary(name: "CGSASL", pkgConfig: "libgsasl",
                       providers: [.apt(["libgsasl-dev"])]),
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd",
                       providers: [.apt(["libsystemd-dev"])]),

        .target(name: "Core", dependencies: ["CSupport"]),
        .target(name: "Supervise", dependencies: ["Core"]),
        .target(name: "UCSPI", dependencies: ["Core"]),
        // The OpenSSL side of Core's TLS seam; only indimail-tls links it.
        .target(name: "TLS", dependencies: ["Core", "COpenSSL"]),
        // libidn2 behind Core's IDNConverter; only indimail-tls links it.
        .target(name: "IDN", dependencies: ["Core", "CIDN2"]),
        .target(name: "Mail", dependencies: ["Core", "Supervise", "UCSPI"]),
        .target(name: "Commands", dependencies: ["Core", "Supervise", "UCSPI", "Mail"]),

        .executableTarget(name: "indimail", dependencies: ["Commands"],
                          linkerSettings: releaseFullyStatic),
        .executableTarget(name: "indimail-tls",
                          dependencies: ["Commands", "TLS", "IDN", "COpenSSL", "CIDN2", "CGSASL", "CSystemd"],
                          linkerSettings: releaseStatic),

        // Setuid qmailq: a separate minimal executable, fully static like the base binary.
        .executableTarget(name: "qmail-queue", dependencies: ["Core", "Mail"],
                          linkerSettings: releaseFullyStatic),

        .testTarget(name: "CoreTests", dependencies: ["Core"]),
        .testTarget(name: "SuperviseTests", dependencies: ["Supervise"]),
        .testTarget(name: "UCSPITests", dependencies: ["UCSPI"]),
        .testTarget(name: "MailTests", dependencies: ["Mail"]),
        .testTarget(name: "IDNTests", dependencies: ["IDN"]),
        .testTarget(name: "IntegrationTests", dependencies: ["Core", "Supervise", "UCSPI", "Commands", "TLS"]),
    ]
)
