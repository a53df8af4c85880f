// scram-passwd: adds, replaces or removes a user's salted SCRAM credentials in the file
// qmail-smtpd checks SCRAM-SHA-1/-256 against. The password comes on stdin and is never
// stored; the file is rewritten whole (temporary file, fsync, rename) under a lock.
import Core
import Glibc

public struct ScramPasswdCommand: Command {
    public static let name = "scram-passwd"
    public static let installDirectory = InstallDirectory.sbin
    public static let summary = "maintain qmail-smtpd's SCRAM credential file"
    static let synopsis = "scram-passwd [-f file] [-i iterations] [-m SCRAM-SHA-1|SCRAM-SHA-256] [-d] user"

    public static func run(_ context: CommandContext) -> Int32 {
        let diag = context.diagnostics
        let env = context.environment
        guard let digests = context.tls as? any TLSDigests.Type else {
            return diag.fatal(ExitCode.permanent, "this binary has no crypto library: run it from indimail-tls")
        }
        var file: String?
        var iterations = 4096
        var algorithms = SCRAMAlgorithm.allCases
        var delete = false
        let parsed: (items: [OptionParser.Item], operandIndex: Int)
        switch OptionParser("f:i:m:d").parse(context.strings) {
        case .failure(let e):
            diag.warning(e.description)
            return diag.usage(synopsis)
        case .success(let p): parsed = p
        }
        for item in parsed.items {
            switch item {
            case .value("f", let v): file = v
            case .value("i", let v):
                guard let n = Int(v), n >= 1, n <= 10_000_000 else { return diag.fatal(ExitCode.permanent, "bad iteration count: \(v)") }
                iterations = n
            case .value("m", let v):
                let name = v.uppercased().hasPrefix("SCRAM-") ? v.uppercased() : "SCRAM-" + v.uppercased()
                guard let a = SCRAMAlgorithm(rawValue: name) else { return diag.fatal(ExitCode.permanent, "unknown mechanism: \(v)") }
                algorithms = [a]
            case .flag("d"): delete = true
            default: return diag.usage(synopsis)
            }
        }
        let operands = Array(context.arguments.dropFirst(parsed.operandIndex))
        guard operands.count == 1, let user = operands.first, !user.isEmpty,
              !user.contains(10), !user.contains(13) else { return diag.usage(synopsis) }
        let path = file ?? SCRAMCredentialStore.path(env, controlDirectory: ControlFiles(paths: SuitePaths(environment: env)).directory)

        var password: [UInt8] = []
        if !delete {
            switch FD.readAll(0) {
            case .failure(let e): return diag.fatal(e)
            case .success(let bytes): password = Array(bytes.prefix { $0 != 10 })
            }
            if password.last == 13 { password.removeLast() }
            guard !password.isEmpty else { return diag.fatal(ExitCode.permanent, "empty password on stdin") }
        }

        // Serialise writers: a lock file beside the credential file.
        let lockPath = path + ".lock"
        guard case .success(let lockFD) = FD.open(lockPath, O_WRONLY | O_CREAT | O_CLOEXEC, mode: 0o600) else {
            return diag.fatal(ExitCode.temporary, "unable to open \(lockPath): \(SystemError.describe(errno))")
        }
        defer { FD.close(lockFD) }
        guard flock(lockFD, LOCK_EX) == 0 else { return diag.fatal(ExitCode.temporary, "unable to lock \(lockPath)") }

        var store = SCRAMCredentialStore()
        var existing = stat()
        let exists = stat(path, &existing) == 0
        let isCDB = path.hasSuffix(".cdb")
        if exists {
            switch SCRAMCredentialSource.load(path) {
            case .failure(let e): return diag.fatal(ExitCode.permanent, e.description)
            case .success(.table(let s)?): store = s
            case .success(.cdb(let c, _)?):
                switch SCRAMCredentialStore.records(c) {
                case .failure(let e): return diag.fatal(ExitCode.permanent, "\(path): \(e)")
                case .success(let s): store = s
                }
            case .success(nil): break
            }
        }
        if delete {
            guard store.remove(user) else { return diag.fatal(ExitCode.permanent, "no such user: \(String(decoding: user, as: UTF8.self))") }
        } else {
            for algorithm in algorithms {
                let salt = SCRAMSetup.systemRandom(16)
                guard let credential = SCRAMCredential.derive(algorithm, password: password, salt: salt,
                                                              iterations: iterations, digests: digests) else {
                    return diag.fatal(ExitCode.temporary, "unable to compute \(algorithm.rawValue) keys")
                }
                store.set(user, credential)
            }
            for i in password.indices { password[i] = 0 }
        }

        let temporary = path + ".tmp.\(getpid())"
        if isCDB {
            if case .failure(let e) = store.writeCDB(path, temporary: temporary) {
                return diag.fatal(ExitCode.temporary, "unable to write \(path): \(e)")
            }
            if exists {
                _ = chown(path, existing.st_uid, existing.st_gid)
                _ = chmod(path, existing.st_mode & 0o7777)
            } else {
                _ = chmod(path, 0o600)
            }
            return 0
        }
        guard case .success(let fd) = FD.open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode: 0o600) else {
            return diag.fatal(ExitCode.temporary, "unable to create \(temporary): \(SystemError.describe(errno))")
        }
        // Keep the owner and mode an administrator gave the file (qmail-smtpd must read it).
        if exists {
            _ = fchown(fd, existing.st_uid, existing.st_gid)
            _ = fchmod(fd, existing.st_mode & 0o7777)
        }
        let written = FD.writeAll(fd, store.render())
        let synced = FD.sync(fd)
        FD.close(fd)
        guard case .success = written, case .success = synced, rename(temporary, path) == 0 else {
            let why = SystemError.describe(errno)
            unlink(temporary)
            return diag.fatal(ExitCode.temporary, "unable to write \(path): \(why)")
        }
        return 0
    }
}
