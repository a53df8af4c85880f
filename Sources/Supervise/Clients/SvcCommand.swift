// svc: write control letters to supervise, then optionally wait for the services to be up,
// down or ready.
import Core
import Glibc

public struct SvcCommand: Command {
    public static let name = "svc"
    public static let installDirectory = InstallDirectory.bin
    public static let summary = "control services monitored by supervise"

    static let usage = """
        svc [-udropchaitqkxU12G] [-w|-W|-R] [-T secs] dir ...
         u up, d down, r restart, o once, x exit, p pause, c continue, h hup, a alarm,
         i interrupt, t term, q quit, k kill, U|1 usr1, 2 usr2, G process group,
         w wait until up, W wait until down, R wait until ready, T timeout (0 = none)
        """

    /// What `-w`, `-W` and `-R` wait for, and the supervise/ FIFO that tells it.
    public enum WaitTarget: Equatable, Sendable {
        case up, down, ready

        public var fifo: String {
            switch self {
            case .up: return SuperviseFiles.up
            case .down: return SuperviseFiles.down
            case .ready: return SuperviseFiles.ready
            }
        }

        var word: String {
            switch self {
            case .up: return "up"
            case .down: return "down"
            case .ready: return "ready"
            }
        }
    }

    /// A parsed command line.
    public struct Request: Equatable, Sendable {
        /// Control bytes in command-line order, each once, at most `maximumLetters`.
        public var letters: [UInt8] = []
        public var wait: WaitTarget?
        /// Seconds; 0 waits forever.
        public var timeout: Int = 0
        public var directories: [String] = []
    }

    public static let maximumLetters = 20

    public enum ParseError: Error, Equatable, Sendable {
        case option(OptionParser.Failure)
        case badTimeout(String)
    }

    public static func parse(_ arguments: [String]) -> Result<Request, ParseError> {
        let parsed: (items: [OptionParser.Item], operandIndex: Int)
        switch OptionParser("udropchaitqkxU12GwWRT:").parse(arguments) {
        case .success(let p): parsed = p
        case .failure(let e): return .failure(.option(e))
        }
        var request = Request()
        for item in parsed.items {
            switch item {
            case .flag("w"): request.wait = .up
            case .flag("W"): request.wait = .down
            case .flag("R"): request.wait = .ready
            case .flag(let c):
                guard let byte = c.asciiValue, ControlCommand(rawValue: byte) != nil else { continue }
                if !request.letters.contains(byte) && request.letters.count < maximumLetters {
                    request.letters.append(byte)
                }
            case .value(_, let text):
                guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                      let seconds = Int(text) else {
                    return .failure(.badTimeout(text))
                }
                request.timeout = seconds
            }
        }
        request.directories = Array(arguments[parsed.operandIndex...])
        return .success(request)
    }

    public static func run(_ context: CommandContext) -> Int32 {
        let diag = context.diagnostics
        let request: Request
        switch parse(context.strings) {
        case .success(let r): request = r
        case .failure(.option(let e)):
            diag.warning(e.description)
            return diag.usage(usage)
        case .failure(.badTimeout(let text)):
            diag.warning("bad timeout: \(text)")
            return diag.usage(usage)
        }
        Signals.ignore(SIGPIPE)
        let locator = ServiceLocator(environment: context.environment)

        var code: Int32 = 0
        func record(_ c: Int32) { if code == 0 { code = c } }
        var reachable = Array(repeating: true, count: request.directories.count)

        if !request.letters.isEmpty {
            for (i, dir) in request.directories.enumerated() {
                let result = send(request.letters, to: dir, locator: locator)
                if case .failure(let failure) = result {
                    diag.warning(failure.message)
                    record(failure.code)
                    reachable[i] = failure.supervisePresent
                }
            }
        }

        guard let target = request.wait else { return code }
        // supervise needs a moment to act on u, d or r; without it a wait for up after -r
        // could see the old process still up (the reference sleeps the same second).
        let acting: Set<UInt8> = [ControlCommand.up.rawValue, ControlCommand.down.rawValue,
                                   ControlCommand.restart.rawValue]
        if request.letters.contains(where: { acting.contains($0) }) { sleep(1) }
        for (i, dir) in request.directories.enumerated() where reachable[i] {
            switch openControl(of: dir, locator: locator) {
            case .failure(let failure):
                diag.warning(failure.message)
                record(failure.code)
                continue
            case .success(let opened):
                FD.close(opened.fd)
                FD.writeAll(2, Array("waiting for \(dir) to be \(target.word) ... ".utf8))
                let path = Path.join(opened.stateDirectory, SuperviseFiles.directory + "/" + target.fifo)
                switch waitForReader(path, timeout: request.timeout) {
                case .ok:
                    FD.writeAll(2, Array("ok\n".utf8))
                case .timedOut:
                    FD.writeAll(2, Array("timed out\n".utf8))
                    record(3)
                case .failed(let e):
                    FD.writeAll(2, Array("failed\n".utf8))
                    diag.warning("unable to wait for \(dir): \(e.description)")
                    record(1)
                }
            }
        }
        return code
    }

    /// Why a directory could not be controlled, with svc's exit code for it.
    public struct Failure: Error, Equatable, Sendable {
        public var code: Int32
        public var message: String
        /// False when supervise is not running (the wait phase then skips the directory).
        public var supervisePresent: Bool

        init(code: Int32, message: String, supervisePresent: Bool) {
            self.code = code
            self.message = message
            self.supervisePresent = supervisePresent
        }

        init(dir: String, lookup: ClientLookupError, fifo: String) {
            switch lookup {
            case .noReader, .notFound:
                self.init(code: 2, message: "unable to control \(dir): supervise not running", supervisePresent: false)
            case .system(let e):
                self.init(code: 1, message: "unable to open \(dir)/supervise/\(fifo): \(e.reason)", supervisePresent: false)
            }
        }
    }

    /// Opens the control FIFO of `dir` without blocking: it succeeds only while supervise runs.
    public static func openControl(of dir: String, locator: ServiceLocator)
        -> Result<(fd: Int32, stateDirectory: String), Failure> {
        guard Path.status(dir) != nil else {
            return .failure(Failure(code: 1, message: "unable to access \(dir): \(SystemError.describe(errno))",
                                    supervisePresent: false))
        }
        return locator.openForWriting(SuperviseFiles.control, of: dir)
            .mapError { Failure(dir: dir, lookup: $0, fifo: SuperviseFiles.control) }
    }

    /// Writes `letters` to the control FIFO of `dir` in one write.
    public static func send(_ letters: [UInt8], to dir: String, locator: ServiceLocator) -> Result<Void, Failure> {
        switch openControl(of: dir, locator: locator) {
        case .failure(let failure):
            return .failure(failure)
        case .success(let opened):
            defer { FD.close(opened.fd) }
            if case .failure(let e) = FD.writeAll(opened.fd, letters) {
                return .failure(Failure(code: 1, message: "error writing commands to \(dir): \(e.reason)",
                                        supervisePresent: true))
            }
            return .success(())
        }
    }

    public enum WaitResult: Equatable, Sendable {
        case ok
        case timedOut
        case failed(SystemError)
    }

    /// Waits until some process holds the FIFO at `path` open for reading: supervise opens
    /// supervise/up, dn or rdy for reading exactly while the service is in that state.
    /// `timeout` 0 blocks in open(2) as the reference does; otherwise a non-blocking open
    /// (ENXIO while there is no reader) is retried every 20 ms until the deadline, which
    /// bounds the wait without alarm(2) and its race with a blocking open.
    public static func waitForReader(_ path: String, timeout: Int) -> WaitResult {
        if timeout <= 0 {
            switch FD.open(path, O_WRONLY) {
            case .success(let fd):
                FD.close(fd)
                return .ok
            case .failure(let e):
                return .failed(e)
            }
        }
        let deadline = monotonicNow() + Double(timeout)
        while true {
            switch FD.openWrite(path) {
            case .success(let fd):
                FD.close(fd)
                return .ok
            case .failure(let e) where e.errno == ENXIO:
                let left = deadline - monotonicNow()
                if left <= 0 { return .timedOut }
                usleep(useconds_t(min(left, 0.02) * 1_000_000))
            case .failure(let e):
                return .failed(e)
            }
        }
    }

    static func monotonicNow() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}
