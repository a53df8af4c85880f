// Name lookups that need no resolver: /etc/hosts and /etc/services, parsed as text so the
// static binary never loads NSS modules (DESIGN.md: the base binary must not dlopen).

enum HostsFile {
    /// The address fields of every line naming `host` (case-insensitive, trailing dot
    /// ignored), in file order.
    static func addresses(for host: String, in text: [UInt8]) -> [String] {
        let wanted = canonical(host)
        guard !wanted.isEmpty else { return [] }
        var result: [String] = []
        for fields in records(text) where fields.count >= 2 {
            if fields.dropFirst().contains(where: { canonical($0) == wanted }) { result.append(fields[0]) }
        }
        return result
    }

    private static func canonical(_ name: String) -> String {
        var name = name.lowercased()
        while name.hasSuffix(".") { name.removeLast() }
        return name
    }
}

enum ServicesFile {
    /// The TCP port of service `name` (or one of its aliases), nil when it is not listed.
    static func tcpPort(for name: String, in text: [UInt8]) -> UInt16? {
        for fields in records(text) where fields.count >= 2 {
            let portAndProtocol = fields[1].split(separator: "/", maxSplits: 1)
            guard portAndProtocol.count == 2, portAndProtocol[1] == "tcp",
                  let port = UInt16(portAndProtocol[0]) else { continue }
            if fields[0] == name || fields.dropFirst(2).contains(name) { return port }
        }
        return nil
    }
}

/// Whitespace-separated fields of each line, comments ("#" to end of line) removed, empty
/// lines skipped.
private func records(_ text: [UInt8]) -> [[String]] {
    text.split(separator: 10).compactMap { line in
        let content = line.prefix { $0 != UInt8(ascii: "#") }
        let fields = content.split(whereSeparator: { $0 == 32 || $0 == 9 || $0 == 13 })
            .map { String(decoding: $0, as: UTF8.self) }
        return fields.isEmpty ? nil : fields
    }
}
