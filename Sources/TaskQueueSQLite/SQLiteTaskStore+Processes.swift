import CSQLite
import CSQLiteTuning
import TaskQueue
#if canImport(Glibc)
import Glibc
#endif

// Supervisors and workers: registration, heartbeats, recovery, stop sentinels.

extension SQLiteTaskStore {
    // MARK: - processes

    package func registerProcess(role: ProcessRecord.Role, supervisorID: Int64?, pid: Int32, host: String, bootID: String,
                                 startTicks: Int64, queues: [String]?, kinds: [String], now: Timestamp, lease: Double) throws -> Int64 {
        try db.writeTransaction {
            try db.prepare("""
                INSERT INTO processes (role, supervisor_id, pid, host, boot_id, start_ticks, queues, kinds,
                                       started_at, heartbeat_at, expires_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id
                """).bind(
                    .text(role.rawValue), .opt(supervisorID), .int(Int64(pid)), .text(host), .text(bootID), .int(startTicks),
                    .opt(queues.map(jsonArray)), .text(jsonArray(kinds)), .ts(now), .ts(now), .ts(now.adding(seconds: lease))
                ).firstRow { $0.int(0) }!
        }
    }

    package func heartbeat(processID: Int64, now: Timestamp, lease: Double) throws -> Bool {
        try db.writeTransaction {
            try heartbeatStmt.bind(.ts(now), .ts(now.adding(seconds: lease)), .int(processID)).run()
            return db.changes == 1
        }
    }

    package func processes() throws -> [ProcessRecord] {
        try db.prepare("""
            SELECT id, role, supervisor_id, pid, host, boot_id, start_ticks, queues, kinds, started_at, heartbeat_at, expires_at
            FROM processes ORDER BY id
            """).rows { r in
            ProcessRecord(id: r.int(0), role: ProcessRecord.Role(rawValue: r.string(1)) ?? .worker, supervisorID: r.optionalInt(2),
                          pid: Int32(truncatingIfNeeded: r.int(3)), host: r.string(4), bootID: r.string(5), startTicks: r.int(6),
                          queues: r.text(7).map(parseStringArray), kinds: parseStringArray(r.string(8)),
                          startedAt: Timestamp(iso: r.string(9)) ?? Timestamp(milliseconds: 0),
                          heartbeatAt: Timestamp(iso: r.string(10)) ?? Timestamp(milliseconds: 0),
                          expiresAt: Timestamp(iso: r.string(11)) ?? Timestamp(milliseconds: 0))
        }
    }

    @discardableResult
    package func recoverProcess(_ processID: Int64, now: Timestamp, startedTaskID: Int64?,
                                outcome: (ClaimedTask) -> TaskOutcome.Result) throws -> [ClaimedTask] {
        try db.writeTransaction {
            // Its claimed list names every task it may hold; each is taken only if
            // still running and owned by it. A process from before the list
            // (claimed NULL, migration 0005) is looked for in the whole table.
            let listed = try db.prepare("SELECT claimed IS NOT NULL FROM processes WHERE id = ?")
                .bind(.int(processID)).firstRow { $0.int(0) == 1 } ?? true
            let held = try db.prepare(listed ? """
                SELECT \(Self.claimedColumns) FROM tasks
                WHERE id IN (SELECT value FROM json_each((SELECT claimed FROM processes WHERE id = ?1)))
                  AND owner = ?1 AND state = 'running' ORDER BY id
                """ : """
                SELECT \(Self.claimedColumns) FROM tasks WHERE owner = ?1 AND state = 'running' ORDER BY id
                """).bind(.int(processID)).rows(claimedTask)
            for t in held {
                if let started = startedTaskID, t.id != started {
                    _ = try apply(TaskOutcome(taskID: t.id, owner: processID, attempt: t.attempt, result: .released,
                                              failure: TaskOutcome.notStarted), now: now)
                } else {
                    _ = try apply(TaskOutcome(taskID: t.id, owner: processID, attempt: t.attempt, result: outcome(t), failure: "crashed"), now: now)
                }
            }
            try db.prepare("""
                UPDATE tasks SET state = 'cancelled', finished_at = ?,
                       last_error = 'its supervisor (process ' || ? || ') ended before it stopped by this sentinel'
                WHERE kind = 'taskq.stop' AND state = 'queued' AND json_extract(payload, '$.supervisor') = ?
                """).bind(.ts(now), .int(processID), .int(processID)).run()
            try db.prepare("DELETE FROM processes WHERE id = ?").bind(.int(processID)).run()
            return held
        }
    }

    package func recoverOrphans(now: Timestamp, outcome: (ClaimedTask, Int64) -> TaskOutcome.Result) throws
        -> [(task: ClaimedTask, owner: Int64)] {
        // Found by a plain read first, outside the write lock: no index covers running
        // tasks (migration 0005 dropped it, an insert and a delete per claim), so this
        // scans the table, and writers need not wait for that.
        let orphaned = "state = 'running' AND owner NOT IN (SELECT id FROM processes)"
        let seen = try db.prepare("SELECT id FROM tasks WHERE \(orphaned)").rows { $0.int(0) }
        if seen.isEmpty { return [] }
        return try db.writeTransaction {
            let s = try db.prepare("""
                SELECT \(Self.claimedColumns), owner FROM tasks
                WHERE id IN (SELECT value FROM json_each(?1)) AND \(orphaned) ORDER BY id
                """)
            s.bind(1, bytes: idListText(seen), asText: true)
            let held = try s.rows { (task: claimedTask($0), owner: $0.int(10)) }
            for (t, owner) in held {
                _ = try apply(TaskOutcome(taskID: t.id, owner: owner, attempt: t.attempt, result: outcome(t, owner),
                                          failure: "crashed"), now: now)
            }
            return held
        }
    }

    package func removeProcess(_ processID: Int64) throws {
        try recoverProcess(processID, now: .now()) { _ in .released }
    }

    // MARK: - stop sentinels

    package func stopSentinel(for supervisorID: Int64) throws -> StopSentinel? {
        try sentinelStmt.bind(.int(supervisorID)).firstRow { r in
            StopSentinel(id: r.int(0), supervisorID: supervisorID, mode: StopSentinel.Mode(rawValue: r.string(1)) ?? .drain)
        }
    }

    package func insertStopSentinels(mode: StopSentinel.Mode, supervisorIDs: [Int64]?, now: Timestamp) throws -> [StopSentinel] {
        try db.writeTransaction {
            let sups = try db.prepare("SELECT id, pid, host FROM processes WHERE role = 'supervisor' ORDER BY id")
                .rows { (id: $0.int(0), pid: $0.int(1), host: $0.string(2)) }
                .filter { s in supervisorIDs.map { $0.contains(s.id) } ?? true }
            var out: [StopSentinel] = []
            var kinds = KindLookup()
            for s in sups {
                var payload = JSONObjectWriter()
                payload.add("supervisor", s.id)
                payload.add("pid", s.pid)
                payload.add("host", s.host)
                payload.add("mode", mode.rawValue)
                let id = try insert(NewTask(kind: stopSentinelKind, payload: payload.text,
                                            options: EnqueueOptions(queue: "taskq", maxAttempts: 1)), nowText: now.iso, &kinds)
                out.append(StopSentinel(id: id, supervisorID: s.id, mode: mode))
            }
            return out
        }
    }

    package func completeStopSentinel(_ id: Int64, note: String, now: Timestamp) throws {
        try db.writeTransaction {
            try db.prepare("""
                UPDATE tasks SET state = 'succeeded', attempts = 1, finished_at = ?, result = ?
                WHERE id = ? AND kind = 'taskq.stop' AND state = 'queued'
                """).bind(.ts(now), .text(note), .int(id)).run()
        }
    }
}
