// Names inside a service's supervise/ directory, shared by supervise and its clients.

public enum SuperviseFiles {
    public static let directory = "supervise"
    /// Regular file, flock'ed by the one supervise of the service.
    public static let lock = "lock"
    /// FIFO: command letters (ControlCommand) from svc and svscan.
    public static let control = "control"
    /// FIFO held open for reading by supervise for its whole life: a non-blocking write
    /// open succeeds exactly when supervise runs (svok).
    public static let ok = "ok"
    /// FIFO opened for reading while ./run runs (svc -w waits on a blocking write open).
    public static let up = "up"
    /// FIFO opened for reading while the service is (being) down (svc -W).
    public static let down = "dn"
    /// FIFO opened for reading once the service reported readiness, or at start when it has
    /// no readiness protocol (svc -R). Our addition.
    public static let ready = "rdy"
    /// ServiceStatus, rewritten in place.
    public static let status = "status"

    /// In a service directory: an fd number; the service writes a newline on that fd when
    /// it is ready (s6's notification-fd protocol).
    public static let notificationFD = "notification-fd"
    /// In a service directory: present (any content) to give ./run a NOTIFY_SOCKET and
    /// accept systemd-style READY=1 datagrams from it.
    public static let notifySocket = "notify-socket"
}
