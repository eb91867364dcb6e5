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

/// What `/metrics` publishes from the database, read in one snapshot. Every
/// counter is a count of rows, so it survives a restart of whoever reads it (and
/// goes down when old finished tasks are purged).
package struct MetricsSnapshot: Sendable {
    /// Key: queue, state.
    package var tasks: [String: [TaskState: Int64]] = [:]
    /// Queued tasks whose start time has passed, per queue: when the oldest became claimable.
    package var oldestReady: [String: Timestamp] = [:]
    package var paused: [String: Bool] = [:]
    /// Key: "queue\u{0}kind".
    package var enqueued: [String: Int64] = [:]
    /// Key: "queue\u{0}kind\u{0}outcome" (succeeded, failed, timed out, crashed, released, cancelled).
    package var attempts: [String: Int64] = [:]
    /// Key: "queue\u{0}kind\u{0}state" for finished states.
    package var finished: [String: Int64] = [:]
    /// Key: "queue\u{0}kind".
    package var attemptDuration: [String: BucketCounts] = [:]
    /// Key: queue.
    package var wait: [String: BucketCounts] = [:]
    package var processes: [ProcessRecord] = []
    /// Worker process ids that hold a running task.
    package var busyWorkers: Set<Int64> = []
    package var schedules: [Schedule] = []
    package init() {}
}

/// The SQL that puts a duration (seconds, column expression) in its bucket's
/// index (`bounds.count` for +Inf).
private func bucketSQL(_ expr: String, _ bounds: [Double]) -> String {
    "CASE " + bounds.enumerated().map { "WHEN \(expr) <= \($0.element) THEN \($0.offset)" }.joined(separator: " ")
        + " ELSE \(bounds.count) END"
}

extension SQLiteTaskStore {
    /// Reads every figure `/metrics` publishes: one grouped pass over `tasks`,
    /// one over `task_attempts`, and the small tables.
    package func metricsSnapshot(now: Timestamp) throws -> MetricsSnapshot {
        try db.readTransaction {
            var m = MetricsSnapshot()
            // Seconds between two ISO times; NULL when either is missing.
            let dur = "(julianday(finished_at) - julianday(started_at)) * 86400.0"
            let wait = "(julianday(started_at) - julianday(CASE WHEN run_at > '' AND run_at <= started_at THEN run_at ELSE created_at END)) * 86400.0"
            let s = try db.prepare("""
                SELECT queue, kind, state, d, w, count(*), sum(dv), sum(wv),
                       min(CASE WHEN state = 'queued' AND run_at <= ?1 THEN (CASE run_at WHEN '' THEN created_at ELSE run_at END) END)
                FROM (SELECT queue, kind, state, run_at, created_at,
                             CASE WHEN state = 'succeeded' THEN \(bucketSQL(dur, attemptDurationBuckets)) END AS d,
                             CASE WHEN state = 'succeeded' THEN \(dur) END AS dv,
                             CASE WHEN started_at IS NOT NULL THEN \(bucketSQL(wait, taskWaitBuckets)) END AS w,
                             CASE WHEN started_at IS NOT NULL THEN \(wait) END AS wv
                      FROM tasks WHERE kind <> 'taskq.stop')
                GROUP BY queue, kind, state, d, w
                """).bind(.ts(now))
            while try s.step() {
                let queue = s.string(0), kind = s.string(1), n = s.int(5)
                guard let state = TaskState(rawValue: s.string(2)) else { continue }
                let qk = queue + "\u{0}" + kind
                m.tasks[queue, default: [:]][state, default: 0] += n
                m.enqueued[qk, default: 0] += n
                if state.isFinished { m.finished[qk + "\u{0}" + state.rawValue, default: 0] += n }
                if state == .succeeded { m.attempts[qk + "\u{0}succeeded", default: 0] += n }
                if !s.isNull(3) {
                    m.attemptDuration[qk, default: BucketCounts(buckets: attemptDurationBuckets.count)].counts[Int(s.int(3))] += n
                    m.attemptDuration[qk]!.sum += max(0, s.double(6))
                }
                if !s.isNull(4) {
                    m.wait[queue, default: BucketCounts(buckets: taskWaitBuckets.count)].counts[Int(s.int(4))] += n
                    m.wait[queue]!.sum += max(0, s.double(7))
                }
                if let since = s.text(8).flatMap(Timestamp.init(iso:)), m.oldestReady[queue].map({ since < $0 }) ?? true {
                    m.oldestReady[queue] = since
                }
            }
            let a = try db.prepare("""
                SELECT t.queue, t.kind, a.outcome, d, count(*), sum(dv)
                FROM (SELECT task_id, outcome,
                             CASE WHEN started_at IS NOT NULL THEN \(bucketSQL(dur, attemptDurationBuckets)) END AS d,
                             CASE WHEN started_at IS NOT NULL THEN \(dur) END AS dv
                      FROM task_attempts) a JOIN tasks t ON t.id = a.task_id
                GROUP BY t.queue, t.kind, a.outcome, d
                """)
            while try a.step() {
                let qk = a.string(0) + "\u{0}" + a.string(1), n = a.int(4)
                m.attempts[qk + "\u{0}" + a.string(2), default: 0] += n
                // A released attempt was put back at shutdown, not run to an end.
                if !a.isNull(3), a.string(2) != "released" {
                    m.attemptDuration[qk, default: BucketCounts(buckets: attemptDurationBuckets.count)].counts[Int(a.int(3))] += n
                    m.attemptDuration[qk]!.sum += max(0, a.double(5))
                }
            }
            for (name, pausedAt) in try db.prepare("SELECT name, paused_at FROM queues").rows({ ($0.string(0), $0.text(1)) }) {
                m.paused[name] = pausedAt != nil
            }
            m.processes = try processes()
            m.busyWorkers = Set(try db.prepare("""
                SELECT DISTINCT p.id FROM processes p, json_each(p.claimed) j JOIN tasks t ON t.id = j.value
                WHERE t.state = 'running' AND t.owner = p.id
                """).rows { $0.int(0) })
            m.schedules = try schedules()
            return m
        }
    }
}
