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
        MailqCommand.self,
        MconnectCommand.self,
        MconnectIOCommand.self,
        MultilogCommand.self,
        PgrphackCommand.self,
        QmailCleanCommand.self,
        QmailGetpwCommand.self,
        QmailInjectCommand.self,
        QmailLocalCommand.self,
        QmailLspawnCommand.self,
        QmailMultiCommand.self,
        QmailNewuCommand.self,
        QmailNullqueueCommand.self,
        QmailPw2uCommand.self,
        QmailQreadCommand.self,
        QmailQueuedCommand.self,
        QmailRspawnCommand.self,
        QmailSendCommand.self,
        QmailShowctlCommand.self,
        QmailSmtpdCommand.self,
        QmailStartCommand.self,
        QmailTcpokCommand.self,
        QmailTcptoCommand.self,
        QmailctlCommand.self,
        QmqpcCommand.self,
        QmqpdCommand.self,
        QmtpdCommand.self,
        QschedulerCommand.self,
        QueueFixCommand.self,
        RblsmtpdCommand.self,
        ReadproctitleCommand.self,
        RecordioCommand.self,
        SendmailCommand.self,
        SetlockCommand.self,
        SetuidgidCommand.self,
        SoftlimitCommand.self,
        SuperviseCommand.self,
        SvcCommand.self,
        SvctoolCommand.self,
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
        TodoProcCommand.self,
        WaitforCommand.self,
    ]}

    /// Commands that need the C libraries (OpenSSL, dlopen of plugins): only indimail-tls
    /// carries them, on top of the base list.
    public static var network: [any Command.Type] {[
        DotlsCommand.self,
        QmailRemoteCommand.self,
        ScramPasswdCommand.self,
        SysCheckpwdCommand.self,
        TcpclientCommand.self,
    ]}

    public static func lookup(_ name: String, in commands: [any Command.Type]) -> (any Command.Type)? {
        commands.first { $0.name == name }
    }
}
