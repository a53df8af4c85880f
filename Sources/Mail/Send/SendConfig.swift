// qmail-send's settings from control files (§7, §17.2), read at start and on SIGHUP,
// and the due-time queue its scheduler keeps per channel.
import Core

public struct SendConfig: Equatable, Sendable {
    /// Wanted parallel deliveries per channel (before the spawner's limit).
    public var concurrency = [10, 20]
    public var hold = [false, false]
    public var queueLifetime: Int64 = 604800
    public var bounceLifetime: Int64 = 604800
    public var bounce: BounceSettings
    public var rewriter: AddressRewriter

    public static func == (a: SendConfig, b: SendConfig) -> Bool {
        a.concurrency == b.concurrency && a.hold == b.hold && a.queueLifetime == b.queueLifetime
            && a.bounceLifetime == b.bounceLifetime && a.bounce == b.bounce
    }

    /// `queueName` is basename(QUEUEDIR), for the per-queue concurrency files.
    public static func load(_ control: ControlFiles, queueName: String) -> Result<SendConfig, MailConfigError> {
        let identity: MailIdentity
        switch MailIdentity.load(control) {
        case .failure(let e): return .failure(e)
        case .success(let i): identity = i
        }
        do throws(MailConfigError) {
            func integer(_ name: String, _ fallback: Int) throws(MailConfigError) -> Int {
                try control.integer(name, default: fallback).mapError { MailConfigError.control($0) }.get()
            }
            func value(_ name: String, _ fallback: String) throws(MailConfigError) -> String {
                try control.value(name, default: fallback).mapError { MailConfigError.control($0) }.get() ?? fallback
            }
            func text(_ name: String) throws(MailConfigError) -> [UInt8] {
                var bytes = try control.contents(name).mapError { MailConfigError.control($0) }.get() ?? []
                while let last = bytes.last, last == 10 || last == 13 || last == 32 || last == 9 { bytes.removeLast() }
                return bytes
            }
            var config = SendConfig(bounce: BounceSettings(me: identity.me), rewriter: AddressRewriter(
                locals: identity.locals,
                percentHack: try control.list("percenthack").mapError { MailConfigError.control($0) }.get() ?? [],
                virtualDomains: try control.list("virtualdomains").mapError { MailConfigError.control($0) }.get() ?? [],
                envNoAtHost: identity.envNoAtHost))
            config.concurrency[0] = try integer("concurrencyl.\(queueName)", try integer("concurrencylocal", 10))
            config.concurrency[1] = try integer("concurrencyr.\(queueName)", try integer("concurrencyremote", 20))
            config.hold[0] = try integer("holdlocal", 0) != 0
            config.hold[1] = try integer("holdremote", 0) != 0
            config.queueLifetime = Int64(try integer("queuelifetime", 604800))
            config.bounceLifetime = min(Int64(try integer("bouncelifetime", 604800)), config.queueLifetime)
            var b = config.bounce
            b.from = try value("bouncefrom", "MAILER-DAEMON")
            b.host = try value("bouncehost", identity.me)
            b.subject = try value("bouncesubject", "failure notice")
            b.doubleSubject = try value("doublebouncesubject", "failure notice")
            b.message = try text("bouncemessage")
            b.doubleMessage = try text("doublebouncemessage")
            b.maxBytes = try integer("bouncemaxbytes", 50000)
            b.doubleBounceTo = try value("doublebounceto", "postmaster")
            b.doubleBounceHost = try value("doublebouncehost", identity.me)
            config.bounce = b
            return .success(config)
        } catch {
            return .failure(error)
        }
    }

    /// The lifetime that applies to a message from `sender`.
    public func lifetime(sender: [UInt8]) -> Int64 {
        sender.isEmpty ? bounceLifetime : queueLifetime
    }
}

/// A min-heap of (due time, message id).
public struct DueQueue: Sendable {
    public private(set) var items: [(due: Int64, id: UInt64)] = []

    public init() {}

    public var isEmpty: Bool { items.isEmpty }
    public var count: Int { items.count }
    public var earliest: Int64? { items.first?.due }

    public mutating func push(_ due: Int64, _ id: UInt64) {
        items.append((due, id))
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard items[i].due < items[parent].due else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    /// The earliest entry when it is due at `now`.
    public mutating func popDue(_ now: Int64) -> UInt64? {
        guard let first = items.first, first.due <= now else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < items.count && items[l].due < items[m].due { m = l }
                if r < items.count && items[r].due < items[m].due { m = r }
                if m == i { break }
                items.swapAt(i, m)
                i = m
            }
        }
        return first.id
    }

    /// Every entry due at `now` (SIGALRM).
    public mutating func makeAllDue(_ now: Int64) {
        for i in items.indices { items[i].due = min(items[i].due, now) }
    }
}
