import CSQLite
import CSQLiteTuning
import TaskQueue
#if canImport(Glibc)
import Glibc
#endif

// Reading tasks and counts for people: show, list, status.

extension SQLiteTaskStore {
    // MARK: - inspection

    /// The columns `taskRecord` reads, of table alias `t` when given ("t."). A
    /// ready task's run_at is '' (migrations/0006): it shows its created_at.
    static func taskColumns(_ t: String = "") -> String {
        """
        \(t)id, \(t)kind, \(t)queue, \(t)state, \(t)priority, \(t)payload, iif(\(t)run_at = '', \(t)created_at, \(t)run_at),
        \(t)attempts, \(t)max_attempts, \(t)timeout_s, \(t)owner, \(t)created_at, \(t)started_at, \(t)finished_at, \(t)result,
        \(t)last_error, \(t)worker_pid, \(t)worker_host, \(t)on_crash, \(t)unique_key, \(t)backoff_base_s, \(t)backoff_cap_s
        """
    }
    /// How many columns `taskColumns` has.
    static let taskColumnCount: Int32 = 22

    func taskRecord(_ r: Statement) -> TaskRecord {
        var t = TaskRecord(id: r.int(0), kind: r.string(1), queue: r.string(2), state: TaskState(rawValue: r.string(3)) ?? .queued,
                   priority: r.int(4), payload: r.string(5), runAt: Timestamp(iso: r.string(6)) ?? Timestamp(milliseconds: 0),
                   attempts: r.int(7), maxAttempts: r.int(8), timeout: r.optionalDouble(9), owner: r.optionalInt(10),
                   createdAt: Timestamp(iso: r.string(11)) ?? Timestamp(milliseconds: 0),
                   startedAt: r.text(12).flatMap { Timestamp(iso: $0) }, finishedAt: r.text(13).flatMap { Timestamp(iso: $0) },
                   result: r.bytes(14), lastError: r.text(15))
        t.workerPID = r.optionalInt(16)
        t.workerHost = r.text(17)
        t.onCrash = r.text(18).flatMap(CrashPolicy.init(rawValue:))
        t.uniqueKey = r.text(19)
        t.backoffBase = r.optionalDouble(20)
        t.backoffCap = r.optionalDouble(21)
        return t
    }

    package func task(_ id: Int64) throws -> TaskRecord? {
        try db.readTransaction {
            guard var t = try db.prepare("SELECT \(Self.taskColumns()) FROM tasks WHERE id = ?").bind(.int(id)).firstRow(taskRecord) else {
                return nil
            }
            t.waitingFor = try db.prepare("SELECT depends_on FROM task_dependencies WHERE task_id = ? ORDER BY depends_on")
                .bind(.int(id)).rows { $0.int(0) }
            return t
        }
    }

    package func tasks(_ filter: TaskFilter) throws -> [TaskRecord] {
        var clauses: [String] = []
        var values: [SQLValue] = []
        if !filter.states.isEmpty {
            clauses.append("state IN (\(filter.states.map { _ in "?" }.joined(separator: ", ")))")
            values += filter.states.map { .text($0.rawValue) }
        }
        if let q = filter.queue { clauses.append("queue = ?"); values.append(.text(q)) }
        if let k = filter.kind { clauses.append("kind = ?"); values.append(.text(k)) }
        if !filter.includeStopSentinels { clauses.append("kind <> 'taskq.stop'") }
        let whereSQL = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
        values.append(.int(Int64(filter.limit)))
        return try db.prepare("SELECT \(Self.taskColumns()) FROM tasks \(whereSQL) ORDER BY \(filter.latestFinishedFirst ? "finished_at DESC, " : "")id DESC LIMIT ?")
            .bind(values).rows(taskRecord)
    }

    package func stats(now: Timestamp) throws -> QueueStats {
        try db.readTransaction {
            let counts = try db.prepare("""
                SELECT queue, state, count(*) FROM tasks WHERE kind <> 'taskq.stop' GROUP BY queue, state ORDER BY queue
                """).rows { r in (queue: r.string(0), state: TaskState(rawValue: r.string(1)) ?? .queued, count: r.int(2)) }
            let order = Dictionary(uniqueKeysWithValues: TaskState.allCases.enumerated().map { ($1, $0) })
            let sorted = counts.sorted { ($0.queue, order[$0.state]!) < ($1.queue, order[$1.state]!) }
            var waiting: [String: Int64] = [:]
            for (q, n) in try db.prepare("""
                SELECT queue, count(*) FROM tasks WHERE state = 'queued' AND run_at > ? AND kind <> 'taskq.stop' GROUP BY queue
                """).bind(.ts(now)).rows({ ($0.string(0), $0.int(1)) }) {
                waiting[q] = n
            }
            return QueueStats(counts: sorted, waiting: waiting, processes: try processes())
        }
    }
}


func jsonArray(_ items: [String]) -> String {
    "[" + items.map(JSON.quote).joined(separator: ",") + "]"
}

/// The integers of a JSON array of ids ('[17,18]'), as `processes.claimed` holds them.
func parseIDList(_ text: String) -> [Int64] {
    var ids: [Int64] = []
    var value: Int64 = 0, inNumber = false
    for b in text.utf8 {
        if b >= 0x30 && b <= 0x39 {
            value = value * 10 + Int64(b - 0x30)
            inNumber = true
        } else {
            if inNumber { ids.append(value) }
            value = 0
            inNumber = false
        }
    }
    return ids
}

func parseStringArray(_ text: String) -> [String] {
    guard case .array(let items)? = try? JSON.parse(text) else { return [] }
    return items.compactMap(\.stringValue)
}
