// The envdir loader (libqmail envdir() semantics with the indimail .envdir/.envfile
// recursion), shared by the envdir command, supervise and the mail programs.
import Glibc

public struct EnvDirError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The reference's wording, e.g. "unable to open environment file".
    public let message: String
    public let name: String
    public let errno: Int32

    public var description: String { "\(message): \(name): \(SystemError.describe(errno))" }
}

/// One queued change; applied in order, so later ones win.
public enum EnvChange: Equatable, Sendable {
    case set(name: [UInt8], value: [UInt8])
    case unset(name: [UInt8])
}

public struct EnvDirLoader {
    /// Skip files that cannot be read instead of failing (envdir -i).
    public var ignoreUnreadable: Bool
    public private(set) var changes: [EnvChange] = []
    /// Directories already loaded (device, inode): a `.envdir` cycle is loaded once.
    private var seen: Set<[UInt64]> = []

    public init(ignoreUnreadable: Bool = false) { self.ignoreUnreadable = ignoreUnreadable }

    /// Loads `dir` (and what its `.envfile` and `.envdir` name), queueing changes.
    public mutating func load(_ dir: String) -> Result<Void, EnvDirError> {
        guard let st = Path.status(dir, followLinks: false) else {
            return .failure(EnvDirError(message: "unable to open environment directory", name: dir, errno: errno))
        }
        // A symlinked directory is identified by what it points to.
        let target = (st.st_mode & S_IFMT) == S_IFLNK ? (Path.status(dir) ?? st) : st
        guard (target.st_mode & S_IFMT) == S_IFDIR else {
            return .failure(EnvDirError(message: "unable to open environment directory", name: dir, errno: ENOTDIR))
        }
        let identity = [UInt64(target.st_dev), UInt64(target.st_ino)]
        if seen.contains(identity) { return .success(()) }
        seen.insert(identity)

        if case .failure(let e) = loadEnvFile(Path.join(dir, ".envfile")) { return .failure(e) }
        if case .failure(let e) = loadEnvDirLink(Path.join(dir, ".envdir")) { return .failure(e) }
        return loadVariables(dir)
    }

    /// `.envfile`: NAME=VALUE lines; `#` comments; a bare NAME unsets it.
    private mutating func loadEnvFile(_ path: String) -> Result<Void, EnvDirError> {
        guard let st = Path.status(path) else {
            if errno == ENOENT { return .success(()) }
            return .failure(EnvDirError(message: "unable to open .envfile", name: path, errno: errno))
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else { return .success(()) }
        let bytes: [UInt8]
        switch FD.readFile(path) {
        case .success(let b): bytes = b
        case .failure(let e):
            return .failure(EnvDirError(message: "unable to open .envfile", name: path, errno: e.errno))
        }
        // Text ends at a NUL byte, as the reference; a last line without newline still counts.
        let text = bytes.prefix { $0 != 0 }
        for rawLine in text.split(separator: 10, omittingEmptySubsequences: true) {
            let line = rawLine.drop { $0 == 32 || $0 == 9 }
            guard let first = line.first, first != UInt8(ascii: "#") else { continue }
            if let eq = line.firstIndex(of: UInt8(ascii: "=")) {
                // "=value" names nothing: skipped rather than setting an empty name.
                guard eq != line.startIndex else { continue }
                changes.append(.set(name: Array(line[..<eq]), value: Array(line[(eq + 1)...])))
            } else {
                var name = Array(line)
                while let last = name.last, last == 32 || last == 9 || last == 13 { name.removeLast() }
                changes.append(.unset(name: name))
            }
        }
        return .success(())
    }

    /// `.envdir`: a directory (or link to one) to load first, or a file listing directories.
    private mutating func loadEnvDirLink(_ path: String) -> Result<Void, EnvDirError> {
        guard let st = Path.status(path) else {
            if errno == ENOENT { return .success(()) }
            return .failure(EnvDirError(message: "unable to open .envdir", name: path, errno: errno))
        }
        switch st.st_mode & S_IFMT {
        case S_IFDIR:
            return load(path)
        case S_IFREG:
            let bytes: [UInt8]
            switch FD.readFile(path) {
            case .success(let b): bytes = b
            case .failure(let e):
                return .failure(EnvDirError(message: "unable to open .envdir", name: path, errno: e.errno))
            }
            // An empty file lists no directories (it is not one empty line).
            guard !bytes.isEmpty else { return .success(()) }
            var lines = bytes.split(separator: 10, omittingEmptySubsequences: false)
            if bytes.last == 10 { lines.removeLast() }
            for line in lines {
                // Paths are used verbatim: relative ones resolve against the current directory.
                guard !line.isEmpty else {
                    return .failure(EnvDirError(message: "empty directory name in .envdir", name: path, errno: EINVAL))
                }
                if case .failure(let e) = load(String(decoding: line, as: UTF8.self)) { return .failure(e) }
            }
            return .success(())
        default:
            return .success(())
        }
    }

    /// One variable per file: first line, trailing blanks cut, NUL → newline; empty file unsets.
    private mutating func loadVariables(_ dir: String) -> Result<Void, EnvDirError> {
        let names: [String]
        switch Path.entries(dir) {
        case .success(let n): names = n
        case .failure(let e):
            return .failure(EnvDirError(message: "unable to read environment directory", name: dir, errno: e.errno))
        }
        for name in names.sorted() where !name.hasPrefix(".") {
            let path = Path.join(dir, name)
            let bytes: [UInt8]
            // Non-blocking open, as the reference: a FIFO without a writer reads as empty.
            switch FD.readFile(path, flags: O_NONBLOCK) {
            case .success(let b): bytes = b
            case .failure(let e):
                if ignoreUnreadable { continue }
                return .failure(EnvDirError(message: "unable to open environment file", name: path, errno: e.errno))
            }
            let key = Array(name.utf8)
            if bytes.isEmpty {
                changes.append(.unset(name: key))
                continue
            }
            var value = Array(bytes.prefix { $0 != 10 })
            while let last = value.last, last == 32 || last == 9 { value.removeLast() }
            for i in value.indices where value[i] == 0 { value[i] = 10 }
            changes.append(.set(name: key, value: value))
        }
        return .success(())
    }

    /// The environment after the queued changes.
    public func apply(to environment: Environment) -> Environment {
        var result = environment
        for change in changes {
            switch change {
            case .set(let name, let value): result.set(name: name, value: value)
            case .unset(let name): result.unset(name: name)
            }
        }
        return result
    }

    /// Convenience: load one directory and apply it.
    public static func load(_ dir: String, into environment: Environment,
                            ignoreUnreadable: Bool = false) -> Result<Environment, EnvDirError> {
        var loader = EnvDirLoader(ignoreUnreadable: ignoreUnreadable)
        return loader.load(dir).map { loader.apply(to: environment) }
    }
}
