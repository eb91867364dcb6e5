import TaskQueue

// Producers: inserts, unique keys, dependencies (`--after`), and the per-kind
// retry policy every insert resolves its tasks against.

extension PostgresTaskStore {
    /// One INSERT for any number of rows: each column bound as one array and
    /// unnested, so a batch costs one statement and one round trip. Each row's
    /// retry policy is resolved against its kind's row in `kinds` in the same
    /// statement (as `EnqueueOptions.storedPolicy` does: the task's own value, else
    /// the kind's, a backoff half the task sets winning over the kind's other half,
    /// else 3 attempts), and rows are inserted in the order given, so ids follow it.
    /// With `unique`, a row whose key is held by a queued or running task is
    /// skipped (the partial unique index decides, also against a concurrent insert).
    static func insertSQL(unique: Bool) -> String {
        """
        INSERT INTO tasks (kind, queue, priority, payload, run_at, max_attempts, timeout_s, created_at, on_crash,
                           unique_key, backoff_base_s, backoff_cap_s)
        SELECT x.k, x.q, x.p, x.pl, x.r, coalesce(x.m, kd.max_attempts, 3), x.t, $9, coalesce(x.oc, kd.on_crash), x.u,
               coalesce(x.bb, CASE WHEN kd.backoff_base_s IS NOT NULL THEN least(kd.backoff_base_s, coalesce(x.bc, kd.backoff_base_s)) END),
               coalesce(x.bc, CASE WHEN kd.backoff_cap_s IS NOT NULL THEN greatest(kd.backoff_cap_s, coalesce(x.bb, kd.backoff_cap_s)) END)
        FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::timestamptz[], $6::int8[], $7::float8[],
                    $8::text[], $10::text[], $11::float8[], $12::float8[]) WITH ORDINALITY AS x(k, q, p, pl, r, m, t, oc, u, bb, bc, n)
        LEFT JOIN kinds kd ON kd.kind = x.k
        ORDER BY x.n
        """ + (unique ? """

        ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND state IN ('queued', 'running') DO NOTHING
        """ : "") + "\nRETURNING id"
    }

    /// The INSERT of one task per payload ($4), all of one kind with the same
    /// options and retry policy, resolved before (`startInsertEach`): no join, and
    /// one VALUES row for one payload. For several, the payloads are an array, and
    /// the kind and queue are cast to their columns' domains in subqueries the
    /// executor runs once per statement, so their CHECKs are not evaluated again
    /// for every row.
    static func sharedInsertSQL(rows: Int) -> String {
        let columns = """
            INSERT INTO tasks (kind, queue, priority, payload, run_at, max_attempts, timeout_s, created_at, on_crash,
                               backoff_base_s, backoff_cap_s)
            """
        let values = rows == 1 ? """
            VALUES ($1::tasks_kind, $2::tasks_queue, $3::int8, $4::text, $5::timestamptz, $6::int8, $7::float8, $8::timestamptz,
                    $9::text, $10::float8, $11::float8)
            """ : """
            SELECT (SELECT $1::tasks_kind), (SELECT $2::tasks_queue), $3::int8, b.pl, $5::timestamptz, $6::int8, $7::float8,
                   $8::timestamptz, $9::text, $10::float8, $11::float8
            FROM unnest($4::text[]) WITH ORDINALITY AS b(pl, n)
            ORDER BY b.n
            """
        return columns + "\n" + values + "\nRETURNING id"
    }

    package func insertTasks(_ tasks: [NewTask], now: Timestamp) throws -> [Int64] {
        if tasks.contains(where: { $0.options.uniqueKey != nil || !$0.options.after.isEmpty }) {
            return try enqueueTasks(tasks, now: now).map(\.id)
        }
        if tasks.isEmpty { return [] }
        // One round trip: the insert lock, the NOTIFY if a worker waits, the rows.
        return try pg {
            let r = try db.pipeline(Self.insertPrologue + [insertStatement(tasks, now: now, unique: false)])
            return Self.ids(r.last!)
        }
    }

    package func insertTasks(kind: String, options o: EnqueueOptions, payloads: PayloadBatch, now: Timestamp) throws -> [Int64] {
        if payloads.isEmpty { return [] }
        do { return try startInsertEach(kind: kind, options: o, batches: [payloads], now: now).finish()[0] }
        catch let e as InsertsStopped { throw e.cause }
    }

    /// Each batch in its own transaction, all sent in one round trip: a producer
    /// committing line by line (`enqueue --lines`) waits for the server once per
    /// read of its input, not once per line, and reads on while they run. Each
    /// transaction is an enqueue's: the insert lock, the NOTIFY if a worker waits,
    /// the rows, COMMIT. The first that fails stops the pipeline (the server skips
    /// the rest). The kind's retry policy is read once, before they are sent, and
    /// resolved here (`EnqueueOptions.storedPolicy`), so each INSERT is a plain one.
    package func startInsertEach(kind: String, options o: EnqueueOptions, batches: [PayloadBatch], now: Timestamp) throws -> PendingInserts {
        if o.uniqueKey != nil || !o.after.isEmpty {
            return .oneByOne(batches) { b in
                try insertTasks((0..<b.count).map { NewTask(kind: kind, payload: b.payload($0), options: o) }, now: now)
            }
        }
        let one = Self.beginInsert.count + 2   // BEGIN, the prologue, the INSERT, COMMIT
        let policy: KindPolicy?
        do { policy = try pg { try kindPolicies(of: [kind])[kind] } } catch {
            let stopped = InsertsStopped(committed: [], unconfirmed: 0, cause: error)   // nothing was sent
            return PendingInserts { throw stopped }
        }
        let stored = o.storedPolicy(kind: policy)
        let statements = batches.flatMap {
            Self.beginInsert + [Self.sharedInsert(kind: kind, options: o, policy: stored, payloads: $0, now: now), .commit]
        }
        let sent: SentPipeline
        do { sent = try pg { try db.send(statements) } } catch {
            // A send cut off by a lost connection may have delivered some of them.
            let stopped = InsertsStopped(committed: [], unconfirmed: db.isBroken ? batches.count : 0, cause: error)
            return PendingInserts { throw stopped }
        }
        return PendingInserts { [self] in
            let (results, failure) = db.collect(sent)
            var committed: [[Int64]] = []
            for i in batches.indices {
                guard results[i * one + one - 1] != nil, let rows = results[i * one + one - 2] else { break }
                committed.append(Self.ids(rows))
            }
            guard let failure else { return committed }
            // The Sync ends the pipeline, not the failed transaction block.
            if !db.isIdle && !db.isBroken { _ = try? db.run(script: "ROLLBACK") }
            let lost = db.isBroken || failure.sqlstate.hasPrefix("08")
            throw InsertsStopped(committed: committed, unconfirmed: lost ? batches.count - committed.count : 0,
                                 cause: explained(failure).taskQueueError(location: db.location))
        }
    }

    /// `sharedInsertSQL` for `payloads`, with its parameters.
    private static func sharedInsert(kind: String, options o: EnqueueOptions, policy p: KindPolicy, payloads: PayloadBatch,
                                     now: Timestamp) -> PGStatement {
        let payload: PGValue = payloads.count == 1 ? .text(payloads.payload(0)) : .texts((0..<payloads.count).map { payloads.payload($0) })
        return PGStatement(sql: sharedInsertSQL(rows: payloads.count), params: [
            .text(kind), .text(o.queue), .int(o.priority), payload, .opt(o.runAt), .opt(p.maxAttempts), .opt(o.timeout),
            .ts(now), .opt(p.onCrash?.rawValue), .opt(p.backoffBase), .opt(p.backoffCap),
        ])
    }

    /// Inserts `tasks` in this transaction; returns their ids in order (a sequence
    /// hands them out in the order the rows are inserted).
    func insertRows(_ tasks: [NewTask], now: Timestamp, unique: Bool = false) throws -> [Int64] {
        if tasks.isEmpty { return [] }
        let s = insertStatement(tasks, now: now, unique: unique)
        return Self.ids(try db.execPrepared(s.sql, s.params))
    }

    private static func ids(_ r: PGResult) -> [Int64] { r.rows { r.int($0, 0) }.sorted() }

    /// The INSERT of `tasks` (see `insertSQL`), with its parameters.
    private func insertStatement(_ tasks: [NewTask], now: Timestamp, unique: Bool) -> PGStatement {
        var kinds: [PGValue] = [], queues: [PGValue] = [], priorities: [PGValue] = [], payloads: [PGValue] = []
        var runAts: [PGValue] = [], maxAttempts: [PGValue] = [], timeouts: [PGValue] = [], onCrash: [PGValue] = []
        var keys: [PGValue] = [], bases: [PGValue] = [], caps: [PGValue] = []
        for t in tasks {
            let o = t.options
            kinds.append(.text(t.kind)); queues.append(.text(o.queue)); priorities.append(.int(o.priority))
            payloads.append(.text(t.payload)); runAts.append(.opt(o.runAt)); maxAttempts.append(.opt(o.maxAttempts))
            timeouts.append(.opt(o.timeout)); onCrash.append(.opt(o.onCrash?.rawValue)); keys.append(.opt(o.uniqueKey))
            bases.append(.opt(o.backoffBase)); caps.append(.opt(o.backoffCap))
        }
        let text = PGType.text, textArray = PGType.textArray
        return PGStatement(sql: Self.insertSQL(unique: unique), params: [
            .list(kinds, of: text, arrayOID: textArray), .list(queues, of: text, arrayOID: textArray),
            .list(priorities, of: PGType.int8, arrayOID: PGType.int8Array), .list(payloads, of: text, arrayOID: textArray),
            .list(runAts, of: PGType.timestamptz, arrayOID: PGType.timestamptzArray),
            .list(maxAttempts, of: PGType.int8, arrayOID: PGType.int8Array),
            .list(timeouts, of: PGType.float8, arrayOID: PGType.float8Array), .list(onCrash, of: text, arrayOID: textArray),
            .ts(now), .list(keys, of: text, arrayOID: textArray),
            .list(bases, of: PGType.float8, arrayOID: PGType.float8Array), .list(caps, of: PGType.float8, arrayOID: PGType.float8Array),
        ])
    }

    /// The policy rows of `kinds` (absent: the kind has none), in one read.
    func kindPolicies(of kinds: Set<String>) throws -> [String: KindPolicy] {
        let r = try db.exec("SELECT \(Self.kindColumns) FROM kinds WHERE kind = ANY($1)", [.texts(Array(kinds))])
        return Dictionary(uniqueKeysWithValues: r.rows { kindRow(r, $0) })
    }

    static let kindColumns = "kind, max_attempts, backoff_base_s, backoff_cap_s, on_crash"

    func kindRow(_ r: PGResult, _ i: Int) -> (String, KindPolicy) {
        (r.string(i, 0), KindPolicy(maxAttempts: r.optionalInt(i, 1), backoffBase: r.optionalDouble(i, 2),
                                    backoffCap: r.optionalDouble(i, 3), onCrash: r.text(i, 4).flatMap(CrashPolicy.init(rawValue:))))
    }

    package func enqueueTasks(_ tasks: [NewTask], now: Timestamp) throws -> [EnqueuedTask] {
        try write(begin: Self.beginInsert) {
            var out: [EnqueuedTask] = []
            out.reserveCapacity(tasks.count)
            for t in tasks {
                let deps = try lockDependencies(Set(t.options.after).sorted())
                var row = t
                if !deps.isEmpty { row.options.runAt = .blocked }
                guard let id = try insertRows([row], now: now, unique: t.options.uniqueKey != nil).first else {
                    let holder = try db.exec("SELECT id FROM tasks WHERE unique_key = $1 AND state IN ('queued', 'running')",
                                             [.text(t.options.uniqueKey ?? "")])
                    out.append(EnqueuedTask(id: holder.count > 0 ? holder.int(0, 0) : 0, existing: true))
                    continue
                }
                if !deps.isEmpty {
                    try db.exec("UPDATE tasks SET has_dependants = true WHERE id = ANY($1) AND has_dependants IS NULL", [.ints(deps)])
                    try db.exec("""
                        INSERT INTO task_dependencies (depends_on, task_id) SELECT d, $2 FROM unnest($1::int8[]) AS d
                        ON CONFLICT DO NOTHING
                        """, [.ints(deps), .int(id)])
                }
                out.append(EnqueuedTask(id: id, existing: false))
            }
            return out
        }
    }

    /// Locks the tasks `ids` (sorted) and returns those not yet succeeded, which a
    /// new task must wait for. Locked first, so a dependency cannot finish between
    /// this read and the dependency row's insert (its finishing transaction waits
    /// for this one, then sees the row and releases or cancels the new task).
    private func lockDependencies(_ ids: [Int64]) throws -> [Int64] {
        if ids.isEmpty { return [] }
        let r = try db.exec("""
            SELECT id, state FROM tasks WHERE id = ANY($1) AND kind <> 'taskq.stop' ORDER BY id FOR NO KEY UPDATE
            """, [.ints(ids)])
        let states = Dictionary(uniqueKeysWithValues: r.rows { (r.int($0, 0), r.string($0, 1)) })
        for d in ids where states[d] == nil {
            throw TaskQueueError.notFound("no task \(d) to wait for (--after); nothing was enqueued")
        }
        for d in ids where states[d] == "failed" || states[d] == "cancelled" {
            throw TaskQueueError.failed("task \(d) is already \(states[d]!), so a task after it could never run; nothing was enqueued")
        }
        return ids.filter { states[$0] != "succeeded" }
    }
}

extension PostgresTaskStore: KindPolicyStore {
    package func setKindPolicy(_ kind: String, _ policy: KindPolicy, clear: Set<KindPolicy.Field>, now: Timestamp) throws -> KindPolicy {
        try write {
            let r = try db.exec("SELECT \(Self.kindColumns) FROM kinds WHERE kind = $1 FOR UPDATE", [.text(kind)])
            let merged = policy.overriding(r.count == 1 ? kindRow(r, 0).1 : KindPolicy()).clearing(clear)
            // The merge may pair a new cap with an old base: check the whole row.
            try merged.validate()
            if merged.isEmpty {
                try db.exec("DELETE FROM kinds WHERE kind = $1", [.text(kind)])
                return merged
            }
            try db.exec("""
                INSERT INTO kinds (kind, max_attempts, backoff_base_s, backoff_cap_s, on_crash, updated_at)
                VALUES ($1, $2, $3, $4, $5, $6)
                ON CONFLICT (kind) DO UPDATE SET max_attempts = $2, backoff_base_s = $3, backoff_cap_s = $4, on_crash = $5,
                                                 updated_at = $6
                """, [.text(kind), .opt(merged.maxAttempts), .opt(merged.backoffBase), .opt(merged.backoffCap),
                      .opt(merged.onCrash?.rawValue), .ts(now)])
            return merged
        }
    }

    package func removeKindPolicy(_ kind: String) throws -> Bool {
        try write { try db.exec("DELETE FROM kinds WHERE kind = $1", [.text(kind)]).changes > 0 }
    }

    package func kindPolicies() throws -> [(kind: String, policy: KindPolicy)] {
        try pg {
            let r = try db.exec("SELECT \(Self.kindColumns) FROM kinds ORDER BY kind")
            return r.rows { let (k, p) = kindRow(r, $0); return (kind: k, policy: p) }
        }
    }
}
