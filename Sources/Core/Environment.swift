// The process environment as a value: bytes kept exact (values need not be UTF-8).
import CSupport
import Glibc

/// An ordered NAME=VALUE list. Changes are values; nothing touches the real environment
/// until a command execs with it.
public struct Environment: Equatable, Sendable {
    /// Raw "NAME=VALUE" entries, no NUL bytes.
    public private(set) var entries: [[UInt8]]

    public init(entries: [[UInt8]] = []) { self.entries = entries }

    public init(_ pairs: [(String, String)]) {
        entries = pairs.map { Array("\($0.0)=\($0.1)".utf8) }
    }

    /// The environment this process was started with.
    public static func current() -> Environment {
        var list: [[UInt8]] = []
        guard var p = cs_environ() else { return Environment() }
        while let entry = p.pointee {
            list.append(Array(UnsafeBufferPointer(start: UnsafeRawPointer(entry).assumingMemoryBound(to: UInt8.self),
                                                  count: strlen(entry))))
            p += 1
        }
        return Environment(entries: list)
    }

    private func index(of name: [UInt8]) -> Int? {
        name.withUnsafeBufferPointer { index(of: $0) }
    }

    /// memcmp over each entry: looked up dozens of times per connection by qmail-smtpd.
    private func index(of name: UnsafeBufferPointer<UInt8>) -> Int? {
        let n = name.count
        return entries.firstIndex { entry in
            entry.count > n && entry.withUnsafeBufferPointer { e in
                guard e[n] == UInt8(ascii: "=") else { return false }
                guard n > 0, let a = e.baseAddress, let b = name.baseAddress else { return n == 0 }
                return memcmp(a, b, n) == 0
            }
        }
    }

    /// The index of `name`'s entry, without copying the name out of the String.
    private func index(of name: String) -> Int? {
        var name = name
        return name.withUTF8 { index(of: $0) }
    }

    public func bytes(_ name: String) -> [UInt8]? {
        guard let i = index(of: name) else { return nil }
        return Array(entries[i][(name.utf8.count + 1)...])
    }

    public subscript(name: String) -> String? {
        get { bytes(name).map { String(decoding: $0, as: UTF8.self) } }
        set {
            if let newValue { set(name, Array(newValue.utf8)) } else { unset(name) }
        }
    }

    /// The value, or nil when unset or empty: the "set and non-empty" test used across the suite.
    public func nonEmpty(_ name: String) -> String? {
        guard let value = self[name], !value.isEmpty else { return nil }
        return value
    }

    public func contains(_ name: String) -> Bool { index(of: name) != nil }

    public mutating func set(_ name: String, _ value: [UInt8]) {
        set(name: Array(name.utf8), value: value)
    }

    public mutating func set(name: [UInt8], value: [UInt8]) {
        let entry = name + [UInt8(ascii: "=")] + value.map { $0 == 0 ? 10 : $0 }
        if let i = index(of: name) {
            entries[i] = entry
            // An inherited environment may carry a name twice; keep only the new value.
            var j = i + 1
            while j < entries.count {
                let e = entries[j]
                if e.count > name.count && e[name.count] == UInt8(ascii: "=") && e.starts(with: name) {
                    entries.remove(at: j)
                } else {
                    j += 1
                }
            }
        } else {
            entries.append(entry)
        }
    }

    public mutating func unset(_ name: String) { unset(name: Array(name.utf8)) }

    public mutating func unset(name: [UInt8]) {
        entries.removeAll { entry in
            entry.count > name.count && entry[name.count] == UInt8(ascii: "=") && entry.starts(with: name)
        }
    }

    public var names: [String] {
        entries.map { entry in
            String(decoding: entry.prefix { $0 != UInt8(ascii: "=") }, as: UTF8.self)
        }
    }
}
