// How svc, svstat, svok and svps reach a service's supervise/ FIFOs: in the service
// directory first (djb's layout), then under the run-state directory (indimail's).
import Core
import Glibc

public enum ClientLookupError: Error, Equatable, Sendable {
    /// No candidate place holds the FIFO: supervise never ran there with this layout.
    case notFound
    /// The FIFO exists but nobody holds it open for reading: supervise is not running.
    case noReader
    case system(SystemError)
}

extension ServiceLocator {
    /// The directories that may hold `dir`'s supervise/, in the order clients try them:
    /// `dir` itself, then its run-state directory (`R/<name>`, or `R/<parent>/log` for a
    /// logger) when a run-state directory exists.
    public func clientStateDirectories(for dir: String) -> [String] {
        var list = [dir]
        if let absolute = ServiceLocator.absolute(dir), absolute != "/" {
            let name = Path.basename(absolute)
            let parent = Path.basename(Path.dirname(absolute))
            if let candidate = runStateDirectory(service: name, parent: parent), candidate != dir {
                list.append(candidate)
            }
        }
        return list
    }

    /// Opens `supervise/<fifo>` of the service `dir` for writing without blocking. Such an
    /// open of a FIFO succeeds only while some process has it open for reading, so success
    /// also says that supervise holds it. Tries each place of `clientStateDirectories` and
    /// returns the fd with the directory that holds supervise/.
    ///
    /// The reference stops at the service directory when the FIFO there has no reader; a
    /// stale FIFO left in the tree from before the run-state directory was adopted would
    /// then hide a running supervise, so the run-state directory is tried as well.
    public func openForWriting(_ fifo: String, of dir: String)
        -> Result<(fd: Int32, stateDirectory: String), ClientLookupError> {
        var sawNoReader = false
        var firstError: SystemError?
        for candidate in clientStateDirectories(for: dir) {
            let path = Path.join(candidate, SuperviseFiles.directory + "/" + fifo)
            switch FD.openWrite(path) {
            case .success(let fd):
                return .success((fd, candidate))
            case .failure(let e) where e.errno == ENXIO:
                sawNoReader = true
            case .failure(let e) where e.errno == ENOENT || e.errno == ENOTDIR:
                continue
            case .failure(let e):
                if firstError == nil { firstError = e }
            }
        }
        if sawNoReader { return .failure(.noReader) }
        if let firstError { return .failure(.system(firstError)) }
        return .failure(.notFound)
    }
}
