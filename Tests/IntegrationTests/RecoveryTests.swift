import Testing
import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Crash recovery and the stop sentinel's robustness, judged by the rows and by
/// which processes are left alive.
@Suite struct RecoveryTests {
    /// A worker frozen mid-task (SIGSTOP) stops heartbeating: its lease expires, the
    /// task is rescued and run again by a replacement worker. When the frozen worker
    /// resumes, its late result (attempt 1) must not overwrite the rescuer's (attempt 2),
    /// and the worker exits because its lease is gone.
    @Test func frozenWorkerLosesItsTaskAndItsLateResultIsFenced() {
        let s = Scenario("taskq-recovery")
        defer { s.close() }
        // Attempt 1 is still running when the worker is frozen, and finishes while it
        // is stopped (the handler is in its own process group, so it is not stopped):
        // its result is then waiting in the pipe for the worker to deliver late.
        s.script("h.sh", """
            cat > /dev/null
            if [ "$TASKQ_ATTEMPT" = 1 ]; then sleep 1.5; fi
            echo "attempt $TASKQ_ATTEMPT"
            touch "done.$TASKQ_ATTEMPT"
            """)
        let id = s.enqueue("t")
        let sup = s.supervise(["--workers", "1", "--handler", "t=./h.sh", "--lease", "1", "--backoff-base", "0.05"])
        #expect(eventually { s.sql("SELECT state FROM tasks WHERE id = \(id)") == "running" })
        let original = workers(of: sup, s)
        #expect(original.count == 1)
        guard let frozen = original.first else { return }
        kill(frozen, SIGSTOP)
        let stoppedAt = System.monotonic()

        // Rescued within a few seconds, with a reason that names the lease.
        #expect(eventually(timeout: 8) { s.sql("SELECT last_error IS NOT NULL FROM tasks WHERE id = \(id)") == "1" }, "\(sup.stderrSoFar)")
        #expect(System.monotonic() - stoppedAt < 8)
        let error = s.sql("SELECT last_error FROM tasks WHERE id = \(id)")
        #expect(error.contains("worker pid \(frozen)"), "\(error)")
        #expect(error.contains("stopped heartbeating"), "\(error)")
        #expect(error.contains("lease expired"), "\(error)")
        #expect(error.contains("while running task \(id), attempt 1/3"), "\(error)")
        // A replacement worker finished it.
        #expect(eventually(timeout: 10) { s.sql("SELECT state FROM tasks WHERE id = \(id)") == "succeeded" }, "\(sup.stderrSoFar)")
        #expect(s.sql("SELECT result FROM tasks WHERE id = \(id)") == "attempt 2\n")
        #expect(eventually { workers(of: sup, s).contains { $0 != frozen } })
        #expect(processAlive(frozen), "the frozen worker is replaced, not killed")

        // The first attempt's handler is gone by now: it finished (its late result
        // waits in the pipe), or recovery killed it first (the frozen worker's
        // handlers are killed so that they cannot overlap the retry). Either way the
        // thawed worker has a late outcome to deliver.
        #expect(eventually(timeout: 10) { handlersOf(session: frozen).isEmpty }, "\(handlersOf(session: frozen))")
        kill(frozen, SIGCONT)
        // It finds its lease gone and exits; should its main thread deliver the late
        // result before its heartbeat thread notices, the fence refuses it. (In practice
        // the heartbeat thread wins: it wakes at once, so the fence is proven by the
        // stored result below, not by which of the two messages appears.)
        #expect(eventually(timeout: 10) { !processAlive(frozen) }, "\(sup.stderrSoFar)")
        #expect(eventually(timeout: 5) {
            sup.stderrSoFar.contains("lease lost") || sup.stderrSoFar.contains("rejected")
        }, "\(sup.stderrSoFar)")
        // The fence held: the stored result is still the rescuer's.
        #expect(s.sql("SELECT state || '|' || attempts || '|' || result FROM tasks WHERE id = \(id)") == "succeeded|2|attempt 2\n")
        #expect(runningWithoutLiveOwner(s).isEmpty)
        // The supervisor carries on with its replacement.
        #expect(!sup.exited)
        #expect(workers(of: sup, s).count == 1)
        let next = s.enqueue("t")
        #expect(eventually(timeout: 10) { s.sql("SELECT state FROM tasks WHERE id = \(next)") == "succeeded" }, "\(sup.stderrSoFar)")
        sup.signal(SIGTERM)
        #expect(sup.wait(timeout: 30) == 0, "\(sup.stderrSoFar)")
        #expect(s.workerPids.isEmpty)
    }

    /// A supervisor SIGKILLed while draining after `taskq stop` leaves its sentinel
    /// queued. The next supervisor must not obey a sentinel addressed to a dead one:
    /// it closes it (cancelled), runs everything (also what was enqueued after the
    /// sentinel), and keeps running; a new `taskq stop` then stops it.
    @Test func supervisorKilledMidDrainLeavesASentinelTheNextOneCloses() {
        let s = Scenario("taskq-recovery")
        defer { s.close() }
        // The task "hang" hangs at its first attempt, so the drain cannot finish.
        s.script("h.sh", """
            if [ "$(cat)" = '"hang"' ] && [ "$TASKQ_ATTEMPT" = 1 ]; then \(s.longSleep); fi
            echo "done $TASKQ_ATTEMPT"
            """)
        let held = s.enqueue("t", "\"hang\"")
        let args = ["--workers", "1", "--handler", "t=./h.sh", "--backoff-base", "0.05"]
        let sup = s.supervise(args)
        #expect(eventually { s.sql("SELECT state FROM tasks WHERE id = \(held)") == "running" })
        let stop = s.taskq(["stop"])
        #expect(stop.status == 0, "\(stop)")
        let sentinel = s.sql("SELECT id FROM tasks WHERE kind = 'taskq.stop'")
        #expect(!sentinel.isEmpty)
        // It is draining (the hanging task keeps it from finishing).
        #expect(eventually { sup.stderrSoFar.contains("stop sentinel \(sentinel)") }, "\(sup.stderrSoFar)")
        let late = s.enqueue("t")
        #expect(s.sql("SELECT state FROM tasks WHERE id = \(late)") == "queued")
        sup.signal(SIGKILL)
        #expect(sup.wait(timeout: 10) != nil)
        #expect(eventually(timeout: 10) { s.workerPids.isEmpty && pidsMatching(s.longSleep).isEmpty })
        #expect(s.sql("SELECT state FROM tasks WHERE id = \(sentinel)") == "queued")

        let next = s.supervise(args)
        #expect(eventually(timeout: 10) { s.sql("SELECT state FROM tasks WHERE id = \(sentinel)") == "cancelled" }, "\(next.stderrSoFar)")
        #expect(s.sql("SELECT finished_at IS NOT NULL FROM tasks WHERE id = \(sentinel)") == "1")
        #expect(s.sql("SELECT last_error FROM tasks WHERE id = \(sentinel)").contains("ended before"))
        #expect(eventually(timeout: 20) {
            s.sql("SELECT group_concat(state) FROM tasks WHERE id IN (\(held), \(late))") == "succeeded,succeeded"
        }, "\(next.stderrSoFar)")
        #expect(s.sql("SELECT last_error FROM tasks WHERE id = \(held)").contains("exited without cleaning up"))
        // It does not take the dead supervisor's sentinel as its own: it keeps running.
        #expect(next.wait(timeout: 1.5) == nil, "\(next.stderrSoFar)")
        #expect(workers(of: next, s).count == 1)
        #expect(runningWithoutLiveOwner(s).isEmpty)
        // A new sentinel is addressed to the live supervisor only, and stops it.
        let stop2 = s.taskq(["stop", "--wait", "--timeout", "30"])
        #expect(stop2.status == 0, "\(stop2)")
        #expect(next.wait(timeout: 10) == 0, "\(next.stderrSoFar)")
        #expect(s.sql("SELECT group_concat(state, ',') FROM (SELECT state FROM tasks WHERE kind = 'taskq.stop' ORDER BY id)")
                    == "cancelled,succeeded")
    }

    /// `taskq stop --now` behaves like SIGTERM: the running task may finish (it is
    /// quick), nothing new starts; `--wait` returns only once the supervisor is gone.
    @Test func stopNowLetsAQuickTaskFinishAndWaitReturnsAfterExit() {
        let s = Scenario("taskq-recovery")
        defer { s.close() }
        s.script("h.sh", "cat > /dev/null; touch \"started.$TASKQ_TASK_ID\"; sleep 1; echo finished")
        let id = s.enqueue("t")
        let queued = s.enqueue("t")
        let sup = s.supervise(["--workers", "1", "--handler", "t=./h.sh"])
        #expect(eventually { access(s.dir + "/started.\(id)", F_OK) == 0 })
        let stopper = s.start(Harness.taskq, ["stop", "--now", "--wait", "--timeout", "30"])
        #expect(stopper.wait(timeout: 30) == 0, "\(stopper.stderrSoFar)")
        // When --wait returns the supervisor has finished its shutdown.
        #expect(s.sql("SELECT state || ':' || result FROM tasks WHERE id = \(id)") == "succeeded:finished\n")
        #expect(s.sqlInt("SELECT count(*) FROM processes") == 0)
        #expect(stopper.stdoutSoFar.contains("stopped"))
        #expect(sup.wait(timeout: 5) == 0, "\(sup.stderrSoFar)")
        #expect(s.sql("SELECT state || ':' || attempts FROM tasks WHERE id = \(queued)") == "queued:0")
        #expect(access(s.dir + "/started.\(queued)", F_OK) != 0, "nothing new starts after stop --now")
        #expect(s.sql("SELECT state FROM tasks WHERE kind = 'taskq.stop'") == "succeeded")
        #expect(s.workerPids.isEmpty)
    }

    /// `taskq stop --now` with a task that outlasts --shutdown-timeout: it is killed
    /// (its whole group) and put back as queued without counting the attempt.
    @Test func stopNowPutsBackATaskThatOutlastsTheShutdownTimeout() {
        let s = Scenario("taskq-recovery")
        defer { s.close() }
        s.script("h.sh", "cat > /dev/null; \(s.longSleep) & \(s.longSleep)")
        let id = s.enqueue("t")
        let sup = s.supervise(["--workers", "1", "--handler", "t=./h.sh", "--shutdown-timeout", "0.5"])
        #expect(eventually { pidsMatching(s.longSleep).count == 2 })
        let stop = s.taskq(["stop", "--now"])
        #expect(stop.status == 0, "\(stop)")
        #expect(stop.out.contains("(now)"), "\(stop)")
        #expect(sup.wait(timeout: 20) == 0, "\(sup.stderrSoFar)")
        #expect(s.sql("SELECT state || ':' || attempts || ':' || (owner IS NULL) FROM tasks WHERE id = \(id)") == "queued:0:1")
        #expect(eventually(timeout: 5) { pidsMatching(s.longSleep).isEmpty })
        #expect(s.workerPids.isEmpty)
        #expect(s.sqlInt("SELECT count(*) FROM processes") == 0)
    }

    /// A SIGKILLed supervisor takes its workers and every handler with it, even
    /// handlers that ignore SIGTERM (and their children, which inherit that).
    @Test func supervisorKilledLeavesNoOrphansEvenWhenHandlersIgnoreSigterm() {
        let s = Scenario("taskq-recovery")
        defer { s.close() }
        s.script("h.sh", """
            trap '' TERM
            cat > /dev/null
            echo $$ > "handler.$TASKQ_TASK_ID"
            \(s.longSleep) &
            \(s.longSleep)
            """)
        let ids = (1...2).map { _ in s.enqueue("t") }
        let sup = s.supervise(["--workers", "2", "--handler", "t=./h.sh"])
        #expect(eventually { pidsMatching(s.longSleep).count == 4 }, "\(sup.stderrSoFar)")
        let killed = workers(of: sup, s)
        #expect(killed.count == 2)
        let handlers = ids.compactMap { Int32(String(decoding: readAll(s.dir + "/handler.\($0)"), as: UTF8.self).trimmingCharacters(in: " \n")) }
        #expect(handlers.count == 2)
        #expect(handlers.allSatisfy(processAlive))
        sup.signal(SIGKILL)
        #expect(sup.wait(timeout: 10) != nil)
        #expect(eventually(timeout: 10) {
            !killed.contains(where: processAlive) && !handlers.contains(where: processAlive) && pidsMatching(s.longSleep).isEmpty
        }, "workers \(killed.filter(processAlive)), handlers \(handlers.filter(processAlive)), sleeps \(pidsMatching(s.longSleep))")
        // What they held is recovered by the next start.
        let next = s.supervise(["--workers", "1", "--handler", "t=true"])
        #expect(eventually(timeout: 20) { s.count("succeeded") == 2 }, "\(next.stderrSoFar)")
        #expect(runningWithoutLiveOwner(s).isEmpty)
        next.signal(SIGTERM)
        #expect(next.wait(timeout: 30) == 0)
    }
}

/// A worker declared dead while frozen must never claim again: nothing may be left
/// `running` under an owner that is no longer registered, since no recovery would
/// ever find it (the task would wait forever, and `taskq wait` with it).
@Suite struct UnregisteredOwnerTests {
    /// Worker W of supervisor A is frozen past its lease; supervisor B recovers it
    /// (W's task goes back to the queue, W's row is deleted). W is thawed while
    /// another connection holds the write lock, so W's main thread (reporting its
    /// late result, then claiming the next task) and its heartbeat thread (which
    /// would notice the lost lease) queue up for the lock together; whichever gets
    /// it first, W must not come away owning a task. Two rounds, since which thread
    /// wins is up to the scheduler.
    @Test(arguments: [1, 2]) func aThawedWorkerDeclaredDeadNeverClaimsAgain(round: Int) {
        let s = Scenario("taskq-thaw")
        defer { s.close() }
        s.script("h.sh", "cat >/dev/null; sleep 2; touch \"done.$TASKQ_TASK_ID.$TASKQ_ATTEMPT\"; echo ok")
        let ids = s.taskq(["enqueue", "t", "--lines"], stdin: (1...20).map(String.init).joined(separator: "\n")).out
            .split(separator: "\n").compactMap { Int64($0) }
        #expect(ids.count == 20)
        let a = s.supervise(["--workers", "1", "--lease", "2", "--handler", "t=./h.sh", "--backoff-base", "0.05"])
        let b = s.supervise(["--workers", "1", "--lease", "2", "--handler", "other=true"])
        #expect(eventually { s.sqlInt("SELECT count(*) FROM tasks WHERE state = 'running'") == 1 }, "\(a.stderrSoFar)")
        guard let w = workers(of: a, s).first else { Issue.record("no worker: \(a.stderrSoFar)"); return }
        kill(a.pid, SIGSTOP)
        kill(w, SIGSTOP)
        // B finds W frozen past its lease: W's row goes, its task back to the queue.
        #expect(eventually(timeout: 20) { s.sqlInt("SELECT count(*) FROM processes WHERE pid = \(w)") == 0 }, "\(b.stderrSoFar)")
        // W's handler (its own process group, not frozen) is gone: it finished, or
        // B's recovery killed it. Either way W has an outcome to report at once.
        #expect(eventually(timeout: 15) { handlersOf(session: w).isEmpty }, "\(handlersOf(session: w))")
        let holder = Child("/usr/bin/sqlite3", [s.db], cwd: s.dir, stdinData: Array(
            "BEGIN IMMEDIATE;\n.shell touch locked\n.shell sleep 0.3\nROLLBACK;\n".utf8), logDir: s.dir)
        defer { holder.kill9() }
        #expect(eventually(timeout: 10) { access(s.dir + "/locked", F_OK) == 0 })
        kill(w, SIGCONT)
        #expect(holder.wait(timeout: 10) == 0)
        kill(a.pid, SIGCONT)
        // W exits (lease lost); then no task is running under an unregistered owner.
        #expect(eventually(timeout: 15) { !processAlive(w) }, "\(a.stderrSoFar)")
        let orphans = s.sql("SELECT id FROM tasks WHERE state = 'running' AND owner NOT IN (SELECT id FROM processes)")
        #expect(orphans.isEmpty, "left running under a deleted owner: \(orphans)\n\(a.stderrSoFar)")
        #expect(s.taskq(["stop", "--wait", "--timeout", "60"]).status != nil)
        _ = a.wait(timeout: 30)
        #expect(b.wait(timeout: 30) == 0, "\(b.stderrSoFar)")
        #expect(s.count("running") == 0, "\(s.sql("SELECT id, owner FROM tasks WHERE state = 'running'"))")
        // Everything is still done by a fresh supervisor.
        let c = s.taskq(["supervise", "--until-empty", "--workers", "2", "--handler", "t=./h.sh", "--backoff-base", "0.05"],
                        timeout: 120)
        #expect(c.status == 0, "\(c)")
        #expect(s.count("succeeded") == 20, "\(s.sql("SELECT id, state, owner FROM tasks WHERE state <> 'succeeded'"))")
    }

    /// Such a row left behind anyway (by an older taskq, or by hand) is recovered by
    /// the next supervisor at its start, as a dead worker's task is.
    @Test func aTaskRunningUnderNoRegisteredProcessIsRecoveredAtStart() {
        let s = Scenario("taskq-orphan")
        defer { s.close() }
        let id = s.enqueue("t", "\"x\"")
        s.sql("UPDATE tasks SET state = 'running', owner = 4242, attempts = 1, started_at = created_at WHERE id = \(id)")
        let r = s.taskq(["supervise", "--until-empty", "--workers", "1", "--handler", "t=cat", "--backoff-base", "0.05"],
                        timeout: 60)
        #expect(r.status == 0, "\(r)")
        #expect(r.stderr.contains("recovered tasks left running by process 4242, which is no longer registered; task \(id) goes back for a retry"),
                "\(r.stderr)")
        #expect(s.sql("SELECT state || ':' || attempts || ':' || result FROM tasks WHERE id = \(id)") == "succeeded:2:\"x\"")
        #expect(s.sql("SELECT outcome FROM task_attempts WHERE task_id = \(id)") == "crashed")
    }
}

/// A Swift-handler worker claims tasks in batches; when it dies, only the task it
/// was running counts the crash (the supervisor reads a slot shared with the
/// worker). The others of its batch go back as they were: not one attempt used.
@Suite struct BatchCrashTests {
    @Test func onlyTheRunningTaskOfABatchCountsTheCrash() {
        let s = Scenario("taskq-batch-crash")
        defer { s.close() }
        var lines = (1...40).map { "{\"kind\":\"square\",\"payload\":{\"n\":\($0)}}" }
        lines.insert("{\"kind\":\"crash\",\"payload\":null,\"max_attempts\":1}", at: 20)
        let ids = s.taskq(["enqueue", "--batch"], stdin: lines.joined(separator: "\n")).out.split(separator: "\n")
        #expect(ids.count == 41)
        let worker = s.start(Harness.binDir + "/taskq-example-worker", ["--db", s.db, "--workers", "1", "--until-empty"])
        #expect(worker.wait(timeout: 60) == 0, "\(worker.stderrSoFar)")
        // The crash: its own attempt, recorded, and nothing else charged for it.
        #expect(s.sql("SELECT state || ':' || attempts FROM tasks WHERE kind = 'crash'") == "failed:1")
        #expect(s.sql("SELECT last_error FROM tasks WHERE kind = 'crash'").contains("killed by signal 9"))
        #expect(worker.stderrSoFar.contains("while running task \(ids[20]);"), "\(worker.stderrSoFar)")
        // Every square ran once and used one attempt, batch-mates of the crash included.
        #expect(s.sqlInt("SELECT count(*) FROM tasks WHERE kind = 'square' AND state = 'succeeded' AND attempts = 1") == 40,
                "\(s.sql("SELECT id, state, attempts FROM tasks WHERE kind = 'square' AND attempts <> 1"))")
        #expect(s.sqlInt("SELECT count(*) FROM task_attempts WHERE task_id IN (SELECT id FROM tasks WHERE kind = 'square')") == 0)
    }
}

/// Live processes of session `sid` other than its leader (a worker's handlers).
private func handlersOf(session sid: Int32) -> [Int32] {
    listDirectory("/proc").compactMap { Int32($0) }.filter { pid in
        guard pid != sid, let f = System.statFields(pid), f.count > 3 else { return false }
        return f[0] != "Z" && f[0] != "X" && Int32(f[3]) == sid
    }
}
