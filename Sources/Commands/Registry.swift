// The list of every command the multi-call binaries answer to.
import Core
import Mail
import Supervise
import UCSPI

public enum CommandRegistry {
    /// Commands of the base binary (no C libraries beyond libc linked).
    public static let base: [any Command.Type] = [
        AddcrCommand.self,
        DelcrCommand.self,
        DockerEntrypointCommand.self,
        EnvdirCommand.self,
        SvscanCommand.self,
        SvscanbootCommand.self,
        Tai64nCommand.self,
        Tai64nlocalCommand.self,
        Tai64nunixCommand.self,
    ]

    public static func lookup(_ name: String, in commands: [any Command.Type]) -> (any Command.Type)? {
        commands.first { $0.name == name }
    }
}
