// The loop shared by qmail-lspawn and qmail-rspawn (the reference's spawn.c): commands
// from qmail-send on fd 0, one child per delivery slot with the message as its stdin, its
// stdout+stderr collected, one report per command on fd 1. One poll loop with SIGCHLD on a
// signalfd; every descriptor non-blocking, so neither a slow child nor a slow qmail-send
// stalls the others.
import CSupport
import Core
import Glibc

/// A validated delivery handed to a driver.
public struct SpawnJob {
    public let request: SpawnRequest
    /// The open message file (the child's stdin); the engine closes it.
    public let messageFD: Int32
    public let messageSize: Int
    /// Index of the last `@` in the recipient.
    public let at: Int
    /// MESSID and the envheaders record turned into variables, for the child.
    public let variables: [([UInt8], [UInt8])]

    /// `base` with the job's variables set.
    public func environment(_ base: Environment) -> Environment {
        var env = base
        for (name, value) in variables { env.set(name: name, value: value) }
        return env
    }
}

/// How a driver answered a job.
public enum SpawnStart {
    /// The delivery child runs, writing to the output descriptor it was given.
    case child(pid_t)
    /// A look-up child runs first (qmail-getpw); `output` is the read end of its stdout.
    /// When it has ended and its output is read, the driver's `resume` is called.
    case helper(pid_t, output: Int32)
    /// Nothing runs: this is the report (status letter and text).
    case finished([UInt8])
}

public protocol SpawnDriver {
    /// Output kept per child; longer output is cut with the reference's notice (0: no
    /// notice, output beyond `SpawnEngine.outputCap` dropped).
    var truncation: Int { get }
    mutating func start(_ job: SpawnJob, output: Int32) -> SpawnStart
    mutating func resume(_ job: SpawnJob, helper: WaitStatus, helperOutput: [UInt8], output: Int32) -> SpawnStart
    /// The status letter and text for a child that ended with `status` after writing `output`.
    func report(_ status: WaitStatus, output: [UInt8]) -> [UInt8]
}

public enum SpawnEngine {
    /// conf-spawn: the most deliveries one spawner runs at once, announced at start.
    public static let concurrency = 500
    /// Bound on collected output when the driver asks for no truncation.
    public static let outputCap = 1 << 20
    static let truncationNotice = Array("\nError report too long, sorry.\n".utf8)

    /// What the engine needs before it starts: the mess directory is the working directory.
    public struct Setup {
        public var messageOwner: uid_t
        public init(messageOwner: uid_t) { self.messageOwner = messageOwner }
    }

    /// Resolves qmailq and enters QUEUEDIR/mess, as every spawner does at start.
    public static func prepare(_ context: CommandContext) -> Result<Setup, SystemError> {
        let env = context.environment
        let accounts = SuiteAccounts(environment: env)
        guard case .success(let qmailq) = Accounts.user(accounts.qmailq) else {
            return .failure(SystemError("unable to look up user", accounts.qmailq, errno: ENOENT))
        }
        let queue = env["QUEUEDIR"] ?? SuitePaths(environment: env).queueDirectory
        guard chdir(queue) == 0 else { return .failure(SystemError("unable to switch to", queue)) }
        guard chdir("mess") == 0 else { return .failure(SystemError("unable to switch to", queue + "/mess")) }
        return .success(Setup(messageOwner: qmailq.uid))
    }

    /// Runs until fd 0 ends and every delivery is reported. Returns the exit code.
    public static func run<D: SpawnDriver>(_ driver: inout D, setup: Setup) -> Int32 {
        var loop = Loop(setup: setup, truncation: driver.truncation)
        return loop.run(&driver)
    }

    /// The environment additions for a job: each complete `Name: value` line of the
    /// envheaders record as NAME=value (upper case, `-` as `_`), then MESSID.
    public static func variables(envHeaders: [UInt8], messageID: [UInt8]) -> [([UInt8], [UInt8])] {
        var out: [([UInt8], [UInt8])] = []
        var start = 0
        while let newline = envHeaders[start...].firstIndex(of: 10) {
            let line = envHeaders[start..<newline]
            start = newline + 1
            guard let colon = line.firstIndex(of: 58) else { continue }
            let name = line[..<colon].map { c -> UInt8 in
                if c == 45 { return 95 }
                return c >= 97 && c <= 122 ? c - 32 : c
            }
            let value = line[(colon + 1)...].drop { $0 == 32 }
            out.append((name, Array(value)))
        }
        out.append((Array("MESSID".utf8), messageID))
        return out
    }
}

private struct Slot {
    enum Phase { case helper, main }
    var job: SpawnJob
    var phase: Phase
    var pid: pid_t
    var status: WaitStatus?
    var eof = false
    /// What poll watches: the helper's stdout or the delivery output pipe.
    var reader: Int32
    /// The delivery output pipe, both ends; the parent's write end is closed when the
    /// delivery child is reaped, so end of file comes only after its death.
    var outputRead: Int32
    var outputWrite: Int32
    var collected: [UInt8] = []
    var truncated = false
}

private struct Loop {
    let setup: SpawnEngine.Setup
    let truncation: Int
    var slots: [Int: Slot] = [:]
    var parser = SpawnCommandParser()
    var outbuf: [UInt8] = []
    var reading = true
    var writing = true
    let signals: SignalFD?

    init(setup: SpawnEngine.Setup, truncation: Int) {
        self.setup = setup
        self.truncation = truncation
        Signals.ignore(SIGPIPE)
        signals = try? SignalFD(SignalSet([SIGCHLD]))
        FD.setNonBlocking(0)
        FD.setNonBlocking(1)
    }

    mutating func run<D: SpawnDriver>(_ driver: inout D) -> Int32 {
        let c = SpawnEngine.concurrency
        outbuf += [UInt8(c & 255), UInt8(c >> 8)]
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            if !reading && slots.isEmpty && (outbuf.isEmpty || !writing) { return 0 }
            var fds: [pollfd] = []
            let wantInput = reading && outbuf.count < (1 << 20)
            if wantInput { fds.append(pollfd(fd: 0, events: Int16(POLLIN), revents: 0)) }
            if writing && !outbuf.isEmpty { fds.append(pollfd(fd: 1, events: Int16(POLLOUT), revents: 0)) }
            if let s = signals { fds.append(pollfd(fd: s.fd, events: Int16(POLLIN), revents: 0)) }
            for (_, slot) in slots where !slot.eof { fds.append(pollfd(fd: slot.reader, events: Int16(POLLIN), revents: 0)) }
            // Without a signalfd, poll with a timeout and reap by polling.
            let r = poll(&fds, nfds_t(fds.count), signals == nil ? 100 : -1)
            if r < 0 && errno != EINTR { return 111 }
            for p in fds where p.revents != 0 {
                if p.fd == 0 {
                    readCommands(&driver, &buffer)
                } else if p.fd == 1 {
                    flush()
                } else if let s = signals, p.fd == s.fd {
                    _ = s.drain()
                } else {
                    readChild(p.fd, &buffer)
                }
            }
            reap()
            finishReady(&driver)
        }
    }

    mutating func readCommands<D: SpawnDriver>(_ driver: inout D, _ buffer: inout [UInt8]) {
        let n = buffer.withUnsafeMutableBytes { Glibc.read(0, $0.baseAddress, 1024) }
        if n == 0 { reading = false; return }
        if n < 0 {
            if errno != EINTR && errno != EAGAIN { reading = false }
            return
        }
        for request in parser.feed(buffer[0..<n]) { begin(request, &driver) }
    }

    mutating func emit(_ request: SpawnRequest, _ report: [UInt8]) {
        guard writing else { return }
        outbuf += SpawnValidation.frame(slotLow: request.slotLow, slotHigh: request.slotHigh, report)
    }

    mutating func begin<D: SpawnDriver>(_ request: SpawnRequest, _ driver: inout D) {
        if let rejection = SpawnValidation.check(request, concurrency: SpawnEngine.concurrency,
                                                 inUse: { slots[$0] != nil }) {
            emit(request, Array(rejection.text.utf8)); return
        }
        let path = String(decoding: request.messageID, as: UTF8.self)
        guard case .success(let fd) = FD.open(path, O_RDONLY) else {
            emit(request, Array(SpawnRejection.cannotOpen.text.utf8)); return
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            FD.close(fd); emit(request, Array(SpawnRejection.cannotStat.text.utf8)); return
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            FD.close(fd); emit(request, Array(SpawnRejection.wrongType.text.utf8)); return
        }
        guard st.st_uid == setup.messageOwner else {
            FD.close(fd); emit(request, Array(SpawnRejection.wrongOwner.text.utf8)); return
        }
        guard case .success(let pipe) = FD.pipe() else {
            FD.close(fd); emit(request, Array(SpawnRejection.cannotPipe.text.utf8)); return
        }
        FD.setNonBlocking(pipe.read)
        let job = SpawnJob(request: request, messageFD: fd, messageSize: Int(st.st_size),
                           at: request.atIndex ?? 0,
                           variables: SpawnEngine.variables(envHeaders: request.envHeaders, messageID: request.messageID))
        var slot = Slot(job: job, phase: .main, pid: 0, reader: pipe.read, outputRead: pipe.read, outputWrite: pipe.write)
        apply(driver.start(job, output: pipe.write), to: &slot)
    }

    /// Installs what the driver started, or reports at once.
    mutating func apply(_ start: SpawnStart, to slot: inout Slot) {
        let request = slot.job.request
        switch start {
        case .child(let pid):
            FD.close(slot.job.messageFD)
            slot.phase = .main
            slot.pid = pid
            slot.status = nil
            slot.eof = false
            slot.reader = slot.outputRead
            slot.collected = []
            slots[request.slot] = slot
        case .helper(let pid, let output):
            FD.setNonBlocking(output)
            slot.phase = .helper
            slot.pid = pid
            slot.status = nil
            slot.eof = false
            slot.reader = output
            slot.collected = []
            slots[request.slot] = slot
        case .finished(let report):
            FD.close(slot.job.messageFD)
            FD.close(slot.outputRead)
            FD.close(slot.outputWrite)
            slots[request.slot] = nil
            emit(request, report)
        }
    }

    mutating func readChild(_ fd: Int32, _ buffer: inout [UInt8]) {
        guard let key = slots.first(where: { $0.value.reader == fd && !$0.value.eof })?.key,
              var slot = slots[key] else { return }
        let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        if n < 0 { return }
        if n == 0 {
            slot.eof = true
        } else if !slot.truncated {
            slot.collected += buffer[0..<n]
            if slot.phase == .main && truncation > 100 && slot.collected.count > truncation {
                slot.collected.removeSubrange((truncation - SpawnEngine.truncationNotice.count - 3)...)
                slot.collected += SpawnEngine.truncationNotice
                slot.truncated = true
            } else if slot.collected.count > SpawnEngine.outputCap {
                slot.collected.removeSubrange(SpawnEngine.outputCap...)
                slot.truncated = true
            }
        }
        slots[key] = slot
    }

    mutating func reap() {
        while let (pid, status) = Wait.any() {
            guard let key = slots.first(where: { $0.value.pid == pid && $0.value.status == nil })?.key,
                  var slot = slots[key] else { continue }
            slot.status = status
            if slot.phase == .main && slot.outputWrite >= 0 {
                FD.close(slot.outputWrite)
                slot.outputWrite = -1
            }
            slots[key] = slot
        }
    }

    mutating func finishReady<D: SpawnDriver>(_ driver: inout D) {
        for key in slots.keys.sorted() {
            guard var slot = slots[key], let status = slot.status, slot.eof else { continue }
            switch slot.phase {
            case .helper:
                FD.close(slot.reader)
                let output = slot.collected
                apply(driver.resume(slot.job, helper: status, helperOutput: output, output: slot.outputWrite), to: &slot)
            case .main:
                FD.close(slot.outputRead)
                if slot.outputWrite >= 0 { FD.close(slot.outputWrite) }
                slots[key] = nil
                emit(slot.job.request, driver.report(status, output: slot.collected))
            }
        }
    }

    mutating func flush() {
        let n = outbuf.withUnsafeBytes { Glibc.write(1, $0.baseAddress, $0.count) }
        if n > 0 {
            outbuf.removeFirst(n)
        } else if n < 0 && errno != EINTR && errno != EAGAIN {
            // qmail-send is gone: keep delivering, stop reporting (the reference's okwrite).
            // fd 1 stays open so no new descriptor can take its number.
            writing = false
            outbuf = []
        }
    }
}
