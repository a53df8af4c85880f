// The per-connection child of tcpserver: environment, names, ident, rules, per-IP limit,
// then the program (in-process, plugin or exec), behind TLS when asked.
import Core
import Glibc

struct ServerSetup {
    var options: TCPServerOptions
    var context: CommandContext
    var tlsContext: (any TLSContext)?
    var prepared: PreparedCommand?
    /// $MAXPERIP at start-up (20 without it): the child-side limit unless a rule sets MAXPERIP.
    var childMaxPerIP: Int
}

enum ConnectionHandler {
    /// What the parent takes through its signalfd and each child unblocks again. One value
    /// built in the parent at start-up: a child reads it instead of building it anew.
    static let serverSignals = SignalSet([SIGCHLD, SIGTERM, SIGHUP, SIGUSR1])

    static func log(_ setup: ServerSetup, _ line: String, level: Int = 2) {
        guard setup.options.verbosity >= level else { return }
        FD.writeAll(2, Array("tcpserver: \(line)\n".utf8))
    }

    /// The PROTO/TCP*/TCP6* variables of §2.4; a nil name removes the variable.
    static func setTCPVariables(_ env: inout Environment, options: TCPServerOptions, v4: Bool,
                                local: SocketAddress, remote remoteAddress: SocketAddress,
                                localHost: String?, remoteHost: String?, remoteInfo: String?) {
        let localIPAddress = local.ip ?? .v4(0, 0, 0, 0)
        let remoteIPAddress = remoteAddress.ip ?? .v4(0, 0, 0, 0)
        func text(_ ip: IPAddress) -> String { v4 ? ip.unmapped.description : ip.compactV6 }
        env["PROTO"] = v4 ? "TCP" : "TCP6"
        env["TCPLOCALIP"] = text(localIPAddress)
        env["TCPLOCALPORT"] = String(local.port)
        env["TCPLOCALHOST"] = localHost
        env["TCPREMOTEIP"] = text(remoteIPAddress)
        env["TCPREMOTEPORT"] = String(remoteAddress.port)
        env["TCPREMOTEHOST"] = remoteHost
        env["TCPREMOTEINFO"] = remoteInfo
        if !options.ipv4Only {
            env["TCP6LOCALIP"] = localIPAddress.compactV6
            env["TCP6LOCALPORT"] = String(local.port)
            env["TCP6LOCALHOST"] = localHost
            env["TCP6REMOTEIP"] = remoteIPAddress.compactV6
            env["TCP6REMOTEPORT"] = String(remoteAddress.port)
            env["TCP6REMOTEHOST"] = remoteHost
            if case .inet(_, _, let scope) = local, scope != 0, !remoteIPAddress.unmappedIsV4 {
                var name = [CChar](repeating: 0, count: Int(IF_NAMESIZE) + 1)
                if if_indextoname(scope, &name) != nil {
                    env["TCP6INTERFACE"] = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                }
            }
        }
        env["TCP6REMOTEINFO"] = remoteInfo
    }

    /// What an in-process program would run with for a connection from 127.0.0.1 to the
    /// listening port: the connection variables set by the code real connections use, with
    /// no lookup, ident, rules or socket. For the program's warm-up in the parent.
    static func rehearsalContext(_ setup: ServerSetup, prepared: PreparedCommand, port: UInt16) -> CommandContext {
        let options = setup.options
        var env = setup.context.environment
        if case .unix(let path) = options.listen {
            env["PROTO"] = "UNIX"
            env["UNIXLOCALPATH"] = path
        } else {
            let loopback = IPAddress.v4(127, 0, 0, 1)
            let remote = SocketAddress.inet(loopback, port: 1024, scope: 0)
            let local = SocketAddress.inet(loopback, port: port, scope: 0)
            let v4 = options.ipv4Only || (!options.forceV6 && loopback.unmappedIsV4)
            setTCPVariables(&env, options: options, v4: v4, local: local, remote: remote,
                            localHost: options.localHostName, remoteHost: nil, remoteInfo: nil)
        }
        return ProgramLauncher.programContext(prepared, options.program, environment: env, context: setup.context)
    }

    /// Serves one accepted connection; the return value is the child's exit code.
    static func serve(socket fd: Int32, remote: SocketAddress?, sameIPCount: Int, setup: ServerSetup) -> Int32 {
        let diag = Diagnostics(program: "tcpserver")
        let options = setup.options
        let pid = getpid()
        var env = setup.context.environment
        var remoteText = "unknown"
        var maxPerIP = setup.childMaxPerIP

        if case .unix(let path) = options.listen {
            log(setup, "pid \(pid) from \(path)")
            if let banner = options.banner, case .failure(let e) = FD.writeAll(fd, banner) {
                return diag.fatal(ExitCode.temporary, "dropping connection: unable to print banner: \(e.reason)")
            }
            env["PROTO"] = "UNIX"
            env["UNIXLOCALPATH"] = path
            log(setup, "ok \(pid) [\(ServerLog.field(path))]")
            remoteText = path
        } else {
            guard let remoteAddress = remote, let remoteIP = remoteAddress.ip,
                  let local = Socket.localAddress(fd), let localIP = local.ip else {
                return diag.fatal(ExitCode.temporary, "dropping connection: unable to get addresses")
            }
            let v4 = options.ipv4Only || (!options.forceV6 && remoteIP.unmappedIsV4)
            func text(_ ip: IPAddress) -> String { v4 ? ip.unmapped.description : ip.compactV6 }
            remoteText = text(remoteIP)
            log(setup, "pid \(pid) from \(remoteText)")
            if !options.keepIPOptions && remoteIP.unmappedIsV4 { Socket.removeIPOptions(fd) }
            if options.noDelay { Socket.setNoDelay(fd) }
            if let banner = options.banner, case .failure(let e) = FD.writeAll(fd, banner) {
                return diag.fatal(ExitCode.temporary, "dropping connection: unable to print banner: \(e.reason)")
            }

            let localHost = options.localHostName ?? NetworkLookups.reverseName(localIP)
            var remoteHost: String?
            if options.reverseLookup, let name = NetworkLookups.reverseName(remoteIP) {
                if options.paranoid && !((try? NetworkLookups.resolve(name, ipv4Only: false).get()) ?? []).map(\.unmapped).contains(remoteIP.unmapped) {
                    env["TCPPARANOID"] = name
                } else {
                    remoteHost = name
                }
            }
            var remoteInfo: String?
            if options.ident {
                remoteInfo = NetworkLookups.remoteInfo(local: localIP, localPort: local.port, remote: remoteIP,
                                                       remotePort: remoteAddress.port, scope: 0, timeout: options.identTimeout)
            }

            setTCPVariables(&env, options: options, v4: v4, local: local, remote: remoteAddress,
                            localHost: localHost, remoteHost: remoteHost, remoteInfo: remoteInfo)

            var denied = false
            if let rulesFile = options.rulesFile {
                switch TCPRules.open(rulesFile) {
                case .failure(.system(let e)) where e.errno == ENOENT && options.rulesMissingOK:
                    break
                case .failure(let e):
                    return diag.fatal(ExitCode.temporary, "dropping connection: unable to read cdb: \(e)")
                case .success(let rules):
                    switch rules.lookup(ip: remoteText, host: remoteHost, info: remoteInfo) {
                    case .failure(let e):
                        return diag.fatal(ExitCode.temporary, "dropping connection: unable to read cdb: \(e)")
                    case .success(let match):
                        if let match {
                            denied = match.action == .deny
                            for change in match.environment {
                                if let value = change.value { env.set(name: change.name, value: value) } else { env.unset(name: change.name) }
                                if change.name == Array("MAXPERIP".utf8) {
                                    maxPerIP = change.value.flatMap { Int(String(decoding: $0, as: UTF8.self)) } ?? 0
                                }
                            }
                        }
                    }
                }
            }
            let localField = (localHost.map(ServerLog.field) ?? "") + "[\(text(localIP))]\(local.port)"
            let remoteField = (remoteHost.map(ServerLog.field) ?? "") + "[\(remoteText)]"
                + (remoteInfo.map(ServerLog.field) ?? "") + ":\(remoteAddress.port)"
            log(setup, "\(denied ? "deny" : "ok") \(pid) \(localField) \(remoteField):maxperip=\(maxPerIP)")
            if denied { return ExitCode.permanent }
        }

        if maxPerIP > 0 && sameIPCount >= maxPerIP {
            diag.warning("dropping connection, no ip slots for \(remoteText), perIPlimit \(sameIPCount)")
            return ExitCode.temporary
        }
        // Back to what the program expects: only what tcpserver itself changed (cheaper than
        // resetting every signal, and it keeps what tcpserver inherited, as exec would).
        Signals.setDefault(SIGPIPE)
        serverSignals.unblock()

        if let tls = setup.tlsContext {
            return TLSSession.serve(socket: fd, tls: tls, environment: env, setup: setup, diag: diag)
        }
        guard case .success = FD.move(dup(fd), to: 0), case .success = FD.move(fd, to: 1) else {
            return diag.fatal(ExitCode.temporary, "dropping connection: unable to set up descriptors")
        }
        return ProgramLauncher.run(options.program, environment: env, context: setup.context,
                                   prepared: setup.prepared, diagnostics: diag)
    }
}
