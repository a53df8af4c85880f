// fghack: keep a self-backgrounding daemon in the foreground by waiting until every
// process that inherited a pipe from it has closed it.
import CSupport
import Core
import Glibc

public struct FghackCommand: Command {
    public static let name = "fghack"
    public static let installDirectory = InstallDirectory.sbin
    public static let summary = "run a daemon that backgrounds itself in the foreground"

    /// How many extra copies of the pipe's write end the child receives.
    static let copies = 30

    public static func run(_ context: CommandContext) -> Int32 {
        let diag = context.diagnostics
        guard !context.arguments.isEmpty else { return diag.usage("fghack child") }

        let pipe: (read: Int32, write: Int32)
        switch FD.pipe() {
        case .success(let p): pipe = p
        case .failure(let e): return diag.fatal(e)
        }
        // Park the read end high so the copies below take the lowest free numbers, as
        // they do in the reference's child once it has closed its read end: with fd 0
        // closed (`fghack daemon <&-`) a copy lands on 0, which many daemons keep.
        let reader = cs_fcntl_int(pipe.read, F_DUPFD_CLOEXEC, 100)
        guard reader >= 0 else { return diag.fatal(SystemError("unable to create pipe")) }
        FD.close(pipe.read)
        var holders = [pipe.write]
        for _ in 0..<copies {
            let copy = cs_fcntl_int(pipe.write, F_DUPFD, 0)
            if copy >= 0 { holders.append(copy) }
        }
        FD.setCloseOnExec(pipe.write, false)

        var options = SpawnOptions()
        options.inheritSignalState = true
        let started = Spawn.start(context.arguments, environment: context.environment, options: options)
        for fd in holders { FD.close(fd) }
        let child: pid_t
        switch started {
        case .success(let pid): child = pid
        case .failure(let e):
            FD.close(reader)
            return diag.fatal(e)
        }

        // Discard whatever arrives; end of file means the last holder is gone. A read
        // error ends the wait too, as in the reference.
        var sink = [UInt8](repeating: 0, count: 4096)
        while case .success(let n) = sink.withUnsafeMutableBytes({ FD.read(reader, $0) }), n > 0 {}
        FD.close(reader)

        switch Wait.for(child) {
        case .failure(let e): return diag.fatal(e)
        case .success(.exited(let code)): return code
        case .success(.signaled(let signal, _)):
            return diag.fatal(ExitCode.temporary, "child killed by signal \(signal)")
        case .success(.stopped):
            return diag.fatal(ExitCode.temporary, "child stopped")
        }
    }
}
