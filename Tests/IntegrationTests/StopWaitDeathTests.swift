import Testing
import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `stop --wait` tells a supervisor that stopped from one that died.
@Suite struct StopWaitDeathTests {
    @Test func aSupervisorKilledWhileDrainingIsReportedNotStopped() {
        let s = Scenario()
        defer { s.close() }
        s.script("h.sh", s.longSleep)
        let a = s.enqueue("slow")
        let b = s.enqueue("slow")
        let sup = s.supervise(["--workers", "2", "--handler", "slow=./h.sh"])
        #expect(eventually { s.count("running") == 2 && pidsMatching(s.longSleep).count == 2 }, "\(sup.stderrSoFar)")
        let stop = s.start(Harness.taskq, ["stop", "--wait", "--timeout", "120"])
        // The drain has begun (the sentinel is written), then the supervisor dies.
        #expect(eventually { s.sqlInt("SELECT count(*) FROM tasks WHERE kind = 'taskq.stop'") == 1 }, "\(stop.stderrSoFar)")
        #expect(eventually { sup.stderrSoFar.contains("draining") }, "\(sup.stderrSoFar)")
        sup.signal(SIGKILL)
        #expect(stop.wait(timeout: 60) == 1, "\(stop.stdoutSoFar)\(stop.stderrSoFar)")
        #expect(!stop.stdoutSoFar.contains("stopped"), "\(stop.stdoutSoFar)")
        #expect(stop.stderrSoFar == """
            taskq: supervisor pid \(sup.pid) on \(System.hostName) exited without cleaning up before it had stopped: \
            its running tasks \(a), \(b) wait for the next 'taskq supervise' to recover them

            """, "\(stop.stderrSoFar)")
        #expect(s.count("running") == 2)
    }

    @Test func aSupervisorThatDrainsIsStopped() {
        let s = Scenario()
        defer { s.close() }
        let sup = s.supervise(["--workers", "1", "--handler", "t=cat"])
        #expect(eventually { sup.stderrSoFar.contains("started as process") }, "\(sup.stderrSoFar)")
        let stop = s.taskq(["stop", "--wait", "--timeout", "60"])
        #expect(stop.status == 0, "\(stop)")
        #expect(stop.out.hasSuffix("stopped"))
        #expect(sup.wait(timeout: 30) == 0)
    }
}

/// A database file an interrupted `init` left, and the `--at` limit.
@Suite struct InterruptedInitAndAtLimitTests {
    @Test func aSQLiteFileWithoutTaskqTablesIsNamedAsSuchByEveryReader() {
        let s = Scenario()
        defer { s.close() }
        // What a killed `taskq init` leaves most often: one 4 KiB page, WAL mode, no tables.
        #expect(s.sql("PRAGMA journal_mode=WAL") == "wal")
        #expect(readAll(s.db).count == 4096)
        let message = "taskq: \(s.db) is a SQLite database without taskq's tables (left by an interrupted 'taskq init'?); run 'taskq init' to create them\n"
        for args in [["status"], ["list"], ["show", "1"], ["wait", "1"], ["result", "1"], ["top", "--iterations", "1"], ["cancel", "1"]] {
            let r = s.taskq(args + ["--db", s.db])
            #expect(r.status == 66, "\(args): \(r)")
            #expect(r.stderr == message, "\(args): \(r)")
        }
        // An empty file is still called empty.
        writeFile(s.dir + "/empty.db", "")
        let empty = s.taskq(["status", "--db", s.dir + "/empty.db"])
        #expect(empty.status == 66)
        #expect(empty.stderr.contains("the file is empty"), "\(empty)")
        let initialized = s.taskq(["init", "--db", s.db])
        #expect(initialized.status == 0, "\(initialized)")
        #expect(s.taskq(["status", "--db", s.db]).status == 0)
    }

    @Test func theTimeThatMarksBlockedTasksIsRefusedAsAStartTime() {
        let s = Scenario()
        defer { s.close() }
        s.enqueue("t")
        for at in ["9999-12-31T23:59:59.999Z", "9999-12-31T23:00:00-05:00"] {
            let r = s.taskq(["enqueue", "t", "--at", at])
            #expect(r.status == 64, "\(at): \(r)")
            #expect(r.stderr.hasPrefix("taskq: --at must be at most 9999-12-31T23:59:59.998Z"), "\(at): \(r)")
        }
        let batch = s.taskq(["enqueue", "--batch"], stdin: "{\"kind\":\"t\",\"at\":\"9999-12-31T23:59:59.999Z\"}\n")
        #expect(batch.status != 0, "\(batch)")
        #expect(batch.stderr.contains("must be at most 9999-12-31T23:59:59.998Z"), "\(batch)")
        #expect(s.sqlInt("SELECT count(*) FROM tasks") == 1)
        let latest = s.taskq(["enqueue", "t", "--at", "9999-12-31T23:59:59.998Z"])
        #expect(latest.status == 0, "\(latest)")
        #expect(s.sql("SELECT run_at FROM tasks WHERE id = \(latest.out)") == "9999-12-31T23:59:59.998Z")
        // --delay is capped at 100 years, far from year 9999.
        #expect(s.taskq(["enqueue", "t", "--delay", "36525d"]).status == 0)
        #expect(s.taskq(["enqueue", "t", "--delay", "36526d"]).status == 64)
    }
}
