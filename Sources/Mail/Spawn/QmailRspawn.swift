// qmail-rspawn: remote deliveries. Runs qmail-remote for each recipient and turns its
// recipient and message reports into one K/Z/D report for qmail-send.
import Core
import Glibc

public enum RemoteSpawnReport {
    /// §6.5: the child's exit status first, then the first record decides the letter with
    /// the message report (K/Z/D) as fallback; its text follows, then the message report's
    /// text when it did not already make the outcome worse.
    public static func text(_ status: WaitStatus, output s: [UInt8]) -> [UInt8] {
        guard case .exited(let code) = status else { return Array("Zqmail-remote crashed.\n".utf8) }
        switch code {
        case 0: break
        case 111: return Array("ZUnable to run qmail-remote.\n".utf8)
        default: return Array("DUnable to run qmail-remote.\n".utf8)
        }
        if s.isEmpty { return Array("Zqmail-remote produced no output.\n".utf8) }
        var result = -1
        var j = 0
        for k in s.indices where s[k] == 0 {
            if s[j] == UInt8(ascii: "K") { result = 1; break }
            if s[j] == UInt8(ascii: "Z") { result = 0; break }
            if s[j] == UInt8(ascii: "D") { break }
            j = k + 1
        }
        var final = result
        switch s[0] {
        case UInt8(ascii: "s"): final = 0
        case UInt8(ascii: "h"): final = -1
        default: break
        }
        var out: [UInt8] = [final == 1 ? UInt8(ascii: "K") : final == 0 ? UInt8(ascii: "Z") : UInt8(ascii: "D")]
        // The first record's text, then perhaps the next record's, each up to its NUL.
        guard s.count > 1, let firstEnd = s[1...].firstIndex(of: 0) else { return out }
        out += s[1..<firstEnd]
        let next = firstEnd + 1
        if result <= final, next < s.count, [UInt8(ascii: "Z"), UInt8(ascii: "D"), UInt8(ascii: "K")].contains(s[next]) {
            out += s[(next + 1)...].prefix { $0 != 0 }
        }
        return out
    }
}

struct RemoteSpawnDriver: SpawnDriver {
    let truncation = 0
    let environment: Environment
    let remoteProgram: [UInt8]

    init(context: CommandContext) {
        var env = context.environment
        env.unset("QMAILLOCAL")
        environment = env
        remoteProgram = env.bytes("QMAILREMOTE") ?? Array(Path.join(SuitePaths(environment: env).prefix, "sbin/qmail-remote").utf8)
    }

    func report(_ status: WaitStatus, output: [UInt8]) -> [UInt8] { RemoteSpawnReport.text(status, output: output) }

    mutating func start(_ job: SpawnJob, output: Int32) -> SpawnStart {
        let r = job.request
        let argv: [[UInt8]] = [Array("qmail-remote".utf8), Array(r.recipient[(job.at + 1)...]), r.sender, r.qqeh,
                               Array(String(job.messageSize).utf8), r.recipient]
        var spec = ChildSpec(path: remoteProgram, arguments: argv, environment: job.environment(environment),
                             stdin: job.messageFD, stdout: output)
        spec.searchPath = true
        switch ChildLauncher.start(spec) {
        case .success(let pid): return .child(pid)
        case .failure(let e):
            return .finished(report(.exited(TemporaryErrno.contains(e.errno) ? 111 : 100), output: []))
        }
    }

    mutating func resume(_ job: SpawnJob, helper: WaitStatus, helperOutput: [UInt8], output: Int32) -> SpawnStart {
        .finished(report(.exited(111), output: []))
    }
}

public struct QmailRspawnCommand: Command {
    public static let name = "qmail-rspawn"
    public static let installDirectory = InstallDirectory.sbin
    public static let summary = "run qmail-remote for each remote delivery qmail-send asks for"

    public static func run(_ context: CommandContext) -> Int32 {
        let diag = context.diagnostics
        let setup: SpawnEngine.Setup
        switch SpawnEngine.prepare(context) {
        case .failure(let e): return diag.fatal(e)
        case .success(let s): setup = s
        }
        clearTimeoutTable()
        var driver = RemoteSpawnDriver(context: context)
        return SpawnEngine.run(&driver, setup: setup)
    }

    /// A restart forgets remote-host timeouts: lock/tcpto is zeroed (2048 bytes), if present.
    static func clearTimeoutTable() {
        guard case .success(let fd) = FD.open("../lock/tcpto", O_WRONLY) else { return }
        FD.writeAll(fd, [UInt8](repeating: 0, count: 2048))
        FD.close(fd)
    }
}
