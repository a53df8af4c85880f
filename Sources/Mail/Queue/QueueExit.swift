// qmail-queue's exit codes (the reference's qmail.h) and the reply text every injector
// gives for each: D… permanent, Z… temporary.

public enum QueueExit: Int32, Sendable, CaseIterable {
    case ok = 0
    case envelopeTooLong = 11
    case permanentReject = 31
    case spamThreshold = 32
    case virus = 33
    case bannedAttachment = 34
    case noPrivateKey = 35
    case duplicate = 41
    case virusScannerPrivilege = 50
    case outOfMemory = 51
    case timeout = 52
    case writeError = 53
    case readError = 54
    case configError = 55
    case network = 56
    case openSharedObject = 57
    case resolveSharedSymbol = 58
    case closeSharedObject = 59
    case pipeSocket = 60
    case chdir = 61
    case messFile = 62
    case cdRoot = 63
    case fsync = 64
    case intdFile = 65
    case linkTodoIntd = 66
    case linkMessPid = 67
    case tempFiles = 68
    case syncDirectory = 69
    case pidFile = 70
    case temporaryReject = 71
    case connectionTimeout = 72
    case connectionRejected = 73
    case connectionFailed = 74
    case execFailed = 75
    case spamFilter = 76
    case qhpsi = 77
    case uidGid = 78
    case envelopeFormat = 79
    case removeIntd = 80
    case internalBug = 81
    case removePid = 83
    case misconfigured = 87
    case custom = 88
    case execQueue = 120
    case fork = 121
    case waitpidSurprise = 122
    case crashed = 123

    /// The reference's rule: 11–40 and 115 are permanent, any other non-zero is temporary.
    public static func isPermanent(_ code: Int32) -> Bool {
        code == 115 || (code >= 11 && code <= 40)
    }

    public static func isTemporary(_ code: Int32) -> Bool {
        code != 0 && !isPermanent(code)
    }

    /// The text an injector reports for an exit code (code 88 reads its text from the
    /// queue program instead: pass it as `custom`).
    public static func replyText(for code: Int32, custom: String? = nil) -> String {
        switch code {
        case 11: return "Dqq envelope address too long (#5.1.3)"
        case 31: return "Dqq mail server permanently rejected message (#5.3.0)"
        case 32: return "Dqq spam or junk mail threshold exceeded (#5.7.1)"
        case 33: return "Dqq message contains virus (#5.7.1)"
        case 34: return "Dqq message contains banned attachment (#5.7.1)"
        case 35: return "Dqq private key file does not exist (#5.3.5)"
        case _ where isPermanent(code): return "Dqq permanent problem (#5.3.0)"
        case 50: return "Zqq unable to get privilege to run virus scanner (#4.3.0)"
        case 51: return "Zqq out of memory (#4.3.0)"
        case 52: return "Zqq timeout (#4.3.0)"
        case 53: return "Zqq write error or disk full (#4.3.0)"
        case 54: return "Zqq read error (#4.3.0)"
        case 55: return "Zqq unable to read configuration (#4.3.0)"
        case 56: return "Zqq trouble making network connection (#4.3.0)"
        case 57: return "Zqq unable to open shared object/plugin (#4.3.0)"
        case 58: return "Zqq unable to resolve symbol in shared object/plugin (#4.3.0)"
        case 59: return "Zqq unable to close shared object/plugin (#4.3.0)"
        case 60: return "Zqq trouble creating pipes/sockets (#4.3.0)"
        case 61: return "Zqq trouble in home directory (#4.3.0)"
        case 62: return "Zqq unable to access mess file (#4.3.0)"
        case 63: return "Zqq trouble doing cd to root directory (#4.3.0)"
        case 64: return "Zqq trouble syncing message to disk (#4.3.0)"
        case 65: return "Zqq trouble creating files in intd. (#4.3.0)"
        case 66: return "Zqq trouble linking todofn to intdfn (#4.3.0)"
        case 67: return "Zqq trouble linking messfn to pidfn (#4.3.0)"
        case 68: return "Zqq trouble creating temporary files (#4.3.0)"
        case 69: return "Zqq trouble syncing dir to disk (#4.3.0)"
        case 70: return "Zqq trouble with pid file (#4.3.0)"
        case 71: return "Zqq mail server temporarily rejected message (#4.3.0)"
        case 72: return "Zqq connection to mail server timed out (#4.4.1)"
        case 73: return "Zqq connection to mail server rejected (#4.4.1)"
        case 74: return "Zqq communication with mail server failed (#4.4.2)"
        case 75: return "Zqq unable to exec (#4.3.0)"
        case 76: return "Zqq temporary problem with SPAM filter (#4.3.0)"
        case 77: return "Zqq unable to run QHPSI scanner (#4.3.0)"
        case 78: return "Zqq trouble getting uids/gids (#4.3.0)"
        case 79: return "Zqq envelope format error (#4.3.0)"
        case 80: return "Zqq trouble removing intdfn"
        case 81, 91: return "Zqq internal bug (#4.3.0)"
        case 83: return "Zqq trouble unlinking pid file (#4.3.0)"
        case 87: return "Zqq mail system incorrectly configured. (#4.3.5)"
        case 88:
            if let custom, let first = custom.first, first == "D" || first == "Z" { return custom }
            return "Zqq temporary problem (#4.3.0)"
        case 82, 120: return "Zqq unable to exec qq (#4.3.0)"
        case 121: return "Zqq unable to fork (#4.3.0)"
        case 122: return "Zqq waitpid surprise (#4.3.0)"
        case 123: return "Zqq crashed (#4.3.0)"
        default: return "Zqq temporary problem (#4.3.0)"
        }
    }
}
