// svok: exit 0 when supervise is running for a service directory, 100 when it is not.
import Core
import Glibc

public struct SvokCommand: Command {
    public static let name = "svok"
    public static let installDirectory = InstallDirectory.bin
    public static let summary = "check whether supervise is running for a service"

    public static func run(_ context: CommandContext) -> Int32 {
        let diag = context.diagnostics
        guard let dir = context.strings.first else { return diag.usage("svok dir") }
        guard Path.status(dir) != nil else {
            return diag.fatal(ExitCode.temporary, "unable to access \(dir): \(SystemError.describe(errno))")
        }
        switch ServiceLocator(environment: context.environment).openForWriting(SuperviseFiles.ok, of: dir) {
        case .success(let opened):
            FD.close(opened.fd)
            return ExitCode.success
        case .failure(.noReader), .failure(.notFound):
            return ExitCode.permanent
        case .failure(.system(let e)):
            return diag.fatal(ExitCode.temporary, "unable to open \(dir)/supervise/ok: \(e.reason)")
        }
    }
}
