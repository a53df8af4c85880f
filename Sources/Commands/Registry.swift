// The list of every command the multi-call binaries answer to.
import Core
import Mail
import Supervise
import UCSPI

public enum CommandRegistry {
    /// Commands of the base binary (no C libraries beyond libc linked).
    public static var base: [any Command.Type] {[
        AddcrCommand.self,
        Argv0Command.self,
        DelcrCommand.self,
        DockerEntrypointCommand.self,
        EnvdirCommand.self,
        EnvuidgidCommand.self,
        FghackCommand.self,
        FixcrioCommand.self,
        MconnectCommand.self,
        MconnectIOCommand.self,
        MultilogCommand.self,
        PgrphackCommand.self,
        QmailLocalCommand.self,
        QmailSmtpdCommand.self,
        QueueFixCommand.self,
        RblsmtpdCommand.self,
        ReadproctitleCommand.self,
        RecordioCommand.self,
        SetlockCommand.self,
        SetuidgidCommand.self,
        SoftlimitCommand.self,
        SuperviseCommand.self,
        SvcCommand.self,
        SvokCommand.self,
        SvpsCommand.self,
        SvscanCommand.self,
        SvscanbootCommand.self,
        SvstatCommand.self,
        TCPRulesCheckCommand.self,
        TCPRulesCommand.self,
        TCPServerCommand.self,
        Tai2Tai64nCommand.self,
        Tai64n2TaiCommand.self,
        Tai64nCommand.self,
        Tai64nlocalCommand.self,
        Tai64nunixCommand.self,
        WaitforCommand.self,
    ]}

    /// Commands that need the C libraries (OpenSSL, dlopen of plugins): only indimail-tls
    /// carries them, on top of the base list.
    public static var network: [any Command.Type] {[
        DotlsCommand.self,
        SysCheckpwdCommand.self,
        TcpclientCommand.self,
    ]}

    public static func lookup(_ name: String, in commands: [any Command.Type]) -> (any Command.Type)? {
        commands.first { $0.name == name }
    }
}
