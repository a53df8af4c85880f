// argv0 against ucspi-tcp's: the argv the program really gets (/proc/self/cmdline), the
// PATH search, usage and exec errors.
import Core
import Glibc
import Testing

@Suite struct Argv0Tests {
    static let debian = "/usr/bin/argv0"
    var ours: [String] { [Build.indimail, "argv0"] }

    @Test func programSeesTheChosenZerothArgument() throws {
        let debian = try #require(peer(Self.debian), "ucspi-tcp argv0 missing: run scripts/deps --test")
        let args = ["/bin/cat", "chosen name", "/proc/self/cmdline"]
        let mine = run(ours + args)
        #expect(mine.exitCode == 0)
        #expect(mine.stdout == Array("chosen name\0/proc/self/cmdline\0".utf8))
        #expect(mine.stdout == run([debian] + args).stdout)
        // A login shell by its leading dash, the classic use.
        let shell = run(ours + ["/bin/sh", "-sh", "-c", "echo $0"])
        #expect(shell.out == "-sh\n")
        #expect(shell.out == run([debian, "/bin/sh", "-sh", "-c", "echo $0"]).out)
    }

    @Test func searchesPathForTheRealName() throws {
        let debian = try #require(peer(Self.debian))
        let args = ["cat", "zero", "/proc/self/cmdline"]
        let env = ["PATH": "/nonexistent:/usr/bin:/bin"]
        let mine = run(ours + args, environment: env)
        #expect(mine.stdout == Array("zero\0/proc/self/cmdline\0".utf8))
        #expect(mine.stdout == run([debian] + args, environment: env).stdout)
    }

    @Test func argumentsAndExitStatusPassThrough() {
        let r = run(ours + ["/bin/sh", "name", "-c", "printf '%s|' \"$0\" \"$@\"; exit 5", "a b", "", "c"])
        #expect(r.exitCode == 5)
        #expect(r.out == "a b||c|")
        #expect(run(ours + ["/bin/sh", "name", "-c", "echo $0"]).out == "name\n")
    }

    @Test func usageAndExecFailure() throws {
        let debian = try #require(peer(Self.debian))
        for args in [[], ["only-one"]] {
            let mine = run(ours + args)
            #expect(mine.exitCode == 100)
            #expect(mine.err == "argv0: usage: argv0 realname program [ arg ... ]\n")
            #expect(mine.err == run([debian] + args).err)
        }
        let missing = run(ours + ["/nonexistent/program", "x"])
        #expect(missing.exitCode == 111)
        #expect(missing.err == "argv0: fatal: unable to run /nonexistent/program: No such file or directory\n")
        #expect(run([debian, "/nonexistent/program", "x"]).exitCode == 111)
        let notInPath = run(ours + ["no-such-program-anywhere", "x"], environment: ["PATH": "/bin:/usr/bin"])
        #expect(notInPath.exitCode == 111)
    }

    @Test func programGetsOnlyItsOwnDescriptors() throws {
        _ = try #require(peer("/usr/bin/python3"))
        let list = ["/bin/sh", "sh", "-c", "ls /proc/$$/fd; :"]
        #expect(run(withOnlyStdio(ours + list)).out == "0\n1\n2\n")
    }
}
