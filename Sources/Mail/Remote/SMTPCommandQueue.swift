// The commands of one SMTP transaction (MAIL, RCPTs, DATA) and how far writing and reading
// have got: one command per reply, or RFC 2920 groups when the server offers PIPELINING.

struct SMTPCommandQueue {
    /// At most this many commands are written before their replies are read, so a long
    /// recipient list cannot fill both sides' socket buffers and stall the two ends.
    static let window = 100

    let pipelined: Bool
    private var commands: [[UInt8]] = []
    /// Commands written so far.
    private(set) var sent = 0
    /// Replies read so far (the caller counts them).
    var answered = 0

    init(pipelined: Bool) { self.pipelined = pipelined }

    var count: Int { commands.count }

    mutating func append(_ command: [UInt8]) { commands.append(command) }

    /// The bytes to write before the next reply can be read: nothing while replies to
    /// written commands are outstanding; else the next command, or the next group of up to
    /// `window` commands (in one write) when pipelining. nil when there is nothing to write.
    mutating func takeGroup() -> [UInt8]? {
        guard answered >= sent, sent < commands.count else { return nil }
        let end = pipelined ? min(commands.count, sent + SMTPCommandQueue.window) : sent + 1
        let group = commands[sent..<end].flatMap { $0 }
        sent = end
        return group
    }
}
