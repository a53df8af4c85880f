// svstat: one line (or one JSON object) per service directory saying what supervise reports.
import Core

public struct SvstatCommand: Command {
    public static let name = "svstat"
    public static let installDirectory = InstallDirectory.bin
    public static let summary = "print the status of services monitored by supervise"

    static let usage = "svstat [-j|--json] dir ..."

    public static func run(_ context: CommandContext) -> Int32 {
        let diag = context.diagnostics
        var arguments = context.strings[...]
        var json = false
        // Like the reference, every other argument is a directory, even one starting with
        // "-": only these two spellings (and "--") are taken as options, and only in front.
        while let first = arguments.first, first == "-j" || first == "--json" || first == "--" {
            arguments = arguments.dropFirst()
            if first == "--" { break }
            json = true
        }
        guard !arguments.isEmpty else { return diag.usage(usage) }

        let locator = ServiceLocator(environment: context.environment)
        let out = BufferedWriter(fd: 1)
        var code: Int32 = 0
        for dir in arguments {
            let outcome = ServiceProbe.probe(dir, locator: locator)
            switch outcome {
            case .report(let report):
                out.write((json ? report.json : report.line) + "\n")
            case .notRunning(let message):
                if json {
                    out.write(ServiceReport.failureJSON(service: dir, state: "not-running", error: "supervise not running") + "\n")
                }
                diag.warning(message)
            case .failed(_, let message):
                if json { out.write(ServiceReport.failureJSON(service: dir, state: "error", error: message) + "\n") }
                diag.warning(message)
            }
            code = outcome.exitCode
        }
        out.flush()
        return code
    }
}
