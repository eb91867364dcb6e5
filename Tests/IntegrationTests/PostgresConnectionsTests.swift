// How many server connections the real `taskq supervise` holds on PostgreSQL: one
// per process. Skipped, with the reason, when there is no PostgreSQL server.

import Testing
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized, .enabled(if: PostgresServer.url != nil, Comment(rawValue: PostgresServer.skipReason)))
struct PostgresConnectionsTests {
    /// A supervisor with two workers holds three backends, one per process, both
    /// while the workers wait for work and while they run handlers: a worker renews
    /// its lease on the connection it claims on. The processes' connections are told
    /// apart from everyone else's by an `application_name` of this test's own.
    @Test func eachProcessHoldsOneConnection() {
        let s = Scenario("taskq-pgconn")
        defer { s.close() }
        let base = PostgresServer.freshSchema()!
        let name = "taskq_conn_\(getpid())_\(Int.random(in: 0...999_999))"
        let url = base + (base.contains("://") ? "&" : " ") + "application_name=\(name)"
        func sql(_ query: String) -> String { PostgresServer.psql(base, query).out }
        func backends() -> Int { Int(sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = '\(name)'")) ?? -1 }
        /// True once both workers renewed their leases after `t` (a heartbeat_at as psql prints it).
        func bothRenewed(after t: String) -> Bool {
            sql("SELECT count(*) FROM processes WHERE role = 'worker' AND heartbeat_at > '\(t)'") == "2"
        }
        let handler = s.script("hold.sh", """
            touch "\(s.dir)/started-$TASKQ_TASK_ID"
            while [ ! -e "\(s.dir)/go" ]; do sleep 0.05; done
            echo done
            """)
        let sup = s.supervise(["--db", url, "--workers", "2", "--lease", "2", "--handler", "t=\(handler)"])

        // Idle: each worker has renewed its lease at least once since it started.
        #expect(eventually { sql("SELECT count(*) FROM processes WHERE role = 'worker'") == "2" }, "\(sup.stderrSoFar)")
        let started = sql("SELECT max(started_at) FROM processes")
        #expect(eventually { bothRenewed(after: started) }, "\(sup.stderrSoFar)")
        #expect(backends() == 3, "\(sql("SELECT pid, state, query FROM pg_stat_activity WHERE application_name = '\(name)'"))")

        // Both running a handler, renewing meanwhile.
        for i in 1...2 { #expect(s.taskq(["enqueue", "t", "\(i)", "--db", base]).status == 0) }
        #expect(eventually { listDirectory(s.dir).filter { $0.hasPrefix("started-") }.count == 2 }, "\(sup.stderrSoFar)")
        let running = sql("SELECT max(heartbeat_at) FROM processes")
        #expect(eventually { bothRenewed(after: running) }, "\(sup.stderrSoFar)")
        #expect(backends() == 3, "\(sql("SELECT pid, state, query FROM pg_stat_activity WHERE application_name = '\(name)'"))")

        writeFile(s.dir + "/go", "")
        #expect(eventually { sql("SELECT count(*) FROM tasks WHERE state = 'succeeded' AND kind = 't'") == "2" }, "\(sup.stderrSoFar)")
        sup.signal(SIGTERM)
        #expect(sup.wait(timeout: 30) == 0, "\(sup.stderrSoFar)")
        #expect(!sup.stderrSoFar.contains("lease lost"), "\(sup.stderrSoFar)")
    }
}
