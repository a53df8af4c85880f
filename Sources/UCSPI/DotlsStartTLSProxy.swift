// dotls -s: a plaintext proxy between a client (fds 0/1) and a program that knows nothing
// of TLS, offering STARTTLS/STLS on the program's behalf and stopping at the client's
// request so the session can be encrypted (ucspi-tcp §12.2).
import Core
import Glibc

/// The protocol-specific parts, free of I/O so they can be tested on their own.
enum StartTLSOffer {
    /// What one client command line asks of the proxy.
    enum Action: Equatable {
        /// Pass the line to the program (with CRLF).
        case forward
        /// Drop it (an empty line).
        case drop
        /// Answer `reply` and start the TLS handshake.
        case startTLS(reply: String)
        /// SMTP EHLO: forward, then add STARTTLS to the program's 250 reply.
        case ehlo
        /// SMTP DATA: forward, then pass the message through until the lone dot.
        case data
        /// Forward, then `count` bytes verbatim (SMTP BDAT, IMAP literal); for a literal the
        /// command line goes on after them.
        case octets(Int, lineContinues: Bool)
        /// POP3 CAPA: forward, then add STLS to the list.
        case capa
        /// IMAP CAPABILITY: forward, then add STARTTLS to the capability response.
        case capability(tag: [UInt8])
    }

    /// Decides about one line (without its line end).
    static func classify(_ line: [UInt8], protocol proto: StartTLSProtocol) -> Action {
        if line.isEmpty { return .drop }
        let words = line.split(separator: 32, omittingEmptySubsequences: true).map { Array($0) }
        guard let first = words.first else { return .forward }
        switch proto {
        case .smtp:
            switch lowered(first) {
            case "ehlo": return .ehlo
            case "starttls": return .startTLS(reply: "220 ready for tls\r\n")
            case "data": return .data
            case "bdat":
                if words.count >= 2, let n = number(words[1]) { return .octets(n, lineContinues: false) }
                return .forward
            default: return .forward
            }
        case .pop3:
            switch lowered(first) {
            case "capa": return .capa
            case "stls": return .startTLS(reply: "+OK Begin SSL/TLS negotiation now.\r\n")
            default: return .forward
            }
        case .imap:
            // The reference's tcpclient sent STARTTLS without a tag: keep answering it.
            if words.count == 1 && lowered(first) == "starttls" {
                return .startTLS(reply: "STARTTLS OK Begin SSL/TLS negotiation now.\r\n")
            }
            if let n = literalLength(line) { return .octets(n, lineContinues: true) }
            if words.count == 2 {
                switch lowered(words[1]) {
                case "starttls":
                    return .startTLS(reply: String(decoding: first, as: UTF8.self) + " OK Begin TLS negotiation now\r\n")
                case "capability": return .capability(tag: first)
                default: break
                }
            }
            return .forward
        }
    }

    /// An IMAP line ending in a literal, "{n}" or "{n+}": n.
    static func literalLength(_ line: [UInt8]) -> Int? {
        guard line.last == UInt8(ascii: "}"), let open = line.lastIndex(of: UInt8(ascii: "{")) else { return nil }
        var digits = Array(line[(open + 1)..<(line.count - 1)])
        if digits.last == UInt8(ascii: "+") { digits.removeLast() }
        return number(digits)
    }

    /// SMTP: the program's EHLO reply with STARTTLS offered (unchanged when it is already).
    static func offerStartTLS(inEHLOReply lines: [[UInt8]]) -> [UInt8] {
        let keywords = lines.dropFirst().map { line -> String in
            lowered(Array(line.dropFirst(4).prefix { $0 != 32 && $0 != 61 && $0 != 13 && $0 != 10 }))
        }
        guard !keywords.contains("starttls"), var last = lines.last, last.count >= 3 else { return lines.flatMap { $0 } }
        let code = Array(last.prefix(3))
        if last.count >= 4 { last[3] = UInt8(ascii: "-") } else { last = code + Array("-\r\n".utf8) }
        return lines.dropLast().flatMap { $0 } + last + code + Array(" STARTTLS\r\n".utf8)
    }

    /// POP3: CAPA's list with STLS before the terminating dot (lines keep their ends).
    static func offerSTLS(inCapaList lines: [[UInt8]]) -> [UInt8] {
        let body = lines.dropFirst().filter { trimmed($0) != [UInt8(ascii: ".")] }
        let present = body.contains { lowered(Array(trimmed($0).prefix { $0 != 32 })) == "stls" }
        let stls: [[UInt8]] = present ? [] : [Array("STLS\r\n".utf8)]
        return (lines.first ?? Array("+OK\r\n".utf8)) + (body + stls).flatMap { $0 } + Array(".\r\n".utf8)
    }

    /// IMAP: an untagged CAPABILITY line with STARTTLS added when missing.
    static func offerStartTLS(inCapabilityLine line: [UInt8]) -> [UInt8] {
        let words = trimmed(line).split(separator: 32).map { lowered(Array($0)) }
        guard words.count >= 2, words[0] == "*", words[1] == "capability", !words.contains("starttls") else { return line }
        return trimmed(line) + Array(" STARTTLS\r\n".utf8)
    }

    static func lowered(_ bytes: [UInt8]) -> String {
        String(decoding: bytes.map { $0 >= 65 && $0 <= 90 ? $0 + 32 : $0 }, as: UTF8.self)
    }

    static func trimmed(_ line: [UInt8]) -> [UInt8] {
        var l = line[...]
        while let c = l.last, c == 10 || c == 13 { l = l.dropLast() }
        return Array(l)
    }

    static func number(_ digits: [UInt8]) -> Int? {
        guard !digits.isEmpty, digits.count <= 12, digits.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
        return Int(String(decoding: digits, as: UTF8.self))
    }
}

/// The proxy loop. Ends when the client asks for TLS, when the program ends, or on the
/// idle timeout.
struct StartTLSProxy {
    enum Outcome: Equatable {
        /// The reply was sent; pipelined plaintext after the request was thrown away.
        case startTLS
        case programEnded
        case idle
        case failed(String)
    }

    private enum InputState: Equatable {
        case lines
        /// Message text after DATA; `tail` holds the last bytes seen, to find "\n.\r\n".
        case data(tail: [UInt8])
        case octets(Int, then: Next)
        /// The rest of a line that is not a command (after a literal, or too long).
        case restOfLine
        enum Next: Equatable { case lines, restOfLine }
    }

    let proto: StartTLSProtocol
    let clientIn: Int32
    let clientOut: Int32
    let programIn: Int32
    let programOut: Int32
    let timeout: Double

    private var state = InputState.lines
    private var fromClient: [UInt8] = []
    private var fromProgram: [UInt8] = []
    private var clientOpen = true
    private var programOpen = true
    static let longestCommand = 16384

    init(_ proto: StartTLSProtocol, clientIn: Int32, clientOut: Int32, programIn: Int32, programOut: Int32,
         timeout: Double) {
        self.proto = proto
        self.clientIn = clientIn
        self.clientOut = clientOut
        self.programIn = programIn
        self.programOut = programOut
        self.timeout = timeout
        FD.setNonBlocking(programIn)
        FD.setNonBlocking(programOut)
    }

    mutating func run() -> Outcome {
        var deadline = MonotonicClock.now() + timeout
        while true {
            if let outcome = handleClientInput() { return outcome }
            if !programOpen {
                if !flush(&fromProgram) { return .failed("unable to write to client") }
                return .programEnded
            }
            var fds = [pollfd(fd: programOut, events: Int16(POLLIN), revents: 0)]
            if clientOpen { fds.append(pollfd(fd: clientIn, events: Int16(POLLIN), revents: 0)) }
            let left = deadline - MonotonicClock.now()
            if left <= 0 { return .idle }
            let r = poll(&fds, nfds_t(fds.count), Int32(min(left * 1000, 3_600_000).rounded(.up)))
            if r < 0 && errno != EINTR { return .failed("poll: \(SystemError.describe(errno))") }
            if r <= 0 { continue }
            deadline = MonotonicClock.now() + timeout
            if fds[0].revents != 0 {
                readProgram()
                if !flush(&fromProgram) { return .failed("unable to write to client") }
            }
            if fds.count > 1 && fds[1].revents != 0 {
                var chunk = [UInt8](repeating: 0, count: 8192)
                let n = chunk.withUnsafeMutableBytes { Glibc.read(clientIn, $0.baseAddress, $0.count) }
                if n > 0 {
                    fromClient += chunk[0..<n]
                } else if n == 0 || (errno != EAGAIN && errno != EINTR) {
                    // The client left: the program sees end of file and may say goodbye.
                    clientOpen = false
                    if state != .lines, !fromClient.isEmpty, !sendToProgram(fromClient) { return .failed("unable to write to program") }
                    fromClient.removeAll()
                    close(programIn)
                }
            }
        }
    }

    // MARK: client input

    /// Works through the buffered client input; an outcome when the proxy must stop.
    private mutating func handleClientInput() -> Outcome? {
        while !fromClient.isEmpty && clientOpen {
            switch state {
            case .octets(let count, let next):
                let n = min(count, fromClient.count)
                guard sendToProgram(Array(fromClient.prefix(n))) else { return .failed("unable to write to program") }
                fromClient.removeFirst(n)
                state = n == count ? (next == .lines ? .lines : .restOfLine) : .octets(count - n, then: next)
            case .restOfLine:
                let end = fromClient.firstIndex(of: 10).map { $0 + 1 } ?? fromClient.count
                guard sendToProgram(Array(fromClient.prefix(end))) else { return .failed("unable to write to program") }
                let complete = fromClient[end - 1] == 10
                lineTail = Array((lineTail + fromClient.prefix(end)).suffix(32))
                fromClient.removeFirst(end)
                if complete {
                    // An IMAP command may go on with another literal after this one.
                    if proto == .imap, let n = StartTLSOffer.literalLength(StartTLSOffer.trimmed(lineTail)) {
                        state = .octets(n, then: .restOfLine)
                    } else {
                        state = .lines
                    }
                    lineTail = []
                }
            case .data(var tail):
                var end: Int? = nil
                for (i, b) in fromClient.enumerated() {
                    tail.append(b)
                    if tail.count > 5 { tail.removeFirst(tail.count - 5) }
                    if tail.suffix(4) == Array("\n.\r\n".utf8) || tail.suffix(3) == Array("\n.\n".utf8) { end = i + 1; break }
                }
                let n = end ?? fromClient.count
                guard sendToProgram(Array(fromClient.prefix(n))) else { return .failed("unable to write to program") }
                fromClient.removeFirst(n)
                state = end == nil ? .data(tail: tail) : .lines
            case .lines:
                guard let lf = fromClient.firstIndex(of: 10) else {
                    if fromClient.count >= StartTLSProxy.longestCommand {
                        // No command is this long: pass it on without looking at it.
                        state = .restOfLine
                        continue
                    }
                    return nil
                }
                var line = Array(fromClient[..<lf])
                fromClient.removeFirst(lf + 1)
                if line.last == 13 { line.removeLast() }
                if let outcome = handle(line) { return outcome }
            }
        }
        return nil
    }

    /// The end of the line being passed through in .restOfLine (to spot a literal).
    private var lineTail: [UInt8] = []

    private mutating func handle(_ line: [UInt8]) -> Outcome? {
        let action = StartTLSOffer.classify(line, protocol: proto)
        if action == .drop { return nil }
        if case .startTLS(let reply) = action {
            // What the program said so far goes out in clear, then the answer; anything the
            // client sent after its request is dropped, never given to the program.
            drainProgram()
            guard flush(&fromProgram), writeClient(Array(reply.utf8)) else { return .failed("unable to write to client") }
            fromClient.removeAll()
            return .startTLS
        }
        guard sendToProgram(line + [13, 10]) else { return .failed("unable to write to program") }
        switch action {
        case .data: state = .data(tail: [13, 10])
        case .octets(let n, let continues):
            state = .octets(n, then: continues ? .restOfLine : .lines)
        case .ehlo: return exchangeEHLO()
        case .capa: return exchangeCAPA()
        case .capability(let tag): return exchangeCapability(tag: tag)
        default: break
        }
        return nil
    }

    // MARK: replies the proxy edits

    private mutating func exchangeEHLO() -> Outcome? {
        var lines: [[UInt8]] = []
        while true {
            guard let line = programLine() else { return endedDuringReply(lines) }
            lines.append(line)
            if line.count >= 4 && line[3] == UInt8(ascii: "-") { continue }
            let code = Array(line.prefix(3))
            if code == Array("220".utf8) {
                // The greeting was still on its way: it is not the EHLO answer.
                guard writeClient(lines.flatMap { $0 }) else { return .failed("unable to write to client") }
                lines.removeAll()
                continue
            }
            let reply = code == Array("250".utf8) ? StartTLSOffer.offerStartTLS(inEHLOReply: lines) : lines.flatMap { $0 }
            return writeClient(reply) ? nil : .failed("unable to write to client")
        }
    }

    private mutating func exchangeCAPA() -> Outcome? {
        guard let first = programLine() else { return endedDuringReply([]) }
        guard StartTLSOffer.lowered(Array(first.prefix(3))) == "+ok" else {
            // No CAPA in the program: the list holds just what the proxy adds.
            return writeClient(Array("+OK Capability list follows\r\nSTLS\r\n.\r\n".utf8)) ? nil : .failed("unable to write to client")
        }
        var lines = [first]
        while true {
            guard let line = programLine() else { return endedDuringReply(lines) }
            lines.append(line)
            if StartTLSOffer.trimmed(line) == [UInt8(ascii: ".")] { break }
        }
        return writeClient(StartTLSOffer.offerSTLS(inCapaList: lines)) ? nil : .failed("unable to write to client")
    }

    private mutating func exchangeCapability(tag: [UInt8]) -> Outcome? {
        let tagged = StartTLSOffer.lowered(tag) + " "
        while true {
            guard let line = programLine() else { return endedDuringReply([]) }
            let out = StartTLSOffer.offerStartTLS(inCapabilityLine: line)
            guard writeClient(out) else { return .failed("unable to write to client") }
            if StartTLSOffer.lowered(Array(line.prefix(tagged.utf8.count))) == tagged { return nil }
        }
    }

    private mutating func endedDuringReply(_ lines: [[UInt8]]) -> Outcome? {
        guard writeClient(lines.flatMap { $0 }) else { return .failed("unable to write to client") }
        return programOpen ? .idle : nil
    }

    // MARK: program side

    /// One line from the program, waiting up to the timeout; nil at its end or on timeout.
    private mutating func programLine() -> [UInt8]? {
        let deadline = MonotonicClock.now() + timeout
        while true {
            if let lf = fromProgram.firstIndex(of: 10) {
                let line = Array(fromProgram[...lf])
                fromProgram.removeFirst(lf + 1)
                return line
            }
            guard programOpen else {
                let rest = fromProgram
                fromProgram.removeAll()
                return rest.isEmpty ? nil : rest
            }
            guard FD.waitUntil(programOut, events: Int16(POLLIN), deadline: deadline) else { return nil }
            readProgram()
        }
    }

    /// One read from the program; its end (or a read error) closes that side.
    private mutating func readProgram() {
        var chunk = [UInt8](repeating: 0, count: 8192)
        let n = chunk.withUnsafeMutableBytes { Glibc.read(programOut, $0.baseAddress, $0.count) }
        if n > 0 { fromProgram += chunk[0..<n]; return }
        if n < 0 && (errno == EAGAIN || errno == EINTR) { return }
        programOpen = false
    }

    /// Takes whatever the program has written already, without waiting.
    private mutating func drainProgram() {
        while programOpen {
            var p = pollfd(fd: programOut, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 0) == 1 else { return }
            let before = fromProgram.count
            readProgram()
            if fromProgram.count == before { return }
        }
    }

    private func sendToProgram(_ bytes: [UInt8]) -> Bool {
        writeAll(programIn, bytes)
    }

    private func writeClient(_ bytes: [UInt8]) -> Bool { writeAll(clientOut, bytes) }

    private func flush(_ buffer: inout [UInt8]) -> Bool {
        defer { buffer.removeAll() }
        return writeClient(buffer)
    }

    /// Writes every byte within the timeout: at most PIPE_BUF per poll report so a blocking
    /// fd never blocks, and without SIGPIPE on sockets.
    private func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        var deadline = MonotonicClock.now() + timeout
        while offset < bytes.count {
            guard FD.waitUntil(fd, events: Int16(POLLOUT), deadline: deadline) else { return false }
            let count = min(bytes.count - offset, 4096)
            var n = bytes[offset..<(offset + count)].withUnsafeBytes { send(fd, $0.baseAddress, count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
            if n < 0 && errno == ENOTSOCK {
                n = bytes[offset..<(offset + count)].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, count) }
            }
            if n > 0 {
                offset += n
                deadline = MonotonicClock.now() + timeout
            } else if n < 0 && errno != EAGAIN && errno != EINTR {
                return false
            }
        }
        return true
    }
}
