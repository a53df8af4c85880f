// Where svctool writes and what the generated services refer to: options first, then the
// environment (SuitePaths, SuiteAccounts), then the reference's defaults.
import Core
import Glibc

public struct SvctoolSettings: Sendable {
    public var serviceDirectory: String
    public var sysconfDirectory: String
    public var controlDirectory: String
    /// True when the control directory is not the default one: services then carry CONTROLDIR.
    public var controlDirectoryChosen: Bool
    public var prefix: String
    public var logDirectory: String
    public var queueBase: String
    public var queueCount: Int
    public var queueStart: Int
    public var accounts: SuiteAccounts
    public var isRoot: Bool
    /// The path and account variables this run was given, kept in front of the stored command
    /// line (variables/.options) so a refresh rebuilds the same tree whatever its own
    /// environment.
    public var recordedEnvironment: [(name: String, value: String)]

    static let recordedNames = [
        "SYSCONFDIR", "CONTROLDIR", "ASSIGNDIR", "QMAILHOME", "QUEUE_BASE", "LOGDIR", "PREFIX", "CONFSPLIT",
        "QMAILD_USER", "QMAILL_USER", "QMAILP_USER", "QMAILQ_USER", "QMAILR_USER", "QMAILS_USER", "ALIAS_USER",
        "INDIMAIL_USER", "QMAIL_GROUP", "NOFILES_GROUP",
    ]

    public init(options: SvctoolOptions, environment env: Environment) {
        var paths = SuitePaths(environment: env)
        if let s = options.value("sysconfdir") {
            var e = env
            e["SYSCONFDIR"] = s
            paths = SuitePaths(environment: e)
        }
        sysconfDirectory = paths.sysconfDirectory
        if let c = options.value("cntrldir") {
            controlDirectory = Path.join(sysconfDirectory, c)
        } else {
            controlDirectory = paths.controlDirectory
        }
        // The service directory: the option, SERVICEDIR, control/servicedir.conf, /service.
        if let s = options.value("servicedir") {
            serviceDirectory = s
        } else if env.nonEmpty("SERVICEDIR") != nil {
            serviceDirectory = paths.serviceDirectory
        } else if case .success(let s?) = ControlFiles(directory: controlDirectory).value("servicedir.conf"), !s.isEmpty {
            serviceDirectory = s
        } else {
            serviceDirectory = paths.serviceDirectory
        }
        controlDirectoryChosen = options.value("cntrldir") != nil || env.nonEmpty("CONTROLDIR") != nil
            || options.value("sysconfdir") != nil || env.nonEmpty("SYSCONFDIR") != nil
        prefix = paths.prefix
        logDirectory = paths.logDirectory
        queueBase = options.value("qbase") ?? paths.queueBase
        queueCount = options.value("qcount").flatMap { Int($0) } ?? env.nonEmpty("QUEUE_COUNT").flatMap { Int($0) } ?? 5
        queueStart = options.value("qstart").flatMap { Int($0) } ?? env.nonEmpty("QUEUE_START").flatMap { Int($0) } ?? 1
        accounts = SuiteAccounts(environment: env)
        isRoot = getuid() == 0
        recordedEnvironment = Self.recordedNames.compactMap { name in env.nonEmpty(name).map { (name, $0) } }
    }

    /// control/global_vars: the variables every service shares through `.envdir`.
    public var globalVariables: String { Path.join(controlDirectory, "global_vars") }

    /// PATH for the services: the suite's bin and sbin first.
    public var servicePath: String {
        prefix == "/usr" ? "/bin:/usr/bin:/usr/sbin:/sbin" : "\(prefix)/bin:\(prefix)/sbin:/bin:/usr/bin:/usr/sbin:/sbin"
    }

    public func program(_ directory: String, _ name: String) -> String { Path.join(Path.join(prefix, directory), name) }
}
