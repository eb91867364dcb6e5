/// What the dashboard reads, in the terms of every store (see `DashboardStore`).

/// Tasks finished in one minute, for the overview's chart.
package struct DashboardMinute: Sendable, Equatable {
    /// "2026-12-07T16:51" (UTC).
    package var minute: String
    package var succeeded: Int64
    package var failed: Int64
    package init(minute: String, succeeded: Int64, failed: Int64) {
        self.minute = minute; self.succeeded = succeeded; self.failed = failed
    }

    /// The sum of two counts of the same minute (`other` nil: this one).
    package func adding(_ other: DashboardMinute?) -> DashboardMinute {
        DashboardMinute(minute: minute, succeeded: succeeded + (other?.succeeded ?? 0), failed: failed + (other?.failed ?? 0))
    }
}

/// A task a worker holds right now.
package struct DashboardRunning: Sendable, Equatable {
    package var owner: Int64
    package var taskID: Int64
    package var kind: String
    package var queue: String
    package init(owner: Int64, taskID: Int64, kind: String, queue: String) {
        self.owner = owner; self.taskID = taskID; self.kind = kind; self.queue = queue
    }
}

/// Failed tasks that share a kind and the first line of their error.
package struct DashboardFailureGroup: Sendable, Equatable {
    package var kind: String
    package var firstLine: String
    package var count: Int64
    package var firstSeen: Timestamp?
    package var lastSeen: Timestamp?
    package var newestID: Int64
    package init(kind: String, firstLine: String, count: Int64, firstSeen: Timestamp?, lastSeen: Timestamp?, newestID: Int64) {
        self.kind = kind; self.firstLine = firstLine; self.count = count; self.firstSeen = firstSeen; self.lastSeen = lastSeen
        self.newestID = newestID
    }
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
    /// Set by the tasks page: any filter (state, queue, kind, search) looks at
    /// the newest `scanLimit` rows below `beforeID` only, since a filter that
    /// matches few rows would otherwise walk the whole table; the page links on
    /// to the rows below. The API and the actions on a filter read every row.
    package var boundedScan = false
    package init() {}

    package var isSearch: Bool { jsonPath != nil || errorText != nil }
    /// Whether the listing reads only the newest `scanLimit` rows.
    package var scansNewestOnly: Bool {
        isSearch || (boundedScan && (state != nil || queue != nil || kind != nil))
    }

    /// The lowest id a bounded listing reads, given the table's highest id: the
    /// scan limit's worth of ids below `beforeID` (or the newest); nil when the
    /// table is smaller than that.
    package func scanFloor(newest: Int64) -> Int64? {
        let top = beforeID.map { $0 - 1 } ?? newest
        let floor = top - Int64(scanLimit) + 1
        return floor > 1 ? floor : nil
    }
}

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

    /// Adds another count of the same buckets.
    package mutating func add(_ o: BucketCounts) {
        for i in counts.indices where i < o.counts.count { counts[i] += o.counts[i] }
        sum += o.sum
    }
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
    /// The latest finish among the rows added (nil: none finished).
    package var newestFinish: Timestamp?
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
    package init(name: String, lines: Int64, states: [TaskState: Int64], purged: Int64, firstTaskID: Int64, lastTaskID: Int64,
                 createdAt: Timestamp?, lastFinishedAt: Timestamp?) {
        self.name = name; self.lines = lines; self.states = states; self.purged = purged; self.firstTaskID = firstTaskID
        self.lastTaskID = lastTaskID; self.createdAt = createdAt; self.lastFinishedAt = lastFinishedAt
    }
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
    package init() {}
}


/// How a store adds the rows of one id range to the aggregate: the same for
/// every engine, whatever SQL grouped them.
extension DashboardAggregate {
    /// `count` tasks of one queue, kind and state; a succeeded task counts as a
    /// succeeded attempt. Duration and wait buckets are nil for a task that has
    /// none (not succeeded; never started).
    package mutating func addTasks(queue: String, kind: String, state: String, count n: Int64,
                                   durationBucket: Int?, durationSum: Double, waitBucket: Int?, waitSum: Double) {
        let qk = queue + "\u{0}" + kind
        tasks[qk + "\u{0}" + state, default: 0] += n
        if state == "succeeded" { attempts[qk + "\u{0}succeeded", default: 0] += n }
        if let d = durationBucket {
            attemptDuration[qk, default: BucketCounts(buckets: attemptDurationBuckets.count)].counts[d] += n
            attemptDuration[qk]!.sum += max(0, durationSum)
        }
        if let w = waitBucket {
            wait[queue, default: BucketCounts(buckets: taskWaitBuckets.count)].counts[w] += n
            wait[queue]!.sum += max(0, waitSum)
        }
    }

    /// Tasks finished in one minute ("2026-12-07T16:51"), `lastMinute` of them in the last 60 s.
    package mutating func addFinished(queue: String, state: String, minute: String, count n: Int64, lastMinute: Int64) {
        var row = minutes[minute] ?? DashboardMinute(minute: minute, succeeded: 0, failed: 0)
        if state == "succeeded" { row.succeeded += n } else if state == "failed" { row.failed += n }
        minutes[minute] = row
        finishedLastMinute[queue, default: 0] += lastMinute
    }

    /// Failed tasks of one kind and first line of error.
    package mutating func addFailures(kind: String, firstLine: String, count n: Int64, firstSeen: Timestamp?, lastSeen: Timestamp?,
                                      newestID: Int64) {
        let key = kind + "\u{0}" + firstLine
        guard var g = failureGroups[key] else {
            failureGroups[key] = DashboardFailureGroup(kind: kind, firstLine: firstLine, count: n, firstSeen: firstSeen,
                                                       lastSeen: lastSeen, newestID: newestID)
            return
        }
        g.count += n
        if let firstSeen, g.firstSeen.map({ firstSeen < $0 }) ?? true { g.firstSeen = firstSeen }
        if let lastSeen, g.lastSeen.map({ lastSeen > $0 }) ?? true { g.lastSeen = lastSeen }
        g.newestID = max(g.newestID, newestID)
        failureGroups[key] = g
    }

    /// Adds the figures of other rows (another id range).
    package mutating func merge(_ o: DashboardAggregate) {
        tasks.merge(o.tasks, uniquingKeysWith: +)
        attempts.merge(o.attempts, uniquingKeysWith: +)
        for (k, b) in o.attemptDuration { attemptDuration[k, default: BucketCounts(buckets: attemptDurationBuckets.count)].add(b) }
        for (k, b) in o.wait { wait[k, default: BucketCounts(buckets: taskWaitBuckets.count)].add(b) }
        for (k, m) in o.minutes { minutes[k] = m.adding(minutes[k]) }
        finishedLastMinute.merge(o.finishedLastMinute, uniquingKeysWith: +)
        for g in o.failureGroups.values {
            addFailures(kind: g.kind, firstLine: g.firstLine, count: g.count, firstSeen: g.firstSeen, lastSeen: g.lastSeen, newestID: g.newestID)
        }
        addLatestFailed(o.latestFailed)
        noteFinish(o.newestFinish)
    }

    /// Keeps the latest finish.
    package mutating func noteFinish(_ t: Timestamp?) {
        if let t, newestFinish.map({ t > $0 }) ?? true { newestFinish = t }
    }

    /// Failed tasks as (finished_at in ISO 8601, id): the newest 10 are kept.
    package mutating func addLatestFailed(_ latest: [(String, Int64)]) {
        latestFailed = Array((latestFailed + latest).sorted { $0.0 > $1.0 }.prefix(10))
    }

    /// `count` attempts from the history with one outcome; `durationBucket` nil
    /// when the attempt has no start time.
    package mutating func addAttempts(queue: String, kind: String, outcome: String, count n: Int64, durationBucket: Int?, durationSum: Double) {
        let qk = queue + "\u{0}" + kind
        attempts[qk + "\u{0}" + outcome, default: 0] += n
        // A released attempt was put back at shutdown, not run to an end.
        if let d = durationBucket, outcome != "released" {
            attemptDuration[qk, default: BucketCounts(buckets: attemptDurationBuckets.count)].counts[d] += n
            attemptDuration[qk]!.sum += max(0, durationSum)
        }
    }
}
