// Path strings and the file-system queries the suite needs, without Foundation.
import Glibc

public enum Path {
    public static func basename(_ path: String) -> String {
        var p = Substring(path)
        while p.count > 1, p.hasSuffix("/") { p.removeLast() }
        guard let slash = p.lastIndex(of: "/") else { return String(p) }
        let tail = p[p.index(after: slash)...]
        return tail.isEmpty ? "/" : String(tail)
    }

    public static func dirname(_ path: String) -> String {
        var p = Substring(path)
        while p.count > 1, p.hasSuffix("/") { p.removeLast() }
        guard let slash = p.lastIndex(of: "/") else { return "." }
        if slash == p.startIndex { return "/" }
        return String(p[..<slash])
    }

    public static func join(_ a: String, _ b: String) -> String {
        if b.hasPrefix("/") || a.isEmpty { return b }
        return a.hasSuffix("/") ? a + b : a + "/" + b
    }

    /// lstat(2)/stat(2) as a value; nil when the call fails (errno is left set).
    public static func status(_ path: String, followLinks: Bool = true) -> stat? {
        var st = stat()
        let r = followLinks ? stat(path, &st) : lstat(path, &st)
        return r == 0 ? st : nil
    }

    public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    public static func isDirectory(_ path: String) -> Bool {
        guard let st = status(path) else { return false }
        return (st.st_mode & S_IFMT) == S_IFDIR
    }

    public static func isRegularFile(_ path: String) -> Bool {
        guard let st = status(path) else { return false }
        return (st.st_mode & S_IFMT) == S_IFREG
    }

    /// mkdir -p with `mode` for the directories it creates.
    public static func makeDirectories(_ path: String, mode: mode_t = 0o755) -> Result<Void, SystemError> {
        if isDirectory(path) { return .success(()) }
        let parent = dirname(path)
        if parent != path, !isDirectory(parent) {
            if case .failure(let e) = makeDirectories(parent, mode: mode) { return .failure(e) }
        }
        if mkdir(path, mode) != 0 && errno != EEXIST {
            return .failure(SystemError("unable to create directory", path))
        }
        return .success(())
    }

    /// fsync the directory holding `path`, so a rename or create in it survives a crash.
    public static func syncDirectory(containing path: String) {
        let fd = open(dirname(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = fsync(fd)
        _ = close(fd)
    }

    /// Names in a directory, "." and ".." left out, in the order readdir gives them.
    public static func entries(_ dir: String) -> Result<[String], SystemError> {
        guard let d = opendir(dir) else { return .failure(SystemError("unable to open directory", dir)) }
        defer { closedir(d) }
        var names: [String] = []
        while true {
            errno = 0
            guard let entry = readdir(d) else {
                if errno != 0 { return .failure(SystemError("unable to read directory", dir)) }
                return .success(names)
            }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
    }

    /// The process's working directory.
    public static func currentDirectory() -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return nil }
        return buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }
}
