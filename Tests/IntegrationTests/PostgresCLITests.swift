// The real `taskq` binary on a PostgreSQL database: every test gets its own schema
// on the test server (PostgresServer), and is reported as skipped, with the reason,
// when there is none.

import Testing
import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized, .enabled(if: PostgresServer.url != nil, Comment(rawValue: PostgresServer.skipReason)))
struct PostgresCLITests {
    @Test func enqueueSuperviseResult() {
        let q = PGQueue()
        defer { q.close() }
        let one = q.taskq("enqueue", ["echo", #"{"n":1}"#])
        #expect(one.status == 0, "\(one)")
        let lines = q.taskq("enqueue", ["echo", "--lines"], stdin: "{\"n\":2}\n{\"n\":3}\n")
        #expect(lines.status == 0, "\(lines)")
        let sup = q.supervise(["--until-empty", "--workers", "2", "--handler", "echo=cat"]).finish()
        #expect(sup.status == 0, "\(sup)")
        #expect(q.taskq("result", [one.out]).out == #"{"n":1}"#)
        #expect(q.count("succeeded") == 3)
        let list = q.taskq("list", ["--state", "succeeded"])
        #expect(list.status == 0 && list.out.split(separator: "\n").count >= 3, "\(list)")
        #expect(q.taskq("status").status == 0)
    }

    @Test func stopWaitStopsARunningSupervisor() {
        let q = PGQueue()
        defer { q.close() }
        let sup = q.supervise(["--workers", "1", "--handler", "t=cat"])
        #expect(eventually { q.workerPids.count == 1 }, "\(sup.stderrSoFar)")
        let stop = q.taskq("stop", ["--wait"])
        #expect(stop.status == 0, "\(stop)")
        #expect(sup.wait(timeout: 30) == 0, "\(sup.stderrSoFar)")
        #expect(q.sql("SELECT count(*) FROM processes") == "0")
    }

    @Test func aKilledWorkersTaskIsRecoveredAndItsAttemptCounted() {
        let q = PGQueue()
        defer { q.close() }
        let handler = q.s.script("once.sh", """
            if [ -e "\(q.s.dir)/ran" ]; then echo done; else touch "\(q.s.dir)/ran"; exec \(q.s.longSleep); fi
            """)
        let sup = q.supervise(["--workers", "1", "--lease", "2", "--handler", "t=\(handler)"])
        let id = q.taskq("enqueue", ["t", "1"]).out
        #expect(eventually { access(q.s.dir + "/ran", F_OK) == 0 }, "\(sup.stderrSoFar)")
        let victims = q.workerPids
        #expect(victims.count == 1)
        for pid in victims { kill(pid, SIGKILL) }
        #expect(eventually(timeout: 60) { q.sql("SELECT state FROM tasks WHERE id = \(id)") == "succeeded" }, "\(sup.stderrSoFar)")
        #expect(q.sql("SELECT attempts FROM tasks WHERE id = \(id)") == "2")
        #expect(q.taskq("result", [id]).out == "done")
        for pid in pidsMatching(q.s.longSleep) { kill(pid, SIGKILL) }
        sup.signal(SIGTERM)
        #expect(sup.wait(timeout: 30) == 0)
    }

    @Test func twoSupervisorsDrainOneQueueNoneLostNoneTwice() {
        let q = PGQueue()
        defer { q.close() }
        let log = q.s.dir + "/ran.log"
        let handler = q.s.script("log.sh", "echo \"$TASKQ_TASK_ID\" >> \(log)")
        let enq = q.taskq("enqueue", ["t", "--lines"], stdin: (0..<500).map { "{\"i\":\($0)}\n" }.joined())
        #expect(enq.status == 0, "\(enq.stderr)")
        let a = q.supervise(["--until-empty", "--workers", "2", "--handler", "t=\(handler)"])
        let b = q.supervise(["--until-empty", "--workers", "2", "--handler", "t=\(handler)"])
        #expect(a.wait(timeout: 300) == 0, "\(a.stderrSoFar)")
        #expect(b.wait(timeout: 300) == 0, "\(b.stderrSoFar)")
        let ran = String(decoding: readAll(log), as: UTF8.self).split(separator: "\n")
        #expect(ran.count == 500)
        #expect(Set(ran).count == 500)
        #expect(q.count("succeeded") == 500)
        #expect(q.sql("SELECT count(*) FROM tasks WHERE attempts <> 1 AND kind <> 'taskq.stop'") == "0")
    }

    /// `--lines` sends the transactions of the lines it has read together; one the
    /// database refuses stops the rest: the lines before it stay enqueued, their ids
    /// printed, the error says how many, and nothing after it is written.
    @Test func linesReadAheadStopAtARefusedLine() {
        let q = PGQueue()
        defer { q.close() }
        #expect(q.taskq("init").status == 0)
        _ = q.sql(#"ALTER TABLE tasks ADD CONSTRAINT "no 7" CHECK (payload <> '7')"#)
        for every in ["1", "2"] {
            _ = q.sql("DELETE FROM tasks")
            let r = q.taskq("enqueue", ["t", "--lines", "--commit-every", every], stdin: (1...10).map { "\($0)\n" }.joined())
            #expect(r.status == 1 && r.stderr.contains("no 7") && r.stderr.contains("the 6 earlier lines were enqueued"), "\(r)")
            #expect(r.out.split(separator: "\n").count == 6, "\(r)")
            #expect(q.sql("SELECT string_agg(payload, ',' ORDER BY id) FROM tasks") == "1,2,3,4,5,6")
        }
    }

    /// The other commands, each once, on a PostgreSQL URL: exit 0 and their usual output.
    @Test func everyCommandTakesAURL() {
        let q = PGQueue()
        defer { q.close() }
        func ok(_ command: String, _ args: [String] = [], stdin: String? = nil) -> String {
            let r = q.taskq(command, args, stdin: stdin)
            #expect(r.status == 0, "\(command) \(args): \(r)")
            return r.out
        }
        #expect(ok("init").hasPrefix("initialized postgresql://"))
        let late = ok("enqueue", ["k", "3", "--delay", "1h"])
        let a = ok("enqueue", ["k", "1"])
        _ = ok("enqueue", ["k", "--batch"], stdin: #"{"kind":"k","payload":2}"# + "\n")
        #expect(ok("show", [a]).contains("state:     queued"))
        #expect(ok("kind", ["set", "k", "--max-attempts", "5"]).contains("5 attempts"))
        #expect(ok("kind", ["list"]).contains("k"))
        #expect(ok("schedule", ["add", "nightly", "--cron", "0 3 * * *", "k"]).contains("schedule nightly"))
        #expect(ok("schedule", ["list"]).contains("nightly"))
        _ = ok("schedule", ["remove", "nightly"])
        _ = ok("pause", ["default"])
        _ = ok("resume", ["default"])
        #expect(ok("cancel", [late]).contains("cancelled task \(late)"))
        #expect(ok("retry", [late]).contains("retried task \(late)"))
        _ = ok("cancel", [late])
        // Finished before now: once the clock has moved past the cancel's millisecond.
        #expect(eventually { ok("purge", ["--state", "cancelled", "--older-than", "0s"]).contains("purged 1 task") })
        #expect(ok("top", ["--iterations", "1"]).contains("taskq top - postgresql://"))
        #expect(q.supervise(["--until-empty", "--handler", "k=cat"]).finish().status == 0)
        _ = ok("wait", [a])
        #expect(ok("result", [a]) == "1")
        #expect(ok("map", ["--group", "g", "--handler", "tr a-z A-Z"], stdin: "a\nb\n") == "A\nB")
    }

    /// LISTEN/NOTIFY: an idle worker starts a new task well before its 1 s fallback poll.
    @Test func anIdleWorkerWakesAtTheCommit() {
        let q = PGQueue()
        defer { q.close() }
        let sup = q.supervise(["--workers", "1", "--handler", "t=cat"])
        #expect(eventually { q.workerPids.count == 1 }, "\(sup.stderrSoFar)")
        var lags: [Double] = []
        for i in 0..<5 {
            usleep(300_000)  // let the worker go idle again
            let id = q.taskq("enqueue", ["t", "\(i)"]).out
            #expect(eventually(timeout: 10) { q.sql("SELECT state FROM tasks WHERE id = \(id)") == "succeeded" }, "\(sup.stderrSoFar)")
            lags.append(Double(q.sql("SELECT extract(epoch FROM started_at - created_at) * 1000 FROM tasks WHERE id = \(id)")) ?? -1)
        }
        let median = lags.sorted()[2]
        #expect(median >= 0 && median < 400, "enqueue-to-start lags \(lags.map { Int($0) }) ms")
        sup.signal(SIGTERM)
        #expect(sup.wait(timeout: 30) == 0)
    }

    /// NOTIFY for what makes a queued task claimable besides an insert: an idle
    /// worker starts a task within 400 ms (well below its 1 s fallback poll) of
    /// `taskq resume` of its queue and of `taskq retry`; 5 of each, the median.
    @Test func anIdleWorkerWakesOnResumeAndRetry() {
        let q = PGQueue()
        defer { q.close() }
        let sup = q.supervise(["--workers", "1", "--handler", "t=cat"])
        #expect(eventually { q.workerPids.count == 1 }, "\(sup.stderrSoFar)")
        /// Runs `change` once the worker is idle again; returns how long after it
        /// task `id` started, in ms.
        func lag(_ id: String, _ change: () -> RunResult) -> Double {
            usleep(300_000)  // let the worker go idle again
            let before = Timestamp.now()
            let r = change()
            #expect(r.status == 0, "\(r)")
            #expect(eventually(timeout: 10) { q.sql("SELECT state FROM tasks WHERE id = \(id)") == "succeeded" }, "\(sup.stderrSoFar)")
            let started = Double(q.sql("SELECT (extract(epoch FROM started_at) * 1000)::bigint FROM tasks WHERE id = \(id)")) ?? 0
            return started - Double(before.milliseconds)
        }
        var resumed: [Double] = [], retried: [Double] = []
        for i in 0..<5 {
            #expect(q.taskq("pause", ["default"]).status == 0)
            let id = q.taskq("enqueue", ["t", "\(i)"]).out
            resumed.append(lag(id) { q.taskq("resume", ["default"]) })
            let late = q.taskq("enqueue", ["t", "\(i)", "--delay", "1h"]).out
            #expect(q.taskq("cancel", [late]).status == 0)
            retried.append(lag(late) { q.taskq("retry", [late]) })
        }
        for (what, lags) in [("resume", resumed), ("retry", retried)] {
            let median = lags.sorted()[2]
            #expect(median >= 0 && median < 400, "\(what)-to-start lags \(lags.map { Int($0) }) ms")
        }
        sup.signal(SIGTERM)
        #expect(sup.wait(timeout: 30) == 0)
    }

    /// A server that cannot be reached, or a database that does not exist: one line,
    /// the documented exit code, no crash trace.
    @Test func unreachableOrMissingDatabaseIsOneLine() {
        let s = Scenario("taskq-pgcli")
        defer { s.close() }
        let refused = s.taskq(["list", "--db", "postgresql://taskq@127.0.0.1:1/jobs?connect_timeout=5"])
        #expect(refused.status == 69, "\(refused)")
        // A database that does not exist on the test server (of the private server's URL form).
        let url = PostgresServer.url!
        let missing = url.contains("/postgres?") ? url.replacingFirst("/postgres?", "/no_such_db?") : url + " dbname=no_such_db"
        let notFound = s.taskq(["status", "--db", missing])
        #expect(notFound.status == 66, "\(notFound)")
        let bad = s.taskq(["list", "--db", "postgresql://[bad"])
        #expect(bad.status == 69 || bad.status == 64, "\(bad)")
        // A URL libpq cannot read is a usage mistake, told before any connection.
        let garbled = s.taskq(["list", "--db", "postgresql:///jobs?bogus=1"])
        #expect(garbled.status == 64 && garbled.stderr.contains("not a PostgreSQL URL or connection string libpq can read"),
                "\(garbled)")
        for r in [refused, notFound, bad, garbled] {
            #expect(r.stderr.split(separator: "\n").count == 1, "\(r)")
            #expect(!r.stderr.contains("Fatal error") && !r.stderr.contains("secret"))
        }
        let pw = s.taskq(["list", "--db", "postgresql://taskq:secret@127.0.0.1:1/jobs?connect_timeout=5"])
        #expect(pw.status == 69 && !pw.stderr.contains("secret"), "\(pw)")
    }
}

extension String {
    fileprivate func replacingFirst(_ a: String, _ b: String) -> String {
        guard let r = firstRange(of: a) else { return self }
        return String(self[..<r.lowerBound]) + b + String(self[r.upperBound...])
    }
}
