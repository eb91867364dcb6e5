import TaskQueue

/// retry, cancel, purge, pause and attempt history; `enqueueTasks` is with the
/// inserts (PostgresTaskStore+Insert.swift).
extension PostgresTaskStore: TaskOperationsStore {
    package func attempts(of taskID: Int64) throws -> [TaskAttempt] {
        try pg {
            let r = try db.exec("""
                SELECT outcome, attempt, started_at, finished_at, worker_pid, worker_host, error, stderr
                FROM (SELECT id AS seq, outcome, attempt, started_at, finished_at, worker_pid, worker_host, error, NULL AS stderr
                      FROM task_attempts WHERE task_id = $1
                      UNION ALL
                      SELECT 9223372036854775807, state, attempts, started_at,
                             CASE WHEN state = 'succeeded' THEN finished_at END, worker_pid, worker_host, NULL, stderr
                      FROM tasks WHERE id = $1 AND state IN ('running', 'succeeded') AND kind <> 'taskq.stop') a
                ORDER BY seq
                """, [.int(taskID)])
            return r.rows { i in
                TaskAttempt(outcome: r.string(i, 0), attempt: r.int(i, 1), startedAt: r.optionalTimestamp(i, 2),
                            finishedAt: r.optionalTimestamp(i, 3), workerPID: r.optionalInt(i, 4), workerHost: r.text(i, 5),
                            error: r.text(i, 6), stderr: r.text(i, 7))
            }
        }
    }

    /// The task's state, its row locked for the rest of the transaction (a worker
    /// finishing it meanwhile waits, or has finished: no decision on a stale state).
    private func lockedState(of id: Int64) throws -> TaskState? {
        let r = try db.exec("SELECT state FROM tasks WHERE id = $1 AND kind <> 'taskq.stop' FOR NO KEY UPDATE", [.int(id)])
        return r.count == 1 ? TaskState(rawValue: r.string(0, 0)) ?? .queued : nil
    }

    package func states(of ids: [Int64]) throws -> [Int64: TaskState] {
        try pg {
            let r = try db.exec("SELECT id, state FROM tasks WHERE id = ANY($1) AND kind <> 'taskq.stop'", [.ints(ids)])
            var out: [Int64: TaskState] = [:]
            out.reserveCapacity(r.count)
            for i in 0..<r.count { out[r.int(i, 0)] = TaskState(rawValue: r.string(i, 1)) ?? .queued }
            return out
        }
    }

    package func queuedCounts(ids: [Int64]?) throws -> [(queue: String, kind: String, count: Int64)] {
        try pg {
            let sql = ids == nil ? Self.queuedCountsSQL : """
                SELECT queue, kind, count(*) FROM tasks WHERE id = ANY($1) AND state = 'queued' AND kind <> 'taskq.stop'
                GROUP BY queue, kind ORDER BY queue, kind
                """
            let r = try db.exec(sql, ids.map { [.ints($0)] } ?? [])
            return (0..<r.count).map { (queue: r.string($0, 0), kind: r.string($0, 1), count: r.int($0, 2)) }
        }
    }

    /// Every queued task, counted by queue and kind: one arm per partial index
    /// (tasks_ready, tasks_delayed). A plain `state = 'queued'` implies neither
    /// index's predicate, and the planner would read the whole table, finished
    /// tasks and all.
    static let queuedCountsSQL = """
        SELECT queue, kind, count(*) FROM (
            SELECT queue, kind FROM tasks WHERE state = 'queued' AND run_at IS NULL AND kind <> 'taskq.stop'
            UNION ALL
            SELECT queue, kind FROM tasks WHERE state = 'queued' AND run_at IS NOT NULL AND kind <> 'taskq.stop') q
        GROUP BY queue, kind ORDER BY queue, kind
        """

    package func retryTasks(_ ids: [Int64], now: Timestamp) throws -> [TaskChange] {
        try write(begin: [.begin, PGStatement(sql: PostgresChangeSignal.notifyIfWaiting)]) {
            // Oldest first: a task runs --after older ones only, so a dependency
            // retried in the same call is queued before its dependants look at it.
            try TaskChange.eachOnce(ids, order: <) { try retryTask($0, now: now) }
        }
    }


    private func retryTask(_ id: Int64, now: Timestamp) throws -> TaskChange {
        guard let before = try lockedState(of: id) else { return TaskChange(id: id, before: nil, after: nil) }
        guard before == .failed || before == .cancelled else {
            return .notRetried(id, before)
        }
        // What it still waits for (--after): a cancelled task keeps these rows. As at
        // enqueue, a dependency that failed, was cancelled or is gone means it could
        // never run; one that is queued or running blocks it again. Locked, as at
        // enqueue, so none finishes between this read and the task's new state.
        let d = try db.exec("SELECT depends_on FROM task_dependencies WHERE task_id = $1 ORDER BY depends_on", [.int(id)])
        let waitsFor = d.rows { d.int($0, 0) }
        var states: [Int64: String] = [:]
        if !waitsFor.isEmpty {
            let r = try db.exec("SELECT id, state FROM tasks WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE", [.ints(waitsFor)])
            for i in 0..<r.count { states[r.int(i, 0)] = r.string(i, 1) }
        }
        let deps = waitsFor.map { (id: $0, state: states[$0]) }
        if let dead = deps.first(where: { $0.state == nil || $0.state == "failed" || $0.state == "cancelled" }) {
            let what = dead.state.map { "is \($0)" } ?? "no longer exists"
            return TaskChange(id: id, before: before, after: nil,
                              note: "task \(id) is to run after task \(dead.id), which \(what); not retried (retry task \(dead.id) first, or both together)")
        }
        let blocked = deps.contains { $0.state == "queued" || $0.state == "running" }
        // A savepoint: a unique key held by another task refuses this one row, and
        // PostgreSQL would otherwise abort the whole transaction.
        try db.run(script: "SAVEPOINT retry")
        do {
            try db.exec("""
                UPDATE tasks SET state = 'queued', attempts = 0, run_at = $1, finished_at = NULL, owner = NULL, result = NULL
                WHERE id = $2 AND state IN ('failed', 'cancelled')
                """, [.ts(blocked ? .blocked : now), .int(id)])
            try db.run(script: "RELEASE SAVEPOINT retry")
        } catch let e as PostgresError where e.sqlstate == "23505" {
            try db.run(script: "ROLLBACK TO SAVEPOINT retry")
            let key = try db.exec("SELECT unique_key FROM tasks WHERE id = $1", [.int(id)]).text(0, 0) ?? ""
            let holder = try db.exec("SELECT id FROM tasks WHERE unique_key = $1 AND state IN ('queued', 'running')", [.text(key)])
            return TaskChange(id: id, before: before, after: nil,
                              note: "task \(id) has unique key \(JSON.quote(key)), held by task \(holder.count > 0 ? String(holder.int(0, 0)) : "?") now; not retried")
        }
        // Rows of dependencies that succeeded would keep it blocked for ever.
        if deps.contains(where: { $0.state == "succeeded" }) {
            try db.exec("""
                DELETE FROM task_dependencies WHERE task_id = $1 AND depends_on IN (SELECT id FROM tasks WHERE state = 'succeeded')
                """, [.int(id)])
        }
        return TaskChange(id: id, before: before, after: .queued)
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
            // Newest first: a task's dependants are newer, so one named in the same
            // call is cancelled as asked before its dependency's cascade reaches it.
            try TaskChange.eachOnce(ids, order: >) { try cancelTask($0, reason: reason, now: now) }
        }
    }

    private func cancelTask(_ id: Int64, reason: String, now: Timestamp) throws -> TaskChange {
        guard let before = try lockedState(of: id) else { return TaskChange(id: id, before: nil, after: nil) }
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
                UPDATE tasks SET state = 'cancelled', owner = NULL, finished_at = $1, last_error = $2 WHERE id = $3 AND state = 'running'
                """, [.ts(now), .text(reason), .int(id)])
        default:
            return TaskChange(id: id, before: before, after: nil,
                              note: "task \(id) is \(before.rawValue); only queued or running tasks can be cancelled")
        }
        // Its task_dependencies rows stay: a retry makes it wait for them again.
        let dependants = try cancelDependants(of: id, reason: Self.cancelledDependency(id), now: now)
        return TaskChange(id: id, before: before, after: .cancelled, dependantsCancelled: dependants)
    }

    package func purgeTasks(states: [TaskState], finishedBefore before: Timestamp, limit: Int) throws -> Int {
        let finished = states.filter(\.isFinished).map(\.rawValue)
        if finished.isEmpty || limit < 1 { return 0 }
        // No index on finished_at (it would cost a write per finished task): the
        // candidates come from a scan, then go by id in one short transaction.
        // Every match goes, the newest too: the identity sequence never gives an id
        // out twice (SQLite keeps a high-water mark for that, migrations/0007).
        let condition = "finished_at < $2 AND state = ANY($3)"
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
                // Only their own waits go: rows naming one as a dependency belong to
                // tasks cancelled because of it, which a retry then refuses to revive.
                try db.exec("DELETE FROM task_dependencies WHERE task_id = ANY($1)", [.ints(deleted)])
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
            let resumed = try db.exec("UPDATE queues SET paused_at = NULL WHERE name = $1 AND paused_at IS NOT NULL",
                                      [.text(queue)]).changes == 1
            // Its queued tasks are claimable now: wake the idle workers.
            if resumed { try db.exec(PostgresChangeSignal.notifyIfWaiting) }
            return resumed
        }
    }

    package func queueSettings() throws -> [QueueSetting] {
        try pg {
            let r = try db.exec("SELECT name, paused_at FROM queues ORDER BY name")
            return r.rows { QueueSetting(name: r.string($0, 0), pausedAt: r.optionalTimestamp($0, 1)) }
        }
    }
}
