// A command that tcpserver may run in-process but that, configured as the environment says,
// needs what only indimail-tls links (OpenSSL). tcpserver asks at start-up: when the answer
// is yes it continues as indimail-tls at once, so each connection runs the command in-process
// there instead of paying an exec of indimail-tls per connection.
import Core

public protocol LibraryWantingCommand: Command {
    /// True when a run with this environment would hand over to indimail-tls.
    static func wantsLibraries(_ environment: Environment) -> Bool
}
