// Splits multilog's input into lines and runs each through the script: selection, alerts,
// status files, directories.
import Core
import Glibc

/// A `=file` action: the file holds the last selected line, padded with newlines.
struct StatusFile {
    static let size = 1001
    let fd: Int32
    let name: String
}

final class LineProcessor {
    /// Bytes of a line (time stamp included) that patterns, alerts and status files see.
    /// Longer lines still reach the directories whole.
    static let lineLimit = 1000
    /// The reference reads its input 1024 bytes at a time and flushes its directories before
    /// each read; the cut points depend on that, so the replay flushes at the same offsets.
    static let referenceReadSize = 1024
    static let labelLength = 25

    private let actions: [LineAction]
    private let selectsEverything: Bool
    private let stamp: Bool
    private let directories: [LogDirectory]
    private let statusFiles: [StatusFile]
    private let diagnostics: Diagnostics
    private let pauseSeconds: UInt32

    /// Cleared by SIGINT, set again by SIGHUP: lines start deselected while cleared.
    var logging = true

    /// The line so far; 1001 bytes so a status file can be written from it directly.
    private let line: UnsafeMutableRawBufferPointer
    private var length = 0
    /// Copying the part of a line beyond `lineLimit` straight to the selected directories.
    private var continuing = false
    private var selected: [Bool]
    /// The stamp for lines starting in the current read, made on first use.
    private var label: [UInt8] = []

    init(script: MultilogScript, directories: [LogDirectory], statusFiles: [StatusFile],
         diagnostics: Diagnostics, pauseSeconds: UInt32) {
        self.actions = script.lineActions
        self.selectsEverything = script.selectsEverything
        self.stamp = script.timestamp
        self.directories = directories
        self.statusFiles = statusFiles
        self.diagnostics = diagnostics
        self.pauseSeconds = pauseSeconds
        self.selected = [Bool](repeating: false, count: directories.count)
        self.line = .allocate(byteCount: StatusFile.size, alignment: 1)
        line.initializeMemory(as: UInt8.self, repeating: 10)
    }

    deinit { line.deallocate() }

    /// True when the last byte handed in ended a line (or nothing was read yet).
    var atLineBoundary: Bool { length == 0 && !continuing }

    /// One read(2) worth of input.
    func process(_ chunk: UnsafeRawBufferPointer) {
        label.removeAll(keepingCapacity: true)
        let count = chunk.count
        var i = 0
        var boundary = Self.referenceReadSize
        while i < count {
            if i >= boundary {
                for d in directories { d.replayFlush() }
                boundary = (i / Self.referenceReadSize + 1) * Self.referenceReadSize
            }
            let end = min(count, boundary)
            if continuing {
                let rest = UnsafeRawBufferPointer(rebasing: chunk[i..<end])
                let newline = rest.firstIndex(of: 10)
                let tail = UnsafeRawBufferPointer(rebasing: chunk[i..<(newline.map { i + $0 } ?? end)])
                if tail.count > 0 {
                    for (k, d) in directories.enumerated() where selected[k] { d.putEachByte(tail) }
                }
                if let newline {
                    for (k, d) in directories.enumerated() where selected[k] { d.putNewline() }
                    continuing = false
                    i += newline + 1
                } else {
                    i = end
                }
                continue
            }
            if length == 0 && stamp {
                if label.isEmpty { label = TAI64N.now().label + [32] }
                label.withUnsafeBytes { line.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
                length = Self.labelLength + 1
            }
            let window = UnsafeRawBufferPointer(rebasing: chunk[i..<min(end, i + Self.lineLimit - length)])
            if let newline = window.firstIndex(of: 10) {
                append(UnsafeRawBufferPointer(rebasing: window[0..<newline]))
                i += newline + 1
                completeLine(terminated: true)
            } else {
                append(window)
                i += window.count
                if length == Self.lineLimit { completeLine(terminated: false) }
            }
        }
    }

    /// End of input: a partial last line gets its newline.
    func finishInput() {
        if continuing {
            for (k, d) in directories.enumerated() where selected[k] { d.putNewline() }
            continuing = false
        } else if length > 0 {
            completeLine(terminated: true)
        }
    }

    private func append(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        (line.baseAddress! + length).copyMemory(from: base, byteCount: bytes.count)
        length += bytes.count
    }

    /// Runs the script on the line; `terminated` is false for a line cut at `lineLimit`, whose
    /// tail follows.
    private func completeLine(terminated: Bool) {
        let text = UnsafeRawBufferPointer(rebasing: line[0..<length])
        if selectsEverything {
            for k in selected.indices { selected[k] = logging }
        } else {
            var on = logging
            for action in actions {
                switch action {
                case .select(let pattern):
                    if !on && LogPattern.matches(pattern, text) { on = true }
                case .deselect(let pattern):
                    if on && LogPattern.matches(pattern, text) { on = false }
                case .alert:
                    if on { alert(text) }
                case .status(let index):
                    if on { writeStatus(statusFiles[index]) }
                case .directory(let index):
                    selected[index] = on
                }
            }
        }
        for (k, d) in directories.enumerated() where selected[k] {
            d.put(text)
            if terminated { d.putNewline() }
        }
        length = 0
        continuing = !terminated
    }

    /// `e`: the line on stderr, cut to 200 bytes with "..." when longer.
    private func alert(_ text: UnsafeRawBufferPointer) {
        var out = [UInt8]()
        if text.count > 200 {
            out = Array(text[0..<200]) + Array("...\n".utf8)
        } else {
            out = Array(text) + [10]
        }
        FD.writeAll(2, out)  // as the reference: an unwritable stderr loses the alert, not the line
    }

    /// `=file`: the line padded with newlines to 1001 bytes, written over the file's start.
    private func writeStatus(_ file: StatusFile) {
        (line.baseAddress! + length).initializeMemory(as: UInt8.self, repeating: 10, count: StatusFile.size - length)
        while true {
            let n = pwrite(file.fd, line.baseAddress, StatusFile.size, 0)
            if n == StatusFile.size { return }
            if n < 0 && errno == EINTR { continue }
            if n >= 0 { errno = ENOSPC }
            diagnostics.warning("unable to write \(file.name), pausing: \(SystemError.describe(errno))")
            sleepSeconds(pauseSeconds)
        }
    }
}
