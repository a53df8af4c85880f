// sys-checkpwd: a checkpassword program for qmail-smtpd's AUTH that checks local system
// accounts (shadow(5) hashes through crypt(3)); unknown users go to the next program.
import Core
import Glibc

public struct SysCheckpwdCommand: Command {
    public static let name = "sys-checkpwd"
    public static let installDirectory = InstallDirectory.sbin
    public static let summary = "checkpassword program checking local system accounts"

    /// Most the checkpassword interface allows on fd 3.
    static let maximumInput = 512

    public static func run(_ context: CommandContext) -> Int32 {
        let diag = context.diagnostics
        guard !context.arguments.isEmpty else { return diag.usage("sys-checkpwd program [args…]") }
        var input: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 600)
        while input.count <= maximumInput {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(3, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return diag.fatal(2, "unable to read fd 3: \(SystemError.describe(errno))") }
            if n == 0 { break }
            input += chunk[0..<n]
        }
        close(3)
        guard input.count <= maximumInput else { return diag.fatal(2, "more than \(maximumInput) bytes on fd 3") }
        let fields = input.split(separator: 0, omittingEmptySubsequences: false).map(Array.init)
        guard fields.count >= 2, !fields[0].isEmpty else { return diag.fatal(2, "malformed input on fd 3") }
        let user = fields[0], secret = fields[1]
        let method: UInt8 = fields.count > 3 ? (fields[3].first ?? 1) : 1

        let hash: String?
        switch storedHash(String(decoding: user, as: UTF8.self), environment: context.environment) {
        case .failure(let e): return diag.fatal(ExitCode.temporary, e.description)
        case .success(let h): hash = h
        }
        // Only clear-text methods can be checked against a one-way hash; unknown users and
        // CRAM/DIGEST go to the next program, as the reference does.
        guard let hash, method == 1 || method == 2 else { return next(context, input) }
        guard !hash.isEmpty, !hash.hasPrefix("!"), !hash.hasPrefix("*") else { return 1 }
        switch Crypt.hash(secret, setting: hash) {
        case .failure(let e): return diag.fatal(ExitCode.temporary, e.description)
        case .success(let computed):
            return constantTimeEqual(Array(computed.utf8), Array(hash.utf8)) ? 0 : 1
        }
    }

    /// Runs the next program with the same input on its fd 3.
    static func next(_ context: CommandContext, _ input: [UInt8]) -> Int32 {
        guard case .success(let pipe) = FD.pipe() else { return context.diagnostics.fatal(ExitCode.temporary, "unable to create pipe") }
        _ = FD.writeAll(pipe.write, input)  // at most 512 bytes: fits in the pipe
        FD.close(pipe.write)
        guard case .success = FD.move(pipe.read, to: 3) else { return context.diagnostics.fatal(ExitCode.temporary, "unable to move fd") }
        let error = Exec.replace(arguments: context.arguments, environment: context.environment)
        return context.diagnostics.fatal(ExitCode.temporary, error.description)
    }

    /// The hash for `user` from the shadow file ($SYS_CHECKPWD_SHADOW, else /etc/shadow),
    /// falling back to /etc/passwd's field; nil when the user is unknown.
    static func storedHash(_ user: String, environment env: Environment) -> Result<String?, SystemError> {
        let shadow = env.nonEmpty("SYS_CHECKPWD_SHADOW") ?? "/etc/shadow"
        switch FD.readFile(shadow) {
        case .success(let bytes):
            if let field = field(of: user, in: bytes) { return .success(field) }
        case .failure(let e) where e.errno == ENOENT || env.nonEmpty("SYS_CHECKPWD_SHADOW") == nil && e.errno == EACCES:
            break
        case .failure(let e): return .failure(e)
        }
        guard env.nonEmpty("SYS_CHECKPWD_SHADOW") == nil, let pw = getpwnam(user), let passwd = pw.pointee.pw_passwd else {
            return .success(nil)
        }
        let value = String(cString: passwd)
        return .success(value == "x" ? "" : value)
    }

    /// The second field of `user`'s line in a colon-separated file.
    static func field(of user: String, in bytes: [UInt8]) -> String? {
        let name = Array(user.utf8)
        for line in bytes.split(separator: 10) {
            let parts = line.split(separator: 58, maxSplits: 2, omittingEmptySubsequences: false)
            if parts.count >= 2, Array(parts[0]) == name { return String(decoding: parts[1], as: UTF8.self) }
        }
        return nil
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in a.indices { diff |= a[i] ^ b[i] }
        return diff == 0
    }
}

/// crypt(3) from libxcrypt, loaded on first use (the base binary is static and never
/// calls this; sys-checkpwd runs from indimail-tls).
enum Crypt {
    typealias Function = @convention(c) (UnsafePointer<CChar>?, UnsafePointer<CChar>?) -> UnsafeMutablePointer<CChar>?

    static func hash(_ password: [UInt8], setting: String) -> Result<String, CryptError> {
        guard let handle = dlopen("libcrypt.so.1", RTLD_NOW) ?? dlopen("libcrypt.so", RTLD_NOW),
              let symbol = dlsym(handle, "crypt") else {
            return .failure(CryptError(description: "unable to load crypt(3) from libcrypt"))
        }
        let crypt = unsafeBitCast(symbol, to: Function.self)
        let key = password.map { CChar(bitPattern: $0) } + [0]
        let result: String? = key.withUnsafeBufferPointer { k in
            setting.withCString { s in crypt(k.baseAddress, s).map { String(cString: $0) } }
        }
        guard let result, !result.hasPrefix("*") else { return .failure(CryptError(description: "crypt(3) failed")) }
        return .success(result)
    }
}

struct CryptError: Error, CustomStringConvertible {
    let description: String
}
