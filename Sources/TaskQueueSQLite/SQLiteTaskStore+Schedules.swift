import TaskQueue

// Recurring schedules (table `schedules`, `schedule_runs`) and map groups
// (`task_groups`): see migrations/0003_schedules.sql.

extension SQLiteTaskStore: ScheduleStore, TaskGroupStore, ActivityStore {
    // MARK: - schedules

    private static let scheduleColumns = """
        name, cron, tz, kind, payload, queue, priority, max_attempts, timeout_s, created_at, next_at, last_at, last_task_id,
        on_crash, backoff_base_s, backoff_cap_s
        """

    private func schedule(_ r: Statement) -> Schedule {
        Schedule(name: r.string(0), cron: r.string(1), timeZone: r.string(2), kind: r.string(3), payload: r.string(4),
                 options: EnqueueOptions(queue: r.string(5), priority: r.int(6), maxAttempts: r.optionalInt(7), timeout: r.optionalDouble(8),
                                         onCrash: r.text(13).flatMap(CrashPolicy.init(rawValue:)),
                                         backoffBase: r.optionalDouble(14), backoffCap: r.optionalDouble(15)),
                 createdAt: Timestamp(iso: r.string(9)) ?? .epoch, nextAt: Timestamp(iso: r.string(10)) ?? .epoch,
                 lastAt: r.text(11).flatMap { Timestamp(iso: $0) }, lastTaskID: r.optionalInt(12))
    }

    package func addSchedule(_ s: Schedule, replace: Bool, now: Timestamp) throws -> Bool {
        try db.writeTransaction {
            let exists = try db.prepare("SELECT 1 FROM schedules WHERE name = ?").bind(.text(s.name)).firstRow { _ in true } ?? false
            if exists && !replace {
                throw TaskQueueError.failed("schedule \(JSON.quote(s.name)) exists already: remove it first, or add --replace")
            }
            let o = s.options
            try db.prepare("""
                INSERT INTO schedules (name, cron, tz, kind, payload, queue, priority, max_attempts, timeout_s, created_at, next_at,
                                       on_crash, backoff_base_s, backoff_cap_s)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
                ON CONFLICT (name) DO UPDATE SET cron = ?2, tz = ?3, kind = ?4, payload = ?5, queue = ?6, priority = ?7,
                    max_attempts = ?8, timeout_s = ?9, next_at = ?11, on_crash = ?12, backoff_base_s = ?13, backoff_cap_s = ?14
                """).bind(.text(s.name), .text(s.cron), .text(s.timeZone), .text(s.kind), .text(s.payload), .text(o.queue),
                          .int(o.priority), .opt(o.maxAttempts), .opt(o.timeout), .ts(now), .ts(s.nextAt),
                          .opt(o.onCrash?.rawValue), .opt(o.backoffBase), .opt(o.backoffCap)).run()
            return exists
        }
    }

    package func removeSchedule(named name: String) throws -> Bool {
        try db.writeTransaction {
            try db.prepare("DELETE FROM schedules WHERE name = ?").bind(.text(name)).run()
            let removed = db.changes > 0
            try db.prepare("DELETE FROM schedule_runs WHERE schedule = ?").bind(.text(name)).run()
            return removed
        }
    }

    package func schedules() throws -> [Schedule] {
        try db.prepare("SELECT \(Self.scheduleColumns) FROM schedules ORDER BY name").rows(schedule)
    }

    package func nextScheduleTime() throws -> Timestamp? {
        try db.prepare("SELECT min(next_at) FROM schedules").firstRow { $0.text(0) }?.flatMap { Timestamp(iso: $0) }
    }

    package func fireDueSchedules(now: Timestamp, plan: (Schedule) throws -> SchedulePlan) throws -> [FiredOccurrence] {
        try db.writeTransaction {
            // Re-read under the write lock: another supervisor may have fired them.
            let due = try db.prepare("SELECT \(Self.scheduleColumns) FROM schedules WHERE next_at <= ? ORDER BY next_at, name")
                .bind(.ts(now)).rows(schedule)
            if due.isEmpty { return [] }
            let recordRun = try db.prepare("""
                INSERT INTO schedule_runs (schedule, occurrence, task_id, created_at) VALUES (?, ?, ?, ?)
                ON CONFLICT (schedule, occurrence) DO NOTHING
                """)
            let seen = try db.prepare("SELECT task_id FROM schedule_runs WHERE schedule = ? AND occurrence = ?")
            let advance = try db.prepare("""
                UPDATE schedules SET next_at = ?, last_at = ?, last_task_id = ? WHERE name = ? AND next_at = ?
                """)
            var fired: [FiredOccurrence] = []
            var kinds = KindLookup()
            for s in due {
                guard let p = try? plan(s) else { continue }
                let occurrence = p.occurrence.iso
                if let existing = try seen.bind(.text(s.name), .text(occurrence)).firstRow({ $0.int(0) }) {
                    // Recorded already (cannot happen under the write lock unless the
                    // schedule was re-added): only move next_at on.
                    try advance.bind(.ts(p.next), .text(occurrence), .int(existing), .text(s.name), .ts(s.nextAt)).run()
                    continue
                }
                let id = try insert(p.task, nowText: now.iso, &kinds)
                try recordRun.bind(.text(s.name), .text(occurrence), .int(id), .ts(now)).run()
                try advance.bind(.ts(p.next), .text(occurrence), .int(id), .text(s.name), .ts(s.nextAt)).run()
                fired.append(FiredOccurrence(schedule: s.name, occurrence: p.occurrence, taskID: id))
            }
            return fired
        }
    }

    // MARK: - groups

    package func createGroup(_ name: String, tasks: [NewTask], now: Timestamp) throws -> (ids: [Int64], created: Bool, restored: Int) {
        try db.writeTransaction {
            let nowText = now.iso
            var kinds = KindLookup()
            let existing = try db.prepare("""
                SELECT g.position, g.task_id, EXISTS (SELECT 1 FROM tasks t WHERE t.id = g.task_id)
                FROM task_groups g WHERE g.group_name = ? ORDER BY g.position
                """).bind(.text(name)).rows { (position: Int($0.int(0)), id: $0.int(1), present: $0.int(2) == 1) }
            if !existing.isEmpty {
                guard existing.count == tasks.count else { return (existing.map(\.id), false, 0) }
                // Lines whose task was purged run again: their results are gone.
                let repoint = try db.prepare("UPDATE task_groups SET task_id = ? WHERE group_name = ? AND position = ?")
                var ids: [Int64] = []
                var restored = 0
                for e in existing {
                    if e.present { ids.append(e.id); continue }
                    let id = try insert(tasks[e.position - 1], nowText: nowText, &kinds)
                    try repoint.bind(.int(id), .text(name), .int(Int64(e.position))).run()
                    ids.append(id)
                    restored += 1
                }
                return (ids, false, restored)
            }
            let member = try db.prepare("INSERT INTO task_groups (group_name, position, task_id) VALUES (?, ?, ?)")
            var ids: [Int64] = []
            ids.reserveCapacity(tasks.count)
            for (i, t) in tasks.enumerated() {
                let id = try insert(t, nowText: nowText, &kinds)
                try member.bind(.text(name), .int(Int64(i + 1)), .int(id)).run()
                ids.append(id)
            }
            return (ids, true, 0)
        }
    }

    package func groupTasks(_ name: String, from position: Int, limit: Int) throws -> [(position: Int, task: TaskRecord)] {
        let positionColumn = Self.taskColumnCount   // after the task's columns
        return try db.prepare("""
            SELECT \(Self.taskColumns("t.")), g.position FROM task_groups g JOIN tasks t ON t.id = g.task_id
            WHERE g.group_name = ? AND g.position >= ? ORDER BY g.position LIMIT ?
            """).bind(.text(name), .int(Int64(position)), .int(Int64(limit))).rows { r in
            (position: Int(r.int(positionColumn)), task: taskRecord(r))
        }
    }

    package func groupCounts(_ name: String) throws -> [TaskState: Int64] {
        var out: [TaskState: Int64] = [:]
        for (state, n) in try db.prepare("""
            SELECT t.state, count(*) FROM task_groups g JOIN tasks t ON t.id = g.task_id WHERE g.group_name = ? GROUP BY t.state
            """).bind(.text(name)).rows({ ($0.string(0), $0.int(1)) }) {
            if let s = TaskState(rawValue: state) { out[s] = n }
        }
        return out
    }

    package func requeueGroupFailures(_ name: String, options o: EnqueueOptions, now: Timestamp) throws -> Int {
        try db.writeTransaction {
            let inGroup = "kind = ?3 AND id IN (SELECT task_id FROM task_groups WHERE group_name = ?2)"
            // The re-run's options, resolved per kind as at enqueue.
            let options = """
                priority = ?4, timeout_s = ?5, max_attempts = ?6, on_crash = ?7, backoff_base_s = ?8, backoff_cap_s = ?9
                """
            let kinds = try db.prepare("""
                SELECT DISTINCT t.kind FROM task_groups g JOIN tasks t ON t.id = g.task_id WHERE g.group_name = ?
                """).bind(.text(name)).rows { $0.string(0) }
            var last = KindLookup()
            var requeued = 0
            for kind in kinds {
                let p = o.storedPolicy(kind: try kindPolicy(of: kind, &last))
                let values: [SQLValue] = [.ts(now), .text(name), .text(kind), .int(o.priority), .opt(o.timeout), .opt(p.maxAttempts),
                                          .opt(p.onCrash?.rawValue), .opt(p.backoffBase), .opt(p.backoffCap)]
                try db.prepare("UPDATE tasks SET \(options) WHERE state = 'queued' AND \(inGroup)").bind(values).run()
                try db.prepare("""
                    UPDATE tasks SET state = 'queued', attempts = 0, run_at = ?1, finished_at = NULL, result = NULL, owner = NULL,
                                     \(options)
                    WHERE (state = 'failed' OR state = 'cancelled') AND \(inGroup)
                    """).bind(values).run()
                requeued += db.changes
            }
            return requeued
        }
    }

    // MARK: - activity

    package func finishedSince(_ since: Timestamp) throws -> [(queue: String, state: TaskState, count: Int64)] {
        try db.prepare("""
            SELECT queue, state, count(*) FROM tasks
            WHERE finished_at >= ? AND kind <> 'taskq.stop' GROUP BY queue, state ORDER BY queue
            """).bind(.ts(since)).rows { r in (queue: r.string(0), state: TaskState(rawValue: r.string(1)) ?? .failed, count: r.int(2)) }
    }
}
