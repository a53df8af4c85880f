// qmail-rspawn driven over its pipes with a qmail-remote stand-in printing §11.5 reports:
// the conversion to one K/Z/D report, the argv, the environment, the timeout table reset.
import Core
import Glibc
import Testing

/// Prints the records its recipient's local part names; records what it got.
let remoteStub = """
d="$DUMPDIR"
box="${5%@*}"
printf '%s\\0' "$@" > "$d/$box.args"
env > "$d/$box.env"
cat > "$d/$box.msg"
case "$box" in
  accepted) printf 'rFrom: <%s> RCPT: <%s> \\0K1.2.3.4 accepted message.\\nRemote host said: 250 ok\\n\\0' "$2" "$5";;
  refused) printf 'hFrom: <%s> RCPT: <%s> 1.2.3.4 does not like recipient.\\nRemote host said: 550 no\\n\\0DGiving up on 1.2.3.4.\\n\\0' "$2" "$5";;
  later) printf 'sFrom: <%s> RCPT: <%s> 1.2.3.4 does not like recipient.\\nRemote host said: 450 later\\n\\0K1.2.3.4 accepted message.\\n\\0' "$2" "$5";;
  nohost) printf 'ZSorry, I couldn'"'"'t find any host by that name. (#4.1.2)\\n\\0';;
  baddomain) printf 'DSorry, I couldn'"'"'t find any host named x. (#5.1.2)\\n\\0';;
  deadconn) printf 'rFrom: <a> RCPT: <b> \\0ZConnected to 1.2.3.4 but connection died.\\n\\0';;
  silent) ;;
  soft) exit 111;;
  hard) exit 3;;
  crash) kill -SEGV $$;;
esac
exit 0

"""

@Suite struct QmailRspawnTests {
    func fixture() -> SpawnFixture {
        let f = SpawnFixture()
        f.stub("remote-stub", remoteStub)
        f.environment["QMAILREMOTE"] = Path.join(f.bin, "remote-stub")
        f.environment["DUMPDIR"] = f.dump
        return f
    }

    @Test func remoteReportsAreConvertedByteForByte() throws {
        let f = fixture()
        let id = f.message(11)
        let p = try #require(f.start("qmail-rspawn"))
        #expect(p.handshake() == 500)
        let expected: [(String, String)] = [
            ("accepted", "KFrom: <alice@sender.net> RCPT: <accepted@remote.example> 1.2.3.4 accepted message.\nRemote host said: 250 ok\n"),
            ("refused", "DFrom: <alice@sender.net> RCPT: <refused@remote.example> 1.2.3.4 does not like recipient.\nRemote host said: 550 no\nGiving up on 1.2.3.4.\n"),
            ("later", "ZFrom: <alice@sender.net> RCPT: <later@remote.example> 1.2.3.4 does not like recipient.\nRemote host said: 450 later\n"),
            ("nohost", "ZSorry, I couldn't find any host by that name. (#4.1.2)\n"),
            ("baddomain", "DSorry, I couldn't find any host named x. (#5.1.2)\n"),
            ("deadconn", "ZFrom: <a> RCPT: <b> Connected to 1.2.3.4 but connection died.\n"),
            ("silent", "Zqmail-remote produced no output.\n"),
            ("soft", "ZUnable to run qmail-remote.\n"),
            ("hard", "DUnable to run qmail-remote.\n"),
            ("crash", "Zqmail-remote crashed.\n"),
        ]
        for (slot, (box, _)) in expected.enumerated() {
            p.send(SpawnerProcess.command(slot: slot + 20, id: id, recipient: "\(box)@remote.example"))
        }
        var got: [Int: String] = [:]
        for r in p.reports(expected.count) { got[r.slot] = r.text }
        for (slot, (box, text)) in expected.enumerated() {
            #expect(got[slot + 20] == text, "\(box)")
        }
        #expect(p.finish() == .exited(0), "\(p.stderrString)")
    }

    @Test func qmailRemoteGetsDomainSenderQqehSizeRecipient() throws {
        let f = fixture()
        let body = "Subject: size\n\n12345\n"
        let id = f.message(12, body)
        let p = try #require(f.start("qmail-rspawn", extra: ["QMAILLOCAL": "/nonexistent"]))
        #expect(p.handshake() == 500)
        p.send(SpawnerProcess.command(slot: 499, id: id, sender: "s@x.org", qqeh: "X-Q: 1\n", envh: "X-Env: v\n",
                                      recipient: "accepted@Remote.Example"))
        #expect(p.next()?.text.hasPrefix("K") == true)
        let args = f.read("dump/accepted.args")?.split(separator: "\0", omittingEmptySubsequences: false).map(String.init)
        #expect(args == ["Remote.Example", "s@x.org", "X-Q: 1\n", String(body.utf8.count), "accepted@Remote.Example", ""])
        let env = f.read("dump/accepted.env") ?? ""
        #expect(env.contains("MESSID=\(id)\n"))
        #expect(env.contains("X_ENV=v\n"))
        #expect(!env.contains("QMAILLOCAL="))
        #expect(f.read("dump/accepted.msg") == body)
        #expect(p.finish() == .exited(0))
    }

    @Test func startupClearsTheTimeoutTableAndValidates() throws {
        let f = fixture()
        f.box.write("queue/lock/tcpto", [UInt8](repeating: 7, count: 2048))
        let id = f.message(13)
        let p = try #require(f.start("qmail-rspawn"))
        #expect(p.handshake() == 500)
        let table = try FD.readFile(f.box.at("queue/lock/tcpto")).get()
        #expect(table.count == 2048 && table.allSatisfy { $0 == 0 })
        p.send(SpawnerProcess.command(slot: 1, id: id, recipient: "nohost-at-all"))
        #expect(p.next() == SpawnReport(slot: 1, text: "DSorry, address must include host name. (#5.1.3)\n"))
        p.send(SpawnerProcess.command(slot: 600, id: id, recipient: "a@b"))
        #expect(p.next() == SpawnReport(slot: 600, text: "ZInternal error: delnum too big. (#4.3.5)\n"))
        #expect(p.finish() == .exited(0))

        let q = try #require(f.start("qmail-rspawn", extra: ["QMAILREMOTE": f.box.at("bin/missing")]))
        #expect(q.handshake() == 500)
        q.send(SpawnerProcess.command(slot: 0, id: id, recipient: "a@b"))
        #expect(q.next() == SpawnReport(slot: 0, text: "DUnable to run qmail-remote.\n"))
        #expect(q.finish() == .exited(0))
    }

    @Test func manyConcurrentDeliveriesAllReported() throws {
        let f = fixture()
        let id = f.message(14)
        let p = try #require(f.start("qmail-rspawn"))
        #expect(p.handshake() == 500)
        var batch: [UInt8] = []
        for slot in 0..<60 { batch += SpawnerProcess.command(slot: slot, id: id, recipient: "accepted@r\(slot).example") }
        p.send(batch)
        p.closeInput()
        let got = p.reports(60, within: 30)
        #expect(got.count == 60)
        #expect(Set(got.map(\.slot)) == Set(0..<60))
        #expect(got.allSatisfy { $0.text.hasPrefix("KFrom: <alice@sender.net> RCPT: <accepted@r") })
        #expect(p.finish() == .exited(0))
    }

    /// Random bytes as commands: one well-formed report per complete command, no crash.
    @Test func garbageCommandsGetReportsAndNoCrash() throws {
        let f = fixture()
        f.message(15)
        let p = try #require(f.start("qmail-rspawn"))
        #expect(p.handshake() == 500)
        var generator = SystemRandomNumberGenerator()
        var stream: [UInt8] = []
        for _ in 0..<3000 {
            // Mostly short fields, so that many commands complete.
            let byte = UInt8.random(in: 0...255, using: &generator)
            stream.append(byte % 4 == 0 ? 0 : byte)
        }
        var commands = 0, stage = 0
        for b in stream {
            if stage < 2 { stage += 1; continue }
            if b == 0 { stage += 1 }
            if stage == 7 { commands += 1; stage = 0 }
        }
        p.send(stream)
        p.closeInput()
        let got = p.reports(commands, within: 30)
        #expect(got.count == commands)
        #expect(got.allSatisfy { ["Z", "D"].contains($0.text.first.map(String.init) ?? "") })
        #expect(p.next(within: 2) == nil)
        #expect(p.finish() == .exited(0))
    }
}
