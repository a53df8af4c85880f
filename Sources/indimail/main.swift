// indimail: the multi-call binary of the suite (everything that needs no C library but libc).
import Commands
import Core
import Glibc

exit(MultiCall.main(binary: "indimail", commands: CommandRegistry.base,
                    arguments: MultiCall.processArguments(), environment: Environment.current(),
                    version: { "indimail \(MultiCall.version)" }))
