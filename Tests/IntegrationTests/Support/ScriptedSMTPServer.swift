// A scripted SMTP/QMTP server for qmail-remote's tests: Python on loopback, answering each
// stage with the reply the test chose and logging what the client sent. Killed with the value.
import Core
import Glibc

final class ScriptedSMTPServer {
    let port: UInt16
    let address: String
    let logFile: String
    private let child: BackgroundChild
    private let box = Sandbox()

    struct Script {
        var greeting = "220 sink.test ESMTP"
        var ehlo = ["250-sink.test", "250-PIPELINING", "250-SIZE 10240000", "250 8BITMIME"]
        var helo = "250 sink.test"
        var mail = "250 2.1.0 Ok"
        /// One reply per RCPT, the last one repeated.
        var rcpt = ["250 2.1.5 Ok"]
        var data = "354 End data with <CR><LF>.<CR><LF>"
        var end = "250 2.0.0 Ok: queued as 12345"
        var starttls = "220 2.0.0 Ready to start TLS"
        /// PEM with the server certificate and key; enables the STARTTLS stage.
        var certificate: String?
        /// Immediate TLS on connect (SMTPS).
        var implicitTLS = false
        var auth = "235 2.7.0 Authentication successful"
        /// The password CRAM answers are checked against.
        var password = ""
        /// Close the connection instead of sending the greeting.
        var dropGreeting = false
        /// Never say anything (for timeouts).
        var silent = false
        /// QMTP instead of SMTP: one answer per recipient.
        var qmtpAnswers: [String]? = nil
    }

    static let program = #"""
import json, socket, ssl, sys, base64
spec = json.load(open(sys.argv[1]))
log = open(sys.argv[2], "a", buffering=1)
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((spec["address"], spec["port"]))
srv.listen(8)
open(sys.argv[3], "w").write(str(srv.getsockname()[1]))
class Reader:
    """Lines from a socket through our own buffer, so the server can tell what the client
    had already sent (pipelined) when a command arrived."""
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
    def fill(self):
        d = self.sock.recv(65536)
        if not d: raise EOFError
        self.buf += d
    def readline(self):
        while b"\n" not in self.buf:
            try: self.fill()
            except EOFError:
                r, self.buf = self.buf, b""
                return r
        i = self.buf.index(b"\n") + 1
        r, self.buf = self.buf[:i], self.buf[i:]
        return r
    def read(self, n):
        while len(self.buf) < n: self.fill()
        r, self.buf = self.buf[:n], self.buf[n:]
        return r
    def ahead(self):
        return self.buf.count(b"\n")
def tls_wrap(conn):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(spec["certificate"])
    return ctx.wrap_socket(conn, server_side=True)
def serve(conn):
    f = Reader(conn)
    def send(s):
        conn.sendall((s + "\r\n").encode())
    def line():
        l = f.readline()
        if not l:
            raise EOFError
        return l.decode("latin-1").rstrip("\r\n")
    if spec.get("qmtp"):
        data = b""
        def netstring(rd):
            n = b""
            while True:
                c = rd.read(1)
                if c == b":": break
                if not c: raise EOFError
                n += c
            body = rd.read(int(n))
            rd.read(1)
            return body
        msg = netstring(f); sender = netstring(f); rl = netstring(f)
        log.write("QMTP message %r\nQMTP sender %r\nQMTP recipients %r\n" % (msg, sender, rl))
        for a in spec["qmtp"]:
            b = a.encode()
            conn.sendall(str(len(b)).encode() + b":" + b + b",")
        return
    if spec.get("dropGreeting"):
        return
    if spec.get("silent"):
        import time
        time.sleep(60)
        return
    send(spec["greeting"])
    rcpts = 0
    while True:
        l = line()
        log.write("C: " + l + "\n")
        u = l.upper()
        if u.startswith("EHLO"):
            for r in spec["ehlo"]: send(r)
        elif u.startswith("HELO"):
            send(spec["helo"])
        elif u == "STARTTLS":
            send(spec["starttls"])
            if spec["starttls"].startswith("220"):
                conn = tls_wrap(conn)
                f = Reader(conn)
                log.write("TLS " + conn.version() + "\n")
        elif u.startswith("AUTH PLAIN"):
            send("334 ")
            log.write("AUTH PLAIN " + repr(base64.b64decode(line())) + "\n")
            send(spec["auth"])
        elif u.startswith("AUTH SCRAM-"):
            import hmac, hashlib, os
            mech = l.split()[1].upper()
            alg = "sha1" if mech.startswith("SCRAM-SHA-1") else "sha256"
            first = base64.b64decode(l.split()[2]).decode()
            gs2 = ",".join(first.split(",", 2)[:2]) + ","
            bare = first.split(",", 2)[2]
            cb = conn.get_channel_binding("tls-unique") if mech.endswith("-PLUS") else b""
            attrs = dict(x.split("=", 1) for x in bare.split(","))
            salt = b"saltsalt"
            nonce = attrs["r"] + "srvnonce"
            sfirst = "r=%s,s=%s,i=4096" % (nonce, base64.b64encode(salt).decode())
            send("334 " + base64.b64encode(sfirst.encode()).decode())
            final = base64.b64decode(line()).decode()
            without = final.rsplit(",p=", 1)[0]
            proof = base64.b64decode(final.rsplit(",p=", 1)[1])
            salted = hashlib.pbkdf2_hmac(alg, spec.get("password", "").encode(), salt, 4096)
            ck = hmac.new(salted, b"Client Key", alg).digest()
            sk = hashlib.new(alg, ck).digest()
            am = (bare + "," + sfirst + "," + without).encode()
            sig = hmac.new(sk, am, alg).digest()
            expect_c = base64.b64encode(gs2.encode() + cb).decode()
            good = bytes(a ^ b for a, b in zip(ck, sig)) == proof and without == "c=" + expect_c + ",r=" + nonce
            log.write("AUTH %s %s %s %s\n" % (mech, attrs["n"], gs2, "good" if good else "bad"))
            if not good:
                send("535 5.7.8 bad proof"); continue
            skey = hmac.new(salted, b"Server Key", alg).digest()
            send("334 " + base64.b64encode(b"v=" + base64.b64encode(hmac.new(skey, am, alg).digest())).decode())
            line()
            send(spec["auth"])
        elif u.startswith("AUTH DIGEST-MD5"):
            import hashlib, re
            nonce = "OA6MG9tEQGm2hh"
            send("334 " + base64.b64encode(('realm="sink.test",nonce="%s",qop="auth",charset=utf-8,algorithm=md5-sess' % nonce).encode()).decode())
            resp = base64.b64decode(line()).decode()
            d = dict((k, v.strip('"')) for k, v in re.findall(r'([a-z-]+)=("[^"]*"|[^,]*)', resp))
            md5 = lambda b: hashlib.md5(b).digest()
            hx = lambda b: hashlib.md5(b).hexdigest()
            a1 = md5(("%s:%s:%s" % (d["username"], d["realm"], spec.get("password", ""))).encode()) + (":%s:%s" % (nonce, d["cnonce"])).encode()
            a2 = ("AUTHENTICATE:" + d["digest-uri"]).encode()
            want = hx(("%s:%s:%s:%s:auth:%s" % (hx(a1), nonce, d["nc"], d["cnonce"], hx(a2))).encode())
            log.write("AUTH DIGEST-MD5 %s %s %s %s\n" % (d["username"], d["realm"], d["digest-uri"], "good" if want == d["response"] else "bad"))
            send("334 " + base64.b64encode(b"rspauth=0").decode())
            line()
            send(spec["auth"])
        elif u.startswith("AUTH XOAUTH2"):
            log.write("AUTH XOAUTH2 %r\n" % base64.b64decode(l.split()[2]))
            if spec["auth"].startswith("235"):
                send(spec["auth"])
            else:
                send("334 " + base64.b64encode(b'{"status":"401"}').decode())
                line()
                send(spec["auth"])
        elif u.startswith("AUTH CRAM-"):
            import hmac
            chal = b"<1896.697170952@sink.test>"
            send("334 " + base64.b64encode(chal).decode())
            user, digest = base64.b64decode(line()).decode().rsplit(" ", 1)
            alg = u.split("-", 1)[1].lower()
            good = hmac.new(spec.get("password", "").encode(), chal, alg).hexdigest() == digest
            log.write("AUTH %s %s %s\n" % (u[5:], user, "good" if good else "bad"))
            send(spec["auth"])
        elif u.startswith("AUTH LOGIN"):
            send("334 VXNlcm5hbWU6")
            user = base64.b64decode(line())
            send("334 UGFzc3dvcmQ6")
            pw = base64.b64decode(line())
            log.write("AUTH LOGIN %r %r\n" % (user, pw))
            send(spec["auth"])
        elif u.startswith("MAIL"):
            # Complete command lines that arrived with MAIL: >0 only from a pipelining client.
            log.write("AHEAD %d\n" % f.ahead())
            send(spec["mail"])
        elif u.startswith("RCPT"):
            r = spec["rcpt"]
            send(r[min(rcpts, len(r) - 1)])
            rcpts += 1
        elif u == "DATA":
            send(spec["data"])
            if not spec["data"].startswith("354"): continue
            body = b""
            while True:
                raw = f.readline()
                if not raw: raise EOFError
                if raw == b".\r\n": break
                body += raw
            if len(body) < 4096:
                log.write("BODY %r\n" % body)
            import hashlib
            log.write("BODYLEN %d %s\n" % (len(body), hashlib.sha256(body).hexdigest()))
            send(spec["end"])
        elif u == "QUIT":
            send("221 bye")
            return
        else:
            send("502 unknown")
while True:
    conn, peer = srv.accept()
    log.write("CONNECT %s\n" % peer[0])
    try:
        if spec.get("implicitTLS"):
            conn = tls_wrap(conn)
            log.write("TLS " + conn.version() + "\n")
        serve(conn)
    except Exception as e:
        log.write("END %s\n" % type(e).__name__)
    try: conn.close()
    except Exception: pass
"""#

    /// Starts the server on `address`:`port` (0 = any free port); nil when it does not come up.
    init?(_ script: Script, address: String = "127.0.0.1", port: UInt16 = 0) {
        self.address = address
        logFile = box.at("server.log")
        let portFile = box.at("port")
        var spec: [String] = [
            "\"address\": \(json(address))", "\"port\": \(port)",
            "\"greeting\": \(json(script.greeting))", "\"ehlo\": [\(script.ehlo.map(json).joined(separator: ","))]",
            "\"helo\": \(json(script.helo))", "\"mail\": \(json(script.mail))",
            "\"rcpt\": [\(script.rcpt.map(json).joined(separator: ","))]", "\"data\": \(json(script.data))",
            "\"end\": \(json(script.end))", "\"starttls\": \(json(script.starttls))", "\"auth\": \(json(script.auth))", "\"password\": \(json(script.password))",
            "\"implicitTLS\": \(script.implicitTLS)", "\"dropGreeting\": \(script.dropGreeting)", "\"silent\": \(script.silent)",
        ]
        if let c = script.certificate { spec.append("\"certificate\": \(json(c))") }
        if let q = script.qmtpAnswers { spec.append("\"qmtp\": [\(q.map(json).joined(separator: ","))]") }
        let specFile = box.write("spec.json", "{" + spec.joined(separator: ",") + "}")
        let programFile = box.write("server.py", ScriptedSMTPServer.program)
        guard let child = BackgroundChild(["/usr/bin/python3", programFile, specFile, logFile, portFile],
                                          output: box.at("python.err")) else { return nil }
        self.child = child
        var found: UInt16 = 0
        _ = eventually(within: 15) {
            if let text = contents(portFile), let p = UInt16(String(decoding: text, as: UTF8.self)) { found = p; return true }
            return !child.isRunning
        }
        guard found != 0 else {
            let why = contents(box.at("python.err")).map { String(decoding: $0, as: UTF8.self) } ?? ""
            FD.writeAll(2, Array("scripted SMTP server did not start: \(why)\n".utf8))
            return nil
        }
        self.port = found
    }

    var log: String { String(decoding: contents(logFile) ?? [], as: UTF8.self) }
}

private func json(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default: out.unicodeScalars.append(u)
        }
    }
    return out + "\""
}
