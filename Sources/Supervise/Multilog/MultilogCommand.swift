// multilog: read lines from stdin, select some, and append them to automatically rotated logs.
import Core
import Glibc

public struct MultilogCommand: Command {
    public static let name = "multilog"
    public static let installDirectory = InstallDirectory.sbin
    public static let summary = "append selected lines of stdin to automatically rotated logs"

    static let readSize = 65536
    static let pauseSeconds: UInt32 = 5

    public static func run(_ context: CommandContext) -> Int32 {
        let diag = context.diagnostics
        let script: MultilogScript
        switch MultilogScript.parse(context.arguments) {
        case .success(let s): script = s
        case .failure(let e): return diag.fatal(ExitCode.temporary, e.description)
        }

        // Signals become events on a descriptor, handled between reads (never mid-line).
        let signals: SignalFD
        do {
            signals = try SignalFD(SignalSet([SIGTERM, SIGALRM, SIGHUP, SIGINT]))
        } catch {
            return diag.fatal(error)
        }
        Signals.ignore(SIGPIPE)
        let callerMask = umask(0o022)
        let start = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard start >= 0 else {
            return diag.fatal(ExitCode.temporary, "unable to open current directory: \(SystemError.describe(errno))")
        }

        var statusFiles: [StatusFile] = []
        for file in script.statusFiles {
            switch openStatusFile(file, start: start) {
            case .success(let s): statusFiles.append(s)
            case .failure(let e): return diag.fatal(ExitCode.temporary, e.description)
            }
        }
        let dirContext = LogDirectoryContext(diagnostics: diag, environment: context.environment,
                                             syncToDisk: !context.environment.contains("NOFSYNC"),
                                             pauseSeconds: pauseSeconds)
        var directories: [LogDirectory] = []
        for config in script.directories {
            switch LogDirectory.open(config, start: start, umask: callerMask, context: dirContext) {
            case .success(let d): directories.append(d)
            case .failure(let e): return diag.fatal(ExitCode.temporary, e.description)
            }
        }
        if let interval = script.rotationInterval, case .failure(let e) = startRotationTimer(every: interval) {
            return diag.fatal(e)
        }

        let lines = LineProcessor(script: script, directories: directories, statusFiles: statusFiles,
                                  diagnostics: diag, pauseSeconds: pauseSeconds)
        let input = UnsafeMutableRawBufferPointer.allocate(byteCount: readSize, alignment: 1)
        defer { input.deallocate() }
        var exitASAP = false
        var lastReadEndedLine = true
        // Set when poll saw the signal descriptor ready: no read(2) on it otherwise.
        var signalled = false
        while true {
            for d in directories { d.flushBeforeRead() }
            var rotate = false
            for signal in signalled ? signals.drain() : [] {
                switch signal {
                case SIGTERM: exitASAP = true
                case SIGALRM: rotate = true
                case SIGINT: lines.logging = false
                case SIGHUP: lines.logging = true
                default: break
                }
            }
            if rotate { for d in directories { d.rotateNow() } }
            // TERM: stop at the end of a line; mid-line, read on a byte at a time to its end,
            // so stdin is left at the first byte not logged.
            if exitASAP && lastReadEndedLine { break }
            var fds = [pollfd(fd: 0, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: signals.fd, events: Int16(POLLIN), revents: 0)]
            signalled = false
            if poll(&fds, 2, -1) < 0 { continue }
            if fds[1].revents != 0 {
                signalled = true
                continue
            }
            let n = Glibc.read(0, input.baseAddress, exitASAP ? 1 : readSize)
            if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
            // A read error ends the input, as in the reference.
            if n <= 0 { break }
            lastReadEndedLine = input[n - 1] == 10
            lines.process(UnsafeRawBufferPointer(rebasing: input[0..<n]))
        }
        lines.finishInput()
        for d in directories { d.closeCurrent() }
        return ExitCode.success
    }

    /// Opens `=file` relative to the start directory, creating it (0600) when missing.
    static func openStatusFile(_ file: [UInt8], start: Int32) -> Result<StatusFile, LogDirectoryError> {
        let name = String(decoding: file, as: UTF8.self)
        let path = file.map { CChar(bitPattern: $0) } + [0]
        let created = openat(start, path, O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK | O_CLOEXEC, 0o600)
        guard created >= 0 else { return .failure(LogDirectoryError(message: "unable to create \(name)", errno: errno)) }
        Glibc.close(created)
        let fd = openat(start, path, O_WRONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return .failure(LogDirectoryError(message: "unable to write \(name)", errno: errno)) }
        return .success(StatusFile(fd: fd, name: name))
    }

    /// `rNNN`: SIGALRM at the next multiple of `seconds` since the epoch, then every `seconds`.
    static func startRotationTimer(every seconds: Int) -> Result<Void, SystemError> {
        let now = Int(time(nil))
        var timer = itimerval()
        timer.it_value.tv_sec = seconds - now % seconds
        timer.it_interval.tv_sec = seconds
        guard setitimer(__itimer_which_t(ITIMER_REAL.rawValue), &timer, nil) == 0 else { return .failure(SystemError("setitimer")) }
        return .success(())
    }
}
