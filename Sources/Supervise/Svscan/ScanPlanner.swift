// One scan of the service directory decided as data: which supervise processes to start,
// which to tell `u` or `d`, which slots to drop. The runtime (Svscan) carries it out.
import Core
import Glibc

/// A service directory's identity across renames: (device, inode) of the directory.
public struct ServiceIdentity: Hashable, Sendable, CustomStringConvertible {
    public var device: UInt64
    public var inode: UInt64

    public init(device: UInt64, inode: UInt64) {
        self.device = device
        self.inode = inode
    }

    public init(_ st: stat) { self.init(device: UInt64(st.st_dev), inode: UInt64(st.st_ino)) }

    public var description: String { "\(device):\(inode)" }
}

/// What a scan saw for one name in the scan directory.
public struct ScanEntry: Equatable, Sendable {
    public enum Kind: Equatable, Sendable {
        /// A name starting with "." (other than `.svscan`): a disabled service.
        case disabled
        case notDirectory
        /// stat failed with this errno.
        case unreadable(Int32)
        /// A directory. `log`: nil when there is no `log` entry, else whether it could be
        /// examined (errno on failure). `down`: a `down` file is there.
        case service(ServiceIdentity, log: LogEntry, down: Bool)
    }

    public enum LogEntry: Equatable, Sendable {
        case absent
        case present
        case unreadable(Int32)
    }

    public var name: String
    public var kind: Kind

    public init(name: String, kind: Kind) {
        self.name = name
        self.kind = kind
    }

    /// `.svscan`: svscan's own directory, whose `log` is supervised but never a main service.
    public static let ownDirectory = ".svscan"
}

/// One supervised service as svscan tracks it. Pipe fds live in the runtime.
public struct ServiceSlot: Equatable, Sendable {
    public let identity: ServiceIdentity
    /// Name at the last scan that saw it.
    public var name: String
    /// `.svscan`: only the logger runs.
    public let ownLogger: Bool
    /// `log/` existed when the slot was made: a logger and a pipe belong to it.
    public let hasLog: Bool
    public var mainPID: pid_t?
    public var logPID: pid_t?
    /// What svscan last asked of the main service: up unless a `down` file was there.
    public var wantUp: Bool
    public var mainStartedAt: Double?
    public var logStartedAt: Double?

    public init(identity: ServiceIdentity, name: String, ownLogger: Bool, hasLog: Bool,
                mainPID: pid_t? = nil, logPID: pid_t? = nil, wantUp: Bool = true,
                mainStartedAt: Double? = nil, logStartedAt: Double? = nil) {
        self.identity = identity
        self.name = name
        self.ownLogger = ownLogger
        self.hasLog = hasLog
        self.mainPID = mainPID
        self.logPID = logPID
        self.wantUp = wantUp
        self.mainStartedAt = mainStartedAt
        self.logStartedAt = logStartedAt
    }

    public var hasProcesses: Bool { mainPID != nil || logPID != nil }
}

public enum ScanAction: Equatable, Sendable {
    /// Rename run-state `R/<name>` to `R/.<name>` (name given without the dot) if needed.
    case hideRunState(String)
    /// New slot; the runtime makes its pipe when `hasLog`.
    case addSlot(ServiceIdentity, name: String, hasLog: Bool, ownLogger: Bool)
    /// Start `supervise <name>`; `wantUp` records whether `down` was absent.
    case startMain(ServiceIdentity, name: String, wantUp: Bool)
    /// Write a command to the running supervise's control FIFO (`d` when `down` appeared,
    /// `u` when it went away).
    case control(ServiceIdentity, name: String, ControlCommand)
    /// Start `supervise log <name>` in `<name>`.
    case startLog(ServiceIdentity, name: String)
    /// Forget a slot whose directory is gone and whose processes have ended.
    case dropSlot(ServiceIdentity)
    case warning(String)
}

public struct ScanPlan: Equatable, Sendable {
    public var actions: [ScanAction] = []
    /// Something could not be examined: scan again after the scan interval.
    public var failed = false
    /// A restart held back by the back-off: scan again at this time.
    public var retryAt: Double?
}

public struct ScanPlanner: Sendable {
    /// Most slots kept (svscan -n).
    public var capacity: Int
    /// Minimum seconds between two starts of the same supervise.
    public var restartDelay: Double
    /// Disabled services have their run state renamed (only with a run-state directory).
    public var renamesRunState: Bool

    /// Stands for the pid of a process the plan starts, while planning.
    static let starting: pid_t = -1

    public init(capacity: Int = SvscanConfiguration.defaultCapacity, restartDelay: Double = 1,
                renamesRunState: Bool = true) {
        self.capacity = capacity
        self.restartDelay = restartDelay
        self.renamesRunState = renamesRunState
    }

    /// Plans a scan of `entries` (in directory order) against `slots`. With `complete` false
    /// (svscan's own logger at startup) slots that were not seen are kept.
    public func plan(entries: [ScanEntry], slots: [ServiceSlot], now: Double, complete: Bool = true) -> ScanPlan {
        var plan = ScanPlan()
        var known = slots
        var seen = Set<ServiceIdentity>()

        func holdBack(_ startedAt: Double?) -> Bool {
            guard let startedAt, now - startedAt < restartDelay else { return false }
            let at = startedAt + restartDelay
            plan.retryAt = min(plan.retryAt ?? at, at)
            return true
        }

        for entry in entries {
            let identity: ServiceIdentity, log: ScanEntry.LogEntry, down: Bool
            switch entry.kind {
            case .disabled:
                if renamesRunState && entry.name.count > 1 && entry.name != ScanEntry.ownDirectory {
                    plan.actions.append(.hideRunState(String(entry.name.dropFirst())))
                }
                continue
            case .notDirectory:
                continue
            case .unreadable(let e):
                plan.actions.append(.warning("unable to stat \(entry.name): \(SystemError.describe(e))"))
                plan.failed = true
                continue
            case .service(let i, let l, let d):
                identity = i; log = l; down = d
            }
            let ownLogger = entry.name == ScanEntry.ownDirectory
            var index = known.firstIndex { $0.identity == identity }
            if index == nil {
                guard known.count < capacity else {
                    plan.actions.append(.warning("unable to start \(entry.name): running too many services"))
                    continue
                }
                let hasLog: Bool
                switch log {
                case .absent: hasLog = false
                case .present: hasLog = true
                case .unreadable(let e):
                    plan.actions.append(.warning("unable to stat \(entry.name)/log: \(SystemError.describe(e))"))
                    plan.failed = true
                    continue
                }
                plan.actions.append(.addSlot(identity, name: entry.name, hasLog: hasLog, ownLogger: ownLogger))
                known.append(ServiceSlot(identity: identity, name: entry.name, ownLogger: ownLogger, hasLog: hasLog))
                index = known.count - 1
            }
            guard let i = index else { continue }
            seen.insert(identity)
            known[i].name = entry.name
            let slot = known[i]

            if !slot.ownLogger {
                if slot.mainPID == nil {
                    if !holdBack(slot.mainStartedAt) {
                        plan.actions.append(.startMain(identity, name: entry.name, wantUp: !down))
                        // A second name for the same directory finds it started.
                        known[i].mainPID = ScanPlanner.starting
                        known[i].wantUp = !down
                    }
                } else if slot.wantUp && down {
                    plan.actions.append(.control(identity, name: entry.name, .down))
                } else if !slot.wantUp && !down {
                    plan.actions.append(.control(identity, name: entry.name, .up))
                }
            }
            if slot.hasLog && slot.logPID == nil && !holdBack(slot.logStartedAt) {
                plan.actions.append(.startLog(identity, name: entry.name))
                known[i].logPID = ScanPlanner.starting
            }
        }
        if complete {
            for slot in known where !seen.contains(slot.identity) && !slot.hasProcesses {
                plan.actions.append(.dropSlot(slot.identity))
            }
        }
        return plan
    }
}
