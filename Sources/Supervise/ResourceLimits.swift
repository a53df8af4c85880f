// Resource limits as softlimit takes them: which resources each flag covers, how a limit
// argument reads, and what the new limit pair becomes. Pure, apart from `apply`.
import CSupport
import Core
import Glibc

/// A limit as written on the command line.
public enum LimitValue: Equatable, Sendable {
    /// "=": the soft limit rises (or falls) to the hard limit.
    case hard
    /// "-1": soft and hard both become unlimited (raising the hard limit needs privilege).
    case unlimited
    /// A number: the soft limit, never above the hard limit.
    case value(rlim_t)

    /// "=", "-1", or decimal digits with an optional "+". A number too large for rlim_t
    /// saturates, which the hard limit then caps. Anything else is not a limit.
    public init?(_ text: String) {
        if text == "=" { self = .hard; return }
        if text == "-1" { self = .unlimited; return }
        var digits = Substring(text)
        if digits.first == "+" { digits = digits.dropFirst() }
        guard !digits.isEmpty else { return nil }
        var n: rlim_t = 0
        var saturated = false
        for c in digits.utf8 {
            guard c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") else { return nil }
            if saturated { continue }
            let (times10, o1) = n.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(rlim_t(c - UInt8(ascii: "0")))
            if o1 || o2 { saturated = true; n = rlim_t.max } else { n = sum }
        }
        self = .value(n)
    }

    /// The pair to install, given the current one.
    public func applied(to current: rlimit) -> rlimit {
        var next = current
        switch self {
        case .hard: next.rlim_cur = current.rlim_max
        case .unlimited:
            next.rlim_cur = cs_rlim_infinity()
            next.rlim_max = cs_rlim_infinity()
        case .value(let n): next.rlim_cur = min(n, current.rlim_max)
        }
        return next
    }
}

/// One resource of getrlimit(2), named for messages.
public struct Resource: Equatable, Sendable {
    public let number: Int32
    public let name: String

    public static let addressSpace = Resource(number: cs_RLIMIT_AS, name: "RLIMIT_AS")
    public static let core = Resource(number: cs_RLIMIT_CORE, name: "RLIMIT_CORE")
    public static let cpu = Resource(number: cs_RLIMIT_CPU, name: "RLIMIT_CPU")
    public static let data = Resource(number: cs_RLIMIT_DATA, name: "RLIMIT_DATA")
    public static let fileSize = Resource(number: cs_RLIMIT_FSIZE, name: "RLIMIT_FSIZE")
    public static let lockedMemory = Resource(number: cs_RLIMIT_MEMLOCK, name: "RLIMIT_MEMLOCK")
    public static let messageQueues = Resource(number: cs_RLIMIT_MSGQUEUE, name: "RLIMIT_MSGQUEUE")
    public static let openFiles = Resource(number: cs_RLIMIT_NOFILE, name: "RLIMIT_NOFILE")
    public static let processes = Resource(number: cs_RLIMIT_NPROC, name: "RLIMIT_NPROC")
    public static let residentSet = Resource(number: cs_RLIMIT_RSS, name: "RLIMIT_RSS")
    public static let stack = Resource(number: cs_RLIMIT_STACK, name: "RLIMIT_STACK")

    /// The resources a softlimit flag sets, in the reference's order. Linux has neither
    /// RLIMIT_VMEM nor a distinct RLIMIT_OFILE, so -a is RLIMIT_AS and -o RLIMIT_NOFILE.
    public static func forFlag(_ flag: Character) -> [Resource] {
        switch flag {
        case "a": return [.addressSpace]
        case "c": return [.core]
        case "d": return [.data]
        case "f": return [.fileSize]
        case "l": return [.lockedMemory]
        case "m": return [.data, .stack, .lockedMemory, .addressSpace]
        case "o": return [.openFiles]
        case "p": return [.processes]
        case "q": return [.messageQueues]
        case "r": return [.residentSet]
        case "s": return [.stack]
        case "t": return [.cpu]
        default: return []
        }
    }

    /// The getopt spec of every flag above.
    public static let flagSpec = "a:c:d:f:l:m:o:p:q:r:s:t:"
}

public struct LimitChange: Equatable, Sendable {
    public let resource: Resource
    public let value: LimitValue

    public init(resource: Resource, value: LimitValue) {
        self.resource = resource
        self.value = value
    }

    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        case get(Resource, Int32)
        case set(Resource, Int32)

        public var description: String {
            switch self {
            case .get(let r, let e): return "getrlimit failed for \(r.name): \(SystemError.describe(e))"
            case .set(let r, let e): return "setrlimit failed for \(r.name): \(SystemError.describe(e))"
            }
        }
    }

    /// Reads the current pair and installs the new one.
    public func apply() -> Result<Void, Failure> {
        var current = rlimit()
        guard cs_getrlimit(resource.number, &current) == 0 else { return .failure(.get(resource, errno)) }
        var next = value.applied(to: current)
        guard cs_setrlimit(resource.number, &next) == 0 else { return .failure(.set(resource, errno)) }
        return .success(())
    }
}
