import TaskQueue

/// retry, cancel, purge, pause and attempt history (TaskOperationsStore).
extension SQLiteTaskStore {
    package func attempts(of taskID: Int64) throws -> [TaskAttempt] {
        try db.prepare("""
            SELECT outcome, attempt, started_at, finished_at, worker_pid, worker_host, error, stderr
            FROM (SELECT id AS seq, outcome, attempt, started_at, finished_at, worker_pid, worker_host, error, NULL AS stderr
                  FROM task_attempts WHERE task_id = ?1
                  UNION ALL
                  SELECT 9223372036854775807, state, attempts, started_at,
                         CASE WHEN state = 'succeeded' THEN finished_at END, worker_pid, worker_host, NULL, stderr
                  FROM tasks WHERE id = ?1 AND (state = 'running' OR state = 'succeeded') AND kind <> 'taskq.stop')
            ORDER BY seq
            """).bind(.int(taskID)).rows { r in
            TaskAttempt(outcome: r.string(0), attempt: r.int(1), startedAt: r.text(2).flatMap { Timestamp(iso: $0) },
                        finishedAt: r.text(3).flatMap { Timestamp(iso: $0) }, workerPID: r.optionalInt(4),
                        workerHost: r.text(5), error: r.text(6), stderr: r.text(7))
        }
    }

    package func queuedCounts(ids: [Int64]?) throws -> [(queue: String, kind: String, count: Int64)] {
        let s: Statement
        if let ids {
            s = try db.prepare("""
                SELECT queue, kind, count(*) FROM tasks WHERE id IN (SELECT value FROM json_each(?)) AND state = 'queued'
                  AND kind <> 'taskq.stop' GROUP BY queue, kind ORDER BY queue, kind
                """)
            s.bind(1, "[" + ids.map(String.init).joined(separator: ",") + "]")
        } else {
            // Through the two partial indexes of queued tasks, so a table full of
            // finished tasks is not scanned (status and top run this every look).
            s = try db.prepare("""
                SELECT queue, kind, count(*) FROM (
                    SELECT queue, kind FROM tasks INDEXED BY tasks_ready WHERE state = 'queued' AND run_at = ''
                    UNION ALL
                    SELECT queue, kind FROM tasks INDEXED BY tasks_delayed WHERE state = 'queued' AND run_at > '')
                WHERE kind <> 'taskq.stop' GROUP BY queue, kind ORDER BY queue, kind
                """)
        }
        return try s.rows { (queue: $0.string(0), kind: $0.string(1), count: $0.int(2)) }
    }

    private func state(of id: Int64) throws -> TaskState? {
        try db.prepare("SELECT state FROM tasks WHERE id = ? AND kind <> 'taskq.stop'").bind(.int(id))
            .firstRow { TaskState(rawValue: $0.string(0)) ?? .queued }
    }

    package func states(of ids: [Int64]) throws -> [Int64: TaskState] {
        try db.readTransaction {
            let s = try db.prepare("SELECT state FROM tasks WHERE id = ? AND kind <> 'taskq.stop'")
            var out: [Int64: TaskState] = [:]
            out.reserveCapacity(ids.count)
            for id in ids {
                s.reset()
                s.bind(1, id)
                if let state = try s.firstRow({ TaskState(rawValue: $0.string(0)) ?? .queued }) { out[id] = state }
            }
            return out
        }
    }

    package func retryTasks(_ ids: [Int64], now: Timestamp) throws -> [TaskChange] {
        try db.writeTransaction {
            // Oldest first: a task runs --after older ones only, so a dependency
            // retried in the same call is queued before its dependants look at it.
            try TaskChange.eachOnce(ids, order: <) { try retryTask($0, now: now) }
        }
    }


    private func retryTask(_ id: Int64, now: Timestamp) throws -> TaskChange {
        guard let before = try state(of: id) else { return TaskChange(id: id, before: nil, after: nil) }
        guard before == .failed || before == .cancelled else {
            return .notRetried(id, before)
        }
        // What it still waits for (--after): a cancelled task keeps these rows. As at
        // enqueue, a dependency that failed, was cancelled or is gone means it could
        // never run; one that is queued or running blocks it again.
        let deps = try db.prepare("""
            SELECT d.depends_on, t.state FROM task_dependencies d LEFT JOIN tasks t ON t.id = d.depends_on
            WHERE d.task_id = ? ORDER BY d.depends_on
            """).bind(.int(id)).rows { (id: $0.int(0), state: $0.text(1)) }
        if let dead = deps.first(where: { $0.state == nil || $0.state == "failed" || $0.state == "cancelled" }) {
            let what = dead.state.map { "is \($0)" } ?? "no longer exists"
            return TaskChange(id: id, before: before, after: nil,
                              note: "task \(id) is to run after task \(dead.id), which \(what); not retried (retry task \(dead.id) first, or both together)")
        }
        let blocked = deps.contains { $0.state == "queued" || $0.state == "running" }
        do {
            try db.prepare("""
                UPDATE tasks SET state = 'queued', attempts = 0, run_at = ?, finished_at = NULL, owner = NULL, result = NULL
                WHERE id = ? AND (state = 'failed' OR state = 'cancelled')
                """).bind(.ts(blocked ? .blocked : now), .int(id)).run()
        } catch let e as TaskQueueError where e.sqliteError?.extendedCode == SQLiteError.constraintUnique {
            let key = try db.prepare("SELECT unique_key FROM tasks WHERE id = ?").bind(.int(id)).firstRow { $0.string(0) } ?? ""
            let holder = try db.prepare("SELECT id FROM tasks WHERE unique_key = ? AND (state = 'queued' OR state = 'running')")
                .bind(.text(key)).firstRow { $0.int(0) }
            return TaskChange(id: id, before: before, after: nil,
                              note: "task \(id) has unique key \(JSON.quote(key)), held by task \(holder.map(String.init) ?? "?") now; not retried")
        }
        // Rows of dependencies that succeeded would keep it blocked for ever.
        if deps.contains(where: { $0.state == "succeeded" }) {
            try db.prepare("""
                DELETE FROM task_dependencies WHERE task_id = ? AND depends_on IN (SELECT id FROM tasks WHERE state = 'succeeded')
                """).bind(.int(id)).run()
        }
        return TaskChange(id: id, before: before, after: .queued)
    }

    package func taskIDs(state: TaskState, queue: String?, kind: String?) throws -> [Int64] {
        var sql = "SELECT id FROM tasks WHERE state = ? AND kind <> 'taskq.stop'"
        var values: [SQLValue] = [.text(state.rawValue)]
        if let queue { sql += " AND queue = ?"; values.append(.text(queue)) }
        if let kind { sql += " AND kind = ?"; values.append(.text(kind)) }
        return try db.prepare(sql + " ORDER BY id").bind(values).rows { $0.int(0) }
    }

    package func cancelTasks(_ ids: [Int64], reason: String, now: Timestamp) throws -> [TaskChange] {
        try db.writeTransaction {
            // Newest first: a task's dependants are newer, so one named in the same
            // call is cancelled as asked before its dependency's cascade reaches it.
            try TaskChange.eachOnce(ids, order: >) { try cancelTask($0, reason: reason, now: now) }
        }
    }

    private func cancelTask(_ id: Int64, reason: String, now: Timestamp) throws -> TaskChange {
        guard let before = try state(of: id) else { return TaskChange(id: id, before: nil, after: nil) }
        switch before {
        case .queued:
            try db.prepare("""
                UPDATE tasks SET state = 'cancelled', finished_at = ?, last_error = ? WHERE id = ? AND state = 'queued'
                """).bind(.ts(now), .text(reason), .int(id)).run()
        case .running:
            // Keep the attempt in hand in the history, then take the task from
            // its worker: its fence (owner, attempt, state) no longer matches.
            try db.prepare("""
                INSERT INTO task_attempts (task_id, attempt, worker_pid, worker_host, started_at, finished_at, outcome, error)
                SELECT id, attempts, worker_pid, worker_host, started_at, ?, 'cancelled', ? FROM tasks WHERE id = ?
                """).bind(.ts(now), .text(reason), .int(id)).run()
            try db.prepare("""
                UPDATE tasks SET state = 'cancelled', owner = NULL, finished_at = ?, last_error = ? WHERE id = ? AND state = 'running'
                """).bind(.ts(now), .text(reason), .int(id)).run()
        default:
            return TaskChange(id: id, before: before, after: nil,
                              note: "task \(id) is \(before.rawValue); only queued or running tasks can be cancelled")
        }
        // Its task_dependencies rows stay: a retry makes it wait for them again.
        let dependants = try cancelDependants(of: id, reason: Self.cancelledDependency(id), now: now)
        return TaskChange(id: id, before: before, after: .cancelled, dependantsCancelled: dependants)
    }

    package func purgeTasks(states: [TaskState], finishedBefore before: Timestamp, limit: Int) throws -> Int {
        let finished = states.filter(\.isFinished)
        if finished.isEmpty || limit < 1 { return 0 }
        let stateSQL = finished.map { "state = '\($0.rawValue)'" }.joined(separator: " OR ")
        // Find candidates in a read snapshot (a scan: no index on finished_at, which
        // would cost a write per finished task), then delete them by id in one short
        // write transaction, checking again: a task retried in between stays.
        let ids = try db.readTransaction {
            try db.prepare("""
                SELECT id FROM tasks WHERE finished_at < ? AND (\(stateSQL)) ORDER BY id LIMIT ?
                """).bind(.ts(before), .int(Int64(limit))).rows { $0.int(0) }
        }
        if ids.isEmpty { return 0 }
        return try db.writeTransaction {
            let del = try db.prepare("DELETE FROM tasks WHERE id = ?1 AND finished_at < ?2 AND (\(stateSQL))")
            let history = try db.prepare("DELETE FROM task_attempts WHERE task_id = ?")
            // Only its own waits go: rows naming it as a dependency belong to tasks
            // cancelled because of it, which a retry then refuses to revive.
            let deps = try db.prepare("DELETE FROM task_dependencies WHERE task_id = ?")
            var n = 0
            var top: Int64 = 0
            for id in ids {
                try del.bind(.int(id), .ts(before)).run()
                if db.changes == 1 {
                    n += 1
                    top = max(top, id)
                    try history.bind(.int(id)).run()
                    try deps.bind(.int(id)).run()
                }
            }
            if n > 0 { try keepHighWater(deleted: top) }
            return n
        }
    }

    /// A new task's id is max(id) + 1: when purge has deleted the newest tasks, the
    /// highest id it deleted goes in `task_id_high_water` (migrations/0007), and
    /// new tasks are numbered above it, so no id is given out twice. A mark that
    /// some task has passed since is stale: deleted here.
    private func keepHighWater(deleted top: Int64) throws {
        try db.exec("DELETE FROM task_id_high_water WHERE max_id <= coalesce((SELECT max(id) FROM tasks), 0)")
        try db.prepare("""
            INSERT INTO task_id_high_water (one, max_id) SELECT 1, ?1 WHERE ?1 > coalesce((SELECT max(id) FROM tasks), 0)
            ON CONFLICT (one) DO UPDATE SET max_id = max(max_id, excluded.max_id)
            """).bind(.int(top)).run()
    }

    package func stillRunning(taskID: Int64, owner: Int64, attempt: Int64) throws -> Bool {
        try stillRunningStatement.bind(.int(taskID), .int(owner), .int(attempt)).firstRow { _ in true } ?? false
    }

    package func setPaused(queue: String, paused: Bool, now: Timestamp) throws -> Bool {
        try db.writeTransaction {
            if paused {
                try db.prepare("""
                    INSERT INTO queues (name, paused_at) VALUES (?1, ?2)
                    ON CONFLICT (name) DO UPDATE SET paused_at = ?2 WHERE paused_at IS NULL
                    """).bind(.text(queue), .ts(now)).run()
            } else {
                try db.prepare("UPDATE queues SET paused_at = NULL WHERE name = ? AND paused_at IS NOT NULL").bind(.text(queue)).run()
            }
            return db.changes == 1
        }
    }

    package func queueSettings() throws -> [QueueSetting] {
        try db.prepare("SELECT name, paused_at FROM queues ORDER BY name").rows { r in
            QueueSetting(name: r.string(0), pausedAt: r.text(1).flatMap { Timestamp(iso: $0) })
        }
    }
}
