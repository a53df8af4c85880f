// The process layout recordio and fixcrio share: this process becomes the program (same
// pid, so its exit status is the caller's), and a forked child copies between the
// original stdin/stdout and pipes to the program's stdin/stdout.
import CSupport
import Core
import Glibc

enum ProgramRelay {
    /// Runs `context.arguments` as this process with a relay child in front of its stdin
    /// and stdout. `relay(toProgram, fromProgram)` runs in the child, which then exits 0.
    /// Returns only on failure, with the exit code: 100 usage, 111 pipe/fork/exec.
    static func run(_ context: CommandContext, relay: (_ toProgram: Int32, _ fromProgram: Int32) -> Void) -> Int32 {
        let diag = context.diagnostics
        guard !context.arguments.isEmpty else { return diag.usage("\(context.name) program [ arg ... ]") }

        let toProgram: (read: Int32, write: Int32)
        let fromProgram: (read: Int32, write: Int32)
        switch (pipeAboveStdio(), pipeAboveStdio()) {
        case (.success(let a), .success(let b)): (toProgram, fromProgram) = (a, b)
        case (.failure(let e), _), (_, .failure(let e)): return diag.fatal(e)
        }

        switch fork() {
        case -1:
            return diag.fatal(SystemError("unable to fork"))
        case 0:
            // The relay: a reader gone away is a write error to handle, not a death.
            Signals.ignore(SIGPIPE)
            FD.close(toProgram.read)
            FD.close(fromProgram.write)
            relay(toProgram.write, fromProgram.read)
            _exit(0)  // no atexit handlers: they belong to the program side
        default:
            break
        }

        FD.close(toProgram.write)
        FD.close(fromProgram.read)
        guard case .success = FD.move(toProgram.read, to: 0), case .success = FD.move(fromProgram.write, to: 1) else {
            return diag.fatal(SystemError("unable to move descriptors"))
        }
        return diag.fatal(Exec.replace(arguments: context.arguments, environment: context.environment))
    }

    /// A close-on-exec pipe whose ends are both above 2: with stdin or stdout closed by the
    /// caller, a plain pipe would take 0 or 1 and the relay would talk to itself.
    static func pipeAboveStdio() -> Result<(read: Int32, write: Int32), SystemError> {
        switch FD.pipe() {
        case .failure(let e): return .failure(e)
        case .success(let p):
            var ends = [p.read, p.write]
            for i in ends.indices where ends[i] <= 2 {
                let high = cs_fcntl_int(ends[i], F_DUPFD_CLOEXEC, 3)
                guard high >= 0 else {
                    let e = SystemError("unable to create pipe")
                    FD.close(p.read); FD.close(p.write)
                    return .failure(e)
                }
                ends[i] = high
            }
            if ends[0] != p.read { FD.close(p.read) }
            if ends[1] != p.write { FD.close(p.write) }
            return .success((ends[0], ends[1]))
        }
    }
}
