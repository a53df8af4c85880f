// The delivery itself: try each target address in turn, speak SMTP (or QMTP) to the first
// that answers, and produce the reports qmail-rspawn expects.
import Core
import Glibc

final class RemoteDelivery {
    let settings: RemoteSettings
    let tls: (any TLSLibrary.Type)?
    /// Turns a U-label domain into the A-label name DNS knows (libidn2 in indimail-tls).
    let idn: (any IDNConverter.Type)?
    /// Recipient reports so far (the message report is added at the end).
    var output: [UInt8] = []
    private let timeoutFile: TCPTimeoutFile
    private let now: () -> UInt32
    private let input: Int32

    /// Per-connection state the reports depend on.
    private var insideGreeting = false
    private var critical = false
    private(set) var partner = ""
    /// Recipients as sent: domains replaced by their CNAME targets (unless routed).
    private(set) var recipients: [[UInt8]]
    /// Every recipient domain was an alias: the "MX points back to me" check is off.
    private var allAliases = false
    var partnerAddress: String { partner }
    /// The sender as SMTP sends it: BATV-signed when batvkey asks for it.
    private(set) var smtpSender: [UInt8]
    func appendOutput(_ bytes: [UInt8]) { output += bytes }

    init(settings: RemoteSettings, tls: (any TLSLibrary.Type)?, idn: (any IDNConverter.Type)? = nil, input: Int32 = 0) {
        self.settings = settings
        self.tls = tls
        self.idn = idn
        self.input = input
        recipients = settings.recipients
        smtpSender = settings.sender
        if let key = settings.batvKey, let digests = tls as? any TLSDigests.Type,
           let signed = BATV.sign(settings.sender, key: key, day: Int(time(nil) / 86400), digests: digests) {
            smtpSender = signed
        }
        timeoutFile = TCPTimeoutFile(queueDirectory: settings.queueDirectory)
        now = { UInt32(truncatingIfNeeded: time(nil)) }
    }

    private enum Attempt {
        /// Connected but this host would not take the message: next address.
        case next
        /// The TLS handshake failed on an opportunistic session: same address, no TLS.
        case againWithoutTLS
    }

    private var protocolName: String { settings.route?.transport == .qmtp ? "QMTP" : "SMTP" }
    private var port: Int { settings.route?.port ?? RemoteRoute.smtpPort }

    // MARK: the address loop

    func run(resolver: DNSResolver, local: LocalAddresses) -> RemoteReport {
        do {
            try canonicalizeRecipients(resolver: resolver)
            let targets = try chooseTargets(resolver: resolver, local: local)
            var tried: [String] = []
            var withoutTLS = false
            var qmtpFailed = false
            var lastPort = port
            var lastProtocol = protocolName
            var index = 0
            let spread = TCPTimeoutTable.spread(pid: getpid())
            let mxps = settings.route == nil && !settings.environment.contains("DISABLE_MXPS")
            while index < targets.count {
                let target = targets[index]
                if settings.usesTimeoutTable, let table = timeoutFile.read(),
                   table.shouldSkip(target.address, now: now(), penalty: settings.penalty, spread: spread) {
                    index += 1
                    continue
                }
                // MXPS: an MX preference of 12801, 12817, … asks for QMTP first, SMTP as fallback.
                let useQMTP = settings.route?.transport == .qmtp
                    || (mxps && !qmtpFailed && RemoteDelivery.qmtpPriority(target.preference))
                let attemptPort = settings.route?.port ?? (useQMTP ? RemoteRoute.qmtpPort : RemoteRoute.smtpPort)
                lastPort = attemptPort
                lastProtocol = useQMTP ? "QMTP" : "SMTP"
                if !withoutTLS && !qmtpFailed { tried.append(target.address.description) }
                let remote = SocketAddress.inet(target.address, port: UInt16(attemptPort), scope: 0)
                let local: IPAddress?
                switch settings.localAddress(for: target.address) {
                case .success(let ip): local = ip
                case .failure(let finish): throw finish
                }
                switch Socket.connect(to: remote, from: local, timeout: settings.timeoutConnect) {
                case .failure(let error):
                    if useQMTP && settings.route == nil {
                        qmtpFailed = true  // the same address again, by SMTP
                        continue
                    }
                    let counted = [ETIMEDOUT, ECONNREFUSED, EHOSTDOWN, ENETUNREACH, EHOSTUNREACH].contains(error.errno)
                    recordTimeout(target.address, failed: counted)
                    withoutTLS = false
                    qmtpFailed = false
                    index += 1
                case .success(let fd):
                    recordTimeout(target.address, failed: false)
                    let connection = SMTPConnection(socket: fd, timeout: settings.timeoutRemote)
                    partner = target.address.description
                    if useQMTP {
                        throw RemoteFinish(report: qmtp(connection))
                    }
                    switch try smtp(connection, target: target, tlsAllowed: !withoutTLS) {
                    case .againWithoutTLS:
                        withoutTLS = true
                    case .next:
                        recordTimeout(target.address, failed: true)
                        withoutTLS = false
                        qmtpFailed = false
                        index += 1
                    }
                }
            }
            return .noConnection(protocolName: lastProtocol, host: Array(routeHost.utf8), tried: tried, port: lastPort,
                                 bindIP: settings.outgoingIPText)
        } catch let finish as RemoteFinish {
            return finish.report
        } catch {
            return .systemResources
        }
    }

    /// The reference's CNAME step: each recipient's domain becomes the end of its CNAME
    /// chain, unless a route is used or DISABLE_CNAME_LOOKUP is set.
    private func canonicalizeRecipients(resolver: DNSResolver) throws {
        guard settings.route == nil, !settings.environment.contains("DISABLE_CNAME_LOOKUP") else { return }
        var all = !recipients.isEmpty
        recipients = try recipients.map { address in
            guard let at = address.lastIndex(of: UInt8(ascii: "@")) else { all = false; return address }
            // A U-label domain is asked for by its A-label name; without a CNAME it stays as written.
            guard case .success(var domain) = dnsName(String(decoding: address[(at + 1)...], as: UTF8.self)) else {
                all = false
                return address
            }
            var replaced = 0
            while replaced < 10, !domain.isEmpty, RemoteHosts.literal(domain) == nil {
                switch resolver.query(domain, .cname) {
                case .success(let records):
                    guard case .cname(let target)? = records.first?.data else { break }
                    domain = target.description
                    replaced += 1
                    continue
                case .failure(let e) where e.isTemporary:
                    throw RemoteFinish(report: RemoteReport(.deferral, "CNAME lookup failed temporarily. (#4.4.3)\n"))
                case .failure:
                    break
                }
                break
            }
            if replaced == 0 { all = false; return address }
            return Array(address[...at]) + Array(domain.utf8)
        }
        allAliases = all
    }

    /// MX preferences that announce a QMTP server (MXPS): 12801 + 16k up to 13055.
    static func qmtpPriority(_ preference: Int) -> Bool {
        preference >= 12800 && preference <= 13055 && preference % 16 == 1
    }

    /// The host name the addresses come from: the relay of a route, else the domain.
    private var routeHost: String { settings.route?.relay ?? settings.host }

    private func recordTimeout(_ ip: IPAddress, failed: Bool) {
        guard settings.usesTimeoutTable else { return }
        let t = now(), tolerance = settings.tolerance
        timeoutFile.update { $0.record(ip, failed: failed, now: t, tolerance: tolerance) }
    }

    /// `name` as DNS knows it: a name with non-ASCII bytes (U-labels) becomes its A-label
    /// form when this binary has an IDN converter, and stays as it is otherwise.
    private func dnsName(_ name: String) -> Result<String, IDNError> {
        guard let idn else { return .success(name) }
        return idn.lookupName(name)
    }

    private func chooseTargets(resolver: DNSResolver, local: LocalAddresses) throws -> [RemoteTarget] {
        // An internationalized domain is looked up by its A-label name; one that has none
        // cannot exist in DNS (the reference's perm_dns).
        let lookup: String
        switch dnsName(routeHost) {
        case .success(let name): lookup = name
        case .failure(.noMemory): throw RemoteFinish(report: .systemResources)
        case .failure(.invalid): throw RemoteFinish(report: .noHostPermanent(Array(routeHost.utf8)))
        }
        let found: Result<[RemoteTarget], RemoteHostError>
        if settings.route != nil {
            found = RemoteHosts.addresses(of: lookup, resolver: resolver)
        } else {
            let seed = UInt64(UInt32(truncatingIfNeeded: time(nil))) &+ UInt64(UInt32(getpid())) << 16
            found = RemoteHosts.exchangers(of: lookup, resolver: resolver, random: seed)
        }
        let targets: [RemoteTarget]
        switch found {
        case .failure(.temporary): throw RemoteFinish(report: .noHostTemporary)
        case .failure(.noSuchHost): throw RemoteFinish(report: .noHostPermanent(Array(routeHost.utf8)))
        case .success(let t): targets = t
        }
        guard !targets.isEmpty else { throw RemoteFinish(report: .noMX) }
        // Never deliver to ourselves: only exchangers preferred over our own entry count.
        var best = settings.route == nil ? 100_000 : 300_000
        if allAliases { best = 500_000 }
        if settings.route == nil {
            for t in targets where local.contains(t.address) { best = min(best, t.preference) }
        }
        let usable = targets.filter { $0.preference < best }
        guard !usable.isEmpty else { throw RemoteFinish(report: .ambiguousMX(controlDirectory: settings.controlDirectory)) }
        return usable
    }

    // MARK: reports

    /// The reference's quit(): says QUIT, then reports `<prefix><ip><parts>.` and the reply.
    func quit(_ connection: SMTPConnection, _ letter: RemoteReport.Letter, _ prefix: String, _ parts: [String],
                      reply: [UInt8]) -> RemoteFinish {
        _ = connection.send("QUIT\r\n")
        connection.closeTLS()
        return RemoteFinish(report: .quit(letter, prefix: prefix, host: partner, parts, reply: reply))
    }

    private func dropped(_ connection: SMTPConnection) -> RemoteFinish {
        var interval: Int?
        if insideGreeting && !critical && settings.usesTimeoutTable {
            interval = settings.tolerance
            if let ip = IPAddress(partner) { recordTimeout(ip, failed: true) }
        }
        return RemoteFinish(report: .dropped(host: partner, critical: critical, inGreeting: insideGreeting,
                                             tcptoInterval: interval, tlsError: connection.tlsError))
    }

    func reply(_ connection: SMTPConnection) throws -> SMTPReply {
        guard let r = connection.readReply() else { throw dropped(connection) }
        return r
    }

    func send(_ connection: SMTPConnection, _ bytes: [UInt8]) throws {
        guard connection.send(bytes) else { throw dropped(connection) }
    }

    func send(_ connection: SMTPConnection, _ text: String) throws { try send(connection, Array(text.utf8)) }

    // MARK: SMTP

    private func ehlo(_ connection: SMTPConnection) throws -> SMTPReply {
        try send(connection, "EHLO \(settings.heloHost)\r\n")
        return try reply(connection)
    }

    private func smtp(_ c: SMTPConnection, target: RemoteTarget, tlsAllowed: Bool) throws -> Attempt {
        insideGreeting = true
        critical = false
        if settings.smtps {
            insideGreeting = false
            if let failure = implicitTLS(c, target: target) { throw failure }
            let greeting = try reply(c)
            if greeting.code != 220 {
                throw quit(c, .deferral, "TLS Connected to ", [" but greeting failed"], reply: greeting.text)
            }
        } else {
            let greeting = try reply(c)
            insideGreeting = false
            if greeting.code >= 500 && greeting.code < 600 {
                throw quit(c, .failure, "Connected to ", [" but greeting failed"], reply: greeting.text)
            }
            if greeting.code >= 400 && greeting.code < 500 { return .next }
            if greeting.code != 220 {
                throw quit(c, .deferral, "Connected to ", [" but greeting failed"], reply: greeting.text)
            }
        }

        var hello = try ehlo(c)
        if !settings.smtps && tlsAllowed && hello.code == 250 {
            switch try startTLS(c, target: target, capabilities: hello) {
            case .none: break
            case .some(true): hello = try ehlo(c)
            case .some(false): return .againWithoutTLS
            }
        }
        var esmtp = true
        if !settings.useAuth && hello.code >= 500 {
            esmtp = false
            try send(c, "HELO \(settings.heloHost)\r\n")
            hello = try reply(c)
        }
        if settings.environment.contains("TRY_NEXT_MX_HELO_FAIL") && hello.code >= 400 && hello.code < 500 {
            return .next
        }
        if hello.code != 250 {
            throw quit(c, hello.code >= 500 ? .failure : .deferral, "Connected to ",
                       [" but my name -->\(settings.heloHost)<-- was rejected :("], reply: hello.text)
        }
        let useSize = esmtp && hello.announces("SIZE")
        var utf8Parameter = false
        if settings.environment.contains("SMTPUTF8") && needsSMTPUTF8() {
            guard esmtp && hello.announces("SMTPUTF8") else {
                throw quit(c, .failure, "Connected to ", [" but server does not support unicode in email addresses"], reply: hello.text)
            }
            utf8Parameter = true
        }
        let sender = smtpQuotedAddress(smtpSender)
        var mailFrom = Array("MAIL FROM:<".utf8) + sender + Array(">".utf8)
        if useSize { mailFrom += Array(" SIZE=\(settings.size)".utf8) }
        if esmtp && hello.announces("8BITMIME") && messageIs8Bit() { mailFrom += Array(" BODY=8BITMIME".utf8) }

        if esmtp && settings.useAuth, hello.announces("AUTH"),
           let user = settings.route?.user, let password = settings.route?.password {
            if let authUser = try authenticate(c, mechanisms: hello.authMechanisms, user: user, password: password, sender: sender) {
                mailFrom += Array(" AUTH=<".utf8) + smtpXtext(authUser) + Array(">".utf8)
            }
        }
        if utf8Parameter { mailFrom += Array(" SMTPUTF8".utf8) }

        // MAIL, the RCPTs and DATA, with their replies read in order whether they were
        // written one at a time or pipelined (RFC 2920): the reports cannot tell the difference.
        let pipelined = esmtp && hello.announces("PIPELINING") && !settings.environment.contains("DISABLE_PIPELINING")
        var envelope = SMTPCommandQueue(pipelined: pipelined)
        envelope.append(mailFrom + [13, 10])
        for recipient in recipients {
            envelope.append(Array("RCPT TO:<".utf8) + smtpQuotedAddress(recipient) + Array(">\r\n".utf8))
        }
        envelope.append(Array("DATA\r\n".utf8))

        let mail = try nextReply(c, &envelope)
        if mail.code >= 400 {
            abandon(c, &envelope)
            throw quit(c, mail.code >= 500 ? .failure : .deferral, "Connected to ", [" but sender was rejected"], reply: mail.text)
        }

        var anyAccepted = false
        var last = mail
        for recipient in recipients {
            last = try nextReply(c, &envelope)
            let report = RemoteReport.recipient(code: last.code, sender: sender, recipient: smtpQuotedAddress(recipient),
                                                host: partner, reply: last.text)
            output += report.encoded
            if report.letter == .recipientAccepted { anyAccepted = true }
        }
        if !anyAccepted {
            abandon(c, &envelope)
            throw quit(c, .failure, "Giving up on ", [""], reply: last.text)
        }

        let data = try nextReply(c, &envelope)
        if data.code >= 500 { throw quit(c, .failure, "", [" failed on DATA command"], reply: data.text) }
        if data.code >= 400 { throw quit(c, .deferral, "", [" failed on DATA command"], reply: data.text) }
        try blast(c)
        let end = try reply(c)
        critical = false
        if end.code >= 500 { throw quit(c, .failure, "", [" failed after I sent the message"], reply: end.text) }
        if end.code >= 400 { throw quit(c, .deferral, "", [" failed after I sent the message"], reply: end.text) }
        throw quit(c, .success, "", [c.isTLS ? " accepted message - Protocol SMTPS" : " accepted message - Protocol SMTP"],
                   reply: end.text)
    }

    /// The reply to the next command of `queue`, writing commands first when none is
    /// waiting for its reply: the next one alone, or the next group when pipelining.
    private func nextReply(_ c: SMTPConnection, _ queue: inout SMTPCommandQueue) throws -> SMTPReply {
        if let group = queue.takeGroup() { try send(c, group) }
        queue.answered += 1
        return try reply(c)
    }

    /// The transaction is given up: read the replies to commands already written so the
    /// QUIT that follows is read as a command. A DATA the server took with 354 although no
    /// recipient was accepted gets the lone "." RFC 2920 section 3.1 asks for. Nothing here
    /// changes the report: a failure only ends the clean-up.
    private func abandon(_ c: SMTPConnection, _ queue: inout SMTPCommandQueue) {
        while queue.answered < queue.sent {
            let isData = queue.answered == queue.count - 1
            queue.answered += 1
            guard let r = c.readReply() else { return }
            if isData && r.code == 354 {
                guard c.send(".\r\n"), c.readReply() != nil else { return }
            }
        }
    }

    /// Whether the message (queue header lines and all) has a byte with the high bit set:
    /// such a message is announced with BODY=8BITMIME to a server that offers 8BITMIME.
    /// Read with pread, so the message is still unread for DATA; a pipe counts as 7-bit.
    private func messageIs8Bit() -> Bool {
        if settings.qqeh.contains(where: { $0 >= 0x80 }) { return true }
        var chunk = [UInt8](repeating: 0, count: 65536)
        var offset: off_t = 0
        while true {
            let n = chunk.withUnsafeMutableBytes { pread(input, $0.baseAddress, $0.count, offset) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            if chunk[0..<n].contains(where: { $0 >= 0x80 }) { return true }
            offset += off_t(n)
        }
    }

    /// Whether the envelope or the message asks for SMTPUTF8: a non-ASCII byte in an
    /// address, or a Received line of the header saying "with UTF8…". The header is read
    /// with pread, so the message is still unread for DATA (a pipe is not looked at).
    private func needsSMTPUTF8() -> Bool {
        if settings.sender.contains(where: { $0 >= 0x80 }) { return true }
        if recipients.contains(where: { $0.contains(where: { $0 >= 0x80 }) }) { return true }
        var head = [UInt8](repeating: 0, count: 65536)
        let n = head.withUnsafeMutableBytes { pread(input, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return false }
        return RemoteDelivery.headerSaysUTF8(Array(head[0..<n]))
    }

    /// A `Received:` field (continuation lines included) containing ` with UTF8`, before
    /// the empty line that ends the header.
    static func headerSaysUTF8(_ bytes: [UInt8]) -> Bool {
        var fields: [[UInt8]] = []
        for line in bytes.split(separator: 10, omittingEmptySubsequences: false) {
            let text = line.last == 13 ? line.dropLast() : line[...]
            if text.isEmpty { break }
            if text.first == 32 || text.first == 9, !fields.isEmpty {
                fields[fields.count - 1] += [32] + text
            } else {
                fields.append(Array(text))
            }
        }
        let lower = { (b: UInt8) -> UInt8 in b >= 65 && b <= 90 ? b + 32 : (b == 9 ? 32 : b) }
        for field in fields {
            let f = field.map(lower)
            guard f.starts(with: Array("received:".utf8)) else { continue }
            let needle = Array(" with utf8".utf8)
            if f.count >= needle.count {
                for i in 0...(f.count - needle.count) where f[i..<(i + needle.count)].elementsEqual(needle) { return true }
            }
        }
        return false
    }

    /// The message with CR LF line ends and dot-stuffing, then the final dot.
    private func blast(_ c: SMTPConnection) throws {
        var out: [UInt8] = []
        out.reserveCapacity(140_000)
        for b in settings.qqeh {
            if b == 10 { out.append(13) }
            out.append(b)
        }
        var chunk = [UInt8](repeating: 0, count: 65536)
        var atLineStart = true
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(input, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw RemoteFinish(report: .readFailure) }
            if n == 0 { break }
            for i in 0..<n {
                let b = chunk[i]
                if atLineStart && b == UInt8(ascii: ".") { out.append(b) }
                atLineStart = b == 10
                if b == 10 { out.append(13) }
                out.append(b)
            }
            if out.count >= 65536 {
                try send(c, out)
                out.removeAll(keepingCapacity: true)
            }
        }
        if !atLineStart {
            // The reference stops here without QUIT: the server sees the connection end mid-DATA.
            throw RemoteFinish(report: .partialLine)
        }
        critical = true
        out += Array(".\r\n".utf8)
        try send(c, out)
    }

    // MARK: TLS

    private struct TLSPlan {
        var clientCertificate: String
        /// tlshosts/<name>.pem: the server must present a certificate it verifies.
        var requiredCA: String?
    }

    /// Whether and how to try TLS with `target`; nil means plain text.
    private func tlsPlan(for target: RemoteTarget) throws -> TLSPlan? {
        guard tls != nil else { return nil }
        let env = settings.environment
        let cert = Path.join(settings.certDirectory, env.nonEmpty("CLIENTCERT") ?? "clientcert.pem")
        if access(cert, F_OK) != 0 {
            if errno != ENOENT { throw RemoteFinish(report: .control("Unable to read client certificate")) }
            return nil
        }
        if settings.notTLSHosts.contains(settings.host.lowercased()) { return nil }
        let pem = Path.join(settings.certDirectory, "tlshosts/\(target.name).pem")
        if access(pem, F_OK) == 0 { return TLSPlan(clientCertificate: cert, requiredCA: pem) }
        for skip in ["notlshosts/\(target.name)", "notlshosts/\(settings.host)", "tlshosts/exhaustivelist"] {
            if access(Path.join(settings.certDirectory, skip), F_OK) == 0 { return nil }
        }
        return TLSPlan(clientCertificate: cert, requiredCA: nil)
    }

    private func tlsContext(_ plan: TLSPlan?, target: RemoteTarget) -> Result<any TLSContext, TLSError> {
        guard let tls else { return .failure(TLSError("no TLS library in this binary")) }
        var s = TLSSettings()
        if let plan {
            s.certificateFile = plan.clientCertificate
            if let ca = plan.requiredCA {
                s.caFile = ca
                s.verifyHost = target.name
            }
        }
        let control = ControlFiles(directory: settings.controlDirectory)
        if let m = try? control.value("tlsclientmethod").get(), !m.isEmpty { s.minimumVersion = m; s.maximumVersion = m }
        if let c = settings.environment.nonEmpty("TLS_CIPHER_LIST")
            ?? (try? control.list("clientcipherlist").get())?.flatMap({ $0.isEmpty ? nil : $0.joined(separator: ":") }) {
            s.cipherList = c
        }
        if let c = settings.environment.nonEmpty("TLS_CIPHER_SUITE")
            ?? (try? control.list("clientciphersuite").get())?.flatMap({ $0.isEmpty ? nil : $0.joined(separator: ":") }) {
            s.cipherSuites = c
        }
        // A client certificate that will not load is not worth failing over: go without.
        switch tls.clientContext(s) {
        case .success(let ctx): return .success(ctx)
        case .failure(let e) where plan?.requiredCA == nil && s.certificateFile != nil:
            s.certificateFile = nil
            return tls.clientContext(s).mapError { _ in e }
        case .failure(let e): return .failure(e)
        }
    }

    /// STARTTLS after EHLO. nil: carry on in plain text; true: TLS is up (EHLO again);
    /// false: the handshake failed, reconnect without TLS.
    private func startTLS(_ c: SMTPConnection, target: RemoteTarget, capabilities: SMTPReply) throws -> Bool? {
        guard let plan = try tlsPlan(for: target) else { return nil }
        let required = plan.requiredCA
        guard capabilities.announces("STARTTLS") else {
            guard let required else { return nil }
            throw tlsQuit(c, "No TLS achieved while \(required) exists", connected: false)
        }
        let context: any TLSContext
        switch tlsContext(plan, target: target) {
        case .success(let ctx): context = ctx
        case .failure(let e):
            guard required != nil else { return nil }
            throw tlsQuit(c, "TLS error initializing ctx: \(e)", connected: false)
        }
        try send(c, "STARTTLS\r\n")
        let answer = try reply(c)
        guard answer.code == 220 else {
            guard let required else { return nil }
            throw tlsQuit(c, "STARTTLS rejected while \(required) exists", connected: false)
        }
        switch c.startTLS(context, serverName: target.name, timeout: settings.timeoutConnect) {
        case .success: return true
        case .failure(let e):
            guard let required else { return false }
            if let why = RemoteDelivery.verifyFailure(e) {
                throw tlsQuit(c, "TLS unable to verify server with \(required): \(why)", connected: true)
            }
            throw tlsQuit(c, "TLS connect failed: \(e)", connected: true)
        }
    }

    /// The X.509 reason when a handshake failed because the server's certificate did not
    /// verify (the TLS layer appends it in parentheses): the reference reports those as
    /// "TLS unable to verify server with <tlshosts pem>: <reason>".
    static func verifyFailure(_ e: TLSError) -> String? {
        let text = Array(e.description.utf8), marker = Array("certificate verify failed (".utf8)
        guard text.last == UInt8(ascii: ")"), text.count > marker.count else { return nil }
        for start in 0...(text.count - marker.count) where text[start..<(start + marker.count)].elementsEqual(marker) {
            let reason = text[(start + marker.count)..<(text.count - 1)]
            return reason.isEmpty ? nil : String(decoding: reason, as: UTF8.self)
        }
        return nil
    }

    /// SMTPS: TLS before the greeting, whatever the certificate files say.
    private func implicitTLS(_ c: SMTPConnection, target: RemoteTarget) -> RemoteFinish? {
        let plan = try? tlsPlan(for: target)
        switch tlsContext(plan ?? nil, target: target) {
        case .failure(let e): return tlsQuit(c, "TLS error initializing ctx: \(e)", connected: false)
        case .success(let context):
            if case .failure(let e) = c.startTLS(context, serverName: target.name, timeout: settings.timeoutConnect) {
                return tlsQuit(c, "TLS connect failed: \(e)", connected: true)
            }
            return nil
        }
    }

    private func tlsQuit(_ c: SMTPConnection, _ reason: String, connected: Bool) -> RemoteFinish {
        if !settings.smtps || c.isTLS { _ = c.send("QUIT\r\n") }
        return RemoteFinish(report: .tls(reason, host: partner, connected: connected))
    }
}
