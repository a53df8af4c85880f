// qscheduler -s with a stand-in qmail-start (QMAILSTART): one instance per queue with
// QUEUEDIR and QIDENT, a dead one restarted, HUP passed on, TERM ending all of them.
import Core
import Glibc
import Testing

let startStub = """
echo "start $QIDENT $QUEUEDIR $*" >> "$STARTLOG"
trap 'echo "hup $QIDENT" >> "$STARTLOG"' HUP
trap 'echo "term $QIDENT" >> "$STARTLOG"; exit 0' TERM
i=0
while [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done

"""

@Suite struct QschedulerTests {
    final class Setup {
        let box = Sandbox()
        let log: String
        let out: String
        var environment: [String: String]

        init(queues: [Int]) {
            box.directory("queue")
            for q in queues {
                box.directory("queue/queue\(q)/lock")
                box.write("queue/queue\(q)/lock/sendmutex", "")
            }
            let stub = box.write("bin/qmail-start", "#!/bin/sh\n" + startStub, mode: 0o755)
            log = box.at("start.log")
            out = box.at("out.log")
            environment = ["QMAILHOME": box.path, "SYSCONFDIR": box.at("etc"), "QMAILSTART": stub,
                           "STARTLOG": log, "PATH": "/usr/bin:/bin"]
        }

        func lines(_ path: String) -> [String] {
            guard case .success(let b) = FD.readFile(path) else { return [] }
            return String(decoding: b, as: UTF8.self).split(separator: "\n").map(String.init)
        }

        /// pid of the instance serving queue<n>, from the "started" lines (latest wins).
        func pid(_ n: Int) -> pid_t? {
            lines(out).last { $0.hasSuffix("queue\(n) started") }
                .flatMap { $0.split(separator: " ").dropFirst(3).first }
                .flatMap { pid_t($0.dropLast()) }
        }
    }

    @Test func runsRestartsForwardsAndStops() throws {
        let s = Setup(queues: [3, 4])
        var env = s.environment
        env["QUEUE_START"] = "3"
        env["QUEUE_COUNT"] = "2"
        env["CONFSPLIT"] = "23"
        let q = try #require(BackgroundChild([Build.indimail, "qscheduler", "-s", "./Maildir/", "logger", "x"],
                                             output: s.out, environment: env))
        #expect(eventually { s.lines(s.log).count == 2 })
        let starts = s.lines(s.log).sorted()
        #expect(starts == ["start 3 \(s.box.path)/queue/queue3 -s ./Maildir/ logger x",
                           "start 4 \(s.box.path)/queue/queue4 -s ./Maildir/ logger x"])
        #expect(s.lines(s.out).first?.hasSuffix("static queues qStart/qCount 3/2 conf split=23") == true)

        // A dead instance comes back, for the same queue.
        let first = try #require(s.pid(3))
        kill(first, SIGKILL)
        #expect(eventually { s.lines(s.log).filter { $0.hasPrefix("start 3 ") }.count == 2 })
        #expect(s.lines(s.out).contains("info: qscheduler: pid \(first), queue \(s.box.path)/queue/queue3 died"))
        // The new instance may log its start before qscheduler prints the "started" line.
        #expect(eventually { s.pid(3).map { $0 != first } ?? false })
        let second = try #require(s.pid(3))
        #expect(second != first)

        kill(q.pid, SIGHUP)
        #expect(eventually { Set(s.lines(s.log).filter { $0.hasPrefix("hup") }) == ["hup 3", "hup 4"] })
        #expect(s.lines(s.out).contains("info: qscheduler: issue SIGHUP to \(second), queue \(s.box.path)/queue/queue3"))

        kill(q.pid, SIGTERM)
        #expect(q.waitExit(within: 10) == .exited(0))
        #expect(Set(s.lines(s.log).filter { $0.hasPrefix("term") }) == ["term 3", "term 4"])
        #expect(s.lines(s.out).filter { $0.hasSuffix(" killed") }.count == 2)
    }

    @Test func refusesDynamicModeABusyQueueAndASecondCopy() throws {
        let s = Setup(queues: [1])
        var env = s.environment
        env["QUEUE_COUNT"] = "1"
        let dynamic = run([Build.indimail, "qscheduler", "-d"], environment: env)
        #expect(dynamic.exitCode == 111)
        #expect(dynamic.err.contains("dynamic mode not supported"))

        for (start, count) in [("9223372036854775807", "2"), ("1", "0"), ("1", "100000000")] {
            let bad = run([Build.indimail, "qscheduler"], environment: env.merging(["QUEUE_START": start, "QUEUE_COUNT": count]) { $1 })
            #expect(bad.exitCode == 111)
            #expect(bad.err.contains("QUEUE_COUNT"))
        }

        // qmail-send already holds the queue's lock/sendmutex. Close-on-exec: a copy
        // inherited by a process another test starts meanwhile would keep the lock.
        let fd = open(s.box.at("queue/queue1/lock/sendmutex"), O_WRONLY | O_CLOEXEC)
        #expect(flock(fd, LOCK_EX) == 0)
        let busy = run([Build.indimail, "qscheduler", "-s"], environment: env)
        close(fd)
        #expect(busy.exitCode == 111)
        #expect(busy.err.contains("already running"))
        #expect(s.lines(s.log).isEmpty)

        let missing = run([Build.indimail, "qscheduler", "-s"], environment: env.merging(["QUEUE_START": "7"]) { $1 })
        #expect(missing.exitCode == 111)
        #expect(missing.err.contains("queue7/lock/sendmutex"))

        let q = try #require(BackgroundChild([Build.indimail, "qscheduler"], output: s.out, environment: env))
        #expect(eventually { s.lines(s.log).count == 1 })
        let again = run([Build.indimail, "qscheduler"], environment: env)
        #expect(again.exitCode == 111)
        #expect(again.err.contains("qscheduler is already running"))
        kill(q.pid, SIGTERM)
        #expect(q.waitExit(within: 10) == .exited(0))
        #expect(s.lines(s.log).first == "start 1 \(s.box.path)/queue/queue1 -s ./Mailbox")
    }
}
