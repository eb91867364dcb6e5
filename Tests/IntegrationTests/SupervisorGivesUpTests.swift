import Testing
import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A supervisor that cannot go on stops its workers the way a graceful stop does and
/// exits non-zero with one line naming the cause, instead of retrying forever.
@Suite struct SupervisorGivesUpTests {
    /// A claim SQLite refuses to prepare (its partial index is gone) fails the same
    /// way every time: the workers exit 78, the supervisor 70, the task is untouched.
    @Test func statementThatCannotBePreparedStopsTheSupervisor() {
        let s = Scenario("taskq-givesup")
        defer { s.close() }
        let id = s.enqueue("t")
        _ = s.sql("DROP INDEX tasks_ready")
        let sup = s.supervise(["--workers", "3", "--handler", "t=cat"])
        #expect(sup.wait(timeout: 60) == 70, "\(sup.stderrSoFar)")
        let log = sup.stderrSoFar
        #expect(log.contains("retrying cannot heal this: exiting (status 78)"), "\(log)")
        #expect(log.contains("stopped on an error that retrying cannot heal (SQLite error 1 on \(s.db) during prepare: no such index: tasks_ready)"), "\(log)")
        #expect(log.contains("then exiting with status 70"), "\(log)")
        #expect(!log.contains("replacement"), "\(log)")
        #expect(s.sql("SELECT state || ':' || attempts FROM tasks WHERE id = \(id)") == "queued:0")
        #expect(s.sqlInt("SELECT count(*) FROM task_attempts") == 0)
        #expect(s.sqlInt("SELECT count(*) FROM processes") == 0)
        #expect(s.workerPids.isEmpty)
    }

    /// Supervisor A is frozen (SIGSTOP, its workers run on) past its lease; B declares
    /// it dead and recovers its row. When A resumes, it finds its lease gone and stops
    /// its workers as on SIGTERM: the task in hand finishes, nothing counts as a crash,
    /// and A exits 1 saying why.
    @Test func supervisorWhoseLeaseWasTakenOverStopsItsWorkersGracefully() {
        let s = Scenario("taskq-givesup")
        defer { s.close() }
        s.script("h.sh", """
            cat > /dev/null
            while [ ! -e go ]; do sleep 0.05; done
            echo done
            """)
        let id = s.enqueue("t")
        let a = s.supervise(["--workers", "1", "--handler", "t=./h.sh", "--lease", "1"])
        #expect(eventually { s.sql("SELECT state FROM tasks WHERE id = \(id)") == "running" }, "\(a.stderrSoFar)")
        let b = s.supervise(["--workers", "1", "--handler", "other=true", "--lease", "1"])
        #expect(eventually { b.stderrSoFar.contains("started as process") }, "\(b.stderrSoFar)")
        a.signal(SIGSTOP)
        // The log names the host too: on a shared PostgreSQL queue pids repeat across hosts.
        let host = s.sql("SELECT host FROM processes WHERE pid = \(a.pid)")
        #expect(eventually(timeout: 20) { b.stderrSoFar.contains("recovered supervisor pid \(a.pid) on \(host) (process ") },
                "\(b.stderrSoFar)")
        // A's worker was not frozen: it still holds its task, under its own live row.
        #expect(s.sql("SELECT state || ':' || attempts FROM tasks WHERE id = \(id)") == "running:1")
        a.signal(SIGCONT)
        #expect(eventually(timeout: 20) { a.stderrSoFar.contains("lease lost") }, "\(a.stderrSoFar)")
        #expect(!a.exited, "the task in hand may finish first")
        writeFile(s.dir + "/go", "")
        #expect(a.wait(timeout: 60) == 1, "\(a.stderrSoFar)")
        let log = a.stderrSoFar
        #expect(log.contains("lease lost: another supervisor declared this one dead"), "\(log)")
        #expect(log.contains("stopping workers as on SIGTERM"), "\(log)")
        #expect(!log.contains("replacement") && !log.contains("killed by signal"), "\(log)")
        #expect(s.sql("SELECT state || ':' || attempts || ':' || result FROM tasks WHERE id = \(id)") == "succeeded:1:done\n")
        #expect(s.sqlInt("SELECT count(*) FROM task_attempts") == 0)
        #expect(s.sql("SELECT role FROM processes ORDER BY id") == "supervisor\nworker", "only B and its worker are left")
        b.signal(SIGTERM)
        #expect(b.wait(timeout: 30) == 0, "\(b.stderrSoFar)")
        #expect(s.workerPids.isEmpty)
    }
}
