// qmail-newu: compiles users/assign into users/cdb, replacing it atomically.
import Core
import Glibc

public struct QmailNewuCommand: Command {
    public static let name = "qmail-newu"
    public static let installDirectory = InstallDirectory.sbin
    public static let summary = "prepare address assignments for qmail-lspawn"

    public static func run(_ context: CommandContext) -> Int32 {
        let diag = context.diagnostics
        let dir = context.strings.first ?? SuitePaths(environment: context.environment).assignDirectory
        let text: [UInt8]
        switch FD.readFile(Path.join(dir, "assign")) {
        case .failure(let e): return diag.fatal(ExitCode.temporary, "unable to read \(dir)/assign: \(e.reason)")
        case .success(let t): text = t
        }
        let records: [(key: [UInt8], value: [UInt8])]
        switch UserAssignments.compile(text) {
        case .failure(let e): return diag.fatal(ExitCode.temporary, "\(e); \(dir)/cdb left unchanged")
        case .success(let r): records = r
        }
        let result = CDBWriter.rebuild(Path.join(dir, "cdb"), temporary: Path.join(dir, "cdb.tmp")) { writer in
            for record in records {
                if case .failure(let e) = writer.add(key: record.key, value: record.value) { return .failure(e) }
            }
            return .success(())
        }
        if case .failure(let e) = result { return diag.fatal(ExitCode.temporary, "unable to write \(dir)/cdb: \(e)") }
        return 0
    }
}
