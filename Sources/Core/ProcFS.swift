// What Linux's /proc tells about other processes: parent, command name, command line.
import Glibc

public enum ProcFS {
    /// The parent pid from the text of /proc/<pid>/stat: the field after the state, which
    /// follows the last ')' (the command name in parentheses may itself hold ')' or spaces).
    public static func parentPID(statLine: [UInt8]) -> pid_t? {
        guard let close = statLine.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = statLine[(close + 1)...].split(separator: UInt8(ascii: " "))
        guard fields.count >= 2 else { return nil }
        return pid_t(String(decoding: fields[1], as: UTF8.self))
    }

    /// The process state letter (R, S, D, Z, T...) from the text of /proc/<pid>/stat.
    public static func state(statLine: [UInt8]) -> Character? {
        guard let close = statLine.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        guard let field = statLine[(close + 1)...].split(separator: UInt8(ascii: " ")).first,
              let c = field.first else { return nil }
        return Character(UnicodeScalar(c))
    }

    /// Pids listed in /proc, nil when /proc is not mounted.
    public static func allPIDs(root: String = "/proc") -> [pid_t]? {
        guard case .success(let names) = Path.entries(root) else { return nil }
        return names.compactMap { name in
            name.allSatisfy({ $0.isASCII && $0.isNumber }) ? pid_t(name) : nil
        }
    }

    public static func statText(_ pid: pid_t, root: String = "/proc") -> [UInt8]? {
        try? FD.readFile(Path.join(root, "\(pid)/stat")).get()
    }

    /// The children of `parent` that exist now (zombies included), nil without /proc.
    /// Reads the kernel's own list (task/<pid>/children) when it has one, else scans /proc.
    public static func children(of parent: pid_t, root: String = "/proc") -> [pid_t]? {
        if let bytes = try? FD.readFile(Path.join(root, "\(parent)/task/\(parent)/children")).get() {
            return bytes.split(separator: 32).compactMap { pid_t(String(decoding: $0, as: UTF8.self)) }
        }
        guard let pids = allPIDs(root: root) else { return nil }
        return pids.filter { pid in
            guard let line = statText(pid, root: root) else { return false }
            return parentPID(statLine: line) == parent
        }
    }

    /// True when `pid` is `ancestor` or one of its descendants (walks parent links).
    public static func isDescendant(_ pid: pid_t, of ancestor: pid_t, root: String = "/proc") -> Bool {
        var current = pid
        for _ in 0..<64 {
            if current == ancestor { return true }
            guard current > 1, let line = statText(current, root: root), let parent = parentPID(statLine: line) else { return false }
            current = parent
        }
        return false
    }

    /// /proc/<pid>/comm without its newline; nil when the process is gone.
    public static func commandName(_ pid: pid_t, root: String = "/proc") -> String? {
        guard let bytes = try? FD.readFile(Path.join(root, "\(pid)/comm")).get() else { return nil }
        var text = bytes[...]
        if text.last == 10 { text = text.dropLast() }
        return String(decoding: text, as: UTF8.self)
    }

    /// /proc/<pid>/cmdline split at its NUL bytes; nil when the process is gone.
    public static func commandLine(_ pid: pid_t, root: String = "/proc") -> [String]? {
        guard let bytes = try? FD.readFile(Path.join(root, "\(pid)/cmdline")).get() else { return nil }
        return bytes.split(separator: 0, omittingEmptySubsequences: false).dropLast(bytes.last == 0 ? 1 : 0)
            .map { String(decoding: $0, as: UTF8.self) }
    }
}
