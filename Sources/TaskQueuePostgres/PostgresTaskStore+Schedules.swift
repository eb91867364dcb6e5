import TaskQueue

// Recurring schedules (`schedules`, `schedule_runs`), map groups (`task_groups`)
// and recent activity, as on SQLite (migrations/0003_schedules.sql).

extension PostgresTaskStore: ScheduleStore, TaskGroupStore, ActivityStore {
    // MARK: - schedules

    private static let scheduleColumns = """
        name, cron, tz, kind, payload, queue, priority, max_attempts, timeout_s, created_at, next_at, last_at, last_task_id,
        on_crash, backoff_base_s, backoff_cap_s
        """

    private func schedule(_ r: PGResult, _ i: Int) -> Schedule {
        Schedule(name: r.string(i, 0), cron: r.string(i, 1), timeZone: r.string(i, 2), kind: r.string(i, 3), payload: r.string(i, 4),
                 options: EnqueueOptions(queue: r.string(i, 5), priority: r.int(i, 6), maxAttempts: r.optionalInt(i, 7),
                                         timeout: r.optionalDouble(i, 8), onCrash: r.text(i, 13).flatMap(CrashPolicy.init(rawValue:)),
                                         backoffBase: r.optionalDouble(i, 14), backoffCap: r.optionalDouble(i, 15)),
                 createdAt: r.timestamp(i, 9), nextAt: r.timestamp(i, 10), lastAt: r.optionalTimestamp(i, 11),
                 lastTaskID: r.optionalInt(i, 12))
    }

    package func addSchedule(_ s: Schedule, replace: Bool, now: Timestamp) throws -> Bool {
        try write {
            // Locked (or, when new, inserted) by the statement that decides: two
            // `schedule add` of one name cannot both find it absent.
            let exists = try db.exec("SELECT 1 FROM schedules WHERE name = $1 FOR UPDATE", [.text(s.name)]).count == 1
            if exists && !replace {
                throw TaskQueueError.failed("schedule \(JSON.quote(s.name)) exists already: remove it first, or add --replace")
            }
            let o = s.options
            try db.exec("""
                INSERT INTO schedules (name, cron, tz, kind, payload, queue, priority, max_attempts, timeout_s, created_at, next_at,
                                       on_crash, backoff_base_s, backoff_cap_s)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
                ON CONFLICT (name) DO UPDATE SET cron = $2, tz = $3, kind = $4, payload = $5, queue = $6, priority = $7,
                    max_attempts = $8, timeout_s = $9, next_at = $11, on_crash = $12, backoff_base_s = $13, backoff_cap_s = $14
                """, [.text(s.name), .text(s.cron), .text(s.timeZone), .text(s.kind), .text(s.payload), .text(o.queue),
                      .int(o.priority), .opt(o.maxAttempts), .opt(o.timeout), .ts(now), .ts(s.nextAt),
                      .opt(o.onCrash?.rawValue), .opt(o.backoffBase), .opt(o.backoffCap)])
            return exists
        }
    }

    package func removeSchedule(named name: String) throws -> Bool {
        try write {
            let removed = try db.exec("DELETE FROM schedules WHERE name = $1", [.text(name)]).changes > 0
            try db.exec("DELETE FROM schedule_runs WHERE schedule = $1", [.text(name)])
            return removed
        }
    }

    package func schedules() throws -> [Schedule] {
        try pg { let r = try db.exec("SELECT \(Self.scheduleColumns) FROM schedules ORDER BY name"); return r.rows { schedule(r, $0) } }
    }

    package func nextScheduleTime() throws -> Timestamp? {
        try pg { try db.exec("SELECT min(next_at) FROM schedules").optionalTimestamp(0, 0) }
    }

    package func fireDueSchedules(now: Timestamp, plan: (Schedule) throws -> SchedulePlan) throws -> [FiredOccurrence] {
        try write(begin: Self.beginInsert) {
            // Due schedules another supervisor is firing right now are skipped: when
            // it commits they are no longer due. (A row it already fired and
            // committed is re-checked by the lock: its next_at moved on.)
            let r = try db.exec("""
                SELECT \(Self.scheduleColumns) FROM schedules WHERE next_at <= $1 ORDER BY next_at, name FOR UPDATE SKIP LOCKED
                """, [.ts(now)])
            let due = r.rows { schedule(r, $0) }
            var fired: [FiredOccurrence] = []
            for s in due {
                guard let p = try? plan(s) else { continue }
                let advance = "UPDATE schedules SET next_at = $1, last_at = $2, last_task_id = $3 WHERE name = $4 AND next_at = $5"
                let seen = try db.exec("SELECT task_id FROM schedule_runs WHERE schedule = $1 AND occurrence = $2",
                                       [.text(s.name), .ts(p.occurrence)])
                if seen.count == 1 {
                    // Recorded already (the schedule was re-added): only move next_at on.
                    try db.exec(advance, [.ts(p.next), .ts(p.occurrence), .int(seen.int(0, 0)), .text(s.name), .ts(s.nextAt)])
                    continue
                }
                let id = try insertRows([p.task], now: now)[0]
                try db.exec("INSERT INTO schedule_runs (schedule, occurrence, task_id, created_at) VALUES ($1, $2, $3, $4)",
                            [.text(s.name), .ts(p.occurrence), .int(id), .ts(now)])
                try db.exec(advance, [.ts(p.next), .ts(p.occurrence), .int(id), .text(s.name), .ts(s.nextAt)])
                fired.append(FiredOccurrence(schedule: s.name, occurrence: p.occurrence, taskID: id))
            }
            return fired
        }
    }

    // MARK: - groups

    static let groupLockKey: Int32 = 0x7471_6770   // "tqgp"

    package func createGroup(_ name: String, tasks: [NewTask], now: Timestamp) throws -> (ids: [Int64], created: Bool, restored: Int) {
        try write(begin: Self.beginInsert) {
            // One `map` of a name at a time: the second waits, then finds the group.
            try db.exec("SELECT pg_advisory_xact_lock(\(Self.groupLockKey), hashtext($1))", [.text(name)])
            let r = try db.exec("""
                SELECT g.position, g.task_id, EXISTS (SELECT 1 FROM tasks t WHERE t.id = g.task_id)
                FROM task_groups g WHERE g.group_name = $1 ORDER BY g.position
                """, [.text(name)])
            let existing = r.rows { (position: Int(r.int($0, 0)), id: r.int($0, 1), present: r.bool($0, 2)) }
            if !existing.isEmpty {
                guard existing.count == tasks.count else { return (existing.map(\.id), false, 0) }
                // Lines whose task was purged run again: their results are gone.
                var ids: [Int64] = []
                var restored = 0
                for e in existing {
                    if e.present { ids.append(e.id); continue }
                    let id = try insertRows([tasks[e.position - 1]], now: now)[0]
                    try db.exec("UPDATE task_groups SET task_id = $1 WHERE group_name = $2 AND position = $3",
                                [.int(id), .text(name), .int(Int64(e.position))])
                    ids.append(id)
                    restored += 1
                }
                return (ids, false, restored)
            }
            let ids = try insertRows(tasks, now: now)
            try db.exec("""
                INSERT INTO task_groups (group_name, position, task_id)
                SELECT $1, n, id FROM unnest($2::int8[]) WITH ORDINALITY AS x(id, n)
                """, [.text(name), .ints(ids)])
            return (ids, true, 0)
        }
    }

    package func groupTasks(_ name: String, from position: Int, limit: Int) throws -> [(position: Int, task: TaskRecord)] {
        try pg {
            let r = try db.exec("""
                SELECT \(Self.taskColumns("t.")), g.position FROM task_groups g JOIN tasks t ON t.id = g.task_id
                WHERE g.group_name = $1 AND g.position >= $2 ORDER BY g.position LIMIT $3
                """, [.text(name), .int(Int64(position)), .int(Int64(limit))])
            return r.rows { (position: Int(r.int($0, Self.taskColumnCount)), task: taskRecord(r, $0)) }
        }
    }

    package func groupCounts(_ name: String) throws -> [TaskState: Int64] {
        try pg {
            let r = try db.exec("""
                SELECT t.state, count(*) FROM task_groups g JOIN tasks t ON t.id = g.task_id WHERE g.group_name = $1 GROUP BY t.state
                """, [.text(name)])
            var out: [TaskState: Int64] = [:]
            for i in 0..<r.count { if let s = TaskState(rawValue: r.string(i, 0)) { out[s] = r.int(i, 1) } }
            return out
        }
    }

    package func requeueGroupFailures(_ name: String, options o: EnqueueOptions, now: Timestamp) throws -> Int {
        try write(begin: [.begin, PGStatement(sql: PostgresChangeSignal.notifyIfWaiting)]) {
            let inGroup = "kind = $3 AND id IN (SELECT task_id FROM task_groups WHERE group_name = $2)"
            // The re-run's options, resolved per kind as at enqueue.
            let options = "priority = $4, timeout_s = $5, max_attempts = $6, on_crash = $7, backoff_base_s = $8, backoff_cap_s = $9"
            let k = try db.exec("SELECT DISTINCT t.kind FROM task_groups g JOIN tasks t ON t.id = g.task_id WHERE g.group_name = $1",
                                [.text(name)])
            let kinds = k.rows { k.string($0, 0) }
            let policies = try kindPolicies(of: Set(kinds))
            var requeued = 0
            for kind in kinds {
                let p = o.storedPolicy(kind: policies[kind])
                let values: [PGValue] = [.ts(now), .text(name), .text(kind), .int(o.priority), .opt(o.timeout), .opt(p.maxAttempts),
                                         .opt(p.onCrash?.rawValue), .opt(p.backoffBase), .opt(p.backoffCap)]
                try db.exec("UPDATE tasks SET \(options) WHERE state = 'queued' AND \(inGroup)", values)
                requeued += try db.exec("""
                    UPDATE tasks SET state = 'queued', attempts = 0, run_at = $1, finished_at = NULL, result = NULL, owner = NULL,
                                     \(options)
                    WHERE state IN ('failed', 'cancelled') AND \(inGroup)
                    """, values).changes
            }
            return requeued
        }
    }

    // MARK: - activity

    package func finishedSince(_ since: Timestamp) throws -> [(queue: String, state: TaskState, count: Int64)] {
        try pg {
            let r = try db.exec("""
                SELECT queue, state, count(*) FROM tasks
                WHERE finished_at >= $1 AND kind <> 'taskq.stop' GROUP BY queue, state ORDER BY queue
                """, [.ts(since)])
            return r.rows { (queue: r.string($0, 0), state: TaskState(rawValue: r.string($0, 1)) ?? .failed, count: r.int($0, 2)) }
        }
    }
}
