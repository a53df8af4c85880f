// Where `current` is cut: the replay of the reference's 512-byte buffer and write callback.
import Testing
@testable import Supervise

/// A stream held in memory; records the offsets at which `current` was finished.
final class RecordingSink: CutterSink {
    var stream: [UInt8] = []
    var cuts: [Int] = []

    func lastNewline(from start: Int, count: Int) -> Int? {
        stream[start..<(start + count)].lastIndex(of: 10)
    }
    func byte(at offset: Int) -> UInt8 { stream[offset] }
    func rotate(at offset: Int) { cuts.append(offset) }
}

@Suite struct CurrentFileCutterTests {
    /// Puts each line as the reference does (text, then the newline) with a flush every
    /// 1024 bytes of input; returns the cut offsets.
    func cuts(lines: [Int], limit: Int?) -> (cuts: [Int], cutter: CurrentFileCutter, sink: RecordingSink) {
        let sink = RecordingSink()
        var cutter = CurrentFileCutter(limit: limit, bytes: 0)
        var inputOffset = 0
        var nextFlush = 1024
        for length in lines {
            sink.stream += [UInt8](repeating: UInt8(ascii: "x"), count: length)
            cutter.put(length, sink)
            sink.stream.append(10)
            cutter.put(1, sink)
            inputOffset += length + 1
            while inputOffset >= nextFlush {
                cutter.flush(sink)
                nextFlush += 1024
            }
        }
        cutter.flush(sink)
        return (sink.cuts, cutter, sink)
    }

    @Test func unlimitedNeverCuts() {
        let r = cuts(lines: [Int](repeating: 99, count: 2000), limit: nil)
        #expect(r.cuts.isEmpty)
        #expect(r.cutter.bytes == 200_000)
        #expect(r.cutter.written == 200_000)
    }

    @Test func cutsFallOnLineEndsNearTheLimit() {
        let r = cuts(lines: [Int](repeating: 99, count: 500), limit: 4096)
        #expect(!r.cuts.isEmpty)
        var previous = 0
        for cut in r.cuts {
            // Every piece ends with a newline, after at least limit-2000 bytes, within the limit.
            #expect(r.sink.stream[cut - 1] == 10)
            #expect(cut - previous >= 4096 - 2000)
            #expect(cut - previous <= 4096)
            previous = cut
        }
    }

    /// Lines longer than the buffer put one chunk straight through; the cut is at the
    /// first newline past limit-2000.
    @Test func longLinesCutAtTheFirstLineEndPastTheMargin() {
        let r = cuts(lines: [Int](repeating: 599, count: 10), limit: 4096)
        // 600-byte lines: ends at 600, 1200, 1800, 2400 (>= 2096): cut there.
        #expect(r.cuts.first == 2400)
    }

    @Test func aLineLongerThanTheLimitIsSplitAtTheLimit() {
        let sink = RecordingSink()
        var cutter = CurrentFileCutter(limit: 4096, bytes: 0)
        sink.stream = [UInt8](repeating: 120, count: 10000) + [10]
        // The tail of an overlong line arrives byte by byte in the reference.
        cutter.put(1000, sink)
        cutter.putEachByte(9000, sink)
        cutter.put(1, sink)
        cutter.flush(sink)
        #expect(sink.cuts == [4096, 8192])
        #expect(cutter.bytes == 10001 - 8192)
    }

    @Test func resumedCurrentOverTheLimitIsCutBeforeTheNextWrite() {
        let sink = RecordingSink()
        var cutter = CurrentFileCutter(limit: 4096, bytes: 5000)
        sink.stream = Array("hello\n".utf8)
        cutter.put(6, sink)
        cutter.flush(sink)
        #expect(sink.cuts == [0])
        #expect(cutter.bytes == 6)
    }

    @Test func forcedRotationOnlyWhenNonEmpty() {
        let sink = RecordingSink()
        var cutter = CurrentFileCutter(limit: nil, bytes: 0)
        cutter.rotateNow(sink)
        #expect(sink.cuts.isEmpty)
        sink.stream = Array("a\n".utf8)
        cutter.put(2, sink)
        cutter.rotateNow(sink)
        #expect(sink.cuts == [2])
        #expect(cutter.bytes == 0)
        #expect(cutter.buffered == 0)
    }

    @Test func bufferHoldsUpTo512Bytes() {
        let sink = RecordingSink()
        var cutter = CurrentFileCutter(limit: nil, bytes: 0)
        sink.stream = [UInt8](repeating: 120, count: 2000)
        cutter.put(500, sink)
        #expect(cutter.buffered == 500 && cutter.written == 0)
        cutter.put(12, sink)
        #expect(cutter.buffered == 512 && cutter.written == 0)
        cutter.put(1, sink)
        #expect(cutter.buffered == 1 && cutter.written == 512)
        cutter.put(600, sink)  // more than the buffer: flushed, then passed straight through
        #expect(cutter.buffered == 0 && cutter.written == 1113)
        cutter.putEachByte(700, sink)
        #expect(cutter.buffered == 188 && cutter.written == 1625)
    }
}
