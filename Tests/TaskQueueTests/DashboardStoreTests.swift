import Testing
import CSQLite
@testable import TaskQueueSQLite
@testable import TaskQueuePostgres
@testable import TaskQueue
import TaskQueueStores
import TaskQueueTestSupport

/// The dashboard's stores: a read-only open cannot write, on either engine.
@Suite struct DashboardStoreTests {
    @Test func aReadOnlySQLiteStoreCannotWrite() throws {
        let dir = Harness.tempDir("taskq-dashstore")
        defer { Harness.remove(dir) }
        let path = dir + "/taskq.db"
        _ = try Stores.openStore(path, create: true).insertTasks([NewTask(kind: "a")], now: .now())
        let store = try Stores.openStore(path, create: false, readOnly: true)
        #expect(throws: TaskQueueError.self) { try store.insertTasks([NewTask(kind: "b")], now: .now()) }
        #expect(try store.tasks(TaskFilter()).map(\.kind) == ["a"])
        #expect(throws: TaskQueueError.self) { try Stores.openStore(dir + "/none.db", create: true, readOnly: true) }
    }

    @Test(.enabled(if: TestPostgres.isAvailable, TestPostgres.skipReason))
    func aReadOnlyPostgresSessionCannotWrite() throws {
        let url = try TestPostgres.freshSchema()
        _ = try Stores.openStore(url, create: true).insertTasks([NewTask(kind: "a")], now: .now())
        let store = try Stores.openStore(url, create: false, readOnly: true)
        #expect(throws: TaskQueueError.self) { try store.insertTasks([NewTask(kind: "b")], now: .now()) }
        #expect(try store.tasks(TaskFilter()).map(\.kind) == ["a"])
    }
}

/// The statements behind the dashboard's summaries read an id range through the
/// primary key, or the claim's partial indexes, never a whole table: on a
/// million finished tasks a pass reads only the ranges that changed, and a page
/// answers at once. Checked by SQLite's own plan of every statement they run.
@Suite struct DashboardPlanTests {
    /// The SQL of every statement `body` runs on `store`'s connection.
    private func statements(_ store: SQLiteTaskStore, _ body: () throws -> Void) rethrows -> [String] {
        final class Box { var sql: [String] = [] }
        let box = Box()
        let ctx = Unmanaged.passUnretained(box).toOpaque()
        sqlite3_trace_v2(store.db.handle, UInt32(SQLITE_TRACE_STMT), { _, ctx, p, _ in
            if let ctx, let p, let sql = sqlite3_sql(OpaquePointer(p)) {
                Unmanaged<Box>.fromOpaque(ctx).takeUnretainedValue().sql.append(String(cString: sql))
            }
            return 0
        }, ctx)
        defer { sqlite3_trace_v2(store.db.handle, 0, nil, nil) }
        try body()
        return box.sql
    }

    @Test func summariesReadRangesAndIndexesNotWholeTables() throws {
        let dir = Harness.tempDir("taskq-dashplan")
        defer { Harness.remove(dir) }
        let store = try SQLiteTaskStore(path: dir + "/taskq.db", create: true)
        _ = try store.insertTasks((0..<10).map { _ in NewTask(kind: "a") }, now: .now())
        var query = DashboardTaskQuery()
        query.minID = 1
        query.maxID = 10
        let now = Timestamp.now()
        let sql = try statements(store) {
            var a = DashboardAggregate()
            _ = try store.idRange(attempts: false)
            _ = try store.idRange(attempts: true)
            _ = try store.dashboardUnfinishedFloor()
            try store.aggregateTasks(from: 1, to: 10, into: &a)
            try store.aggregateChart(from: 1, to: 10, now: now, into: &a)
            try store.aggregateAttempts(from: 1, to: 10, into: &a)
            _ = try store.dashboardLive(now: now)
            _ = try store.dashboardStateCounts(query)
        }
        let checked = sql.filter { $0.hasPrefix("SELECT") || $0.hasPrefix("WITH") }
        #expect(checked.count >= 9, "\(sql)")
        for statement in checked {
            let plan = try store.db.prepare("EXPLAIN QUERY PLAN " + statement).rows { $0.string(3) }
            let scans = plan.filter { ["SCAN tasks", "SCAN t", "SCAN task_attempts"].contains($0) }
            #expect(scans.isEmpty, "a whole table read by: \(statement)\n\(plan.joined(separator: "\n"))")
        }
    }
}

/// On PostgreSQL the attempt history is joined to `tasks` by its primary key,
/// however many attempts a range holds: never by hashing the whole table.
@Suite(.enabled(if: TestPostgres.isAvailable, TestPostgres.skipReason))
struct DashboardPostgresPlanTests {
    @Test func attemptsAreJoinedThroughThePrimaryKey() throws {
        let url = try TestPostgres.freshSchema()
        let store = try PostgresTaskStore(url: url)
        // Enough rows, analysed, that a hash join over a scan of `tasks` looks cheaper.
        try store.db.run(script: """
            SET taskq.writer = 'other';
            INSERT INTO tasks (kind, state, attempts, max_attempts, created_at, started_at, finished_at, last_error)
            SELECT 'k', 'failed', 1, 1, now(), now(), now(), 'x' FROM generate_series(1, 20000);
            INSERT INTO task_attempts (task_id, attempt, started_at, finished_at, outcome)
            SELECT id, 1, now(), now(), 'failed' FROM tasks;
            ANALYZE tasks; ANALYZE task_attempts; SET taskq.writer = 'taskq'
            """)
        let plan = try store.db.exec("EXPLAIN " + PostgresTaskStore.aggregateAttemptsSQL, [.int(1), .int(50_000)]).rows { $1.string($0, 0) }
        #expect(!plan.contains { $0.contains("Seq Scan on tasks") }, "\(plan.joined(separator: "\n"))")
        #expect(plan.contains { $0.contains("Index Scan using tasks_pkey") }, "\(plan.joined(separator: "\n"))")
        var a = DashboardAggregate()
        try store.aggregateAttempts(from: 1, to: 50_000, into: &a)
        #expect(a.attempts["default\u{0}k\u{0}failed"] == 20_000)
    }
}
