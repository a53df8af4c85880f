// The plaintext prelude tcpclient -s runs before the TLS handshake (ucspi-tcp §9.4), with
// two repairs: SMTP greets with EHLO and takes multi-line replies, and IMAP sends a tagged
// command (accepting dotls's untagged "STARTTLS OK" as well).
import Core
import Glibc

/// Why a plaintext dialogue failed, as text for the fatal message.
struct DialogueError: Error, Equatable, CustomStringConvertible, ExpressibleByStringInterpolation {
    let description: String
    init(stringLiteral value: String) { description = value }
}

/// Line-at-a-time access to a plaintext connection.
protocol PlainLines {
    /// One line with its LF (and any CR); a failure text on EOF, timeout or error.
    mutating func readLine() -> Result<[UInt8], DialogueError>
    mutating func write(_ bytes: [UInt8]) -> Result<Void, DialogueError>
}

enum StartTLSClient {
    static let imapTag = "a001"

    /// Runs the dialogue. `echo` receives the lines the reference shows on stdout: the SMTP
    /// greeting, and the POP3/IMAP answer to the STARTTLS request.
    static func negotiate(_ proto: StartTLSProtocol, helloName: String, over io: inout some PlainLines,
                          echo: ([UInt8]) -> Void) -> Result<Void, DialogueError> {
        switch proto {
        case .smtp:
            guard case .success(let greeting) = smtpReply(&io, echo: echo) else { return .failure("failed to get greeting") }
            guard greeting.code == 220 else { return .failure("connected but greeting failed: \(greeting.last)") }
            // RFC 3207 asks for EHLO before STARTTLS; the program greets again inside TLS.
            if case .failure(let e) = io.write(Array("EHLO \(helloName)\r\n".utf8)) { return .failure(e) }
            switch smtpReply(&io, echo: { _ in }) {
            case .failure(let e): return .failure("EHLO failed: \(e)")
            case .success(let r) where r.code != 250: return .failure("EHLO rejected: \(r.last)")
            case .success: break
            }
            if case .failure(let e) = io.write(Array("STARTTLS\r\n".utf8)) { return .failure(e) }
            switch smtpReply(&io, echo: { _ in }) {
            case .failure(let e): return .failure("no answer to STARTTLS: \(e)")
            case .success(let r) where r.code != 220: return .failure("STARTTLS rejected: \(r.last)")
            case .success: return .success(())
            }
        case .pop3:
            if case .failure(let e) = io.readLine() { return .failure("failed to get greeting: \(e)") }
            if case .failure(let e) = io.write(Array("STLS\r\n".utf8)) { return .failure(e) }
            switch io.readLine() {
            case .failure(let e): return .failure("no answer to STLS: \(e)")
            case .success(let line):
                echo(line)
                return startsCaseless(line, "+OK") ? .success(()) : .failure("STLS rejected: \(text(line))")
            }
        case .imap:
            if case .failure(let e) = io.readLine() { return .failure("failed to get greeting: \(e)") }
            if case .failure(let e) = io.write(Array("\(imapTag) STARTTLS\r\n".utf8)) { return .failure(e) }
            while true {
                switch io.readLine() {
                case .failure(let e): return .failure("no answer to STARTTLS: \(e)")
                case .success(let line):
                    if startsCaseless(line, "* ") { continue }  // untagged data before the answer
                    echo(line)
                    if startsCaseless(line, "\(imapTag) OK") || startsCaseless(line, "STARTTLS OK") { return .success(()) }
                    return .failure("STARTTLS rejected: \(text(line))")
                }
            }
        }
    }

    /// An SMTP reply, multi-line ("250-…" then "250 …"): its code and last line.
    static func smtpReply(_ io: inout some PlainLines, echo: ([UInt8]) -> Void) -> Result<(code: Int, last: String), DialogueError> {
        var lines = 0
        while true {
            let line: [UInt8]
            switch io.readLine() {
            case .failure(let e): return .failure(e)
            case .success(let l): line = l
            }
            echo(line)
            lines += 1
            let code = line.prefix(3).allSatisfy { $0 >= 48 && $0 <= 57 } && line.count >= 3
                ? Int(String(decoding: line.prefix(3), as: UTF8.self)) ?? 0 : 0
            if line.count > 3 && line[3] == UInt8(ascii: "-") && lines < 1000 { continue }
            return .success((code, text(line)))
        }
    }

    static func startsCaseless(_ line: [UInt8], _ prefix: String) -> Bool {
        let p = Array(prefix.utf8)
        guard line.count >= p.count else { return false }
        return zip(line, p).allSatisfy { a, b in lower(a) == lower(b) }
    }

    static func lower(_ b: UInt8) -> UInt8 { b >= 65 && b <= 90 ? b + 32 : b }

    static func text(_ line: [UInt8]) -> String {
        String(decoding: line.filter { $0 != 13 && $0 != 10 }, as: UTF8.self)
    }
}

/// Plaintext lines straight off a socket, one byte per read so nothing of the TLS
/// handshake that follows is consumed; each line within `timeout` seconds.
struct SocketLines: PlainLines {
    let fd: Int32
    let timeout: Double
    static let limit = 8192

    mutating func readLine() -> Result<[UInt8], DialogueError> {
        let deadline = MonotonicClock.now() + timeout
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while line.count < SocketLines.limit {
            let n = Glibc.read(fd, &byte, 1)
            if n == 1 {
                line.append(byte)
                if byte == 10 { return .success(line) }
            } else if n == 0 {
                return .failure("connection closed")
            } else if errno == EAGAIN {
                guard FD.waitUntil(fd, events: Int16(POLLIN), deadline: deadline) else { return .failure("timed out") }
            } else if errno != EINTR {
                return .failure("\(SystemError.describe(errno))")
            }
        }
        return .failure("line too long")
    }

    mutating func write(_ bytes: [UInt8]) -> Result<Void, DialogueError> {
        let deadline = MonotonicClock.now() + timeout
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n > 0 { offset += n; continue }
            if n < 0 && errno == EAGAIN {
                guard FD.waitUntil(fd, events: Int16(POLLOUT), deadline: deadline) else { return .failure("timed out") }
            } else if n < 0 && errno != EINTR {
                return .failure("unable to write to network: \(SystemError.describe(errno))")
            }
        }
        return .success(())
    }
}
