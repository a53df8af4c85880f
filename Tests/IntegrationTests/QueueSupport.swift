// Shared by the queue-fix and qmail-queue tests: a queue made by our queue-fix, owned by
// `nobody:nogroup` (all qmail accounts mapped onto it), and ways to look inside it.
import Core
import Glibc

enum QueueTest {
    static let nobody: uid_t = 65534
    static let nogroup: gid_t = 65534
    /// Every suite account mapped to nobody/nogroup: the tests need no qmail users.
    static let accounts = ["QMAILQ_USER": "nobody", "QMAILS_USER": "nobody", "QMAILR_USER": "nobody",
                           "ALIAS_USER": "nobody", "QMAIL_GROUP": "nogroup"]

    static func queueFix(_ args: [String], environment: [String: String] = accounts) -> Outcome {
        run([Build.indimail, "queue-fix"] + args, environment: environment)
    }

    /// A fresh queue at `sandbox/queue` (split 3, small todo), readable by other users.
    static func makeQueue(_ sandbox: Sandbox, split: Int = 3, bigTodo: Bool = false) -> String {
        chmod(sandbox.path, 0o755)
        let q = sandbox.at("queue")
        _ = queueFix(["-s", String(split), "-b", bigTodo ? "1" : "0", q])
        return q
    }

    /// Regular files (and FIFOs) under `dir`, relative, sorted.
    static func files(_ dir: String, under root: String = "") -> [String] {
        guard case .success(let names) = Path.entries(Path.join(dir, root)) else { return [] }
        var out: [String] = []
        for name in names {
            let rel = root.isEmpty ? name : root + "/" + name
            if Path.isDirectory(Path.join(dir, rel)) { out += files(dir, under: rel) } else { out.append(rel) }
        }
        return out.sorted()
    }

    /// Message files: everything but lock/.
    static func messageFiles(_ queue: String) -> [String] {
        files(queue).filter { !$0.hasPrefix("lock/") }
    }

    static func mode(_ path: String) -> mode_t? {
        var st = stat()
        return lstat(path, &st) == 0 ? st.st_mode & 0o7777 : nil
    }

    static func owner(_ path: String) -> (uid_t, gid_t)? {
        var st = stat()
        return lstat(path, &st) == 0 ? (st.st_uid, st.st_gid) : nil
    }

    /// Runs qmail-queue (`binary`) with `message` on fd 0 and `envelope` (a file) on fd 1,
    /// optionally as another user through setpriv.
    static func inject(_ sandbox: Sandbox, binary: String = Build.qmailQueue, message: [UInt8], envelope: [UInt8],
                       queue: String, asUser: (uid_t, gid_t)? = nil, environment: [String: String] = [:]) -> Outcome {
        let envelopeFile = sandbox.write("envelope.\(UInt32.random(in: 0 ... .max))", envelope)
        var argv = ["/bin/sh", "-c", "exec \"$@\" 1<\"$0\"", envelopeFile]
        if let (u, g) = asUser {
            argv += ["/usr/bin/setpriv", "--reuid=\(u)", "--regid=\(g)", "--clear-groups", "--"]
        }
        argv.append(binary)
        var env = environment
        if env["QUEUEDIR"] == nil { env["QUEUEDIR"] = queue }
        env["CONFSPLIT"] = env["CONFSPLIT"] ?? "3"
        env["BIGTODO"] = env["BIGTODO"] ?? "0"
        let outcome = run(argv, stdin: message, environment: env)
        unlink(envelopeFile)
        return outcome
    }

    /// A copy of `binary` in the sandbox, so other users can run it (and it can be setuid).
    static func copy(_ binary: String, to sandbox: Sandbox, name: String, owner: uid_t = 0, mode: mode_t = 0o755) -> String {
        let dir = sandbox.directory("bin")
        chmod(dir, 0o755)
        let target = Path.join(dir, name)
        _ = run(["/bin/cp", binary, target])
        chown(target, owner, 0)
        chmod(target, mode)
        return target
    }
}
