// Maildir delivery as qmail does it: write in tmp/, fsync, link into new/, sync the directory.
import Core
import Glibc

/// Maildir file names in the reference's form: tmp/<sec>.M<usec>P<pid>.<host> while being
/// written, new/<sec>.I<ino hex>V<dev hex>M<usec>P<pid>.<host>,S=<size> once delivered.
public enum MaildirName {
    /// The host name with `/` and `:` spelled as octal escapes, as maildir(5) asks.
    public static func escapedHost(_ host: String) -> String {
        var out = ""
        for c in host {
            switch c {
            case "/": out += "057"
            case ":": out += "072"
            default: out.append(c)
            }
        }
        return out
    }

    public static func temporary(seconds: Int, microseconds: Int, pid: Int32, host: String) -> String {
        "\(seconds).M\(microseconds)P\(pid).\(escapedHost(host))"
    }

    public static func final(seconds: Int, microseconds: Int, pid: Int32, host: String,
                             inode: UInt64, device: UInt64, size: Int) -> String {
        "\(seconds).I\(String(inode, radix: 16))V\(String(device, radix: 16))M\(microseconds)P\(pid)"
            + ".\(escapedHost(host)),S=\(size)"
    }

    public static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

public enum DeliveryFailure: Error, Equatable, Sendable {
    /// The Maildir directory cannot be entered (missing, not a directory, no permission).
    case noMaildir
    case readMessage(Int32)
    case overQuota
    /// Anything else while writing: temporary.
    case write(String)
    case lockTimeout
    case open(String)

    /// The text qmail-lspawn turns into the delivery report, and the exit code.
    public var report: (code: Int32, text: String) {
        switch self {
        case .noMaildir: return (111, "Unable to chdir to maildir. (#4.2.1)")
        case .readMessage(let e): return (111, "Unable to read message: \(SystemError.describe(e)). (#4.3.0)")
        case .overQuota: return (100, "Recipient's mailbox is full, message returned to sender. (#5.2.2)")
        case .write(let text): return (111, text)
        case .lockTimeout: return (111, "File has been locked for 30 seconds straight. (#4.3.0)")
        case .open(let text): return (111, text)
        }
    }
}

/// The message on a seekable descriptor, read from the start for every delivery.
public struct MessageInput {
    public let fd: Int32
    public init(fd: Int32 = 0) { self.fd = fd }

    public func rewind() -> Bool { lseek(fd, 0, SEEK_SET) == 0 }

    /// Calls `body` with successive chunks of the message; stops early when it returns false.
    public func forEachChunk(_ body: (UnsafeRawBufferPointer) -> Bool) -> Result<Void, SystemError> {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let r = chunk.withUnsafeMutableBytes { FD.read(fd, $0) }
            switch r {
            case .failure(let e): return .failure(e)
            case .success(0): return .success(())
            case .success(let n):
                let go = chunk.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                if !go { return .success(()) }
            }
        }
    }
}

public struct MaildirDelivery {
    public var directory: String
    /// Written before the message: Return-Path, Delivered-To and the queue's extra headers.
    public var preamble: [UInt8]
    public var sync: Bool = true

    public init(directory: String, preamble: [UInt8]) {
        self.directory = directory
        self.preamble = preamble
    }

    /// Delivers the message and returns the name it got in new/.
    public func deliver(_ message: MessageInput, host: String = MaildirName.hostName()) -> Result<String, DeliveryFailure> {
        guard Path.isDirectory(directory) else { return .failure(.noMaildir) }
        guard message.rewind() else { return .failure(.readMessage(errno)) }
        let pid = getpid()
        var tmpPath = "", fd: Int32 = -1
        var now = timeval()
        for attempt in 0..<3 {
            gettimeofday(&now, nil)
            tmpPath = Path.join(directory, "tmp/" + MaildirName.temporary(
                seconds: Int(now.tv_sec), microseconds: Int(now.tv_usec), pid: pid, host: host))
            switch FD.openExclusive(tmpPath, mode: 0o600) {
            case .success(let opened): fd = opened
            case .failure(let e) where e.errno == EEXIST && attempt < 2:
                usleep(100)
                continue
            case .failure(let e) where e.errno == EDQUOT: return .failure(.overQuota)
            case .failure: return .failure(.write("Temporary error on maildir delivery. (#4.3.0)"))
            }
            break
        }
        guard fd >= 0 else { return .failure(.write("Temporary error on maildir delivery. (#4.3.0)")) }
        func fail(_ failure: DeliveryFailure) -> Result<String, DeliveryFailure> {
            FD.close(fd)
            unlink(tmpPath)
            return .failure(failure)
        }
        func writeFailure(_ code: Int32) -> DeliveryFailure {
            code == EDQUOT ? .overQuota : .write("Temporary error on maildir delivery. (#4.3.0)")
        }
        if case .failure(let e) = FD.writeAll(fd, preamble) { return fail(writeFailure(e.errno)) }
        var writeError: Int32 = 0
        let copied = message.forEachChunk { chunk in
            if case .failure(let e) = FD.writeAll(fd, chunk) { writeError = e.errno; return false }
            return true
        }
        if case .failure(let e) = copied { return fail(.readMessage(e.errno)) }
        if writeError != 0 { return fail(writeFailure(writeError)) }
        if sync, case .failure(let e) = FD.sync(fd) { return fail(writeFailure(e.errno)) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return fail(writeFailure(errno)) }
        // close can report a deferred write error (NFS): the delivery is not done until it returns.
        let closed = Glibc.close(fd)
        fd = -1
        if closed != 0 { let e = errno; unlink(tmpPath); return .failure(writeFailure(e)) }
        let name = MaildirName.final(seconds: Int(now.tv_sec), microseconds: Int(now.tv_usec), pid: pid, host: host,
                                     inode: UInt64(st.st_ino), device: UInt64(st.st_dev), size: Int(st.st_size))
        let newPath = Path.join(directory, "new/" + name)
        if link(tmpPath, newPath) != 0 {
            let e = errno
            unlink(tmpPath)
            return .failure(writeFailure(e))
        }
        if sync { Path.syncDirectory(containing: newPath) }
        unlink(tmpPath)
        return .success(name)
    }
}
