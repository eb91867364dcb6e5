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
    /// `readOnly`: opened read-only (`SQLITE_OPEN_READONLY`, `query_only`): no
    /// write, no migration; a schema older than this taskq's is an `.unavailable`
    /// error, for the caller to open it once without `readOnly`.
    package init(path: String, create: Bool, synchronous: Synchronous = .normal, busyTimeout: Double = 10,
                 cacheKiB: Int = 32768, checks: Bool = true, readOnly: Bool = false) throws {
        var st = stat()
        if stat(path, &st) == 0 {
            if (st.st_mode & S_IFMT) == S_IFDIR {
                throw TaskQueueError.badData("\(path) is a directory, not a database file")
            }
        } else if !create {
            throw TaskQueueError.notFound("no database at \(path) (create one with 'taskq init', or choose another with --db or $TASKQ_DB)")
        }
        db = try SQLiteConnection(path: path, create: create, busyTimeoutMs: Int32(max(0, min(busyTimeout * 1000, 86_400_000))),
                                  readOnly: readOnly)
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
        if db.isReadOnly { try Migrator.checkCurrent(db) } else { try Migrator.migrate(db, now: .now()) }
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
    var multiInsertStmts: [Int: Statement] = [:]
    lazy var maxIDStmt = try! db.prepare("SELECT max(id) FROM tasks")
    lazy var idFloorStmt = try! db.prepare("""
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
    lazy var insertUniqueStmt = try! db.prepare(Self.insertSQL(unique: true))
    lazy var uniqueHolderStmt = try! db.prepare("""
        SELECT id FROM tasks WHERE unique_key = ?1 AND (state = 'queued' OR state = 'running')
        """)
    /// History: one row per attempt that did not succeed, copied from the task row.
    lazy var attemptStmt = try! db.prepare("""
        INSERT INTO task_attempts (task_id, attempt, worker_pid, worker_host, started_at, finished_at, outcome, error)
        SELECT id, ?2, worker_pid, worker_host, started_at, ?3, ?4, ?5 FROM tasks WHERE id = ?1
        """)
    lazy var dependantsStmt = try! db.prepare("SELECT task_id FROM task_dependencies WHERE depends_on = ?1")
    lazy var succeedStmt = try! db.prepare("""
        UPDATE tasks SET state = 'succeeded', owner = NULL, finished_at = ?1, result = ?2
        WHERE id = ?3 AND owner = ?4 AND attempts = ?5 AND state = 'running' AND has_dependants IS NULL
        """)
    lazy var retryStmt = try! db.prepare("""
        UPDATE tasks SET state = 'queued', owner = NULL, run_at = ?1, last_error = ?2
        WHERE id = ?3 AND owner = ?4 AND attempts = ?5 AND state = 'running'
        """)
    lazy var failStmt = try! db.prepare("""
        UPDATE tasks SET state = 'failed', owner = NULL, finished_at = ?1, last_error = ?2
        WHERE id = ?3 AND owner = ?4 AND attempts = ?5 AND state = 'running' AND has_dependants IS NULL
        """)
    /// The same two for a task that others wait for (--after): tried only when the
    /// plain one changed nothing, so a task nobody waits for costs no extra work.
    /// (Not RETURNING: that builds a temporary table on every execution.)
    lazy var succeedWithDependantsStmt = try! db.prepare("""
        UPDATE tasks SET state = 'succeeded', owner = NULL, finished_at = ?1, result = ?2
        WHERE id = ?3 AND owner = ?4 AND attempts = ?5 AND state = 'running' AND has_dependants IS NOT NULL
        """)
    lazy var failWithDependantsStmt = try! db.prepare("""
        UPDATE tasks SET state = 'failed', owner = NULL, finished_at = ?1, last_error = ?2
        WHERE id = ?3 AND owner = ?4 AND attempts = ?5 AND state = 'running' AND has_dependants IS NOT NULL
        """)
    lazy var releaseStmt = try! db.prepare("""
        UPDATE tasks SET state = 'queued', owner = NULL, attempts = attempts - 1
        WHERE id = ?3 AND owner = ?4 AND attempts = ?5 AND state = 'running'
        """)
    lazy var stillRunningStatement = try! db.prepare("""
        SELECT 1 FROM tasks WHERE id = ?1 AND owner = ?2 AND attempts = ?3 AND state = 'running'
        """)
    lazy var heartbeatStmt = try! db.prepare(
        "UPDATE processes SET heartbeat_at = ?, expires_at = ? WHERE id = ?")
    lazy var sentinelStmt = try! db.prepare("""
        SELECT id, json_extract(payload, '$.mode') FROM tasks INDEXED BY tasks_stop_sentinels
        WHERE kind = 'taskq.stop' AND state = 'queued' AND json_extract(payload, '$.supervisor') = ?
        ORDER BY id LIMIT 1
        """)
    var claimStmts: [String: Statement] = [:]

    /// What a worker gets of a claimed task, read by `claimedTask`.
    static let claimedColumns = "id, kind, queue, payload, attempts, max_attempts, timeout_s, on_crash, backoff_base_s, backoff_cap_s"

    func claimedTask(_ r: Statement) -> ClaimedTask {
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
    func bindList(_ s: Statement, _ i: inout Int32, _ values: [String]) {
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
    func claimStatement(kinds: Int, queues: Int?, delayed: Bool, keyed: Bool) throws -> Statement {
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

    // MARK: - state kept for the statements below (extensions hold no stored properties)

    /// `maxRowsPerInsert`, or fewer where this SQLite was built to take fewer
    /// parameters per statement than 100 rows need (1,200; the default limit is
    /// 32,766 since SQLite 3.32, 999 before).
    lazy var rowsPerInsert = max(1, min(Self.maxRowsPerInsert, db.parameterLimit / Self.insertParameters))

    lazy var markClaimedStmt = try! db.prepare(Self.markRunningSQL("id IN (SELECT value FROM json_each(?5))"))
    lazy var markRangeClaimedStmt = try! db.prepare(Self.markRunningSQL("id BETWEEN ?5 AND ?6 AND state = 'queued'"))

    lazy var claimedListStmt = try! db.prepare("SELECT claimed FROM processes WHERE id = ?1")
    lazy var setClaimedListStmt = try! db.prepare("UPDATE processes SET claimed = ?2 WHERE id = ?1")

    /// How many claims were marked by their id range, and batches finished by theirs,
    /// on this connection (for the tests: the paths a worker's usual batch takes).
    package internal(set) var rangeClaims = 0, rangeFinishes = 0
    /// The most output bytes one range finish copies (see `finishInRange`).
    static let rangeFinishMaxBytes = 1 << 20
    /// The SQL functions `finishRangeStmt` reads a batch through.
    let outcomeTable: OpaquePointer?
    /// `succeedStmt` over a range: the same fence, with each row's attempt from the batch.
    lazy var finishRangeStmt = try! db.prepare("""
        UPDATE tasks SET state = 'succeeded', owner = NULL, finished_at = ?1, result = taskq_outcome_result(id)
        WHERE id BETWEEN ?2 AND ?3 AND owner = ?4 AND attempts = taskq_outcome_attempt(id)
          AND state = 'running' AND has_dependants IS NULL
        """)

    /// `now` as stored text, formatted once per millisecond rather than once per
    /// task (every outcome and the claim of one finishAndClaim share one `now`, and
    /// a producer commits many times within one millisecond).
    var isoCache: (Timestamp, String) = (Timestamp(milliseconds: -1), "")

    lazy var stderrStmt = try! db.prepare("UPDATE tasks SET stderr = ?1 WHERE id = ?2 AND attempts = ?3 AND state = 'succeeded'")

    var nextRunAtStmts: [String: Statement] = [:]
}
