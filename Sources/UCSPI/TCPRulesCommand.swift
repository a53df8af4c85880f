// tcprules: compiles rule lines from stdin into the cdb tcpserver consults, atomically.
import Core
import Glibc

public struct TCPRulesCommand: Command {
    public static let name = "tcprules"
    public static let installDirectory = InstallDirectory.bin
    public static let summary = "compile tcpserver access rules into a cdb"

    /// Why a build stopped; decides the message and the exit code.
    private enum Failure {
        case syntax(line: Int, text: [UInt8], RuleSyntaxError)
        case input(SystemError)
    }

    public static func run(_ context: CommandContext) -> Int32 {
        let diag = context.diagnostics
        guard context.arguments.count >= 2 else { return diag.usage("tcprules rules.cdb rules.tmp") }
        let cdbPath = context.strings[0], tmpPath = context.strings[1]

        var failure: Failure?
        let built = CDBWriter.rebuild(cdbPath, temporary: tmpPath) { writer in
            let reader = BufferedReader(fd: 0, capacity: 65536)
            var line: [UInt8] = []
            var number = 0
            while true {
                line.removeAll(keepingCapacity: true)
                let more: Bool
                switch reader.readLine(into: &line) {
                case .failure(let e): failure = .input(e); return .failure(.system(e))
                case .success(let m): more = m
                }
                if line.isEmpty && !more { return .success(()) }
                number += 1
                switch RuleSyntax.parse(line) {
                case .failure(let e):
                    failure = .syntax(line: number, text: line, e)
                    return .failure(.corrupt("syntax"))
                case .success(nil):
                    break
                case .success(let rule?):
                    if let why = rule.uselessness {
                        FD.writeAll(2, Array("tcprules: warning: line \(number): ".utf8) + rule.address
                                    + Array(": \(why)\n".utf8))
                    }
                    let value = rule.value
                    for key in rule.keys {
                        if case .failure(let e) = writer.add(key: key, value: value) { return .failure(e) }
                    }
                }
                if !more { return .success(()) }
            }
        }
        guard case .failure(let error) = built else { return ExitCode.success }

        switch failure {
        case .syntax(let number, let text, let why)?:
            var trimmed = text[...]
            while let last = trimmed.last, [10, 32, 9].contains(last) { trimmed = trimmed.dropLast() }
            let message = Array("tcprules: fatal: unable to parse line \(number) (\(why)): ".utf8) + trimmed + [10]
            FD.writeAll(2, message)
            return ExitCode.permanent
        case .input(let e)?:
            return diag.fatal(ExitCode.temporary, "unable to read input: \(e.reason)")
        case nil:
            break
        }
        switch error {
        case .system(let e) where e.operation == "unable to open":
            return diag.fatal(ExitCode.temporary, "unable to create \(tmpPath): \(e.reason)")
        case .system(let e) where e.operation.hasPrefix("unable to move"):
            return diag.fatal(ExitCode.temporary, "unable to move \(tmpPath) to \(cdbPath): \(e.reason)")
        case .system(let e):
            return diag.fatal(ExitCode.temporary, "unable to write to \(tmpPath): \(e.reason)")
        case .tooBig, .corrupt:
            return diag.fatal(ExitCode.temporary, "unable to write to \(tmpPath): \(error)")
        }
    }
}
