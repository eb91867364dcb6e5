import CSQLite
import CSQLiteTuning
import TaskQueue
#if canImport(Glibc)
import Glibc
#endif

// One outcome under the fence, what it settles (attempt history, stderr,
// dependants: the primitives of `OutcomeSettling`), and when an idle worker must
// look again.

extension SQLiteTaskStore: OutcomeSettling {

    /// UTF-8 without NULs is stored as TEXT (the sqlite3 shell and SQL string
    /// functions show it as written); anything else as a BLOB.
    func storedAsText(_ output: [UInt8]) -> Bool {
        !output.contains(0) && isValidUTF8(output)
    }

    /// Applies one outcome under the fence; true when it changed the row.
    func apply(_ o: TaskOutcome, now: Timestamp) throws -> Bool {
        if try applyFenced(o, now: now, withDependants: false) {
            try settle(o, hasDependants: false, now: now)
            return true
        }
        // Nothing changed: the fence refused it, or others wait for this task.
        switch o.result {
        case .succeeded, .failed(_, nil):
            guard try applyFenced(o, now: now, withDependants: true) else { return false }
            try settle(o, hasDependants: true, now: now)
            return true
        default:
            return false
        }
    }

    func text(_ t: Timestamp) -> String {
        if isoCache.0 != t { isoCache = (t, t.iso) }
        return isoCache.1
    }

    /// One fenced UPDATE; true when it changed the row.
    func applyFenced(_ o: TaskOutcome, now: Timestamp, withDependants: Bool) throws -> Bool {
        let s: Statement
        switch o.result {
        case .succeeded(let output):
            s = withDependants ? succeedWithDependantsStmt : succeedStmt
            s.reset()
            s.bind(1, text(now))
            s.bind(2, bytes: output, asText: storedAsText(output))
        case .failed(let error, let retryAt?):
            s = retryStmt
            s.reset()
            s.bind(1, retryAt.iso)
            s.bind(2, error)
        case .failed(let error, nil):
            s = withDependants ? failWithDependantsStmt : failStmt
            s.reset()
            s.bind(1, text(now))
            s.bind(2, error)
        case .released:
            s = releaseStmt
            s.reset()
        }
        // The fence: ?3 id, ?4 owner, ?5 attempt.
        s.bind(3, o.taskID)
        s.bind(4, o.owner)
        s.bind(5, o.attempt)
        try s.run()
        return db.changes == 1
    }

    /// Stores the end of a successful attempt's stderr beside its result (migration 0007).
    func keepStderr(_ o: TaskOutcome) throws {
        let s = stderrStmt
        s.reset()
        s.bind(1, o.stderr ?? "")
        s.bind(2, o.taskID)
        s.bind(3, o.attempt)
        try s.run()
    }

    package func keepAttempt(_ taskID: Int64, attempt: Int64, outcome: String, error: String?, now: Timestamp) throws {
        let s = attemptStmt
        s.reset()
        s.bind(1, taskID)
        s.bind(2, attempt)
        s.bind(3, now.iso)
        s.bind(4, outcome)
        s.bind(.opt(error), at: 5)
        try s.run()
    }

    /// One indexed read when it has none (the usual case).
    package func releaseDependants(of id: Int64, now: Timestamp) throws {
        let dependants = try dependants(of: id)
        if dependants.isEmpty { return }
        try db.prepare("DELETE FROM task_dependencies WHERE depends_on = ?").bind(.int(id)).run()
        for d in dependants {
            let left = try db.prepare("SELECT count(*) FROM task_dependencies WHERE task_id = ?").bind(.int(d)).firstRow { $0.int(0) } ?? 0
            if left == 0 {
                try db.prepare("UPDATE tasks SET run_at = ? WHERE id = ? AND state = 'queued' AND run_at = ?")
                    .bind(.ts(now), .int(d), .ts(.blocked)).run()
            }
        }
    }

    package func dependants(of id: Int64) throws -> [Int64] {
        try dependantsStmt.bind(.int(id)).rows { $0.int(0) }
    }

    package func cancelIfQueued(_ id: Int64, reason: String, now: Timestamp) throws -> Bool {
        try db.prepare("""
            UPDATE tasks SET state = 'cancelled', finished_at = ?, last_error = ? WHERE id = ? AND state = 'queued'
            """).bind(.ts(now), .text(reason), .int(id)).run()
        return db.changes == 1
    }

    package func nextRunAt(_ claim: ClaimRequest, now: Timestamp, retriesOnly: Bool) throws -> Timestamp? {
        // Reads the index of queued tasks with a start time (ready ones are not in
        // it): cheap unless very many tasks wait for a future time. Runs only when a
        // worker goes idle. `run_at > ''` repeats the index's condition, which SQLite
        // must find written in the query to use a partial index.
        let key = "\(claim.kinds.count)/\(claim.queues?.count ?? -1)/\(retriesOnly)"
        let s: Statement
        if let cached = nextRunAtStmts[key] { s = cached } else {
            let kinds = Self.listMatch("kind", count: claim.kinds.count, first: 3)
            let queues = claim.queues.map { "AND (\(Self.listMatch("queue", count: $0.count, first: 3 + kinds.parameters).sql))" } ?? ""
            s = try db.prepare("""
                SELECT min(run_at) FROM tasks INDEXED BY tasks_delayed
                WHERE state = 'queued' AND run_at > '' AND run_at > ?1 AND run_at < ?2 AND (\(kinds.sql)) \(queues)\(retriesOnly ? " AND attempts > 0" : "")
                """)
            nextRunAtStmts[key] = s
        }
        s.reset()
        s.bind(1, now.iso)
        s.bind(2, "9999")   // tasks waiting on others (--after) are parked in year 9999
        var i: Int32 = 3
        bindList(s, &i, claim.kinds)
        if let queues = claim.queues { bindList(s, &i, queues) }
        return try s.firstRow { $0.text(0).flatMap { Timestamp(iso: $0) } } ?? nil
    }
}
