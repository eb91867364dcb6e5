import Testing
import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A retried task enqueued --after others waits for them again, as at enqueue.
@Suite struct RetryAfterTests {
    @Test func aRetriedTaskWaitsAgainForItsUnfinishedDependencies() {
        let s = Scenario()
        defer { s.close() }
        s.script("h.sh", "echo done-$TASKQ_KIND")
        let first = s.enqueue("first")
        let second = s.enqueue("second", "null", ["--after", String(first)])
        #expect(s.taskq(["cancel", String(second)]).status == 0)
        let retried = s.taskq(["retry", String(second)])
        #expect(retried.status == 0, "\(retried)")
        #expect(s.sql("SELECT state || ' ' || run_at FROM tasks WHERE id = \(second)") == "queued 9999-12-31T23:59:59.999Z")
        let shown = s.taskq(["result", String(second)])
        #expect(shown.status == 75)
        #expect(shown.stderr.contains("waiting for task \(first) to succeed"), "\(shown)")

        // Its dependency is still queued (nothing handles it): a batch run of the
        // dependant's handler finds nothing ready and leaves it blocked.
        let batch = s.taskq(["supervise", "--workers", "1", "--handler", "second=./h.sh", "--until-empty"], timeout: 60)
        #expect(batch.status == 0, "\(batch)")
        #expect(s.sql("SELECT state FROM tasks WHERE id = \(second)") == "queued")

        // Once the dependency succeeds, it runs.
        let all = s.taskq(["supervise", "--workers", "1", "--handler", "first=./h.sh", "--handler", "second=./h.sh", "--until-empty"], timeout: 60)
        #expect(all.status == 0, "\(all)")
        #expect(s.taskq(["result", String(second)]).out == "done-second")
        #expect(s.sqlInt("""
            SELECT count(*) FROM tasks a, tasks b WHERE a.id = \(first) AND b.id = \(second)
              AND a.state = 'succeeded' AND b.state = 'succeeded' AND b.started_at >= a.finished_at
            """) == 1)
    }

    @Test func aTaskWhoseDependencyFailedOrWasCancelledIsNotRetriedAlone() {
        let s = Scenario()
        defer { s.close() }
        let first = s.enqueue("first")
        let second = s.enqueue("second", "null", ["--after", String(first)])
        let third = s.enqueue("third", "null", ["--after", String(second)])
        #expect(s.taskq(["cancel", String(first)]).status == 0)
        #expect(s.count("cancelled") == 3)

        // As at enqueue (--after a cancelled task is refused): left as it is, exit 1.
        let alone = s.taskq(["retry", String(second)])
        #expect(alone.status == 1, "\(alone)")
        #expect(alone.stderr.contains("task \(second) is to run after task \(first), which is cancelled; not retried (retry task \(first) first, or both together)"), "\(alone)")
        #expect(s.sql("SELECT state FROM tasks WHERE id = \(second)") == "cancelled")

        // Together, in any order: the dependency first, then the chain, each blocked
        // behind the one before.
        let together = s.taskq(["retry", String(third), String(second), String(first)])
        #expect(together.status == 0, "\(together)")
        #expect(s.sql("SELECT group_concat(state) FROM tasks WHERE id IN (\(first), \(second), \(third))") == "queued,queued,queued")
        #expect(s.sql("SELECT group_concat(id) FROM tasks WHERE run_at = '9999-12-31T23:59:59.999Z'") == "\(second),\(third)")

        // A dependency that failed, then was purged, can never succeed: refused too.
        s.script("fail.sh", "exit 3")
        let broken = s.enqueue("broken", "null", ["--max-attempts", "1"])
        let dependant = s.enqueue("after-broken", "null", ["--after", String(broken)])
        let run = s.taskq(["supervise", "--workers", "1", "--handler", "broken=./fail.sh", "--until-empty"], timeout: 60)
        #expect(run.status == 0, "\(run)")
        #expect(s.sql("SELECT state FROM tasks WHERE id = \(dependant)") == "cancelled")
        #expect(s.taskq(["purge", "--older-than", "0s", "--state", "failed"]).out.hasPrefix("purged 1 task"))
        let orphan = s.taskq(["retry", String(dependant)])
        #expect(orphan.status == 1, "\(orphan)")
        #expect(orphan.stderr.contains("task \(dependant) is to run after task \(broken), which no longer exists; not retried"), "\(orphan)")
    }
}
