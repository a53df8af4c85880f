// A service directory as a value (run, log/run, variables/…) and the one way it reaches the
// disk: built complete under a hidden temp name, then renamed into place.
import Core
import Glibc

/// One file of an envdir. envdir reads a 0-byte file as "remove the variable", a lone newline
/// as "set, empty", anything else by its first line.
public enum VariableValue: Equatable, Sendable {
    case unset
    case empty
    case value(String)

    public var fileBytes: [UInt8] {
        switch self {
        case .unset: return []
        case .empty: return [10]
        case .value(let v): return Array(v.utf8) + [10]
        }
    }

    /// The reference's switches: `echo > FILE` for on, `> FILE` for off.
    public static func flag(_ on: Bool) -> VariableValue { on ? .empty : .unset }
}

public struct ServiceBlueprint: Sendable {
    /// The directory name under SERVICEDIR, e.g. `qmail-smtpd.25` or `.svscan`.
    public var name: String
    /// run script; nil for directories that have none (`.svscan`).
    public var run: String?
    public var logRun: String
    /// The multilog directory to create (LOGDIR/name).
    public var logDirectory: String
    public var variables: [(name: String, value: VariableValue)]
    /// `.envdir`: where the shared variables live (control/global_vars).
    public var envdir: String?
    /// `.options`: the svctool command line that made the service, for --refreshsvc.
    public var options: String
    public var down: Bool
    public var extraFiles: [(name: String, contents: String, mode: mode_t)]
    /// The variables directory's mode as the reference sets it (0550 listeners, 0500 others).
    public var variablesMode: mode_t

    public init(name: String, run: String?, logRun: String, logDirectory: String,
                variables: [(name: String, value: VariableValue)] = [], envdir: String? = nil,
                options: String, down: Bool = false, extraFiles: [(name: String, contents: String, mode: mode_t)] = [],
                variablesMode: mode_t = 0o550) {
        self.name = name
        self.run = run
        self.logRun = logRun
        self.logDirectory = logDirectory
        self.variables = variables
        self.envdir = envdir
        self.options = options
        self.down = down
        self.extraFiles = extraFiles
        self.variablesMode = variablesMode
    }

    /// Sets a variable, replacing an earlier value of the same name.
    public mutating func set(_ name: String, _ value: VariableValue) {
        if let i = variables.firstIndex(where: { $0.name == name }) { variables[i].value = value } else {
            variables.append((name, value))
        }
    }

    public func value(of name: String) -> VariableValue? {
        variables.first { $0.name == name }?.value
    }
}

public enum ServiceWriteError: Error, Equatable, CustomStringConvertible {
    case exists(String)
    case system(SystemError)

    public var description: String {
        switch self {
        case .exists(let path): return "\(path) exists (use --force to overwrite or --refreshsvc to regenerate)"
        case .system(let e): return e.description
        }
    }
}

/// Who owns what, applied only when running as root.
public struct ServiceOwnership: Sendable {
    public var variablesGroup: gid_t?
    public var logUser: (uid: uid_t, gid: gid_t)?

    public init(variablesGroup: gid_t? = nil, logUser: (uid: uid_t, gid: gid_t)? = nil) {
        self.variablesGroup = variablesGroup
        self.logUser = logUser
    }
}

public enum ServiceWriter {
    public enum Mode: Equatable, Sendable {
        /// A new service: refuses an existing directory.
        case create
        /// Rewrites an existing one in place (each file replaced atomically, so a running
        /// supervise keeps its directory); `runFileOnly` keeps the variables as they are.
        case replace(runFileOnly: Bool)
    }

    public static func install(_ blueprint: ServiceBlueprint, in serviceDirectory: String, mode: Mode,
                               ownership: ServiceOwnership = ServiceOwnership()) -> Result<String, ServiceWriteError> {
        let target = Path.join(serviceDirectory, blueprint.name)
        if case .failure(let e) = Path.makeDirectories(serviceDirectory) { return .failure(.system(e)) }
        if case .failure(let e) = Path.makeDirectories(blueprint.logDirectory) { return .failure(.system(e)) }
        if getuid() == 0, let log = ownership.logUser { _ = chown(blueprint.logDirectory, log.uid, log.gid) }
        let exists = Path.status(target, followLinks: false) != nil
        switch mode {
        case .create:
            if exists { return .failure(.exists(target)) }
            let temp = Path.join(serviceDirectory, ".svctool.\(getpid()).\(blueprint.name)")
            _ = removeTree(temp)
            if case .failure(let e) = build(blueprint, at: temp, ownership: ownership, includeVariables: true) {
                _ = removeTree(temp)
                return .failure(.system(e))
            }
            if rename(temp, target) != 0 {
                let e = SystemError("unable to rename", temp)
                _ = removeTree(temp)
                return .failure(.system(e))
            }
            Path.syncDirectory(containing: target)
            return .success(target)
        case .replace(let runFileOnly):
            if !exists {
                return install(blueprint, in: serviceDirectory, mode: .create, ownership: ownership)
            }
            // Build a complete copy aside, then move its parts over one by one.
            let temp = Path.join(serviceDirectory, ".svctool.\(getpid()).\(blueprint.name)")
            _ = removeTree(temp)
            if case .failure(let e) = build(blueprint, at: temp, ownership: ownership, includeVariables: !runFileOnly) {
                _ = removeTree(temp)
                return .failure(.system(e))
            }
            defer { _ = removeTree(temp) }
            _ = Path.makeDirectories(Path.join(target, "log"))
            var parts = ["log/run"]
            if blueprint.run != nil { parts.append("run") }
            parts += blueprint.extraFiles.map { $0.name }
            for part in parts {
                if rename(Path.join(temp, part), Path.join(target, part)) != 0 {
                    return .failure(.system(SystemError("unable to rename", Path.join(temp, part))))
                }
            }
            let downFile = Path.join(target, "down")
            if blueprint.down { _ = writeFile(downFile, "", mode: 0o644) }
            if !runFileOnly {
                let old = Path.join(target, ".variables.old")
                _ = removeTree(old)
                let current = Path.join(target, "variables")
                let hadVariables = Path.status(current, followLinks: false) != nil
                if hadVariables, rename(current, old) != 0 {
                    return .failure(.system(SystemError("unable to rename", current)))
                }
                if rename(Path.join(temp, "variables"), current) != 0 {
                    let e = SystemError("unable to rename", Path.join(temp, "variables"))
                    if hadVariables { _ = rename(old, current) }
                    return .failure(.system(e))
                }
                _ = removeTree(old)
            }
            Path.syncDirectory(containing: Path.join(target, "run"))
            return .success(target)
        }
    }

    private static func build(_ blueprint: ServiceBlueprint, at dir: String, ownership: ServiceOwnership,
                              includeVariables: Bool) -> Result<Void, SystemError> {
        if case .failure(let e) = Path.makeDirectories(Path.join(dir, "log")) { return .failure(e) }
        if let run = blueprint.run {
            if case .failure(let e) = writeFile(Path.join(dir, "run"), run, mode: 0o755) { return .failure(e) }
        }
        if case .failure(let e) = writeFile(Path.join(dir, "log/run"), blueprint.logRun, mode: 0o755) { return .failure(e) }
        for extra in blueprint.extraFiles {
            if case .failure(let e) = writeFile(Path.join(dir, extra.name), extra.contents, mode: extra.mode) { return .failure(e) }
        }
        if blueprint.down {
            if case .failure(let e) = writeFile(Path.join(dir, "down"), "", mode: 0o644) { return .failure(e) }
        }
        guard includeVariables else { return .success(()) }
        let variables = Path.join(dir, "variables")
        if case .failure(let e) = Path.makeDirectories(variables, mode: 0o755) { return .failure(e) }
        for (name, value) in blueprint.variables {
            if case .failure(let e) = writeFile(Path.join(variables, name), value.fileBytes, mode: 0o644) { return .failure(e) }
        }
        if let envdir = blueprint.envdir {
            if case .failure(let e) = writeFile(Path.join(variables, ".envdir"), envdir + "\n", mode: 0o644) { return .failure(e) }
        }
        if case .failure(let e) = writeFile(Path.join(variables, ".options"), blueprint.options + "\n", mode: 0o644) {
            return .failure(e)
        }
        if getuid() == 0 {
            if let group = ownership.variablesGroup { _ = chown(variables, 0, group) }
            chmod(variables, blueprint.variablesMode)
        } else {
            // Unprivileged, the owner keeps write access so the variables family can edit it.
            chmod(variables, blueprint.variablesMode | 0o200)
        }
        return .success(())
    }

    /// Writes `contents` to `path` through a temp file and rename: readers see the old or
    /// the new file, never a half.
    @discardableResult
    public static func writeFile(_ path: String, _ contents: String, mode: mode_t) -> Result<Void, SystemError> {
        writeFile(path, Array(contents.utf8), mode: mode)
    }

    @discardableResult
    public static func writeFile(_ path: String, _ bytes: [UInt8], mode: mode_t) -> Result<Void, SystemError> {
        let temp = path + ".tmp.\(getpid())"
        let fd: Int32
        switch FD.open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode: mode) {
        case .success(let f): fd = f
        case .failure(let e): return .failure(e)
        }
        if case .failure(let e) = FD.writeAll(fd, bytes) { FD.close(fd); unlink(temp); return .failure(e) }
        _ = FD.sync(fd)
        FD.close(fd)
        chmod(temp, mode)
        if rename(temp, path) != 0 {
            let e = SystemError("unable to rename", temp)
            unlink(temp)
            return .failure(e)
        }
        return .success(())
    }

    /// rm -rf, without following symlinks.
    @discardableResult
    public static func removeTree(_ path: String) -> Bool {
        guard let st = Path.status(path, followLinks: false) else { return true }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            chmod(path, 0o700)
            if case .success(let names) = Path.entries(path) {
                for name in names { removeTree(Path.join(path, name)) }
            }
            return rmdir(path) == 0
        }
        return unlink(path) == 0
    }
}
