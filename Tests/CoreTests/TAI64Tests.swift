// TAI64N labels: known vectors, the tai64nlocal parser's quirks, and Debian's tai64n tools.
import Core
import Foundation
import Glibc
import Testing

@Suite("TAI64N")
struct TAI64Tests {
    static let known = "@400000003d6387281f8fa4ac"

    @Test("the reference vector parses to unix 1029932830.529507500")
    func knownVector() throws {
        let (moment, end) = try #require(TAI64N.parseLabel(bytes(Self.known)))
        #expect(end == 25)
        #expect(moment.seconds == 0x4000_0000_3d63_8728)
        #expect(moment.nanoseconds == 529_507_500)
        #expect(moment.unixSeconds == 1_029_932_830)
        #expect(moment.unixTimeString == "1029932830.529507500")
        #expect(moment.labelString == Self.known)
        #expect(moment == TAI64N(unixSeconds: 1_029_932_830, nanoseconds: 529_507_500))
        #expect(moment.packed == [0x40, 0, 0, 0, 0x3d, 0x63, 0x87, 0x28, 0x1f, 0x8f, 0xa4, 0xac])
    }

    @Test("the unix epoch is 2^62 + 10")
    func epoch() {
        let epoch = TAI64N(unixSeconds: 0)
        #expect(epoch.seconds == 0x4000_0000_0000_000a)
        #expect(epoch.labelString == "@400000000000000a00000000")
        #expect(epoch.unixTimeString == "000000000.000000000")
        #expect(TAI64N(unixSeconds: 5, nanoseconds: 7).unixTimeString == "000000005.000000007")
        #expect(TAI64N(unixSeconds: -5).unixTimeString == "-000000005.000000000")
        #expect(TAI64N(unixSeconds: -5).unixSeconds == -5)
    }

    @Test("packed and label forms round-trip")
    func roundTrips() throws {
        var generator = SeededGenerator(seed: 64)
        for _ in 0..<2000 {
            let moment = TAI64N(seconds: UInt64.random(in: 0...UInt64.max, using: &generator),
                                nanoseconds: UInt32.random(in: 0...999_999_999, using: &generator))
            let packed = moment.packed
            #expect(packed.count == 12)
            #expect(TAI64N(packed: packed) == moment)
            // Only the first 12 bytes count.
            #expect(TAI64N(packed: packed + [1, 2, 3]) == moment)
            let label = moment.label
            #expect(label.count == 25)
            let parsed = try #require(TAI64N.parseLabel(label))
            #expect(parsed.0 == moment)
            #expect(parsed.1 == 25)
        }
        #expect(TAI64N(packed: [UInt8](repeating: 0, count: 11)) == nil)
        #expect(TAI64N(packed: [UInt8]()) == nil)
        // Packed input from a slice (as read out of a status file) works too.
        let status = [0xaa] + TAI64N(unixSeconds: 77).packed + [0xbb]
        #expect(TAI64N(packed: status[1...])?.unixSeconds == 77)
    }

    @Test("parseLabel: '@' required, lowercase hex only, returns where the digits end")
    func parserStops() throws {
        #expect(TAI64N.parseLabel(bytes("")) == nil)
        #expect(TAI64N.parseLabel(bytes("400000003d6387281f8fa4ac")) == nil)
        #expect(TAI64N.parseLabel(bytes(" @400000003d6387281f8fa4ac")) == nil)

        let bare = try #require(TAI64N.parseLabel(bytes("@")))
        #expect(bare.0 == TAI64N(seconds: 0, nanoseconds: 0))
        #expect(bare.1 == 1)

        // Uppercase stops the scan: nine digits "400000003" (36 bits), then 'D'.
        let upper = try #require(TAI64N.parseLabel(bytes("@400000003D6387281F8FA4AC rest")))
        #expect(upper.1 == 10)
        #expect(upper.0 == TAI64N(seconds: 0x4, nanoseconds: 0x3))
        let allUpper = try #require(TAI64N.parseLabel(bytes("@ABCDEF")))
        #expect(allUpper.1 == 1)
        #expect(allUpper.0 == TAI64N(seconds: 0, nanoseconds: 0))

        // Any other byte stops it too; the index points at that byte.
        let line = bytes(Self.known + " hello")
        let withRest = try #require(TAI64N.parseLabel(line))
        #expect(withRest.1 == 25)
        #expect(Array(line[withRest.1...]) == bytes(" hello"))
        let short = try #require(TAI64N.parseLabel(bytes("@1g")))
        #expect(short.0 == TAI64N(seconds: 0, nanoseconds: 1))
        #expect(short.1 == 2)

        // Works on slices: the returned index is an index of the slice.
        let framed = bytes("xx" + Self.known + ":")
        let slice = framed[2...]
        let parsed = try #require(TAI64N.parseLabel(slice))
        #expect(parsed.1 == 27)
        #expect(framed[parsed.1] == UInt8(ascii: ":"))
        #expect(parsed.0.unixSeconds == 1_029_932_830)
    }

    @Test("digits past 24 keep shifting the 96-bit value left, as djb's code does")
    func extraDigits() throws {
        // 25 digits: the leading '4' falls off the top; the new digit enters the nanoseconds.
        let (moment, end) = try #require(TAI64N.parseLabel(bytes(Self.known + "5 x")))
        #expect(end == 26)
        #expect(moment.seconds == 0x0000_0003_d638_7281)
        #expect(moment.nanoseconds == 0xf8fa_4ac5)
        // 32 digits: only the last 24 remain.
        let (long, longEnd) = try #require(TAI64N.parseLabel(bytes("@12345678" + String(Self.known.dropFirst()))))
        #expect(longEnd == 33)
        #expect(long.labelString == Self.known)
    }

    @Test("unixTimeString of extreme labels does not trap")
    func extremeUnixTime() throws {
        // seconds - (2^62 + 10) == Int64.min: the magnitude does not fit an Int.
        let (lowest, _) = try #require(TAI64N.parseLabel(bytes("@c00000000000000a00000000")))
        #expect(lowest.unixSeconds == Int64.min)
        #expect(lowest.unixTimeString == "-9223372036854775808.000000000")
        let (highest, _) = try #require(TAI64N.parseLabel(bytes("@c000000000000009ffffffff")))
        #expect(highest.unixSeconds == Int64.max)
        #expect(highest.unixTimeString == "9223372036854775807.4294967295")
        // localtime cannot represent these: no text rather than a bogus date.
        #expect(lowest.localTimeString == nil)
        #expect(highest.localTimeString == nil)
        #expect(TAI64N(seconds: 0, nanoseconds: 0).localTimeString == nil)
    }

    @Test("ordering follows seconds, then nanoseconds")
    func ordering() {
        let a = TAI64N(unixSeconds: 10, nanoseconds: 999_999_999)
        let b = TAI64N(unixSeconds: 11, nanoseconds: 0)
        let c = TAI64N(unixSeconds: 11, nanoseconds: 1)
        #expect(a < b && b < c && !(c < a))
        #expect([c, a, b].sorted() == [a, b, c])
    }

    @Test("localTimeString in UTC matches an independent conversion and Debian's tai64nlocal")
    func localTimeInUTC() throws {
        let (moment, _) = try #require(TAI64N.parseLabel(bytes(Self.known)))
        let expected = "2002-08-21 12:27:10.529507500"

        // Independent check of the expected text with Foundation's calendar arithmetic.
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = try #require(TimeZone(identifier: "UTC"))
        let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second],
                                            from: Date(timeIntervalSince1970: 1_029_932_830))
        #expect([parts.year, parts.month, parts.day, parts.hour, parts.minute, parts.second]
                == [2002, 8, 21, 12, 27, 10])

        // The reference tool agrees.
        let dir = try TempDir(); defer { dir.remove() }
        let tool = try requireTool("/usr/bin/tai64nlocal", package: "daemontools")
        try writeFile(dir.file("in"), Self.known + " hello\n")
        let peer = try runTool(tool, [], stdinPath: dir.file("in"), environment: ["TZ": "UTC"])
        #expect(peer.status == 0)
        #expect(peer.stdoutText == expected + " hello\n")

        // TZ is process-wide and other tests run on other threads: change it in a child only.
        _ = moment.localTimeString == expected  // warm up in the parent (see inForkedChild)
        let status = inForkedChild {
            setenv("TZ", "UTC", 1)
            tzset()
            return moment.localTimeString == expected ? 0 : 1
        }
        #expect(status == .exited(0), "localTimeString under TZ=UTC is not \(expected)")
    }

    @Test("now() labels look like Debian tai64n's and agree on the time")
    func nowMatchesTai64n() throws {
        let tool = try requireTool("/usr/bin/tai64n", package: "daemontools")
        let dir = try TempDir(); defer { dir.remove() }
        try writeFile(dir.file("in"), "x\n")
        let before = TAI64N.now()
        let peer = try runTool(tool, [], stdinPath: dir.file("in"))
        let after = TAI64N.now()
        #expect(peer.status == 0)

        let format = /@[0-9a-f]{24}/
        let output = peer.stdoutText
        #expect(output.wholeMatch(of: /@[0-9a-f]{24} x\n/) != nil, "unexpected tai64n output \(output)")
        #expect(before.labelString.wholeMatch(of: format) != nil)
        #expect(after.labelString.wholeMatch(of: format) != nil)

        let (theirs, end) = try #require(TAI64N.parseLabel(peer.stdout))
        #expect(end == 25)
        #expect(theirs.unixSeconds >= before.unixSeconds - 3 && theirs.unixSeconds <= after.unixSeconds + 3)
        #expect(theirs.nanoseconds < 1_000_000_000)
        #expect(before <= after)
    }
}
