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

    package func retryTasks(_ ids: [Int64], now: Timestamp) throws -> [TaskChange] {
        try db.writeTransaction {
            var out: [TaskChange] = []
            for id in ids {
                guard let before = try state(of: id) else { out.append(TaskChange(id: id, before: nil, after: nil)); continue }
                guard before == .failed || before == .cancelled else {
                    out.append(TaskChange(id: id, before: before, after: nil,
                                          note: "task \(id) is \(before.rawValue); only failed or cancelled tasks can be retried"))
                    continue
                }
                do {
                    try db.prepare("""
                        UPDATE tasks SET state = 'queued', attempts = 0, run_at = ?, finished_at = NULL, owner = NULL, result = NULL
                        WHERE id = ? AND (state = 'failed' OR state = 'cancelled')
                        """).bind(.ts(now), .int(id)).run()
                    out.append(TaskChange(id: id, before: before, after: .queued))
                } catch let e as TaskQueueError where e.message.contains("UNIQUE") || e.message.contains("unique") {
                    let key = try db.prepare("SELECT unique_key FROM tasks WHERE id = ?").bind(.int(id)).firstRow { $0.string(0) } ?? ""
                    let holder = try db.prepare("SELECT id FROM tasks WHERE unique_key = ? AND (state = 'queued' OR state = 'running')")
                        .bind(.text(key)).firstRow { $0.int(0) }
                    out.append(TaskChange(id: id, before: before, after: nil,
                                          note: "task \(id) has unique key \(JSON.quote(key)), held by task \(holder.map(String.init) ?? "?") now; not retried"))
                }
            }
            return out
        }
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
            var out: [TaskChange] = []
            for id in ids {
                guard let before = try state(of: id) else { out.append(TaskChange(id: id, before: nil, after: nil)); continue }
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
                    out.append(TaskChange(id: id, before: before, after: nil,
                                          note: "task \(id) is \(before.rawValue); only queued or running tasks can be cancelled"))
                    continue
                }
                try db.prepare("DELETE FROM task_dependencies WHERE task_id = ?").bind(.int(id)).run()
                let dependants = try cancelDependants(of: id, reason: "task \(id), which it was to run after, was cancelled", now: now)
                out.append(TaskChange(id: id, before: before, after: .cancelled, dependantsCancelled: dependants))
            }
            return out
        }
    }

    package func purgeTasks(states: [TaskState], finishedBefore before: Timestamp, limit: Int) throws -> Int {
        let finished = states.filter(\.isFinished)
        if finished.isEmpty || limit < 1 { return 0 }
        let stateSQL = finished.map { "state = '\($0.rawValue)'" }.joined(separator: " OR ")
        // Find candidates in a read snapshot (a scan: no index on finished_at, which
        // would cost a write per finished task), then delete them by id in one short
        // write transaction, checking again.
        let ids = try db.readTransaction {
            try db.prepare("""
                SELECT id FROM tasks WHERE finished_at < ? AND (\(stateSQL)) AND id < (SELECT max(id) FROM tasks)
                ORDER BY id LIMIT ?
                """).bind(.ts(before), .int(Int64(limit))).rows { $0.int(0) }
        }
        if ids.isEmpty { return 0 }
        return try db.writeTransaction {
            let del = try db.prepare("""
                DELETE FROM tasks WHERE id = ?1 AND finished_at < ?2 AND (\(stateSQL)) AND id < (SELECT max(id) FROM tasks)
                """)
            let history = try db.prepare("DELETE FROM task_attempts WHERE task_id = ?")
            let deps = try db.prepare("DELETE FROM task_dependencies WHERE depends_on = ?")
            var n = 0
            for id in ids {
                try del.bind(.int(id), .ts(before)).run()
                if db.changes == 1 {
                    n += 1
                    try history.bind(.int(id)).run()
                    try deps.bind(.int(id)).run()
                }
            }
            return n
        }
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
