// svscan as PID 1 of a new pid namespace (a container's init): it reaps orphans it never
// started, and TERM, INT or SIGRTMIN+3 from outside end it cleanly with status 0.
import CSupport
import Core
import Glibc
import Testing

@Suite(.serialized) struct SvscanInitTests {
    static let unshare = "/usr/bin/unshare"

    @Test(arguments: ["TERM", "INT", "RTMIN+3"])
    func reapsOrphansAndStopsCleanly(signalName: String) throws {
        try #require(peer(Self.unshare) != nil, "util-linux unshare missing")
        let sv = SvscanUnderTest()
        // The subshell exits at once: its `sleep 1` is orphaned and handed to PID 1.
        sv.service("orphans", run: "#!/bin/sh\n(sleep 1 & echo $! > orphan.pid)\nexec sleep 1000\n")
        // Reports the namespace's process table from inside.
        sv.service("ps", run: "#!/bin/sh\nwhile :; do ps -eo pid=,ppid=,stat=,comm= > ps.tmp; mv ps.tmp ps.txt; sleep 0.2; done\n")
        sv.start(environment: ["VERBOSE": "1"], launcher: [Self.unshare, "--pid", "--fork", "--mount-proc", "--kill-child"])
        let svscanPID = try #require(sv.child(of: sv.pid, matching: "svscan"))

        let orphanFile = sv.box.at("sv/orphans/orphan.pid")
        #expect(eventually { pid_t(readText(orphanFile).trimmingSuffix()) != nil }, "no orphan: \(sv.stderr)")
        let orphan = pid_t(readText(orphanFile).trimmingSuffix()) ?? -1
        #expect(eventually(within: 8) { sv.stderr.contains("completed last rites for orphan \(orphan)\n") },
                "orphan \(orphan) not reaped: \(sv.stderr)")
        // No zombie lingers under PID 1 once the orphan is gone.
        #expect(eventually(within: 5) {
            let table = readText(sv.box.at("sv/ps/ps.txt")).split(separator: "\n").map { $0.split(separator: " ") }
            return !table.isEmpty && !table.contains { $0.count >= 3 && $0[1] == "1" && $0[2].hasPrefix("Z") }
                && !table.contains { $0.first.map(String.init) == String(orphan) }
        }, "zombies: \(readText(sv.box.at("sv/ps/ps.txt")))")

        let signal: Int32 = switch signalName {
        case "TERM": SIGTERM
        case "INT": SIGINT
        default: cs_sigrtmin() + 3
        }
        kill(svscanPID, signal)
        let status = sv.waitExit(15)
        #expect(status == .exited(0), "exit \(String(describing: status)): \(sv.stderr)")
        #expect(sv.stderr.contains("shutdown in progress"))
        #expect(sv.liveSandboxProcesses().isEmpty, "left behind: \(sv.liveSandboxProcesses())")
    }
}
