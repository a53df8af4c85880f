// The relay between a TLS session and clear-text fds: both directions, half-closes,
// a reader that went away, the idle timeout, bulk transfers, and the plain-socket variant.
import Core
import Glibc
import Testing
import TLS
import UCSPI

/// A relay running on its own thread, the server side of a TLS pair on one end and two
/// pipes (the "program") on the other.
final class RelayUnderTest: @unchecked Sendable {
    let pair: TLSPair
    /// Our ends of the program's pipes: what we write reaches the relay's clearIn; the
    /// relay's clearOut arrives on `fromRelay`.
    var toRelay: Int32
    var fromRelay: Int32
    let runner: ThreadRunner<TLSRelay.Ending>

    init(_ pair: TLSPair, idle: Double = 10, stopAtNetworkEOF: Bool = false) throws {
        self.pair = pair
        let input = try FD.pipe().get()    // program output → relay clearIn
        let output = try FD.pipe().get()   // relay clearOut → program input
        toRelay = input.write
        fromRelay = output.read
        let channel = pair.server
        runner = ThreadRunner {
            let ending = TLSRelay.run(channel, clearIn: input.read, clearOut: output.write, idleTimeout: idle,
                                      stopAtNetworkEOF: stopAtNetworkEOF)
            close(input.read)
            return ending
        }
    }

    func closeToRelay() { if toRelay >= 0 { close(toRelay); toRelay = -1 } }
    func closeFromRelay() { if fromRelay >= 0 { close(fromRelay); fromRelay = -1 } }

    /// The relay's ending, waiting at most `seconds` for it to finish on its own.
    func ending(within seconds: Double) -> TLSRelay.Ending? {
        let deadline = monotonicSeconds() + seconds
        while monotonicSeconds() < deadline {
            if finished { return runner.join() }
            usleep(5000)
        }
        return nil
    }

    private var finished: Bool {
        // The relay closes clearOut when it ends: our read end then reports EOF/HUP.
        var p = pollfd(fd: fromRelay, events: Int16(POLLIN), revents: 0)
        return fromRelay < 0 || (poll(&p, 1, 0) == 1 && p.revents & Int16(POLLHUP) != 0)
    }

    deinit {
        closeToRelay()
        closeFromRelay()
        // Unblocks a relay still waiting, so the thread can be joined.
        shutdown(pair.fds.0, Int32(SHUT_RDWR))
        shutdown(pair.fds.1, Int32(SHUT_RDWR))
        _ = runner.join()
        pair.close()
    }
}

@Suite struct TLSRelayTests {
    func pair(_ box: Sandbox) throws -> TLSPair {
        let certs = try #require(TestCertificates(in: box))
        let p = try handshake(server: serverSettings(certs), client: TLSSettings()).get()
        p.client.ioTimeout = 10
        return p
    }

    @Test func bothDirectionsThenCleanClose() throws {
        let box = Sandbox()
        let relay = try RelayUnderTest(pair(box))
        FD.writeAll(relay.toRelay, Array("220 hello\r\n".utf8))
        #expect(relay.pair.client.receive(11) == "220 hello\r\n")
        #expect(relay.pair.client.send("QUIT\r\n"))
        #expect(readSome(relay.fromRelay, atLeast: 6) == Array("QUIT\r\n".utf8))
        // The program answers and exits: its output ends → close_notify to the client,
        // whose read sees the end of the session after the last reply.
        FD.writeAll(relay.toRelay, Array("221 bye\r\n".utf8))
        relay.closeToRelay()
        #expect(relay.pair.client.receive(100) == "221 bye\r\n")
        // The client closes too: the program's input ends, and the relay is done.
        relay.pair.client.shutdown()
        #expect(readSome(relay.fromRelay, atLeast: 1).isEmpty)
        #expect(relay.ending(within: 5) == .closed)
    }

    @Test func networkEndClosesTheProgramsInputButKeepsItsOutput() throws {
        let box = Sandbox()
        let relay = try RelayUnderTest(pair(box))
        #expect(relay.pair.client.send("last words"))
        relay.pair.client.shutdown()
        #expect(readSome(relay.fromRelay, atLeast: 100) == Array("last words".utf8))  // then EOF
        // Half-close: the program can still answer after its input ended.
        FD.writeAll(relay.toRelay, Array("answer".utf8))
        #expect(relay.pair.client.receive(6) == "answer")
        relay.closeToRelay()
        #expect(relay.ending(within: 5) == .closed)
    }

    @Test func stopAtNetworkEOFReturnsWithoutTheClearSide() throws {
        let box = Sandbox()
        let relay = try RelayUnderTest(pair(box), stopAtNetworkEOF: true)
        #expect(relay.pair.client.send("bye"))
        relay.pair.client.shutdown()
        #expect(readSome(relay.fromRelay, atLeast: 100) == Array("bye".utf8))
        #expect(relay.ending(within: 5) == .closed)  // toRelay still open
    }

    @Test func programGoneEndsTheRelayAtOnce() throws {
        let box = Sandbox()
        let relay = try RelayUnderTest(pair(box))
        // A program that exits closes both pipes at once.
        relay.closeToRelay()
        relay.closeFromRelay()
        #expect(relay.runner.join() == .closed)
        #expect(relay.pair.client.receive(1) == "")  // close_notify arrived
    }

    @Test func idleTimeout() throws {
        let box = Sandbox()
        let relay = try RelayUnderTest(pair(box), idle: 0.5)
        let start = monotonicSeconds()
        #expect(relay.ending(within: 10) == .idle)
        #expect(monotonicSeconds() - start < 5)
    }

    @Test func bulkBothWaysAtOnce() throws {
        let box = Sandbox()
        let relay = try RelayUnderTest(pair(box))
        let size = 2_000_000
        let up = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let down = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 13) }
        // The "program" echoes nothing: it writes `down` and reads `up` at the same time, each
        // on a thread of its own (plain pipes). The client's TLS session stays on this thread:
        // an OpenSSL session must not be read and written from two threads at once.
        let toRelay = relay.toRelay, fromRelay = relay.fromRelay
        let writer = ThreadRunner { FD.writeAll(toRelay, down) }
        let reader = ThreadRunner { readSome(fromRelay, atLeast: size, within: 60) }
        let client = relay.pair.client
        FD.setNonBlocking(client.fd)
        FD.setNonBlocking(client.outputFD)
        var got: [UInt8] = []
        var sent = 0
        var chunk = [UInt8](repeating: 0, count: 65536)
        let deadline = monotonicSeconds() + 60
        var broken = false
        while (sent < size || got.count < size) && !broken && monotonicSeconds() < deadline {
            var moved = false
            var events: Int16 = 0
            if sent < size {
                switch up.withUnsafeBytes({ client.tryWrite(UnsafeRawBufferPointer(rebasing: $0[sent...])) }) {
                case .success(.done(let n)): sent += n; moved = moved || n > 0
                case .success(.wantRead): events |= Int16(POLLIN)
                case .success(.wantWrite): events |= Int16(POLLOUT)
                case .failure: broken = true
                }
            }
            if got.count < size {
                switch chunk.withUnsafeMutableBytes({ client.tryRead(into: $0) }) {
                case .success(.done(0)): broken = true
                case .success(.done(let n)): got += chunk[0..<n]; moved = true
                case .success(.wantRead): events |= Int16(POLLIN)
                case .success(.wantWrite): events |= Int16(POLLOUT)
                case .failure: broken = true
                }
            }
            if !moved && !broken {
                var p = pollfd(fd: client.fd, events: events == 0 ? Int16(POLLIN) : events, revents: 0)
                _ = poll(&p, 1, 50)
            }
        }
        _ = writer.join()
        let received = reader.join() ?? []
        #expect(sent == size)
        // Compared outside #expect: a failing comparison of megabyte arrays makes the
        // test runner diff them for minutes.
        let downSame = got == down, upSame = received == up
        #expect(downSame, "\(got.count) bytes down, want \(down.count)")
        #expect(upSame, "\(received.count) bytes up, want \(up.count)")
    }
}

@Suite struct PlainRelayTests {
    @Test func plainSocketRelay() throws {
        let (network, peer) = socketPair()
        defer { close(peer) }
        let input = try FD.pipe().get()
        let output = try FD.pipe().get()
        let channel = PlainChannel(socket: network)
        let runner = ThreadRunner {
            let e = TLSRelay.run(channel, clearIn: input.read, clearOut: output.write, idleTimeout: 10)
            close(input.read)
            close(network)
            return e
        }
        FD.writeAll(peer, Array("from network".utf8))
        #expect(readSome(output.read, atLeast: 12) == Array("from network".utf8))
        FD.writeAll(input.write, Array("from program".utf8))
        close(input.write)   // → FIN to the peer
        #expect(readSome(peer, atLeast: 100) == Array("from program".utf8))
        shutdown(peer, Int32(SHUT_WR))
        #expect(readSome(output.read, atLeast: 1).isEmpty)
        close(output.read)
        #expect(runner.join() == .closed)
    }
}
