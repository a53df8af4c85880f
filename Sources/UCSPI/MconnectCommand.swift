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
    static let timeouts = (first: 2, second: 58)

    public static func run(_ context: CommandContext) -> Int32 {
        let diag = context.diagnostics
        let host = context.strings.first ?? "0"
        let portText = context.strings.count > 1 ? context.strings[1] : "25"

        var addresses: [RemoteAddress]
        var port: UInt16 = 0
        if host.hasPrefix("/") {
            addresses = [.unix(host)]
        } else {
            addresses = MconnectTarget.addresses(for: host, hosts: { readSystemFile("/etc/hosts") })
            guard !addresses.isEmpty else {
                return diag.fatal(ExitCode.temporary, "no IP address for \(host) (not an address, not in /etc/hosts)")
            }
            guard let p = MconnectTarget.port(portText, services: { readSystemFile("/etc/services") }) else {
                return diag.fatal(ExitCode.temporary, "unable to figure out port number for \(portText)")
            }
            port = p
        }

        let passes = addresses.count == 1 ? [timeouts.first + timeouts.second] : [timeouts.first, timeouts.second]
        var connection: (fd: Int32, address: RemoteAddress)?
        // Failures are told only when no address answers: "0" tries two loopbacks and a
        // refusal on the first is no news when the second accepts.
        var failures: [String] = []
        attempts: for (pass, seconds) in passes.enumerated() {
            var timedOut: [RemoteAddress] = []
            for address in addresses {
                switch Connect.open(address, port: port, timeout: seconds) {
                case .success(let fd):
                    connection = (fd, address)
                    break attempts
                case .failure(let e):
                    if case .unix = address {
                        failures.append("unable to connect to socket \(address): \(e.reason)")
                    } else {
                        failures.append("unable to connect to \(address) port \(port): \(e.reason)")
                    }
                    if pass == 0 && e.errno == ETIMEDOUT { timedOut.append(address) }
                }
            }
            addresses = timedOut
        }
        guard let connection else {
            for failure in failures.dropLast() { diag.warning(failure) }
            return diag.fatal(ExitCode.temporary, failures.last ?? "no address to connect to")
        }
        let socket = connection.fd

        if case .unix = connection.address {} else {
            var on: Int32 = 1  // interactive lines go out at once, as tcpclient without -D
            _ = setsockopt(socket, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
        }
        Signals.ignore(SIGPIPE)
        MconnectIO.copy(network: (read: socket, write: socket))
        return ExitCode.success
    }

    private static func readSystemFile(_ path: String) -> [UInt8] {
        (try? FD.readFile(path).get()) ?? []
    }
}

/// How mconnect turns its arguments into addresses and a port, with the files passed in so
/// the rules can be tested without touching /etc.
enum MconnectTarget {
    /// "0" or "" is this host (IPv4 loopback first, then IPv6); an address literal is
    /// itself; anything else is looked up in the hosts file.
    static func addresses(for host: String, hosts: () -> [UInt8]) -> [RemoteAddress] {
        if host.isEmpty || host == "0" {
            return [RemoteAddress.parse("127.0.0.1"), RemoteAddress.parse("::1")].compactMap { $0 }
        }
        if let literal = RemoteAddress.parse(host) { return [literal] }
        var seen: [RemoteAddress] = []
        for text in HostsFile.addresses(for: host, in: hosts()) {
            if let address = RemoteAddress.parse(text), !seen.contains(address) { seen.append(address) }
        }
        return seen
    }

    /// A decimal port (0–65535) or a TCP service name from the services file.
    static func port(_ text: String, services: () -> [UInt8]) -> UInt16? {
        if !text.isEmpty, text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) {
            return text.count <= 5 ? UInt16(text) : nil
        }
        guard !text.isEmpty else { return nil }
        return ServicesFile.tcpPort(for: text, in: services())
    }
}
