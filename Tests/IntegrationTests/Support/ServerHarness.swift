// A tcpserver under test: started with -1 so the kernel picks the port, its log kept in a
// file, killed and reaped at the end; plus a loopback client.
import Core
import Glibc

final class RunningServer {
    let box: Sandbox
    let child: BackgroundChild
    let logPath: String
    let port: UInt16

    /// `arguments` are tcpserver's, without the binary; "-1" is added.
    init?(_ box: Sandbox, _ arguments: [String], environment: [String: String] = [:], binary: String = Build.indimailTLS) {
        self.box = box
        logPath = box.at("server-\(UInt32.random(in: 0...UInt32.max)).log")
        guard let child = BackgroundChild([binary, "tcpserver", "-1"] + arguments, output: logPath,
                                          environment: environment) else { return nil }
        self.child = child
        var found: UInt16?
        let path = logPath
        eventually(within: 10) {
            found = lines(path).lazy.compactMap { UInt16($0) }.first
            return found != nil || !child.isRunning
        }
        guard let port = found else { return nil }
        self.port = port
    }

    var log: [String] { lines(logPath) }

    /// The server's log lines that start with `prefix` (after "tcpserver: ").
    func logged(_ prefix: String) -> [String] {
        log.filter { $0.hasPrefix("tcpserver: " + prefix) }
    }
}

/// Connects to 127.0.0.1 (or `host`), sends `input`, half-closes, reads to end of file.
func exchange(port: UInt16, host: IPAddress = .v4(127, 0, 0, 1), input: [UInt8] = [],
              keepOpen: Bool = false, timeout: Double = 10) -> [UInt8]? {
    guard case .success(let fd) = Socket.connect(to: .inet(host, port: port, scope: 0), timeout: timeout) else { return nil }
    defer { close(fd) }
    if !input.isEmpty { FD.writeAll(fd, input) }
    if !keepOpen { shutdown(fd, Int32(SHUT_WR)) }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    let deadline = monotonicSeconds() + timeout
    while monotonicSeconds() < deadline {
        guard FD.waitUntil(fd, events: Int16(POLLIN), timeout: 200) else { continue }
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n <= 0 { return out }
        out += chunk[0..<n]
    }
    return nil
}

/// `NAME=value` lines of an `env` dump as a dictionary.
func environmentDump(_ bytes: [UInt8]) -> [String: String] {
    var result: [String: String] = [:]
    for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
        guard let eq = line.firstIndex(of: "=") else { continue }
        result[String(line[..<eq])] = String(line[line.index(after: eq)...])
    }
    return result
}
