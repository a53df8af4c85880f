// SystemError wording and classification; Diagnostics' `name: fatal: reason` lines on fd 2.
import Core
import Glibc
import Testing

@Suite("SystemError and Diagnostics")
struct ErrorsTests {
    @Test("description follows the reference's wording")
    func wording() {
        let e = SystemError("unable to open", "/x/y", errno: ENOENT)
        #expect(e.description == "unable to open /x/y: No such file or directory")
        #expect(e.reason == "No such file or directory")
        #expect(SystemError("unable to fork", errno: EAGAIN).description == "unable to fork: Resource temporarily unavailable")
        #expect(SystemError.describe(EACCES) == "Permission denied")
    }

    @Test("errno captured at creation")
    func capturesErrno() {
        errno = 0
        _ = open("/definitely/not/here", O_RDONLY)
        let e = SystemError("unable to open")
        #expect(e.errno == ENOENT)
    }

    @Test("temporary vs permanent errors")
    func classification() {
        for code in [ENOENT, ENOTDIR, EACCES, EPERM, ELOOP, ENAMETOOLONG, EISDIR, EINVAL] {
            #expect(!SystemError("x", errno: code).isTemporary, "\(code)")
        }
        for code in [EAGAIN, ENOMEM, EIO, ENOSPC, EMFILE, ECONNREFUSED] {
            #expect(SystemError("x", errno: code).isTemporary, "\(code)")
        }
        #expect(ExitCode.success == 0 && ExitCode.permanent == 100 && ExitCode.temporary == 111)
    }

    @Test("fatal, warning and usage lines on stderr, with the right return codes")
    func diagnosticsOutput() throws {
        let pipe = try TestPipe()
        let writeEnd = pipe.write
        // What the child will build, built here first (see inForkedChild).
        _ = Array("\("svok"): \("fatal"): \(SystemError("unable to open", "ok", errno: ENXIO))\n".utf8)
        // fd 2 is shared by every test thread: redirect it in a child only.
        let status = inForkedChild {
            guard dup2(writeEnd, 2) == 2 else { return 10 }
            let diag = Diagnostics(program: "svok")
            guard diag.fatal(ExitCode.permanent, "no supervise running") == 100 else { return 11 }
            diag.warning("careful")
            guard diag.fatal(SystemError("unable to open", "ok", errno: ENXIO)) == 111 else { return 12 }
            guard diag.usage("svok dir") == 100 else { return 13 }
            return 0
        }
        #expect(status == .exited(0))
        pipe.closeWrite()
        let text = String(decoding: try FD.readAll(pipe.read).get(), as: UTF8.self)
        #expect(text == """
            svok: fatal: no supervise running
            svok: warning: careful
            svok: fatal: unable to open ok: No such device or address
            svok: usage: svok dir

            """)
    }
}
