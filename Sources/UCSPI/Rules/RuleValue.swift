// The cdb value of a rule (spec §3.3): NUL-terminated records `D`, `+NAME=VALUE`, `-NAME`.

/// One record of a rule's value, as tcpserver reads it.
public enum RuleRecord: Equatable, Sendable {
    /// `D`: refuse the connection (any record starting with `D`, as the reference reads it).
    case deny
    /// `+NAME=VALUE`: split at the first `=`.
    case set(name: [UInt8], value: [UInt8])
    /// `-NAME` [indimail]: remove NAME from the environment.
    case unset(name: [UInt8])
    /// Anything else, including a `+` record without `=`: tcpserver skips it.
    case ignored([UInt8])
}

public enum RuleValue {
    /// The bytes tcprules stores: `D\0` first for deny, then one record per change in
    /// order. An allow rule without instructions is the empty value.
    public static func encode(action: RuleAction, environment: [RuleEnvironmentChange]) -> [UInt8] {
        var out: [UInt8] = action == .deny ? [UInt8(ascii: "D"), 0] : []
        for change in environment {
            if let value = change.value {
                out.append(UInt8(ascii: "+"))
                out.append(contentsOf: change.name)
                out.append(UInt8(ascii: "="))
                out.append(contentsOf: value)
            } else {
                out.append(UInt8(ascii: "-"))
                out.append(contentsOf: change.name)
            }
            out.append(0)
        }
        return out
    }

    /// The records of `value`, without their NULs. Bytes after the last NUL are not a
    /// record (the reference stops there), so truncated values lose only their tail.
    public static func rawRecords(_ value: [UInt8]) -> [ArraySlice<UInt8>] {
        var records: [ArraySlice<UInt8>] = []
        var start = value.startIndex
        while let nul = value[start...].firstIndex(of: 0) {
            records.append(value[start..<nul])
            start = nul + 1
        }
        return records
    }

    public static func records(_ value: [UInt8]) -> [RuleRecord] {
        rawRecords(value).map { record in
            switch record.first {
            case UInt8(ascii: "D"):
                return .deny
            case UInt8(ascii: "+"):
                let body = record.dropFirst()
                guard let eq = body.firstIndex(of: UInt8(ascii: "=")) else { return .ignored(Array(record)) }
                return .set(name: Array(body[..<eq]), value: Array(body[(eq + 1)...]))
            case UInt8(ascii: "-"):
                return .unset(name: Array(record.dropFirst()))
            default:
                return .ignored(Array(record))
            }
        }
    }

    /// What tcpserver does with the value found under `key`.
    public static func match(key: [UInt8], value: [UInt8]) -> RuleMatch {
        var result = RuleMatch(action: .allow, environment: [], key: key)
        for record in records(value) {
            switch record {
            case .deny: result.action = .deny
            case .set(let name, let v): result.environment.append(RuleEnvironmentChange(name: name, value: v))
            case .unset(let name): result.environment.append(RuleEnvironmentChange(name: name, value: nil))
            case .ignored: break
            }
        }
        return result
    }
}
