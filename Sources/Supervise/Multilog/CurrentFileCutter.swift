// Where a log directory's `current` is cut: the reference's write path, replayed on offsets.
//
// The reference decides rotation inside the write callback of a 512-byte output buffer: a
// write that brings `current` within 2000 bytes of the size limit is shortened to its last
// newline and, if it then ends on a newline, `current` is finished. Which newline that is
// depends on how the 512-byte buffer chunked the stream, so to cut at the same lines we
// replay that buffer here, on stream offsets only. The real writes are batched elsewhere
// (one write per 64 KiB instead of one per 512 bytes); only the cut points come from here.

/// What the replay needs from the log directory: the stream bytes it has not written yet,
/// and a way to finish `current`.
public protocol CutterSink: AnyObject {
    /// Stream offset of the last newline among the `count` bytes starting at `start`, or nil.
    func lastNewline(from start: Int, count: Int) -> Int?
    /// The stream byte at `offset` (an offset the cutter has not passed on to rotate yet).
    func byte(at offset: Int) -> UInt8
    /// `current` is complete: the bytes before stream offset `offset` belong to it, the rest
    /// go to a new `current`.
    func rotate(at offset: Int)
}

/// The reference's output buffer and write callback for one directory, on offsets.
public struct CurrentFileCutter: Sendable {
    /// Size of the reference's per-directory output buffer.
    public static let bufferSize = 512
    /// Largest piece its buffer library hands to the write callback at once.
    public static let largestPiece = 8192
    /// A write that ends on a newline this close to the limit finishes `current`.
    public static let margin = 2000

    /// Size limit of `current`; nil: unlimited.
    public let limit: Int?
    /// Bytes in `current`, as the reference counts them.
    public private(set) var bytes: Int
    /// Bytes sitting in the replayed 512-byte buffer.
    public private(set) var buffered = 0
    /// Stream offset of the first byte that has not been through the write callback.
    public private(set) var written: Int

    public init(limit: Int?, bytes: Int, streamOffset: Int = 0) {
        self.limit = limit
        self.bytes = bytes
        self.written = streamOffset
    }

    /// Offset just past the last byte put.
    public var streamEnd: Int { written + buffered }

    /// `count` more bytes were put in one call (the reference's substdio_put).
    public mutating func put<Sink: CutterSink>(_ count: Int, _ sink: Sink) {
        guard count > 0 else { return }
        if count <= Self.bufferSize - buffered {
            buffered += count
            return
        }
        flush(sink)
        var left = count
        while left > Self.bufferSize {
            let piece = min(Self.largestPiece, left)
            writeAll(piece, sink)
            left -= piece
        }
        buffered = left
    }

    /// `count` more bytes were put one at a time (the tail of a line over 1000 bytes).
    public mutating func putEachByte<Sink: CutterSink>(_ count: Int, _ sink: Sink) {
        var left = count
        while left > 0 {
            if buffered == Self.bufferSize { flush(sink) }
            let take = min(left, Self.bufferSize - buffered)
            buffered += take
            left -= take
        }
    }

    /// The buffer is flushed (the reference does this before every read of its input).
    public mutating func flush<Sink: CutterSink>(_ sink: Sink) {
        guard buffered > 0 else { return }
        let count = buffered
        buffered = 0
        writeAll(count, sink)
    }

    /// Forced rotation (SIGALRM, timed rotation): flush, then finish `current` if non-empty.
    public mutating func rotateNow<Sink: CutterSink>(_ sink: Sink) {
        flush(sink)
        if bytes > 0 {
            sink.rotate(at: written)
            bytes = 0
        }
    }

    private mutating func writeAll<Sink: CutterSink>(_ count: Int, _ sink: Sink) {
        var left = count
        while left > 0 { left -= write(left, sink) }
    }

    /// The reference's write callback: returns how many of `count` bytes it took.
    private mutating func write<Sink: CutterSink>(_ count: Int, _ sink: Sink) -> Int {
        var length = count
        if let limit {
            if bytes >= limit {
                sink.rotate(at: written)
                bytes = 0
            }
            length = min(length, limit - bytes)
            if bytes + length >= limit - Self.margin, let newline = sink.lastNewline(from: written, count: length) {
                length = newline - written + 1
            }
        }
        written += length
        bytes += length
        if let limit, bytes >= limit - Self.margin, sink.byte(at: written - 1) == 10 {
            sink.rotate(at: written)
            bytes = 0
        }
        return length
    }
}
