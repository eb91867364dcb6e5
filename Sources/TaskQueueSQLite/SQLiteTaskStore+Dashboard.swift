import TaskQueue
#if canImport(Glibc)
import Glibc
#endif

extension SQLiteTaskStore {
    /// One page of tasks for the dashboard, newest first, and the lowest id it
    /// read when it read only the newest rows.
    package func dashboardTasks(_ q: DashboardTaskQuery) throws -> (tasks: [TaskRecord], scannedDownTo: Int64?) {
        let (whereSQL, values) = dashboardWhere(q, paging: true)
        return try db.readTransaction {
            var floor: Int64?
            var values = values
            var sql = "SELECT \(Self.taskColumns()) FROM tasks \(whereSQL) ORDER BY id DESC LIMIT ?"
            if q.scansNewestOnly, let f = try scanFloor(q) {
                // Only the newest rows: a search must not read a million payloads,
                // nor a filter that matches few rows walk the whole table.
                sql = "SELECT \(Self.taskColumns()) FROM tasks \(whereSQL.isEmpty ? "WHERE" : whereSQL + " AND") id >= ? ORDER BY id DESC LIMIT ?"
                values.append(.int(f))
                floor = f
            }
            values.append(.int(Int64(q.limit)))
            return (try db.prepare(sql).bind(values).rows(taskRecord), floor)
        }
    }

    /// Counts per state under the query's filters (state and paging aside),
    /// counted in the rows: for an id range, which bounds the work (the
    /// dashboard takes the counts of a whole table from its aggregate).
    package func dashboardStateCounts(_ q: DashboardTaskQuery) throws -> [TaskState: Int64] {
        var all = q
        all.state = nil
        let (whereSQL, values) = dashboardWhere(all, paging: false)
        var counts: [TaskState: Int64] = [:]
        for (state, n) in try db.prepare("SELECT state, count(*) FROM tasks \(whereSQL) GROUP BY state").bind(values)
            .rows({ ($0.string(0), $0.int(1)) }) {
            if let st = TaskState(rawValue: state) { counts[st] = n }
        }
        return counts
    }

    /// The ids of every task the query matches (without paging), for an action on
    /// all of them; at most `limit`.
    package func dashboardMatchingIDs(_ q: DashboardTaskQuery, limit: Int) throws -> [Int64] {
        let (whereSQL, values) = dashboardWhere(q, paging: false)
        return try db.readTransaction {
            var values = values
            var sql = "SELECT id FROM tasks \(whereSQL) ORDER BY id DESC LIMIT ?"
            if q.isSearch, let floor = try scanFloor(q) {
                sql = "SELECT id FROM tasks \(whereSQL.isEmpty ? "WHERE" : whereSQL + " AND") id >= ? ORDER BY id DESC LIMIT ?"
                values.append(.int(floor))
            }
            values.append(.int(Int64(limit)))
            return try db.prepare(sql).bind(values).rows { $0.int(0) }
        }
    }

    /// The lowest id a search may read (see `DashboardTaskQuery.scanFloor`).
    private func scanFloor(_ q: DashboardTaskQuery) throws -> Int64? {
        q.scanFloor(newest: try db.scalarInt("SELECT max(id) FROM tasks") ?? 0)
    }

    private func dashboardWhere(_ q: DashboardTaskQuery, paging: Bool) -> (String, [SQLValue]) {
        var clauses = ["kind <> 'taskq.stop'"]
        var values: [SQLValue] = []
        if let s = q.state {
            clauses.append("state = ?")
            values.append(.text(s.rawValue))
            // Through an index rather than a scan of every finished task: running
            // tasks are in their workers' claimed lists, queued ones in the two
            // partial indexes.
            if s == .running { clauses.append("id IN (SELECT j.value FROM processes p, json_each(p.claimed) j)") }
            if s == .queued {
                clauses.append("""
                    id IN (SELECT id FROM tasks INDEXED BY tasks_ready WHERE state = 'queued' AND run_at = ''
                           UNION ALL SELECT id FROM tasks INDEXED BY tasks_delayed WHERE state = 'queued' AND run_at > '')
                    """)
            }
        }
        if let s = q.queue { clauses.append("queue = ?"); values.append(.text(s)) }
        if let s = q.kind { clauses.append("kind = ?"); values.append(.text(s)) }
        if let n = q.minID { clauses.append("id >= ?"); values.append(.int(n)) }
        if let n = q.maxID { clauses.append("id <= ?"); values.append(.int(n)) }
        if paging, let n = q.beforeID { clauses.append("id < ?"); values.append(.int(n)) }
        if let path = q.jsonPath {
            // Compared as text, so '42' finds 42 and "a" finds "a"; a malformed
            // path is an SQLite error the page reports.
            clauses.append("CAST(json_extract(payload, ?) AS TEXT) = ?")
            values += [.text(path), .text(q.jsonValue ?? "")]
        }
        if let e = q.errorText { clauses.append("instr(last_error, ?) > 0"); values.append(.text(e)) }
        return ("WHERE " + clauses.joined(separator: " AND "), values)
    }

    /// The ids of the failed tasks of one failure group.
    package func dashboardFailureGroupIDs(kind: String, firstLine: String) throws -> [Int64] {
        try db.prepare("""
            SELECT id FROM tasks WHERE state = 'failed' AND kind = ?1
              AND (CASE WHEN instr(coalesce(last_error, ''), char(10)) > 0
                        THEN substr(last_error, 1, instr(last_error, char(10)) - 1) ELSE coalesce(last_error, '') END) = ?2
            ORDER BY id
            """).bind(.text(kind), .text(firstLine)).rows { $0.int(0) }
    }

    /// The tasks enqueued `--after` this one.
    package func dashboardDependants(of id: Int64) throws -> [Int64] {
        try db.prepare("SELECT task_id FROM task_dependencies WHERE depends_on = ? ORDER BY task_id").bind(.int(id)).rows { $0.int(0) }
    }
}

extension SQLiteTaskStore: DashboardStore {
    /// The database file and its write-ahead log (`taskq_database_size_bytes`).
    package func dashboardSizes() throws -> [DashboardSize] {
        let help = "Size of the database file and its write-ahead log."
        return [("db", location), ("wal", location + "-wal")].map { file, path in
            var st = stat()
            let bytes = stat(path, &st) == 0 ? Int64(st.st_size) : 0
            return DashboardSize(metric: "taskq_database_size_bytes", help: help, labels: [("file", file)], bytes: bytes)
        }
    }

    /// inotify wakes the dashboard at every commit (`makeChangeSignal`).
    package var dashboardChangeWatch: DashboardChangeWatch { .signal }

    /// The sizes and modification times of the file and its `-wal`: every commit
    /// writes the `-wal`; a checkpoint writes the file. Read without a query.
    package func dashboardChangeMark() throws -> String {
        [location, location + "-wal"].map { path in
            var st = stat()
            guard stat(path, &st) == 0 else { return "-" }
            return "\(st.st_size):\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)"
        }.joined(separator: " ")
    }
}
