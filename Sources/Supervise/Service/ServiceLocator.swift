// Where a service's supervise/ state lives: in the service directory (djb), or under the
// run-state directory (indimail: /run/svscan/<svc>/supervise) so the tree can be read-only.
import Core
import Glibc

public struct ServiceLocator: Sendable {
    /// Run-state directories to probe, in order (SVSCAN_RUNDIR alone when it is set).
    public let runDirectories: [String]
    public let disabled: Bool

    public init(environment: Environment) {
        if let dir = environment.nonEmpty("SVSCAN_RUNDIR") {
            runDirectories = [dir]
        } else {
            runDirectories = ["/run/svscan", "/var/run/svscan"]
        }
        disabled = environment.contains("DISABLE_RUN")
    }

    /// The first run-state directory that exists, as supervise and the clients use it.
    public var existingRunDirectory: String? {
        disabled ? nil : runDirectories.first { Path.isDirectory($0) }
    }

    /// The run-state directory of a service: `R/<name>` for a main service, `R/<parent>/log`
    /// for a logger (`name` == "log"), nil without a run dir.
    public func runStateDirectory(service name: String, parent: String?) -> String? {
        guard let r = existingRunDirectory else { return nil }
        if name == "log", let parent { return Path.join(r, parent + "/log") }
        return Path.join(r, name)
    }

    /// `dir` made absolute against the current directory, "." and trailing "/" resolved.
    static func absolute(_ dir: String) -> String? {
        var path = dir
        if !path.hasPrefix("/") {
            guard let cwd = Path.currentDirectory() else { return nil }
            path = Path.join(cwd, path)
        }
        var parts: [Substring] = []
        for part in path.split(separator: "/") {
            if part == "." || part.isEmpty { continue }
            if part == ".." { if !parts.isEmpty { parts.removeLast() }; continue }
            parts.append(part)
        }
        return "/" + parts.joined(separator: "/")
    }
}
