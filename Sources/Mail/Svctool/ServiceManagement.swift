// Managing existing services: take them out of svscan's view and back, regenerate them from
// their stored command line, and report or back up the whole configuration.
import Core
import Glibc

struct ServiceManagement {
    let tool: Svctool
    var diag: Diagnostics { tool.diag }
    var serviceDirectory: String { tool.settings.serviceDirectory }

    /// A name as given on the command line: a full path, or one relative to SERVICEDIR.
    func path(_ given: String) -> String {
        given.hasPrefix("/") ? given : Path.join(serviceDirectory, given)
    }

    /// Where --rmsvc keeps a disabled service: `.name` beside it, which svscan skips.
    func hiddenPath(_ dir: String) -> String {
        Path.join(Path.dirname(dir), "." + Path.basename(dir))
    }

    /// --rmsvc: stop the service and its logger, then rename it to `.name` so svscan skips it.
    func disable(_ list: [String]) -> Int32 {
        var status: Int32 = 0
        for given in list {
            let dir = path(given)
            let hidden = hiddenPath(dir)
            guard Path.isDirectory(dir) else {
                if Path.isDirectory(hidden) { tool.say("\(dir) already disabled"); continue }
                status = diag.fatal(ExitCode.permanent, "\(dir): No such file or directory")
                continue
            }
            var targets = [dir]
            if Path.isDirectory(Path.join(dir, "log")) { targets.append(Path.join(dir, "log")) }
            if Path.exists(Path.join(dir, "supervise")) { _ = tool.runSelf(["svc", "-dx"] + targets, quiet: true) }
            if rename(dir, hidden) != 0 {
                status = diag.fatal(SystemError("unable to rename", dir))
                continue
            }
            tool.say("disabled \(dir)")
        }
        return status
    }

    /// --ensvc: the reverse of --rmsvc; svscan picks the service up on its next scan.
    func enable(_ list: [String]) -> Int32 {
        var status: Int32 = 0
        for given in list {
            let dir = path(given)
            let hidden = hiddenPath(dir)
            guard Path.isDirectory(hidden) else {
                if Path.isDirectory(dir) { tool.say("\(dir) already enabled"); continue }
                status = diag.fatal(ExitCode.permanent, "\(hidden): No such file or directory")
                continue
            }
            if Path.exists(dir) {
                status = diag.fatal(ExitCode.permanent, "\(dir) exists: not replacing it with \(hidden)")
                continue
            }
            if rename(hidden, dir) != 0 {
                status = diag.fatal(SystemError("unable to rename", hidden))
                continue
            }
            tool.say("enabled \(dir)")
        }
        return status
    }

    /// Every service with a stored command line: SERVICEDIR/*/variables/.options and .svscan.
    func allServices() -> [String] {
        guard case .success(let names) = Path.entries(serviceDirectory) else { return [] }
        return names.sorted().filter { name in
            (!name.hasPrefix(".") || name == ".svscan")
                && Path.isRegularFile(Path.join(Path.join(serviceDirectory, name), "variables/.options"))
        }.map { Path.join(serviceDirectory, $0) }
    }

    /// --refreshsvc: run the stored command line again, over the existing directory.
    func refresh(_ which: String) -> Int32 {
        let list = which == "all" ? allServices() : which.split(separator: " ").map { path(String($0)) }
        var status: Int32 = 0
        for dir in list {
            let variables = Path.join(dir, "variables")
            if Path.exists(Path.join(variables, ".norefreshsvc")) && !tool.options.flag("force") {
                tool.say("skipping \(dir): autorefresh is off (.norefreshsvc)")
                continue
            }
            let stored: [UInt8]
            switch FD.readFile(Path.join(variables, ".options")) {
            case .success(let b): stored = b
            case .failure(let e):
                status = diag.fatal(ExitCode.permanent, "\(dir): no stored command line: \(e)")
                continue
            }
            var words = shellWords(String(decoding: stored, as: UTF8.self))
            // Leading NAME=value words are the environment the service was made in.
            var env = tool.context.environment
            while let first = words.first, let eq = first.firstIndex(of: "="), !first.hasPrefix("-"),
                  first[..<eq].allSatisfy({ $0.isUppercase || $0.isNumber || $0 == "_" }) {
                env[String(first[..<eq])] = String(first[first.index(after: eq)...])
                words.removeFirst()
            }
            if let first = words.first, first.hasSuffix("svctool") { words.removeFirst() }
            // The refresh's own switches apply on top of what was stored.
            if !words.contains("--force") { words.append("--force") }
            if tool.options.flag("run-file-only") && !words.contains("--run-file-only") { words.append("--run-file-only") }
            if tool.options.flag("silent") && !words.contains("--silent") { words.append("--silent") }
            let options: SvctoolOptions
            switch SvctoolOptions.parse(words) {
            case .success(let o): options = o
            case .failure(let e):
                status = diag.fatal(ExitCode.permanent, "\(dir): stored command line: \(e)")
                continue
            }
            // The stored line keeps its own --servicedir; without one, the service's parent.
            if options.value("servicedir") == nil { env["SERVICEDIR"] = Path.dirname(dir) }
            let settings = SvctoolSettings(options: options, environment: env)
            var context = tool.context
            context.environment = env
            let code = Svctool(options: options, settings: settings, context: context).perform()
            if code != 0 { status = code } else { tool.say("refreshed \(dir)") }
        }
        return status
    }

    /// --autorefresh="0|1 SERVICE|all": 0 writes variables/.norefreshsvc, 1 removes it.
    func autorefresh(_ spec: String) -> Int32 {
        let words = spec.split(separator: " ").map(String.init)
        guard words.count >= 2, words[0] == "0" || words[0] == "1" else {
            return diag.fatal(ExitCode.permanent, "--autorefresh wants \"0|1 service_path\"")
        }
        let list = words[1] == "all" ? allServices() : words.dropFirst().map(path)
        for dir in list {
            let variables = Path.join(dir, "variables")
            guard Path.isDirectory(variables) else {
                return diag.fatal(ExitCode.permanent, "\(variables): No such file or directory")
            }
            let marker = Path.join(variables, ".norefreshsvc")
            let saved = Path.status(variables)?.st_mode ?? 0o550
            chmod(variables, (saved & 0o7777) | 0o700)
            if words[0] == "0" {
                _ = ServiceWriter.writeFile(marker, "", mode: 0o644)
            } else {
                unlink(marker)
            }
            chmod(variables, saved & 0o7777)
            tool.say("\(words[0] == "0" ? "disabled" : "enabled") autorefresh for \(dir)")
        }
        return 0
    }

    /// --dumpconfig: every service (run script, variables) and every control file.
    func dumpConfig() -> Int32 {
        var out = ""
        let services = (try? Path.entries(serviceDirectory).get())?.sorted() ?? []
        for name in services where !name.hasPrefix(".svctool") {
            let dir = Path.join(serviceDirectory, name)
            guard Path.isDirectory(dir) else { continue }
            out += "==== service \(dir) ====\n"
            if case .success(let run) = FD.readFile(Path.join(dir, "run")) {
                out += "---- run ----\n" + String(decoding: run, as: UTF8.self)
            }
            if case .success(let vars) = VariablesFile.export(Path.join(dir, "variables")) {
                out += "---- variables ----\n" + vars
            }
            out += "\n"
        }
        let control = tool.settings.controlDirectory
        out += "==== control files \(control) ====\n"
        for name in ((try? Path.entries(control).get()) ?? []).sorted() {
            let file = Path.join(control, name)
            guard Path.isRegularFile(file), !name.hasSuffix(".cdb"),
                  case .success(let bytes) = FD.readFile(file) else { continue }
            out += "---- \(name) ----\n" + String(decoding: bytes.prefix(4096), as: UTF8.self)
            if !out.hasSuffix("\n") { out += "\n" }
        }
        FD.writeAll(1, Array(out.utf8))
        return 0
    }

    /// --backup=DIR: a tar.gz of SERVICEDIR (without supervise state) and SYSCONFDIR.
    func backup(_ dir: String) -> Int32 {
        if case .failure(let e) = Path.makeDirectories(dir) { return diag.fatal(e) }
        var now = time(nil)
        var t = tm()
        gmtime_r(&now, &t)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        let stamp = "\(Int(t.tm_year) + 1900)\(two(t.tm_mon + 1))\(two(t.tm_mday))-\(two(t.tm_hour))\(two(t.tm_min))\(two(t.tm_sec))"
        let archive = Path.join(dir, "indimail-backup-\(stamp).tar.gz")
        var argv = ["tar", "--exclude=supervise", "--exclude=*.lock", "-czf", archive]
        for path in [serviceDirectory, tool.settings.sysconfDirectory] where Path.exists(path) {
            argv += ["-C", Path.dirname(path), Path.basename(path)]
        }
        let code = tool.runProgram(argv)
        guard code == 0 else { return diag.fatal(ExitCode.temporary, "tar failed with status \(code)") }
        tool.say("backup written to \(archive)")
        return 0
    }
}
