// Servers the tcpclient/dotls tests talk to: Python scripts, openssl s_server, and
// ucspi-tcp's tcpserver running dotls, each a BackgroundChild reaped with the test.
import Core
import Glibc

/// A server process and the loopback port it listens on.
final class PeerServer {
    let child: BackgroundChild
    let port: UInt16
    let output: String
    /// Started in its own process group: teardown kills the group (tcpserver's children).
    let ownGroup: Bool

    init(child: BackgroundChild, port: UInt16, output: String, ownGroup: Bool = false) {
        self.child = child
        self.port = port
        self.output = output
        self.ownGroup = ownGroup
    }

    var log: String { contents(output).map { String(decoding: $0, as: UTF8.self) } ?? "" }

    deinit { if ownGroup { killpg(child.pid, SIGKILL) } }
}

/// Runs `python3 -c code args…`; the script writes its port to argv[1] (a file) once
/// listening.
func startPython(_ box: Sandbox, _ name: String, code: String, arguments: [String] = [],
                 environment: [String: String] = [:]) -> PeerServer? {
    let portFile = box.at("\(name).port")
    let output = box.at("\(name).out")
    guard let child = BackgroundChild(["python3", "-c", code, portFile] + arguments, output: output,
                                          environment: environment) else { return nil }
    var port: UInt16 = 0
    eventually(within: 15) {
        guard let text = contents(portFile), let p = UInt16(String(decoding: text, as: UTF8.self)) else { return false }
        port = p
        return true
    }
    return port == 0 ? nil : PeerServer(child: child, port: port, output: output)
}

/// Shared start of the Python servers: listen on 127.0.0.1 (or ::1), publish the port.
let pythonListen = """
import os, socket, ssl, sys
family = socket.AF_INET6 if os.environ.get('LISTEN6') else socket.AF_INET
s = socket.socket(family)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('::1' if family == socket.AF_INET6 else '127.0.0.1', 0))
s.listen(5)
s.settimeout(30)
with open(sys.argv[1] + '.tmp', 'w') as f: f.write(str(s.getsockname()[1]))
os.rename(sys.argv[1] + '.tmp', sys.argv[1])

"""

/// Echoes every connection's bytes back until the client closes (connections in turn).
let pythonEcho = pythonListen + """
while True:
    c, _ = s.accept()
    c.settimeout(30)
    while True:
        d = c.recv(65536)
        if not d: break
        c.sendall(d)
    c.close()
"""

/// One STARTTLS session (argv: port file, protocol, cert, key, log): the plaintext
/// prelude of the protocol, then TLS, answering "echo: LINE" until QUIT/LOGOUT/EOF.
let pythonStartTLS = pythonListen + """
proto, cert, key, logname = sys.argv[2:6]
log = open(logname, 'a', buffering=1)
c, _ = s.accept()
c.settimeout(30)
raw = c.makefile('rb', buffering=0)
def send(x): c.sendall(x.encode())
def line():
    l = raw.readline().decode()
    log.write('plain: ' + l.rstrip('\\r\\n') + '\\n')
    return l
if proto == 'smtp':
    send('220 py ESMTP\\r\\n')
    l = line()
    if l.upper().startswith('EHLO'):
        send('250-py\\r\\n250-PIPELINING\\r\\n250 STARTTLS\\r\\n')
        l = line()
    if not l.upper().startswith('STARTTLS'):
        send('502 no\\r\\n'); sys.exit(1)
    send('220 2.0.0 go ahead\\r\\n')
elif proto == 'pop3':
    send('+OK py POP3\\r\\n')
    l = line()
    send('+OK begin TLS\\r\\n' if l.upper().startswith('STLS') else '-ERR no\\r\\n')
else:
    send('* OK py IMAP ready\\r\\n')
    l = line()
    words = l.split()
    if len(words) == 2 and words[1].upper() == 'STARTTLS':
        send('* NOTE something untagged first\\r\\n')
        send(words[0] + ' OK Begin TLS negotiation now\\r\\n')
    else:
        send((words[0] if words else '*') + ' BAD no\\r\\n'); sys.exit(1)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
t = ctx.wrap_socket(c, server_side=True)
f = t.makefile('rb')
while True:
    l = f.readline()
    if not l: break
    text = l.decode().rstrip('\\r\\n')
    log.write('tls: ' + text + '\\n')
    t.sendall(b'echo: ' + l)
    if text.upper().endswith('QUIT') or text.upper().endswith('LOGOUT'): break
try:
    t.unwrap()
except Exception:
    pass
t.close()
"""

/// `openssl s_server` on a free port (extra arguments such as -rev or -www).
func startOpenSSLServer(_ box: Sandbox, _ certs: TestCertificates, _ extra: [String]) -> PeerServer? {
    let port = freePort()
    let output = box.at("s_server.\(port).out")
    guard let child = BackgroundChild(["openssl", "s_server", "-accept", "127.0.0.1:\(port)", "-cert", certs.serverCert,
                                       "-key", certs.serverKey, "-naccept", "1"] + extra, output: output) else { return nil }
    // s_server says ACCEPT once listening; probing the port would use up its one accept.
    guard eventually(within: 15, { contents(output).map { String(decoding: $0, as: UTF8.self).contains("ACCEPT") } ?? false }) else {
        return nil
    }
    return PeerServer(child: child, port: port, output: output)
}

/// ucspi-tcp's tcpserver (the Debian peer) on 127.0.0.1, port from -1, running `program`.
func startTcpserver(_ box: Sandbox, _ program: [String], environment: [String: String] = [:]) -> PeerServer? {
    guard let tcpserver = peer("/usr/bin/tcpserver") else { return nil }
    let output = box.at("tcpserver.\(UInt64(monotonicSeconds() * 1e6)).out")
    guard let child = BackgroundChild([tcpserver, "-1", "-R", "-H", "-l", "0", "127.0.0.1", "0"] + program,
                                      output: output, environment: environment, newProcessGroup: true) else { return nil }
    var port: UInt16 = 0
    eventually(within: 15) {
        guard let text = contents(output), let nl = text.firstIndex(of: 10),
              let p = UInt16(String(decoding: text[..<nl], as: UTF8.self)) else { return false }
        port = p
        return true
    }
    guard port != 0 else { return nil }
    return PeerServer(child: child, port: port, output: output, ownGroup: true)
}

/// A line-oriented toy server program for dotls to front: logs every line it receives
/// (to $LOG) and answers in the protocol's shape.
func toyServerScript(_ proto: String) -> String {
    let common = """
    #!/bin/sh
    out() { printf '%s\\r\\n' "$1"; }

    """
    switch proto {
    case "smtp":
        return common + """
        out '220 toy ESMTP'
        while IFS= read -r line; do
          line=$(printf '%s' "$line" | tr -d '\\r')
          printf '%s\\n' "$line" >> "$LOG"
          case "$line" in
            [Ee][Hh][Ll][Oo]*) out '250-toy'; out '250-PIPELINING'; out '250 8BITMIME' ;;
            [Dd][Aa][Tt][Aa]) out '354 go'
              while IFS= read -r body; do
                body=$(printf '%s' "$body" | tr -d '\\r')
                printf 'body: %s\\n' "$body" >> "$LOG"
                [ "$body" = . ] && break
              done
              out '250 accepted' ;;
            [Qq][Uu][Ii][Tt]*) out '221 bye'; exit 0 ;;
            *) out "250 ok $line" ;;
          esac
        done
        """
    case "pop3":
        return common + """
        out '+OK toy POP3'
        while IFS= read -r line; do
          line=$(printf '%s' "$line" | tr -d '\\r')
          printf '%s\\n' "$line" >> "$LOG"
          case "$line" in
            [Cc][Aa][Pp][Aa]) out '+OK list'; out 'USER'; out 'UIDL'; out '.' ;;
            [Qq][Uu][Ii][Tt]*) out '+OK bye'; exit 0 ;;
            *) out "+OK $line" ;;
          esac
        done
        """
    default:
        return common + """
        out '* OK toy IMAP'
        while IFS= read -r line; do
          line=$(printf '%s' "$line" | tr -d '\\r')
          printf '%s\\n' "$line" >> "$LOG"
          tag=${line%% *}
          cmd=$(printf '%s' "${line#* }" | tr 'a-z' 'A-Z')
          case "$cmd" in
            CAPABILITY) out '* CAPABILITY IMAP4rev1 IDLE'; out "$tag OK CAPABILITY completed" ;;
            LOGOUT) out '* BYE'; out "$tag OK LOGOUT completed"; exit 0 ;;
            *) out "$tag OK $cmd done" ;;
          esac
        done
        """
    }
}

/// Connects to 127.0.0.1:port (blocking socket), or -1.
func connectLoopback(_ port: UInt16) -> Int32 {
    guard case .success(let fd) = Socket.connect(to: .inet(.v4(127, 0, 0, 1), port: port, scope: 0), timeout: 5) else { return -1 }
    return fd
}

/// Reads from `fd` until `marker` appears (or EOF/timeout); everything read.
func readUntil(_ fd: Int32, _ marker: String, within seconds: Double = 10) -> String {
    var got: [UInt8] = []
    let target = Array(marker.utf8)
    let deadline = monotonicSeconds() + seconds
    var byte: UInt8 = 0
    while monotonicSeconds() < deadline {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, 200) >= 0 else { break }
        if p.revents == 0 { continue }
        // One byte at a time: nothing after the marker may be consumed (a TLS handshake follows).
        guard Glibc.read(fd, &byte, 1) == 1 else { break }
        got.append(byte)
        if got.count >= target.count && Array(got.suffix(target.count)) == target { break }
    }
    return String(decoding: got, as: UTF8.self)
}
