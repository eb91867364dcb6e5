import TaskQueue

/// The dashboard's pages on PostgreSQL: the same questions as SQLite's
/// (`SQLiteTaskStore+Dashboard.swift`) in PostgreSQL's SQL. Every read that
/// takes more than one statement runs in one read-only snapshot.
extension PostgresTaskStore: DashboardStore {
    /// `body` in one REPEATABLE READ, READ ONLY transaction: one snapshot.
    func snapshot<T>(_ body: () throws -> T) throws -> T {
        try write(begin: [PGStatement(sql: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")], body)
    }

    package func dashboardTasks(_ q: DashboardTaskQuery) throws -> (tasks: [TaskRecord], scannedDownTo: Int64?) {
        try snapshot {
            var (whereSQL, values) = dashboardWhere(q, paging: true)
            var floor: Int64?
            if q.scansNewestOnly, let f = try scanFloor(q) {
                // Only the newest rows: a search must not read a million payloads,
                // nor a filter that matches few rows walk the whole table.
                values.append(.int(f))
                whereSQL += " AND id >= $\(values.count)"
                floor = f
            }
            values.append(.int(Int64(q.limit)))
            let r = try db.exec("SELECT \(Self.taskColumns()) FROM tasks \(whereSQL) ORDER BY id DESC LIMIT $\(values.count)", values)
            return (r.rows { taskRecord($1, $0) }, floor)
        }
    }

    package func dashboardStateCounts(_ q: DashboardTaskQuery) throws -> [TaskState: Int64] {
        var all = q
        all.state = nil
        let (whereSQL, values) = dashboardWhere(all, paging: false)
        return try pg {
            var counts: [TaskState: Int64] = [:]
            let r = try db.exec("SELECT state, count(*) FROM tasks \(whereSQL) GROUP BY state", values)
            for i in 0..<r.count { if let st = TaskState(rawValue: r.string(i, 0)) { counts[st] = r.int(i, 1) } }
            return counts
        }
    }

    package func dashboardMatchingIDs(_ q: DashboardTaskQuery, limit: Int) throws -> [Int64] {
        try snapshot {
            var (whereSQL, values) = dashboardWhere(q, paging: false)
            if q.isSearch, let floor = try scanFloor(q) {
                values.append(.int(floor))
                whereSQL += " AND id >= $\(values.count)"
            }
            values.append(.int(Int64(limit)))
            return try db.exec("SELECT id FROM tasks \(whereSQL) ORDER BY id DESC LIMIT $\(values.count)", values).rows { $1.int($0, 0) }
        }
    }

    /// The lowest id a search may read (see `DashboardTaskQuery.scanFloor`).
    private func scanFloor(_ q: DashboardTaskQuery) throws -> Int64? {
        q.scanFloor(newest: try db.exec("SELECT max(id) FROM tasks").optionalInt(0, 0) ?? 0)
    }

    private func dashboardWhere(_ q: DashboardTaskQuery, paging: Bool) -> (String, [PGValue]) {
        var clauses = ["kind <> 'taskq.stop'"]
        var values: [PGValue] = []
        func bind(_ v: PGValue) -> String { values.append(v); return "$\(values.count)" }
        if let s = q.state {
            clauses.append("state = \(bind(.text(s.rawValue)))")
            // Through the claim's partial indexes and the workers' claimed lists
            // rather than a walk over every finished task.
            if s == .running { clauses.append("id IN (SELECT unnest(claimed) FROM processes)") }
            if s == .queued {
                clauses.append("""
                    id IN (SELECT id FROM tasks WHERE state = 'queued' AND run_at IS NULL
                           UNION ALL SELECT id FROM tasks WHERE state = 'queued' AND run_at IS NOT NULL)
                    """)
            }
        }
        if let s = q.queue { clauses.append("queue = \(bind(.text(s)))") }
        if let s = q.kind { clauses.append("kind = \(bind(.text(s)))") }
        if let n = q.minID { clauses.append("id >= \(bind(.int(n)))") }
        if let n = q.maxID { clauses.append("id <= \(bind(.int(n)))") }
        if paging, let n = q.beforeID { clauses.append("id < \(bind(.int(n)))") }
        if let path = q.jsonPath {
            // Compared as text, as on SQLite: '42' finds 42 and "a" finds "a". A
            // malformed path is a PostgreSQL error the page reports.
            clauses.append("jsonb_path_query_first(payload::jsonb, \(bind(.text(path)))::jsonpath) #>> '{}' = \(bind(.text(q.jsonValue ?? "")))")
        }
        if let e = q.errorText { clauses.append("strpos(last_error, \(bind(.text(e)))) > 0") }
        return ("WHERE " + clauses.joined(separator: " AND "), values)
    }

    package func dashboardFailureGroupIDs(kind: String, firstLine: String) throws -> [Int64] {
        try pg {
            try db.exec("""
                SELECT id FROM tasks WHERE state = 'failed' AND kind = $1 AND split_part(coalesce(last_error, ''), E'\\n', 1) = $2
                ORDER BY id
                """, [.text(kind), .text(firstLine)]).rows { $1.int($0, 0) }
        }
    }

    package func dashboardDependants(of id: Int64) throws -> [Int64] {
        try pg {
            try db.exec("SELECT task_id FROM task_dependencies WHERE depends_on = $1 ORDER BY task_id", [.int(id)]).rows { $1.int($0, 0) }
        }
    }

    package func dashboardLive(now: Timestamp) throws -> DashboardLive {
        try snapshot {
            var l = DashboardLive()
            let ready = try db.exec("""
                SELECT queue, count(*), min(created_at) FROM tasks
                WHERE state = 'queued' AND run_at IS NULL AND kind <> 'taskq.stop' GROUP BY queue
                """)
            for i in 0..<ready.count {
                l.ready[ready.string(i, 0)] = ready.int(i, 1)
                l.oldestReady[ready.string(i, 0)] = ready.optionalTimestamp(i, 2)
            }
            let delayed = try db.exec("""
                SELECT queue, count(*), count(*) FILTER (WHERE run_at > $1), min(run_at) FILTER (WHERE run_at <= $1) FROM tasks
                WHERE state = 'queued' AND run_at IS NOT NULL AND kind <> 'taskq.stop' GROUP BY queue
                """, [.ts(now)])
            for i in 0..<delayed.count {
                let queue = delayed.string(i, 0), later = delayed.int(i, 2)
                l.ready[queue, default: 0] += delayed.int(i, 1) - later
                l.delayed[queue] = later
                if let t = delayed.optionalTimestamp(i, 3), l.oldestReady[queue].map({ t < $0 }) ?? true { l.oldestReady[queue] = t }
            }
            l.running = try db.exec("""
                SELECT p.id, t.id, t.kind, t.queue FROM processes p CROSS JOIN LATERAL unnest(p.claimed) c(id) JOIN tasks t ON t.id = c.id
                WHERE t.state = 'running' AND t.owner = p.id ORDER BY p.id, t.id
                """).rows { i, r in DashboardRunning(owner: r.int(i, 0), taskID: r.int(i, 1), kind: r.string(i, 2), queue: r.string(i, 3)) }
            let paused = try db.exec("SELECT name, paused_at IS NOT NULL FROM queues")
            for i in 0..<paused.count { l.paused[paused.string(i, 0)] = paused.bool(i, 1) }
            l.processes = try processes()
            l.schedules = try schedules()
            return l
        }
    }

    /// The tables taskq keeps, for `taskq_postgres_table_size_bytes`.
    static let dashboardTables = ["tasks", "task_attempts", "task_dependencies", "task_groups", "processes", "queues",
                                  "schedules", "schedule_runs", "kinds"]

    /// The database's size (`pg_database_size`, every schema in it) and each of
    /// taskq's tables with its indexes and TOAST (`pg_total_relation_size`).
    /// PostgreSQL's write-ahead log belongs to the whole server, not to one
    /// database, so it has no per-database figure to stand beside SQLite's `-wal`.
    package func dashboardSizes() throws -> [DashboardSize] {
        try pg {
            let r = try db.exec("""
                SELECT current_database(), pg_database_size(current_database()),
                       \(Self.dashboardTables.map { "coalesce(pg_total_relation_size(to_regclass('\($0)')), 0)" }.joined(separator: ", "))
                """)
            var sizes = [DashboardSize(metric: "taskq_postgres_database_size_bytes",
                                       help: "Size of the PostgreSQL database holding the queue (pg_database_size: all its schemas).",
                                       labels: [("database", r.string(0, 0))], bytes: r.int(0, 1))]
            for (i, table) in Self.dashboardTables.enumerated() {
                sizes.append(DashboardSize(metric: "taskq_postgres_table_size_bytes",
                                           help: "Size of each taskq table with its indexes and TOAST (pg_total_relation_size).",
                                           labels: [("table", table)], bytes: r.int(0, 2 + i)))
            }
            return sizes
        }
    }

    /// Producers notify only a waiting worker and finishes never do: probed.
    package var dashboardChangeWatch: DashboardChangeWatch { .probe }

    /// The server's current snapshot (`pg_current_snapshot()`: the oldest
    /// transaction still running, the next to be numbered, those in between still
    /// running): it moves whenever any transaction that wrote ends, and reads no
    /// table. It moves for other databases of the same server too, which only
    /// costs a needless refresh.
    package func dashboardChangeMark() throws -> String {
        try pg { try db.exec("SELECT pg_current_snapshot()::text").string(0, 0) }
    }
}
