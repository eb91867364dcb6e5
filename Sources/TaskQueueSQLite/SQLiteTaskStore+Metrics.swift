import TaskQueue

/// Upper bounds (seconds) of the attempt-duration histogram's buckets.
package let attemptDurationBuckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600]
/// Upper bounds (seconds) of the enqueue-to-start wait histogram's buckets.
package let taskWaitBuckets: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600]

/// Counts per bucket (not cumulative; the last slot is +Inf), with the sum.
package struct BucketCounts: Sendable, Equatable {
    package var counts: [Int64]
    package var sum: Double = 0
    package init(buckets: Int) { counts = Array(repeating: 0, count: buckets + 1) }
    package var total: Int64 { counts.reduce(0, +) }
}

/// Figures that need a pass over every row of `tasks` and `task_attempts`,
/// added up one id range at a time (`aggregateTasks`, `aggregateAttempts`), each
/// range in its own short read transaction. Every counter is a count of rows,
/// so it survives a restart of whoever reads it (and goes down when old
/// finished tasks are purged).
package struct DashboardAggregate: Sendable {
    /// Key: "queue\u{0}kind\u{0}state".
    package var tasks: [String: Int64] = [:]
    /// Key: "queue\u{0}kind\u{0}outcome" (succeeded, failed, timed out, crashed, released, cancelled).
    package var attempts: [String: Int64] = [:]
    /// Key: "queue\u{0}kind".
    package var attemptDuration: [String: BucketCounts] = [:]
    /// Key: queue.
    package var wait: [String: BucketCounts] = [:]
    /// Key: "2026-12-07T16:51" (UTC), the last hour.
    package var minutes: [String: DashboardMinute] = [:]
    /// Key: queue.
    package var finishedLastMinute: [String: Int64] = [:]
    /// Key: "kind\u{0}first line of the error".
    package var failureGroups: [String: DashboardFailureGroup] = [:]
    /// The latest failed tasks: (finished_at, id), newest first, at most 10.
    package var latestFailed: [(String, Int64)] = []
    /// `taskq map` runs, by group name.
    package var mapGroups: [DashboardMapGroup] = []
    package init() {}

    /// Counts per state of the tasks of `queue` and `kind` (nil: any).
    package func stateCounts(queue: String?, kind: String?) -> [TaskState: Int64] {
        var out: [TaskState: Int64] = [:]
        for (key, n) in tasks {
            let p = key.split(separator: "\u{0}", omittingEmptySubsequences: false)
            guard queue.map({ p[0] == $0 }) ?? true, kind.map({ p[1] == $0 }) ?? true, let st = TaskState(rawValue: String(p[2])) else { continue }
            out[st, default: 0] += n
        }
        return out
    }
}

/// The progress of one `taskq map` run.
package struct DashboardMapGroup: Sendable, Equatable {
    package var name: String
    package var lines: Int64
    package var states: [TaskState: Int64]
    /// Lines whose task was purged since.
    package var purged: Int64
    package var firstTaskID: Int64
    package var lastTaskID: Int64
    package var createdAt: Timestamp?
    package var lastFinishedAt: Timestamp?
}

/// What is cheap to read at every request: queued tasks through their partial
/// indexes, running ones through the workers' claimed lists, processes, paused
/// queues, schedules.
package struct DashboardLive: Sendable {
    /// Per queue: ready (claimable now), delayed, and since when the oldest ready one waits.
    package var ready: [String: Int64] = [:]
    package var delayed: [String: Int64] = [:]
    package var oldestReady: [String: Timestamp] = [:]
    package var running: [DashboardRunning] = []
    package var paused: [String: Bool] = [:]
    package var processes: [ProcessRecord] = []
    package var schedules: [Schedule] = []
}

/// The SQL that puts a duration (seconds, column expression) in its bucket's
/// index (`bounds.count` for +Inf).
private func bucketSQL(_ expr: String, _ bounds: [Double]) -> String {
    "CASE " + bounds.enumerated().map { "WHEN \(expr) <= \($0.element) THEN \($0.offset)" }.joined(separator: " ")
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
        try db.prepare("SELECT min(id), max(id) FROM \(attempts ? "task_attempts" : "tasks")").firstRow { r in
            r.isNull(0) ? nil : (r.int(0), r.int(1))
        } ?? nil
    }

    /// Adds the tasks with ids `from...to` to `a`, in one read transaction.
    package func aggregateTasks(from: Int64, to: Int64, now: Timestamp, into a: inout DashboardAggregate) throws {
        try db.readTransaction {
            let s = try db.prepare("""
                SELECT queue, kind, state, d, w, count(*), sum(dv), sum(wv)
                FROM (SELECT queue, kind, state,
                             CASE WHEN state = 'succeeded' THEN \(bucketSQL(durationSQL, attemptDurationBuckets)) END AS d,
                             CASE WHEN state = 'succeeded' THEN \(durationSQL) END AS dv,
                             CASE WHEN started_at IS NOT NULL THEN \(bucketSQL(waitSQL, taskWaitBuckets)) END AS w,
                             CASE WHEN started_at IS NOT NULL THEN \(waitSQL) END AS wv
                      FROM tasks WHERE id BETWEEN ?1 AND ?2 AND kind <> 'taskq.stop')
                GROUP BY queue, kind, state, d, w
                """).bind(.int(from), .int(to))
            while try s.step() {
                let queue = s.string(0), kind = s.string(1), state = s.string(2), n = s.int(5)
                let qk = queue + "\u{0}" + kind
                a.tasks[qk + "\u{0}" + state, default: 0] += n
                if state == "succeeded" { a.attempts[qk + "\u{0}succeeded", default: 0] += n }
                if !s.isNull(3) {
                    a.attemptDuration[qk, default: BucketCounts(buckets: attemptDurationBuckets.count)].counts[Int(s.int(3))] += n
                    a.attemptDuration[qk]!.sum += max(0, s.double(6))
                }
                if !s.isNull(4) {
                    a.wait[queue, default: BucketCounts(buckets: taskWaitBuckets.count)].counts[Int(s.int(4))] += n
                    a.wait[queue]!.sum += max(0, s.double(7))
                }
            }
            // The last hour, per minute and queue.
            let m = try db.prepare("""
                SELECT queue, state, substr(finished_at, 1, 16), count(*), sum(finished_at >= ?4) FROM tasks
                WHERE id BETWEEN ?1 AND ?2 AND finished_at >= ?3 AND kind <> 'taskq.stop' GROUP BY 1, 2, 3
                """).bind(.int(from), .int(to), .ts(now.adding(seconds: -3600)), .ts(now.adding(seconds: -60)))
            while try m.step() {
                let minute = m.string(2), n = m.int(3)
                var row = a.minutes[minute] ?? DashboardMinute(minute: minute, succeeded: 0, failed: 0)
                if m.string(1) == "succeeded" { row.succeeded += n } else if m.string(1) == "failed" { row.failed += n }
                a.minutes[minute] = row
                a.finishedLastMinute[m.string(0), default: 0] += m.int(4)
            }
            let f = try db.prepare("""
                SELECT kind, \(firstLineSQL) AS line, count(*), min(finished_at), max(finished_at), max(id)
                FROM tasks WHERE id BETWEEN ?1 AND ?2 AND state = 'failed' GROUP BY kind, line
                """).bind(.int(from), .int(to))
            while try f.step() {
                let key = f.string(0) + "\u{0}" + f.string(1)
                let first = f.text(3).flatMap(Timestamp.init(iso:)), last = f.text(4).flatMap(Timestamp.init(iso:))
                if var g = a.failureGroups[key] {
                    g.count += f.int(2)
                    if let first, g.firstSeen.map({ first < $0 }) ?? true { g.firstSeen = first }
                    if let last, g.lastSeen.map({ last > $0 }) ?? true { g.lastSeen = last }
                    g.newestID = max(g.newestID, f.int(5))
                    a.failureGroups[key] = g
                } else {
                    a.failureGroups[key] = DashboardFailureGroup(kind: f.string(0), firstLine: f.string(1), count: f.int(2),
                                                                 firstSeen: first, lastSeen: last, newestID: f.int(5))
                }
            }
            let latest = try db.prepare("""
                SELECT finished_at, id FROM tasks WHERE id BETWEEN ?1 AND ?2 AND state = 'failed' ORDER BY finished_at DESC LIMIT 10
                """).bind(.int(from), .int(to)).rows { ($0.string(0), $0.int(1)) }
            a.latestFailed = Array((a.latestFailed + latest).sorted { $0.0 > $1.0 }.prefix(10))
        }
    }

    /// Adds the attempt history rows with ids `from...to` to `a`, in one read transaction.
    package func aggregateAttempts(from: Int64, to: Int64, into a: inout DashboardAggregate) throws {
        try db.readTransaction {
            let s = try db.prepare("""
                SELECT t.queue, t.kind, a.outcome, d, count(*), sum(dv)
                FROM (SELECT task_id, outcome,
                             CASE WHEN started_at IS NOT NULL THEN \(bucketSQL(durationSQL, attemptDurationBuckets)) END AS d,
                             CASE WHEN started_at IS NOT NULL THEN \(durationSQL) END AS dv
                      FROM task_attempts WHERE id BETWEEN ?1 AND ?2) a JOIN tasks t ON t.id = a.task_id
                GROUP BY t.queue, t.kind, a.outcome, d
                """).bind(.int(from), .int(to))
            while try s.step() {
                let qk = s.string(0) + "\u{0}" + s.string(1), n = s.int(4)
                a.attempts[qk + "\u{0}" + s.string(2), default: 0] += n
                // A released attempt was put back at shutdown, not run to an end.
                if !s.isNull(3), s.string(2) != "released" {
                    a.attemptDuration[qk, default: BucketCounts(buckets: attemptDurationBuckets.count)].counts[Int(s.int(3))] += n
                    a.attemptDuration[qk]!.sum += max(0, s.double(5))
                }
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
