import TaskQueue

/// The SQL that puts a duration (seconds, column expression) in its bucket's
/// index (`bounds.count` for +Inf).
private func bucketSQL(_ expr: String, _ bounds: [Double]) -> String {
    "CASE " + bounds.enumerated().map { "WHEN \(expr) <= \($0.element) THEN \($0.offset)" }.joined(separator: " ")
        + " ELSE \(bounds.count) END"
}

/// Seconds between two times, as float8 (extract gives numeric); NULL when either is missing.
private let durationSQL = "extract(epoch FROM finished_at - started_at)::float8"
private let waitSQL = "extract(epoch FROM started_at - CASE WHEN run_at IS NOT NULL AND run_at <= started_at THEN run_at ELSE created_at END)::float8"
/// A finish time as SQLite keeps it ("2026-12-07T16:51:02.123Z"): the minute is its first 16 characters.
private func isoSQL(_ column: String) -> String {
    "to_char(\(column) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
}

/// The figures that need every row (see `DashboardAggregate`), one id range at a
/// time, as `SQLiteTaskStore+Metrics.swift` computes them.
extension PostgresTaskStore {
    package func idRange(attempts: Bool = false) throws -> (Int64, Int64)? {
        try pg {
            let r = try db.exec("SELECT min(id), max(id) FROM \(attempts ? "task_attempts" : "tasks")")
            return r.isNull(0, 0) ? nil : (r.int(0, 0), r.int(0, 1))
        }
    }

    package func dashboardUnfinishedFloor() throws -> Int64? {
        try pg {
            try db.exec("""
                SELECT least((SELECT min(id) FROM tasks WHERE state = 'queued' AND run_at IS NULL),
                             (SELECT min(id) FROM tasks WHERE state = 'queued' AND run_at IS NOT NULL),
                             (SELECT min(c) FROM processes p CROSS JOIN LATERAL unnest(p.claimed) c))
                """).optionalInt(0, 0)
        }
    }

    package func aggregateTasks(from: Int64, to: Int64, into a: inout DashboardAggregate) throws {
        try snapshot {
            let s = try db.exec("""
                SELECT queue, kind, state, d, w, count(*), coalesce(sum(dv), 0), coalesce(sum(wv), 0), max(finished_at)
                FROM (SELECT queue, kind, state, finished_at,
                             CASE WHEN state = 'succeeded' THEN \(bucketSQL(durationSQL, attemptDurationBuckets)) END AS d,
                             CASE WHEN state = 'succeeded' THEN \(durationSQL) END AS dv,
                             CASE WHEN started_at IS NOT NULL THEN \(bucketSQL(waitSQL, taskWaitBuckets)) END AS w,
                             CASE WHEN started_at IS NOT NULL THEN \(waitSQL) END AS wv
                      FROM tasks WHERE id BETWEEN $1 AND $2 AND kind <> 'taskq.stop') t
                GROUP BY queue, kind, state, d, w
                """, [.int(from), .int(to)])
            for i in 0..<s.count {
                a.addTasks(queue: s.string(i, 0), kind: s.string(i, 1), state: s.string(i, 2), count: s.int(i, 5),
                           durationBucket: s.isNull(i, 3) ? nil : Int(s.int(i, 3)), durationSum: s.double(i, 6),
                           waitBucket: s.isNull(i, 4) ? nil : Int(s.int(i, 4)), waitSum: s.double(i, 7))
                a.noteFinish(s.optionalTimestamp(i, 8))
            }
            let f = try db.exec("""
                SELECT kind, split_part(coalesce(last_error, ''), E'\\n', 1) AS line, count(*), min(finished_at), max(finished_at), max(id)
                FROM tasks WHERE id BETWEEN $1 AND $2 AND state = 'failed' GROUP BY kind, line
                """, [.int(from), .int(to)])
            for i in 0..<f.count {
                a.addFailures(kind: f.string(i, 0), firstLine: f.string(i, 1), count: f.int(i, 2), firstSeen: f.optionalTimestamp(i, 3),
                              lastSeen: f.optionalTimestamp(i, 4), newestID: f.int(i, 5))
            }
            a.addLatestFailed(try db.exec("""
                SELECT \(isoSQL("finished_at")), id FROM tasks WHERE id BETWEEN $1 AND $2 AND state = 'failed'
                ORDER BY finished_at DESC LIMIT 10
                """, [.int(from), .int(to)]).rows { ($1.string($0, 0), $1.int($0, 1)) })
        }
    }

    package func aggregateChart(from: Int64, to: Int64, now: Timestamp, into a: inout DashboardAggregate) throws {
        try pg {
            let m = try db.exec("""
                SELECT queue, state, left(\(isoSQL("finished_at")), 16), count(*), count(*) FILTER (WHERE finished_at >= $4) FROM tasks
                WHERE id BETWEEN $1 AND $2 AND finished_at >= $3 AND kind <> 'taskq.stop' GROUP BY 1, 2, 3
                """, [.int(from), .int(to), .ts(now.adding(seconds: -3600)), .ts(now.adding(seconds: -60))])
            for i in 0..<m.count {
                a.addFinished(queue: m.string(i, 0), state: m.string(i, 1), minute: m.string(i, 2), count: m.int(i, 3), lastMinute: m.int(i, 4))
            }
        }
    }

    /// Through the primary key of `tasks`, one row per attempt: `OFFSET 0` keeps
    /// the subquery from being pulled up into a join, for which PostgreSQL would
    /// rather hash the whole of `tasks` (a million rows) than look up 50,000.
    static let aggregateAttemptsSQL = """
        SELECT t.queue, t.kind, a.outcome, d, count(*), coalesce(sum(dv), 0)
        FROM (SELECT task_id, outcome,
                     CASE WHEN started_at IS NOT NULL THEN \(bucketSQL(durationSQL, attemptDurationBuckets)) END AS d,
                     CASE WHEN started_at IS NOT NULL THEN \(durationSQL) END AS dv
              FROM task_attempts WHERE id BETWEEN $1 AND $2) a
        CROSS JOIN LATERAL (SELECT queue, kind FROM tasks WHERE id = a.task_id OFFSET 0) t
        GROUP BY t.queue, t.kind, a.outcome, d
        """

    package func aggregateAttempts(from: Int64, to: Int64, into a: inout DashboardAggregate) throws {
        try snapshot {
            let s = try db.exec(Self.aggregateAttemptsSQL, [.int(from), .int(to)])
            for i in 0..<s.count {
                a.addAttempts(queue: s.string(i, 0), kind: s.string(i, 1), outcome: s.string(i, 2), count: s.int(i, 4),
                              durationBucket: s.isNull(i, 3) ? nil : Int(s.int(i, 3)), durationSum: s.double(i, 5))
            }
        }
    }

    package func mapGroups() throws -> [DashboardMapGroup] {
        try pg {
            try db.exec("""
                SELECT g.group_name, count(*), count(*) FILTER (WHERE t.state = 'queued'), count(*) FILTER (WHERE t.state = 'running'),
                       count(*) FILTER (WHERE t.state = 'succeeded'), count(*) FILTER (WHERE t.state = 'failed'),
                       count(*) FILTER (WHERE t.state = 'cancelled'), count(*) FILTER (WHERE t.id IS NULL),
                       min(g.task_id), max(g.task_id), min(t.created_at), max(t.finished_at)
                FROM task_groups g LEFT JOIN LATERAL (SELECT id, state, created_at, finished_at FROM tasks WHERE id = g.task_id OFFSET 0) t ON true
                GROUP BY g.group_name ORDER BY min(g.task_id) DESC
                """).rows { i, r in
                var states: [TaskState: Int64] = [:]
                for (k, st) in TaskState.allCases.enumerated() { states[st] = r.int(i, 2 + k) }
                return DashboardMapGroup(name: r.string(i, 0), lines: r.int(i, 1), states: states, purged: r.int(i, 7),
                                         firstTaskID: r.int(i, 8), lastTaskID: r.int(i, 9), createdAt: r.optionalTimestamp(i, 10),
                                         lastFinishedAt: r.optionalTimestamp(i, 11))
            }
        }
    }
}
