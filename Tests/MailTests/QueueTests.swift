// The queue library's pure parts: split paths, envelopes in both formats, exit codes,
// the Received line.
import Core
import Glibc
import Mail
import Testing

@Suite("Queue layout and selection")
struct QueueLayoutTests {
    @Test("split rule: d/<id mod split>/<id> in split areas, d/<id> elsewhere")
    func splitPaths() {
        let q = QueueLayout(directory: "/q", split: 151, bigTodo: false)
        #expect(q.relativePath(.mess, 3016451) == "mess/75/3016451")  // the wiki's worked example
        #expect(q.relativePath(.info, 151) == "info/0/151")
        #expect(q.relativePath(.todo, 3016451) == "todo/3016451")
        #expect(q.relativePath(.intd, 7) == "intd/7")
        #expect(q.relativePath(.bounce, 3016451) == "bounce/3016451")
        #expect(q.path(.local, 152) == "/q/local/1/152")
        let big = QueueLayout(directory: "/q", split: 23, bigTodo: true)
        #expect(big.relativePath(.todo, 100) == "todo/8/100")
        #expect(big.relativePath(.intd, 100) == "intd/8/100")
        #expect(big.relativePath(.bounce, 100) == "bounce/100")
    }

    @Test("CONFSPLIT and BIGTODO: reference defaults, clamping, leading-number parsing")
    func environment() {
        let none = QueueLayout(directory: "q", environment: Environment())
        #expect(none.split == 151 && none.bigTodo)
        let set = QueueLayout(directory: "q", environment: Environment([("CONFSPLIT", "23"), ("BIGTODO", "0")]))
        #expect(set.split == 23 && !set.bigTodo)
        #expect(QueueLayout(directory: "q", environment: Environment([("CONFSPLIT", "500")])).split == 151)
        #expect(QueueLayout(directory: "q", environment: Environment([("CONFSPLIT", "0")])).split == 151)
        #expect(QueueLayout(directory: "q", environment: Environment([("CONFSPLIT", "-4")])).split == 151)
        #expect(QueueLayout(directory: "q", environment: Environment([("CONFSPLIT", "7x")])).split == 7)
        #expect(!QueueLayout(directory: "q", environment: Environment([("BIGTODO", "no")])).bigTodo)
        #expect(QueueLayout.leadingNumber("99999999999999999999999") == Int.max)
    }

    @Test("multi-queue: QUEUEDIR wins, else QUEUE_BASE/queue<START + r mod COUNT>")
    func selection() {
        #expect(QueueSelection.queueDirectory(environment: Environment([("QUEUEDIR", "/x")]), random: 5) == .success("/x"))
        let env = Environment([("QUEUE_BASE", "/b"), ("QUEUE_START", "3"), ("QUEUE_COUNT", "4")])
        #expect(QueueSelection.queueDirectory(environment: env, random: 5) == .success("/b/queue4"))
        #expect(QueueSelection.queueDirectory(environment: env, random: 7) == .success("/b/queue6"))
        let defaults = Environment([("QUEUE_BASE", "/b")])
        #expect(QueueSelection.queueDirectory(environment: defaults, random: 12) == .success("/b/queue3"))
        let zero = Environment([("QUEUE_BASE", "/b"), ("QUEUE_COUNT", "0")])
        #expect(QueueSelection.queueDirectory(environment: zero, random: 12345) == .success("/b/queue1"))
        for r in [UInt32(0), 1, 99, .max] {
            let n = QueueSelection.queueNumber(environment: defaults, random: r)
            #expect((1...10).contains(n))
        }
    }
}

@Suite("Envelope")
struct EnvelopeTests {
    func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

    @Test("client format round trip, empty sender, no recipients")
    func roundTrip() {
        let e = Envelope(sender: "a@b", recipients: ["c@d", "e@f"])
        #expect(e.clientBytes == bytes("Fa@b\0Tc@d\0Te@f\0\0"))
        #expect(Envelope.parse(e.clientBytes) == .success(e))
        #expect(Envelope.parse(bytes("F\0\0")) == .success(Envelope(sender: [], recipients: [])))
        #expect(Envelope.parse(bytes("F\0T\0\0")) == .success(Envelope(sender: [], recipients: [[]])))
        // Nothing after the final NUL is read.
        #expect(Envelope.parse(bytes("Fa\0\0garbage")) == .success(Envelope(sender: "a", recipients: [])))
    }

    @Test("errors as the reference decides them: 79, 11, 54")
    func errors() {
        #expect(Envelope.parse(bytes("Ta@b\0\0")) == .failure(.format))
        #expect(Envelope.parse(bytes("Fa@b\0Xc@d\0\0")) == .failure(.format))
        #expect(Envelope.parse(bytes("Fa@b\0b\0Tc\0\0")) == .failure(.format))  // NUL inside the sender
        #expect(Envelope.parse(bytes("Fa@b\0Tc@d\0")) == .failure(.truncated))
        #expect(Envelope.parse(bytes("Fa@b")) == .failure(.truncated))
        #expect(Envelope.parse([]) == .failure(.truncated))
        let max = [UInt8](repeating: 0x61, count: 1002)
        #expect(Envelope.parse([0x46] + max + [0, 0]) == .success(Envelope(sender: max, recipients: [])))
        #expect(Envelope.parse([0x46] + max + [0x61, 0, 0]) == .failure(.addressTooLong))
        #expect(Envelope.parse(bytes("F\0T") + max + [0x61, 0, 0]) == .failure(.addressTooLong))
        #expect(EnvelopeError.format.exitCode == 79)
        #expect(EnvelopeError.addressTooLong.exitCode == 11)
        #expect(EnvelopeError.truncated.exitCode == 54)
    }

    @Test("on-disk format: u p F T… e, no trailing empty record; parse back")
    func queued() {
        let q = QueuedEnvelope(uid: 0, pid: 1234, envelope: Envelope(sender: "a@b", recipients: ["c@d"]),
                               extraHeaders: QueuedEnvelope.extraHeaderRecord(bytes("X-A: 1")))
        #expect(q.bytes == bytes("u0\0p1234\0Fa@b\0Tc@d\0eX-A: 1\n\0"))
        #expect(QueuedEnvelope.parse(q.bytes) == .success(q))
        #expect(QueuedEnvelope.extraHeaderRecord(bytes("")) == nil)
        #expect(QueuedEnvelope.extraHeaderRecord(bytes("X: y\n")) == bytes("X: y\n"))
        #expect(QueuedEnvelope.parse(bytes("u0\0p1\0Fa\0Zx\0")) == .failure(.unknownRecord(0x5A)))
        #expect(QueuedEnvelope.parse(bytes("u0\0p1\0Fa")) == .failure(.unterminated))
        #expect(QueuedEnvelope.parse(bytes("ux\0Fa\0")) == .failure(.badNumber))
        #expect(QueuedEnvelope.parse(bytes("u1\0")) == .failure(.missingSender))
    }

    @Test("property: random bytes give a value or an error, never a crash; values re-encode")
    func fuzz() {
        var rng = SplitMix(seed: 0x5eed)
        let alphabet: [UInt8] = [0, 0, 0x46, 0x54, 0x61, 0x40, 0x51, 0xff]
        for round in 0..<20000 {
            let count = Int(rng.next() % 64)
            var input: [UInt8] = (0..<count).map { _ in
                round % 2 == 0 ? alphabet[Int(rng.next() % UInt64(alphabet.count))] : UInt8(truncatingIfNeeded: rng.next())
            }
            if round % 100 == 0 { input = [0x46] + [UInt8](repeating: 0x62, count: Int(rng.next() % 1100)) + [0, 0] }
            switch Envelope.parse(input) {
            case .success(let e):
                // The parsed value is the prefix the reader consumed.
                #expect(Array(input.prefix(e.clientBytes.count)) == e.clientBytes)
            case .failure: break
            }
            if case .success(let q) = QueuedEnvelope.parse(input) {
                #expect(QueuedEnvelope.parse(q.bytes) == .success(q))
            }
        }
    }
}

struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }
}

@Suite("Queue exit codes")
struct QueueExitTests {
    @Test("permanent 11–40 and 115, everything else non-zero temporary")
    func classes() {
        for code in Int32(0)...255 {
            let perm = code == 115 || (11...40).contains(code)
            #expect(QueueExit.isPermanent(code) == perm)
            #expect(QueueExit.isTemporary(code) == (code != 0 && !perm))
            let text = QueueExit.replyText(for: code)
            if code != 0 { #expect(text.hasPrefix(perm ? "Dqq " : "Zqq ")) }
        }
    }

    @Test("the reference's texts for the codes qmail-queue emits")
    func texts() {
        #expect(QueueExit.replyText(for: 11) == "Dqq envelope address too long (#5.1.3)")
        #expect(QueueExit.replyText(for: 20) == "Dqq permanent problem (#5.3.0)")
        #expect(QueueExit.replyText(for: 52) == "Zqq timeout (#4.3.0)")
        #expect(QueueExit.replyText(for: 54) == "Zqq read error (#4.3.0)")
        #expect(QueueExit.replyText(for: 79) == "Zqq envelope format error (#4.3.0)")
        #expect(QueueExit.replyText(for: 88, custom: "Dsorry (#5.0.0)") == "Dsorry (#5.0.0)")
        #expect(QueueExit.replyText(for: 88, custom: "") == "Zqq temporary problem (#4.3.0)")
        #expect(QueueExit.replyText(for: 200) == "Zqq temporary problem (#4.3.0)")
        #expect(QueueExit.envelopeFormat.rawValue == 79 && QueueExit.pidFile.rawValue == 70)
    }

    @Test("sync policy: fsync by default, USE_FSYNC=0 off, USE_FDATASYNC selects fdatasync")
    func syncPolicy() {
        #expect(QueueSyncPolicy(environment: Environment()) == .fsync)
        #expect(QueueSyncPolicy(environment: Environment([("USE_FSYNC", "")])) == .fsync)
        #expect(QueueSyncPolicy(environment: Environment([("USE_FSYNC", "0")])) == .none)
        #expect(QueueSyncPolicy(environment: Environment([("USE_FDATASYNC", "1")])) == .fdatasync)
        #expect(QueueSyncPolicy(environment: Environment([("USE_FDATASYNC", "0")])) == .fsync)
    }
}

@Suite("Received header")
struct ReceivedHeaderTests {
    @Test("forms: user with and without network, alias, bounce, hidden host")
    func forms() {
        let d = "1 Jan 2024 00:00:00 +0000\n"
        func text(_ h: ReceivedHeader) -> String { String(decoding: h.bytes, as: UTF8.self) }
        #expect(text(ReceivedHeader(pid: 7, host: "h", origin: .user(uid: 5, remoteIP: nil), date: d))
                == "Received: indimail-mta queue 7 by host h\n (invoked by uid 5); 1 Jan 2024 00:00:00 +0000\n")
        #expect(text(ReceivedHeader(pid: 7, host: "h", origin: .user(uid: 5, remoteIP: "1.2.3.4"), date: d))
                == "Received: indimail-mta queue 7 by host h\n (invoked from network 1.2.3.4, by uid 5); " + d)
        #expect(text(ReceivedHeader(pid: 7, host: "h", origin: .alias, date: d)).contains("(invoked by alias); "))
        #expect(text(ReceivedHeader(pid: 7, host: "h", origin: .bounce, date: d)).contains("(invoked for bounce); "))
        #expect(text(ReceivedHeader(pid: 7, host: nil, origin: .user(uid: 5, remoteIP: "1.2.3.4"), date: d))
                == "Received: indimail-mta queue 7 (invoked from network, by uid 5); " + d)
    }

    @Test("date822: day, month, year, time, numeric zone")
    func date() {
        var t = tm()
        t.tm_mday = 5; t.tm_mon = 1; t.tm_year = 124; t.tm_hour = 9; t.tm_min = 7; t.tm_sec = 3
        t.tm_gmtoff = 19800
        #expect(ReceivedHeader.date822(t) == "5 Feb 2024 09:07:03 +0530\n")
        t.tm_gmtoff = -18000
        #expect(ReceivedHeader.date822(t) == "5 Feb 2024 09:07:03 -0500\n")
    }
}
