import Testing
import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// retry, cancel, purge, attempt history, on-crash policy, through the real binary.
@Suite struct TaskOperationsTests {
    @Test func cancelStopsARunningHandlerAndTheTaskIsNeverRetried() {
        let s = Scenario()
        defer { s.close() }
        s.script("h.sh", "if [ \"$TASKQ_KIND\" = slow ]; then \(s.longSleep) & \(s.longSleep); fi; echo ok")
        let running = s.enqueue("slow")
        let sup = s.supervise(["--workers", "1", "--handler", "slow=./h.sh", "--handler", "quick=./h.sh", "--backoff-base", "0.1"])
        #expect(eventually { pidsMatching(s.longSleep).count == 2 }, "\(sup.stderrSoFar)")
        let queued = s.enqueue("slow", "null", ["--priority", "-1"])
        let r = s.taskq(["cancel", String(running), String(queued)])
        #expect(r.status == 0, "\(r)")
        #expect(r.out.contains("cancelled task \(running) (was running, now cancelled)"))
        #expect(r.out.contains("cancelled task \(queued) (was queued, now cancelled)"))
        #expect(r.out.contains("cancelled 2 tasks"))
        // The worker notices within a tick and kills the whole group.
        #expect(eventually(timeout: 5) { pidsMatching(s.longSleep).isEmpty }, "\(sup.stderrSoFar)")
        // It goes on with other work; the cancelled task stays cancelled, its attempt kept.
        let next = s.enqueue("quick")
        #expect(eventually(timeout: 20) { s.sql("SELECT state FROM tasks WHERE id = \(next)") == "succeeded" }, "\(sup.stderrSoFar)")
        #expect(s.sql("SELECT state || ':' || attempts || ':' || last_error FROM tasks WHERE id = \(running)") == "cancelled:1:cancelled by taskq cancel")
        #expect(s.sql("SELECT state || ':' || attempts FROM tasks WHERE id = \(queued)") == "cancelled:0")
        #expect(s.sql("SELECT outcome || ':' || attempt FROM attempts WHERE task_id = \(running)") == "cancelled:1")
        #expect(!sup.stderrSoFar.contains("rejected"), "\(sup.stderrSoFar)")
        #expect(sup.stderrSoFar.contains("task \(running) was cancelled"))
        sup.signal(SIGTERM)
        #expect(sup.wait(timeout: 30) == 0)
        #expect(s.sql("SELECT state FROM tasks WHERE id = \(running)") == "cancelled")
    }

    @Test func cancelAndRetryRefuseWhatTheyMustNotTouch() {
        let s = Scenario()
        defer { s.close() }
        let a = s.enqueue("t")
        let b = s.enqueue("t")
        #expect(s.taskq(["cancel", String(a)]).status == 0)
        // Cancelling a finished task: refused, the others in the call still done.
        let again = s.taskq(["cancel", String(a), String(b)])
        #expect(again.status == 1, "\(again)")
        #expect(again.stderr.contains("task \(a) is cancelled; only queued or running tasks can be cancelled"))
        #expect(again.out.contains("cancelled task \(b)"))
        let missing = s.taskq(["cancel", "999"])
        #expect(missing.status == 66, "\(missing)")
        #expect(missing.stderr.contains("no task 999"))
        let c = s.enqueue("t")
        let r = s.taskq(["retry", String(c)])
        #expect(r.status == 1)
        #expect(r.stderr.contains("task \(c) is queued; only failed or cancelled tasks can be retried"))
        #expect(s.taskq(["retry", "--state", "queued"]).status == 64)
        #expect(s.taskq(["retry"]).status == 64)
        #expect(s.taskq(["retry", "1", "--state", "failed"]).status == 64)
        #expect(s.taskq(["cancel"]).status == 64)
        // Retrying the cancelled ones: queued again, ready now, fresh budget.
        let back = s.taskq(["retry", "--state", "cancelled"])
        #expect(back.status == 0, "\(back)")
        #expect(back.out == "retried 2 cancelled tasks")
        #expect(s.sqlInt("SELECT count(*) FROM tasks WHERE state = 'queued' AND finished_at IS NULL AND attempts = 0") == 3)
    }

    @Test func retryGivesAFailedTaskAFreshBudgetAndEveryAttemptIsKept() {
        let s = Scenario()
        defer { s.close() }
        s.script("h.sh", "if [ -e ok ]; then echo fine; else echo \"broken $TASKQ_ATTEMPT\" >&2; exit 3; fi")
        let id = s.enqueue("t", "null", ["--max-attempts", "2"])
        let other = s.enqueue("t", "null", ["--max-attempts", "1", "--queue", "q2"])
        let sup = s.supervise(["--workers", "1", "--handler", "t=./h.sh", "--backoff-base", "0.05"])
        #expect(eventually(timeout: 20) { s.count("failed") == 2 }, "\(sup.stderrSoFar)")
        sup.signal(SIGTERM)
        #expect(sup.wait(timeout: 20) == 0)
        #expect(s.sql("SELECT attempt || ':' || outcome FROM attempts WHERE task_id = \(id) ORDER BY started_at") == "1:failed\n2:failed")
        #expect(s.sql("SELECT error FROM task_attempts WHERE task_id = \(id) AND attempt = 1").contains("broken 1"))
        #expect(s.sqlInt("SELECT count(*) FROM task_attempts WHERE task_id = \(id) AND worker_pid > 0 AND worker_host <> '' AND started_at < finished_at") == 2)
        writeFile(s.dir + "/ok", "")
        // Narrowed by queue: only the one in q2.
        let r = s.taskq(["retry", "--state", "failed", "--queue", "q2"])
        #expect(r.status == 0, "\(r)")
        #expect(r.out == "retried 1 failed task (queue q2)")
        #expect(s.sql("SELECT state FROM tasks WHERE id = \(other)") == "queued")
        #expect(s.taskq(["retry", String(id)]).out == "retried task \(id) (was failed, now queued)")
        let again = s.supervise(["--workers", "1", "--handler", "t=./h.sh", "--until-empty"])
        #expect(again.wait(timeout: 20) == 0)
        #expect(s.sql("SELECT state || ':' || attempts || ':' || result FROM tasks WHERE id = \(id)") == "succeeded:1:fine\n")
        #expect(s.sql("SELECT attempt || ':' || outcome FROM attempts WHERE task_id = \(id) ORDER BY started_at") == "1:failed\n2:failed\n1:succeeded")
        // show lists them, text and JSON.
        let show = s.taskq(["show", String(id)])
        #expect(show.out.contains("attempt history:"))
        #expect(show.out.contains("succeeded"))
        let json = s.taskq(["show", String(id), "--json"]).out
        let v = try? JSON.parse(json)
        guard case .array(let history)? = v?["attempts_history"] else { Issue.record("no attempts_history: \(json)"); return }
        #expect(history.map { $0["outcome"]?.stringValue ?? "" } == ["failed", "failed", "succeeded"])
        #expect(history.allSatisfy { ($0["worker_pid"]?.intValue ?? 0) > 0 && $0["started_at"]?.stringValue != nil && $0["host"]?.stringValue != nil })
        #expect(history[0]["error"]?.stringValue?.contains("broken 1") == true)
        #expect(v?["attempts"]?.intValue == 1)
    }

    @Test func crashAndTimeoutAreKeptAsSuchAndOnCrashFailEndsTheTask() {
        let s = Scenario()
        defer { s.close() }
        s.script("h.sh", "if [ \"$TASKQ_ATTEMPT\" = 1 ]; then \(s.longSleep); fi; echo done")
        let fragile = s.enqueue("charge")
        let sup = s.supervise(["--workers", "1", "--handler", "charge=./h.sh", "--handler", "t=./h.sh",
                               "--on-crash", "charge=fail", "--backoff-base", "0.05"])
        #expect(eventually { s.sql("SELECT state FROM tasks WHERE id = \(fragile)") == "running" })
        var worker = s.workerPids
        #expect(worker.count == 1)
        if worker.count == 1 { kill(worker[0], SIGKILL) }
        #expect(eventually(timeout: 20) { s.sql("SELECT state FROM tasks WHERE id = \(fragile)") == "failed" }, "\(sup.stderrSoFar)")
        #expect(s.sql("SELECT attempts FROM tasks WHERE id = \(fragile)") == "1")
        #expect(s.sql("SELECT last_error FROM tasks WHERE id = \(fragile)").contains("not retried (on-crash fail)"))
        #expect(s.sql("SELECT outcome || ':' || worker_pid FROM attempts WHERE task_id = \(fragile)") == "crashed:\(worker.first ?? 0)")
        // The task's own setting wins over the kind's.
        let retried = s.enqueue("charge", "null", ["--on-crash", "retry"])
        #expect(eventually { s.sql("SELECT state FROM tasks WHERE id = \(retried)") == "running" && s.workerPids.count == 1 })
        worker = s.workerPids
        if worker.count == 1 { kill(worker[0], SIGKILL) }
        #expect(eventually(timeout: 20) { s.sql("SELECT state FROM tasks WHERE id = \(retried)") == "succeeded" }, "\(sup.stderrSoFar)")
        #expect(s.sql("SELECT attempt || ':' || outcome FROM attempts WHERE task_id = \(retried) ORDER BY started_at") == "1:crashed\n2:succeeded")
        // A timeout is a timeout.
        let slow = s.enqueue("t", "null", ["--timeout", "0.3"])
        #expect(eventually(timeout: 20) { s.sql("SELECT state FROM tasks WHERE id = \(slow)") == "succeeded" }, "\(sup.stderrSoFar)")
        #expect(s.sql("SELECT attempt || ':' || outcome FROM attempts WHERE task_id = \(slow) ORDER BY started_at") == "1:timed out\n2:succeeded")
        sup.signal(SIGTERM)
        #expect(sup.wait(timeout: 30) == 0)
        #expect(s.taskq(["enqueue", "t", "--on-crash", "sometimes"]).status == 64)
        #expect(s.supervise(["--handler", "t=true", "--on-crash", "t"]).wait(timeout: 30) == 64)
    }

    @Test func aKindsPolicySetsAttemptsBackoffAndCrashPolicyOfItsTasks() {
        let s = Scenario()
        defer { s.close() }
        #expect(s.taskq(["kind", "set", "flaky", "--max-attempts", "2", "--backoff-base", "1s", "--backoff-cap", "1s"]).status == 0)
        #expect(s.taskq(["kind", "set", "fragile", "--on-crash", "fail"]).status == 0)
        #expect(s.taskq(["kind", "list", "--json"]).out.contains(#"{"kind":"flaky","max_attempts":2,"backoff_base":1,"backoff_cap":1,"on_crash":null}"#))
        s.script("fail.sh", "echo broken >&2; exit 3")
        s.script("slow.sh", s.longSleep)
        let flaky = s.enqueue("flaky")
        let own = s.enqueue("flaky", "null", ["--max-attempts", "3", "--backoff-base", "0"])
        let fragile = s.enqueue("fragile")
        #expect(s.sql("SELECT max_attempts || ' ' || backoff_base_s || ' ' || backoff_cap_s FROM tasks WHERE id = \(flaky)") == "2 1.0 1.0")
        let sup = s.supervise(["--workers", "2", "--handler", "flaky=./fail.sh", "--handler", "fragile=./slow.sh"])
        #expect(eventually(timeout: 20) { s.sql("SELECT state || ' ' || attempts FROM tasks WHERE id = \(flaky)") == "failed 2" }, "\(sup.stderrSoFar)")
        #expect(eventually(timeout: 20) { s.sql("SELECT state || ' ' || attempts FROM tasks WHERE id = \(own)") == "failed 3" }, "\(sup.stderrSoFar)")
        // The kind's 1 s backoff (times a jitter of 0.5 to 1) separated its two attempts.
        let gap = Double(s.sql("""
            SELECT (julianday(b.started_at) - julianday(a.finished_at)) * 86400 FROM attempts a JOIN attempts b
            ON a.task_id = b.task_id AND a.attempt = 1 AND b.attempt = 2 WHERE a.task_id = \(flaky)
            """)) ?? -1
        #expect(gap >= 0.45, "retried \(gap) s after the first attempt; the kind's backoff base is 1 s")
        // Its crash policy: a killed worker's task ends failed, with no --on-crash at the supervisor.
        #expect(eventually { s.sql("SELECT state FROM tasks WHERE id = \(fragile)") == "running" })
        let pid = s.sql("SELECT worker_pid FROM tasks WHERE id = \(fragile)")
        if let p = Int32(pid) { kill(p, SIGKILL) }
        #expect(eventually(timeout: 20) { s.sql("SELECT state FROM tasks WHERE id = \(fragile)") == "failed" }, "\(sup.stderrSoFar)")
        #expect(s.sql("SELECT last_error FROM tasks WHERE id = \(fragile)").contains("not retried (on-crash fail)"))
        sup.signal(SIGTERM)
        #expect(sup.wait(timeout: 30) == 0)
        #expect(s.taskq(["kind", "remove", "flaky"]).status == 0)
        #expect(s.taskq(["kind", "remove", "flaky"]).status == 66)
    }

    @Test func untilEmptyWaitsForRetriesButNotForDelayedTasks() {
        let s = Scenario()
        defer { s.close() }
        let flaky = s.enqueue("f", "null", ["--backoff-base", "0.2s", "--max-attempts", "3"])
        let later = s.enqueue("f", "null", ["--delay", "1h"])
        let sup = s.supervise(["--workers", "1", "--handler", "f=exit 1", "--until-empty"])
        #expect(sup.wait(timeout: 30) == 0, "\(sup.stderrSoFar)")
        #expect(s.sql("SELECT state || ' ' || attempts FROM tasks WHERE id = \(flaky)") == "failed 3")
        #expect(s.sql("SELECT state || ' ' || attempts FROM tasks WHERE id = \(later)") == "queued 0")
    }

    @Test func releasedAttemptsAreKeptWithoutCounting() {
        let s = Scenario()
        defer { s.close() }
        s.script("h.sh", s.longSleep)
        let id = s.enqueue("t")
        let sup = s.supervise(["--workers", "1", "--handler", "t=./h.sh", "--shutdown-timeout", "0.2"])
        #expect(eventually { s.sql("SELECT state FROM tasks WHERE id = \(id)") == "running" })
        sup.signal(SIGTERM)
        #expect(sup.wait(timeout: 30) == 0)
        #expect(s.sql("SELECT state || ':' || attempts FROM tasks WHERE id = \(id)") == "queued:0")
        #expect(s.sql("SELECT attempt || ':' || outcome FROM attempts WHERE task_id = \(id)") == "1:released")
    }

    @Test func purgeDeletesOldFinishedTasksTheNewestTooAndNeverReusesAnID() {
        let s = Scenario()
        defer { s.close() }
        s.script("h.sh", "if [ \"$TASKQ_KIND\" = bad ]; then exit 1; fi; echo ok")
        let ids = (1...4).map { _ in s.enqueue("t") }
        let bad = s.enqueue("bad", "null", ["--max-attempts", "1"])
        let last = s.enqueue("t")
        let sup = s.supervise(["--workers", "1", "--handler", "t=./h.sh", "--handler", "bad=./h.sh", "--until-empty"])
        #expect(sup.wait(timeout: 30) == 0)
        let fresh = s.enqueue("t") // queued: never purged
        _ = s.sql("UPDATE tasks SET finished_at = '2020-01-01T00:00:00.000Z' WHERE id <> \(ids[0]) AND finished_at IS NOT NULL")
        let onlyFailed = s.taskq(["purge", "--older-than", "1h", "--state", "failed"])
        #expect(onlyFailed.status == 0, "\(onlyFailed)")
        #expect(onlyFailed.out.hasPrefix("purged 1 task (failed before "))
        #expect(s.sqlInt("SELECT count(*) FROM tasks WHERE id = \(bad)") == 0)
        #expect(s.sqlInt("SELECT count(*) FROM task_attempts WHERE task_id = \(bad)") == 0)
        let r = s.taskq(["purge", "--older-than", "1h"])
        #expect(r.out.hasPrefix("purged 4 tasks (succeeded, failed, cancelled before "), "\(r)")
        // Left: the recent one, the queued one.
        #expect(s.sql("SELECT group_concat(id) FROM (SELECT id FROM tasks ORDER BY id)") == "\(ids[0]),\(fresh)")
        _ = last
        // The newest task goes too when it matches, and its id is not given out again.
        #expect(s.taskq(["cancel", String(fresh)]).status == 0)
        let all = s.taskq(["purge", "--older-than", "0s"])
        #expect(all.out.hasPrefix("purged 2 tasks"), "\(all)")
        #expect(s.sqlInt("SELECT count(*) FROM tasks") == 0)
        #expect(s.enqueue("t") == fresh + 1)
        #expect(s.taskq(["purge", "--older-than", "1h", "--state", "queued"]).status == 64)
        #expect(s.taskq(["purge"]).status == 64)
    }

    @Test func supervisorPrunesOnItsOwn() {
        let s = Scenario()
        defer { s.close() }
        let old = (1...3).map { _ in s.enqueue("t") }
        let sup = s.supervise(["--workers", "1", "--handler", "t=cat", "--retain", "1h"])
        #expect(eventually(timeout: 20) { s.count("succeeded") == 3 })
        _ = s.sql("UPDATE tasks SET finished_at = '2020-01-01T00:00:00.000Z' WHERE id <= \(old[1])")
        // The first pass runs about 2 s after start, then once a minute: restart to see it.
        sup.signal(SIGTERM)
        #expect(sup.wait(timeout: 30) == 0)
        let again = s.supervise(["--workers", "1", "--handler", "t=cat", "--retain", "1h"])
        #expect(eventually(timeout: 20) { s.sqlInt("SELECT count(*) FROM tasks") == 1 }, "\(again.stderrSoFar)")
        #expect(eventually { again.stderrSoFar.contains("pruned 2 finished tasks older than") })
        again.signal(SIGTERM)
        #expect(again.wait(timeout: 30) == 0)
        #expect(s.supervise(["--handler", "t=cat", "--retain", "soon"]).wait(timeout: 30) == 64)
    }
}
