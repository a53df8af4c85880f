// The envdirs that carry queue selection to local injectors and queue tools:
// `$HOME/.defaultqueue`, then `CONTROLDIR/defaultqueue` (wiki §5.2, §5.3).
import Core
import Glibc

public enum DefaultQueue {
    /// `$HOME/.defaultqueue` (unless SKIP_LOCAL_ENVIRONMENT), then, while QUEUE_BASE is
    /// unset, `CONTROLDIR/defaultqueue`: the envdirs that choose the queue for local mail.
    /// A broken `.defaultqueue` is reported and skipped; a broken system directory is an
    /// error (exit 111 for the caller). `userDirectoryForRoot`: whether root reads its own
    /// `.defaultqueue` too (qmail-inject, qmail-qread, qmail-showctl do; most tools don't).
    public static func load(_ env: Environment, diagnostics: Diagnostics,
                            userDirectoryForRoot: Bool = true) -> Result<Environment, SystemError> {
        var env = env
        if !env.contains("SKIP_LOCAL_ENVIRONMENT"), let home = env["HOME"], userDirectoryForRoot || getuid() != 0 {
            let dir = Path.join(home, ".defaultqueue")
            if access(dir, X_OK) == 0 {
                switch EnvDirLoader.load(dir, into: env) {
                case .success(let e): env = e
                case .failure(let e): diagnostics.warning(e.description)
                }
            }
        }
        if !env.contains("QUEUE_BASE") {
            let dir = Path.join(SuitePaths(environment: env).controlDirectory, "defaultqueue")
            if access(dir, X_OK) == 0 {
                switch EnvDirLoader.load(dir, into: env, ignoreUnreadable: true) {
                case .success(let e): env = e
                case .failure(let e): return .failure(SystemError(e.message, e.name, errno: e.errno))
                }
            } else if errno != ENOENT {
                return .failure(SystemError("unable to access defaultqueue", dir, errno: errno))
            }
        }
        return .success(env)
    }

}
