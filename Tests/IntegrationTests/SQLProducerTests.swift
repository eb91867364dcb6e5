import Testing
import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Producers in other languages: a plain INSERT into `tasks` from Python's sqlite3
/// module is a task like one from `taskq enqueue`, run at once by a running supervisor.
@Suite struct SQLProducerTests {
    /// The README's example: enqueue with a plain INSERT, then poll for the result.
    static let producer = """
        import sqlite3, sys, time
        db = sqlite3.connect(sys.argv[1], timeout=10)
        with db:
            task_id = db.execute("INSERT INTO tasks (kind, payload) VALUES (?, ?)", ("resize", '{"file": "a.png"}')).lastrowid
        while (row := db.execute("SELECT state, result FROM tasks WHERE id = ?", (task_id,)).fetchone())[0] in ("queued", "running"):
            time.sleep(0.05)
        print(task_id, *row)
        """

    @Test func aPythonInsertIsRunAtOnceLikeAnEnqueuedTask() throws {
        let python = "/usr/bin/python3"
        guard access(python, X_OK) == 0 else {
            Issue.record("no \(python)")
            return
        }
        let s = Scenario()
        defer { s.close() }
        #expect(s.taskq(["kind", "set", "resize", "--max-attempts", "5", "--backoff-base", "2s"]).status == 0)
        let viaTaskq = s.enqueue("resize", #"{"file": "b.png"}"#)
        s.script("resize.sh", "cat")
        let sup = s.supervise(["--workers", "1", "--handler", "resize=./resize.sh"])
        #expect(eventually(timeout: 30) { s.count("succeeded") == 1 }, "\(sup.stderrSoFar)")
        // The supervisor's workers are idle now: the INSERT's commit wakes them.
        writeFile(s.dir + "/producer.py", Self.producer)
        let producer = Child(python, [s.dir + "/producer.py", s.db], captureOutput: true)
        let r = producer.finish(timeout: 60)
        #expect(r.status == 0, "\(r)\n\(sup.stderrSoFar)")
        #expect(r.out.hasPrefix(#"\#(viaTaskq + 1) succeeded {"file": "a.png"}"#), "\(r)")
        // Its row has what `taskq enqueue` gave the other one.
        let shape = """
            SELECT kind, queue, state, priority, attempts, max_attempts, quote(timeout_s), quote(on_crash),
                   quote(backoff_base_s), quote(backoff_cap_s), created_at GLOB '????-??-??T??:??:??.???Z'
            FROM tasks WHERE id =
            """
        #expect(s.sql(shape + " \(viaTaskq + 1)") == s.sql(shape + " \(viaTaskq)"))
        #expect(s.sql(shape + " \(viaTaskq + 1)") == "resize|default|succeeded|0|1|5|NULL|NULL|2.0|NULL|1")
        sup.signal(SIGTERM)
        #expect(sup.wait(timeout: 30) == 0)
    }
}
