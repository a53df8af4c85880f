// An opened tcprules cdb: the handle tcpserver and tcprulescheck consult per connection.
import Core

// CDB is an immutable mapping once opened, so sharing it across tasks is safe.
public struct TCPRules: @unchecked Sendable {
    /// The underlying database, read-only.
    public let cdb: CDB

    public init(cdb: CDB) { self.cdb = cdb }

    /// Opens and maps the rules cdb at `path`. A missing file is `.system` with ENOENT.
    public static func open(_ path: String) -> Result<TCPRules, CDBError> {
        CDB.open(path).map { TCPRules(cdb: $0) }
    }
}
