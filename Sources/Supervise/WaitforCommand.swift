// waitfor: block until a process that is not our child has exited.
import CSupport
import Core
import Glibc

public struct WaitforCommand: Command {
    public static let name = "waitfor"
    public static let installDirectory = InstallDirectory.bin
    public static let summary = "wait until an unrelated process exits"

    static let usage = "waitfor [-v] pid"

    /// A process id as written: decimal digits, at least 1, within pid_t.
    static func parsePID(_ text: String) -> pid_t? {
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              let pid = pid_t(text), pid > 0 else { return nil }
        return pid
    }

    public static func run(_ context: CommandContext) -> Int32 {
        let diag = context.diagnostics
        let parsed: (items: [OptionParser.Item], operandIndex: Int)
        switch OptionParser("v").parse(context.strings) {
        case .success(let p): parsed = p
        case .failure(let e):
            diag.warning(e.description)
            return diag.usage(usage)
        }
        let verbose = parsed.items.contains(.flag("v"))
        let operands = Array(context.strings[parsed.operandIndex...])
        guard operands.count == 1 else { return diag.usage(usage) }
        guard let pid = parsePID(operands[0]) else {
            diag.warning("not a process id: \(operands[0])")
            return diag.usage(usage)
        }

        let pidfd = cs_pidfd_open(pid, 0)
        if pidfd >= 0 {
            defer { FD.close(pidfd) }
            // The kernel marks a pidfd readable once the process has terminated.
            guard FD.waitUntil(pidfd, events: Int16(POLLIN)) else {
                return diag.fatal(SystemError("unable to poll pid", String(pid)))
            }
        } else if errno == ENOSYS {
            // Kernels before 5.3: probe with signal 0 until the pid is gone.
            while kill(pid, 0) == 0 || errno == EPERM { usleep(100_000) }
            if errno != ESRCH { return diag.fatal(SystemError("unable to watch pid", String(pid))) }
        } else {
            return diag.fatal(SystemError("unable to open pid", String(pid)))
        }
        if verbose {
            if case .failure(let e) = FD.writeAll(1, Array("PID \(pid) terminated!\n".utf8)) {
                return diag.fatal(SystemError("unable to write to descriptor 1", errno: e.errno))
            }
        }
        return ExitCode.success
    }
}
