import CSQLite
import CSQLiteTuning
import TaskQueue
#if canImport(Glibc)
import Glibc
#endif

// Producers: inserting tasks, one by one or many rows per statement, and the ids
// they get after a purge.

extension SQLiteTaskStore {
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
    func insertRows(_ count: Int, sharing: Bool,
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

    func multiInsert(rows: Int, sharing: Bool) throws -> Statement {
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

    func addDependencies(_ id: Int64, _ deps: [Int64]) throws {
        for d in deps {
            try db.prepare("UPDATE tasks SET has_dependants = 1 WHERE id = ? AND has_dependants IS NULL").bind(.int(d)).run()
            try db.prepare("INSERT OR IGNORE INTO task_dependencies (depends_on, task_id) VALUES (?, ?)")
                .bind(.int(d), .int(id)).run()
        }
    }

    /// Binds task `t` as row `row` (0-based) of an insert statement.
    @inline(__always)
    func bindInsert(_ s: Statement, _ t: borrowing NewTask, nowText: String, _ kinds: inout KindLookup, row: Int = 0) throws {
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
}
