// Errors as values, and the suite's exit convention: 100 permanent/usage, 111 temporary.
import Glibc

/// Exit codes shared by every program of the suite.
public enum ExitCode {
    public static let success: Int32 = 0
    /// Usage errors and permanent failures.
    public static let permanent: Int32 = 100
    /// Temporary failures: the caller may try again later.
    public static let temporary: Int32 = 111
}

/// A failed system call: the operation, the object it was applied to, and errno.
public struct SystemError: Error, Equatable, Sendable, CustomStringConvertible {
    public let errno: Int32
    public let operation: String
    public let object: String?

    public init(_ operation: String, _ object: String? = nil, errno code: Int32 = Glibc.errno) {
        self.errno = code
        self.operation = operation
        self.object = object
    }

    /// The C library's text for the errno, e.g. "No such file or directory".
    public var reason: String { SystemError.describe(errno) }

    public static func describe(_ code: Int32) -> String {
        guard let text = strerror(code) else { return "error \(code)" }
        return String(cString: text)
    }

    /// "unable to open /x: No such file or directory" — the reference's wording.
    public var description: String {
        if let object { return "\(operation) \(object): \(reason)" }
        return "\(operation): \(reason)"
    }

    /// True for errors a retry may cure (resource shortage, not a bad path or permission).
    public var isTemporary: Bool {
        switch errno {
        case ENOENT, ENOTDIR, EACCES, EPERM, ELOOP, ENAMETOOLONG, EISDIR, EINVAL: return false
        default: return true
        }
    }
}

/// Writes `program: fatal: message` style diagnostics to fd 2.
public struct Diagnostics: Sendable {
    public let program: String

    public init(program: String) { self.program = program }

    /// Prints `program: fatal: message` and returns `code`, so commands can `return diag.fatal(...)`.
    @discardableResult
    public func fatal(_ code: Int32, _ message: String) -> Int32 {
        write(level: "fatal", message)
        return code
    }

    @discardableResult
    public func fatal(_ error: SystemError, code: Int32 = ExitCode.temporary) -> Int32 {
        fatal(code, error.description)
    }

    public func warning(_ message: String) { write(level: "warning", message) }

    /// `program: usage: text`, exit 100.
    @discardableResult
    public func usage(_ synopsis: String) -> Int32 {
        FD.writeAll(2, Array("\(program): usage: \(synopsis)\n".utf8))
        return ExitCode.permanent
    }

    private func write(level: String, _ message: String) {
        FD.writeAll(2, Array("\(program): \(level): \(message)\n".utf8))
    }
}
