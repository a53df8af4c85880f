// Certificates made with the openssl CLI in a sandbox, a thread runner for the far side
// of an in-process handshake, and small socket helpers for the TLS tests.
import Core
import Glibc

/// A throwaway CA with a server certificate (localhost, 127.0.0.1, ::1) and a client
/// certificate, each PEM holding the chain and the key, as tcpserver/tcpclient want.
struct TestCertificates {
    let directory: String
    var ca: String { Path.join(directory, "ca.pem") }
    var server: String { Path.join(directory, "servercert.pem") }
    var client: String { Path.join(directory, "clientcert.pem") }
    /// The server certificate and key as separate files (for openssl s_server).
    var serverCert: String { Path.join(directory, "server.crt") }
    var serverKey: String { Path.join(directory, "server.key") }

    init?(in box: Sandbox) {
        directory = box.directory("certs")
        let script = """
        set -e
        cd "$1"
        key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
        key ca.key
        openssl req -x509 -new -key ca.key -out ca.pem -days 2 -subj "/CN=indimail test CA" 2>/dev/null
        for who in server client; do
          key $who.key
          openssl req -new -key $who.key -out $who.csr -subj "/CN=$who.test" 2>/dev/null
        done
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\\nextendedKeyUsage=serverAuth\\n' > server.ext
        printf 'extendedKeyUsage=clientAuth\\n' > client.ext
        for who in server client; do
          openssl x509 -req -in $who.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
            -extfile $who.ext -out $who.crt 2>/dev/null
          cat $who.crt ca.pem $who.key > ${who}cert.pem
        done
        """
        let made = run(["/bin/sh", "-c", script, "sh", directory], timeout: 30)
        guard made.exitCode == 0, access(Path.join(directory, "servercert.pem"), R_OK) == 0 else { return nil }
    }
}

/// Runs a closure on its own thread (the far side of a blocking handshake or transfer).
final class ThreadRunner<T>: @unchecked Sendable {
    private let box: ThreadBox<T>
    private var thread = pthread_t()
    private var joined = false

    init(_ body: @escaping () -> T) {
        box = ThreadBox(body)
        let context = Unmanaged.passRetained(box as AnyObject).toOpaque()
        pthread_create(&thread, nil, runThreadBox, context)
    }

    /// Waits for the thread (the closure itself must be bounded in time).
    func join() -> T? {
        if !joined { pthread_join(thread, nil); joined = true }
        return box.result
    }

    deinit { if !joined { pthread_join(thread, nil) } }
}

private protocol ThreadBody: AnyObject { func runBody() }

private final class ThreadBox<T>: ThreadBody, @unchecked Sendable {
    let body: () -> T
    var result: T?
    init(_ body: @escaping () -> T) { self.body = body }
    func runBody() { result = body() }
}

private func runThreadBox(_ raw: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    guard let raw else { return nil }
    let object = Unmanaged<AnyObject>.fromOpaque(raw).takeRetainedValue()
    (object as? ThreadBody)?.runBody()
    return nil
}

/// A connected AF_UNIX stream pair, close-on-exec.
func socketPair() -> (Int32, Int32) {
    var fds: [Int32] = [-1, -1]
    socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds)
    return (fds[0], fds[1])
}

/// A free TCP port on 127.0.0.1 (bound then released; good enough for loopback tests).
func freePort() -> UInt16 {
    guard case .success(let fd) = Socket.listenTCP(address: .v4(127, 0, 0, 1), port: 0, backlog: 1, ipv4Only: true) else { return 0 }
    defer { close(fd) }
    return Socket.localAddress(fd)?.port ?? 0
}

/// Polls until something accepts connections on 127.0.0.1:port.
func waitForListener(_ port: UInt16, within seconds: Double = 10) -> Bool {
    eventually(within: seconds) {
        guard case .success(let fd) = Socket.connect(to: .inet(.v4(127, 0, 0, 1), port: port, scope: 0), timeout: 1) else { return false }
        close(fd)
        return true
    }
}

/// Reads from a blocking or non-blocking fd until `count` bytes, EOF, or the deadline.
func readSome(_ fd: Int32, atLeast count: Int, within seconds: Double = 10) -> [UInt8] {
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    let deadline = monotonicSeconds() + seconds
    while out.count < count {
        let left = deadline - monotonicSeconds()
        if left <= 0 { break }
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        if poll(&p, 1, Int32(left * 1000)) <= 0 { break }
        let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        if n > 0 { out += chunk[0..<n] } else if n == 0 || errno != EAGAIN { break }
    }
    return out
}
