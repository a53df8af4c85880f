// Looking at one service directory the way svstat does: is supervise running there, and
// what does its status file say. svps calls this directly instead of running svstat.
import Core
import Glibc

public enum ServiceProbe {
    public enum Outcome: Equatable, Sendable {
        case report(ServiceReport)
        /// supervise is not running for the directory (svstat exit 2).
        case notRunning(message: String)
        /// Anything else that stopped the report: bad status file (100), system error (111),
        /// status file missing (2).
        case failed(code: Int32, message: String)

        /// svstat's exit status for this directory.
        public var exitCode: Int32 {
            switch self {
            case .report(let r): return r.exitCode
            case .notRunning: return 2
            case .failed(let code, _): return code
            }
        }
    }

    public static func probe(_ dir: String, locator: ServiceLocator, now: TAI64N = .now()) -> Outcome {
        guard Path.status(dir) != nil else {
            return .failed(code: ExitCode.temporary, message: "unable to access \(dir): \(SystemError.describe(errno))")
        }
        // The down file is looked for in the real service directory, never the run-state one.
        var normallyUp = true
        if Path.status(Path.join(dir, "down")) != nil {
            normallyUp = false
        } else if errno != ENOENT {
            return .failed(code: ExitCode.temporary, message: "unable to stat \(dir)/down: \(SystemError.describe(errno))")
        }

        let stateDirectory: String
        switch locator.openForWriting(SuperviseFiles.ok, of: dir) {
        case .success(let opened):
            FD.close(opened.fd)
            stateDirectory = opened.stateDirectory
        case .failure(.noReader), .failure(.notFound):
            return .notRunning(message: "unable to open \(dir)/supervise/ok: supervise not running")
        case .failure(.system(let e)):
            return .failed(code: ExitCode.temporary, message: "unable to open \(dir)/supervise/ok: \(e.reason)")
        }

        let statusPath = Path.join(stateDirectory, SuperviseFiles.directory + "/" + SuperviseFiles.status)
        let status: ServiceStatus
        switch ServiceStatus.read(statusPath) {
        case .success(let s): status = s
        case .failure(.format):
            return .failed(code: ExitCode.permanent, message: "unable to read \(dir)/supervise/status: bad format")
        case .failure(.system(let e)):
            return .failed(code: e.errno == ENOENT ? 2 : ExitCode.temporary,
                           message: "unable to read \(dir)/supervise/status: \(e.reason)")
        }

        var alive = false
        if status.running && status.pid > 0 {
            alive = kill(status.pid, 0) == 0 || errno == EPERM
        }
        return .report(ServiceReport(service: dir, status: status, normallyUp: normallyUp, pidAlive: alive, now: now))
    }
}
