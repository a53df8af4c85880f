// setlock: run a program holding an exclusive lock on a file.
import Core
import Glibc

public struct SetlockCommand: Command {
    public static let name = "setlock"
    public static let installDirectory = InstallDirectory.bin
    public static let summary = "run a program with a file locked"

    static let usage = "setlock [-nNxX] file program [arg ...]"

    public static func run(_ context: CommandContext) -> Int32 {
        let diag = context.diagnostics
        let parsed: (items: [OptionParser.Item], operandIndex: Int)
        switch OptionParser("nNxX").parse(context.strings) {
        case .success(let p): parsed = p
        case .failure(let e):
            diag.warning(e.description)
            return diag.usage(usage)
        }
        // The last of -n/-N and of -x/-X wins, as getopt processing in the reference.
        var wait = true, quiet = false
        for case .flag(let c) in parsed.items {
            switch c {
            case "n": wait = false
            case "N": wait = true
            case "x": quiet = true
            case "X": quiet = false
            default: break
            }
        }
        let operands = Array(context.arguments[parsed.operandIndex...])
        guard operands.count >= 2 else { return diag.usage(usage) }
        let file = String(decoding: operands[0], as: UTF8.self)

        let fd: Int32
        switch FD.openAppend(file) {
        case .success(let f): fd = f
        case .failure(let e):
            return quiet ? ExitCode.success : diag.fatal(e)
        }
        if case .failure(let e) = FileLock.exclusive(fd, wait: wait) {
            return quiet ? ExitCode.success
                : diag.fatal(SystemError("unable to lock", file, errno: e.errno))
        }
        // The child holds the lock: the descriptor must survive exec.
        FD.setCloseOnExec(fd, false)
        let error = Exec.replace(arguments: Array(operands[1...]), environment: context.environment)
        return diag.fatal(error)
    }
}
