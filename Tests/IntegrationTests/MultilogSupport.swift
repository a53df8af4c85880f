// Helpers for the multilog tests: both implementations on the same input, log directory
// snapshots that compare across runs, and a long-running multilog fed through a pipe.
import Core
import Glibc

enum Multilog {
    static let reference = "/usr/bin/multilog"
    static var ours: [String] { [Build.indimail, "multilog"] }

    /// Runs `command + script` in `directory` with stdin redirected from `input` (a file, so
    /// reads come in the same sizes for both implementations and cut points are comparable).
    static func run(_ command: [String], _ script: [String], input: String, in directory: String,
                    environment: [String: String]? = nil, timeout: Double = 30) -> Outcome {
        let shell = ["/bin/sh", "-c", "cd \"$1\" && shift && exec \"$@\" < \"$0\"", input, directory]
        return harnessRun(shell + command + script, environment: environment, timeout: timeout)
    }

    /// Lines of `count` random lengths (some over 1000 and 4096 bytes) with NULs and high bytes.
    static func randomInput(lines count: Int, seed: UInt64, partialLast: Bool = true) -> [UInt8] {
        var state = seed
        func next(_ n: Int) -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int((state >> 33) % UInt64(n))
        }
        let lengths = [0, 1, 5, 50, 100, 200, 511, 512, 513, 900, 973, 974, 975, 999, 1000, 1001, 1500, 2500, 5000]
        let alphabet: [UInt8] = Array("abcdefghij ERROR*[]".utf8) + [0, 0xff, 13, 9]
        var out: [UInt8] = []
        for i in 0..<count {
            let length = next(10) < 3 ? lengths[next(lengths.count)] : next(150)
            out += Array("\(i) ".utf8)
            for _ in 0..<length { out.append(alphabet[next(alphabet.count)]) }
            out.append(10)
        }
        if partialLast { out += Array("partial last line".utf8) }
        return out
    }

    static func lines(_ n: Int, prefix: String = "line", width: Int = 0) -> [UInt8] {
        var out: [UInt8] = []
        for i in 0..<n {
            var text = "\(prefix) \(i)"
            if text.count < width { text += String(repeating: "x", count: width - text.count) }
            out += Array(text.utf8) + [10]
        }
        return out
    }
}

// The harness's run, reachable under another name from inside `Multilog`.
private func harnessRun(_ argv: [String], environment: [String: String]?, timeout: Double) -> Outcome {
    run(argv, environment: environment, timeout: timeout)
}

/// One file of a log directory as it compares across implementations and runs: old logs are
/// "@.s"/"@.u" in age order, stamps can be stripped from the contents.
struct LogFile: Equatable, CustomStringConvertible {
    var name: String
    var mode: mode_t
    var contents: [UInt8]

    var description: String {
        "\(name) \(String(mode, radix: 8)) \(contents.count) bytes"
    }
}

struct LogSnapshot: Equatable, CustomStringConvertible {
    var files: [LogFile]
    var directoryMode: mode_t

    var description: String { files.map(\.description).joined(separator: "; ") }

    /// Old logs in the order they were made, then the other files by name.
    init(_ dir: String, stripStamps: Bool = false) {
        let names = (try? Path.entries(dir).get()) ?? []
        let old = names.filter { $0.hasPrefix("@") }.sorted()
        let other = names.filter { !$0.hasPrefix("@") }.sorted()
        files = (old + other).map { name in
            let path = Path.join(dir, name)
            let st = Path.status(path)
            var contents = (try? FD.readFile(path).get()) ?? []
            if stripStamps { contents = LogSnapshot.stripStamps(contents) }
            let shown = name.hasPrefix("@") ? "@." + (name.split(separator: ".").last.map(String.init) ?? "") : name
            return LogFile(name: shown, mode: (st?.st_mode ?? 0) & 0o7777, contents: contents)
        }
        directoryMode = (Path.status(dir)?.st_mode ?? 0) & 0o7777
    }

    /// Removes "@<24 hex> " from the start of every line.
    static func stripStamps(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var atStart = true
        var i = 0
        while i < bytes.count {
            if atStart, isStamp(bytes, at: i) {
                i += 26
                atStart = false
                continue
            }
            out.append(bytes[i])
            atStart = bytes[i] == 10
            i += 1
        }
        return out
    }

    static func isStamp(_ bytes: [UInt8], at i: Int) -> Bool {
        guard i + 26 <= bytes.count, bytes[i] == UInt8(ascii: "@"), bytes[i + 25] == 32 else { return false }
        return bytes[(i + 1)..<(i + 25)].allSatisfy { Hex.lowercaseValue($0) != nil }
    }

    /// Real old-log names: "@" + 24 lowercase hex + ".s" or ".u".
    static func isOldLogName(_ name: String) -> Bool {
        let b = Array(name.utf8)
        guard b.count == 27, b[0] == UInt8(ascii: "@"), b[25] == UInt8(ascii: ".") else { return false }
        guard b[26] == UInt8(ascii: "s") || b[26] == UInt8(ascii: "u") else { return false }
        return b[1..<25].allSatisfy { Hex.lowercaseValue($0) != nil }
    }

    /// Every line of every file, old logs first.
    var allLines: [[UInt8]] {
        files.filter { $0.name.hasPrefix("@") || $0.name == "current" }
            .flatMap { $0.contents.split(separator: 10, omittingEmptySubsequences: false).dropLast().map(Array.init) }
    }
}

/// The pipe a logger reads, held by the test as supervise holds it: it outlives the logger,
/// so a restarted logger reads what the killed one left.
final class InputPipe {
    /// The read end (also the child's stdin), to see what is left unread.
    let read: Int32
    private(set) var write: Int32

    init?() {
        guard case .success(let pipe) = FD.pipe() else { return nil }
        read = pipe.read
        write = pipe.write
    }

    deinit {
        closeWrite()
        close(read)
    }

    func send(_ bytes: [UInt8]) { FD.writeAll(write, bytes) }
    func send(_ text: String) { send(Array(text.utf8)) }

    func closeWrite() {
        if write >= 0 { close(write) }
        write = -1
    }

    /// What is still in the pipe. Polls rather than setting O_NONBLOCK, which would also
    /// make the logger's reads fail (the open file description is shared).
    func unread() -> [UInt8] {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while FD.waitUntil(read, events: Int16(POLLIN), timeout: 0) {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(read, $0.baseAddress, $0.count) }
            if n <= 0 { return out }
            out += chunk[0..<n]
        }
        return out
    }
}

/// A multilog reading an `InputPipe`: for signals, locks, slow input and kills. Killed and
/// reaped when it goes away.
final class LiveMultilog {
    let pid: pid_t
    let input: InputPipe
    let errorFile: String
    private var status: WaitStatus?

    init?(_ command: [String], _ script: [String], in directory: String, errors: String,
          input: InputPipe? = nil, environment: [String: String]? = nil) {
        guard let pipe = input ?? InputPipe() else { return nil }
        let err = open(errors, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard err >= 0 else { return nil }
        var env = Environment.current()
        for (k, v) in environment ?? [:] { env[k] = v }
        var options = SpawnOptions()
        options.fileMoves = [(pipe.read, 0), (err, 2)]
        let argv = ["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", directory] + command + script
        let started = Spawn.start(argv.map { Array($0.utf8) }, environment: env, options: options)
        close(err)
        guard case .success(let pid) = started else { return nil }
        self.pid = pid
        self.input = pipe
        self.errorFile = errors
    }

    deinit {
        if status == nil {
            kill(pid, SIGKILL)
            _ = waitWithDeadline(pid, seconds: 5)
        }
    }

    func write(_ bytes: [UInt8]) { input.send(bytes) }
    func write(_ text: String) { input.send(text) }
    func closeInput() { input.closeWrite() }
    func signal(_ signal: Int32) { kill(pid, signal) }

    /// Waits for the exit (SIGKILL after `seconds`).
    @discardableResult
    func wait(seconds: Double = 20) -> WaitStatus {
        if let status { return status }
        let s = waitWithDeadline(pid, seconds: seconds)
        status = s
        return s
    }

    /// Exited already? (Reaps it if so.)
    var hasExited: Bool {
        if status != nil { return true }
        var raw: Int32 = 0
        if waitpid(pid, &raw, WNOHANG) == pid {
            status = WaitStatus(raw: raw)
            return true
        }
        return false
    }

    func killHard() {
        kill(pid, SIGKILL)
        wait(seconds: 5)
    }

    var errors: String { String(decoding: fileContents(errorFile), as: UTF8.self) }
}


func fileContents(_ path: String) -> [UInt8] { (try? FD.readFile(path).get()) ?? [] }
