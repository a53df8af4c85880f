// Signals delivered as readable events through signalfd: no handlers, no global state.
import CSupport
import Glibc

public struct SignalSet: Sendable {
    public private(set) var raw = sigset_t()

    public init(_ signals: [Int32] = []) {
        sigemptyset(&raw)
        for s in signals { sigaddset(&raw, s) }
    }

    public func contains(_ signal: Int32) -> Bool {
        var copy = raw
        return sigismember(&copy, signal) == 1
    }

    /// Blocks these signals in this process so they queue for a SignalFD.
    public func block() {
        var set = raw
        sigprocmask(SIG_BLOCK, &set, nil)
    }

    public func unblock() {
        var set = raw
        sigprocmask(SIG_UNBLOCK, &set, nil)
    }
}

/// A non-blocking signalfd for a set of blocked signals. Children started with `Spawn`
/// get an empty mask back; children started with fork must call `Signals.resetForChild()`.
public final class SignalFD {
    public let fd: Int32

    public init(_ set: SignalSet) throws(SystemError) {
        set.block()
        var mask = set.raw
        let fd = cs_signalfd(-1, &mask, cs_sfd_cloexec() | cs_sfd_nonblock())
        guard fd >= 0 else { throw SystemError("unable to create signalfd") }
        self.fd = fd
    }

    deinit { Glibc.close(fd) }

    /// Signals that arrived since the last call, in order; empty when none.
    public func drain() -> [Int32] {
        var result: [Int32] = []
        var info = signalfd_siginfo()
        while true {
            let n = withUnsafeMutableBytes(of: &info) { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n == MemoryLayout<signalfd_siginfo>.size {
                result.append(Int32(info.ssi_signo))
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                return result
            }
        }
    }
}

public enum Signals {
    public static func ignore(_ signal: Int32) { Glibc.signal(signal, SIG_IGN) }
    public static func setDefault(_ signal: Int32) { Glibc.signal(signal, SIG_DFL) }

    /// In a forked child before exec: default dispositions and an empty mask.
    public static func resetForChild() {
        for s in 1..<Int32(32) where s != SIGKILL && s != SIGSTOP { Glibc.signal(s, SIG_DFL) }
        var empty = sigset_t()
        sigemptyset(&empty)
        sigprocmask(SIG_SETMASK, &empty, nil)
    }

    @discardableResult
    public static func send(_ signal: Int32, to pid: pid_t) -> Bool { kill(pid, signal) == 0 }

    /// Name without "SIG" for log lines ("TERM", "HUP"), or the number.
    public static func name(_ signal: Int32) -> String {
        let names: [Int32: String] = [
            SIGHUP: "HUP", SIGINT: "INT", SIGQUIT: "QUIT", SIGILL: "ILL", SIGABRT: "ABRT",
            SIGFPE: "FPE", SIGKILL: "KILL", SIGSEGV: "SEGV", SIGPIPE: "PIPE", SIGALRM: "ALRM",
            SIGTERM: "TERM", SIGUSR1: "USR1", SIGUSR2: "USR2", SIGCHLD: "CHLD", SIGCONT: "CONT",
            SIGSTOP: "STOP", SIGTSTP: "TSTP", SIGTTIN: "TTIN", SIGTTOU: "TTOU", SIGBUS: "BUS",
            SIGWINCH: "WINCH",
        ]
        return names[signal] ?? String(signal)
    }
}
