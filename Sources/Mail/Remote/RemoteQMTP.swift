// The QMTP side of qmail-remote: the whole message, sender and recipients as netstrings,
// then one netstring answer per recipient.
import Core
import Glibc

extension RemoteDelivery {
    static let protocolError = RemoteReport(.deferral, "recipient did not talk proper QMTP (#4.3.0)\n")

    func qmtp(_ c: SMTPConnection) -> RemoteReport {
        var message: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(0, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return .readFailure }
            if n == 0 { break }
            message += chunk[0..<n]
        }
        var out = Array("\(message.count + 1):\n".utf8) + message + [UInt8(ascii: ",")]
        out += netstring(settings.sender)
        let list = recipients.flatMap { netstring($0) }
        out += netstring(list)
        guard c.send(out) else { return droppedQMTP(c) }

        var allOK = 1
        var reports: [UInt8] = []
        for _ in recipients {
            guard let answer = readNetstring(c) else { return Self.protocolError }
            guard let first = answer.first, [UInt8(ascii: "K"), UInt8(ascii: "Z"), UInt8(ascii: "D")].contains(first) else {
                return Self.protocolError
            }
            var text = Array("Remote host said: ".utf8) + answer.dropFirst()
            text = text.map { $0 < 32 || $0 > 126 ? UInt8(ascii: "?") : $0 } + [10]
            switch first {
            case UInt8(ascii: "K"): reports += RemoteReport(.recipientAccepted, text).encoded
            case UInt8(ascii: "D"):
                reports += RemoteReport(.recipientRejected, text).encoded
                if allOK == 1 { allOK = 0 }
            default:
                reports += RemoteReport(.recipientDeferred, text).encoded
                allOK = -1
            }
        }
        appendOutput(reports)
        if allOK == 1 { return RemoteReport(.success, "\(partnerAddress) accepted message - Protocol QMTP\n") }
        return RemoteReport(.failure, "Giving up on \(partnerAddress) - Protocol QMTP\n")
    }

    private func netstring(_ bytes: [UInt8]) -> [UInt8] { Array("\(bytes.count):".utf8) + bytes + [UInt8(ascii: ",")] }

    private func droppedQMTP(_ c: SMTPConnection) -> RemoteReport {
        .dropped(host: partnerAddress, critical: false, inGreeting: false, tcptoInterval: nil, tlsError: nil)
    }

    /// One `len:bytes,` answer; nil on a protocol error or a broken connection.
    private func readNetstring(_ c: SMTPConnection) -> [UInt8]? {
        var length = 0
        while true {
            guard let b = c.readByte() else { return nil }
            if b == UInt8(ascii: ":") { break }
            guard b >= 48 && b <= 57, length < 200_000_000 else { return nil }
            length = length * 10 + Int(b - 48)
        }
        guard length > 0 else { return nil }
        var bytes: [UInt8] = []
        for _ in 0..<length {
            guard let b = c.readByte() else { return nil }
            bytes.append(b)
        }
        guard c.readByte() == UInt8(ascii: ",") else { return nil }
        return bytes
    }
}
