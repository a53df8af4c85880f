// Control files as qmail reads them: one value (first line), an integer, or a list;
// a missing file means the default. Lists may also live in a cdb next to the text file.
import Glibc

public enum ControlError: Error, Equatable, Sendable, CustomStringConvertible {
    case unreadable(SystemError)
    /// The file exists but its content is not what the setting needs.
    case invalid(path: String, reason: String)
    case cdb(path: String, CDBError)

    public var description: String {
        switch self {
        case .unreadable(let e): return e.description
        case .invalid(let path, let reason): return "unable to parse \(path): \(reason)"
        case .cdb(let path, let e): return "unable to read \(path): \(e)"
        }
    }
}

/// A directory of control files (CONTROLDIR).
public struct ControlFiles: Sendable {
    public let directory: String

    public init(directory: String) { self.directory = directory }

    public init(paths: SuitePaths) { self.directory = paths.controlDirectory }

    public func path(_ name: String) -> String { Path.join(directory, name) }

    /// Raw file contents; nil when the file does not exist.
    public func contents(_ name: String) -> Result<[UInt8]?, ControlError> {
        switch FD.readFile(path(name)) {
        case .success(let bytes): return .success(bytes)
        case .failure(let e) where e.errno == ENOENT: return .success(nil)
        case .failure(let e): return .failure(.unreadable(e))
        }
    }

    /// First line with trailing white space removed; `defaultValue` when the file is missing.
    public func value(_ name: String, default defaultValue: String? = nil) -> Result<String?, ControlError> {
        contents(name).map { bytes in
            guard let bytes else { return defaultValue }
            return ControlFiles.trimmed(bytes.prefix { $0 != 10 })
        }
    }

    /// A non-negative decimal setting; `defaultValue` when the file is missing.
    public func integer(_ name: String, default defaultValue: Int) -> Result<Int, ControlError> {
        value(name).flatMap { text in
            guard let text else { return .success(defaultValue) }
            guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let n = Int(text) else {
                return .failure(.invalid(path: path(name), reason: "not a number: \(text)"))
            }
            return .success(n)
        }
    }

    /// One entry per line, trailing blanks cut, blank lines and `#` comments skipped;
    /// nil when the file is missing.
    public func list(_ name: String) -> Result<[String]?, ControlError> {
        contents(name).map { bytes in
            guard let bytes else { return nil }
            return bytes.split(separator: 10).compactMap { line in
                let entry = ControlFiles.trimmed(line)
                return entry.isEmpty || entry.hasPrefix("#") ? nil : entry
            }
        }
    }

    private static func trimmed(_ bytes: some Collection<UInt8>) -> String {
        var line = Array(bytes)
        while let last = line.last, last == 32 || last == 9 || last == 13 || last == 0 { line.removeLast() }
        return String(decoding: line, as: UTF8.self)
    }
}

/// A list setting looked up by key: `<name>.cdb` when present (built by qmail-cdb / the
/// operator), else the text file `<name>`, else empty.
public struct ControlSet {
    private enum Source { case cdb(CDB), list(Set<String>), empty }
    private let source: Source

    public static func load(_ name: String, in control: ControlFiles,
                            lowercased: Bool = true) -> Result<ControlSet, ControlError> {
        let cdbPath = control.path(name + ".cdb")
        switch CDB.open(cdbPath) {
        case .success(let db): return .success(ControlSet(source: .cdb(db)))
        case .failure(.system(let e)) where e.errno == ENOENT: break
        case .failure(let e): return .failure(.cdb(path: cdbPath, e))
        }
        return control.list(name).map { entries in
            guard let entries else { return ControlSet(source: .empty) }
            return ControlSet(source: .list(Set(entries.map { lowercased ? $0.lowercased() : $0 })))
        }
    }

    public func contains(_ key: String) -> Result<Bool, ControlError> {
        switch source {
        case .empty: return .success(false)
        case .list(let set): return .success(set.contains(key))
        case .cdb(let db):
            switch db.find(key) {
            case .success(let value): return .success(value != nil)
            case .failure(let e): return .failure(.cdb(path: "cdb", e))
            }
        }
    }

    public var isEmpty: Bool {
        if case .empty = source { return true }
        if case .list(let set) = source { return set.isEmpty }
        return false
    }
}
