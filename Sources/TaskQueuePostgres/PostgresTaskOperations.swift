import TaskQueue

/// retry, cancel, purge, pause and attempt history; `enqueueTasks` is with the
/// inserts (PostgresTaskStore+Insert.swift).
extension PostgresTaskStore: TaskOperationsStore {
    package func attempts(of taskID: Int64) throws -> [TaskAttempt] {
        try pg {
            let r = try db.exec("""
                SELECT outcome, attempt, started_at, finished_at, worker_pid, worker_host, error
                FROM (SELECT id AS seq, outcome, attempt, started_at, finished_at, worker_pid, worker_host, error
                      FROM task_attempts WHERE task_id = $1
                      UNION ALL
                      SELECT 9223372036854775807, state, attempts, started_at,
                             CASE WHEN state = 'succeeded' THEN finished_at END, worker_pid, worker_host, NULL
                      FROM tasks WHERE id = $1 AND state IN ('running', 'succeeded') AND kind <> 'taskq.stop') a
                ORDER BY seq
                """, [.int(taskID)])
            return r.rows { i in
                TaskAttempt(outcome: r.string(i, 0), attempt: r.int(i, 1), startedAt: r.optionalTimestamp(i, 2),
                            finishedAt: r.optionalTimestamp(i, 3), workerPID: r.optionalInt(i, 4), workerHost: r.text(i, 5),
                            error: r.text(i, 6))
            }
        }
    }

    /// The task's state, its row locked for the rest of the transaction (a worker
    /// finishing it meanwhile waits, or has finished: no decision on a stale state).
    private func lockedState(of id: Int64) throws -> TaskState? {
        let r = try db.exec("SELECT state FROM tasks WHERE id = $1 AND kind <> 'taskq.stop' FOR NO KEY UPDATE", [.int(id)])
        return r.count == 1 ? TaskState(rawValue: r.string(0, 0)) ?? .queued : nil
    }

    package func retryTasks(_ ids: [Int64], now: Timestamp) throws -> [TaskChange] {
        try write {
            var out: [TaskChange] = []
            for id in ids {
                guard let before = try lockedState(of: id) else { out.append(TaskChange(id: id, before: nil, after: nil)); continue }
                guard before == .failed || before == .cancelled else {
                    out.append(TaskChange(id: id, before: before, after: nil,
                                          note: "task \(id) is \(before.rawValue); only failed or cancelled tasks can be retried"))
                    continue
                }
                // A savepoint: a unique key held by another task refuses this one
                // row, and PostgreSQL would otherwise abort the whole transaction.
                try db.run(script: "SAVEPOINT retry")
                do {
                    try db.exec("""
                        UPDATE tasks SET state = 'queued', attempts = 0, run_at = $1, finished_at = NULL, owner = NULL, result = NULL
                        WHERE id = $2 AND state IN ('failed', 'cancelled')
                        """, [.ts(now), .int(id)])
                    try db.run(script: "RELEASE SAVEPOINT retry")
                    out.append(TaskChange(id: id, before: before, after: .queued))
                } catch let e as PostgresError where e.sqlstate == "23505" {
                    try db.run(script: "ROLLBACK TO SAVEPOINT retry")
                    let key = try db.exec("SELECT unique_key FROM tasks WHERE id = $1", [.int(id)]).text(0, 0) ?? ""
                    let holder = try db.exec("SELECT id FROM tasks WHERE unique_key = $1 AND state IN ('queued', 'running')",
                                             [.text(key)])
                    out.append(TaskChange(id: id, before: before, after: nil,
                                          note: "task \(id) has unique key \(JSON.quote(key)), held by task \(holder.count > 0 ? String(holder.int(0, 0)) : "?") now; not retried"))
                }
            }
            return out
        }
    }

    package func taskIDs(state: TaskState, queue: String?, kind: String?) throws -> [Int64] {
        var sql = "SELECT id FROM tasks WHERE state = $1 AND kind <> 'taskq.stop'"
        var values: [PGValue] = [.text(state.rawValue)]
        if let queue { values.append(.text(queue)); sql += " AND queue = $\(values.count)" }
        if let kind { values.append(.text(kind)); sql += " AND kind = $\(values.count)" }
        return try pg { let r = try db.exec(sql + " ORDER BY id", values); return r.rows { r.int($0, 0) } }
    }

    package func cancelTasks(_ ids: [Int64], reason: String, now: Timestamp) throws -> [TaskChange] {
        try write {
            var out: [TaskChange] = []
            for id in ids {
                guard let before = try lockedState(of: id) else { out.append(TaskChange(id: id, before: nil, after: nil)); continue }
                switch before {
                case .queued:
                    try db.exec("UPDATE tasks SET state = 'cancelled', finished_at = $1, last_error = $2 WHERE id = $3 AND state = 'queued'",
                                [.ts(now), .text(reason), .int(id)])
                case .running:
                    // Keep the attempt in hand in the history, then take the task from
                    // its worker: its fence (owner, attempt, state) no longer matches.
                    try db.exec("""
                        INSERT INTO task_attempts (task_id, attempt, worker_pid, worker_host, started_at, finished_at, outcome, error)
                        SELECT id, attempts, worker_pid, worker_host, started_at, $1, 'cancelled', $2 FROM tasks WHERE id = $3
                        """, [.ts(now), .text(reason), .int(id)])
                    try db.exec("""
                        UPDATE tasks SET state = 'cancelled', owner = NULL, finished_at = $1, last_error = $2
                        WHERE id = $3 AND state = 'running'
                        """, [.ts(now), .text(reason), .int(id)])
                default:
                    out.append(TaskChange(id: id, before: before, after: nil,
                                          note: "task \(id) is \(before.rawValue); only queued or running tasks can be cancelled"))
                    continue
                }
                try db.exec("DELETE FROM task_dependencies WHERE task_id = $1", [.int(id)])
                let dependants = try cancelDependants(of: id, reason: "task \(id), which it was to run after, was cancelled", now: now)
                out.append(TaskChange(id: id, before: before, after: .cancelled, dependantsCancelled: dependants))
            }
            return out
        }
    }

    package func purgeTasks(states: [TaskState], finishedBefore before: Timestamp, limit: Int) throws -> Int {
        let finished = states.filter(\.isFinished).map(\.rawValue)
        if finished.isEmpty || limit < 1 { return 0 }
        // No index on finished_at (it would cost a write per finished task): the
        // candidates come from a scan, then go by id in one short transaction.
        // The newest task is kept, as on SQLite (where ids come from max(id)).
        let condition = "finished_at < $2 AND state = ANY($3) AND id < (SELECT max(id) FROM tasks)"
        let ids = try pg {
            let r = try db.exec("SELECT id FROM tasks WHERE \(condition) ORDER BY id LIMIT $1",
                                [.int(Int64(limit)), .ts(before), .texts(finished)])
            return r.rows { r.int($0, 0) }
        }
        if ids.isEmpty { return 0 }
        return try write {
            let r = try db.exec("DELETE FROM tasks WHERE id = ANY($1) AND \(condition) RETURNING id",
                                [.ints(ids), .ts(before), .texts(finished)])
            let deleted = r.rows { r.int($0, 0) }
            if !deleted.isEmpty {
                try db.exec("DELETE FROM task_attempts WHERE task_id = ANY($1)", [.ints(deleted)])
                try db.exec("DELETE FROM task_dependencies WHERE depends_on = ANY($1)", [.ints(deleted)])
            }
            return deleted.count
        }
    }

    package func stillRunning(taskID: Int64, owner: Int64, attempt: Int64) throws -> Bool {
        try pg {
            try db.exec("SELECT 1 FROM tasks WHERE id = $1 AND owner = $2 AND attempts = $3 AND state = 'running'",
                        [.int(taskID), .int(owner), .int(attempt)]).count == 1
        }
    }

    package func setPaused(queue: String, paused: Bool, now: Timestamp) throws -> Bool {
        try write {
            if paused {
                return try db.exec("""
                    INSERT INTO queues (name, paused_at) VALUES ($1, $2)
                    ON CONFLICT (name) DO UPDATE SET paused_at = $2 WHERE queues.paused_at IS NULL
                    """, [.text(queue), .ts(now)]).changes == 1
            }
            return try db.exec("UPDATE queues SET paused_at = NULL WHERE name = $1 AND paused_at IS NOT NULL", [.text(queue)]).changes == 1
        }
    }

    package func queueSettings() throws -> [QueueSetting] {
        try pg {
            let r = try db.exec("SELECT name, paused_at FROM queues ORDER BY name")
            return r.rows { QueueSetting(name: r.string($0, 0), pausedAt: r.optionalTimestamp($0, 1)) }
        }
    }
}
