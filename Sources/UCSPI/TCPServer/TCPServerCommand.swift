// tcpserver: accept TCP (or UNIX) connections and run a program for each, with limits,
// access rules, TLS, and in-process programs for our own commands.
import CSupport
import Core
import Glibc

public struct TCPServerCommand: Command {
    public static let name = "tcpserver"
    public static let installDirectory = InstallDirectory.bin
    public static let summary = "accept connections and run a program for each"

    public static func run(_ context: CommandContext) -> Int32 {
        let diag = Diagnostics(program: "tcpserver")
        let env = context.environment
        var options: TCPServerOptions
        switch TCPServerOptions.parse(context.arguments, maxPerIP: env["MAXPERIP"]) {
        case .success(let o): options = o
        case .failure(let e):
            diag.warning(e.description)
            return diag.usage(TCPServerOptions.usage)
        }
        // The static base binary forks cheaply but has neither OpenSSL nor dlopen: for TLS
        // or .so plugins, hand over to indimail-tls before anything is set up.
        if context.tls == nil && needsLibraries(options, env, context: context) {
            return handOverToTLSBinary(context, diag)
        }
        var server = Server(options: options, context: context, diag: diag)
        return server.start()
    }

    static func needsLibraries(_ options: TCPServerOptions, _ env: Environment,
                               context: CommandContext) -> Bool {
        if options.tls != nil { return true }
        // An in-process program (qmail-smtpd with STARTTLS or SMTPS) that would exec
        // indimail-tls for every connection: better to be indimail-tls from the start.
        if let first = options.program.first,
           let command = ProgramLauncher.ownCommand(String(decoding: first, as: UTF8.self), context: context,
                                                    searchPath: env["PATH"]) as? any LibraryWantingCommand.Type,
           command.wantsLibraries(env) { return true }
        if let program = options.program.first, program.last == UInt8(ascii: "o"),
           String(decoding: program, as: UTF8.self).hasSuffix(".so") { return true }
        return env.names.contains { $0.hasPrefix("PLUGIN") && $0.dropFirst(6).allSatisfy(\.isNumber) && $0.count > 6 }
    }

    static func handOverToTLSBinary(_ context: CommandContext, _ diag: Diagnostics) -> Int32 {
        guard let me = ProgramLauncher.realPath("/proc/self/exe") else {
            return diag.fatal(ExitCode.temporary, "unable to find our own executable")
        }
        let tlsBinary = Path.join(Path.dirname(me), "indimail-tls")
        let error = Exec.replace(arguments: [Array(tlsBinary.utf8), Array("tcpserver".utf8)] + context.arguments,
                                 environment: context.environment)
        return diag.fatal(ExitCode.temporary, "TLS and plugins need indimail-tls: \(error)")
    }
}

private struct Server {
    var options: TCPServerOptions
    let context: CommandContext
    let diag: Diagnostics
    var limit = 40
    var children: [pid_t: [UInt8]] = [:]
    var setup: ServerSetup
    /// The listening port, for the warm-up's stand-in connection.
    var listenPort: UInt16 = 0

    init(options: TCPServerOptions, context: CommandContext, diag: Diagnostics) {
        self.options = options
        self.context = context
        self.diag = diag
        let startupMax = context.environment["MAXPERIP"].flatMap { Int($0) } ?? 20
        setup = ServerSetup(options: options, context: context, tlsContext: nil, prepared: nil, childMaxPerIP: startupMax)
    }

    func log(_ line: String) {
        guard options.verbosity >= 2 else { return }
        FD.writeAll(2, Array("tcpserver: \(line)\n".utf8))
    }

    func status(_ what: String, pid: pid_t = getpid()) {
        log("status: \(children.count)/\(limit) \(what), pid=\(pid)"
            + (what == "startup" ? (setup.tlsContext == nil ? ", TLS=disabled" : ", TLS=enabled") : ""))
    }

    /// -c: a number, or a file (relative names under CONTROLDIR) whose first line is one.
    mutating func readLimit() -> Result<Void, ControlError> {
        switch options.childLimit {
        case .count(let n):
            limit = n
        case .file(let name):
            let path = name.hasPrefix("/") || name.hasPrefix(".") ? name : Path.join(SuitePaths(environment: context.environment).controlDirectory, name)
            switch ControlFiles(directory: Path.dirname(path)).integer(Path.basename(path), default: limit) {
            case .success(let n): limit = n
            case .failure(let e): return .failure(e)
            }
        }
        return .success(())
    }

    mutating func start() -> Int32 {
        if case .failure(let e) = readLimit() { return diag.fatal(ExitCode.temporary, e.description) }
        if let pidFile = options.pidFile {
            if let text = try? FD.readFile(pidFile).get(), let pid = pid_t(String(decoding: text, as: UTF8.self).trimmingCharacters()),
               pid > 0, kill(pid, 0) == 0 {
                return diag.fatal(ExitCode.temporary, "already running (pid \(pid) in \(pidFile))")
            }
            if case .unix(let path) = options.listen { unlink(path) }
        }
        let signals: SignalFD
        do { signals = try SignalFD(ConnectionHandler.serverSignals) } catch {
            return diag.fatal(ExitCode.temporary, error.description)
        }
        Signals.ignore(SIGPIPE)

        if options.tls != nil {
            switch makeTLSContext() {
            case .success(let c): setup.tlsContext = c
            case .failure(let message): return diag.fatal(ExitCode.temporary, "unable to initialize TLS: \(message)")
            }
        }

        let listener: Int32
        switch openListener() {
        case .success(let fd): listener = fd
        case .failure(let message): return diag.fatal(ExitCode.temporary, message.description)
        }
        FD.setNonBlocking(listener)
        setup.options = options  // openListener may have switched to IPv4-only
        listenPort = Socket.localAddress(listener)?.port ?? 0
        if let pidFile = options.pidFile {
            if case .success(let fd) = FD.openTrunc(pidFile) {
                FD.writeAll(fd, Array(String(getpid()).utf8))
                FD.close(fd)
            }
        }
        if case .failure(let message) = dropPrivileges() { return diag.fatal(ExitCode.temporary, message.description) }
        if case .failure(let e) = preload(reload: false) { return diag.fatal(ExitCode.temporary, e.description) }
        if options.printPort, let local = Socket.localAddress(listener) {
            FD.writeAll(1, Array("\(local.port)\n".utf8))
        }
        // fds 0 and 1 belong to connections only.
        let null = open("/dev/null", O_RDWR)
        if null >= 0 { dup2(null, 0); dup2(null, 1); if null > 1 { close(null) } }
        status("startup")
        return loop(listener: listener, signals: signals)
    }

    func makeTLSContext() -> Result<any TLSContext, ServerError> {
        guard let library = context.tls else {
            return .failure(ServerError("this binary has no TLS library: run tcpserver from indimail-tls"))
        }
        guard let tls = options.tls else { return .failure(ServerError("TLS not requested")) }
        var files = TLSOptions()
        files.certificate = tls.certificateFile
        files.certificateDirectory = tls.certificateDirectory
        files.caFile = tls.caFile
        files.crlFile = tls.crlFile
        files.cipherFile = tls.cipherFile
        files.method = tls.method
        files.allowClientRenegotiation = tls.allowRenegotiation
        return files.settings(.server, environment: context.environment)
            .flatMap { library.serverContext($0) }
            .mapError { ServerError($0.description) }
    }

    mutating func openListener() -> Result<Int32, ServerError> {
        switch options.listen {
        case .unix(let path):
            return Socket.listenUnix(path: path, backlog: options.backlog).mapError { ServerError($0.description) }
        case .tcp(let host, let portText):
            guard let port = NetworkLookups.port(portText) else {
                return .failure(ServerError("unable to figure out port number for \(portText)"))
            }
            var address: IPAddress?
            if host != "0" && host != "::" {
                guard let resolved = IPAddress.parse(host) ?? (try? NetworkLookups.resolve(host, ipv4Only: false).get())?.first else {
                    return .failure(ServerError("no IP address for \(host)"))
                }
                address = resolved
                if resolved.unmappedIsV4 { options.ipv4Only = true }
            }
            var scope: UInt32 = 0
            if let interface = options.interface {
                scope = if_nametoindex(interface)
                guard scope != 0 else { return .failure(ServerError("unknown interface \(interface)")) }
            }
            return Socket.listenTCP(address: address, port: port, backlog: options.backlog,
                                    ipv4Only: options.ipv4Only, scope: scope).mapError { ServerError($0.description) }
        }
    }

    mutating func dropPrivileges() -> Result<Void, ServerError> {
        let env = context.environment
        var uidText = options.user
        var gidText = options.group
        if options.identityFromEnvironment {
            uidText = env.nonEmpty("UID") ?? uidText
            gidText = env.nonEmpty("GID") ?? gidText
        }
        guard uidText != nil || gidText != nil else { return .success(()) }
        var credentials = Credentials(uid: getuid(), gid: getgid(), groups: [])
        var groups: [gid_t] = []
        if let g = gidText {
            switch Privileges.parseGroups(g) {
            case .success(let list): groups = list
            case .failure(let e): return .failure(ServerError(e.description))
            }
        }
        if let u = uidText {
            if let uid = uid_t(u) {
                credentials.uid = uid
                if let first = groups.first { credentials.gid = first }
                credentials.groups = groups.isEmpty ? [credentials.gid] : groups
            } else {
                switch Accounts.user(u) {
                case .failure(let e): return .failure(ServerError(e.description))
                case .success(let account):
                    credentials.uid = account.uid
                    credentials.gid = account.gid
                    let memberships = (try? Privileges.memberships(of: account).get()) ?? [account.gid]
                    credentials.groups = memberships + groups.filter { !memberships.contains($0) }
                }
            }
        } else if let first = groups.first {
            // -g alone: a single number sets the gid too (djb); otherwise only the groups.
            if groups.count == 1, gidText.map({ UInt32($0) != nil }) == true { credentials.gid = first }
            credentials.groups = groups
            let rc = groups.withUnsafeBufferPointer { setgroups($0.count, $0.baseAddress) }
            guard rc == 0 else { return .failure(ServerError(SystemError("unable to set groups").description)) }
            if credentials.gid == first, setgid(first) != 0 { return .failure(ServerError(SystemError("unable to set gid").description)) }
            return .success(())
        }
        return Privileges.become(credentials).mapError { ServerError($0.description) }
    }

    /// In-process program and PLUGIN<n> objects: read once here, again on SIGHUP.
    mutating func preload(reload: Bool) -> Result<Void, SystemError> {
        if let first = options.program.first,
           let command = ProgramLauncher.ownCommand(String(decoding: first, as: UTF8.self), context: context,
                                                    searchPath: context.environment["PATH"]) {
            let prepared = PreparedCommand.prepare(command, context)
            setup.prepared = prepared
            // Children fork from here: what the warm-up builds, they inherit.
            prepared.warmUp(ConnectionHandler.rehearsalContext(setup, prepared: prepared, port: listenPort))
        }
        return ProgramLauncher.preloadPlugins(context.environment, reload: reload).map { _ in () }
    }

    mutating func loop(listener: Int32, signals: SignalFD) -> Int32 {
        while true {
            var fds = [pollfd(fd: signals.fd, events: Int16(POLLIN), revents: 0)]
            if children.count < limit { fds.append(pollfd(fd: listener, events: Int16(POLLIN), revents: 0)) }
            if poll(&fds, nfds_t(fds.count), -1) < 0 && errno != EINTR { continue }
            if fds[0].revents != 0 {
                for signal in signals.drain() {
                    switch signal {
                    case SIGCHLD: reap()
                    case SIGTERM:
                        log("status: \(children.count)/\(limit) shutdown, pid=\(getpid())")
                        if case .unix(let path) = options.listen { unlink(path) }
                        return ExitCode.success
                    case SIGHUP: reload()
                    case SIGUSR1: dumpChildren()
                    default: break
                    }
                }
            }
            if fds.count > 1 && fds[1].revents != 0 { acceptOne(listener: listener, signals: signals) }
        }
    }

    mutating func acceptOne(listener: Int32, signals: SignalFD) {
        let accepted: (Int32, SocketAddress?)
        switch Socket.accept(listener) {
        case .success(let a): accepted = a
        case .failure: return  // EAGAIN: someone else took it, or it went away
        }
        let (fd, remote) = accepted
        FD.setNonBlocking(fd, false)
        let key = remote?.ip?.mapped16 ?? [UInt8](repeating: 0, count: 16)
        let sameIP = children.values.filter { $0 == key }.count
        if options.perIPLimit > 0 && sameIP >= options.perIPLimit {
            let text = remote?.ip.map { options.ipv4Only || (!options.forceV6 && $0.unmappedIsV4) ? $0.unmapped.description : $0.compactV6 } ?? "unknown"
            if options.verbosity >= 1 { FD.writeAll(2, Array("tcpserver: end \(text) perIPlimit \(sameIP)\n".utf8)) }
            close(fd)
            return
        }
        if directSpawn {
            spawnDirectly(fd, remote: remote, key: key, sameIP: sameIP)
            return
        }
        let pid = fork()
        if pid < 0 {
            diag.warning("dropping connection: unable to fork: \(SystemError.describe(errno))")
            close(fd)
            return
        }
        if pid == 0 {
            close(listener)
            close(signals.fd)
            // A child's heap lives as long as its connection: giving memory back to the
            // system (brk shrinking after the parent's trimmed heap grew by a buffer) is
            // only syscalls and page-table work before an exit that frees it all anyway.
            cs_malloc_keep_heap()
            exit(ConnectionHandler.serve(socket: fd, remote: remote, sameIPCount: sameIP, setup: setup))
        }
        children[pid] = key
        close(fd)
        status("child", pid: pid)
    }

    /// When a connection child would only set variables and exec (no DNS, ident, rules, TLS,
    /// in-process program or plugin), the parent starts the program itself with posix_spawn:
    /// no copy of this process per connection. Same environment, logs and limits.
    var directSpawn: Bool {
        guard case .tcp = options.listen, options.tls == nil, !options.reverseLookup, !options.ident,
              options.localHostName != nil, options.rulesFile == nil, setup.prepared == nil,
              let first = options.program.first else { return false }
        return !String(decoding: first, as: UTF8.self).hasSuffix(".so")
    }

    mutating func spawnDirectly(_ fd: Int32, remote: SocketAddress?, key: [UInt8], sameIP: Int) {
        defer { close(fd) }
        guard let remoteAddress = remote, let remoteIP = remoteAddress.ip, let local = Socket.localAddress(fd) else { return }
        let v4 = options.ipv4Only || (!options.forceV6 && remoteIP.unmappedIsV4)
        let remoteText = v4 ? remoteIP.unmapped.description : remoteIP.compactV6
        let localText = v4 ? (local.ip ?? .v4(0, 0, 0, 0)).unmapped.description : (local.ip ?? .v4(0, 0, 0, 0)).compactV6
        if !options.keepIPOptions && remoteIP.unmappedIsV4 { Socket.removeIPOptions(fd) }
        if options.noDelay { Socket.setNoDelay(fd) }
        if let banner = options.banner, case .failure = FD.writeAll(fd, banner) { return }
        let maxPerIP = setup.childMaxPerIP
        if maxPerIP > 0 && sameIP >= maxPerIP {
            diag.warning("dropping connection, no ip slots for \(remoteText), perIPlimit \(sameIP)")
            return
        }
        var env = context.environment
        ConnectionHandler.setTCPVariables(&env, options: options, v4: v4, local: local, remote: remoteAddress,
                                          localHost: options.localHostName, remoteHost: nil, remoteInfo: nil)
        var spawn = SpawnOptions()
        spawn.fileMoves = [(fd, 0), (fd, 1)]
        switch Spawn.start(options.program, environment: env, options: spawn) {
        case .failure(let e):
            diag.warning("dropping connection: \(e)")
        case .success(let pid):
            children[pid] = key
            log("pid \(pid) from \(remoteText)")
            let localField = ServerLog.field(options.localHostName ?? "") + "[\(localText)]\(local.port)"
            log("ok \(pid) \(localField) [\(remoteText)]:\(remoteAddress.port):maxperip=\(maxPerIP)")
            status("child", pid: pid)
        }
    }

    mutating func reap() {
        while let (pid, status) = Wait.any() {
            guard children.removeValue(forKey: pid) != nil else { continue }
            switch status {
            case .exited(0): break
            case .exited(let code): log("end \(pid) status \(code)")
            case .signaled(let s, _): log("end \(pid) killed by signal \(s)")
            case .stopped: log("end \(pid) stopped by signal")
            }
            self.status("sigchild", pid: pid)
        }
    }

    mutating func reload() {
        if case .failure(let e) = readLimit() { diag.warning(e.description) }
        if options.tls != nil {
            switch makeTLSContext() {
            case .success(let c): setup.tlsContext = c
            case .failure(let message): diag.warning("keeping the old TLS context: \(message)")
            }
        }
        if case .failure(let e) = preload(reload: true) {
            diag.fatal(ExitCode.temporary, e.description)
            exit(ExitCode.temporary)
        }
        FD.writeAll(2, Array("tcpserver: sighup: \(children.count)/\(limit)\n".utf8))
    }

    func dumpChildren() {
        guard options.verbosity >= 2 else { return }
        for (slot, (pid, key)) in children.sorted(by: { $0.key < $1.key }).enumerated() {
            let ip = IPAddress.v6(key)
            let text = ip.unmappedIsV4 ? ip.unmapped.description : ip.compactV6
            FD.writeAll(2, Array("tcpserver: \(slot): IP \(text): PID \(pid)\n".utf8))
        }
    }
}

extension String {
    func trimmingCharacters() -> String {
        var s = Substring(self)
        while let l = s.last, l == "\n" || l == " " || l == "\r" || l == "\t" { s.removeLast() }
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        return String(s)
    }
}

struct ServerError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
