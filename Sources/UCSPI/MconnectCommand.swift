// mconnect: talk to an SMTP (or any line-based TCP) server from a terminal. The reference
// is a script around `tcpclient -RHl0 host port mconnect-io`; this one connects by itself.
import Core
import Glibc

public struct MconnectCommand: Command {
    public static let name = "mconnect"
    public static let installDirectory = InstallDirectory.bin
    public static let summary = "talk to a mail server by hand, with CR LF line ends"

    /// tcpclient's default connect timeouts: a quick pass over every address, then a
    /// patient one over those that only timed out; one address gets the sum.
    static let timeouts = (first: 2.0, second: 58.0)

    public static func run(_ context: CommandContext) -> Int32 {
        let diag = context.diagnostics
        let host = context.strings.first ?? "0"
        let portText = context.strings.count > 1 ? context.strings[1] : "25"

        var targets: [SocketAddress]
        if host.hasPrefix("/") {
            // A UNIX-domain socket, as tcpclient takes one; the port means nothing then.
            guard host.utf8.count < MemoryLayout.size(ofValue: sockaddr_un().sun_path) else {
                return diag.fatal(ExitCode.temporary,
                                  "unable to connect to socket \(host): \(SystemError.describe(ENAMETOOLONG))")
            }
            targets = [.unix(host)]
        } else {
            guard let port = MconnectTarget.port(portText, services: { readSystemFile("/etc/services") }) else {
                return diag.fatal(ExitCode.temporary, "unable to figure out port number for \(portText)")
            }
            let endpoints: [MconnectTarget.Endpoint]
            switch MconnectTarget.resolve(host, hosts: { readSystemFile("/etc/hosts") },
                                          dns: { DNSResolver(environment: context.environment).addresses(for: $0) }) {
            case .success(let found): endpoints = found
            case .failure(.nameNotFound), .failure(.noData):
                return diag.fatal(ExitCode.temporary, "no IP address for \(host)")
            case .failure(.temporary(let why)):
                return diag.fatal(ExitCode.temporary, "temporarily unable to figure out IP address for \(host): \(why)")
            case .failure(.permanent(let why)):
                return diag.fatal(ExitCode.temporary, "unable to figure out IP address for \(host): \(why)")
            }
            targets = endpoints.map { .inet($0.ip, port: port, scope: $0.scope) }
        }

        // Failures are told only when no address answers: "0" tries two loopbacks and a
        // refusal on the first is no news when the second accepts.
        var failures: [String] = []
        var connection: (fd: Int32, target: SocketAddress)?
        let passes = targets.count == 1 ? [timeouts.first + timeouts.second] : [timeouts.first, timeouts.second]
        attempts: for (pass, seconds) in passes.enumerated() {
            var timedOut: [SocketAddress] = []
            for target in targets {
                switch Socket.connect(to: target, timeout: seconds) {
                case .success(let fd):
                    connection = (fd, target)
                    break attempts
                case .failure(let e):
                    switch target {
                    case .unix(let path): failures.append("unable to connect to socket \(path): \(e.reason)")
                    case .inet(let ip, let port, _): failures.append("unable to connect to \(ip) port \(port): \(e.reason)")
                    }
                    if pass == 0 && e.errno == ETIMEDOUT { timedOut.append(target) }
                }
            }
            targets = timedOut
        }
        guard let connection else {
            for failure in failures.dropLast() { diag.warning(failure) }
            return diag.fatal(ExitCode.temporary, failures.last ?? "no address to connect to")
        }

        // Typed lines go out at once, as with tcpclient without -D.
        if case .inet = connection.target { Socket.setNoDelay(connection.fd) }
        Signals.ignore(SIGPIPE)
        MconnectIO.copy(network: (read: connection.fd, write: connection.fd))
        return ExitCode.success
    }

    private static func readSystemFile(_ path: String) -> [UInt8] {
        (try? FD.readFile(path).get()) ?? []
    }
}

/// How mconnect turns its arguments into addresses and a port, with the files and the
/// resolver passed in so the rules can be tested without touching /etc or the network.
enum MconnectTarget {
    struct Endpoint: Equatable, CustomStringConvertible {
        var ip: IPAddress
        var scope: UInt32 = 0
        var description: String { scope == 0 ? ip.description : "\(ip)%\(scope)" }
    }

    /// "0" or "" is this host (IPv4 loopback first, then IPv6); an address literal (IPv6
    /// with an optional `%interface`) is itself; a name is looked up in the hosts file,
    /// then in the DNS.
    static func resolve(_ host: String, hosts: () -> [UInt8],
                        dns: (String) -> Result<[IPAddress], DNSError>) -> Result<[Endpoint], DNSError> {
        if host.isEmpty || host == "0" {
            return .success([IPAddress("127.0.0.1"), IPAddress("::1")].compactMap { $0 }.map { Endpoint(ip: $0) })
        }
        if let literal = literal(host) { return .success([literal]) }
        if host.contains("%") { return .failure(.nameNotFound) }  // a scope on something not an address
        var listed: [Endpoint] = []
        for text in HostsFile.addresses(for: host, in: hosts()) {
            if let endpoint = literal(text), !listed.contains(endpoint) { listed.append(endpoint) }
        }
        if !listed.isEmpty { return .success(listed) }
        return dns(host).map { $0.map { Endpoint(ip: $0) } }
    }

    /// An IPv4 or IPv6 address; IPv6 may carry `%name` or `%index` for its interface.
    static func literal(_ text: String) -> Endpoint? {
        guard let percent = text.firstIndex(of: "%") else { return IPAddress(text).map { Endpoint(ip: $0) } }
        guard let ip = IPAddress(text[..<percent]), ip.isIPv6, !ip.isV4Mapped else { return nil }
        let name = String(text[text.index(after: percent)...])
        if let index = UInt32(name), index > 0 { return Endpoint(ip: ip, scope: index) }
        guard !name.isEmpty else { return nil }
        let index = if_nametoindex(name)
        return index == 0 ? nil : Endpoint(ip: ip, scope: index)
    }

    /// A decimal port (0–65535) or a TCP service name from the services file.
    static func port(_ text: String, services: () -> [UInt8]) -> UInt16? {
        guard !text.isEmpty else { return nil }
        if text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) {
            return text.count <= 5 ? UInt16(text) : nil
        }
        return ServicesFile.tcpPort(for: text, in: services())
    }
}
