// The "translate" relay of ucspi-tcp §9.2: decrypted network data to a clear-text fd and
// clear-text data back into the session, both directions at once, until both have ended.
import Core
import Glibc

public enum TLSRelay {
    public enum Ending: Equatable, Sendable {
        /// Both directions reached end of file (or the clear side stopped listening).
        case closed
        /// Nothing moved either way for the idle timeout.
        case idle
        /// An I/O error ended the relay; the text was already logged as a warning.
        case failed(String)

        /// The reference's translate() result: 0, or -1 for a timeout or an error.
        public var status: Int32 { self == .closed ? 0 : -1 }
    }

    /// Relays between `channel` and the clear side: what the network sends goes to
    /// `clearOut`, what `clearIn` gives goes to the network.
    ///
    /// * End of file on `clearIn` sends close_notify; data from the network still flows to
    ///   `clearOut` until the peer closes, unless nobody reads `clearOut` any more (a pipe
    ///   whose reader exited), which ends the relay at once.
    /// * End of the network session closes `clearOut` (a socket also gets shutdown(SHUT_WR),
    ///   and is left open when it is `clearIn` too), so the program sees end of file; clear data still goes
    ///   out while the network accepts it. With `stopAtNetworkEOF` the relay returns then
    ///   instead (a terminal on stdin should not have to type ^D after the server left).
    /// * `idleTimeout` seconds without any byte moving end the relay with `.idle`.
    ///
    /// The relay closes `clearOut` before returning; `clearIn` is left to the caller.
    /// Warnings go to `diagnostics` with the reference's wording. SIGPIPE must be ignored.
    public static func run(_ channel: any TLSChannel, clearIn: Int32, clearOut: Int32,
                           idleTimeout: Double, stopAtNetworkEOF: Bool = false,
                           diagnostics: Diagnostics? = nil) -> Ending {
        var relay = RelayState(channel: channel, clearIn: clearIn, clearOut: clearOut,
                               stopAtNetworkEOF: stopAtNetworkEOF, diagnostics: diagnostics)
        let ending = relay.loop(idleTimeout: idleTimeout)
        relay.closeClearOut()
        return ending
    }
}

/// One relay's buffers and the state of its four half-streams.
private struct RelayState {
    let channel: any TLSChannel
    let clearIn: Int32
    let clearOut: Int32
    let stopAtNetworkEOF: Bool
    let diagnostics: Diagnostics?
    let clearOutIsSocket: Bool
    // A blocking clear fd gets one read or write per poll report, so it never blocks.
    let clearInNonBlocking: Bool
    let clearOutNonBlocking: Bool

    // network → clear
    var fromNetwork = [UInt8](repeating: 0, count: 16384 + 512)
    var fromNetworkStart = 0, fromNetworkEnd = 0
    var networkOpen = true            // no EOF from the peer yet
    var networkReadWaits: TLSProgress? = nil  // what the last read asked to wait for
    var clearOutOpen = true
    var clearOutWritable = false
    // clear → network
    var toNetwork = [UInt8](repeating: 0, count: 16384)
    var toNetworkStart = 0, toNetworkEnd = 0
    var clearInOpen = true
    var clearInReadable = false
    var networkWriteOpen = true       // close_notify not sent, no write error
    var networkWriteWaits: TLSProgress? = nil

    init(channel: any TLSChannel, clearIn: Int32, clearOut: Int32, stopAtNetworkEOF: Bool,
         diagnostics: Diagnostics?) {
        self.channel = channel
        self.clearIn = clearIn
        self.clearOut = clearOut
        self.stopAtNetworkEOF = stopAtNetworkEOF
        self.diagnostics = diagnostics
        var st = stat()
        clearOutIsSocket = fstat(clearOut, &st) == 0 && (st.st_mode & S_IFMT) == S_IFSOCK
        clearInNonBlocking = fcntl(clearIn, F_GETFL) & O_NONBLOCK != 0
        clearOutNonBlocking = clearOutIsSocket || fcntl(clearOut, F_GETFL) & O_NONBLOCK != 0
    }

    mutating func loop(idleTimeout: Double) -> TLSRelay.Ending {
        var deadline = MonotonicClock.now() + idleTimeout
        while true {
            switch step() {
            case .failure(let why): return .failed(why.description)
            case .success(true): deadline = MonotonicClock.now() + idleTimeout
            case .success(false): break
            }
            let networkDone = (!networkOpen && fromNetworkStart == fromNetworkEnd) || !clearOutOpen
            if networkDone && clearOutOpen { closeClearOut() }
            if networkDone && (stopAtNetworkEOF || !networkWriteOpen) {
                if networkWriteOpen { channel.shutdown(); networkWriteOpen = false }
                return .closed
            }
            if case .some(let timedOut) = waitForEvents(until: deadline), timedOut {
                diagnostics?.warning("timeout reached without input from network")
                diagnostics?.warning("timeout reached without output from child")
                return .idle
            }
        }
    }

    /// Does every transfer possible without waiting; true when any byte moved.
    mutating func step() -> Result<Bool, TLSError> {
        var movedAny = false
        var moved = true
        while moved {
            moved = false
            // network → buffer
            if networkOpen && clearOutOpen && fromNetworkStart == fromNetworkEnd
                && (networkReadWaits == nil || channel.pending > 0) {
                let r = fromNetwork.withUnsafeMutableBytes { channel.tryRead(into: $0) }
                switch r {
                case .failure(let e): return fail("translate: read network: \(e)")
                case .success(.done(0)): networkOpen = false; moved = true
                case .success(.done(let n)): fromNetworkStart = 0; fromNetworkEnd = n; moved = true
                case .success(let wait): networkReadWaits = wait
                }
            }
            // buffer → clear side
            if fromNetworkStart < fromNetworkEnd && clearOutOpen && clearOutWritable {
                // At most PIPE_BUF after poll said writable: never blocks on a blocking pipe.
                let count = clearOutNonBlocking ? fromNetworkEnd - fromNetworkStart
                                                : min(fromNetworkEnd - fromNetworkStart, 4096)
                let n = fromNetwork.withUnsafeBytes { raw -> Int in
                    let base = raw.baseAddress! + fromNetworkStart
                    return clearOutIsSocket ? send(clearOut, base, count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL))
                                            : Glibc.write(clearOut, base, count)
                }
                if n > 0 {
                    fromNetworkStart += n
                    if fromNetworkStart == fromNetworkEnd { fromNetworkStart = 0; fromNetworkEnd = 0 }
                    if !clearOutNonBlocking { clearOutWritable = false }
                    moved = true
                } else if n < 0 && (errno == EAGAIN || errno == EINTR) {
                    clearOutWritable = errno == EINTR
                } else if errno == EPIPE {
                    clearOutOpen = false  // nobody reads any more: the network data has nowhere to go
                    fromNetworkStart = 0; fromNetworkEnd = 0
                    moved = true
                } else {
                    return fail("translate: write clear channel: \(SystemError.describe(errno))")
                }
            }
            // clear side → buffer
            if clearInOpen && toNetworkStart == toNetworkEnd && clearInReadable {
                let n = toNetwork.withUnsafeMutableBytes { Glibc.read(clearIn, $0.baseAddress, $0.count) }
                if n >= 0 && !clearInNonBlocking { clearInReadable = false }
                if n > 0 {
                    toNetworkStart = 0; toNetworkEnd = n; moved = true
                } else if n == 0 {
                    clearInOpen = false; moved = true
                } else if errno == EAGAIN || errno == EINTR {
                    clearInReadable = errno == EINTR
                } else {
                    return fail("translate: read clear channel: \(SystemError.describe(errno))")
                }
                if !networkWriteOpen { toNetworkStart = 0; toNetworkEnd = 0 }  // nowhere to send it
            }
            // buffer → network
            if toNetworkStart < toNetworkEnd && networkWriteOpen && networkWriteWaits == nil {
                let r = toNetwork.withUnsafeBytes { raw in
                    channel.tryWrite(UnsafeRawBufferPointer(rebasing: raw[toNetworkStart..<toNetworkEnd]))
                }
                switch r {
                case .failure(let e):
                    // The peer already said goodbye: the clear side's last words are lost.
                    if !networkOpen {
                        networkWriteOpen = false
                        toNetworkStart = 0; toNetworkEnd = 0
                        moved = true
                    } else {
                        return fail("translate: write network: \(e)")
                    }
                case .success(.done(let n)):
                    toNetworkStart += n
                    if toNetworkStart == toNetworkEnd { toNetworkStart = 0; toNetworkEnd = 0 }
                    moved = true
                case .success(let wait): networkWriteWaits = wait
                }
            }
            if !clearInOpen && toNetworkStart == toNetworkEnd && networkWriteOpen {
                channel.shutdown()
                networkWriteOpen = false
                moved = true
            }
            if moved { movedAny = true }
        }
        return .success(movedAny)
    }

    /// Polls what the state waits for; nil after events, true on timeout.
    mutating func waitForEvents(until deadline: Double) -> Bool? {
        var fds: [pollfd] = []
        func want(_ fd: Int32, _ events: Int16) {
            if let i = fds.firstIndex(where: { $0.fd == fd }) { fds[i].events |= events } else {
                fds.append(pollfd(fd: fd, events: events, revents: 0))
            }
        }
        func wait(for progress: TLSProgress?) {
            switch progress {
            case .wantRead: want(channel.fd, Int16(POLLIN))
            case .wantWrite: want(channel.outputFD, Int16(POLLOUT))
            default: break
            }
        }
        if networkOpen && clearOutOpen && fromNetworkStart == fromNetworkEnd { wait(for: networkReadWaits) }
        if toNetworkStart < toNetworkEnd && networkWriteOpen { wait(for: networkWriteWaits) }
        if clearInOpen && toNetworkStart == toNetworkEnd && !clearInReadable { want(clearIn, Int16(POLLIN)) }
        // Watched even with nothing to write: POLLERR tells the reader has gone.
        if clearOutOpen { want(clearOut, fromNetworkStart < fromNetworkEnd ? Int16(POLLOUT) : 0) }
        while true {
            let left = deadline - MonotonicClock.now()
            if left <= 0 { return true }
            let r = poll(&fds, nfds_t(fds.count), Int32(min(left * 1000, 3_600_000).rounded(.up)))
            if r > 0 { break }
            if r == 0 { continue }
            if errno != EINTR { return nil }
        }
        for p in fds where p.revents != 0 {
            let r = Int32(p.revents)
            let hangup = r & (POLLERR | POLLHUP | POLLNVAL) != 0
            if p.fd == channel.fd && (r & POLLIN != 0 || hangup) {
                if networkReadWaits == .wantRead { networkReadWaits = nil }
                if networkWriteWaits == .wantRead { networkWriteWaits = nil }
            }
            if p.fd == channel.outputFD && (r & POLLOUT != 0 || hangup) {
                if networkReadWaits == .wantWrite { networkReadWaits = nil }
                if networkWriteWaits == .wantWrite { networkWriteWaits = nil }
            }
            if p.fd == clearIn && (r & POLLIN != 0 || hangup) { clearInReadable = true }
            if p.fd == clearOut {
                if r & POLLOUT != 0 { clearOutWritable = true }
                // A pipe without reader reports POLLERR; a socket shut for reading, POLLHUP.
                if r & (POLLERR | POLLNVAL) != 0 || (r & POLLHUP != 0 && clearOut != clearIn) {
                    clearOutOpen = false
                    fromNetworkStart = 0; fromNetworkEnd = 0
                    closeClearOut()
                }
            }
        }
        return nil
    }

    private var clearOutClosed = false

    mutating func closeClearOut() {
        clearOutOpen = false
        guard !clearOutClosed else { return }
        clearOutClosed = true
        // A socket gets a FIN even when another fd (clearIn, or a parent's copy) still
        // refers to it; closing alone would not end the peer's input.
        if clearOutIsSocket { _ = Glibc.shutdown(clearOut, Int32(SHUT_WR)) }
        if clearOut != clearIn { _ = Glibc.close(clearOut) }
    }

    func fail(_ text: String) -> Result<Bool, TLSError> {
        diagnostics?.warning(text)
        return .failure(TLSError(text))
    }
}
