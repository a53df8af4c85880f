// svscan's settings from its command line and environment, parsed without side effects.
import Core

public struct SvscanConfiguration: Equatable, Sendable {
    public static let usage = "svscan [-v] [-s] [-n count] [scandir]"
    /// The reference's default number of service slots.
    public static let defaultCapacity = 1000
    public static let defaultScanInterval = 60.0

    /// -v or VERBOSE: info messages; -v also exports VERBOSE=1 to the children.
    public var verbose = false
    /// -s or SILENT: no warnings; -s also exports SILENT=1.
    public var silent = false
    public var exportVerbose = false
    public var exportSilent = false
    /// -n: how many services (slots) svscan keeps at most.
    public var capacity = SvscanConfiguration.defaultCapacity
    /// The operand; nil means the current directory.
    public var scanDirectory: String?
    /// SCANINTERVAL seconds: the period of AUTOSCAN and the retry delay after a failed scan.
    public var scanInterval = SvscanConfiguration.defaultScanInterval
    /// AUTOSCAN: rescan every interval.
    public var autoScan = false
    /// SCANNOW: rescan as soon as a child dies (always so as PID 1).
    public var scanOnChildExit = false
    /// Run-state directory (SVSCAN_RUNDIR, else /run/svscan or /var/run/svscan); nil when
    /// DISABLE_RUN is set: then state stays in the service directories.
    public var runDirectoryDisabled = false
    public var runDirectoryOverride: String?
    /// SETSID: become a session leader.
    public var newSession = false
    /// SCANLOG: route svscan's own output through the `.svscan/log` service.
    public var scanLog = false
    /// INITCMD: nil when unset; "" means `.svscan/run`.
    public var initCommand: String?
    /// WAIT_INITCMD: wait for INITCMD before the first scan.
    public var waitInitCommand = false
    public var timings = ShutdownTimings()

    public init() {}

    public enum ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        case option(OptionParser.Failure)
        case badCount(String)
        case tooManyOperands
        public var description: String {
            switch self {
            case .option(let f): return f.description
            case .badCount(let v): return "bad service count: \(v)"
            case .tooManyOperands: return "too many arguments"
            }
        }
    }

    public static func parse(_ arguments: [String], environment env: Environment) -> Result<SvscanConfiguration, ParseError> {
        var c = SvscanConfiguration()
        let parsed: (items: [OptionParser.Item], operandIndex: Int)
        switch OptionParser("vsn:").parse(arguments) {
        case .success(let p): parsed = p
        case .failure(let f): return .failure(.option(f))
        }
        for item in parsed.items {
            switch item {
            case .flag("v"): c.verbose = true; c.exportVerbose = true
            case .flag("s"): c.silent = true; c.exportSilent = true
            case .value("n", let v):
                guard let n = Int(v), n > 0 else { return .failure(.badCount(v)) }
                c.capacity = n
            default: break
            }
        }
        let operands = Array(arguments[parsed.operandIndex...])
        guard operands.count <= 1 else { return .failure(.tooManyOperands) }
        c.scanDirectory = operands.first
        if env.contains("VERBOSE") { c.verbose = true }
        if env.contains("SILENT") { c.silent = true }
        if let v = env["SCANINTERVAL"], let seconds = Double(v), seconds > 0, seconds.isFinite {
            c.scanInterval = seconds
        }
        c.autoScan = env.contains("AUTOSCAN")
        c.scanOnChildExit = env.contains("SCANNOW")
        c.runDirectoryDisabled = env.contains("DISABLE_RUN")
        c.runDirectoryOverride = env.nonEmpty("SVSCAN_RUNDIR")
        c.newSession = env.contains("SETSID")
        c.scanLog = env.contains("SCANLOG")
        c.initCommand = env["INITCMD"]
        c.waitInitCommand = env.contains("WAIT_INITCMD")
        c.timings = ShutdownTimings(environment: env)
        return .success(c)
    }

    /// The run-state directory to use and create: SVSCAN_RUNDIR, else /run/svscan when /run
    /// exists, else /var/run/svscan when /var/run exists, else none.
    public func runDirectory(exists: (String) -> Bool) -> String? {
        if runDirectoryDisabled { return nil }
        if let runDirectoryOverride { return runDirectoryOverride }
        if exists("/run") { return "/run/svscan" }
        if exists("/var/run") { return "/var/run/svscan" }
        return nil
    }
}

/// How long an orderly shutdown waits: loggers are sent TERM `loggers` seconds after the
/// main supervise processes (or as soon as those are gone), whatever is left is killed
/// `kill` seconds after them.
public struct ShutdownTimings: Equatable, Sendable {
    public var loggers: Double
    public var kill: Double

    public init(loggers: Double = 2, kill: Double = 4) {
        self.loggers = loggers
        self.kill = kill
    }

    /// KILLWAIT=w: kill after w, loggers after w/2. Else KILLWAIT1 (default 2) and KILLWAIT2
    /// (default 4); KILLWAIT2 alone also sets the logger delay to half of it.
    public init(environment env: Environment) {
        func seconds(_ name: String) -> Double? {
            guard let v = env[name], let d = Double(v), d >= 0, d.isFinite else { return nil }
            return d
        }
        if let w = seconds("KILLWAIT") {
            self.init(loggers: w / 2, kill: w)
            return
        }
        let w1 = seconds("KILLWAIT1"), w2 = seconds("KILLWAIT2")
        let kill = w2 ?? 4
        let loggers = w1 ?? (w2.map { $0 / 2 } ?? 2)
        self.init(loggers: min(loggers, kill), kill: max(kill, 0))
    }
}
