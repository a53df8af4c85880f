// mconnect-io: the terminal side of mconnect: stdin goes to the network on fd 7 with CR LF
// line ends, the network's fd 6 comes back to stdout.
import Core
import Glibc

public struct MconnectIOCommand: Command {
    public static let name = "mconnect-io"
    public static let installDirectory = InstallDirectory.bin
    public static let summary = "copy stdin to descriptor 7 adding CRs, descriptor 6 to stdout"

    public static func run(_ context: CommandContext) -> Int32 {
        Signals.ignore(SIGPIPE)
        MconnectIO.copy(network: (read: 6, write: 7))
        return ExitCode.success
    }
}

enum MconnectIO {
    static let chunkSize = 4096

    /// Copies stdin to `network.write`, a CR before every LF, and `network.read` to stdout,
    /// until the network side ends (or stdout goes away). End of stdin stops the first
    /// copy only: the connection stays open for the server's last words, as the
    /// reference (whose copy of fd 7 outlives its stdin reader).
    static func copy(network: (read: Int32, write: Int32)) {
        var crlf = CRInsertion(.everyLF)
        Relay.run([
            RelayDirection(from: 0, to: network.write, chunkSize: chunkSize,
                           atSourceEnd: .keepSink, atSinkFailure: .keepSink,
                           transform: { crlf.apply($0, into: &$1) }),
            RelayDirection(from: network.read, to: 1, chunkSize: chunkSize,
                           atSourceEnd: .finishRelay, atSinkFailure: .finishRelay),
        ])
    }
}
