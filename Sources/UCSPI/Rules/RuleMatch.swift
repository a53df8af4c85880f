// What a tcprules lookup answers: allow or deny, the environment changes, the key that decided.
import Core

public enum RuleAction: Equatable, Sendable {
    case allow, deny
}

/// One environment instruction of a rule: set `name` to `value`, or unset `name` when
/// `value` is nil (the `!NAME` form, stored as a `-NAME` record).
public struct RuleEnvironmentChange: Equatable, Sendable {
    public var name: [UInt8]
    public var value: [UInt8]?

    public init(name: [UInt8], value: [UInt8]?) {
        self.name = name
        self.value = value
    }

    public init(set name: String, to value: String) {
        self.init(name: Array(name.utf8), value: Array(value.utf8))
    }

    public init(unset name: String) {
        self.init(name: Array(name.utf8), value: nil)
    }
}

/// The rule that decided a connection.
public struct RuleMatch: Equatable, Sendable {
    public var action: RuleAction
    /// In file order; apply them in order after the TCP variables, so a later change to
    /// the same name wins and rules can override TCPLOCALHOST and the like.
    public var environment: [RuleEnvironmentChange]
    /// The cdb key that matched, raw (for logging and tcprulescheck's `rule KEY:` line).
    public var key: [UInt8]

    public init(action: RuleAction, environment: [RuleEnvironmentChange], key: [UInt8]) {
        self.action = action
        self.environment = environment
        self.key = key
    }
}

extension RuleMatch {
    /// Applies the changes in order, as tcpserver does before running its program: a
    /// later change to the same name wins, an unset removes every copy of the name.
    public func apply(to environment: inout Environment) {
        for change in self.environment {
            if let value = change.value {
                environment.set(name: change.name, value: value)
            } else {
                environment.unset(name: change.name)
            }
        }
    }
}
