// The qmail-send → spawner command stream and the spawner → qmail-send reports (§6.3):
// parsing and validation only, no process effects, so it can be fed any bytes in tests.
import Glibc

/// One delivery command: `<slot lo><slot hi><messid>\0<sender>\0<qqeh>\0<envh>\0<recip>\0`.
/// Fields are kept without their terminating NUL.
public struct SpawnRequest: Equatable, Sendable {
    public var slotLow: UInt8
    public var slotHigh: UInt8
    public var messageID: [UInt8]
    public var sender: [UInt8]
    public var qqeh: [UInt8]
    public var envHeaders: [UInt8]
    public var recipient: [UInt8]
    /// A field outgrew `SpawnCommandParser.fieldLimit`: everything but the slot is garbage
    /// (the reference's out-of-memory abort).
    public var aborted: Bool

    public init(slotLow: UInt8, slotHigh: UInt8, messageID: [UInt8], sender: [UInt8], qqeh: [UInt8],
                envHeaders: [UInt8], recipient: [UInt8], aborted: Bool = false) {
        (self.slotLow, self.slotHigh, self.messageID, self.sender) = (slotLow, slotHigh, messageID, sender)
        (self.qqeh, self.envHeaders, self.recipient, self.aborted) = (qqeh, envHeaders, recipient, aborted)
    }

    /// The slot number, little-endian.
    public var slot: Int { Int(slotLow) | Int(slotHigh) << 8 }

    /// Index of the last `@` in the recipient, if any.
    public var atIndex: Int? { recipient.lastIndex(of: 64) }
}

/// Byte-at-a-time state machine over the command stream; commands may arrive split across
/// reads in any way.
public struct SpawnCommandParser: Sendable {
    /// Longest field kept; beyond it the command is marked aborted (bounded memory whatever
    /// the peer sends).
    public static let fieldLimit = 1 << 20

    private enum Stage { case slotLow, slotHigh, field(Int) }
    private var stage = Stage.slotLow
    private var current = SpawnRequest(slotLow: 0, slotHigh: 0, messageID: [], sender: [], qqeh: [],
                                       envHeaders: [], recipient: [])
    private var field: [UInt8] = []

    public init() {}

    /// Feeds bytes; returns the commands completed by them, in order.
    public mutating func feed(_ bytes: some Sequence<UInt8>) -> [SpawnRequest] {
        var done: [SpawnRequest] = []
        for byte in bytes {
            switch stage {
            case .slotLow:
                current = SpawnRequest(slotLow: byte, slotHigh: 0, messageID: [], sender: [], qqeh: [],
                                       envHeaders: [], recipient: [])
                stage = .slotHigh
            case .slotHigh:
                current.slotHigh = byte
                field.removeAll(keepingCapacity: true)
                stage = .field(0)
            case .field(let n):
                if byte != 0 {
                    if field.count < SpawnCommandParser.fieldLimit { field.append(byte) } else { current.aborted = true }
                    continue
                }
                switch n {
                case 0: current.messageID = field
                case 1: current.sender = field
                case 2: current.qqeh = field
                case 3: current.envHeaders = field
                default: current.recipient = field
                }
                field.removeAll(keepingCapacity: true)
                if n == 4 {
                    done.append(current)
                    stage = .slotLow
                } else {
                    stage = .field(n + 1)
                }
            }
        }
        return done
    }
}

/// Why a command was refused before any child ran; `text` is the report after the slot.
public enum SpawnRejection: Equatable, Sendable {
    case outOfMemory, slotNegative, slotTooBig, slotInUse
    case idNonNumeric, idTooLong, idTooShort, noHost
    case cannotOpen, cannotStat, wrongType, wrongOwner, cannotPipe, cannotFork

    public var text: String {
        switch self {
        case .outOfMemory: return "Zqmail-spawn out of memory. (#4.3.0)\n"
        case .slotNegative: return "ZInternal error: delnum negative. (#4.3.5)\n"
        case .slotTooBig: return "ZInternal error: delnum too big. (#4.3.5)\n"
        case .slotInUse: return "ZInternal error: delnum in use. (#4.3.5)\n"
        case .idNonNumeric: return "DInternal error: messid has nonnumerics. (#5.3.5)\n"
        case .idTooLong: return "DInternal error: messid too long. (#5.3.5)\n"
        case .idTooShort: return "DInternal error: messid too short. (#5.3.5)\n"
        case .noHost: return "DSorry, address must include host name. (#5.1.3)\n"
        case .cannotOpen: return "Zqmail-spawn unable to open message. (#4.3.0)\n"
        case .cannotStat: return "Zqmail-spawn unable to fstat message. (#4.3.0)\n"
        case .wrongType: return "ZSorry, message has wrong type. (#4.3.5)\n"
        case .wrongOwner: return "ZSorry, message has wrong owner. (#4.3.5)\n"
        case .cannotPipe: return "Zqmail-spawn unable to create pipe. (#4.3.0)\n"
        case .cannotFork: return "Zqmail-spawn unable to fork. (#4.3.0)\n"
        }
    }
}

public enum SpawnValidation {
    /// The checks made before the message file is opened, in the reference's order.
    /// A high slot byte of 128 or more reads as negative there (a signed char): kept.
    public static func check(_ request: SpawnRequest, concurrency: Int, inUse: (Int) -> Bool) -> SpawnRejection? {
        if request.aborted { return .outOfMemory }
        if request.slotHigh >= 128 { return .slotNegative }
        if request.slot >= concurrency { return .slotTooBig }
        if inUse(request.slot) { return .slotInUse }
        // The id counts with its NUL, as the reference keeps it: at most 99 characters.
        for (i, c) in request.messageID.enumerated() where !(i > 0 && c == 47) {
            if c < 48 || c > 57 { return .idNonNumeric }
        }
        if request.messageID.count + 1 > 100 { return .idTooLong }
        if request.messageID.isEmpty { return .idTooShort }
        if request.atIndex == nil { return .noHost }
        return nil
    }

    /// `<slot lo><slot hi><letter+text>\0`.
    public static func frame(slotLow: UInt8, slotHigh: UInt8, _ report: [UInt8]) -> [UInt8] {
        [slotLow, slotHigh] + report + [0]
    }
}

/// Whether a failed exec or system call is worth retrying: libqmail's error_temp list.
public enum TemporaryErrno {
    public static func contains(_ e: Int32) -> Bool {
        switch e {
        case EINTR, ENOMEM, ETXTBSY, EIO, ETIMEDOUT, EAGAIN, EDEADLK, ENXIO, ENFILE, EMFILE, EFBIG,
             ENOSPC, ENETDOWN, ENETUNREACH, ENETRESET, ECONNABORTED, ECONNRESET, ECONNREFUSED,
             EHOSTDOWN, EHOSTUNREACH, EDQUOT, ESTALE, EREMOTE, ENOLCK, EPROTO, ENOSR, EREMOTEIO:
            return true
        default:
            return false
        }
    }
}
