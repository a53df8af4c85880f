// qmail-send: the queue's scheduler. Hands each recipient to qmail-lspawn or
// qmail-rspawn, records successes and failures in the channel files, retries deferrals on
// the reference's schedule, writes bounces and has the finished message removed (§7, §8).
import Core
import Glibc

public struct QmailSendCommand: Command {
    public static let name = "qmail-send"
    public static let installDirectory = InstallDirectory.sbin
    public static let summary = "schedule deliveries of queued messages"

    public static func run(_ context: CommandContext) -> Int32 {
        let scheduler = Scheduler(environment: context.environment)
        return scheduler.main()
    }
}

/// qmail-start's descriptor plan for qmail-send.
enum SendFD {
    static let log: Int32 = 0
    static let commands: [Int32] = [1, 3]
    static let reports: [Int32] = [2, 4]
    static let toClean: Int32 = 5, fromClean: Int32 = 6
    static let toTodo: Int32 = 7, fromTodo: Int32 = 8
}

/// One message on one channel while its recipients are handed out.
struct Job {
    let id: UInt64
    let birth: Int64
    let sender: [UInt8]
    let qqeh: [UInt8]
    let envelopeHeaders: [UInt8]
    var entries: [ChannelFile.Entry]
    /// Next entry to look at for a `T`.
    var next = 0
    var outstanding = 0
    /// A temporary failure (or mangled report) left some entry to do.
    var deferred = false
    /// Past its lifetime: deferrals become failures.
    let dying: Bool

    var hasWork: Bool { entries[next...].contains { !$0.done } }
}

struct Delivery {
    let id: UInt64
    let entry: Int
    let number: UInt64
}

final class Scheduler {
    var env: Environment
    let program = "qmail-send"
    let queueDirectory: String
    let layout: QueueLayout
    let log: ActivityLog
    let control: ControlFiles
    var config: SendConfig
    /// The spawners' own limits (their 2-byte hello).
    var spawnLimit = [0, 0]
    var slots: [[Delivery?]] = [[], []]
    var pending = [DueQueue(), DueQueue()]
    /// Messages whose every channel is finished, waiting for bounce + cleanup.
    var finishing = DueQueue()
    var jobs: [[UInt64: Job]] = [[:], [:]]
    /// Open jobs with recipients not yet handed out, oldest first.
    var active: [[UInt64]] = [[], []]
    var deliveryNumber: UInt64 = 0
    var readers = [SpawnReportReader(), SpawnReportReader()]
    var spawnAlive = [true, true]
    /// Command bytes not yet taken by each spawner: no new delivery starts on a channel
    /// until its spawner took the previous command, and we never block on a spawner
    /// that is itself blocked writing reports to us.
    var unsent: [[UInt8]] = [[], []]
    var todoReader = NulRecordReader()
    var todoAlive = true
    var exiting = false
    let cleanReplies = BufferedReader(fd: SendFD.fromClean, capacity: 64)

    init(environment env: Environment) {
        self.env = env
        let paths = SuitePaths(environment: env)
        queueDirectory = paths.queueDirectory
        layout = QueueLayout(directory: ".", environment: env)
        log = ActivityLog(queueName: Path.basename(queueDirectory), qident: env.nonEmpty("QIDENT"))
        control = ControlFiles(paths: paths)
        config = SendConfig(bounce: BounceSettings(me: ""),
                            rewriter: AddressRewriter(locals: [], percentHack: [], virtualDomains: [], envNoAtHost: ""))
    }

    static func now() -> Int64 { Int64(time(nil)) }

    func say(_ text: String) { FD.writeAll(SendFD.log, Array(text.utf8)) }
    func say(_ bytes: [UInt8]) { FD.writeAll(SendFD.log, bytes) }
    func warn(_ text: String) { say(log.warn(program, text)) }
    func alert(_ text: String) { say(log.alert(program, text)) }

    func main() -> Int32 {
        Signals.ignore(SIGPIPE)
        umask(0o077)
        guard chdir(queueDirectory) == 0 else {
            alert("cannot start: unable to switch to queue directory \(queueDirectory)")
            return ExitCode.temporary
        }
        let mutex = Glibc.open("lock/sendmutex", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard mutex >= 0 else {
            alert("cannot start: unable to open mutex")
            return ExitCode.temporary
        }
        guard case .success = FileLock.exclusive(mutex, wait: false) else {
            alert("cannot start: instance already running")
            return ExitCode.temporary
        }
        SyncControls.apply(to: &env, control: control)
        switch SendConfig.load(control, queueName: log.queueName) {
        case .failure(let e):
            alert("cannot start: \(e)")
            return ExitCode.temporary
        case .success(let c): config = c
        }
        for c in DeliveryChannel.allCases {
            guard let limit = Self.readHello(SendFD.reports[c.rawValue]) else {
                alert("cannot start: hath the daemon spawn no fire?")
                return ExitCode.temporary
            }
            spawnLimit[c.rawValue] = limit
            slots[c.rawValue] = Array(repeating: nil, count: limit)
        }
        let signals: SignalFD
        do {
            signals = try SignalFD(SignalSet([SIGTERM, SIGALRM, SIGHUP, SIGUSR1, SIGUSR2, SIGINT]))
        } catch {
            alert("cannot start: \(error)")
            return ExitCode.temporary
        }
        for fd in SendFD.reports + SendFD.commands + [SendFD.fromTodo] { FD.setNonBlocking(fd) }
        // Our view of info/ is complete before todo-proc may add to it.
        scanInfo()
        if case .failure = FD.writeAll(SendFD.toTodo, [UInt8(ascii: "C")]) {
            alert("cannot start: unable to talk to todo-proc")
            return ExitCode.temporary
        }
        // The first status line says the scheduler is up (and what it may use).
        logStatus()
        loop(signals)
        shutdown()
        return ExitCode.success
    }

    /// The spawner's 2-byte little-endian maximum concurrency.
    static func readHello(_ fd: Int32) -> Int? {
        var bytes: [UInt8] = []
        var byte: UInt8 = 0
        while bytes.count < 2 {
            let n = read(fd, &byte, 1)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return nil }
            bytes.append(byte)
        }
        return Int(bytes[0]) | Int(bytes[1]) << 8
    }

    func limit(_ c: Int) -> Int { max(0, min(config.concurrency[c], spawnLimit[c])) }
    func used(_ c: Int) -> Int { slots[c].reduce(0) { $0 + ($1 == nil ? 0 : 1) } }

    func logStatus() {
        say(log.status(used: [used(0), used(1)], limits: [limit(0), limit(1)],
                       held: [config.hold[0], config.hold[1]], exiting: exiting))
    }

    // MARK: the loop

    func loop(_ signals: SignalFD) {
        var nextMessScan: Int64 = 0
        while true {
            let now = Self.now()
            if !exiting && now >= nextMessScan {
                removeOssified(now)
                nextMessScan = now + 76431
            }
            if !exiting {
                while let id = finishing.popDue(now) { finish(id) }
                for c in 0..<2 { dispatch(c, now) }
            }
            if exiting && used(0) == 0 && used(1) == 0 { return }
            var fds = [pollfd(fd: signals.fd, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: spawnAlive[0] ? SendFD.reports[0] : -1, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: spawnAlive[1] ? SendFD.reports[1] : -1, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: todoAlive ? SendFD.fromTodo : -1, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: spawnAlive[0] && !unsent[0].isEmpty ? SendFD.commands[0] : -1,
                              events: Int16(POLLOUT), revents: 0),
                       pollfd(fd: spawnAlive[1] && !unsent[1].isEmpty ? SendFD.commands[1] : -1,
                              events: Int16(POLLOUT), revents: 0)]
            let r = poll(&fds, 6, wakeUpIn(now))
            if r < 0 {
                if errno != EINTR { usleep(100_000) }
                continue
            }
            if fds[0].revents != 0 { for s in signals.drain() { handle(signal: s) } }
            for c in 0..<2 where fds[c + 1].revents != 0 { readReports(c) }
            if fds[3].revents != 0 { readTodo() }
            for c in 0..<2 where fds[c + 4].revents != 0 { flushCommands(c) }
        }
    }

    /// Milliseconds until something is due (capped, so a clock step is noticed).
    func wakeUpIn(_ now: Int64) -> Int32 {
        if exiting { return 1000 }
        var earliest: Int64? = finishing.earliest
        for c in 0..<2 where !config.hold[c] && used(c) < limit(c) && unsent[c].isEmpty {
            if let due = pending[c].earliest { earliest = min(earliest ?? due, due) }
        }
        guard let earliest else { return 60_000 }
        let seconds = max(0, min(earliest - now, 60))
        return Int32(seconds * 1000)
    }

    func handle(signal: Int32) {
        switch signal {
        case SIGTERM:
            say("alert: \(program): pid \(getpid()) got TERM: \(log.queueName)\n")
            exiting = true
        case SIGALRM:
            say("alert: \(program): pid \(getpid()) got ALRM: \(log.queueName)\n")
            let now = Self.now()
            pending[0].makeAllDue(now)
            pending[1].makeAllDue(now)
            finishing.makeAllDue(now)
        case SIGHUP:
            say("alert: \(program): pid \(getpid()) got HUP: \(log.queueName)\n")
            SyncControls.apply(to: &env, control: control)
            switch SendConfig.load(control, queueName: log.queueName) {
            case .success(let c): config = c
            case .failure(let e): alert("unable to reread controls: \(e)")
            }
            tellTodo(UInt8(ascii: "H"))
        case SIGUSR1: tellTodo(UInt8(ascii: "D"))
        case SIGUSR2: tellTodo(UInt8(ascii: "A"))
        default: break
        }
    }

    func tellTodo(_ byte: UInt8) {
        guard todoAlive else { return }
        _ = FD.writeAll(SendFD.toTodo, [byte])
    }

    // MARK: todo-proc

    func readTodo() {
        var buffer = [UInt8](repeating: 0, count: 8192)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(SendFD.fromTodo, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return }
            if n == 0 {
                todoGone()
                return
            }
            for record in todoReader.feed(buffer[0..<n]) { handleTodo(TodoRecord.parse(record)) }
        }
    }

    func todoGone() {
        guard todoAlive else { return }
        todoAlive = false
        if !exiting {
            alert("oh no! lost todo-proc connection! dying...")
            exiting = true
        }
    }

    func handleTodo(_ record: TodoRecord) {
        switch record {
        case .log(let text): say(text)
        case .exit: todoGone()
        case .malformed: warn("mangled record from todo-proc")
        case .done(let id, let local, let remote):
            let now = Self.now()
            if local { pending[0].push(now, id) }
            if remote { pending[1].push(now, id) }
            if !local && !remote { finishing.push(now, id) }
        }
    }

    // MARK: start-up

    /// Every preprocessed message, due at its channel files' mtimes (the retry time
    /// saved when it was deferred).
    func scanInfo() {
        for split in 0..<layout.split {
            guard case .success(let names) = Path.entries("info/\(split)") else { continue }
            for name in names {
                guard let id = UInt64(name) else { continue }
                var any = false
                for c in DeliveryChannel.allCases {
                    guard let st = Path.status(layout.relativePath(c.area, id)) else { continue }
                    pending[c.rawValue].push(Int64(st.st_mtim.tv_sec), id)
                    any = true
                }
                if !any { finishing.push(0, id) }
            }
        }
    }

    // MARK: delivery

    func freeSlot(_ c: Int) -> Int? {
        let n = limit(c)
        for i in 0..<min(n, slots[c].count) where slots[c][i] == nil { return i }
        return nil
    }

    func dispatch(_ c: Int, _ now: Int64) {
        guard spawnAlive[c], !config.hold[c] else { return }
        while unsent[c].isEmpty, let slot = freeSlot(c) {
            if let id = active[c].first {
                guard var job = jobs[c][id] else { active[c].removeFirst(); continue }
                guard let index = job.entries[job.next...].firstIndex(where: { !$0.done }) else {
                    active[c].removeFirst()
                    continue
                }
                job.next = index + 1
                job.outstanding += 1
                if !job.hasWork { active[c].removeFirst() }
                jobs[c][id] = job
                start(c, slot: slot, job: job, entry: index)
                continue
            }
            guard let id = pending[c].popDue(now) else { return }
            open(c, id, now)
        }
    }

    /// Opens the channel file of message `id` as a job.
    func open(_ c: Int, _ id: UInt64, _ now: Int64) {
        guard jobs[c][id] == nil else { return }
        let channel = DeliveryChannel(rawValue: c) ?? .local
        let path = layout.relativePath(channel.area, id)
        let infoPath = layout.relativePath(.info, id)
        // No info: the message was finished already (a second schedule entry for it).
        guard let st = Path.status(infoPath) else { return }
        guard case .success(let infoBytes) = FD.readFile(infoPath), let info = InfoFile.parse(infoBytes) else {
            warn("unable to stat \(infoPath); will try again later")
            pending[c].push(now + 60, id)
            return
        }
        let bytes: [UInt8]
        switch FD.readFile(path) {
        case .failure(let e):
            if e.errno == ENOENT { completeIfDone(id, now); return }
            warn("trouble reading \(path); will try again later")
            pending[c].push(now + 60, id)
            return
        case .success(let b): bytes = b
        }
        let file = ChannelFile.parse(bytes)
        let birth = Int64(st.st_mtim.tv_sec)
        let lifetime = config.lifetime(sender: info.sender)
        let nextTry = RetrySchedule.next(birth: birth, now: now, skip: channel.skip)
        let job = Job(id: id, birth: birth, sender: info.sender, qqeh: info.qqeh, envelopeHeaders: info.envelopeHeaders,
                      entries: file.entries, dying: nextTry > birth &+ lifetime)
        jobs[c][id] = job
        if job.hasWork {
            active[c].append(id)
        } else {
            close(c, id, now)
        }
    }

    func start(_ c: Int, slot: Int, job: Job, entry: Int) {
        deliveryNumber += 1
        let recipient = job.entries[entry].address
        slots[c][slot] = Delivery(id: job.id, entry: entry, number: deliveryNumber)
        let command = SpawnCommand(slot: slot, messagePath: Array("\(layout.splitNumber(of: job.id))/\(job.id)".utf8),
                                   sender: VERP.expand(sender: job.sender, recipient: recipient),
                                   qqeh: job.qqeh, envelopeHeaders: job.envelopeHeaders, recipient: recipient)
        let channel = DeliveryChannel(rawValue: c) ?? .local
        say(log.starting(delivery: deliveryNumber, id: job.id, channel: channel, recipient: recipient))
        logStatus()
        unsent[c] += command.bytes
        flushCommands(c)
    }

    /// Writes what the spawner's pipe takes now; the rest waits for POLLOUT.
    func flushCommands(_ c: Int) {
        while spawnAlive[c] && !unsent[c].isEmpty {
            let n = unsent[c].withUnsafeBytes { write(SendFD.commands[c], $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && errno == EAGAIN { return }
            if n <= 0 {
                spawnDied(c)
                return
            }
            unsent[c].removeFirst(n)
        }
    }

    func readReports(_ c: Int) {
        var buffer = [UInt8](repeating: 0, count: 2048)
        while spawnAlive[c] {
            let n = buffer.withUnsafeMutableBytes { read(SendFD.reports[c], $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return }
            if n == 0 {
                spawnDied(c)
                return
            }
            for report in readers[c].feed(buffer[0..<n]) { handle(c, report) }
        }
    }

    func spawnDied(_ c: Int) {
        guard spawnAlive[c] else { return }
        spawnAlive[c] = false
        alert("oh no! lost spawn connection! dying...")
        exiting = true
        // Deliveries in flight stay to do; they are tried again after a restart.
        for i in slots[c].indices { slots[c][i] = nil }
        unsent[c] = []
    }

    func handle(_ c: Int, _ incoming: SpawnReport) {
        var report = incoming
        guard report.slot < slots[c].count, let delivery = slots[c][report.slot],
              var job = jobs[c][delivery.id] else {
            warn("internal error: delivery report out of range")
            return
        }
        if job.dying { report.giveUp() }
        say(log.report(delivery: delivery.number, status: report.status, text: report.text))
        switch report.status {
        case UInt8(ascii: "K"):
            markDone(c, job.id, job.entries[delivery.entry].offset)
            job.entries[delivery.entry].done = true
        case UInt8(ascii: "D"):
            addBounce(job.id, recipient: job.entries[delivery.entry].address, report: report.text)
            markDone(c, job.id, job.entries[delivery.entry].offset)
            job.entries[delivery.entry].done = true
        default:
            job.deferred = true
        }
        job.outstanding -= 1
        slots[c][report.slot] = nil
        jobs[c][job.id] = job
        if job.outstanding == 0 && !job.hasWork { close(c, job.id, Self.now()) }
        logStatus()
    }

    func markDone(_ c: Int, _ id: UInt64, _ offset: Int) {
        let channel = DeliveryChannel(rawValue: c) ?? .local
        let path = layout.relativePath(channel.area, id)
        let fd = Glibc.open(path, O_WRONLY | O_CLOEXEC)
        var done = UInt8(ascii: "D")
        if fd >= 0 {
            let written = pwrite(fd, &done, 1, off_t(offset))
            Glibc.close(fd)
            if written == 1 { return }
        }
        warn("trouble marking \(path); message will be delivered twice!")
    }

    /// A job has nothing left in flight: reschedule what is left, or retire the file.
    func close(_ c: Int, _ id: UInt64, _ now: Int64) {
        guard let job = jobs[c].removeValue(forKey: id) else { return }
        active[c].removeAll { $0 == id }
        let channel = DeliveryChannel(rawValue: c) ?? .local
        let path = layout.relativePath(channel.area, id)
        if job.entries.contains(where: { !$0.done }) {
            let due = RetrySchedule.next(birth: job.birth, now: now, skip: channel.skip)
            // The channel file's mtime carries the retry time across restarts.
            var times = [timespec(tv_sec: Int(clamping: due), tv_nsec: 0), timespec(tv_sec: Int(clamping: due), tv_nsec: 0)]
            if utimensat(AT_FDCWD, path, &times, 0) != 0 { warn("unable to utime \(path); message will be retried early") }
            pending[c].push(due, id)
            return
        }
        if unlink(path) != 0 && errno != ENOENT {
            warn("unable to unlink \(path); will try again later")
            pending[c].push(now + 60, id)
            return
        }
        completeIfDone(id, now)
    }

    func completeIfDone(_ id: UInt64, _ now: Int64) {
        for c in DeliveryChannel.allCases {
            if jobs[c.rawValue][id] != nil || Path.exists(layout.relativePath(c.area, id)) { return }
        }
        finish(id)
    }

    // MARK: bounces and cleanup

    /// Message files left by an injection that died (no info, no todo) and not touched
    /// for OSSIFIED seconds are removed.
    func removeOssified(_ now: Int64) {
        let ossified = Int64(env["OSSIFIED"].map(QueueLayout.leadingNumber).flatMap { $0 > 0 ? $0 : nil } ?? 129600)
        for split in 0..<layout.split {
            guard case .success(let names) = Path.entries("mess/\(split)") else { continue }
            for name in names {
                guard let id = UInt64(name), let st = Path.status("mess/\(split)/\(name)"),
                      now > Int64(st.st_atim.tv_sec) + ossified,
                      !Path.exists(layout.relativePath(.info, id)), !Path.exists(layout.relativePath(.todo, id)) else { continue }
                guard clean("foop/\(id)") else { return }
            }
        }
    }

    /// One qmail-clean request; false when qmail-clean is gone.
    func clean(_ request: String) -> Bool {
        guard case .success = FD.writeAll(SendFD.toClean, Array(request.utf8) + [0]),
              case .success(let reply?) = cleanReplies.readByte() else {
            alert("oh no! lost qmail-clean connection! dying...")
            exiting = true
            return false
        }
        if reply != UInt8(ascii: "+") { warn("qmail-clean unable to clean up \(request)") }
        return true
    }

    func addBounce(_ id: UInt64, recipient: [UInt8], report: [UInt8]) {
        let block = BounceText.block(recipient: config.rewriter.stripVirtualPrepend(recipient), report: report)
        let path = layout.relativePath(.bounce, id)
        while true {
            let fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
            if fd >= 0 {
                let ok = FD.writeAll(fd, block)
                Glibc.close(fd)
                if case .success = ok { return }
            }
            alert("unable to append to bounce message; HELP! sleeping...")
            sleep(10)
        }
    }

    /// Every channel is done: send the bounce, log the end, remove the files.
    func finish(_ id: UInt64) {
        for c in DeliveryChannel.allCases where jobs[c.rawValue][id] != nil || Path.exists(layout.relativePath(c.area, id)) {
            return
        }
        let infoPath = layout.relativePath(.info, id)
        // Finished already (scheduled twice): nothing more to log or remove. A todo file
        // means todo-proc has not finished with the message (it crashed half-way): it
        // will be preprocessed again and announced.
        guard Path.exists(infoPath), !Path.exists(layout.relativePath(.todo, id)) else { return }
        if Path.exists(layout.relativePath(.bounce, id)) && !injectBounce(id) {
            finishing.push(Self.now() + 60, id)
            return
        }
        say(log.endMessage(id, program: program))
        if unlink(infoPath) != 0 && errno != ENOENT {
            warn("unable to unlink \(infoPath); will try again later")
            finishing.push(Self.now() + 60, id)
            return
        }
        _ = clean("foop/\(id)")
    }

    /// The environment qmail-queue gets for a bounce.
    func bounceEnvironment() -> Environment {
        var e = env
        // qmail-queue starts in our directory (the queue): a relative QUEUEDIR would miss.
        if let here = Path.currentDirectory() { e.set("QUEUEDIR", Array(here.utf8)) }
        e.unset("SPAMFILTER")
        e.unset("FILTERARGS")
        if let q = env.nonEmpty("BOUNCEQUEUE") { e.set("QMAILQUEUE", Array(q.utf8)) }
        return e
    }

    /// True when the bounce is dealt with (sent or discarded).
    func injectBounce(_ id: UInt64) -> Bool {
        let bouncePath = layout.relativePath(.bounce, id)
        let infoPath = layout.relativePath(.info, id)
        guard case .success(let infoBytes) = FD.readFile(infoPath), let info = InfoFile.parse(infoBytes) else {
            warn("unable to read \(infoPath); will try again later")
            return false
        }
        guard case .success(let report) = FD.readFile(bouncePath) else {
            warn("unable to stat \(bouncePath)")
            return false
        }
        let plan = BouncePlan.plan(originalSender: info.sender, settings: config.bounce)
        switch plan {
        case .discardTriple:
            say("triple bounce: discarding \(bouncePath) \(log.queueName)\n")
        case .discardDouble:
            say("double bounce: discarding \(bouncePath) \(log.queueName)\n")
        case .send(let sender, let recipient, let double):
            switch runBounceProcessor(id, report: report, sender: sender, recipient: recipient) {
            case .send: break
            case .discard:
                say("info: \(program): delete bounce: discarding \(bouncePath) \(log.queueName)\n")
                if unlink(bouncePath) != 0 && errno != ENOENT { warn("unable to unlink \(bouncePath)") }
                return true
            case .later:
                return false
            }
            var body = BouncePlan.head(settings: config.bounce, date: ReceivedHeader.date822(seconds: time(nil)),
                                       originalSender: info.sender, bounceRecipient: recipient,
                                       double: double, report: report)
            let limit = max(0, config.bounce.maxBytes)
            guard let mess = Self.readPrefix(layout.relativePath(.mess, id), limit + 1) else {
                warn("trouble injecting bounce message, will try later")
                return false
            }
            body += mess.prefix(limit)
            if mess.count > limit { body += BouncePlan.truncationNotice }
            let verdict: QueueVerdict
            switch QueueSubmission.start(environment: bounceEnvironment()) {
            case .failure:
                warn("unable to start qmail-queue, will try later")
                return false
            case .success(var submission):
                submission.write(body)
                verdict = submission.finish(Envelope(sender: sender, recipients: [recipient]))
            }
            guard case .accepted(let qp) = verdict else {
                warn("trouble injecting bounce message, will try later")
                return false
            }
            say(log.bounce(id, qp: qp))
        }
        if unlink(bouncePath) != 0 && errno != ENOENT { warn("unable to unlink \(bouncePath)") }
        return true
    }

    enum BounceProcessorVerdict { case send, discard, later }

    /// BOUNCEPROCESSOR, when set, is asked about each bounce: exit 0 sends it, 1 discards
    /// it, anything else tries again later. Its arguments: the message file, the bounce
    /// file, the failure report, the first failed recipient, the bounce's sender and
    /// recipient.
    func runBounceProcessor(_ id: UInt64, report: [UInt8], sender: [UInt8], recipient: [UInt8]) -> BounceProcessorVerdict {
        guard let program = env.nonEmpty("BOUNCEPROCESSOR") else { return .send }
        let first = BounceText.firstRecipient(report).map { [UInt8(ascii: "<")] + $0 + [UInt8(ascii: ">")] } ?? []
        // The report: what follows the first "<recipient>:" and its white space.
        var text = Array(report.drop { $0 != UInt8(ascii: ":") }.dropFirst())
        while let c = text.first, c == 10 || c == 32 || c == 9 { text.removeFirst() }
        let argv: [[UInt8]] = [Array(program.utf8), Array(layout.relativePath(.mess, id).utf8),
                               Array(layout.relativePath(.bounce, id).utf8), text, first, sender, recipient]
        say("bounce processor sender <\(LogText.safeString(sender))> recipient <\(LogText.safeString(recipient))> \(log.queueName)\n")
        switch Spawn.run(argv, environment: env) {
        case .success(.exited(0)): return .send
        case .success(.exited(1)): return .discard
        case .success(let status):
            warn("\(program) \(status); will try again later")
            return .later
        case .failure(let e):
            alert("Unable to run: \(program): \(e.reason)")
            return .later
        }
    }

    /// At most `count` bytes from the start of `path`.
    static func readPrefix(_ path: String, _ count: Int) -> [UInt8]? {
        guard case .success(let fd) = FD.open(path, O_RDONLY) else { return nil }
        defer { Glibc.close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while out.count < count {
            let want = min(chunk.count, count - out.count)
            let r = chunk.withUnsafeMutableBytes { FD.read(fd, UnsafeMutableRawBufferPointer(rebasing: $0[0..<want])) }
            guard case .success(let n) = r else { return nil }
            if n == 0 { break }
            out += chunk[0..<n]
        }
        return out
    }

    // MARK: stopping

    func shutdown() {
        logStatus()
        tellTodo(UInt8(ascii: "X"))
        // Let todo-proc finish its message and say goodbye (bounded).
        let deadline = MonotonicClock.now() + 20
        while todoAlive && FD.waitUntil(SendFD.fromTodo, events: Int16(POLLIN), deadline: deadline) {
            readTodo()
        }
        say("status: exiting \(log.queueName)\n")
    }
}
