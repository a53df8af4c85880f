// The one-byte commands svc writes to supervise/control (reference letters plus indimail's).
import Glibc

public enum ControlCommand: UInt8, CaseIterable, Sendable {
    case up = 0x75          // u: want up, start if down
    case down = 0x64        // d: want down; shutdown script, stop signal, CONT
    case restart = 0x72     // r: stop and start again
    case once = 0x6F        // o: run once, no restart
    case exit = 0x78        // x: exit when the service is down
    case pause = 0x70       // p: STOP
    case resume = 0x63      // c: CONT
    case hangup = 0x68      // h: HUP
    case alarm = 0x61       // a: ALRM
    case interrupt = 0x69   // i: INT
    case terminate = 0x74   // t: TERM, want unchanged
    case quit = 0x71        // q: QUIT
    case kill = 0x6B        // k: KILL
    case user1 = 0x55       // U: USR1
    case user1Digit = 0x31  // 1: USR1
    case user2 = 0x32       // 2: USR2
    case group = 0x47       // G: the next signal goes to the whole process group

    /// The signal a signalling letter sends, nil for the others.
    public var signal: Int32? {
        switch self {
        case .hangup: return SIGHUP
        case .alarm: return SIGALRM
        case .interrupt: return SIGINT
        case .terminate: return SIGTERM
        case .quit: return SIGQUIT
        case .kill: return SIGKILL
        case .user1, .user1Digit: return SIGUSR1
        case .user2: return SIGUSR2
        default: return nil
        }
    }
}
