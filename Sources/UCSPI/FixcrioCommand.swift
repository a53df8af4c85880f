// fixcrio: run a program, adding the CR missing before LF in both its input and output.
import Core
import Glibc

public struct FixcrioCommand: Command {
    public static let name = "fixcrio"
    public static let installDirectory = InstallDirectory.bin
    public static let summary = "insert missing carriage returns in a program's input and output"

    /// As the reference: 256 bytes read at once, at most twice that written.
    static let chunkSize = 256

    public static func run(_ context: CommandContext) -> Int32 {
        ProgramRelay.run(context) { toProgram, fromProgram in
            var input = CRInsertion(.bareLF)
            var output = CRInsertion(.bareLF)
            Relay.run([
                RelayDirection(from: 0, to: toProgram, chunkSize: chunkSize,
                               atSourceEnd: .closeSink, atSinkFailure: .closeSink,
                               transform: { input.apply($0, into: &$1) }),
                RelayDirection(from: fromProgram, to: 1, chunkSize: chunkSize,
                               atSourceEnd: .finishRelay, atSinkFailure: .finishRelay,
                               transform: { output.apply($0, into: &$1) }),
            ])
        }
    }
}
