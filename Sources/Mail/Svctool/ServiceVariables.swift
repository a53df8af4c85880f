// The variables family: set, modify, unset, remove, import, export and print the envdir
// (variables/) of one service.
import Core
import Glibc

/// One line of an exported variables file: `NAME=value`, `NAME=""` (set, empty) or
/// `NAME=` (unset).
public enum VariablesFile {
    public static func parse(_ text: String) -> [(name: String, value: VariableValue)] {
        var out: [(String, VariableValue)] = []
        for raw in text.split(separator: "\n", omittingEmptySubsequences: true) {
            var line = Substring(raw)
            while let f = line.first, f == " " || f == "\t" { line = line.dropFirst() }
            if line.hasPrefix("#") || line.isEmpty { continue }
            guard let eq = line.firstIndex(of: "=") else { continue }
            let name = String(line[..<eq])
            guard !name.isEmpty, !name.contains("/") else { continue }
            let rest = String(line[line.index(after: eq)...])
            if rest.isEmpty {
                out.append((name, .unset))
            } else {
                let value = String(rest.filter { $0 != "\"" })
                out.append((name, value.isEmpty ? .empty : .value(value)))
            }
        }
        return out
    }

    /// The export format for the variables of `dir` (dot files skipped), sorted by name.
    public static func export(_ dir: String) -> Result<String, SystemError> {
        let names: [String]
        switch Path.entries(dir) {
        case .success(let n): names = n.filter { !$0.hasPrefix(".") }.sorted()
        case .failure(let e): return .failure(e)
        }
        var out = ""
        for name in names {
            let path = Path.join(dir, name)
            guard Path.isRegularFile(path) else { continue }
            switch FD.readFile(path) {
            case .failure(let e): return .failure(e)
            case .success(let bytes):
                if bytes.isEmpty { out += "\(name)=\n"; continue }
                let first = bytes.prefix { $0 != 10 }
                let value = String(decoding: first, as: UTF8.self)
                out += value.isEmpty ? "\(name)=\"\"\n" : "\(name)=\(value)\n"
            }
        }
        return .success(out)
    }
}

struct ServiceVariables {
    let tool: Svctool
    var options: SvctoolOptions { tool.options }
    var diag: Diagnostics { tool.diag }

    /// Every variables directory svctool manages: each service's (and .svscan's), and the
    /// control/defaultqueue envdir.
    func allVariableDirectories() -> [(title: String, dir: String)] {
        let root = tool.settings.serviceDirectory
        var out: [(String, String)] = []
        for name in ((try? Path.entries(root).get()) ?? []).sorted() where !name.hasPrefix(".") || name == ".svscan" {
            let dir = Path.join(Path.join(root, name), "variables")
            if Path.isDirectory(dir) { out.append((Path.join(root, name), dir)) }
        }
        let queue = Path.join(tool.settings.controlDirectory, "defaultqueue")
        if Path.isDirectory(queue) { out.append((queue, queue)) }
        return out
    }

    /// Makes `dir` hold exactly what `file` lists (the restore of --restore-variables).
    func restore(_ dir: String, from file: String) -> Int32 {
        guard case .success(let text) = FD.readFile(file) else {
            return diag.fatal(ExitCode.permanent, "env file \(file) doesn't exist")
        }
        let wanted = VariablesFile.parse(String(decoding: text, as: UTF8.self))
        let saved = Path.status(dir)?.st_mode ?? 0o550
        chmod(dir, (saved & 0o7777) | 0o700)
        defer { chmod(dir, saved & 0o7777) }
        for (name, value) in wanted {
            if case .failure(let e) = ServiceWriter.writeFile(Path.join(dir, name), value.fileBytes, mode: 0o640) { return diag.fatal(e) }
        }
        let names = Set(wanted.map(\.name))
        for name in (try? Path.entries(dir).get()) ?? [] where !name.hasPrefix(".") && !names.contains(name) {
            unlink(Path.join(dir, name))
        }
        tool.say("restored \(dir) from \(file)")
        return 0
    }

    func run() -> Int32 {
        switch options.action {
        case .printVariables: return printVariables()
        case .printAllVariables:
            var status: Int32 = 0
            for (title, dir) in allVariableDirectories() {
                let code = printVariables(dir: dir, title: title)
                if code != 0 { status = code }
            }
            return status
        case .saveVariables:
            for (_, dir) in allVariableDirectories() {
                let saved = Path.status(dir)?.st_mode ?? 0o550
                chmod(dir, (saved & 0o7777) | 0o700)
                let code = export(dir, to: Path.join(dir, ".variables"))
                chmod(dir, saved & 0o7777)
                if code != 0 { return code }
                tool.say("exported \(dir)")
            }
            return 0
        case .restoreAllVariables:
            var status: Int32 = 0
            for (_, dir) in allVariableDirectories() where Path.isRegularFile(Path.join(dir, ".variables")) {
                let code = restore(dir, from: Path.join(dir, ".variables"))
                if code != 0 { status = code }
            }
            return status
        default: break
        }
        guard let service = options.value("service-name") else {
            return diag.fatal(ExitCode.permanent, "service name not specified (--service-name=NAME)")
        }
        let serviceDir = Path.join(tool.settings.serviceDirectory, service)
        guard Path.isDirectory(serviceDir) else {
            return diag.fatal(ExitCode.permanent, "\(serviceDir): No such file or directory")
        }
        let dir = Path.join(serviceDir, "variables")
        if case .failure(let e) = Path.makeDirectories(dir) { return diag.fatal(e) }
        let saved = Path.status(dir)?.st_mode ?? 0o550
        chmod(dir, (saved & 0o7777) | 0o700)
        defer { chmod(dir, saved & 0o7777) }

        switch options.action {
        case .restoreVariables:
            return restore(dir, from: Path.join(dir, ".variables"))
        case .setVariable(let name), .modifyVariable(let name):
            guard valid(name) else { return diag.fatal(ExitCode.permanent, "invalid variable name: \(name)") }
            let path = Path.join(dir, name)
            if case .setVariable = options.action, Path.exists(path), !options.flag("force") {
                return diag.fatal(ExitCode.permanent, "\(name) exists. Use --force to overwrite")
            }
            if case .modifyVariable = options.action, !Path.exists(path), !options.flag("force") {
                return diag.fatal(ExitCode.permanent, "\(name) does not exist. Use --force to create")
            }
            let value: VariableValue = options.value("variable-value").map { $0.isEmpty ? .empty : .value($0) } ?? .empty
            if case .failure(let e) = ServiceWriter.writeFile(path, value.fileBytes, mode: 0o640) { return diag.fatal(e) }
            tool.say("setting env variable \(name)=[\(options.value("variable-value") ?? "")]")
        case .unsetVariable(let name):
            guard valid(name) else { return diag.fatal(ExitCode.permanent, "invalid variable name: \(name)") }
            if case .failure(let e) = ServiceWriter.writeFile(Path.join(dir, name), [], mode: 0o640) { return diag.fatal(e) }
            tool.say("unsetting env variable \(name)")
        case .removeVariable(let name):
            guard valid(name) else { return diag.fatal(ExitCode.permanent, "invalid variable name: \(name)") }
            unlink(Path.join(dir, name))
            tool.say("removing env variable \(name)")
        case .importVariables(let file):
            let text: [UInt8]
            switch FD.readFile(file) {
            case .success(let t): text = t
            case .failure(let e): return diag.fatal(ExitCode.permanent, e.description)
            }
            for (name, value) in VariablesFile.parse(String(decoding: text, as: UTF8.self)) {
                let path = Path.join(dir, name)
                if Path.exists(path) && !options.flag("force") {
                    if !options.flag("silent") {
                        diag.warning("importing variables without --force. not replacing variable \(name)")
                    }
                    continue
                }
                if case .failure(let e) = ServiceWriter.writeFile(path, value.fileBytes, mode: 0o640) { return diag.fatal(e) }
                tool.say(value == .unset ? "unset env variable \(name)" : "set env variable \(name)")
            }
            return 0
        case .exportVariables(let file):
            if Path.exists(file) && !options.flag("force") {
                return diag.fatal(ExitCode.permanent, "\(file) exists and --force not specified")
            }
            return export(dir, to: file)
        default:
            return diag.fatal(ExitCode.permanent, "not a variables action")
        }
        // Every change leaves variables/.variables describing the new state, as the reference.
        return export(dir, to: Path.join(dir, ".variables"))
    }

    func valid(_ name: String) -> Bool {
        !name.isEmpty && !name.hasPrefix(".") && !name.contains("/") && !name.contains("=")
    }

    func export(_ dir: String, to file: String) -> Int32 {
        switch VariablesFile.export(dir) {
        case .failure(let e): return diag.fatal(e)
        case .success(let text):
            if case .failure(let e) = ServiceWriter.writeFile(file, text, mode: 0o640) { return diag.fatal(e) }
            return 0
        }
    }

    func printVariables() -> Int32 {
        let service = options.value("service-name")
        let envdir = options.value("envdir")
        if service != nil && envdir != nil {
            return diag.fatal(ExitCode.permanent, "you cannot specify both service name and envdir both")
        }
        let dir: String
        let title: String
        if let service {
            dir = Path.join(Path.join(tool.settings.serviceDirectory, service), "variables")
            title = Path.join(tool.settings.serviceDirectory, service)
        } else if let envdir {
            dir = envdir
            title = envdir
        } else {
            return diag.fatal(ExitCode.permanent, "service name or envdir has to be specified")
        }
        return printVariables(dir: dir, title: title)
    }

    func printVariables(dir: String, title: String) -> Int32 {
        guard Path.isDirectory(dir) else {
            return diag.fatal(ExitCode.permanent, "\(title): this service has no configured variables")
        }
        let env: Environment
        switch EnvDirLoader.load(dir, into: Environment()) {
        case .success(let e): env = e
        case .failure(let e): return diag.fatal(ExitCode.temporary, e.description)
        }
        var out = "------ environment variables for \(title) ------------\n"
        for entry in env.entries { out += String(decoding: entry, as: UTF8.self) + "\n" }
        out += "\n"
        let link = Path.join(dir, ".envdir")
        if Path.isRegularFile(link), case .success(let bytes) = FD.readFile(link) {
            out += "NOTE: additional variables were obtained from .envdir\n"
            out += String(decoding: bytes, as: UTF8.self)
            if !out.hasSuffix("\n") { out += "\n" }
            out += "\n"
        } else if Path.status(link, followLinks: false) != nil {
            out += "NOTE: additional variables were obtained from \(link)\n\n"
        }
        FD.writeAll(1, Array(out.utf8))
        return 0
    }
}
