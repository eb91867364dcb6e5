import CSQLite
import CSQLiteTuning
import TaskQueue
#if canImport(Glibc)
import Glibc
#endif

/// SQLite's durability level for commits (`PRAGMA synchronous`).
public enum Synchronous: String, Sendable, CaseIterable {
    /// WAL + NORMAL: a commit survives a crash of any process; a power loss or OS
    /// crash may roll back the last few commits (never corrupts the file).
    case normal
    /// Every commit is fsynced: survives power loss too, at a cost per commit.
    case full
}

/// The SQLite implementation of the storage seam: one file, WAL mode, every write
/// transaction `BEGIN IMMEDIATE`, statements prepared once per connection.
/// One instance is one connection; use it from one thread at a time.
package final class SQLiteTaskStore: TaskOperationsStore {
    let db: SQLiteConnection
    package var location: String { db.path }

    /// Opens (and with `create`, creates) the database at `path` and brings its
    /// schema up to date. Without `create`, a missing file is a `.notFound` error
    /// and nothing is created.
    /// `cacheKiB`: SQLite's page cache for this connection. The default (32 MiB)
    /// suits one-off commands that scan the table (`status`, `list`); workers pass
    /// 4 MiB (`TaskQueueProcess.workerCacheKiB`), and a supervisor, which only scans
    /// now and then (recovery, pruning), 2 MiB, so their memory stays flat.
    /// `checks: false`: skip the tables' CHECKs, for a worker's connection (only
    /// taskq's own claim, finish and heartbeat statements) or an enqueue-only one
    /// (tasks validated in Swift first).
    package init(path: String, create: Bool, synchronous: Synchronous = .normal, busyTimeout: Double = 10,
                 cacheKiB: Int = 32768, checks: Bool = true) throws {
        var st = stat()
        if stat(path, &st) == 0 {
            if (st.st_mode & S_IFMT) == S_IFDIR {
                throw TaskQueueError.badData("\(path) is a directory, not a database file")
            }
        } else if !create {
            throw TaskQueueError.notFound("no database at \(path) (create one with 'taskq init', or choose another with --db or $TASKQ_DB)")
        }
        db = try SQLiteConnection(path: path, create: create, busyTimeoutMs: Int32(max(0, min(busyTimeout * 1000, 86_400_000))))
        // Look before changing anything: a stranger's file is refused untouched,
        // and a read-only command on an empty file creates no schema.
        if try Migrator.isUninitialized(db) && !create {
            // A killed `taskq init` leaves either an empty file or a bare SQLite
            // header (a 4 KiB page, WAL mode set, no tables yet).
            throw TaskQueueError.notFound(st.st_size == 0
                ? "no taskq database at \(path) (the file is empty; create one with 'taskq init')"
                : "\(path) is a SQLite database without taskq's tables (left by an interrupted 'taskq init'?); run 'taskq init' to create them")
        }
        try db.configure(synchronous: synchronous, cacheKiB: cacheKiB, skipChecks: !checks)
        // Before any statement is prepared: defining a function expires every prepared
        // statement of the connection, and each would be compiled again at its next use.
        outcomeTable = taskq_outcomes_register(db.handle)
        try Migrator.migrate(db, now: .now())
    }

    // MARK: - statements, prepared once

    /// The one INSERT of tasks, `rows` of them (parameters ?1–?12 for the first
    /// row, ?13–?24 for the second, …), with the retry policy already resolved
    /// against the kind's row (`EnqueueOptions.storedPolicy`, read by `kindPolicy`
    /// in the same transaction): the row shows the policy the task runs under.
    /// A plain `VALUES` list: the same insert written as `INSERT … SELECT … LEFT
    /// JOIN kinds` cost SQLite a fifth more work per row.
    /// `sharing`: every row takes the first row's parameters but its payload,
    /// which is ?12+r for row r ≥ 1 (?4 for the first): rows of one kind and one
    /// set of options cost one bind each.
    /// The id is SQLite's, max(id) + 1, unless `firstID`: then the first row's id
    /// is the parameter after the others (`idFloor`), and the other rows' max(id) + 1.
    /// (An id column in every insert would cost each row a seek: SQLite checks a
    /// given id is free, and appends without seeking only the rows it numbers.)
    static func insertSQL(rows: Int = 1, unique: Bool = false, sharing: Bool = false, firstID: Bool = false) -> String {
        let values = (0..<rows).map { r in
            "(" + (firstID ? (r == 0 ? "?\(idParameter(rows: rows, sharing: sharing)), " : "NULL, ") : "") + (1...insertParameters).map { k in
                if !sharing { return "?\(r * insertParameters + k)" }
                return k == payloadParameter && r > 0 ? "?\(insertParameters + r)" : "?\(k)"
            }.joined(separator: ", ") + ")"
        }
        return """
        INSERT INTO tasks (\(firstID ? "id, " : "")kind, queue, priority, payload, run_at, max_attempts, timeout_s, created_at, on_crash,
                           unique_key, backoff_base_s, backoff_cap_s)
        VALUES \(values.joined(separator: ",\n       "))
        """ + (unique ? """

        ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND (state = 'queued' OR state = 'running') DO NOTHING
        RETURNING id
        """ : "")
    }
    static let insertParameters = 12
    static let payloadParameter: Int32 = 4
    /// The parameter of the first row's id (`firstID`), after the row parameters.
    static func idParameter(rows: Int, sharing: Bool) -> Int32 {
        Int32(sharing ? insertParameters + rows : rows * insertParameters + 1)
    }
    lazy var insertStmt = try! db.prepare(Self.insertSQL())
    /// Multi-row inserts by row count (2 … `rowsPerInsert`; negative: `sharing`),
    /// prepared when first used.
    private var multiInsertStmts: [Int: Statement] = [:]
    private lazy var maxIDStmt = try! db.prepare("SELECT max(id) FROM tasks")
    private lazy var idFloorStmt = try! db.prepare("""
        SELECT max_id + 1 FROM task_id_high_water WHERE max_id > coalesce((SELECT max(id) FROM tasks), 0)
        """)
    /// The file's data version at which `idFloor` was last nil.
    var noIDFloorVersion: UInt32?
    lazy var kindPolicyStmt = try! db.prepare("SELECT \(Self.kindColumns) FROM kinds WHERE kind = ?1")
    /// Kind policies read on this connection (`.some(nil)`: the kind has none),
    /// good while the file's data version is `kindCacheVersion` (`kindPolicy(of:_:)`).
    var kindCache: [String: KindPolicy?] = [:]
    var kindCacheVersion: UInt32?
    /// With a unique key: the partial unique index decides; a conflict inserts
    /// nothing and returns no row.
    private lazy var insertUniqueStmt = try! db.prepare(Self.insertSQL(unique: true))
    private lazy var uniqueHolderStmt = try! db.prepare("""
        SELECT id FROM tasks WHERE unique_key = ?1 AND (state = 'queued' OR state = 'running')
        """)
    /// History: one row per attempt that did not succeed, copied from the task row.
    private lazy var attemptStmt = try! db.prepare("""
        INSERT INTO task_attempts (task_id, attempt, worker_pid, worker_host, started_at, finished_at, outcome, error)
        SELECT id, ?2, worker_pid, worker_host, started_at, ?3, ?4, ?5 FROM tasks WHERE id = ?1
        """)
    private lazy var dependantsStmt = try! db.prepare("SELECT task_id FROM task_dependencies WHERE depends_on = ?1")
    private lazy var succeedStmt = try! db.prepare("""
        UPDATE tasks SET state = 'succeeded', owner = NULL, finished_at = ?1, result = ?2
        WHERE id = ?3 AND owner = ?4 AND attempts = ?5 AND state = 'running' AND has_dependants IS NULL
        """)
    private lazy var retryStmt = try! db.prepare("""
        UPDATE tasks SET state = 'queued', owner = NULL, run_at = ?1, last_error = ?2
        WHERE id = ?3 AND owner = ?4 AND attempts = ?5 AND state = 'running'
        """)
    private lazy var failStmt = try! db.prepare("""
        UPDATE tasks SET state = 'failed', owner = NULL, finished_at = ?1, last_error = ?2
        WHERE id = ?3 AND owner = ?4 AND attempts = ?5 AND state = 'running' AND has_dependants IS NULL
        """)
    /// The same two for a task that others wait for (--after): tried only when the
    /// plain one changed nothing, so a task nobody waits for costs no extra work.
    /// (Not RETURNING: that builds a temporary table on every execution.)
    private lazy var succeedWithDependantsStmt = try! db.prepare("""
        UPDATE tasks SET state = 'succeeded', owner = NULL, finished_at = ?1, result = ?2
        WHERE id = ?3 AND owner = ?4 AND attempts = ?5 AND state = 'running' AND has_dependants IS NOT NULL
        """)
    private lazy var failWithDependantsStmt = try! db.prepare("""
        UPDATE tasks SET state = 'failed', owner = NULL, finished_at = ?1, last_error = ?2
        WHERE id = ?3 AND owner = ?4 AND attempts = ?5 AND state = 'running' AND has_dependants IS NOT NULL
        """)
    private lazy var releaseStmt = try! db.prepare("""
        UPDATE tasks SET state = 'queued', owner = NULL, attempts = attempts - 1
        WHERE id = ?3 AND owner = ?4 AND attempts = ?5 AND state = 'running'
        """)
    lazy var stillRunningStatement = try! db.prepare("""
        SELECT 1 FROM tasks WHERE id = ?1 AND owner = ?2 AND attempts = ?3 AND state = 'running'
        """)
    private lazy var heartbeatStmt = try! db.prepare(
        "UPDATE processes SET heartbeat_at = ?, expires_at = ? WHERE id = ?")
    private lazy var sentinelStmt = try! db.prepare("""
        SELECT id, json_extract(payload, '$.mode') FROM tasks INDEXED BY tasks_stop_sentinels
        WHERE kind = 'taskq.stop' AND state = 'queued' AND json_extract(payload, '$.supervisor') = ?
        ORDER BY id LIMIT 1
        """)
    private var claimStmts: [String: Statement] = [:]

    /// What a worker gets of a claimed task, read by `claimedTask`.
    static let claimedColumns = "id, kind, queue, payload, attempts, max_attempts, timeout_s, on_crash, backoff_base_s, backoff_cap_s"

    private func claimedTask(_ r: Statement) -> ClaimedTask {
        ClaimedTask(id: r.int(0), kind: r.string(1), queue: r.string(2), payload: r.string(3),
                    attempt: r.int(4), maxAttempts: r.int(5), timeout: r.optionalDouble(6),
                    onCrash: r.text(7).flatMap(CrashPolicy.init(rawValue:)),
                    backoffBase: r.optionalDouble(8), backoffCap: r.optionalDouble(9))
    }

    /// Lists of up to this many kinds (or queues) are matched with `kind = ?4 OR
    /// kind = ?5 …`, longer ones with one parameter, a JSON array:
    /// `kind IN (SELECT value FROM json_each(?4))`. The chain is the faster (SQLite
    /// builds a temporary table for an IN list on every execution), but it nests one
    /// level deeper per value, and past SQLite's expression depth (1,000) the statement
    /// cannot be prepared at all.
    static let orChainLimit = 8

    /// SQL that holds when `column` equals one of `count` values bound by `bindList`
    /// from parameter `first` on, and how many parameters it takes.
    static func listMatch(_ column: String, count: Int, first: Int) -> (sql: String, parameters: Int) {
        if count > orChainLimit { return ("\(column) IN (SELECT value FROM json_each(?\(first)))", 1) }
        return ((0..<count).map { "\(column) = ?\(first + $0)" }.joined(separator: " OR "), count)
    }

    /// Binds `values` from parameter `i` on, as `listMatch` reads them.
    private func bindList(_ s: Statement, _ i: inout Int32, _ values: [String]) {
        if values.count > Self.orChainLimit {
            s.bind(i, jsonArray(values))
            i += 1
        } else {
            for v in values { s.bind(i, v); i += 1 }
        }
    }

    /// The claim's first half: which tasks, in claim order, from one of the two
    /// partial indexes (migrations/0006): `tasks_ready` (run_at '', in id order
    /// within a priority) or, with `delayed`, `tasks_delayed` (a run_at that has
    /// passed, in run_at order). With `keyed` (always for the delayed half) each row
    /// also gives its priority and the time it became claimable, for `claim` to
    /// merge the two halves; the ready half alone, the usual claim, does without
    /// (SQLite reads every result column of every row). Prepared per shape of kinds
    /// and queues (a worker's never change, so it prepares at most three).
    private func claimStatement(kinds: Int, queues: Int?, delayed: Bool, keyed: Bool) throws -> Statement {
        let key = "\(kinds)/\(queues ?? -1)/\(delayed)/\(keyed)"
        if let s = claimStmts[key] { return s }
        // Numbered parameters throughout: a bare "?" would take the number after the
        // highest seen so far, colliding with ?3 further down.
        let kindList = Self.listMatch("kind", count: kinds, first: 4)
        let queueClause = queues.map { "AND (\(Self.listMatch("queue", count: $0, first: 4 + kindList.parameters).sql))" } ?? ""
        // Paused queues: subqueries on the tiny `queues` table, each evaluated once per
        // claim; the list of paused names is only built when some queue is paused.
        // A SELECT, then one UPDATE of the rows it chose: `UPDATE … WHERE id IN
        // (SELECT …) RETURNING …` did it in one statement, but RETURNING stores every
        // row in a temporary table first, which made a claim cost a quarter more
        // per task (measured in C on this schema: 29.6k instructions, against 22.9k).
        // (?1, now, is not used by the ready half: the numbering stays the same.)
        // The sentinel's bound is `id <= min(id) - 1`, not `id < min(id)`, so that
        // without a sentinel (the largest integer) a task with the largest id is
        // still claimed.
        let s = try db.prepare("""
            SELECT \(Self.claimedColumns)\(keyed ? ", priority, " + (delayed ? "run_at" : "created_at") : "")
            FROM tasks INDEXED BY \(delayed ? "tasks_delayed" : "tasks_ready")
            WHERE state = 'queued' AND \(delayed ? "run_at > '' AND run_at <= ?1" : "run_at = ''")
              AND id <= coalesce((SELECT min(id) - 1 FROM tasks INDEXED BY tasks_stop_sentinels
                                 WHERE kind = 'taskq.stop' AND state = 'queued'
                                   AND json_extract(payload, '$.supervisor') = ?2), 9223372036854775807)
              AND (\(kindList.sql)) \(queueClause)
              AND (NOT EXISTS (SELECT 1 FROM queues WHERE paused_at IS NOT NULL)
                   OR queue NOT IN (SELECT name FROM queues WHERE paused_at IS NOT NULL))
            ORDER BY priority DESC, \(delayed ? "run_at, " : "")id
            LIMIT ?3
            """)
        claimStmts[key] = s
        return s
    }

    // MARK: - producers

    package func insertTasks(_ tasks: [NewTask], now: Timestamp) throws -> [Int64] {
        if tasks.contains(where: { $0.options.uniqueKey != nil || !$0.options.after.isEmpty }) {
            return try enqueueTasks(tasks, now: now).map(\.id)
        }
        let nowText = text(now)   // one producer commits many times per millisecond
        let ids = try db.writeTransaction {
            var kinds = KindLookup()
            return try insertRows(tasks.count, sharing: false) { s, first, rows in
                for r in 0..<rows { try bindInsert(s, tasks[first + r], nowText: nowText, &kinds, row: r) }
            }
        }
        if !tasks.isEmpty { keepKindCache(); keepNoIDFloor() }
        return ids
    }

    package func insertTasks(kind: String, options: EnqueueOptions, payloads: PayloadBatch, now: Timestamp) throws -> [Int64] {
        let template = NewTask(kind: kind, options: options)
        let nowText = text(now)
        let ids = try db.writeTransaction {
            var kinds = KindLookup()
            return try insertRows(payloads.count, sharing: true) { s, first, rows in
                try bindInsert(s, template, nowText: nowText, &kinds)
                for r in 0..<rows {
                    payloads.withPayload(first + r) { s.bind(r == 0 ? Self.payloadParameter : Int32(Self.insertParameters + r), text: $0) }
                }
            }
        }
        if !payloads.isEmpty { keepKindCache(); keepNoIDFloor() }
        return ids
    }

    /// Most rows one multi-row INSERT takes: measured in C on this schema, SQLite's
    /// work per row is 19.0k instructions at 1 row per statement, 12.0k at 10, 10.75k
    /// at 100; past 100 the gain is a few percent, and the statement text grows.
    static let maxRowsPerInsert = 100
    /// `maxRowsPerInsert`, or fewer where this SQLite was built to take fewer
    /// parameters per statement than 100 rows need (1,200; the default limit is
    /// 32,766 since SQLite 3.32, 999 before).
    private lazy var rowsPerInsert = max(1, min(Self.maxRowsPerInsert, db.parameterLimit / Self.insertParameters))

    /// Inserts `count` rows in order with multi-row INSERTs of up to 100 rows (a
    /// statement per size, kept: a producer's batches are mostly one size), `bind`
    /// binding rows `first ..< first + rows` to each, and returns their ids.
    /// SQLite opens the table and each of its indexes once per statement, which
    /// was two fifths of its work per row when a batch was inserted one row per
    /// statement.
    /// A multi-row insert reports only its last id; the others precede it one by
    /// one, because a new row's id is max(id) + 1 and this transaction holds the
    /// write lock. (SQLite picks a random id only once max(id) is 2^63 - 1: checked
    /// first, and such a table gets one row per statement.) After a purge of the
    /// newest tasks the first row's id is given (`idFloor`).
    private func insertRows(_ count: Int, sharing: Bool,
                            bind: (_ s: Statement, _ first: Int, _ rows: Int) throws -> Void) throws -> [Int64] {
        var ids: [Int64] = []
        ids.reserveCapacity(count)
        var chunk = rowsPerInsert
        if count > 1, let top = try maxIDStmt.firstRow({ $0.optionalInt(0) }) ?? nil, top >= Int64.max - Int64(count) { chunk = 1 }
        var i = 0
        if count > 0, let floor = try idFloor() {
            let s = try db.prepare(Self.insertSQL(sharing: sharing, firstID: true))
            try bind(s, 0, 1)
            s.bind(Self.idParameter(rows: 1, sharing: sharing), floor)
            try s.run()
            ids.append(db.lastInsertRowID)
            i = 1
        }
        while i < count {
            let rows = min(chunk, count - i)
            let s = try multiInsert(rows: rows, sharing: sharing)
            s.reset()
            defer { if rows > 1 { s.releaseLargeBuffers() } }
            try bind(s, i, rows)
            try s.run()
            let last = db.lastInsertRowID
            for r in 0..<rows { ids.append(last - Int64(rows - 1 - r)) }
            i += rows
        }
        return ids
    }

    /// Bytes the kept multi-row inserts hold in parameter buffers (for tests).
    var multiInsertKeptBytes: Int { multiInsertStmts.values.reduce(0) { $0 + $1.keptBytes } }

    private func multiInsert(rows: Int, sharing: Bool) throws -> Statement {
        if rows == 1 { return insertStmt }
        let key = sharing ? -rows : rows
        if let s = multiInsertStmts[key] { return s }
        if multiInsertStmts.count >= 8 { multiInsertStmts.removeAll() }
        let s = try db.prepare(Self.insertSQL(rows: rows, sharing: sharing))
        multiInsertStmts[key] = s
        return s
    }

    package func enqueueTasks(_ tasks: [NewTask], now: Timestamp) throws -> [EnqueuedTask] {
        let nowText = now.iso
        return try db.writeTransaction {
            var out: [EnqueuedTask] = []
            out.reserveCapacity(tasks.count)
            var kinds = KindLookup()
            for t in tasks {
                let o = t.options
                var deps: [Int64] = []
                var states: [(Int64, String)] = []
                for d in Set(o.after).sorted() {
                    guard let state = try db.prepare("SELECT state FROM tasks WHERE id = ? AND kind <> 'taskq.stop'")
                        .bind(.int(d)).firstRow({ $0.string(0) }) else {
                        throw TaskQueueError.notFound("no task \(d) to wait for (--after); nothing was enqueued")
                    }
                    states.append((d, state))
                }
                for (d, state) in states {
                    if state == "failed" || state == "cancelled" {
                        throw TaskQueueError.failed("task \(d) is already \(state), so a task after it could never run; nothing was enqueued")
                    }
                    if state != "succeeded" { deps.append(d) }
                }
                if let key = o.uniqueKey {
                    var blocked = t
                    if !deps.isEmpty { blocked.options.runAt = .blocked }
                    let floor = try idFloor()
                    let s = floor == nil ? insertUniqueStmt : try db.prepare(Self.insertSQL(unique: true, firstID: true))
                    s.reset()
                    try bindInsert(s, blocked, nowText: nowText, &kinds)
                    if let floor { s.bind(Self.idParameter(rows: 1, sharing: false), floor) }
                    if let id = try s.firstRow({ $0.int(0) }) {
                        try addDependencies(id, deps)
                        out.append(EnqueuedTask(id: id, existing: false))
                    } else {
                        let holder = try uniqueHolderStmt.bind(.text(key)).firstRow { $0.int(0) } ?? 0
                        out.append(EnqueuedTask(id: holder, existing: true))
                    }
                } else {
                    var blocked = t
                    if !deps.isEmpty { blocked.options.runAt = .blocked }
                    let id = try insert(blocked, nowText: nowText, &kinds)
                    try addDependencies(id, deps)
                    out.append(EnqueuedTask(id: id, existing: false))
                }
            }
            return out
        }
    }

    private func addDependencies(_ id: Int64, _ deps: [Int64]) throws {
        for d in deps {
            try db.prepare("UPDATE tasks SET has_dependants = 1 WHERE id = ? AND has_dependants IS NULL").bind(.int(d)).run()
            try db.prepare("INSERT OR IGNORE INTO task_dependencies (depends_on, task_id) VALUES (?, ?)")
                .bind(.int(d), .int(id)).run()
        }
    }

    /// Binds task `t` as row `row` (0-based) of an insert statement.
    @inline(__always)
    private func bindInsert(_ s: Statement, _ t: borrowing NewTask, nowText: String, _ kinds: inout KindLookup, row: Int = 0) throws {
        // `t.options.…` each time, not a local copy: a copy retains and releases
        // every string in the options, per row.
        let policy = t.options.storedPolicy(kind: try kindPolicy(of: t.kind, &kinds))
        let p = Int32(row * Self.insertParameters)
        s.bind(p + 1, t.kind)
        s.bind(p + 2, t.options.queue)
        s.bind(p + 3, t.options.priority)
        s.bind(p + 4, t.payload)
        // run_at '': ready at once (migrations/0006).
        if let runAt = t.options.runAt { s.bind(p + 5, runAt.iso) } else { s.bind(p + 5, "") }
        s.bind(p + 6, policy.maxAttempts)
        s.bind(p + 7, t.options.timeout)
        s.bind(p + 8, nowText)
        if let c = policy.onCrash { s.bind(p + 9, c.rawValue) } else { s.bindNull(p + 9) }
        if let u = t.options.uniqueKey { s.bind(p + 10, u) } else { s.bindNull(p + 10) }
        s.bind(p + 11, policy.backoffBase)
        s.bind(p + 12, policy.backoffCap)
    }

    /// One INSERT with the kept statement; returns the new id.
    func insert(_ t: NewTask, nowText: String, _ kinds: inout KindLookup) throws -> Int64 {
        let floor = try idFloor()
        let s = floor == nil ? insertStmt : try db.prepare(Self.insertSQL(firstID: true))
        s.reset()
        try bindInsert(s, t, nowText: nowText, &kinds)
        if let floor { s.bind(Self.idParameter(rows: 1, sharing: false), floor) }
        try s.run()
        return db.lastInsertRowID
    }

    // MARK: - ids after a purge

    /// Ids are max(id) + 1 (no AUTOINCREMENT: it costs a page write per insert
    /// statement). When purge has deleted the newest tasks, the highest id it
    /// deleted is in `task_id_high_water` (migrations/0007), and this is the id the
    /// next task must take so that none is given out twice; nil when SQLite's
    /// max(id) + 1 is right, as nearly always. Read in the write transaction, at
    /// most once per data version of the file: `noIDFloorVersion` is the version at
    /// which it was nil, kept across this connection's own commits of new tasks
    /// (`keepNoIDFloor`), so a producer that commits task after task reads it once.
    func idFloor() throws -> Int64? {
        let version = db.dataVersion
        if version == noIDFloorVersion { return nil }
        let floor = try idFloorStmt.firstRow { $0.int(0) }
        if floor == nil { noIDFloorVersion = version }
        return floor
    }

    /// After a commit of new tasks: none can be under the mark any more.
    func keepNoIDFloor() {
        noIDFloorVersion = db.dataVersion
    }

    // MARK: - workers

    package func finishAndClaim(_ outcomes: [TaskOutcome], claim: ClaimRequest?, now: Timestamp)
        throws -> (accepted: [Bool], claimed: [ClaimedTask]) {
        try db.writeTransaction {
            var accepted = try finishInRange(outcomes, now: now)
            for (k, o) in outcomes.enumerated() where !accepted[k] { accepted[k] = try apply(o, now: now) }
            // A successful command's stderr: a statement only for the tasks that wrote some.
            for (k, o) in outcomes.enumerated() where accepted[k] && o.stderr != nil { try keepStderr(o) }
            var claimed: [ClaimedTask] = []
            if let claim, claim.limit > 0 { claimed = try self.claim(claim, now: now) }
            try updateClaimedLists(reported: outcomes, claimed: claimed, owner: claim?.owner)
            return (accepted, claimed)
        }
    }

    private func claim(_ claim: ClaimRequest, now: Timestamp) throws -> [ClaimedTask] {
        let nowText = text(now)
        func rows<T>(delayed: Bool, keyed: Bool = true, _ read: (Statement) -> T) throws -> [T] {
            let s = try claimStatement(kinds: claim.kinds.count, queues: claim.queues?.count, delayed: delayed, keyed: keyed)
            s.reset()
            s.bind(1, nowText)
            s.bind(2, claim.supervisorID)
            s.bind(3, Int64(claim.limit))
            var i: Int32 = 4
            bindList(s, &i, claim.kinds)
            if let queues = claim.queues { bindList(s, &i, queues) }
            return try s.rows(read)
        }
        // Usually no task with a start time is due: one probe of a small index, and
        // the ready tasks come in claim order by themselves.
        let due = try rows(delayed: true, claimOrderKeyed)
        var tasks = due.isEmpty ? try rows(delayed: false, keyed: false, claimedTask)
            : Self.merge(due, try rows(delayed: false, claimOrderKeyed), limit: claim.limit)
        if tasks.isEmpty { return [] }
        // A run of consecutive ids, as a deep queue of one kind gives: its range.
        // (Each id one more than the one before, checked without overflowing: a row
        // put in by hand may hold any id.)
        let first = tasks[0].id
        let consecutive = tasks.indices.dropFirst().allSatisfy { tasks[$0 - 1].id < Int64.max && tasks[$0].id == tasks[$0 - 1].id + 1 }
        let m = consecutive ? markRangeClaimedStmt : markClaimedStmt
        m.reset()
        m.bind(1, claim.owner)
        m.bind(2, nowText)
        m.bind(3, Int64(claim.pid))
        m.bind(4, claim.host)
        if consecutive {
            rangeClaims += 1
            m.bind(5, first)
            m.bind(6, tasks[tasks.count - 1].id)
        } else {
            m.bind(5, bytes: idListText(tasks.map(\.id)), asText: true)
        }
        try m.run()
        // This transaction holds the write lock since it read the rows.
        guard db.changes == tasks.count else {
            throw TaskQueueError.unavailable("claim: marked \(db.changes) of \(tasks.count) tasks running")
        }
        for k in tasks.indices { tasks[k].attempt += 1 }
        return tasks
    }

    /// A claimed row with its place in the claim order: priority, then the time it
    /// became claimable (ISO text compares as time), then id.
    typealias KeyedClaim = (task: ClaimedTask, priority: Int64, since: String)

    private func claimOrderKeyed(_ r: Statement) -> KeyedClaim {
        (claimedTask(r), r.int(10), r.string(11))
    }

    /// The first `limit` of two lists that are each in claim order, in claim order.
    static func merge(_ a: [KeyedClaim], _ b: [KeyedClaim], limit: Int) -> [ClaimedTask] {
        func precedes(_ x: KeyedClaim, _ y: KeyedClaim) -> Bool {
            if x.priority != y.priority { return x.priority > y.priority }
            if x.since != y.since { return x.since < y.since }
            return x.task.id < y.task.id
        }
        var out: [ClaimedTask] = []
        out.reserveCapacity(min(limit, a.count + b.count))
        var i = 0, j = 0
        while out.count < limit && (i < a.count || j < b.count) {
            if j == b.count || (i < a.count && precedes(a[i], b[j])) { out.append(a[i].task); i += 1 } else { out.append(b[j].task); j += 1 }
        }
        return out
    }

    /// The claim's second half: the chosen rows become this worker's running attempt.
    /// `rows` names them: by a JSON array of ids, or, when the ids are consecutive,
    /// by their range, every id in it chosen (a range scan, where the list costs a
    /// seek from the root per id; measured in C on this schema, Benchmarks/ceiling:
    /// 8% less of SQLite's work per claimed-and-finished task).
    private static func markRunningSQL(_ rows: String) -> String {
        """
        UPDATE tasks SET state = 'running', owner = ?1, attempts = attempts + 1, started_at = ?2,
                         worker_pid = ?3, worker_host = ?4
        WHERE \(rows)
        """
    }
    private lazy var markClaimedStmt = try! db.prepare(Self.markRunningSQL("id IN (SELECT value FROM json_each(?5))"))
    private lazy var markRangeClaimedStmt = try! db.prepare(Self.markRunningSQL("id BETWEEN ?5 AND ?6 AND state = 'queued'"))

    /// `[1,2,3]`, written digit by digit (no String per id).
    private func idListText(_ ids: [Int64]) -> [UInt8] {
        var text: [UInt8] = []
        text.reserveCapacity(ids.count * 21 + 2)
        text.append(UInt8(ascii: "["))
        for (i, id) in ids.enumerated() {
            if i > 0 { text.append(UInt8(ascii: ",")) }
            appendDecimal(id, to: &text)
        }
        text.append(UInt8(ascii: "]"))
        return text
    }

    private lazy var claimedListStmt = try! db.prepare("SELECT claimed FROM processes WHERE id = ?1")
    private lazy var setClaimedListStmt = try! db.prepare("UPDATE processes SET claimed = ?2 WHERE id = ?1")

    /// Keeps `processes.claimed` (what recovery reads; migration 0005): each owner's
    /// list loses the tasks it reported on and gains the ones it just claimed. One
    /// small row per owner and transaction, where an index on tasks.owner cost an
    /// insert and a delete per task.
    private func updateClaimedLists(reported outcomes: [TaskOutcome], claimed: [ClaimedTask], owner: Int64?) throws {
        var owners: [Int64] = []
        if let owner, !claimed.isEmpty { owners.append(owner) }
        for o in outcomes where !owners.contains(o.owner) { owners.append(o.owner) }
        for p in owners {
            let row = try claimedListStmt.bind(.int(p)).firstRow { $0.isNull(0) ? nil : parseIDList($0.string(0)) }
            // No row: the owner was declared dead and recovered. Whatever this
            // transaction did as that owner is rolled back, so nothing can ever be
            // left running under an owner that no recovery would find.
            guard let row else { throw OwnerNotRegistered(owner: p) }
            guard let old = row else { continue }   // NULL: registered before the list; recovery scans
            var ids: [Int64]
            if old.count == outcomes.count && zip(old, outcomes).allSatisfy({ $0 == $1.taskID && $1.owner == p }) {
                ids = []   // the usual case: it reported on exactly its last claim, in order
            } else {
                let done = Set(outcomes.lazy.filter { $0.owner == p }.map(\.taskID))
                ids = old.filter { !done.contains($0) }
            }
            if p == owner { ids += claimed.map(\.id) }
            if ids == old { continue }
            let s = setClaimedListStmt
            s.reset()
            s.bind(1, p)
            s.bind(2, bytes: idListText(ids), asText: true)
            try s.run()
        }
    }

    /// The successful outcomes among `outcomes`, finished by one UPDATE over their id
    /// range when the ids lie close together, as a claimed batch's do
    /// (Sources/CSQLiteTuning/outcomes.c says why and how); true at the index of each
    /// outcome it stored. The rest take the single-row path (`apply`): failures, a
    /// task others wait for (has_dependants), one this worker no longer owns.
    private func finishInRange(_ outcomes: [TaskOutcome], now: Timestamp) throws -> [Bool] {
        var stored = [Bool](repeating: false, count: outcomes.count)
        guard outcomes.count >= 2, let table = outcomeTable else { return stored }
        let owner = outcomes[0].owner
        func inRange(_ o: TaskOutcome) -> [UInt8]? {
            if case .succeeded(let output) = o.result, o.owner == owner { return output }
            return nil
        }
        var lo = Int64.max, hi = Int64.min, count = 0, bytes = 0
        var ids = Set<Int64>(minimumCapacity: outcomes.count)
        for o in outcomes {
            // Two outcomes for one task: the single-row path takes them in order and
            // accepts the first that the fence lets through, as it always did.
            guard ids.insert(o.taskID).inserted else { return stored }
            guard let output = inRange(o) else { continue }
            lo = min(lo, o.taskID)
            hi = max(hi, o.taskID)
            count += 1
            bytes += output.count
        }
        // Dense enough that the scan passes few rows it leaves alone; outputs small
        // enough that copying them into the batch (whose buffer the connection keeps)
        // costs little next to the statements it saves. Larger ones are bound in place.
        guard count >= 2, bytes <= Self.rangeFinishMaxBytes else { return stored }
        let (span, overflow) = hi.subtractingReportingOverflow(lo)
        guard !overflow, span < 2 * Int64(count) else { return stored }
        guard taskq_outcomes_begin(table, lo, Int32(span + 1)) == SQLITE_OK else { return stored }
        for o in outcomes {
            guard let output = inRange(o) else { continue }
            let rc = output.withUnsafeBytes {
                taskq_outcomes_add(table, o.taskID, o.attempt, $0.baseAddress, $0.count, storedAsText(output) ? 1 : 0)
            }
            guard rc == SQLITE_OK else { return stored }
        }
        let s = finishRangeStmt
        s.reset()
        s.bind(1, text(now))
        s.bind(2, lo)
        s.bind(3, hi)
        s.bind(4, owner)
        try s.run()
        rangeFinishes += 1
        var applied = 0
        for (k, o) in outcomes.enumerated() where inRange(o) != nil && taskq_outcomes_applied(table, o.taskID) != 0 {
            stored[k] = true
            applied += 1
        }
        // The result function runs only for rows the UPDATE changes (SQLite computes
        // the SET clause after the whole WHERE clause): the two counts agree, or this
        // transaction is rolled back rather than reporting on rows it did not write.
        guard applied == db.changes else {
            throw TaskQueueError.unavailable("finishing a batch: \(db.changes) rows changed, \(applied) noted")
        }
        return stored
    }

    /// How many claims were marked by their id range, and batches finished by theirs,
    /// on this connection (for the tests: the paths a worker's usual batch takes).
    package private(set) var rangeClaims = 0, rangeFinishes = 0
    /// The most output bytes one range finish copies (see `finishInRange`).
    static let rangeFinishMaxBytes = 1 << 20
    /// The SQL functions `finishRangeStmt` reads a batch through.
    private let outcomeTable: OpaquePointer?
    /// `succeedStmt` over a range: the same fence, with each row's attempt from the batch.
    private lazy var finishRangeStmt = try! db.prepare("""
        UPDATE tasks SET state = 'succeeded', owner = NULL, finished_at = ?1, result = taskq_outcome_result(id)
        WHERE id BETWEEN ?2 AND ?3 AND owner = ?4 AND attempts = taskq_outcome_attempt(id)
          AND state = 'running' AND has_dependants IS NULL
        """)

    /// UTF-8 without NULs is stored as TEXT (the sqlite3 shell and SQL string
    /// functions show it as written); anything else as a BLOB.
    private func storedAsText(_ output: [UInt8]) -> Bool {
        !output.contains(0) && isValidUTF8(output)
    }

    /// Applies one outcome under the fence; true when it changed the row.
    private func apply(_ o: TaskOutcome, now: Timestamp) throws -> Bool {
        if try applyFenced(o, now: now, withDependants: false) { return try settle(o, hasDependants: false, now: now) }
        // Nothing changed: the fence refused it, or others wait for this task.
        switch o.result {
        case .succeeded, .failed(_, nil):
            guard try applyFenced(o, now: now, withDependants: true) else { return false }
            return try settle(o, hasDependants: true, now: now)
        default:
            return false
        }
    }

    /// `now` as stored text, formatted once per millisecond rather than once per
    /// task (every outcome and the claim of one finishAndClaim share one `now`, and
    /// a producer commits many times within one millisecond).
    private var isoCache: (Timestamp, String) = (Timestamp(milliseconds: -1), "")
    private func text(_ t: Timestamp) -> String {
        if isoCache.0 != t { isoCache = (t, t.iso) }
        return isoCache.1
    }

    /// One fenced UPDATE; true when it changed the row.
    private func applyFenced(_ o: TaskOutcome, now: Timestamp, withDependants: Bool) throws -> Bool {
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

    /// After an accepted outcome: history row, dependants.
    private func settle(_ o: TaskOutcome, hasDependants: Bool, now: Timestamp) throws -> Bool {
        switch o.result {
        case .succeeded:
            if hasDependants { try releaseDependants(of: o.taskID, now: now) }
        case .failed(let error, let retryAt):
            try keepAttempt(o.taskID, attempt: o.attempt, outcome: o.failure, error: error, now: now)
            if retryAt == nil && hasDependants {
                try cancelDependants(of: o.taskID, reason: "task \(o.taskID), which it was to run after, failed", now: now)
            }
        case .released:
            if o.failure == TaskOutcome.notStarted { break }
            try keepAttempt(o.taskID, attempt: o.attempt, outcome: "released", error: "put back without counting the attempt (its worker was stopping)", now: now)
        }
        return true
    }

    /// Stores the end of a successful attempt's stderr beside its result (migration 0007).
    private func keepStderr(_ o: TaskOutcome) throws {
        let s = stderrStmt
        s.reset()
        s.bind(1, o.stderr ?? "")
        s.bind(2, o.taskID)
        s.bind(3, o.attempt)
        try s.run()
    }

    private lazy var stderrStmt = try! db.prepare("UPDATE tasks SET stderr = ?1 WHERE id = ?2 AND attempts = ?3 AND state = 'succeeded'")

    /// Copies the attempt that just ended into task_attempts.
    private func keepAttempt(_ taskID: Int64, attempt: Int64, outcome: String, error: String?, now: Timestamp) throws {
        let s = attemptStmt
        s.reset()
        s.bind(1, taskID)
        s.bind(2, attempt)
        s.bind(3, now.iso)
        s.bind(4, outcome)
        s.bind(.opt(error), at: 5)
        try s.run()
    }

    /// `id` succeeded: each dependant waits for one fewer task, and runs now when
    /// it waits for none. One indexed read when it has none (the usual case).
    private func releaseDependants(of id: Int64, now: Timestamp) throws {
        let dependants = try dependantsStmt.bind(.int(id)).rows { $0.int(0) }
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

    /// `id` ended failed or cancelled: every task waiting for it (and for those,
    /// transitively) ends cancelled with `reason`.
    /// Cancels the tasks waiting for `id`, and those waiting for them; returns their ids.
    @discardableResult
    func cancelDependants(of id: Int64, reason: String, now: Timestamp) throws -> [Int64] {
        var cancelled: [Int64] = []
        var work = [(id, reason)]
        while let (dep, why) = work.popLast() {
            let dependants = try dependantsStmt.bind(.int(dep)).rows { $0.int(0) }
            for d in dependants {
                try db.prepare("""
                    UPDATE tasks SET state = 'cancelled', finished_at = ?, last_error = ? WHERE id = ? AND state = 'queued'
                    """).bind(.ts(now), .text(why), .int(d)).run()
                // Its task_dependencies rows stay: a retry makes it wait for them again.
                if db.changes == 1 {
                    cancelled.append(d)
                    work.append((d, "task \(d), which it was to run after, was cancelled"))
                }
            }
        }
        return cancelled
    }

    private var nextRunAtStmts: [String: Statement] = [:]

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

private func jsonArray(_ items: [String]) -> String {
    "[" + items.map(JSON.quote).joined(separator: ",") + "]"
}

/// The integers of a JSON array of ids ('[17,18]'), as `processes.claimed` holds them.
private func parseIDList(_ text: String) -> [Int64] {
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

private func parseStringArray(_ text: String) -> [String] {
    guard case .array(let items)? = try? JSON.parse(text) else { return [] }
    return items.compactMap(\.stringValue)
}
