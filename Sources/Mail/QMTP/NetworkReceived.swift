// The Received: line the network front ends (qmail-qmtpd, qmail-qmqpd) put on a message,
// worded as the reference's received(): program, pid, peer, local name, protocol, date.
import Core
import Glibc

public struct NetworkReceived: Equatable, Sendable {
    public var program: String
    public var protocolName: String
    public var pid: Int32
    public var local: String?
    public var remoteIP: String?
    public var remoteHost: String?
    public var remoteInfo: String?
    public var hidden: Bool
    public var date: String

    /// From the UCSPI environment (TCPLOCALHOST/IP, TCPREMOTEIP/HOST/INFO) and HIDE_HOST.
    public init(program: String, protocolName: String, environment env: Environment, pid: Int32, date: String) {
        self.program = program
        self.protocolName = protocolName
        self.pid = pid
        let host = env["TCPREMOTEHOST"] ?? "unknown"
        remoteHost = host == "unknown" ? nil : host
        remoteInfo = env["TCPREMOTEINFO"]
        remoteIP = env["TCPREMOTEIP"] ?? "unknown"
        local = env["TCPLOCALHOST"] ?? env["TCPLOCALIP"] ?? "unknown"
        hidden = env.contains("HIDE_HOST")
        self.date = date
    }

    /// Control characters and spaces in peer-supplied text become `?`, as safeput does.
    private static func safe(_ text: String) -> String {
        String(text.unicodeScalars.map { s -> Character in
            (s.value < 33 || s.value > 126) ? "?" : Character(s)
        })
    }

    public var bytes: [UInt8] {
        var s = "Received: indimail-mta \(program) \(pid)"
        if !hidden {
            if let remoteHost { s += " from " + Self.safe(remoteHost) }
            // The reference prints the peer's address only along with TCPREMOTEINFO; we always
            // give it, as qmail's received() did.
            if let remoteIP { s += " (" + (remoteInfo.map { Self.safe($0) + "@" } ?? "") + Self.safe(remoteIP) + ")\n" }
            if let local { s += "  by " + Self.safe(local) }
        }
        s += " with \(protocolName); " + date
        return Array(s.utf8)
    }
}
