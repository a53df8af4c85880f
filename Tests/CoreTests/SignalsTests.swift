// SignalSet, SignalFD and Signals. Signal masks are per thread and the test runner is
// multi-threaded, so anything that blocks or raises a signal runs in a forked child
// (one thread: a process-directed signal can only go to the signalfd).
import Core
import Glibc
import Testing

@Suite("Signals", .serialized)
struct SignalsTests {
    @Test("SignalSet membership")
    func membership() {
        let empty = SignalSet()
        for s in [SIGHUP, SIGTERM, SIGUSR1, SIGCHLD] { #expect(!empty.contains(s)) }
        let set = SignalSet([SIGTERM, SIGHUP, SIGTERM])
        #expect(set.contains(SIGTERM))
        #expect(set.contains(SIGHUP))
        #expect(!set.contains(SIGINT))
        #expect(!set.contains(SIGUSR1))
    }

    @Test("names without SIG, numbers for the rest")
    func names() {
        #expect(Signals.name(SIGTERM) == "TERM")
        #expect(Signals.name(SIGHUP) == "HUP")
        #expect(Signals.name(SIGUSR2) == "USR2")
        #expect(Signals.name(SIGCHLD) == "CHLD")
        #expect(Signals.name(40) == "40")
    }

    /// Creates the SignalFD once here so the child finds the runtime ready (see inForkedChild).
    func warmUp() throws {
        let idle = try SignalFD(SignalSet())
        #expect(idle.drain().isEmpty)
        #expect(idle.drain() != [SIGUSR1])
        #expect(Set(idle.drain()) != [SIGUSR2, SIGHUP])
    }

    @Test("a raised SIGUSR1 is read from the signalfd, once")
    func drainsRaisedSignal() throws {
        try warmUp()
        let status = inForkedChild {
            guard let sfd = try? SignalFD(SignalSet([SIGUSR1])) else { return 10 }
            guard sfd.drain().isEmpty else { return 11 }  // nothing yet, and no blocking
            kill(getpid(), SIGUSR1)                        // blocked: it must not kill us
            guard sfd.drain() == [SIGUSR1] else { return 12 }
            guard sfd.drain().isEmpty else { return 13 }   // consumed
            return 0
        }
        #expect(status == .exited(0), "child reported \(String(describing: status))")
    }

    @Test("several signals are all reported; standard signals do not queue twice")
    func drainsSeveral() throws {
        try warmUp()
        let status = inForkedChild {
            guard let sfd = try? SignalFD(SignalSet([SIGUSR1, SIGUSR2, SIGHUP])) else { return 10 }
            kill(getpid(), SIGUSR2)
            kill(getpid(), SIGHUP)
            kill(getpid(), SIGUSR2)
            let got = sfd.drain()
            guard got.count == 2, Set(got) == [SIGUSR2, SIGHUP] else { return 11 }
            // A signal outside the set is not swallowed: SIGTERM still kills the child.
            kill(getpid(), SIGTERM)
            return 12
        }
        #expect(status == .signaled(SIGTERM, coreDumped: false), "child reported \(String(describing: status))")
    }

    @Test("unblock lets the signal's default action happen again")
    func unblock() throws {
        try warmUp()
        let status = inForkedChild {
            let set = SignalSet([SIGUSR1])
            set.block()
            kill(getpid(), SIGUSR1)  // pending while blocked
            set.unblock()            // delivered now: default action terminates
            return 20
        }
        #expect(status == .signaled(SIGUSR1, coreDumped: false))
    }

    @Test("resetForChild clears ignored handlers and the mask")
    func resetForChild() throws {
        // resetForChild cannot run here (it would reset the whole test process), so instantiate
        // the generic metadata its loop needs with a loop of the same shape.
        var visited = 0
        for s in 1..<Int32(32) where s != SIGKILL && s != SIGSTOP { visited += Int(s > 0 ? 1 : 0) }
        #expect(visited == 29)
        let status = inForkedChild {
            Signals.ignore(SIGTERM)
            SignalSet([SIGUSR1]).block()
            kill(getpid(), SIGTERM)  // ignored
            Signals.resetForChild()
            kill(getpid(), SIGTERM)
            return 30
        }
        #expect(status == .signaled(SIGTERM, coreDumped: false))
    }

    @Test("send reports whether the target exists")
    func send() throws {
        let pid = try Spawn.start([bytes("/bin/sleep"), bytes("30")], environment: Environment()).get()
        #expect(Signals.send(SIGKILL, to: pid))
        #expect(try Wait.for(pid).get() == .signaled(SIGKILL, coreDumped: false))
        #expect(!Signals.send(0, to: pid))  // reaped: no such process
    }
}
