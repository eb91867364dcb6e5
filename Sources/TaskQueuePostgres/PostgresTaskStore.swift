import TaskQueue

/// The PostgreSQL implementation of the storage seam: one connection (libpq), every
/// write one READ COMMITTED transaction, the schema in the connection's current
/// schema (`search_path`). Workers on many hosts may share one database.
/// One instance is one connection; use it from one thread at a time.
///
/// Where READ COMMITTED does not serialise writers as SQLite's single write lock
/// does, the store takes the lock it needs:
/// - a claim skips rows another claimer has locked (`FOR UPDATE SKIP LOCKED`);
/// - a worker locks its own `processes` row first in every transaction that claims
///   or finishes (the owner fence), and recovery deletes that row first
///   (`DELETE … RETURNING`), so one of them waits for the other;
/// - `--after` locks the dependencies before reading their state, and finishing a
///   task locks its dependants before counting what they still wait for;
/// - inserts and stop sentinels take one advisory lock, shared and exclusive (see
///   `insertStopSentinels` for why).
package final class PostgresTaskStore: TaskStore {
    let db: PostgresConnection
    package var location: String { db.location }
    /// Set by `keepConnected`: how long one call waits for a lost connection to
    /// come back before it fails. nil: a lost connection fails the call at once.
    var reconnectBudget: Double?
    /// The connection is lost and being reconnected (see `keepingConnected`).
    var outage: Outage?
    /// Inside `pg`: a nested `pg` leaves reconnecting to the outer one.
    var inPG = false
    /// The last finish and claim, until it is known to have committed (see
    /// `UncertainFinish`).
    var uncertainFinish: UncertainFinish?

    /// Connects with a libpq URI (`postgresql://user@host/db?…`) or key=value
    /// string, and brings the schema up to date. Without `create`, a schema with no
    /// taskq tables is a `.notFound` error and nothing is created.
    /// `busyTimeout`: how long a statement waits for a lock another process holds
    /// (PostgreSQL's `lock_timeout`) before failing as `.busy`, as SQLite's busy
    /// timeout does for its write lock.
    /// `idleTimeout`: how long the server keeps this connection's transaction open
    /// while the connection sends nothing (`idle_in_transaction_session_timeout`).
    /// taskq's transactions never wait for their process between statements, so
    /// only a process frozen mid-transaction (SIGSTOP, a host stalled) gets there:
    /// its session is ended and its locks released, so that recovering it (its
    /// lease is 30 s by default) does not wait for it to thaw.
    /// `readOnly`: the session's transactions are all read-only
    /// (`default_transaction_read_only`) and the schema is not migrated: one
    /// older than this taskq's is an `.unavailable` error.
    package init(url: String, create: Bool = true, busyTimeout: Double = 10, idleTimeout: Double = 10, readOnly: Bool = false) throws {
        db = try PostgresConnection(url)
        try pg {
            // Payloads and outputs are kept byte for byte: a database in another
            // encoding would convert (or refuse) every non-ASCII character.
            let encoding = db.parameter("server_encoding") ?? ""
            guard encoding == "UTF8" || encoding == "SQL_ASCII" else {
                throw TaskQueueError.unavailable("\(db.location) uses encoding \(encoding); taskq needs UTF8 (create the database with ENCODING 'UTF8')")
            }
            func ms(_ seconds: Double) -> Int { max(1, Int(max(0, min(seconds, 86_400)) * 1000)) }
            // taskq.writer: the insert trigger is for other writers (migrations/postgres/0007);
            // taskq writes every column itself.
            try db.setUp("""
                SET lock_timeout = \(ms(busyTimeout)); SET idle_in_transaction_session_timeout = \(ms(idleTimeout));
                SET taskq.writer = 'taskq'\(readOnly ? "; SET default_transaction_read_only = on" : "")
                """)
            if !create, try PostgresMigrator.version(db) == 0 {
                throw TaskQueueError.notFound("no taskq database in \(db.location) (create one with 'taskq init')")
            }
            if readOnly { try PostgresMigrator.checkCurrent(db) } else { try PostgresMigrator.migrate(db, now: .now()) }
        }
    }

    /// Runs `body`, turning PostgreSQL's errors into taskq's one-line errors (a
    /// refused privilege names what the role lacks: `explained`). When the store
    /// keeps its connection (`keepConnected`), a lost connection is reconnected and
    /// `body` run again (see `keepingConnected`).
    func pg<T>(_ body: () throws -> T) throws -> T {
        if reconnectBudget != nil && !inPG {
            inPG = true
            defer { inPG = false }
            return try keepingConnected(body)
        }
        do { return try body() } catch let e as PostgresError { throw explained(e).taskQueueError(location: db.location) }
    }

    /// `body` in one transaction, errors as `pg`.
    @discardableResult
    func write<T>(begin: [PGStatement] = [.begin], _ body: () throws -> T) throws -> T {
        try pg { try db.transaction(begin: begin, body) }
    }

    /// The same, `body` given the results of the statements sent with BEGIN (see
    /// `PostgresConnection.transaction`).
    @discardableResult
    func write<T>(begin: [PGStatement], _ body: ([PGResult]) throws -> T) throws -> T {
        try pg { try db.transaction(begin: begin, body) }
    }

    // MARK: - stop sentinels and the order of ids

    /// Taken shared by every transaction that inserts tasks, and exclusive by the
    /// one that inserts stop sentinels. A sequence hands out ids in the order
    /// transactions ask, not the order they commit: without the lock a task could
    /// take id 100, a sentinel id 101 and commit first, and the task, committed
    /// before `taskq stop` returned, would lie beyond the sentinel's bound and never
    /// run. With it, the sentinel takes its id only once every insert in flight has
    /// committed (their ids are below it), and an insert that starts meanwhile
    /// waits for the sentinel's commit (its id is above it, and it commits after
    /// `stop` did). The cost is one lock per inserting transaction, not per task.
    /// The lock is keyed by the tasks table's oid: one per taskq schema.
    static let insertLockKey: Int32 = 0x7471_6964   // "tqid"
    static let insertLock = "SELECT pg_advisory_xact_lock_shared(\(insertLockKey), 'tasks'::regclass::oid::integer)"
    /// What an inserting transaction runs first: the insert lock, then (see
    /// `PostgresChangeSignal`) a NOTIFY if some worker waits.
    static let insertPrologue = [PGStatement(sql: insertLock), PGStatement(sql: PostgresChangeSignal.notifyIfWaiting)]
    /// The same, beginning a transaction.
    static let beginInsert = [PGStatement.begin] + insertPrologue
    static let beginSentinels = [.begin, PGStatement(sql: "SELECT pg_advisory_xact_lock(\(insertLockKey), 'tasks'::regclass::oid::integer)"),
                                 PGStatement(sql: PostgresChangeSignal.notifyAlways)]

    package func stopSentinel(for supervisorID: Int64) throws -> StopSentinel? {
        try pg {
            let r = try db.exec("""
                SELECT id, payload::jsonb ->> 'mode' FROM tasks
                WHERE kind = 'taskq.stop' AND state = 'queued' AND payload::jsonb ->> 'supervisor' = $1
                ORDER BY id LIMIT 1
                """, [.text(String(supervisorID))])
            guard r.count == 1 else { return nil }
            return StopSentinel(id: r.int(0, 0), supervisorID: supervisorID,
                                mode: StopSentinel.Mode(rawValue: r.text(0, 1) ?? "") ?? .drain)
        }
    }

    package func insertStopSentinels(mode: StopSentinel.Mode, supervisorIDs: [Int64]?, now: Timestamp) throws -> [StopSentinel] {
        try write(begin: Self.beginSentinels) {
            let chosen = try db.exec("SELECT id, pid, host FROM processes WHERE role = 'supervisor' ORDER BY id")
                .rows { i, r in (id: r.int(i, 0), pid: r.int(i, 1), host: r.string(i, 2)) }
                .filter { s in supervisorIDs.map { $0.contains(s.id) } ?? true }
            var out: [StopSentinel] = []
            for s in chosen {
                var payload = JSONObjectWriter()
                payload.add("supervisor", s.id)
                payload.add("pid", s.pid)
                payload.add("host", s.host)
                payload.add("mode", mode.rawValue)
                let id = try insertRows([NewTask(kind: stopSentinelKind, payload: payload.text,
                                                 options: EnqueueOptions(queue: "taskq", maxAttempts: 1))], now: now)[0]
                out.append(StopSentinel(id: id, supervisorID: s.id, mode: mode))
            }
            return out
        }
    }

    package func completeStopSentinel(_ id: Int64, note: String, now: Timestamp) throws {
        try write {
            try db.exec("""
                UPDATE tasks SET state = 'succeeded', attempts = 1, finished_at = $1, result = $2
                WHERE id = $3 AND kind = 'taskq.stop' AND state = 'queued'
                """, [.ts(now), .bytes(Array(note.utf8)), .int(id)])
        }
    }

    // MARK: - processes

    package func registerProcess(role: ProcessRecord.Role, supervisorID: Int64?, pid: Int32, host: String, bootID: String,
                                 startTicks: Int64, queues: [String]?, kinds: [String], now: Timestamp, lease: Double) throws -> Int64 {
        try write {
            try db.exec("""
                INSERT INTO processes (role, supervisor_id, pid, host, boot_id, start_ticks, queues, kinds,
                                       started_at, heartbeat_at, expires_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10) RETURNING id
                """, [.text(role.rawValue), .opt(supervisorID), .int(Int64(pid)), .text(host), .text(bootID), .int(startTicks),
                      queues.map(PGValue.texts) ?? .null, .texts(kinds), .ts(now), .ts(now.adding(seconds: lease))]).int(0, 0)
        }
    }

    package func heartbeat(processID: Int64, now: Timestamp, lease: Double) throws -> Bool {
        try pg {
            try db.exec("UPDATE processes SET heartbeat_at = $1, expires_at = $2 WHERE id = $3",
                        [.ts(now), .ts(now.adding(seconds: lease)), .int(processID)]).changes == 1
        }
    }

    package func processes() throws -> [ProcessRecord] {
        try pg {
            try db.exec("""
                SELECT id, role, supervisor_id, pid, host, boot_id, start_ticks, queues, kinds, started_at, heartbeat_at, expires_at
                FROM processes ORDER BY id
                """).rows { i, r in
                ProcessRecord(id: r.int(i, 0), role: ProcessRecord.Role(rawValue: r.string(i, 1)) ?? .worker,
                              supervisorID: r.optionalInt(i, 2), pid: Int32(truncatingIfNeeded: r.int(i, 3)), host: r.string(i, 4),
                              bootID: r.string(i, 5), startTicks: r.int(i, 6), queues: r.strings(i, 7), kinds: r.strings(i, 8) ?? [],
                              startedAt: r.timestamp(i, 9), heartbeatAt: r.timestamp(i, 10), expiresAt: r.timestamp(i, 11))
            }
        }
    }

    package func removeProcess(_ processID: Int64) throws {
        try recoverProcess(processID, now: .now()) { _ in .released }
    }

    // MARK: - inspection

    /// The columns `taskRecord` reads, of table alias `t` when given ("t."). A
    /// ready task's run_at is NULL: it shows its created_at.
    static func taskColumns(_ t: String = "") -> String {
        """
        \(t)id, \(t)kind, \(t)queue, \(t)state, \(t)priority, \(t)payload, coalesce(\(t)run_at, \(t)created_at),
        \(t)attempts, \(t)max_attempts, \(t)timeout_s, \(t)owner, \(t)created_at, \(t)started_at, \(t)finished_at, \(t)result,
        \(t)last_error, \(t)worker_pid, \(t)worker_host, \(t)on_crash, \(t)unique_key, \(t)backoff_base_s, \(t)backoff_cap_s
        """
    }
    static let taskColumnCount = 22

    func taskRecord(_ r: PGResult, _ i: Int) -> TaskRecord {
        var t = TaskRecord(id: r.int(i, 0), kind: r.string(i, 1), queue: r.string(i, 2),
                           state: TaskState(rawValue: r.string(i, 3)) ?? .queued, priority: r.int(i, 4), payload: r.string(i, 5),
                           runAt: r.timestamp(i, 6), attempts: r.int(i, 7), maxAttempts: r.int(i, 8), timeout: r.optionalDouble(i, 9),
                           owner: r.optionalInt(i, 10), createdAt: r.timestamp(i, 11), startedAt: r.optionalTimestamp(i, 12),
                           finishedAt: r.optionalTimestamp(i, 13), result: r.bytes(i, 14), lastError: r.text(i, 15))
        t.workerPID = r.optionalInt(i, 16)
        t.workerHost = r.text(i, 17)
        t.onCrash = r.text(i, 18).flatMap(CrashPolicy.init(rawValue:))
        t.uniqueKey = r.text(i, 19)
        t.backoffBase = r.optionalDouble(i, 20)
        t.backoffCap = r.optionalDouble(i, 21)
        return t
    }

    package func task(_ id: Int64) throws -> TaskRecord? {
        try pg {
            let r = try db.exec("""
                SELECT \(Self.taskColumns()),
                       ARRAY(SELECT depends_on FROM task_dependencies WHERE task_id = $1 ORDER BY depends_on)
                FROM tasks WHERE id = $1
                """, [.int(id)])
            guard r.count == 1 else { return nil }
            var t = taskRecord(r, 0)
            t.waitingFor = r.int64s(0, Self.taskColumnCount) ?? []
            return t
        }
    }

    package func tasks(_ filter: TaskFilter) throws -> [TaskRecord] {
        var clauses: [String] = []
        var values: [PGValue] = []
        func bind(_ v: PGValue) -> String { values.append(v); return "$\(values.count)" }
        if !filter.states.isEmpty { clauses.append("state = ANY(\(bind(.texts(filter.states.map(\.rawValue)))))") }
        if let q = filter.queue { clauses.append("queue = \(bind(.text(q)))") }
        if let k = filter.kind { clauses.append("kind = \(bind(.text(k)))") }
        if !filter.includeStopSentinels { clauses.append("kind <> 'taskq.stop'") }
        let whereSQL = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
        let limit = bind(.int(Int64(filter.limit)))
        return try pg {
            try db.exec("""
                SELECT \(Self.taskColumns()) FROM tasks \(whereSQL)
                ORDER BY \(filter.latestFinishedFirst ? "finished_at DESC NULLS LAST, " : "")id DESC LIMIT \(limit)
                """, values).rows { taskRecord($1, $0) }
        }
    }

    package func stats(now: Timestamp) throws -> QueueStats {
        try pg {
            let counts = try db.exec("""
                SELECT queue, state, count(*) FROM tasks WHERE kind <> 'taskq.stop' GROUP BY queue, state ORDER BY queue
                """).rows { i, r in (queue: r.string(i, 0), state: TaskState(rawValue: r.string(i, 1)) ?? .queued, count: r.int(i, 2)) }
            let order = Dictionary(uniqueKeysWithValues: TaskState.allCases.enumerated().map { ($1, $0) })
            let sorted = counts.sorted { ($0.queue, order[$0.state]!) < ($1.queue, order[$1.state]!) }
            var waiting: [String: Int64] = [:]
            let w = try db.exec("""
                SELECT queue, count(*) FROM tasks WHERE state = 'queued' AND run_at > $1 AND kind <> 'taskq.stop' GROUP BY queue
                """, [.ts(now)])
            for i in 0..<w.count { waiting[w.string(i, 0)] = w.int(i, 1) }
            return QueueStats(counts: sorted, waiting: waiting, processes: try processes())
        }
    }
}

extension PGResult {
    /// `read(row, self)` for every row.
    func rows<T>(_ read: (Int, PGResult) throws -> T) rethrows -> [T] {
        try rows { try read($0, self) }
    }
}
