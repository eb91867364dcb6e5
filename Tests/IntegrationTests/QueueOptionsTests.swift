import Testing
import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// pause/resume, workers per queue, --unique and --after, through the real binary.
@Suite struct QueueOptionsTests {
    @Test func pausedQueueIsNotClaimedUntilResumed() {
        let s = Scenario()
        defer { s.close() }
        // No database yet: pause creates it, as enqueue does.
        #expect(s.taskq(["pause", "emails"]).out == "paused queue emails: no new claims until 'taskq resume emails'")
        #expect(s.taskq(["pause", "emails"]).out == "queue emails was already paused")
        s.enqueue("t", "0")
        let mail = (1...3).map { s.enqueue("t", "\($0)", ["--queue", "emails"]) }
        let sup = s.supervise(["--workers", "2", "--handler", "t=cat"])
        let other = s.enqueue("t", "9")
        #expect(eventually(timeout: 20) { s.sql("SELECT state FROM tasks WHERE id = \(other)") == "succeeded" }, "\(sup.stderrSoFar)")
        #expect(s.sqlInt("SELECT count(*) FROM tasks WHERE queue = 'emails' AND state = 'queued'") == 3)
        let status = s.taskq(["status"])
        #expect(status.out.contains("emails (paused)"), "\(status)")
        #expect(status.out.contains("paused: emails (since "))
        let json = try? JSON.parse(s.taskq(["status", "--json"]).out)
        guard case .array(let paused)? = json?["paused_queues"], case .array(let queues)? = json?["queues"] else {
            Issue.record("status --json shape"); return
        }
        #expect(paused.map { $0["queue"]?.stringValue } == ["emails"])
        #expect(queues.first { $0["queue"]?.stringValue == "emails" }?["paused"] == .bool(true))
        #expect(queues.first { $0["queue"]?.stringValue == "default" }?["paused"] == .bool(false))
        #expect(s.sql("SELECT name || ':' || (paused_at IS NOT NULL) FROM queues") == "emails:1")
        #expect(s.taskq(["resume", "emails"]).out == "resumed queue emails")
        #expect(eventually(timeout: 10) { s.sqlInt("SELECT count(*) FROM tasks WHERE queue = 'emails' AND state = 'succeeded'") == 3 }, "\(sup.stderrSoFar)")
        #expect(s.taskq(["resume", "emails"]).out == "queue emails was not paused")
        _ = mail
        sup.signal(SIGTERM)
        #expect(sup.wait(timeout: 30) == 0)
        #expect(s.taskq(["pause", "bad name"]).status == 64)
    }

    @Test func eachQueueHasItsOwnWorkers() {
        let s = Scenario()
        defer { s.close() }
        s.script("h.sh", "if [ \"$TASKQ_QUEUE\" = slow ]; then \(s.longSleep); fi; echo ok")
        for _ in 1...3 { s.enqueue("t", "null", ["--queue", "slow"]) }
        let sup = s.supervise(["--handler", "t=./h.sh", "--queue", "slow=1", "--queue", "fast=2", "--shutdown-timeout", "0.2"])
        #expect(eventually { s.workerPids.count == 3 }, "\(sup.stderrSoFar)")
        let fast = (1...5).map { _ in s.enqueue("t", "null", ["--queue", "fast"]) }
        #expect(eventually(timeout: 20) { s.sqlInt("SELECT count(*) FROM tasks WHERE queue = 'fast' AND state = 'succeeded'") == 5 }, "\(sup.stderrSoFar)")
        // The slow queue's one worker is busy: one slow task running, two waiting.
        #expect(s.sql("SELECT state || ':' || count(*) FROM tasks WHERE queue = 'slow' GROUP BY state ORDER BY state") == "queued:2\nrunning:1")
        // A task in a queue no pool serves is not run.
        let stray = s.enqueue("t", "null", ["--queue", "other"])
        usleep(300_000)
        #expect(s.sql("SELECT state FROM tasks WHERE id = \(stray)") == "queued")
        _ = fast
        let status = s.taskq(["status", "--json"]).out
        #expect(status.contains("\"queues\":[\"fast\",\"slow\"]"), "\(status)")
        sup.signal(SIGTERM)
        #expect(sup.wait(timeout: 30) == 0)
        // --workers with no bare queue to serve, bad counts, a queue twice: usage errors.
        for args in [["--workers", "2", "--queue", "a=1"], ["--queue", "a=0"], ["--queue", "a=x"], ["--queue", "a", "--queue", "a=2"]] {
            let c = s.supervise(["--handler", "t=true"] + args)
            #expect(c.wait(timeout: 30) == 64, "\(args)")
        }
    }

    @Test func bareQueuesShareTheWorkersPool() {
        let s = Scenario()
        defer { s.close() }
        let a = s.enqueue("t", "1", ["--queue", "a"])
        let b = s.enqueue("t", "2", ["--queue", "b"])
        let c = s.enqueue("t", "3", ["--queue", "c"])
        let sup = s.supervise(["--handler", "t=cat", "--workers", "1", "--queue", "a", "--queue", "b", "--queue", "c=1", "--until-empty"])
        #expect(sup.wait(timeout: 30) == 0, "\(sup.stderrSoFar)")
        #expect(s.sql("SELECT group_concat(state) FROM tasks WHERE id IN (\(a), \(b), \(c))") == "succeeded,succeeded,succeeded")
        #expect(s.workerPids.isEmpty)
    }

    @Test func uniqueKeyAllowsOneQueuedOrRunningTask() {
        let s = Scenario()
        defer { s.close() }
        let first = s.taskq(["enqueue", "sync", "--unique", "user:7", "1"])
        #expect(first.status == 0)
        let id = Int64(first.out) ?? -1
        let second = s.taskq(["enqueue", "sync", "--unique", "user:7", "2"])
        #expect(second.status == 0, "\(second)")
        #expect(second.out == String(id))
        #expect(second.stderr.contains("task \(id) with unique key \"user:7\" is already queued or running; not enqueued again"))
        #expect(s.taskq(["enqueue", "sync", "--unique", "user:7", "--json", "3"]).out == "{\"id\": \(id), \"existing\": true}")
        let otherKey = s.taskq(["enqueue", "sync", "--unique", "user:8", "--json", "4"]).out
        #expect(otherKey == "{\"id\": \(id + 1), \"existing\": false}")
        #expect(s.taskq(["enqueue", "sync", "--json", "5"]).out == "{\"id\": \(id + 2), \"existing\": false}")
        // In one batch: the second line with a key already taken reports the holder.
        let batch = s.taskq(["enqueue", "sync", "--batch", "--json"], stdin: """
            {"payload": 6, "unique": "user:9"}
            {"payload": 7, "unique": "user:9"}
            {"payload": 8, "unique": "user:7"}
            """)
        #expect(batch.status == 0, "\(batch)")
        #expect(batch.out == "{\"id\": \(id + 3), \"existing\": false}\n{\"id\": \(id + 3), \"existing\": true}\n{\"id\": \(id), \"existing\": true}")
        #expect(s.sqlInt("SELECT count(*) FROM tasks WHERE unique_key = 'user:7'") == 1)
        // The database enforces it, not the CLI: a raw INSERT is refused too.
        let raw = run("/usr/bin/sqlite3", [s.db, "INSERT INTO tasks (kind, run_at, created_at, unique_key) VALUES ('sync', 'x', 'x', 'user:7')"])
        #expect(raw.status != 0)
        #expect(raw.stderr.contains("UNIQUE"))
        // Once the holder has finished, the key is free again.
        let sup = s.supervise(["--workers", "1", "--handler", "sync=cat", "--until-empty"])
        #expect(sup.wait(timeout: 30) == 0)
        let later = s.taskq(["enqueue", "sync", "--unique", "user:7", "--json", "9"])
        #expect(later.out == "{\"id\": \(id + 4), \"existing\": false}", "\(later)")
        #expect(later.stderr.isEmpty)
        #expect(s.taskq(["enqueue", "sync", "--unique", "", "1"]).status == 64)
    }

    @Test func uniqueEnqueuesRacingFromManyProcessesMakeOneTask() {
        let s = Scenario()
        defer { s.close() }
        s.enqueue("warm")
        let racers = (1...8).map { i in s.start(Harness.taskq, ["enqueue", "job", "--unique", "once", "\(i)"]) }
        for r in racers { #expect(r.wait(timeout: 60) == 0) }
        #expect(s.sqlInt("SELECT count(*) FROM tasks WHERE kind = 'job'") == 1)
    }

    @Test func afterRunsADependantOnlyOnceAllItsTasksSucceeded() {
        let s = Scenario()
        defer { s.close() }
        s.script("h.sh", "while [ ! -e go ]; do sleep 0.02; done; cat")
        let a = s.enqueue("t", "1")
        let b = s.enqueue("t", "2")
        let merge = s.taskq(["enqueue", "m", "--after", "\(a),\(b)", "3"])
        #expect(merge.status == 0, "\(merge)")
        let m = Int64(merge.out) ?? -1
        #expect(s.sql("SELECT run_at FROM tasks WHERE id = \(m)") == "9999-12-31T23:59:59.999Z")
        #expect(s.sql("SELECT group_concat(depends_on) FROM task_dependencies WHERE task_id = \(m)") == "\(a),\(b)")
        #expect(s.taskq(["show", String(m)]).out.contains("after:     waiting for task \(a), \(b)"))
        let pending = s.taskq(["result", String(m)])
        #expect(pending.status == 75)
        #expect(pending.stderr.contains("task \(m) is queued, not finished yet (waiting for task \(a), \(b) to succeed: --after)"), "\(pending)")
        let sup = s.supervise(["--workers", "2", "--handler", "t=./h.sh", "--handler", "m=echo merged"])
        #expect(eventually { s.count("running") == 2 })
        usleep(200_000)
        #expect(s.sql("SELECT state FROM tasks WHERE id = \(m)") == "queued")
        writeFile(s.dir + "/go", "")
        #expect(eventually(timeout: 20) { s.sql("SELECT state FROM tasks WHERE id = \(m)") == "succeeded" }, "\(sup.stderrSoFar)")
        #expect(s.sql("SELECT finished_at FROM tasks WHERE id = \(b)") <= s.sql("SELECT started_at FROM tasks WHERE id = \(m)"))
        #expect(s.sql("SELECT finished_at FROM tasks WHERE id = \(a)") <= s.sql("SELECT started_at FROM tasks WHERE id = \(m)"))
        #expect(s.sqlInt("SELECT count(*) FROM task_dependencies") == 0)
        // After a task that already succeeded: ready at once.
        let now = s.enqueue("m", "null", ["--after", String(a)])
        #expect(eventually(timeout: 20) { s.sql("SELECT state FROM tasks WHERE id = \(now)") == "succeeded" })
        sup.signal(SIGTERM)
        #expect(sup.wait(timeout: 30) == 0)
    }

    @Test func afterAFailedOrCancelledTaskTheDependantIsCancelled() {
        let s = Scenario()
        defer { s.close() }
        let bad = s.enqueue("bad", "null", ["--max-attempts", "1"])
        let dep = s.enqueue("m", "null", ["--after", String(bad)])
        let chained = s.enqueue("m", "null", ["--after", String(dep)])
        let sup = s.supervise(["--workers", "1", "--handler", "bad=exit 1", "--handler", "m=echo no", "--until-empty"])
        #expect(sup.wait(timeout: 30) == 0, "\(sup.stderrSoFar)")
        #expect(s.sql("SELECT state || ':' || last_error FROM tasks WHERE id = \(dep)") == "cancelled:task \(bad), which it was to run after, failed")
        #expect(s.sql("SELECT state || ':' || last_error FROM tasks WHERE id = \(chained)") == "cancelled:task \(dep), which it was to run after, was cancelled")
        // Cancelling a dependency by hand cancels its dependants.
        let x = s.enqueue("m")
        let y = s.enqueue("m", "null", ["--after", String(x)])
        let cancelled = s.taskq(["cancel", String(x)])
        #expect(cancelled.status == 0)
        #expect(cancelled.out == "cancelled task \(x) (was queued, now cancelled); cancelled with it, as it was to run after it: task \(y)", "\(cancelled)")
        #expect(s.sql("SELECT state || ':' || last_error FROM tasks WHERE id = \(y)") == "cancelled:task \(x), which it was to run after, was cancelled")
        // Unknown ids are refused; a finished-badly one too; nothing is written.
        let before = s.sqlInt("SELECT count(*) FROM tasks")
        let unknown = s.taskq(["enqueue", "m", "--after", "\(x),4242"])
        #expect(unknown.status == 66, "\(unknown)")
        #expect(unknown.stderr.contains("no task 4242"))
        let failedDep = s.taskq(["enqueue", "m", "--after", String(bad)])
        #expect(failedDep.status == 1, "\(failedDep)")
        #expect(failedDep.stderr.contains("task \(bad) is already failed"))
        #expect(s.sqlInt("SELECT count(*) FROM tasks") == before)
        #expect(s.taskq(["enqueue", "m", "--after", "x"]).status == 64)
        #expect(s.taskq(["enqueue", "m", "--after", "1", "--delay", "1m"]).status == 64)
    }
}
