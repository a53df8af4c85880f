// One connection to a remote SMTP/QMTP server: line and reply reading, writes, and the
// switch to TLS in the middle of the session (STARTTLS) or at its start (SMTPS).
import Core
import UCSPI
import Glibc

final class SMTPConnection {
    let socket: Int32
    private(set) var channel: any TLSChannel
    private(set) var isTLS = false
    private var buffer = [UInt8](repeating: 0, count: 16384)
    private var start = 0
    private var end = 0
    /// Why the last read or write failed (a TLS library message), for the report.
    private(set) var tlsError: String?

    init(socket: Int32, timeout: Double) {
        self.socket = socket
        let plain = PlainChannel(socket: socket)
        plain.ioTimeout = timeout
        channel = plain
    }

    deinit { Glibc.close(socket) }

    /// One line with its LF; nil on end of file, error or timeout. Over-long lines are
    /// returned in pieces, as the reply parser copes with that.
    func readLine(limit: Int = 8192) -> [UInt8]? {
        var line: [UInt8] = []
        while true {
            if start == end {
                let n = buffer.withUnsafeMutableBytes { channel.read(into: $0) }
                switch n {
                case .success(let count) where count > 0:
                    start = 0
                    end = count
                case .success:
                    return nil
                case .failure(let e):
                    if isTLS { tlsError = e.description }
                    return nil
                }
            }
            while start < end {
                let b = buffer[start]
                start += 1
                line.append(b)
                if b == 10 || line.count >= limit { return line }
            }
        }
    }

    /// One byte; nil on end of file, error or timeout.
    func readByte() -> UInt8? {
        if start == end {
            switch buffer.withUnsafeMutableBytes({ channel.read(into: $0) }) {
            case .success(let count) where count > 0:
                start = 0
                end = count
            default:
                return nil
            }
        }
        start += 1
        return buffer[start - 1]
    }

    func readReply() -> SMTPReply? {
        var parser = SMTPReplyParser()
        while true {
            guard let line = readLine() else { return nil }
            if let reply = parser.add(line) { return reply }
        }
    }

    /// Bytes read but not yet consumed (must be none before a TLS handshake).
    var hasBufferedInput: Bool { start < end }

    func send(_ bytes: [UInt8]) -> Bool {
        guard !bytes.isEmpty else { return true }
        switch bytes.withUnsafeBytes({ channel.write($0) }) {
        case .success: return true
        case .failure(let e):
            if isTLS { tlsError = e.description }
            return false
        }
    }

    func send(_ text: String) -> Bool { send(Array(text.utf8)) }

    /// Handshake as a client over this connection; afterwards everything goes through TLS.
    func startTLS(_ context: any TLSContext, serverName: String?, timeout: Double) -> Result<Void, TLSError> {
        let ioTimeout = channel.ioTimeout
        return context.connect(fd: socket, serverName: serverName, timeout: timeout).map { session in
            session.ioTimeout = ioTimeout
            channel = session
            isTLS = true
        }
    }

    func closeTLS() {
        if isTLS { channel.shutdown() }
    }
}
