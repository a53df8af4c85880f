// qmail-lspawn: local deliveries. Maps each recipient to an account (users/cdb, else
// qmail-getpw) and runs qmail-local as that account with the message on stdin.
import Core
import Glibc

/// The fixed reports for qmail-lspawn's own exit codes (qlx.h) and the K/Z/D mapping of
/// qmail-local's.
public enum LocalSpawnReport {
    public static func text(_ status: WaitStatus, output: [UInt8], user: [UInt8]? = nil) -> [UInt8] {
        guard case .exited(let code) = status else { return Array("Zqmail-local crashed.\n".utf8) }
        let fixed: String?
        switch code {
        case 117: fixed = "ZTrouble reading users/cdb in qmail-lspawn.\n"
        case 119: fixed = "ZOut of memory in qmail-lspawn.\n"
        case 118: fixed = "ZTemporary failure in qmail-lspawn.\n"
        case 116: fixed = "ZUnable to find alias user!\n"
        case 113: fixed = "ZNot allowed to perform deliveries as root.\n"
        case 122: fixed = "ZUnable to cd to root directory.\n"
        case 112: fixed = "ZInternal qmail-lspawn bug.\n"
        case 115: fixed = "ZNFS failure in qmail-local.\n"
        case 126: fixed = "DUnable to run qmail-local.\n"
        case 120: fixed = "ZUnable to run qmail-local.\n"
        case 121: fixed = "ZUnable to run qmail-getpw.\n"
        case 127:
            return Array("ZUnable to set proper uid, gid".utf8) + (user.map { Array(" for ".utf8) + $0 } ?? []) + Array(".\n".utf8)
        default: fixed = nil
        }
        if let fixed { return Array(fixed.utf8) }
        let letter: UInt8
        switch code {
        case 0: letter = UInt8(ascii: "K")
        case 111, 71, 74, 75: letter = UInt8(ascii: "Z")
        default: letter = UInt8(ascii: "D")
        }
        return [letter] + output.prefix { $0 != 0 }
    }
}

/// user, uid, gid, home, dash, ext: the six NUL-terminated fields of a users/cdb value
/// (plus its NUL) or of qmail-getpw's output.
public struct LocalAccount: Equatable, Sendable {
    public var user: [UInt8], uid: uid_t, gid: gid_t, home: [UInt8], dash: [UInt8], ext: [UInt8]

    public init(user: [UInt8], uid: uid_t, gid: gid_t, home: [UInt8], dash: [UInt8], ext: [UInt8]) {
        (self.user, self.uid, self.gid, self.home, self.dash, self.ext) = (user, uid, gid, home, dash, ext)
    }

    /// nil when fewer than six NUL-terminated fields (the reference's "internal bug").
    /// Numbers are read as scan_ulong does: leading digits, 0 when there are none.
    public static func parse(_ bytes: [UInt8]) -> LocalAccount? {
        var fields: [[UInt8]] = []
        var start = 0
        while fields.count < 6, let nul = bytes[start...].firstIndex(of: 0) {
            fields.append(Array(bytes[start..<nul]))
            start = nul + 1
        }
        guard fields.count == 6 else { return nil }
        return LocalAccount(user: fields[0], uid: uid_t(truncatingIfNeeded: leadingNumber(fields[1])),
                            gid: gid_t(truncatingIfNeeded: leadingNumber(fields[2])),
                            home: fields[3], dash: fields[4], ext: fields[5])
    }

    static func leadingNumber(_ bytes: [UInt8]) -> UInt64 {
        var n: UInt64 = 0
        for c in bytes {
            guard c >= 48 && c <= 57 else { break }
            let (m, o1) = n.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(UInt64(c - 48))
            if o1 || o2 { return UInt64.max }
            n = s
        }
        return n
    }
}

struct LocalSpawnDriver: SpawnDriver {
    let truncation = 3000
    let defaultDelivery: [UInt8]
    let environment: Environment
    let localProgram: [UInt8]
    let localArgv0: [UInt8]
    let getpwProgram: [UInt8]
    let cdbPath: String
    let root: Bool
    let setUserPrivileges: Bool
    /// qmailp:nofiles, for running qmail-getpw when root (nil: unknown account).
    let getpwCredentials: Credentials?
    let devNull: Int32

    init(context: CommandContext, defaultDelivery: [UInt8], devNull: Int32) {
        var env = context.environment
        env.unset("QMAILREMOTE")
        environment = env
        self.defaultDelivery = defaultDelivery
        let paths = SuitePaths(environment: env)
        let sbinLocal = Path.join(paths.prefix, "sbin/qmail-local")
        localArgv0 = Array(sbinLocal.utf8)
        localProgram = env.bytes("QMAILLOCAL") ?? localArgv0
        getpwProgram = env.bytes("QMAILGETPW") ?? Array(Path.join(paths.prefix, "sbin/qmail-getpw").utf8)
        cdbPath = Path.join(paths.assignDirectory, "cdb")
        root = geteuid() == 0
        setUserPrivileges = env.contains("SETUSER_PRIVILEGES")
        let accounts = SuiteAccounts(environment: env)
        if case .success(let p) = Accounts.user(accounts.qmailp), case .success(let g) = Accounts.group(accounts.nofilesGroup) {
            getpwCredentials = Credentials(uid: p.uid, gid: g, groups: [g])
        } else {
            getpwCredentials = nil
        }
        self.devNull = devNull
    }

    func report(_ status: WaitStatus, output: [UInt8]) -> [UInt8] {
        LocalSpawnReport.text(status, output: output)
    }

    private func fail(_ code: Int32, user: [UInt8]? = nil) -> SpawnStart {
        .finished(LocalSpawnReport.text(.exited(code), output: [], user: user))
    }

    mutating func start(_ job: SpawnJob, output: Int32) -> SpawnStart {
        let local = Array(job.request.recipient[..<job.at])
        // A bounce to "@host" (double bounce to nobody): delivered to the void.
        if local.isEmpty { return .finished(LocalSpawnReport.text(.exited(0), output: [])) }
        switch UserAssignments.lookup(local: local, cdbPath: cdbPath) {
        case .failure: return fail(117)
        case .success(let value?):
            guard let account = LocalAccount.parse(value) else { return fail(112) }
            return deliver(job, account: account, fromPasswd: false, output: output)
        case .success(nil):
            break
        }
        guard case .success(let pipe) = FD.pipe() else { return fail(118) }
        var spec = ChildSpec(path: getpwProgram, arguments: [getpwProgram, local], environment: job.environment(environment),
                             stdin: devNull, stdout: pipe.write)
        spec.stderrToStdout = false
        spec.execFailure = (121, 121)
        if root {
            guard let credentials = getpwCredentials else { FD.close(pipe.read); FD.close(pipe.write); return fail(127, user: local) }
            spec.credentials = credentials
        }
        let started = ChildLauncher.start(spec)
        FD.close(pipe.write)
        switch started {
        case .success(let pid): return .helper(pid, output: pipe.read)
        case .failure:
            FD.close(pipe.read)
            return fail(121)
        }
    }

    mutating func resume(_ job: SpawnJob, helper: WaitStatus, helperOutput: [UInt8], output: Int32) -> SpawnStart {
        switch helper {
        case .exited(0): break
        case .exited(let code): return fail(code)
        default: return fail(118)
        }
        guard let account = LocalAccount.parse(helperOutput) else { return fail(112) }
        return deliver(job, account: account, fromPasswd: true, output: output)
    }

    private func deliver(_ job: SpawnJob, account: LocalAccount, fromPasswd: Bool, output: Int32) -> SpawnStart {
        let r = job.request
        let local = Array(r.recipient[..<job.at])
        let domain = Array(r.recipient[(job.at + 1)...])
        let argv: [[UInt8]] = [localArgv0, Array("--".utf8), account.user, account.home, local, account.dash,
                               account.ext, domain, r.sender, defaultDelivery, r.qqeh]
        var spec = ChildSpec(path: localProgram, arguments: argv, environment: job.environment(environment),
                             stdin: job.messageFD, stdout: output)
        if root {
            if account.uid == 0 { return fail(113) }
            var groups = [account.gid]
            if fromPasswd && setUserPrivileges {
                let name = String(decoding: account.user, as: UTF8.self)
                guard case .success(let entry) = Accounts.user(name),
                      case .success(let all) = Privileges.memberships(of: entry) else { return fail(127, user: account.user) }
                groups = all
            }
            spec.credentials = Credentials(uid: account.uid, gid: account.gid, groups: groups)
            spec.refuseRoot = true
        }
        switch ChildLauncher.start(spec) {
        case .success(let pid): return .child(pid)
        case .failure(let e): return fail(TemporaryErrno.contains(e.errno) ? 120 : 126)
        }
    }
}

public struct QmailLspawnCommand: Command {
    public static let name = "qmail-lspawn"
    public static let installDirectory = InstallDirectory.sbin
    public static let summary = "run qmail-local for each local delivery qmail-send asks for"

    public static func run(_ context: CommandContext) -> Int32 {
        let diag = context.diagnostics
        guard let defaultDelivery = context.arguments.first else { return diag.usage("qmail-lspawn defaultdelivery") }
        let setup: SpawnEngine.Setup
        switch SpawnEngine.prepare(context) {
        case .failure(let e): return diag.fatal(e)
        case .success(let s): setup = s
        }
        guard case .success(let devNull) = FD.open("/dev/null", O_RDONLY) else {
            return diag.fatal(SystemError("unable to open", "/dev/null"))
        }
        var driver = LocalSpawnDriver(context: context, defaultDelivery: defaultDelivery, devNull: devNull)
        return SpawnEngine.run(&driver, setup: setup)
    }
}
