import Testing
import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The user's path from the issue: enqueue, supervise, status, stop.
@Suite(.serialized) struct LifecycleTests {
    @Test func drainsEveryTaskExactlyOnce() throws {
        let s = Scenario()
        defer { s.close() }
        let audit = s.dir + "/audit"
        s.script("h.sh", "cat > /dev/null; echo \"$TASKQ_TASK_ID\" >> \(audit); echo \"ok $TASKQ_TASK_ID\"")
        let lines = (1...200).map { "{\"kind\":\"t\",\"payload\":{\"i\":\($0)}}" }.joined(separator: "\n")
        let r = s.taskq(["enqueue", "--batch"], stdin: lines)
        #expect(r.status == 0, "\(r)")
        #expect(r.out.split(separator: "\n").count == 200)
        let sup = s.supervise(["--workers", "4", "--handler", "t=./h.sh"])
        #expect(eventually(timeout: 60) { s.count("succeeded") == 200 }, "\(sup.stderrSoFar)")
        let stop = s.taskq(["stop", "--wait", "--timeout", "30"])
        #expect(stop.status == 0, "\(stop)")
        #expect(sup.wait(timeout: 30) == 0)
        // Each task ran exactly once and its stdout is its result.
        let ran = String(decoding: readAll(audit), as: UTF8.self).split(separator: "\n")
        #expect(ran.count == 200)
        #expect(Set(ran).count == 200)
        #expect(s.sqlInt("SELECT count(*) FROM tasks WHERE kind = 't' AND result = 'ok ' || id || char(10) AND attempts = 1") == 200)
        #expect(s.workerPids.isEmpty)
        #expect(s.sql("SELECT count(*) FROM processes") == "0")
    }

    @Test func stopDrainsTasksBeforeTheSentinelAndLeavesLaterOnes() throws {
        let s = Scenario()
        defer { s.close() }
        s.script("h.sh", "sleep 0.2; cat")
        for i in 1...6 { s.enqueue("t", "\(i)") }
        let sup = s.supervise(["--workers", "2", "--handler", "t=./h.sh"])
        #expect(eventually { s.count("running") > 0 })
        let stop = s.taskq(["stop"])
        #expect(stop.status == 0, "\(stop)")
        #expect(stop.out.contains("stop sentinel"))
        let late = s.enqueue("t", "\"late\"")
        let delayed = s.enqueue("t", "\"delayed\"", ["--delay", "1h"])
        #expect(sup.wait(timeout: 30) == 0, "\(sup.stderrSoFar)")
        #expect(s.count("succeeded") == 6)
        #expect(s.sql("SELECT state FROM tasks WHERE id = \(late)") == "queued")
        #expect(s.sql("SELECT state FROM tasks WHERE id = \(delayed)") == "queued")
        #expect(s.sql("SELECT state FROM tasks WHERE kind = 'taskq.stop'") == "succeeded")
        #expect(s.workerPids.isEmpty)
        // The next start runs what was left (the delayed one stays delayed).
        let again = s.supervise(["--workers", "1", "--handler", "t=./h.sh", "--until-empty"])
        #expect(again.wait(timeout: 30) == 0)
        #expect(s.sql("SELECT state || ':' || result FROM tasks WHERE id = \(late)") == "succeeded:\"late\"")
        #expect(s.sql("SELECT state FROM tasks WHERE id = \(delayed)") == "queued")
    }

    @Test func stopWithNoSupervisorWritesNothing() {
        let s = Scenario()
        defer { s.close() }
        s.enqueue("t")
        let r = s.taskq(["stop"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("no supervisor is running"))
        #expect(s.sqlInt("SELECT count(*) FROM tasks") == 1)
    }

    @Test func workerKilledMidTaskIsReplacedAndTheTaskRetried() {
        let s = Scenario()
        defer { s.close() }
        // First attempt hangs (and leaves a grandchild); later attempts succeed.
        s.script("h.sh", """
            if [ "$TASKQ_ATTEMPT" = 1 ]; then \(s.longSleep) & \(s.longSleep); fi
            echo "attempt $TASKQ_ATTEMPT"
            """)
        let id = s.enqueue("t")
        let sup = s.supervise(["--workers", "1", "--handler", "t=./h.sh", "--backoff-base", "0.1"])
        #expect(eventually { s.sql("SELECT state FROM tasks WHERE id = \(id)") == "running" })
        #expect(eventually { pidsMatching(s.longSleep).count == 2 })
        let worker = s.workerPids
        #expect(worker.count == 1)
        kill(worker[0], SIGKILL)
        #expect(eventually(timeout: 20) { s.sql("SELECT state FROM tasks WHERE id = \(id)") == "succeeded" }, "\(sup.stderrSoFar)")
        #expect(s.sql("SELECT result FROM tasks WHERE id = \(id)") == "attempt 2\n")
        #expect(s.sql("SELECT attempts FROM tasks WHERE id = \(id)") == "2")
        #expect(s.sql("SELECT last_error FROM tasks WHERE id = \(id)")
                    .contains("worker pid \(worker[0]) killed by signal 9 (SIGKILL) while running task \(id), attempt 1/3"))
        // The old attempt's process group died with its worker.
        #expect(eventually { pidsMatching(s.longSleep).isEmpty })
        #expect(eventually { s.workerPids.count == 1 && s.workerPids != worker })
        sup.signal(SIGTERM)
        #expect(sup.wait(timeout: 30) == 0)
    }

    @Test func supervisorKilledTakesItsWorkersAndTheNextOneRecovers() {
        let s = Scenario()
        defer { s.close() }
        s.script("h.sh", "if [ \"$TASKQ_ATTEMPT\" = 1 ]; then \(s.longSleep); fi; echo done")
        let ids = (1...2).map { _ in s.enqueue("t") }
        let sup = s.supervise(["--workers", "2", "--handler", "t=./h.sh", "--backoff-base", "0.1"])
        #expect(eventually { s.count("running") == 2 })
        sup.signal(SIGKILL)
        _ = sup.wait(timeout: 10)
        // No orphans: workers and their handlers die with the supervisor.
        #expect(eventually(timeout: 10) { s.workerPids.isEmpty && pidsMatching(s.longSleep).isEmpty })
        #expect(s.count("running") == 2)
        let next = s.supervise(["--workers", "2", "--handler", "t=./h.sh", "--backoff-base", "0.1"])
        #expect(eventually(timeout: 20) { s.count("succeeded") == 2 }, "\(next.stderrSoFar)")
        for id in ids {
            #expect(s.sql("SELECT last_error FROM tasks WHERE id = \(id)").contains("exited without cleaning up while running task \(id), attempt 1/3"))
        }
        next.signal(SIGTERM)
        #expect(next.wait(timeout: 30) == 0)
    }

    @Test func sigtermLetsARunningTaskFinish() {
        let s = Scenario()
        defer { s.close() }
        s.script("h.sh", "sleep 1; echo finished")
        let id = s.enqueue("t")
        let queued = s.enqueue("t")
        let sup = s.supervise(["--workers", "1", "--handler", "t=./h.sh"])
        #expect(eventually { s.sql("SELECT state FROM tasks WHERE id = \(id)") == "running" })
        sup.signal(SIGTERM)
        #expect(sup.wait(timeout: 30) == 0)
        #expect(s.sql("SELECT state || ':' || result FROM tasks WHERE id = \(id)") == "succeeded:finished\n")
        #expect(s.sql("SELECT state || ':' || attempts FROM tasks WHERE id = \(queued)") == "queued:0")
    }

    @Test func shutdownTimeoutPutsALongTaskBackWithoutCountingTheAttempt() {
        let s = Scenario()
        defer { s.close() }
        s.script("h.sh", s.longSleep)
        let id = s.enqueue("t")
        let sup = s.supervise(["--workers", "1", "--handler", "t=./h.sh", "--shutdown-timeout", "0.5"])
        #expect(eventually { s.sql("SELECT state FROM tasks WHERE id = \(id)") == "running" })
        sup.signal(SIGTERM)
        #expect(sup.wait(timeout: 30) == 0, "\(sup.stderrSoFar)")
        #expect(s.sql("SELECT state || ':' || attempts FROM tasks WHERE id = \(id)") == "queued:0")
        #expect(eventually { pidsMatching(s.longSleep).isEmpty })
    }

    @Test func secondSignalStopsAtOnce() {
        let s = Scenario()
        defer { s.close() }
        s.script("h.sh", s.longSleep)
        let id = s.enqueue("t")
        let sup = s.supervise(["--workers", "1", "--handler", "t=./h.sh"])
        #expect(eventually { s.sql("SELECT state FROM tasks WHERE id = \(id)") == "running" })
        sup.signal(SIGINT)
        usleep(100_000)
        sup.signal(SIGINT)
        #expect(sup.wait(timeout: 10) == 0, "\(sup.stderrSoFar)")
        #expect(s.sql("SELECT state || ':' || attempts FROM tasks WHERE id = \(id)") == "queued:0")
    }

    /// Idle workers sleep on inotify and wake at a producer's commit; without it
    /// they would find new work only at their 1 s fallback poll (median ~500 ms).
    @Test func anIdleWorkerWakesAtTheCommitNotAtItsFallbackPoll() {
        let s = Scenario()
        defer { s.close() }
        let sup = s.supervise(["--workers", "1", "--handler", "t=cat"])
        #expect(eventually { s.workerPids.count == 1 })
        var lags: [Double] = []
        for i in 0..<5 {
            usleep(300_000)  // let the worker go idle again
            let id = s.enqueue("t", "\(i)")
            #expect(eventually(timeout: 10) { s.sql("SELECT state FROM tasks WHERE id = \(id)") == "succeeded" }, "\(sup.stderrSoFar)")
            lags.append(Double(s.sql("SELECT (julianday(started_at) - julianday(created_at)) * 86400000.0 FROM tasks WHERE id = \(id)")) ?? -1)
        }
        let median = lags.sorted()[2]
        #expect(median >= 0 && median < 200, "enqueue-to-start lags \(lags.map { Int($0) }) ms")
        sup.signal(SIGTERM)
        #expect(sup.wait(timeout: 30) == 0)
    }

    /// An idle worker sleeps until the next delayed task is due (no polling loop):
    /// the task starts within tens of milliseconds of its time.
    @Test func aDelayedTaskStartsOnTime() {
        let s = Scenario()
        defer { s.close() }
        let sup = s.supervise(["--workers", "1", "--handler", "t=cat"])
        #expect(eventually { s.workerPids.count == 1 })
        usleep(300_000)  // let the worker go idle first
        let id = s.enqueue("t", "1", ["--delay", "1.5"])
        #expect(eventually(timeout: 10) { s.sql("SELECT state FROM tasks WHERE id = \(id)") == "succeeded" }, "\(sup.stderrSoFar)")
        let late = Double(s.sql("SELECT (julianday(started_at) - julianday(run_at)) * 86400000.0 FROM tasks WHERE id = \(id)")) ?? -1
        #expect(late >= 0 && late < 150, "started \(late) ms after its time")
        sup.signal(SIGTERM)
        #expect(sup.wait(timeout: 30) == 0)
    }
}
