// A private dnsmasq for DNS tests: foreground, loopback only, no upstream, records from
// the command line. Never the real network. Killed and reaped with the value.
import Core
import Glibc

final class Dnsmasq {
    static let path = "/usr/sbin/dnsmasq"

    let addresses: [String]
    let port: UInt16
    private let child: BackgroundChild
    let logFile: String
    private let sandbox = Sandbox()

    /// Starts dnsmasq on `addresses` (loopback) at `port` (a free high one when nil) with
    /// `records` as extra options (`--txt-record=...`, `--host-record=...`). Zones listed in
    /// `zones` answer NXDOMAIN for names they do not hold; other names get REFUSED.
    /// nil when dnsmasq is missing or does not answer within a few seconds.
    init?(addresses: [String] = ["127.0.0.1", "::1"], port: UInt16? = nil, zones: [String], records: [String]) {
        guard access(Dnsmasq.path, X_OK) == 0 else { return nil }
        self.addresses = addresses
        logFile = sandbox.at("dnsmasq.log")
        // A free port can be taken by a parallel test before dnsmasq binds it, and start-up
        // is slow on a loaded machine: try a few ports, each with a generous deadline.
        for _ in 0..<(port == nil ? 6 : 2) {
            let candidate = port ?? Dnsmasq.freePort()
            var argv = [Dnsmasq.path, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
                        "--pid-file=", "--log-facility=-", "--log-queries", "--bind-interfaces",
                        "--port=\(candidate)", "--listen-address=\(addresses.joined(separator: ","))",
                        "--txt-record=ready.dnsmasq.test,yes", "--local=/dnsmasq.test/"]
            argv += zones.map { "--local=/\($0)/" }
            argv += records
            guard let child = BackgroundChild(argv, output: logFile) else { usleep(200_000); continue }
            let probe = DNSResolver(servers: [DNSServer(IPAddress(addresses[0])!, port: candidate)], timeout: 0.3,
                                    udpTimeouts: [0.1, 0.1, 0.1])
            let up = eventually(within: 15) {
                guard child.isRunning else { return true }
                if case .success = probe.query("ready.dnsmasq.test", .txt) { return true }
                return false
            }
            if up && child.isRunning {
                self.port = candidate
                self.child = child
                return
            }
            usleep(200_000)
        }
        // Say why in the test output: dnsmasq's own words are in its log.
        let why = (try? FD.readFile(logFile).get()).map { String(decoding: $0.suffix(2000), as: UTF8.self) } ?? "no log"
        FD.writeAll(2, Array("dnsmasq did not start: \(why)\n".utf8))
        return nil
    }

    func server(_ address: String? = nil) -> DNSServer {
        DNSServer(IPAddress(address ?? addresses[0])!, port: port)
    }

    /// The $DNSCACHEIP value reaching it (our host:port extension unless port 53).
    func dnscacheip(_ address: String? = nil) -> String {
        let a = address ?? addresses[0]
        if port == 53 { return a }
        return a.contains(":") ? "[\(a)]:\(port)" : "\(a):\(port)"
    }

    var log: String { String(decoding: contents(logFile) ?? [], as: UTF8.self) }

    /// A port free for both UDP and TCP on loopback right now.
    static func freePort() -> UInt16 {
        for _ in 0..<20 {
            let u = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            defer { close(u) }
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafeMutablePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p -> Bool in
                    bind(u, p, length) == 0 && getsockname(u, p, &length) == 0
                }
            }
            guard bound else { continue }
            let port = UInt16(bigEndian: sa.sin_port)
            if port > 1024 { return port }
        }
        return 15353
    }
}

/// A UDP port with nothing bound to it on 127.0.0.1: queries are refused at once.
func closedUDPPort() -> UInt16 { Dnsmasq.freePort() }

/// A UDP socket that receives queries and never answers; closed with the value.
final class SilentDNSServer {
    let fd: Int32
    let port: UInt16

    init() {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        self.fd = fd
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p in
                bind(fd, p, length) == 0 && getsockname(fd, p, &length) == 0
            }
        }
        port = UInt16(bigEndian: sa.sin_port)
    }

    deinit { close(fd) }
}
