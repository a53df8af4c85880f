// supervise/status: our 34-byte encoding, the reference's 21 bytes, djb's 18 bytes.
import Core
import Glibc
import Supervise
import Testing

private let moment = TAI64N(unixSeconds: 1_700_000_000, nanoseconds: 123_456_789)
private let later = TAI64N(unixSeconds: 1_700_000_005, nanoseconds: 1)

@Suite struct ServiceStatusTests {
    @Test(arguments: [
        ServiceStatus(changed: moment, pid: 4242, running: true),
        ServiceStatus(changed: moment, pid: 77, paused: true, want: .down, running: true),
        ServiceStatus(changed: moment, pid: 99, want: .once, running: false),
        ServiceStatus(changed: moment, pid: 99, waitSeconds: -2),
        ServiceStatus(changed: moment, pid: 99, waitSeconds: 30),
        ServiceStatus(changed: moment, pid: 5, running: true, readiness: .pending),
        ServiceStatus(changed: moment, pid: 5, running: true, readiness: .ready(later)),
        ServiceStatus(changed: moment, pid: Int32.max, running: true),
    ])
    func roundTrips(_ status: ServiceStatus) throws {
        let bytes = status.encoded()
        #expect(bytes.count == ServiceStatus.encodedSize)
        let decoded = try ServiceStatus.decode(bytes).get()
        #expect(decoded == status)
    }

    @Test func referenceLayoutBytes() {
        let status = ServiceStatus(changed: moment, pid: 0x0102_0304, paused: true, want: .down,
                                   waitSeconds: 7, running: true, readiness: .ready(later))
        let bytes = status.encoded()
        #expect(Array(bytes[0..<12]) == moment.packed)           // TAI64N, big-endian
        #expect(Array(bytes[12..<16]) == [0x04, 0x03, 0x02, 0x01])     // pid, little-endian
        #expect(bytes[16] == 1)                                         // paused
        #expect(bytes[17] == UInt8(ascii: "d"))                         // want
        #expect(Array(bytes[18..<20]) == [7, 0])                        // int16, host (x86: LE)
        #expect(bytes[20] == 1)                                         // running
        #expect(bytes[21] == 2)                                         // ready
        #expect(Array(bytes[22..<34]) == later.packed)
    }

    @Test func pausedIsOnlyWrittenWhileRunning() {
        let status = ServiceStatus(changed: moment, pid: 9, paused: true, running: false)
        #expect(status.encoded()[16] == 0)
    }

    @Test func readsTheReference21ByteFileWithoutTrailer() throws {
        let full = ServiceStatus(changed: moment, pid: 321, want: .down, waitSeconds: -2,
                                 running: false, readiness: .pending).encoded()
        let decoded = try ServiceStatus.decode(Array(full.prefix(21))).get()
        #expect(decoded.pid == 321)
        #expect(decoded.want == .down)
        #expect(decoded.waitSeconds == -2)
        #expect(!decoded.running)
        #expect(decoded.readiness == .notTracked)
    }

    /// Bytes written by Debian's daemontools supervise (captured from a real run).
    @Test func readsDjbStatusUp() throws {
        let bytes: [UInt8] = [0x40, 0, 0, 0, 0x6b, 0x04, 0x1e, 0x95, 0x1d, 0x66, 0x50, 0x54,
                              0xc9, 0x78, 0, 0, 0, 0x75]
        let status = try ServiceStatus.decode(bytes).get()
        #expect(status.pid == 30921)
        #expect(status.running)
        #expect(!status.paused)
        #expect(status.want == .up)
        #expect(status.waitSeconds == 0)
        #expect(status.readiness == .notTracked)
        #expect(status.changed.seconds == 0x4000_0000_6b04_1e95)
        #expect(status.changed.nanoseconds == 0x1d66_5054)
    }

    @Test func readsDjbStatusPausedAndDown() throws {
        var paused: [UInt8] = [0x40, 0, 0, 0, 0x6b, 0x04, 0x1e, 0x95, 0x1d, 0x66, 0x50, 0x54,
                               0xc9, 0x78, 0, 0, 1, 0x75]
        #expect(try ServiceStatus.decode(paused).get().paused)
        // djb writes pid 0 when the service is down.
        paused = [0x40, 0, 0, 0, 0x6b, 0x04, 0x1e, 0x97, 0x00, 0x7a, 0x2f, 0x4c, 0, 0, 0, 0, 0, 0x64]
        let down = try ServiceStatus.decode(paused).get()
        #expect(down.pid == 0)
        #expect(!down.running)
        #expect(down.want == .down)
    }

    @Test(arguments: [0, 1, 12, 17, 19, 20])
    func rejectsBadLengths(_ length: Int) {
        let bytes = [UInt8](repeating: 0x40, count: length)
        #expect(ServiceStatus.decode(bytes) == .failure(.tooShort(length)))
    }

    @Test func acceptsPartialTrailerAsUntracked() throws {
        let full = ServiceStatus(changed: moment, pid: 5, running: true, readiness: .ready(later)).encoded()
        let cut = try ServiceStatus.decode(Array(full.prefix(25))).get()
        #expect(cut.readiness == .notTracked)
        #expect(cut.running)
    }

    @Test func unknownWantByteReadsAsUp() throws {
        var bytes = ServiceStatus(changed: moment, pid: 5, running: true).encoded()
        bytes[17] = UInt8(ascii: "?")
        #expect(try ServiceStatus.decode(bytes).get().want == .up)
    }

    @Test func readsFilesAndReportsErrors() throws {
        var template = Array("/tmp/status-test.XXXXXX".utf8CString)
        let dir = try #require(template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }.map { String(cString: $0) })
        defer { _ = unlink(dir + "/status"); _ = unlink(dir + "/short"); _ = rmdir(dir) }
        let status = ServiceStatus(changed: moment, pid: 12, running: true, readiness: .pending)
        let fd = open(dir + "/status", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        FD.writeAll(fd, status.encoded())
        close(fd)
        #expect(try ServiceStatus.read(dir + "/status").get() == status)

        let short = open(dir + "/short", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        FD.writeAll(short, [1, 2, 3])
        close(short)
        #expect(ServiceStatus.read(dir + "/short") == .failure(.format(.tooShort(3))))

        guard case .failure(.system(let e)) = ServiceStatus.read(dir + "/missing") else {
            Issue.record("missing file should be a system error")
            return
        }
        #expect(e.errno == ENOENT)
    }
}

extension ServiceStatus: CustomTestStringConvertible {
    public var testDescription: String {
        "pid \(pid) running \(running) want \(want) wait \(waitSeconds) readiness \(readiness)"
    }
}
