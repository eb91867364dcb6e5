import TaskQueue

// Per-kind retry policy (table `kinds`, migrations/0004_retry_policy.sql). Every
// insert resolves its task's policy against it (`kindPolicy(of:_:)`); the rest are
// the verbs of `taskq kind set / list / remove`.

/// The kind read last in a write transaction and its policy: a stream of tasks of
/// one kind reads `kinds` once per transaction.
struct KindLookup {
    var kind: String?
    var policy: KindPolicy?
}

extension SQLiteTaskStore: KindPolicyStore {
    static let kindColumns = "kind, max_attempts, backoff_base_s, backoff_cap_s, on_crash"

    func kindRow(_ r: Statement) -> (kind: String, policy: KindPolicy) {
        (kind: r.string(0), policy: KindPolicy(maxAttempts: r.optionalInt(1), backoffBase: r.optionalDouble(2),
                                               backoffCap: r.optionalDouble(3),
                                               onCrash: r.text(4).flatMap(CrashPolicy.init(rawValue:))))
    }

    /// The policy row of `kind` (nil: none): from `last` when it was the last one
    /// read in this transaction, else from `kindCache` when no other connection
    /// has committed since it was filled, else from the table.
    ///
    /// The cache is what lets one producer committing task after task skip a
    /// SELECT per commit (about 6% of `enqueue --lines` with a commit per line).
    /// It is keyed to SQLite's data version of the file, which moves with every
    /// commit, from any connection. Checked at the first lookup of a transaction
    /// (the write lock is held: nothing else commits before this one does), and
    /// re-recorded after this connection's own commits that did not write `kinds`
    /// (`keepKindCache`), so only another connection's commit, or a `kind set` on
    /// this one, empties it.
    func kindPolicy(of kind: String, _ last: inout KindLookup) throws -> KindPolicy? {
        if last.kind != kind {
            let version = db.dataVersion
            if version != kindCacheVersion || kindCache.count > 1_000 {
                kindCache.removeAll(keepingCapacity: true)
                kindCacheVersion = version
            }
            let policy: KindPolicy?
            if let cached = kindCache[kind] {
                policy = cached
            } else {
                let s = kindPolicyStmt
                s.reset()
                s.bind(1, kind)
                policy = try s.firstRow(kindRow)?.policy
                kindCache[kind] = .some(policy)
            }
            last = KindLookup(kind: kind, policy: policy)
        }
        return last.policy
    }

    /// After a commit of a transaction that looked up kinds and wrote none: the
    /// cache is as good at the new data version (our own commit) as it was before.
    func keepKindCache() {
        kindCacheVersion = db.dataVersion
    }

    package func setKindPolicy(_ kind: String, _ policy: KindPolicy, clear: Set<KindPolicy.Field>, now: Timestamp) throws -> KindPolicy {
        kindCacheVersion = nil
        return try db.writeTransaction {
            let merged = policy.overriding(try db.prepare("SELECT \(Self.kindColumns) FROM kinds WHERE kind = ?")
                .bind(.text(kind)).firstRow(kindRow)?.policy ?? KindPolicy()).clearing(clear)
            // The merge may pair a new cap with an old base: check the whole row.
            try merged.validate()
            if merged.isEmpty {
                try db.prepare("DELETE FROM kinds WHERE kind = ?").bind(.text(kind)).run()
                return merged
            }
            try db.prepare("""
                INSERT INTO kinds (kind, max_attempts, backoff_base_s, backoff_cap_s, on_crash, updated_at)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                ON CONFLICT (kind) DO UPDATE SET max_attempts = ?2, backoff_base_s = ?3, backoff_cap_s = ?4, on_crash = ?5,
                                                 updated_at = ?6
                """).bind(.text(kind), .opt(merged.maxAttempts), .opt(merged.backoffBase), .opt(merged.backoffCap),
                          .opt(merged.onCrash?.rawValue), .ts(now)).run()
            return merged
        }
    }

    package func removeKindPolicy(_ kind: String) throws -> Bool {
        kindCacheVersion = nil
        return try db.writeTransaction {
            try db.prepare("DELETE FROM kinds WHERE kind = ?").bind(.text(kind)).run()
            return db.changes > 0
        }
    }

    package func kindPolicies() throws -> [(kind: String, policy: KindPolicy)] {
        try db.prepare("SELECT \(Self.kindColumns) FROM kinds ORDER BY kind").rows(kindRow)
    }
}
