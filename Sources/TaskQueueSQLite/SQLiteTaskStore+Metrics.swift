import TaskQueue

/// The SQL that puts a duration (seconds, column expression) in its bucket's
/// index (`bounds.count` for +Inf).
private func bucketSQL(_ expr: String, _ bounds: [Double]) -> String {
    "CASE WHEN \(expr) IS NULL THEN NULL " + bounds.enumerated().map { "WHEN \(expr) <= \($0.element) THEN \($0.offset)" }.joined(separator: " ")
        + " ELSE \(bounds.count) END"
}

/// Seconds between two ISO times; NULL when either is missing.
private let durationSQL = "(julianday(finished_at) - julianday(started_at)) * 86400.0"
private let waitSQL = "(julianday(started_at) - julianday(CASE WHEN run_at > '' AND run_at <= started_at THEN run_at ELSE created_at END)) * 86400.0"
private let firstLineSQL = """
    CASE WHEN instr(coalesce(last_error, ''), char(10)) > 0 THEN substr(last_error, 1, instr(last_error, char(10)) - 1) ELSE coalesce(last_error, '') END
    """

extension SQLiteTaskStore {
    /// The lowest and highest id of `tasks` (or of `task_attempts`).
    package func idRange(attempts: Bool = false) throws -> (Int64, Int64)? {
        // Two subqueries: SQLite reads min() or max() alone from the end of the
        // primary key, but both in one SELECT by a scan of the whole table.
        let table = attempts ? "task_attempts" : "tasks"
        return try db.prepare("SELECT (SELECT min(id) FROM \(table)), (SELECT max(id) FROM \(table))").firstRow { r in
            r.isNull(0) ? nil : (r.int(0), r.int(1))
        } ?? nil
    }

    package func dashboardUnfinishedFloor() throws -> Int64? {
        try db.prepare("""
            SELECT min(id) FROM (SELECT min(id) AS id FROM tasks INDEXED BY tasks_ready WHERE state = 'queued' AND run_at = ''
                                 UNION ALL SELECT min(id) FROM tasks INDEXED BY tasks_delayed WHERE state = 'queued' AND run_at > ''
                                 UNION ALL SELECT min(j.value) FROM processes p, json_each(p.claimed) j)
            """).firstRow { $0.optionalInt(0) } ?? nil
    }

    /// Adds the tasks with ids `from...to` to `a`, in one read transaction.
    package func aggregateTasks(from: Int64, to: Int64, into a: inout DashboardAggregate) throws {
        try db.readTransaction {
            // The durations are computed once per row, in the inner query: `LIMIT -1`
            // keeps SQLite from folding it into the outer one, which would compute
            // them again in every WHEN of the buckets (a third of the pass).
            let s = try db.prepare("""
                SELECT queue, kind, state, \(bucketSQL("dv", attemptDurationBuckets)) AS d, \(bucketSQL("wv", taskWaitBuckets)) AS w,
                       count(*), sum(dv), sum(wv), max(finished_at)
                FROM (SELECT queue, kind, state, finished_at,
                             CASE WHEN state = 'succeeded' THEN \(durationSQL) END AS dv,
                             CASE WHEN started_at IS NOT NULL THEN \(waitSQL) END AS wv
                      FROM tasks WHERE id BETWEEN ?1 AND ?2 AND kind <> 'taskq.stop' LIMIT -1)
                GROUP BY queue, kind, state, d, w
                """).bind(.int(from), .int(to))
            while try s.step() {
                a.addTasks(queue: s.string(0), kind: s.string(1), state: s.string(2), count: s.int(5),
                           durationBucket: s.isNull(3) ? nil : Int(s.int(3)), durationSum: s.double(6),
                           waitBucket: s.isNull(4) ? nil : Int(s.int(4)), waitSum: s.double(7))
                a.noteFinish(s.text(8).flatMap(Timestamp.init(iso:)))
            }
            let f = try db.prepare("""
                SELECT kind, \(firstLineSQL) AS line, count(*), min(finished_at), max(finished_at), max(id)
                FROM tasks WHERE id BETWEEN ?1 AND ?2 AND state = 'failed' GROUP BY kind, line
                """).bind(.int(from), .int(to))
            while try f.step() {
                a.addFailures(kind: f.string(0), firstLine: f.string(1), count: f.int(2), firstSeen: f.text(3).flatMap(Timestamp.init(iso:)),
                              lastSeen: f.text(4).flatMap(Timestamp.init(iso:)), newestID: f.int(5))
            }
            let latest = try db.prepare("""
                SELECT finished_at, id FROM tasks WHERE id BETWEEN ?1 AND ?2 AND state = 'failed' ORDER BY finished_at DESC LIMIT 10
                """).bind(.int(from), .int(to)).rows { ($0.string(0), $0.int(1)) }
            a.addLatestFailed(latest)
        }
    }

    package func aggregateChart(from: Int64, to: Int64, now: Timestamp, into a: inout DashboardAggregate) throws {
        try db.readTransaction {
            let m = try db.prepare("""
                SELECT queue, state, substr(finished_at, 1, 16), count(*), sum(finished_at >= ?4) FROM tasks
                WHERE id BETWEEN ?1 AND ?2 AND finished_at >= ?3 AND kind <> 'taskq.stop' GROUP BY 1, 2, 3
                """).bind(.int(from), .int(to), .ts(now.adding(seconds: -3600)), .ts(now.adding(seconds: -60)))
            while try m.step() {
                a.addFinished(queue: m.string(0), state: m.string(1), minute: m.string(2), count: m.int(3), lastMinute: m.int(4))
            }
        }
    }

    /// Adds the attempt history rows with ids `from...to` to `a`, in one read transaction.
    package func aggregateAttempts(from: Int64, to: Int64, into a: inout DashboardAggregate) throws {
        try db.readTransaction {
            let s = try db.prepare("""
                SELECT t.queue, t.kind, a.outcome, \(bucketSQL("dv", attemptDurationBuckets)) AS d, count(*), sum(dv)
                FROM (SELECT task_id, outcome, CASE WHEN started_at IS NOT NULL THEN \(durationSQL) END AS dv
                      FROM task_attempts WHERE id BETWEEN ?1 AND ?2 LIMIT -1) a JOIN tasks t ON t.id = a.task_id
                GROUP BY t.queue, t.kind, a.outcome, d
                """).bind(.int(from), .int(to))
            while try s.step() {
                a.addAttempts(queue: s.string(0), kind: s.string(1), outcome: s.string(2), count: s.int(4),
                              durationBucket: s.isNull(3) ? nil : Int(s.int(3)), durationSum: s.double(5))
            }
        }
    }

    /// Every map group's progress, in one read transaction (a row of
    /// `task_groups` per input line, each joined to its task by primary key).
    package func mapGroups() throws -> [DashboardMapGroup] {
        try db.prepare("""
            SELECT g.group_name, count(*), sum(t.state = 'queued'), sum(t.state = 'running'), sum(t.state = 'succeeded'),
                   sum(t.state = 'failed'), sum(t.state = 'cancelled'), sum(t.id IS NULL), min(g.task_id), max(g.task_id), min(t.created_at), max(t.finished_at)
            FROM task_groups g LEFT JOIN tasks t ON t.id = g.task_id GROUP BY g.group_name ORDER BY min(g.task_id) DESC
            """).rows { r in
            var states: [TaskState: Int64] = [:]
            for (i, st) in TaskState.allCases.enumerated() { states[st] = r.int(Int32(2 + i)) }
            return DashboardMapGroup(name: r.string(0), lines: r.int(1), states: states, purged: r.int(7), firstTaskID: r.int(8),
                                     lastTaskID: r.int(9), createdAt: r.text(10).flatMap(Timestamp.init(iso:)),
                                     lastFinishedAt: r.text(11).flatMap(Timestamp.init(iso:)))
        }
    }

    /// The cheap live figures, in one read transaction.
    package func dashboardLive(now: Timestamp) throws -> DashboardLive {
        try db.readTransaction {
            var l = DashboardLive()
            for (queue, n, since) in try db.prepare("""
                SELECT queue, count(*), min(created_at) FROM tasks INDEXED BY tasks_ready
                WHERE state = 'queued' AND run_at = '' AND kind <> 'taskq.stop' GROUP BY queue
                """).rows({ ($0.string(0), $0.int(1), $0.text(2)) }) {
                l.ready[queue] = n
                l.oldestReady[queue] = since.flatMap(Timestamp.init(iso:))
            }
            for (queue, n, later, since) in try db.prepare("""
                SELECT queue, count(*), sum(run_at > ?1), min(CASE WHEN run_at <= ?1 THEN run_at END) FROM tasks INDEXED BY tasks_delayed
                WHERE state = 'queued' AND run_at > '' AND kind <> 'taskq.stop' GROUP BY queue
                """).bind(.ts(now)).rows({ ($0.string(0), $0.int(1), $0.int(2), $0.text(3)) }) {
                l.ready[queue, default: 0] += n - later
                l.delayed[queue] = later
                if let t = since.flatMap(Timestamp.init(iso:)), l.oldestReady[queue].map({ t < $0 }) ?? true { l.oldestReady[queue] = t }
            }
            // CROSS JOIN keeps this order: left to itself the planner scans `tasks`.
            l.running = try db.prepare("""
                SELECT p.id, t.id, t.kind, t.queue FROM processes p CROSS JOIN json_each(p.claimed) j CROSS JOIN tasks t ON t.id = j.value
                WHERE t.state = 'running' AND t.owner = p.id ORDER BY p.id, t.id
                """).rows { DashboardRunning(owner: $0.int(0), taskID: $0.int(1), kind: $0.string(2), queue: $0.string(3)) }
            for (name, pausedAt) in try db.prepare("SELECT name, paused_at FROM queues").rows({ ($0.string(0), $0.text(1)) }) {
                l.paused[name] = pausedAt != nil
            }
            l.processes = try processes()
            l.schedules = try schedules()
            return l
        }
    }
}
