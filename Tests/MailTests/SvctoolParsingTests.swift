// svctool's option parsing, the variables file format, shell words and template filling.
@testable import Mail
import Testing

@Suite struct SvctoolParsingTests {
    @Test func parsesAnAction() throws {
        let o = try SvctoolOptions.parse(["--qmtp=209", "--servicedir=/s", "--qbase=/q", "--no-multi", "--localip=127.0.0.1"]).get()
        #expect(o.action == .qmtp(port: "209"))
        #expect(o.value("servicedir") == "/s")
        #expect(o.flag("no-multi"))
        #expect(!o.flag("force"))
    }

    @Test func parsesTheQueuedOptions() throws {
        let o = try SvctoolOptions.parse(["--queued", "--workers=4", "--queue-socket=/run/q/socket"]).get()
        #expect(o.action == .queued && o.actionName == "queued")
        #expect(o.value("workers") == "4" && o.value("queue-socket") == "/run/q/socket")
        let l = try SvctoolOptions.parse(["--smtp=25", "--use-queued"]).get()
        #expect(l.action == .smtp(port: "25") && l.flag("use-queued"))
    }

    @Test(arguments: [
        (["--smtp=25", "--qmtp=209"], "conflicting"),
        (["--bogus"], "invalid option"),
        (["--smtp"], "needs a value"),
        (["--force=1", "--smtp=25"], "takes no value"),
        (["--smtp=99999"], "invalid port"),
        (["--smtp=25", "--ssl", "--starttls"], "cannot be combined"),
        (["--qmtp=209", "--maxdaemons=lots"], "wants a number"),
        (["--delivery=x", "--qtype=fast"], "--qtype"),
        (["--queueParam=/etc/x"], "absolute"),
        (["--servicedir=/s"], "no action"),
        (["smtp"], "invalid option"),
        (["--queued", "--workers=0"], "1 to 1000"),
        (["--queued", "--workers=many"], "wants a number"),
        (["--queued", "--queue-socket=run/q"], "absolute path"),
        (["--queued=4"], "takes no value"),
        (["--qmtp=209", "--use-queued=yes"], "takes no value"),
    ])
    func refusesBadCommandLines(arguments: [String], message: String) {
        guard case .failure(let e) = SvctoolOptions.parse(arguments) else {
            Issue.record("accepted \(arguments)")
            return
        }
        #expect(e.description.contains(message), "\(e)")
    }

    @Test func variablesFileRoundTrip() {
        let text = "# comment\n  A=one two\nB=\"\"\nC=\n\nD=\"quoted\"\nnot a line\n"
        let parsed = VariablesFile.parse(text)
        #expect(parsed.map(\.name) == ["A", "B", "C", "D"])
        #expect(parsed.map(\.value) == [.value("one two"), .empty, .unset, .value("quoted")])
    }

    @Test func variableFileBytesFollowEnvdir() {
        #expect(VariableValue.unset.fileBytes == [])
        #expect(VariableValue.empty.fileBytes == [10])
        #expect(VariableValue.value("25").fileBytes == Array("25\n".utf8))
    }

    @Test func shellWordsUndoShellQuote() {
        let words = ["svctool", "--smtp=25", "--rbl=-rzen.spamhaus.org -rbl.example", "it's", "", "a\"b"]
        let line = words.map(shellQuote).joined(separator: " ")
        #expect(shellWords(line) == words)
        #expect(shellWords("a  'b c' \"d e\" f\\ g") == ["a", "b c", "d e", "f g"])
    }

    @Test func templatesFillEveryPlaceholder() {
        let values = ["SERVICE": "s", "COMMANDLINE": "c", "PREFIX": "/p", "SYSCONFDIR": "/e", "CONTROLDIR": "/e/c",
                      "SERVICEDIR": "/sv", "LOGDIR": "/l", "LOGNAME": "n", "LOGUSER": "u", "USER": "d", "GROUPS": "g",
                      "LOOKUP": "-H", "SMTPDARGS": "", "QTYPE": "-s", "MSGQ": "", "ULIMIT": ""]
        for t in ServiceTemplate.allCases {
            let text = t.render(values)
            #expect(!text.contains("@PREFIX@") && !text.contains("@SERVICE@"), "\(t)")
            #expect(text.hasPrefix("#!/bin/sh\n"))
        }
        #expect(ServiceTemplate.substitute("a@X@b@@c@Y@", ["X": "1"]) == "a1b@@c@Y@")
    }
}
