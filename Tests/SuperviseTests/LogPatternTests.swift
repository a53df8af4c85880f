// multilog's pattern matcher: the reference's star rules, including its odd corners.
import Testing
@testable import Supervise

@Suite struct LogPatternTests {
    func m(_ pattern: String, _ line: String) -> Bool {
        LogPattern.matches(Array(pattern.utf8), Array(line.utf8))
    }

    @Test func literalsMatchWholeLinesOnly() {
        #expect(m("hello", "hello"))
        #expect(!m("hello", "hello world"))
        #expect(!m("hello", "hell"))
        #expect(m("", ""))
        #expect(!m("", "x"))
    }

    @Test func trailingStarMatchesAnything() {
        #expect(m("*", ""))
        #expect(m("*", "anything at all"))
        #expect(m("STAT*", "STAT"))
        #expect(m("STAT*", "STAT 1 2 3"))
        #expect(!m("STAT*", "STA"))
    }

    @Test func starStopsAtTheFirstOccurrenceOfTheNextByte() {
        // The manual's example: the first star may not run past "]".
        #expect(m("named[*]: Cleaned cache *", "named[135]: Cleaned cache of 3121 RRs"))
        #expect(m("* fatal: *", "@400000003b4a39c23294b13c fatal: out of memory"))
        #expect(!m("* fatal: *", "fatal: no stamp"))
        // No backtracking: the star stops at the first "a", so "baa" is not "*a".
        #expect(m("*a", "ba"))
        #expect(!m("*a", "baa"))
        #expect(!m("*x", "abc"))
        #expect(m("a*c", "abbbc"))
        #expect(!m("a*c", "abcbc"))
        #expect(m("*b*", "aaabccc"))
    }

    @Test func twoStarsNeedALiteralStar() {
        // After a star comes "*": the first star runs to a literal "*", the second then starts.
        #expect(!m("**", "abc"))
        #expect(m("**", "ab*c"))
        #expect(m("**x", "a*bx"))
        #expect(!m("**x", "abx"))
    }

    @Test func binaryBytesAreOrdinary() {
        let line: [UInt8] = [0, 1, 0xff, 10, 0]
        #expect(LogPattern.matches([UInt8(ascii: "*")], line))
        #expect(LogPattern.matches([0, UInt8(ascii: "*"), 10, UInt8(ascii: "*")], line))
        #expect(!LogPattern.matches([0, 1], line))
    }

    /// A slow but obviously right matcher for the same rules, to compare on random input.
    func model(_ p: ArraySlice<UInt8>, _ l: ArraySlice<UInt8>) -> Bool {
        guard let c = p.first else { return l.isEmpty }
        if c == 42 {
            guard p.count > 1 else { return true }
            let next = p[p.startIndex + 1]
            guard let stop = l.firstIndex(of: next) else { return false }
            return model(p.dropFirst(), l[stop...])
        }
        guard let first = l.first, first == c else { return false }
        return model(p.dropFirst(), l.dropFirst())
    }

    @Test func agreesWithAModelOnRandomInput() {
        var state: UInt64 = 42
        func next(_ n: Int) -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int((state >> 33) % UInt64(n))
        }
        let alphabet: [UInt8] = Array("ab*".utf8)
        for _ in 0..<20000 {
            let p = (0..<next(6)).map { _ in alphabet[next(3)] }
            let l = (0..<next(8)).map { _ in alphabet[next(3)] }
            #expect(LogPattern.matches(p, l) == model(p[...], l[...]), "pattern \(p) line \(l)")
        }
    }
}
