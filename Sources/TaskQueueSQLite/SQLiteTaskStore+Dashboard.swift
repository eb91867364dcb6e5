import TaskQueue

/// One queue's row on the dashboard's overview.
package struct DashboardQueueRow: Sendable, Equatable {
    package var queue: String
    package var paused = false
    /// Queued and claimable now.
    package var ready: Int64 = 0
    /// Queued with a start time still ahead (delay, backoff, `--after`).
    package var delayed: Int64 = 0
    package var running: Int64 = 0
    package var succeeded: Int64 = 0
    package var failed: Int64 = 0
    package var cancelled: Int64 = 0
    /// Finished (any end state) in the last minute.
    package var finishedLastMinute: Int64 = 0
    /// When the oldest ready task became claimable.
    package var oldestReadySince: Timestamp?
    package init(queue: String) { self.queue = queue }
}

/// Tasks finished in one minute, for the overview's chart.
package struct DashboardMinute: Sendable, Equatable {
    /// "2026-12-07T16:51" (UTC).
    package var minute: String
    package var succeeded: Int64
    package var failed: Int64
}

/// A task a worker holds right now.
package struct DashboardRunning: Sendable, Equatable {
    package var owner: Int64
    package var taskID: Int64
    package var kind: String
}

/// Everything the overview shows, read in one snapshot.
package struct DashboardOverview: Sendable {
    package var queues: [DashboardQueueRow]
    /// The last hour, oldest first, only minutes that had finishes.
    package var minutes: [DashboardMinute]
    package var processes: [ProcessRecord]
    package var running: [DashboardRunning]
    package var latestFailures: [TaskRecord]
}

/// Failed tasks that share a kind and the first line of their error.
package struct DashboardFailureGroup: Sendable, Equatable {
    package var kind: String
    package var firstLine: String
    package var count: Int64
    package var firstSeen: Timestamp?
    package var lastSeen: Timestamp?
    package var newestID: Int64
}

/// What the tasks page asks for. Pages go by id (keyset): `beforeID` shows the
/// tasks below it, newest first.
package struct DashboardTaskQuery: Sendable, Equatable {
    package var state: TaskState?
    package var queue: String?
    package var kind: String?
    package var minID: Int64?
    package var maxID: Int64?
    /// A JSON path ('$.user.id') and the value it must have (compared as text).
    package var jsonPath: String?
    package var jsonValue: String?
    /// Text the latest error must contain.
    package var errorText: String?
    package var beforeID: Int64?
    package var limit = 50
    /// A search (payload or error) looks at the newest this many rows only, so it
    /// stays fast on a large table.
    package var scanLimit = 100_000
    package init() {}

    package var isSearch: Bool { jsonPath != nil || errorText != nil }
}

extension SQLiteTaskStore {
    /// The overview, in one read transaction: one pass over `tasks` for the
    /// counts, the oldest ready task and the per-minute finishes; processes with
    /// the tasks they hold (from their claimed lists, by primary key); the ten
    /// latest failures.
    package func dashboardOverview(now: Timestamp) throws -> DashboardOverview {
        try db.readTransaction {
            let minuteAgo = now.adding(seconds: -60).iso
            let hourAgo = now.adding(seconds: -3600).iso
            var rows: [String: DashboardQueueRow] = [:]
            var minutes: [String: DashboardMinute] = [:]
            let s = try db.prepare("""
                SELECT queue, state, CASE WHEN finished_at >= ?2 THEN substr(finished_at, 1, 16) END AS minute,
                       count(*), sum(state = 'queued' AND run_at > ?1), sum(finished_at >= ?3),
                       min(CASE WHEN state = 'queued' AND run_at <= ?1 THEN (CASE run_at WHEN '' THEN created_at ELSE run_at END) END)
                FROM tasks WHERE kind <> 'taskq.stop' GROUP BY queue, state, minute
                """).bind(.ts(now), .text(hourAgo), .text(minuteAgo))
            while try s.step() {
                let queue = s.string(0), n = s.int(3)
                var row = rows[queue] ?? DashboardQueueRow(queue: queue)
                switch TaskState(rawValue: s.string(1)) {
                case .queued?:
                    row.delayed += s.int(4)
                    row.ready += n - s.int(4)
                    if let since = s.text(6).flatMap(Timestamp.init(iso:)), row.oldestReadySince.map({ since < $0 }) ?? true {
                        row.oldestReadySince = since
                    }
                case .running?: row.running += n
                case .succeeded?: row.succeeded += n
                case .failed?: row.failed += n
                case .cancelled?: row.cancelled += n
                case nil: break
                }
                row.finishedLastMinute += s.int(5)
                rows[queue] = row
                if let minute = s.text(2) {
                    var m = minutes[minute] ?? DashboardMinute(minute: minute, succeeded: 0, failed: 0)
                    if s.string(1) == "succeeded" { m.succeeded += n } else if s.string(1) == "failed" { m.failed += n }
                    minutes[minute] = m
                }
            }
            for (name, pausedAt) in try db.prepare("SELECT name, paused_at FROM queues").rows({ ($0.string(0), $0.text(1)) }) {
                var row = rows[name] ?? DashboardQueueRow(queue: name)
                row.paused = pausedAt != nil
                if row.paused || rows[name] != nil { rows[name] = row }
            }
            let running = try db.prepare("""
                SELECT p.id, t.id, t.kind FROM processes p, json_each(p.claimed) j JOIN tasks t ON t.id = j.value
                WHERE t.state = 'running' AND t.owner = p.id ORDER BY p.id, t.id
                """).rows { DashboardRunning(owner: $0.int(0), taskID: $0.int(1), kind: $0.string(2)) }
            let failures = try db.prepare("""
                SELECT \(Self.taskColumns()) FROM tasks WHERE state = 'failed' ORDER BY finished_at DESC LIMIT 10
                """).rows(taskRecord)
            return DashboardOverview(queues: rows.values.sorted { $0.queue < $1.queue },
                                     minutes: minutes.values.sorted { $0.minute < $1.minute },
                                     processes: try processes(), running: running, latestFailures: failures)
        }
    }

    /// One page of tasks for the dashboard, newest first, and whether the search
    /// stopped at its scan limit.
    package func dashboardTasks(_ q: DashboardTaskQuery) throws -> (tasks: [TaskRecord], scanLimited: Bool) {
        let (whereSQL, values) = dashboardWhere(q, paging: true)
        return try db.readTransaction {
            var scanLimited = false
            var values = values
            var sql = "SELECT \(Self.taskColumns()) FROM tasks \(whereSQL) ORDER BY id DESC LIMIT ?"
            if q.isSearch, let floor = try scanFloor(q) {
                // Only the newest rows: a search must not read a million payloads.
                sql = "SELECT \(Self.taskColumns()) FROM tasks \(whereSQL.isEmpty ? "WHERE" : whereSQL + " AND") id >= ? ORDER BY id DESC LIMIT ?"
                values.append(.int(floor))
                scanLimited = true
            }
            values.append(.int(Int64(q.limit)))
            return (try db.prepare(sql).bind(values).rows(taskRecord), scanLimited)
        }
    }

    /// Counts per state for the tasks page's tabs, under the query's filters
    /// (state and paging aside); nil for a search, which would have to read
    /// every payload to count.
    package func dashboardStateCounts(_ q: DashboardTaskQuery) throws -> [TaskState: Int64]? {
        if q.isSearch { return nil }
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

    /// The lowest id a search may read: the scan limit's worth of ids below the
    /// newest; nil when the table is smaller than that.
    private func scanFloor(_ q: DashboardTaskQuery) throws -> Int64? {
        let newest = try db.scalarInt("SELECT max(id) FROM tasks") ?? 0
        let top = q.beforeID.map { $0 - 1 } ?? newest
        let floor = top - Int64(q.scanLimit) + 1
        return floor > 1 ? floor : nil
    }

    private func dashboardWhere(_ q: DashboardTaskQuery, paging: Bool) -> (String, [SQLValue]) {
        var clauses = ["kind <> 'taskq.stop'"]
        var values: [SQLValue] = []
        if let s = q.state { clauses.append("state = ?"); values.append(.text(s.rawValue)) }
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

    /// Failed tasks grouped by kind and the first line of their error, biggest
    /// group first.
    package func dashboardFailureGroups(limit: Int = 200) throws -> [DashboardFailureGroup] {
        try db.prepare("""
            SELECT kind, CASE WHEN instr(coalesce(last_error, ''), char(10)) > 0
                              THEN substr(last_error, 1, instr(last_error, char(10)) - 1) ELSE coalesce(last_error, '') END AS line,
                   count(*), min(finished_at), max(finished_at), max(id)
            FROM tasks WHERE state = 'failed' GROUP BY kind, line ORDER BY count(*) DESC, kind LIMIT ?
            """).bind(.int(Int64(limit))).rows { r in
            DashboardFailureGroup(kind: r.string(0), firstLine: r.string(1), count: r.int(2),
                                  firstSeen: r.text(3).flatMap(Timestamp.init(iso:)), lastSeen: r.text(4).flatMap(Timestamp.init(iso:)),
                                  newestID: r.int(5))
        }
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
