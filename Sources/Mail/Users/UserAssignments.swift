// users/assign (qmail-users(5)) compiled into users/cdb, and the look-up qmail-lspawn
// makes in it: exact `=local` entries and `+prefix` wildcard entries.
import Core
import Glibc

public enum AssignError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A line that is not `=local:user:uid:gid:home:dash:ext:` or `+prefix:…`, or no `.` line.
    case format(line: Int)
    public var description: String {
        switch self { case .format(let n): return "bad format in users/assign line \(n)" }
    }
}

public enum UserAssignments {
    /// The records of users/cdb for an assign file, in file order, the wildcard-character
    /// record (key "") last. Key: `!`+lowercase(local)+NUL for `=`, `!`+lowercase(prefix)
    /// for `+`. Value: the six fields NUL-separated, without the trailing `:`.
    public static func compile(_ text: [UInt8]) -> Result<[(key: [UInt8], value: [UInt8])], AssignError> {
        var records: [(key: [UInt8], value: [UInt8])] = []
        var wildchars: [UInt8] = []
        var start = 0
        var lineNumber = 0
        while true {
            lineNumber += 1
            let newline = text[start...].firstIndex(of: 10)
            let line = text[start..<(newline ?? text.endIndex)]
            if let first = line.first, first == 46 { break }            // "." ends the file
            guard let end = newline else { return .failure(.format(line: lineNumber)) }
            start = end + 1
            guard !line.contains(0), let colon = line.firstIndex(of: 58), colon > line.startIndex else {
                return .failure(.format(line: lineNumber))
            }
            var key: [UInt8] = [33] + lowercased(line[(line.startIndex + 1)..<colon])
            if line.first == 43 {
                if colon - line.startIndex >= 2, let last = line[..<colon].last, !wildchars.contains(last) {
                    wildchars.append(last)
                }
            } else {
                key.append(0)
            }
            var data = Array(text[(colon + 1)...end])
            var colons = 0
            var cut = data.count
            for i in data.indices where data[i] == 58 {
                data[i] = 0
                colons += 1
                if colons == 6 { cut = i; break }
            }
            guard colons == 6 else { return .failure(.format(line: lineNumber)) }
            records.append((key, Array(data[..<cut])))
        }
        records.append(([], wildchars))
        return .success(records)
    }

    /// Looks `local` up as qmail-lspawn does: `!local\0`, then the longest `+` prefix whose
    /// last character is a wildcard character (the empty prefix always tried), its stored
    /// ext extended with the rest of `local`. Returns the value with a NUL appended (six
    /// NUL-terminated fields), nil when there is no users/cdb or no entry.
    public static func lookup(local: [UInt8], cdbPath: String) -> Result<[UInt8]?, CDBError> {
        let cdb: CDB
        switch CDB.open(cdbPath) {
        case .failure(.system(let e)) where e.errno == ENOENT: return .success(nil)
        case .failure(let e): return .failure(e)
        case .success(let c): cdb = c
        }
        return lookup(local: local, in: cdb)
    }

    public static func lookup(local: [UInt8], in cdb: CDB) -> Result<[UInt8]?, CDBError> {
        let wildchars: [UInt8]
        switch cdb.find([UInt8]()) {
        case .failure(let e): return .failure(e)
        case .success(nil): return .failure(.corrupt("users/cdb has no wildcard record"))
        case .success(let w?): wildchars = w
        }
        let lower: [UInt8] = [33] + lowercased(local[...]) + [0]
        var i = lower.count
        var wild = false
        repeat {
            if !wild || i == 1 || wildchars.contains(lower[i - 1]) {
                switch cdb.find(lower[0..<i]) {
                case .failure(let e): return .failure(e)
                case .success(var value?):
                    if wild { value += local[(i - 1)...] }
                    return .success(value + [0])
                case .success(nil): break
                }
            }
            i -= 1
            wild = true
        } while i > 0
        return .success(nil)
    }

    static func lowercased(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
        bytes.map { $0 >= 65 && $0 <= 90 ? $0 + 32 : $0 }
    }
}
