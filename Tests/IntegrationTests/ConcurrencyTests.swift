import Testing
import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Many processes on one database file: producers racing workers, a sqlite3 shell
/// holding the write lock, two supervisors sharing a queue.
@Suite struct ConcurrencyTests {
    /// 4 producer processes enqueue 250 tasks each (50 `taskq enqueue` processes and
    /// 200 lines through `--lines`, one commit per line) while 4 workers drain:
    /// every task runs exactly once, at its first attempt.
    @Test func concurrentProducersWhileWorkersDrain() {
        let s = Scenario("taskq-concurrency")
        defer { s.close() }
        let audit = s.dir + "/audit"
        s.script("h.sh", "cat; echo \"$TASKQ_TASK_ID\" >> \(audit)")
        s.script("produce.sh", """
            p=$1
            i=1
            while [ $i -le 50 ]; do
              "$TASKQ" enqueue t "{\\"p\\":$p,\\"i\\":$i}" >> "ids.$p" || exit 1
              i=$((i + 1))
            done
            while [ $i -le 250 ]; do
              echo "{\\"p\\":$p,\\"i\\":$i}"
              i=$((i + 1))
            done | "$TASKQ" enqueue t --lines >> "ids.$p" || exit 1
            """)
        let sup = s.supervise(["--workers", "4", "--handler", "t=./h.sh"])
        #expect(eventually { workers(of: sup, s).count == 4 })
        let producers = (1...4).map { p in s.start("/bin/sh", ["produce.sh", String(p)], env: ["TASKQ": Harness.taskq]) }
        for (i, p) in producers.enumerated() {
            #expect(p.wait(timeout: 90) == 0, "producer \(i + 1): \(p.stderrSoFar)")
        }
        var printed: [Substring] = []
        for p in 1...4 {
            let ids = String(decoding: readAll(s.dir + "/ids.\(p)"), as: UTF8.self).split(separator: "\n")
            #expect(ids.count == 250, "producer \(p) printed \(ids.count) ids")
            printed += ids
        }
        #expect(Set(printed).count == 1000)
        #expect(eventually(timeout: 60) { s.count("succeeded") == 1000 }, "\(s.count("succeeded")) succeeded\n\(sup.stderrSoFar)")

        // Exactly once: each id ran once, at attempt 1, and its result is its payload.
        let ran = String(decoding: readAll(audit), as: UTF8.self).split(separator: "\n")
        #expect(ran.count == 1000)
        #expect(Set(ran) == Set(printed))
        #expect(s.sqlInt("SELECT count(*) FROM tasks WHERE kind = 't'") == 1000)
        #expect(s.sqlInt("SELECT count(DISTINCT payload) FROM tasks WHERE kind = 't'") == 1000)
        #expect(s.sqlInt("""
            SELECT count(*) FROM tasks WHERE kind = 't' AND state = 'succeeded' AND attempts = 1
              AND last_error IS NULL AND CAST(result AS TEXT) = payload
            """) == 1000)
        // The workers drained while the producers were still producing.
        #expect(s.sqlInt("""
            SELECT count(*) FROM tasks WHERE finished_at < (SELECT max(created_at) FROM tasks WHERE kind = 't')
            """) > 0)
        let stop = s.taskq(["stop", "--wait", "--timeout", "30"])
        #expect(stop.status == 0, "\(stop)")
        #expect(sup.wait(timeout: 30) == 0, "\(sup.stderrSoFar)")
    }

    /// A sqlite3 shell holds the write lock for 10 s while the supervisor runs and
    /// producers enqueue. Nothing crashes, no worker dies, every task completes
    /// afterwards; an enqueue with a short --busy-timeout fails with 69 and writes
    /// nothing. Run with the default busy timeout (everyone waits the lock out) and
    /// with a supervisor busy timeout shorter than the lock (workers see
    /// "database is locked" errors and must retry, not die).
    @Test(arguments: ["30", "1"])
    func sqliteShellHoldingTheWriteLock(supervisorBusyTimeout: String) {
        let s = Scenario("taskq-concurrency")
        defer { s.close() }
        let audit = s.dir + "/audit"
        s.script("h.sh", "cat > /dev/null; sleep 0.2; echo \"$TASKQ_TASK_ID\" >> \(audit); echo ok")
        s.script("lock.sh", """
            { echo ".bail on"; echo ".timeout 10000"; echo "BEGIN EXCLUSIVE;"; echo ".shell touch locked"
              sleep 10
              echo "COMMIT;"; echo ".shell touch unlocked"; } | sqlite3 taskq.db
            """)
        s.script("produce.sh", """
            i=1
            while [ $i -le 10 ]; do "$TASKQ" enqueue t "{\\"p\\":$1,\\"i\\":$i}" >> "ids.$1" || exit 1; i=$((i + 1)); done
            """)
        // About 2 s of work for 2 workers: they are mid-task when the lock is taken.
        let before = (1...20).map { "{\"kind\":\"t\",\"payload\":{\"before\":\($0)}}" }.joined(separator: "\n")
        let first = s.taskq(["enqueue", "--batch"], stdin: before).out.split(separator: "\n")
        #expect(first.count == 20)
        let sup = s.supervise(["--workers", "2", "--handler", "t=./h.sh", "--busy-timeout", supervisorBusyTimeout])
        #expect(eventually { workers(of: sup, s).count == 2 })
        let original = Set(workers(of: sup, s))
        // Both registered (a worker still registering when the lock is taken gives up
        // after its busy timeout and is replaced, which is right, but not this test)
        // and busy: they must write results while the lock is held.
        #expect(eventually { s.sqlInt("SELECT count(*) FROM processes WHERE role = 'worker'") == 2 }, "\(sup.stderrSoFar)")
        #expect(eventually { s.count("running") > 0 }, "\(sup.stderrSoFar)")
        let lock = s.start("/bin/sh", ["lock.sh"])
        #expect(eventually(timeout: 15) { access(s.dir + "/locked", F_OK) == 0 }, "\(lock.stderrSoFar)")
        let producers = (1...2).map { p in s.start("/bin/sh", ["produce.sh", String(p)], env: ["TASKQ": Harness.taskq]) }

        let started = System.monotonic()
        let blocked = s.taskq(["enqueue", "--busy-timeout", "0.5", "t", "{\"blocked\":true}"])
        let took = System.monotonic() - started
        #expect(access(s.dir + "/unlocked", F_OK) != 0, "the lock was still held during the blocked enqueue")
        #expect(blocked.status == 69, "\(blocked)")
        #expect(blocked.stderr.contains("locked"), "\(blocked)")
        #expect(blocked.stdout.isEmpty, "\(blocked)")
        #expect(took >= 0.4, "gave up after \(took) s, before its busy timeout")

        #expect(lock.wait(timeout: 30) == 0, "\(lock.stderrSoFar)")
        for (i, p) in producers.enumerated() {
            #expect(p.wait(timeout: 30) == 0, "producer \(i + 1): \(p.stderrSoFar)")
        }
        #expect(eventually(timeout: 30) { s.count("succeeded") == 40 }, "\(s.count("succeeded")) succeeded\n\(sup.stderrSoFar)")
        #expect(s.sqlInt("SELECT count(*) FROM tasks") == 40)
        #expect(s.sqlInt("SELECT count(*) FROM tasks WHERE payload LIKE '%blocked%'") == 0)
        #expect(s.sqlInt("SELECT count(*) FROM tasks WHERE attempts = 1 AND result = 'ok' || char(10)") == 40)
        let ran = String(decoding: readAll(audit), as: UTF8.self).split(separator: "\n")
        #expect(ran.count == 40)
        #expect(Set(ran).count == 40)
        #expect(Set(first).isSubset(of: Set(ran)))
        // Nothing crashed: same workers, same supervisor, no replacement started.
        #expect(!sup.exited)
        #expect(Set(workers(of: sup, s)) == original)
        #expect(!sup.stderrSoFar.contains("replacement"), "\(sup.stderrSoFar)")
        if supervisorBusyTimeout == "1" {
            // The workers did meet the lock (their busy timeout is shorter than it) and retried.
            #expect(sup.stderrSoFar.contains("is locked"), "\(sup.stderrSoFar)")
        } else {
            // A busy timeout longer than the lock: everyone just waited.
            #expect(!sup.stderrSoFar.contains("locked"), "\(sup.stderrSoFar)")
        }
        sup.signal(SIGTERM)
        #expect(sup.wait(timeout: 30) == 0, "\(sup.stderrSoFar)")
    }

    /// Two supervisors on one database share the work without running anything
    /// twice; one `taskq stop` addresses both and both exit 0.
    @Test func twoSupervisorsShareOneQueue() {
        let s = Scenario("taskq-concurrency")
        defer { s.close() }
        let audit = s.dir + "/audit"
        // Each line: the task id and the handler's session id, which is its worker's pid.
        s.script("h.sh", "cat > /dev/null; sleep 0.01; echo \"$TASKQ_TASK_ID $(cut -d' ' -f6 /proc/$$/stat)\" >> \(audit); echo ok")
        let lines = (1...300).map { "{\"kind\":\"t\",\"payload\":\($0)}" }.joined(separator: "\n")
        let r = s.taskq(["enqueue", "--batch"], stdin: lines)
        #expect(r.status == 0, "\(r)")
        let a = s.supervise(["--workers", "2", "--handler", "t=./h.sh"])
        let b = s.supervise(["--workers", "2", "--handler", "t=./h.sh"])
        #expect(eventually(timeout: 60) { s.count("succeeded") == 300 }, "\(a.stderrSoFar)\n\(b.stderrSoFar)")
        let ran = String(decoding: readAll(audit), as: UTF8.self).split(separator: "\n")
        #expect(ran.count == 300)
        #expect(Set(ran.map { $0.split(separator: " ")[0] }).count == 300)
        #expect(s.sqlInt("SELECT count(*) FROM tasks WHERE state = 'succeeded' AND attempts = 1") == 300)
        // Both supervisors' workers took part.
        #expect(s.sqlInt("SELECT count(*) FROM processes WHERE role = 'supervisor'") == 2)
        let workerPids = Set(ran.compactMap { $0.split(separator: " ").last.flatMap { Int32($0) } })
        #expect(workerPids.count >= 2 && workerPids.count <= 4, "\(workerPids)")
        let supervisors = Set(workerPids.compactMap(parentPid))
        #expect(supervisors == [a.pid, b.pid], "workers \(workerPids) have parents \(supervisors)")
        let stop = s.taskq(["stop", "--wait", "--timeout", "30"])
        #expect(stop.status == 0, "\(stop)")
        #expect(stop.out.split(separator: "\n").filter { $0.hasPrefix("stop sentinel") }.count == 2, "\(stop)")
        #expect(a.wait(timeout: 30) == 0, "\(a.stderrSoFar)")
        #expect(b.wait(timeout: 30) == 0, "\(b.stderrSoFar)")
        #expect(s.sql("SELECT group_concat(state) FROM tasks WHERE kind = 'taskq.stop'") == "succeeded,succeeded")
        #expect(s.workerPids.isEmpty)
    }
}

