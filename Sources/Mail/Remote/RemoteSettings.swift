// What qmail-remote reads before it connects: arguments, control files and environment.
import Core
import Glibc

/// Ends the delivery with the message report (and any recipient reports already written).
struct RemoteFinish: Error {
    let report: RemoteReport
}

struct RemoteSettings {
    var host: String
    var sender: [UInt8]
    var qqeh: [UInt8]
    var size: String
    var recipients: [[UInt8]]

    var controlDirectory: String
    var queueDirectory: String
    var certDirectory: String
    var timeoutConnect: Double
    var timeoutRemote: Double
    var heloHost: String
    var outgoingIP: IPAddress?
    var outgoingIPText: String
    var notTLSHosts: Set<String>
    var route: RemoteRoute?
    var useAuth: Bool
    var authMethod: String
    var penalty: Int
    var tolerance: Int
    var smtps: Bool
    var environment: Environment
    /// bindroutes: remote address (or a prefix ending in ".") to local address.
    var bindRoutes = RouteTable(lines: [])
    /// batvkey, when the sender should be BATV-signed for this delivery.
    var batvKey: [UInt8]? = nil

    static func load(arguments: [[UInt8]], environment original: Environment) -> Result<RemoteSettings, RemoteFinish> {
        var env = original
        guard arguments.count >= 5 else { return .failure(RemoteFinish(report: .usage)) }
        let paths = SuitePaths(environment: env)
        let control = ControlFiles(paths: paths)
        func fail(_ what: String) -> RemoteFinish { RemoteFinish(report: .control(what)) }

        let host = String(decoding: arguments[0], as: UTF8.self)
        guard case .success(let connectTimeout) = control.integer("timeoutconnect", default: 60) else {
            return .failure(fail("Unable to read control file"))
        }
        guard case .success(let remoteTimeout) = control.integer("timeoutremote", default: 1200) else {
            return .failure(fail("Unable to read control file"))
        }
        let helo: String
        switch control.value("helohost") {
        case .success(let v?) where !v.isEmpty: helo = v
        case .success:
            guard case .success(let me?) = control.value("me"), !me.isEmpty else { return .failure(fail("Unable to read control file")) }
            helo = me
        case .failure: return .failure(fail("Unable to read control file"))
        }

        // Outgoing address: $OUTGOINGIP, else outgoingip.<host>, else outgoingip (a random line).
        var outgoingText = ""
        if let v = env.nonEmpty("OUTGOINGIP") {
            outgoingText = v
        } else {
            for name in ["outgoingip.\(host)", "outgoingip"] {
                guard case .success(let lines) = control.list(name) else { return .failure(fail("Unable to read control file")) }
                if let lines, !lines.isEmpty {
                    outgoingText = lines[Int(UInt32(truncatingIfNeeded: time(nil)) % UInt32(lines.count))]
                    break
                }
            }
        }
        // domainbindings: the sender (or its domain, or a suffix of it) picks the address
        // to connect from, and the sender's domain becomes the EHLO name.
        var heloName = helo
        guard case .success(let bindings) = control.list(env.nonEmpty("DOMAINBINDINGS") ?? "domainbindings") else {
            return .failure(fail("Unable to read control file"))
        }
        if let bindings, !bindings.isEmpty, !arguments[1].isEmpty {
            let table = RouteTable(lines: bindings)
            let sender = String(decoding: arguments[1], as: UTF8.self)
            let domain = sender.split(separator: "@", omittingEmptySubsequences: false).last.map(String.init) ?? ""
            var bound = table.value(for: sender).flatMap { $0.isEmpty ? nil : $0 }
            if bound == nil {
                for key in RouteTable.candidates(for: domain) {
                    if let v = table.value(for: key) { bound = v.isEmpty ? nil : v; break }
                }
            }
            if let bound {
                outgoingText = bound
                heloName = domain
            }
        }
        if outgoingText.isEmpty { outgoingText = "::" }
        var outgoing: IPAddress?
        guard let ip = IPAddress(outgoingText) else {
            return .failure(RemoteFinish(report: .invalidOutgoingIP(controlDirectory: control.directory)))
        }
        // 0.0.0.0 / :: mean "let the system choose".
        if ip.bytes.contains(where: { $0 != 0 }) { outgoing = ip }
        // helohostbyip: the EHLO name that goes with the address connected from.
        guard case .success(let byIP) = control.list(env.nonEmpty("HELOHOSTBYIP") ?? "helohostbyip") else {
            return .failure(fail("Unable to read control file"))
        }
        if let byIP, let name = RouteTable(lines: byIP).value(for: outgoingText), !name.isEmpty { heloName = name }

        let notlsName = env.nonEmpty("NOTLSHOSTS") ?? "notlshosts"
        guard case .success(let notls) = control.list(notlsName) else { return .failure(fail("Unable to read control file")) }

        // Routes: $QMTPROUTE/$SMTPROUTE (or X-SMTPROUTES) win over the files.
        var qmtpFromEnv = false, smtpFromEnv = false
        var qmtpLines: [String] = [], smtpLines: [String] = []
        if let r = env["QMTPROUTE"] {
            qmtpLines = r.split(separator: "\n").map(String.init)
            qmtpFromEnv = true
        } else {
            guard case .success(let l) = control.list(env.nonEmpty("QMTPROUTESFILE") ?? "qmtproutes") else {
                return .failure(fail("Unable to read control file"))
            }
            qmtpLines = l ?? []
        }
        if let r = env["SMTPROUTE"] ?? env["X-SMTPROUTES"] {
            smtpLines = r.split(separator: "\n").map(String.init)
            smtpFromEnv = true
        } else {
            guard case .success(let l) = control.list(env.nonEmpty("SMTPROUTESFILE") ?? "smtproutes") else {
                return .failure(fail("Unable to read control file"))
            }
            smtpLines = l ?? []
        }
        let sources = RouteSources(smtp: RouteTable(lines: smtpLines), qmtp: RouteTable(lines: qmtpLines),
                                   smtpFromEnvironment: smtpFromEnv, qmtpFromEnvironment: qmtpFromEnv)
        // moresmtproutes.cdb: per-address and per-domain routes, when the routes are not
        // given in the environment.
        var moreRoutes: CDB?
        if !smtpFromEnv {
            let path = control.path(env.nonEmpty("MORESMTPROUTESCDB") ?? "moresmtproutes.cdb")
            switch CDB.open(path) {
            case .success(let cdb): moreRoutes = cdb
            case .failure where access(path, F_OK) != 0 && errno == ENOENT: break
            case .failure: return .failure(fail("Unable to read control file"))
            }
        }
        var route = sources.route(host: host, senderIsNull: arguments[1].isEmpty,
                                  firstRecipient: String(decoding: arguments[4], as: UTF8.self)) { key in
            guard let moreRoutes, case .success(let value?) = moreRoutes.find(key) else { return nil }
            return String(decoding: value, as: UTF8.self)
        }

        // Credentials named by the route (/s, /r, /token) come from remote_auth.cdb; the
        // route's envstr (NAME=value,…) changes the environment, as the reference does.
        if env.contains("AUTH_SMTP"), var r = route {
            if let key = r.credentialKey {
                let lookup = key == "/s" ? String(decoding: arguments[1], as: UTF8.self)
                    : key == "/r" ? String(decoding: arguments[4], as: UTF8.self) : String(key.dropFirst())
                switch RemoteAuthTable.lookup(control.path("remote_auth.cdb"), Array(lookup.utf8)) {
                case .failure(let why):
                    return .failure(RemoteFinish(report: RemoteReport(.deferral, "unable to \(why.action) remote_auth.cdb file. (#4.3.0)\n")))
                case .success(let value?):
                    let c = RemoteRoute.credentials(String(decoding: value, as: UTF8.self))
                    (r.user, r.password, r.environment) = (c.user, c.password, c.environment)
                case .success(nil):
                    break
                }
            }
            if let assignments = r.environment { EnvironmentAssignments.apply(assignments, to: &env) }
            route = r
        }

        var penalty = env["MIN_PENALTY"].flatMap { RemoteRoute.signedLeadingNumber(Substring($0)) } ?? TCPTimeoutTable.defaultPenalty
        var tolerance = env["MAX_TOLERANCE"].flatMap { RemoteRoute.leadingNumber(Substring($0)) } ?? TCPTimeoutTable.defaultTolerance
        if let p = route?.penalty { penalty = p }
        if let t = route?.tolerance { tolerance = t }

        // BATV: sign unless the first recipient's domain is in batvnosignremote or the
        // sender's in batvnosignlocals.
        var batvKey: [UInt8]?
        if !arguments[1].isEmpty {
            let keyName = env.nonEmpty("BATVKEY") ?? "batvkey"
            guard case .success(let key) = control.value(keyName) else { return .failure(fail("Unable to read control file")) }
            if let key, !key.isEmpty {
                func domain(_ a: [UInt8]) -> String {
                    String(decoding: a.split(separator: UInt8(ascii: "@"), omittingEmptySubsequences: false).last ?? [], as: UTF8.self).lowercased()
                }
                guard case .success(let remote) = control.list(env.nonEmpty("BATVNOSIGNREMOTE") ?? "batvnosignremote"),
                      case .success(let locals) = control.list(env.nonEmpty("BATVNOSIGNLOCALS") ?? "batvnosignlocals") else {
                    return .failure(fail("Unable to read control file"))
                }
                let skipRemote = (remote ?? []).map { $0.lowercased() }.contains(domain(arguments[4]))
                let skipLocal = (locals ?? []).map { $0.lowercased() }.contains(domain(arguments[1]))
                if !skipRemote && !skipLocal { batvKey = Array(key.utf8) }
            }
        }

        let certDirectory = env.nonEmpty("CERTDIR") ?? Path.join(paths.sysconfDirectory, "certs")
        var settings = RemoteSettings(
            host: host, sender: arguments[1], qqeh: arguments[2],
            size: String(decoding: arguments[3], as: UTF8.self), recipients: Array(arguments[4...]),
            controlDirectory: control.directory, queueDirectory: paths.queueDirectory, certDirectory: certDirectory,
            timeoutConnect: Double(max(1, connectTimeout)), timeoutRemote: Double(max(1, remoteTimeout)),
            heloHost: heloName, outgoingIP: outgoing, outgoingIPText: outgoingText,
            notTLSHosts: Set((notls ?? []).map { $0.lowercased() }), route: route,
            useAuth: original.contains("AUTH_SMTP"), authMethod: original["AUTH_SMTP"] ?? "",
            penalty: penalty, tolerance: tolerance,
            smtps: original.contains("SMTPS") || route?.implicitTLS == true, environment: env)
        settings.batvKey = batvKey
        guard case .success(let binds) = control.list("bindroutes") else { return .failure(fail("Unable to read control file")) }
        settings.bindRoutes = RouteTable(lines: binds ?? [])
        return .success(settings)
    }

    /// The local address for a connection to `remote`: bindroutes (the address, then each
    /// shorter prefix ending in a dot, then the empty key) before the outgoing address.
    func localAddress(for remote: IPAddress) -> Result<IPAddress?, RemoteFinish> {
        if !bindRoutes.isEmpty {
            let text = remote.unmapped.description
            var keys = [text]
            var chars = Array(text)
            while chars.popLast() != nil {
                if chars.last == "." { keys.append(String(chars)) }
            }
            keys.append("")
            for key in keys {
                guard let value = bindRoutes.value(for: key), !value.isEmpty else { continue }
                guard let ip = IPAddress(value) else {
                    return .failure(RemoteFinish(report: .control("Unable to parse bindroutes")))
                }
                return .success(ip)
            }
        }
        return .success(outgoingIP)
    }

    /// Whether the tcpto table is consulted (a route's penalty of 0 turns it off).
    var usesTimeoutTable: Bool { penalty != 0 }
}

/// remote_auth.cdb, looked up as qmail's cdb_match does for users/cdb: the exact key
/// `!address\0`, else the longest `!prefix` that ends in one of the wildcard characters
/// stored under the empty key (the rest of the address is appended to its value).
/// What could not be done to remote_auth.cdb ("open", "read").
struct RemoteAuthFailure: Error {
    let action: String
}

enum RemoteAuthTable {
    /// The value, nil when absent; the failure says what could not be done ("open", "read").
    static func lookup(_ path: String, _ address: [UInt8]) -> Result<[UInt8]?, RemoteAuthFailure> {
        guard !address.isEmpty else { return .success(nil) }
        let cdb: CDB
        switch CDB.open(path) {
        case .success(let c): cdb = c
        case .failure:
            if access(path, F_OK) != 0 && errno == ENOENT { return .success(nil) }
            return .failure(RemoteAuthFailure(action: "open"))
        }
        let lower = [UInt8(ascii: "!")] + address.map { $0 >= 65 && $0 <= 90 ? $0 + 32 : $0 }
        switch cdb.find(lower + [0]) {
        case .failure: return .failure(RemoteAuthFailure(action: "read"))
        case .success(let v?): return .success(v)
        case .success(nil): break
        }
        guard case .success(let wild) = cdb.find([UInt8]()) else { return .failure(RemoteAuthFailure(action: "read")) }
        let wildchars = wild ?? []
        var i = lower.count
        while i >= 1 {
            if i == 1 || wildchars.contains(lower[i - 1]) {
                switch cdb.find(lower[0..<i]) {
                case .failure: return .failure(RemoteAuthFailure(action: "read"))
                case .success(let v?): return .success(v + address[(i - 1)...])
                case .success(nil): break
                }
            }
            i -= 1
        }
        return .success(nil)
    }
}

/// `NAME=value,NAME=,…`: set or (with an empty value) unset variables; `\,` is a comma
/// inside a value.
public enum EnvironmentAssignments {
    public static func apply(_ text: String, to env: inout Environment) {
        var items: [String] = []
        var current = ""
        var escaped = false
        for ch in text {
            if escaped { current.append(ch); escaped = false; continue }
            if ch == "\\" { escaped = true; continue }
            if ch == "," { items.append(current); current = ""; continue }
            current.append(ch)
        }
        if escaped { current.append("\\") }
        items.append(current)
        for item in items {
            let trimmed = item.drop { $0 == " " || $0 == "\t" }
            guard let eq = trimmed.firstIndex(of: "="), eq != trimmed.startIndex else { continue }
            let name = String(trimmed[..<eq])
            let value = trimmed[trimmed.index(after: eq)...]
            if value.isEmpty { env.unset(name) } else { env.set(name, Array(value.utf8)) }
        }
    }
}

/// BATV sender signing (prvs=): `prvs=0DDDhhhhhh=sender`, DDD the day number modulo 1000,
/// hhhhhh the first three bytes of MD5(0DDD + sender + key) in hex.
public enum BATV {
    public static func sign(_ sender: [UInt8], key: [UInt8], day: Int, digests: any TLSDigests.Type) -> [UInt8]? {
        guard !sender.isEmpty, !sender.starts(with: Array("prvs=".utf8)) else { return nil }
        if sender.starts(with: Array("sb*-".utf8)) { return Array(sender.dropFirst(4)) }  // "don't sign"
        let d = ((day % 1000) + 1000) % 1000
        let stamp = Array("0\(d / 100)\((d / 10) % 10)\(d % 10)".utf8)
        guard let md5 = digests.digest("md5", data: stamp + sender + key) else { return nil }
        let hex = Array("0123456789abcdef".utf8)
        let tag = md5.prefix(3).flatMap { [hex[Int($0 >> 4)], hex[Int($0 & 15)]] }
        return Array("prvs=".utf8) + stamp + tag + [UInt8(ascii: "=")] + sender
    }
}
