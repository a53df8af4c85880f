// Helpers shared by the Core tests: temp directories, files, peer tools, forked checks.
import Core
import Foundation
import Glibc
import Testing

/// A fresh directory from mkdtemp; each test removes its own with `defer { dir.remove() }`.
struct TempDir {
    let path: String

    init(_ tag: String = "coretests") throws {
        var template = Array("/tmp/\(tag).XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard let made else { throw SystemError("unable to create temp directory") }
        path = String(cString: made)
    }

    func file(_ name: String) -> String { path + "/" + name }

    /// Removes the tree without following symlinks (envdir tests build link cycles).
    func remove() {
        _ = try? FileManager.default.removeItem(atPath: path)
    }
}

/// Creates (or truncates) `path` with exactly `bytes`.
func writeFile(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
    guard fd >= 0 else { throw SystemError("unable to create", path) }
    defer { close(fd) }
    try FD.writeAll(fd, bytes).get()
}

func writeFile(_ path: String, _ text: String, mode: mode_t = 0o644) throws {
    try writeFile(path, Array(text.utf8), mode: mode)
}

func readFile(_ path: String) throws -> [UInt8] {
    try FD.readFile(path).get()
}

func makeDirectory(_ path: String) throws {
    guard mkdir(path, 0o755) == 0 else { throw SystemError("unable to mkdir", path) }
}

func makeSymlink(_ target: String, at path: String) throws {
    guard symlink(target, path) == 0 else { throw SystemError("unable to symlink", path) }
}

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// The error of a Result expected to have failed; records an issue (and returns nil) otherwise.
func failure<T, E: Error>(_ result: Result<T, E>, sourceLocation: SourceLocation = #_sourceLocation) -> E? {
    switch result {
    case .success(let value):
        Issue.record("expected a failure, got success: \(value)", sourceLocation: sourceLocation)
        return nil
    case .failure(let error):
        return error
    }
}

// MARK: peer tools (Debian packages)

struct ToolResult {
    var status: Int32
    var stdout: [UInt8]
    var stderr: [UInt8]
    var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    var stderrText: String { String(decoding: stderr, as: UTF8.self) }
}

/// Fails the test (instead of skipping) when a peer tool is not installed.
func requireTool(_ path: String, package: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
    try #require(FileManager.default.isExecutableFile(atPath: path),
                 "\(path) is missing: install the Debian package \(package) to run this interoperability test",
                 sourceLocation: sourceLocation)
    return path
}

/// Runs a peer tool with stdin read from `stdinPath` (or /dev/null) and collects its output.
func runTool(_ path: String, _ arguments: [String], stdinPath: String? = nil,
             environment: [String: String]? = nil) throws -> ToolResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    if let environment { process.environment = environment }
    let input = try #require(FileHandle(forReadingAtPath: stdinPath ?? "/dev/null"), "cannot open \(stdinPath ?? "/dev/null")")
    defer { try? input.close() }
    process.standardInput = input
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    // stderr is tiny for these tools; read stdout to the end first.
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    let stderr = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return ToolResult(status: process.terminationStatus, stdout: Array(stdout), stderr: Array(stderr))
}

// MARK: forked checks

/// Runs `body` in a forked child and returns how the child ended (nil after a timeout, when
/// the child is killed). The child starts with default signal handling and an empty mask, and
/// must not touch the test framework: it reports through its exit code.
///
/// Other threads keep running in the parent while we fork; a lock one of them held (the Swift
/// runtime's metadata cache, say) stays locked forever in the child. So callers run the same
/// code once in the parent first, leaving every piece of generic metadata it needs already
/// instantiated, and the reset below uses plain C calls only.
func inForkedChild(timeout seconds: Double = 10, _ body: () -> Int32) -> WaitStatus? {
    let pid = fork()
    if pid == 0 {
        // The forking thread's mask and the runner's dispositions are not the child's business.
        var signalNumber: Int32 = 1
        while signalNumber < 32 {
            if signalNumber != SIGKILL && signalNumber != SIGSTOP { signal(signalNumber, SIG_DFL) }
            signalNumber += 1
        }
        var empty = sigset_t()
        sigemptyset(&empty)
        sigprocmask(SIG_SETMASK, &empty, nil)
        _exit(body())
    }
    guard pid > 0 else { return nil }
    let deadline = Date().addingTimeInterval(seconds)
    var raw: Int32 = 0
    while true {
        let r = waitpid(pid, &raw, WNOHANG)
        if r == pid { return WaitStatus(raw: raw) }
        if r < 0 && errno != EINTR { return nil }
        if Date() > deadline {
            kill(pid, SIGKILL)
            _ = waitpid(pid, &raw, 0)
            return nil
        }
        usleep(2_000)
    }
}

// MARK: cdb

typealias Record = (key: [UInt8], value: [UInt8])

/// Writes `records` with CDBWriter.rebuild.
func buildCDB(_ path: String, _ records: [Record]) throws {
    try CDBWriter.rebuild(path, temporary: path + ".tmp") { writer in
        for record in records {
            if case .failure(let e) = writer.add(key: record.key, value: record.value) { return .failure(e) }
        }
        return .success(())
    }.get()
}

/// cdbmake's input format: `+klen,dlen:key->data\n` per record, then an empty line.
/// cdbdump prints exactly the same text.
func cdbmakeText(_ records: [Record]) -> [UInt8] {
    var out: [UInt8] = []
    for r in records {
        out += bytes("+\(r.key.count),\(r.value.count):") + r.key + bytes("->") + r.value + [10]
    }
    out.append(10)
    return out
}

/// A deterministic generator (SplitMix64) so fuzz failures reproduce.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
