// Where everything lives: the reference's defaults, each overridable from the environment,
// so the whole suite runs unprivileged under a test prefix.

public struct SuitePaths: Equatable, Sendable {
    /// SYSCONFDIR, default /etc/indimail.
    public var sysconfDirectory: String
    /// CONTROLDIR (absolute, or relative to SYSCONFDIR), default SYSCONFDIR/control.
    public var controlDirectory: String
    /// ASSIGNDIR, default SYSCONFDIR/users.
    public var assignDirectory: String
    /// QMAILHOME, default /var/indimail.
    public var qmailHome: String
    /// QUEUE_BASE, default QMAILHOME/queue: the collection of queueN directories.
    public var queueBase: String
    /// QUEUEDIR, default QMAILHOME/queue: the single queue used when no collection is given.
    public var queueDirectory: String
    /// SERVICEDIR, default /service.
    public var serviceDirectory: String
    /// SVSCAN_RUNDIR, default /run/svscan: supervise state off the (possibly read-only) tree.
    public var runDirectory: String
    /// LOGDIR, default /var/log/svc.
    public var logDirectory: String
    /// PREFIX for installed programs, default /usr.
    public var prefix: String
    /// LIBEXECDIR, default PREFIX/libexec/indimail.
    public var libexecDirectory: String

    public init(environment env: Environment) {
        sysconfDirectory = env.nonEmpty("SYSCONFDIR") ?? "/etc/indimail"
        let control = env.nonEmpty("CONTROLDIR") ?? "control"
        controlDirectory = Path.join(sysconfDirectory, control)
        assignDirectory = env.nonEmpty("ASSIGNDIR") ?? Path.join(sysconfDirectory, "users")
        qmailHome = env.nonEmpty("QMAILHOME") ?? "/var/indimail"
        queueBase = env.nonEmpty("QUEUE_BASE") ?? Path.join(qmailHome, "queue")
        queueDirectory = env.nonEmpty("QUEUEDIR") ?? Path.join(qmailHome, "queue")
        serviceDirectory = env.nonEmpty("SERVICEDIR") ?? "/service"
        runDirectory = env.nonEmpty("SVSCAN_RUNDIR") ?? "/run/svscan"
        logDirectory = env.nonEmpty("LOGDIR") ?? "/var/log/svc"
        prefix = env.nonEmpty("PREFIX") ?? "/usr"
        libexecDirectory = env.nonEmpty("LIBEXECDIR") ?? Path.join(prefix, "libexec/indimail")
    }
}
