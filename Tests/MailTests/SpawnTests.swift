// The spawners' pure parts: the command stream parser, validation, report conversion,
// users/assign compilation and look-up, qmail-getpw's choice, qmail-pw2u's output.
import Core
import Glibc
@testable import Mail
import Testing

@Suite struct SpawnProtocolTests {
    static let command: [UInt8] = [3, 1] + Array("12/345".utf8) + [0] + Array("a@b".utf8) + [0] + Array("X: 1\n".utf8) + [0]
        + [0] + Array("u@h".utf8) + [0]

    @Test func commandsSurviveAnySplitting() {
        let stream = SpawnProtocolTests.command + SpawnProtocolTests.command
        for cut in 0...stream.count {
            var p = SpawnCommandParser()
            let got = p.feed(stream[..<cut]) + p.feed(stream[cut...])
            #expect(got.count == 2)
            #expect(got.allSatisfy {
                $0.slot == 259 && $0.messageID == Array("12/345".utf8) && $0.sender == Array("a@b".utf8)
                    && $0.qqeh == Array("X: 1\n".utf8) && $0.envHeaders.isEmpty && $0.recipient == Array("u@h".utf8)
            })
        }
    }

    @Test func oversizedFieldsAbortOnlyThatCommand() {
        var p = SpawnCommandParser()
        let huge = [UInt8](repeating: 49, count: SpawnCommandParser.fieldLimit + 10)
        let got = p.feed([0, 0] + huge + [0, 0, 0, 0] + Array("a@b".utf8) + [0] + SpawnProtocolTests.command)
        #expect(got.count == 2)
        #expect(got.first?.aborted == true)
        #expect(got.last?.aborted == false)
        #expect(got.first.flatMap { SpawnValidation.check($0, concurrency: 500, inUse: { _ in false }) } == .outOfMemory)
    }

    @Test func validationOrderAndTexts() {
        func req(_ slot: Int, _ id: String, _ rcpt: String = "a@b") -> SpawnRequest {
            SpawnRequest(slotLow: UInt8(slot & 255), slotHigh: UInt8(slot >> 8), messageID: Array(id.utf8), sender: [],
                         qqeh: [], envHeaders: [], recipient: Array(rcpt.utf8))
        }
        let check = { (r: SpawnRequest) in SpawnValidation.check(r, concurrency: 500, inUse: { $0 == 7 }) }
        #expect(check(req(499, "1/2")) == nil)
        #expect(check(req(500, "1/2")) == .slotTooBig)
        #expect(check(req(0x8000, "1/2")) == .slotNegative)
        #expect(check(req(7, "x")) == .slotInUse)
        #expect(check(req(1, "1/2x")) == .idNonNumeric)
        #expect(check(req(1, "/12")) == .idNonNumeric)
        #expect(check(req(1, String(repeating: "9", count: 99))) == nil)
        #expect(check(req(1, String(repeating: "9", count: 100))) == .idTooLong)
        #expect(check(req(1, "")) == .idTooShort)
        #expect(check(req(1, "1/2", "nohost")) == .noHost)
        #expect(SpawnRejection.noHost.text == "DSorry, address must include host name. (#5.1.3)\n")
        #expect(SpawnValidation.frame(slotLow: 1, slotHigh: 2, Array("K".utf8)) == [1, 2, 75, 0])
    }

    @Test func envHeadersBecomeVariables() {
        let vars = SpawnEngine.variables(envHeaders: Array("x-my-hdr:  v 1\nNoColon\nSubject:s\nlast: unterminated".utf8),
                                         messageID: Array("3/45".utf8))
        let text = vars.map { String(decoding: $0.0, as: UTF8.self) + "=" + String(decoding: $0.1, as: UTF8.self) }
        #expect(text == ["X_MY_HDR=v 1", "SUBJECT=s", "MESSID=3/45"])
    }
}

@Suite struct SpawnReportTests {
    func remote(_ s: String, _ status: WaitStatus = .exited(0)) -> String {
        String(decoding: RemoteSpawnReport.text(status, output: Array(s.utf8)), as: UTF8.self)
    }

    @Test func remoteConversionTable() {
        #expect(remote("rA\0Kok\0") == "KAok")
        #expect(remote("rA\0rB\0Kok\0") == "KA")            // the record after F is not the message report
        #expect(remote("hA\0Dno\0") == "DAno")
        #expect(remote("hA\0Kok\0") == "DA")                // a refused recipient stays refused
        #expect(remote("sA\0Kok\0") == "ZA")
        #expect(remote("sA\0Zlater\0") == "ZAlater")
        #expect(remote("sA\0Dno\0") == "ZAno")
        #expect(remote("Zz\0") == "Zz")
        #expect(remote("Kk\0Dd\0") == "Kkd")
        #expect(remote("rA\0") == "DA")                     // no message report: failure
        #expect(remote("rA") == "D")                        // no NUL at all: just the letter
        #expect(remote("") == "Zqmail-remote produced no output.\n")
        #expect(remote("Kx\0", .exited(111)) == "ZUnable to run qmail-remote.\n")
        #expect(remote("Kx\0", .exited(1)) == "DUnable to run qmail-remote.\n")
        #expect(remote("Kx\0", .signaled(9, coreDumped: false)) == "Zqmail-remote crashed.\n")
    }

    @Test func localTable() {
        func local(_ code: Int32, _ out: String = "text\0more", user: String? = nil) -> String {
            String(decoding: LocalSpawnReport.text(.exited(code), output: Array(out.utf8), user: user.map { Array($0.utf8) }), as: UTF8.self)
        }
        #expect(local(0) == "Ktext")
        for z: Int32 in [111, 71, 74, 75] { #expect(local(z) == "Ztext") }
        for d: Int32 in [100, 1, 64, 99] { #expect(local(d) == "Dtext") }
        #expect(local(112) == "ZInternal qmail-lspawn bug.\n")
        #expect(local(113) == "ZNot allowed to perform deliveries as root.\n")
        #expect(local(115) == "ZNFS failure in qmail-local.\n")
        #expect(local(116) == "ZUnable to find alias user!\n")
        #expect(local(117) == "ZTrouble reading users/cdb in qmail-lspawn.\n")
        #expect(local(118) == "ZTemporary failure in qmail-lspawn.\n")
        #expect(local(119) == "ZOut of memory in qmail-lspawn.\n")
        #expect(local(120) == "ZUnable to run qmail-local.\n")
        #expect(local(121) == "ZUnable to run qmail-getpw.\n")
        #expect(local(122) == "ZUnable to cd to root directory.\n")
        #expect(local(126) == "DUnable to run qmail-local.\n")
        #expect(local(127) == "ZUnable to set proper uid, gid.\n")
        #expect(local(127, user: "joe") == "ZUnable to set proper uid, gid for joe.\n")
        #expect(String(decoding: LocalSpawnReport.text(.signaled(11, coreDumped: true), output: []), as: UTF8.self) == "Zqmail-local crashed.\n")
    }

    @Test func accountFields() {
        #expect(LocalAccount.parse(Array("joe\0 12\0x\0/h\0-\0e\0".utf8)) ==
                LocalAccount(user: Array("joe".utf8), uid: 0, gid: 0, home: Array("/h".utf8), dash: Array("-".utf8), ext: Array("e".utf8)))
        #expect(LocalAccount.parse(Array("joe\0012\0034x\0/h\0\0\0".utf8))?.uid == 12)
        #expect(LocalAccount.parse(Array("joe\0012\0034x\0/h\0\0\0".utf8))?.gid == 34)
        #expect(LocalAccount.parse(Array("joe\0001\0002\0/h\0-\0e".utf8)) == nil)
        #expect(LocalAccount.parse(Array("99999999999999999999999\0".utf8)) == nil)
    }
}

@Suite struct UserAssignmentTests {
    static let assign = """
    =joe:joe:1001:100:/home/joe:::
    =Mixed:mixed:1002:100:/home/mixed:-:x:
    +list-:lists:1003:100:/home/lists:-:l-:
    +bob:bob:1004:100:/home/bob:-::
    +:alias:1005:100:/var/alias:-::
    .
    ignored after the dot

    """

    /// The cdb qmail-newu would write, mapped (the file is gone once mapped).
    func cdb(_ text: String) throws -> CDB {
        let records = try UserAssignments.compile(Array(text.utf8)).get()
        let path = "/tmp/spawn-unit-\(getpid())-\(UInt32.random(in: 0 ... .max)).cdb"
        defer { unlink(path) }
        try CDBWriter.rebuild(path, temporary: path + ".tmp") { w in
            for r in records { if case .failure(let e) = w.add(key: r.key, value: r.value) { return .failure(e) } }
            return .success(())
        }.get()
        return try CDB.open(path).get()
    }

    @Test func compiledRecords() throws {
        let records = try UserAssignments.compile(Array(UserAssignmentTests.assign.utf8)).get()
        #expect(records.count == 6)
        #expect(records[0].key == Array("!joe\0".utf8))
        #expect(records[0].value == Array("joe\u{0}1001\u{0}100\u{0}/home/joe\u{0}\u{0}".utf8))
        #expect(records[1].key == Array("!mixed\0".utf8))
        #expect(records[2].key == Array("!list-".utf8))
        #expect(records[4].key == Array("!".utf8))
        #expect(records[5].key.isEmpty)
        #expect(records[5].value == Array("-b".utf8))    // last characters of the + prefixes
    }

    @Test func formatErrors() {
        for bad in ["=joe:joe:1:2:/h::\n.\n", "=joe:joe:1:2:/h:::\n", ":joe:joe:1:2:/h:::\n.\n", "nocolon\n.\n",
                    "=a\u{0}b:u:1:2:/h:::\n.\n", ""] {
            #expect(throws: AssignError.self) { try UserAssignments.compile(Array(bad.utf8)).get() }
        }
        #expect((try? UserAssignments.compile(Array(".".utf8)).get())?.count == 1)
    }

    @Test func lookupExactThenWildcard() throws {
        let db = try cdb(UserAssignmentTests.assign)
        func find(_ local: String) -> String? {
            (try? UserAssignments.lookup(local: Array(local.utf8), in: db).get())?.map { String(decoding: $0, as: UTF8.self) }
        }
        #expect(find("joe") == "joe\u{0}1001\u{0}100\u{0}/home/joe\u{0}\u{0}\u{0}")
        #expect(find("JOE") == "joe\u{0}1001\u{0}100\u{0}/home/joe\u{0}\u{0}\u{0}")
        #expect(find("mixed") == "mixed\u{0}1002\u{0}100\u{0}/home/mixed\u{0}-\u{0}x\u{0}")
        #expect(find("list-Owner") == "lists\u{0}1003\u{0}100\u{0}/home/lists\u{0}-\u{0}l-Owner\u{0}")
        #expect(find("bobby") == "bob\u{0}1004\u{0}100\u{0}/home/bob\u{0}-\u{0}by\u{0}")   // "+bob" takes any bob…
        #expect(find("bob") == "bob\u{0}1004\u{0}100\u{0}/home/bob\u{0}-\u{0}\u{0}")
        #expect(find("joe-x") == "alias\u{0}1005\u{0}100\u{0}/var/alias\u{0}-\u{0}joe-x\u{0}")
        let missing = try UserAssignments.lookup(local: Array("x".utf8), cdbPath: "/nonexistent/users/cdb").get()
        #expect(missing == nil)
    }
}

@Suite struct QmailGetpwChoiceTests {
    let accounts: [String: PasswdResolver.Entry] = [
        "joe": .init(name: "joe", uid: 1001, gid: 100, home: "/home/joe"),
        "joe-list": .init(name: "joe-list", uid: 1002, gid: 100, home: "/home/jl"),
        "root": .init(name: "root", uid: 0, gid: 0, home: "/root"),
        "stranger": .init(name: "stranger", uid: 1003, gid: 100, home: "/home/joe"),
        "alias": .init(name: "alias", uid: 7, gid: 7, home: "/var/alias"),
    ]
    let owners: [String: uid_t] = ["/home/joe": 1001, "/home/jl": 1002, "/root": 0, "/var/alias": 7]

    func resolve(_ local: String, alias: String = "alias", homeError: Int32 = ENOENT) -> Result<LocalAccount, PasswdResolver.Failure> {
        PasswdResolver.resolve(Array(local.utf8), alias: alias, lookup: { (accounts[$0], 0) },
                               homeOwner: { owners[$0].map { ($0, 0) } ?? (nil, homeError) })
    }

    func text(_ r: Result<LocalAccount, PasswdResolver.Failure>) -> String {
        guard case .success(let a) = r else { return "\(r)" }
        return [a.user, Array(String(a.uid).utf8), a.home, a.dash, a.ext].map { String(decoding: $0, as: UTF8.self) }.joined(separator: "|")
    }

    @Test func longestAccountPrefixAtDashes() {
        #expect(text(resolve("joe")) == "joe|1001|/home/joe||")
        #expect(text(resolve("Joe-Foo-Bar")) == "joe|1001|/home/joe|-|Foo-Bar")
        #expect(text(resolve("joe-list-x")) == "joe-list|1002|/home/jl|-|x")
        #expect(text(resolve("root")) == "alias|7|/var/alias|-|root")            // uid 0 never
        #expect(text(resolve("stranger")) == "alias|7|/var/alias|-|stranger")    // home not its own
        #expect(text(resolve("joefoo")) == "alias|7|/var/alias|-|joefoo")
        #expect(text(resolve(String(repeating: "j", count: 40) + "-joe")) == "alias|7|/var/alias|-|" + String(repeating: "j", count: 40) + "-joe")
        #expect(resolve("nobody", alias: "none") == .failure(.noAlias))
        #expect(resolve("ghost-x", homeError: EIO) == .success(LocalAccount(user: Array("alias".utf8), uid: 7, gid: 7, home: Array("/var/alias".utf8), dash: [45], ext: Array("ghost-x".utf8))))
    }

    @Test func temporaryHomeErrorsAndBusyDatabase() {
        let r = PasswdResolver.resolve(Array("joe".utf8), alias: "alias", lookup: { (accounts[$0], 0) },
                                       homeOwner: { _ in (nil, EIO) })
        #expect(r == .failure(.homeTemporary))
        let busy = PasswdResolver.resolve(Array("joe".utf8), alias: "alias", lookup: { _ in (nil, ETXTBSY) },
                                          homeOwner: { _ in (nil, 0) })
        #expect(busy == .failure(.busy))
    }
}

@Suite struct QmailPw2uTests {
    static let passwd = """
    root:x:0:0:root:/root:/bin/sh
    alias:x:7:7::/var/alias:/bin/false
    joe:x:1001:100:Joe:/home/joe:/bin/sh
    Upper:x:1002:100::/home/upper:/bin/sh
    nohome:x:1003:100::/home/none:/bin/sh
    notmine:x:1004:100::/home/joe:/bin/sh
    short:x:1005
    ann:x:1006:100::/home/ann:/bin/sh
    """
    let owners: [String: uid_t] = ["/var/alias": 7, "/home/joe": 1001, "/home/upper": 1002, "/home/ann": 1006]

    func convert(_ tables: Pw2uTables = Pw2uTables(), _ options: Pw2uOptions = Pw2uOptions(), passwd: String = passwd) -> String {
        switch Pw2u.convert(passwd: Array(passwd.utf8), tables: tables, options: options, alias: "alias",
                            homeOwner: { owners[$0].map { ($0, 0) } ?? (nil, ENOENT) }) {
        case .success(let b): return String(decoding: b, as: UTF8.self)
        case .failure(let e): return "error: \(e)"
        }
    }

    @Test func defaultRules() {
        #expect(convert() == """
        +:alias:7:7:/var/alias:-::
        =alias:alias:7:7:/var/alias:::
        +alias-:alias:7:7:/var/alias:-::
        =joe:joe:1001:100:/home/joe:::
        +joe-:joe:1001:100:/home/joe:-::
        =ann:ann:1006:100:/home/ann:::
        +ann-:ann:1006:100:/home/ann:-::
        .

        """)
    }

    @Test func optionsChangeTheRules() {
        var o = Pw2uOptions()
        o.allowUppercase = true
        o.breakCharacter = nil
        o.dashColon = Array("-/:".utf8)
        o.homeStrategy = 0
        #expect(convert(Pw2uTables(), o) == """
        +:alias:7:7:/var/alias:-/::
        =alias:alias:7:7:/var/alias:::
        =joe:joe:1001:100:/home/joe:::
        =Upper:Upper:1002:100:/home/upper:::
        =nohome:nohome:1003:100:/home/none:::
        =notmine:notmine:1004:100:/home/joe:::
        =ann:ann:1006:100:/home/ann:::
        .

        """)
        var h = Pw2uOptions()
        h.homeStrategy = 1
        #expect(convert(Pw2uTables(), h) == "error: unable to stat /home/none")
    }

    @Test func tables() {
        var t = Pw2uTables()
        t.include = ["ALIAS", "joe", "ann"]
        t.exclude = ["ann"]
        t.mailnames = [("joe", Array("jo:joseph".utf8))]
        t.subusers = Array("help:JOE:helpdesk:\nbroken line\n".utf8)
        t.append = Array("=extra:joe:1001:100:/home/joe:::\n".utf8)
        var o = Pw2uOptions()
        o.breakCharacter = UInt8(ascii: "+")
        #expect(convert(t, o) == """
        +:alias:7:7:/var/alias:-::
        =alias:alias:7:7:/var/alias:::
        +alias+:alias:7:7:/var/alias:-::
        =jo:joe:1001:100:/home/joe:::
        +jo+:joe:1001:100:/home/joe:-::
        =joseph:joe:1001:100:/home/joe:::
        +joseph+:joe:1001:100:/home/joe:-::
        =help:joe:1001:100:/home/joe:-:helpdesk:
        +help+:joe:1001:100:/home/joe:-:helpdesk-:
        =extra:joe:1001:100:/home/joe:::
        .

        """)
        var bad = Pw2uTables()
        bad.subusers = Array("x:ghost:pre:\n".utf8)
        #expect(convert(bad) == "error: unable to find ghost user for subuser")
        #expect(convert(passwd: "joe:x:1001:100:Joe:/home/joe:/bin/sh\n") == "error: unable to find alias user")
    }
}
