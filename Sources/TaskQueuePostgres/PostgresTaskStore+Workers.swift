import TaskQueue

// Workers: the fenced finish (with `OutcomeSettling`'s primitives), the claim, the
// owners' claimed lists, recovery.

extension PostgresTaskStore: OutcomeSettling {
    /// What a worker gets of a claimed task, read by `claimedTask`: the columns of
    /// table alias `t` when given ("t.").
    static func claimedColumns(_ t: String = "") -> String {
        ["id", "kind", "queue", "payload", "attempts", "max_attempts", "timeout_s", "on_crash", "backoff_base_s", "backoff_cap_s"]
            .map { t + $0 }.joined(separator: ", ")
    }

    func claimedTask(_ r: PGResult, _ i: Int) -> ClaimedTask {
        ClaimedTask(id: r.int(i, 0), kind: r.string(i, 1), queue: r.string(i, 2), payload: r.string(i, 3), attempt: r.int(i, 4),
                    maxAttempts: r.int(i, 5), timeout: r.optionalDouble(i, 6), onCrash: r.text(i, 7).flatMap(CrashPolicy.init(rawValue:)),
                    backoffBase: r.optionalDouble(i, 8), backoffCap: r.optionalDouble(i, 9))
    }

    /// The worker's transaction. Its statements join a few hundred ids (an array,
    /// the picked rows) to `tasks`; with the statistics of a mid-sized table (tens
    /// of thousands of queued tasks) the planner hashes the whole table for that
    /// (measured: 20,000 queued, a claim of 512 took 9 ms instead of under one,
    /// and a drain ran at a fifth of its speed), and more rows make it worse.
    /// Nested loops over the primary key read only the rows named, whatever the
    /// statistics; PostgreSQL has no plan hints, so these settings, for this
    /// transaction only, are the hint (sent with BEGIN: no extra round trip).
    /// A disabled path costs 10^10 in the estimates, which would make every claim
    /// cross the JIT's threshold (a quarter of a second of compiling, measured):
    /// JIT off too.
    /// The worker's statements are prepared, and planned once per connection for
    /// any values (`force_generic_plan`): planning the claim took longer than
    /// running it (0.45 ms against 0.1 ms for one task, measured), and the plan
    /// does not depend on the values (the tests check it).
    static let beginWorker = [PGStatement.begin, PGStatement(sql: """
        SELECT set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true),
               set_config('enable_seqscan', 'off', true), set_config('jit', 'off', true),
               set_config('plan_cache_mode', 'force_generic_plan', true)
        """)]

    /// The owner fence: the owners' rows, locked in id order.
    static let lockOwnersSQL = "SELECT id, claimed FROM processes WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE"

    /// The fenced finish of a batch of successes: $1 now, then arrays of ids,
    /// owners, attempts, results and stderr tails.
    static let finishBatchSQL = """
        UPDATE tasks t SET state = 'succeeded', owner = NULL, finished_at = $1, result = o.result, stderr = o.stderr
        FROM unnest($2::int8[], $3::int8[], $4::int8[], $5::bytea[], $6::text[]) AS o(id, owner, attempt, result, stderr)
        WHERE t.id = o.id AND t.owner = o.owner AND t.attempts = o.attempt AND t.state = 'running'
        RETURNING t.id, t.has_dependants
        """

    package func finishAndClaim(_ outcomes: [TaskOutcome], claim: ClaimRequest?, now: Timestamp)
        throws -> (accepted: [Bool], claimed: [ClaimedTask]) {
        let claim = claim.flatMap { $0.limit > 0 ? $0 : nil }
        if outcomes.isEmpty && claim == nil { return ([], []) }
        // The owner fence: every owner's row, locked in id order before anything
        // is written. Recovery deletes the row first: it waits for this
        // transaction, or this one finds the row gone.
        var owners = Set(outcomes.map(\.owner))
        if let claim { owners.insert(claim.owner) }
        var begin = Self.beginWorker + [PGStatement(sql: Self.lockOwnersSQL, params: [.ints(owners.sorted())])]
        // Sent with BEGIN too, in one round trip: the batch of successes and the
        // claim. They are fenced by their own rows, so they may run before the
        // owners' rows are read: an owner found gone throws below, and rolls them
        // back. A finish that may have committed unseen is settled first, step by step.
        let oneTrip = uncertainFinish == nil
        let batch = oneTrip ? successBatch(outcomes) : []
        if !batch.isEmpty { begin.append(finishBatchStatement(outcomes, batch, now: now)) }
        if oneTrip, let claim { begin.append(claimStatement(claim, now: now)) }
        let result = try write(begin: begin) { begun -> (accepted: [Bool], claimed: [ClaimedTask]) in
            let r = begun[1]
            var lists: [Int64: [Int64]?] = [:]
            for i in 0..<r.count { lists[r.int(i, 0)] = .some(r.int64s(i, 1)) }
            if let earlier = uncertainFinish, let settled = try settle(earlier, lists: lists, outcomes, claim: claim, now: now) {
                return settled
            }
            for o in outcomes where lists[o.owner] == nil { throw OwnerNotRegistered(owner: o.owner) }
            let accepted = try finish(outcomes, now: now, batch: oneTrip ? (batch, batch.isEmpty ? nil : begun[2]) : nil)
            var claimed: [ClaimedTask] = []
            if let claim {
                claimed = try self.claim(claim, now: now, first: oneTrip ? begun.last : nil)
                // As on SQLite: an owner whose row is gone may not claim; with
                // nothing to claim there is nothing to refuse.
                if lists[claim.owner] == nil && !claimed.isEmpty { throw OwnerNotRegistered(owner: claim.owner) }
            }
            let after = try updateClaimedLists(lists, reported: outcomes, claimed: claimed, owner: claim?.owner)
            uncertainFinish = UncertainFinish(before: lists, after: after, outcomes: outcomes, accepted: accepted,
                                              claimed: claimed, claimOwner: claim?.owner)
            return (accepted, claimed)
        }
        uncertainFinish = nil
        return result
    }

    /// Keeps `processes.claimed` (what recovery reads): each owner's list loses the
    /// tasks it reported on and gains the ones it just claimed. One small row
    /// (HOT, fillfactor 50) per owner and transaction, written with the COMMIT.
    /// Returns the new lists.
    private func updateClaimedLists(_ lists: [Int64: [Int64]?], reported outcomes: [TaskOutcome], claimed: [ClaimedTask],
                                    owner: Int64?) throws -> [Int64: [Int64]?] {
        var after = lists
        for (p, list) in lists {
            guard let old = list else { continue }   // NULL: recovery scans the table
            let done = Set(outcomes.lazy.filter { $0.owner == p }.map(\.taskID))
            var ids = done.isEmpty ? old : old.filter { !done.contains($0) }
            if p == owner { ids += claimed.map(\.id) }
            if ids == old { continue }
            db.beforeCommit.append(PGStatement(sql: "UPDATE processes SET claimed = $2 WHERE id = $1", params: [.int(p), .ints(ids)]))
            after[p] = .some(ids)
        }
        return after
    }

    /// A finish and claim not yet known to have committed: kept from its last
    /// statement until its COMMIT returns. When the connection died after COMMIT
    /// was sent, the next `finishAndClaim` (run again on a new connection, by
    /// `keepingConnected` or by the worker's own retry) settles it. Its owners'
    /// claimed lists tell: only that owner's own transactions rewrite its list, and
    /// recovery deletes the row; so, read under the row lock (which waits for the
    /// old transaction if its session still lives), lists equal to what it wrote
    /// mean it committed, and anything else that it did not (rolled back, or the
    /// row recovered: then the owner fence refuses as usual).
    struct UncertainFinish {
        var before: [Int64: [Int64]?]
        var after: [Int64: [Int64]?]
        var outcomes: [TaskOutcome]
        var accepted: [Bool]
        var claimed: [ClaimedTask]
        var claimOwner: Int64?
    }

    /// The answer of a finish and claim that did commit, for the same call made
    /// again: its outcomes' verdicts and the tasks it claimed (run by the caller:
    /// they are running under its owner), with any outcome it did not carry
    /// applied now. Nil when it did not commit: the call runs afresh.
    private func settle(_ earlier: UncertainFinish, lists: [Int64: [Int64]?], _ outcomes: [TaskOutcome], claim: ClaimRequest?,
                        now: Timestamp) throws -> (accepted: [Bool], claimed: [ClaimedTask])? {
        uncertainFinish = nil
        // A call that changed no list wrote nothing (no finish accepted, nothing
        // claimed): running it again is harmless.
        let wrote = earlier.after.contains { p, list in earlier.before[p].map { $0 != list } ?? true }
        let committed = wrote && earlier.after.allSatisfy { p, list in lists[p].map { $0 == list } ?? false }
        guard committed else { return nil }
        var verdicts: [String: Bool] = [:]
        for (o, ok) in zip(earlier.outcomes, earlier.accepted) { verdicts["\(o.taskID)/\(o.attempt)/\(o.owner)"] = ok }
        var accepted: [Bool] = []
        for o in outcomes {
            if let ok = verdicts["\(o.taskID)/\(o.attempt)/\(o.owner)"] { accepted.append(ok); continue }
            guard lists[o.owner] != nil else { throw OwnerNotRegistered(owner: o.owner) }
            accepted.append(try apply(o, now: now))
        }
        // Claimed by that call: this owner's now, whether or not this call claims.
        // A caller that no longer claims is stopping and removes its process,
        // which gives them back.
        let claimed = claim?.owner == earlier.claimOwner ? earlier.claimed : []
        uncertainFinish = earlier
        return (accepted, claimed)
    }

    // MARK: - finishing

    /// The outcomes written by one UPDATE over the batch (`finishBatchSQL`): the
    /// successes, the first outcome for each task only.
    private func successBatch(_ outcomes: [TaskOutcome]) -> [Int] {
        var batch: [Int] = []
        var seen = Set<Int64>()
        for (k, o) in outcomes.enumerated() where seen.insert(o.taskID).inserted {
            if case .succeeded = o.result { batch.append(k) }
        }
        return batch
    }

    private func finishBatchStatement(_ outcomes: [TaskOutcome], _ batch: [Int], now: Timestamp) -> PGStatement {
        PGStatement(sql: Self.finishBatchSQL, params: [
            .ts(now), .ints(batch.map { outcomes[$0].taskID }), .ints(batch.map { outcomes[$0].owner }),
            .ints(batch.map { outcomes[$0].attempt }),
            .byteas(batch.map { k in if case .succeeded(let out) = outcomes[k].result { return out } else { return [] } }),
            .list(batch.map { .opt(outcomes[$0].stderr) }, of: PGType.text, arrayOID: PGType.textArray)])
    }

    /// Applies each outcome under the fence; true at the index of each it applied.
    /// The successful ones are written by one UPDATE over the batch (`batch`: its
    /// outcomes and that UPDATE's result when it has run already); the rest,
    /// rarer, one by one in order, so the result is as if each outcome were
    /// applied alone, in order.
    private func finish(_ outcomes: [TaskOutcome], now: Timestamp, batch given: ([Int], PGResult?)? = nil) throws -> [Bool] {
        var accepted = [Bool](repeating: false, count: outcomes.count)
        let batch = given?.0 ?? successBatch(outcomes)
        if !batch.isEmpty {
            let s = finishBatchStatement(outcomes, batch, now: now)
            let r = try given?.1 ?? db.execPrepared(s.sql, s.params)
            var done: [Int64: Bool] = [:]
            for i in 0..<r.count { done[r.int(i, 0)] = r.bool(i, 1) }
            for k in batch {
                guard let hasDependants = done[outcomes[k].taskID] else { continue }
                accepted[k] = true
                if hasDependants { try releaseDependants(of: outcomes[k].taskID, now: now) }
            }
        }
        let inBatch = Set(batch)
        for (k, o) in outcomes.enumerated() where !inBatch.contains(k) { accepted[k] = try apply(o, now: now) }
        return accepted
    }

    /// Applies one outcome under the fence, with its history row and dependants;
    /// true when it changed the row.
    @discardableResult
    func apply(_ o: TaskOutcome, now: Timestamp) throws -> Bool {
        let set: String
        var values: [PGValue] = [.int(o.taskID), .int(o.owner), .int(o.attempt)]
        switch o.result {
        case .succeeded(let output):
            set = "state = 'succeeded', finished_at = $4, result = $5, stderr = $6"
            values += [.ts(now), .bytes(output), .opt(o.stderr)]
        case .failed(let error, let retryAt?):
            set = "state = 'queued', run_at = $4, last_error = $5"
            values += [.ts(retryAt), .text(error)]
        case .failed(let error, nil):
            set = "state = 'failed', finished_at = $4, last_error = $5"
            values += [.ts(now), .text(error)]
        case .released:
            set = "state = 'queued', attempts = attempts - 1"
        }
        // The fence: $1 id, $2 owner, $3 attempt.
        let r = try db.exec("""
            UPDATE tasks SET owner = NULL, \(set) WHERE id = $1 AND owner = $2 AND attempts = $3 AND state = 'running'
            RETURNING has_dependants
            """, values)
        guard r.count == 1 else { return false }
        try settle(o, hasDependants: r.bool(0, 0), now: now)
        return true
    }

    package func keepAttempt(_ taskID: Int64, attempt: Int64, outcome: String, error: String?, now: Timestamp) throws {
        try db.exec("""
            INSERT INTO task_attempts (task_id, attempt, worker_pid, worker_host, started_at, finished_at, outcome, error)
            SELECT id, $2, worker_pid, worker_host, started_at, $3, $4, $5 FROM tasks WHERE id = $1
            """, [.int(taskID), .int(attempt), .ts(now), .text(outcome), .opt(error)])
    }

    /// The dependants are locked before their remaining dependencies are counted:
    /// two dependencies finishing at once in two transactions would each still see
    /// the other's row, and neither would release the task; locked, the second
    /// counts after the first committed.
    package func releaseDependants(of id: Int64, now: Timestamp) throws {
        let r = try db.exec("DELETE FROM task_dependencies WHERE depends_on = $1 RETURNING task_id", [.int(id)])
        if r.count == 0 { return }
        let dependants = r.rows { r.int($0, 0) }.sorted()
        try db.exec("SELECT 1 FROM tasks WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE", [.ints(dependants)])
        let released = try db.exec("""
            UPDATE tasks SET run_at = $2 WHERE id = ANY($1) AND state = 'queued' AND run_at = $3
              AND NOT EXISTS (SELECT 1 FROM task_dependencies d WHERE d.task_id = tasks.id)
            """, [.ints(dependants), .ts(now), .ts(.blocked)]).changes
        // Claimable now: an idle worker need not wait for its next look.
        if released > 0 { try db.exec(PostgresChangeSignal.notifyIfWaiting) }
    }

    package func dependants(of id: Int64) throws -> [Int64] {
        let r = try db.exec("SELECT task_id FROM task_dependencies WHERE depends_on = $1 ORDER BY task_id", [.int(id)])
        return r.rows { r.int($0, 0) }
    }

    package func cancelIfQueued(_ id: Int64, reason: String, now: Timestamp) throws -> Bool {
        try db.exec("""
            UPDATE tasks SET state = 'cancelled', finished_at = $1, last_error = $2 WHERE id = $3 AND state = 'queued'
            """, [.ts(now), .text(reason), .int(id)]).changes == 1
    }

    // MARK: - recovery

    /// How long recovery waits for a process row another transaction holds (ms).
    static let recoveryLockWaitMs = 250

    @discardableResult
    package func recoverProcess(_ processID: Int64, now: Timestamp, startedTaskID: Int64?,
                                outcome: (ClaimedTask) -> TaskOutcome.Result) throws -> [ClaimedTask] {
        try write {
            // Deleted first: of two recoverers one gets the row, the other waits and
            // finds nothing; a worker of this process finishing or claiming right
            // now holds the row, so this waits and then reads its new list. It
            // waits briefly: a worker frozen in the middle of its transaction
            // (SIGSTOP) holds the row until the server ends its session
            // (`idle_in_transaction_session_timeout`), and a recoverer waiting that
            // long would miss its own heartbeats. Past the wait this fails as busy,
            // nothing changed, and the next round tries again.
            try db.exec("SET LOCAL lock_timeout = \(Self.recoveryLockWaitMs)")
            let row = try db.exec("DELETE FROM processes WHERE id = $1 RETURNING claimed IS NOT NULL, claimed", [.int(processID)])
            var held: [ClaimedTask] = []
            if row.count == 1 {
                let listed = row.bool(0, 0)
                let r = try db.exec("""
                    SELECT \(Self.claimedColumns()) FROM tasks
                    WHERE \(listed ? "id = ANY($2) AND " : "")owner = $1 AND state = 'running' ORDER BY id FOR NO KEY UPDATE
                    """, listed ? [.int(processID), .ints(row.int64s(0, 1) ?? [])] : [.int(processID)])
                held = r.rows { claimedTask(r, $0) }
            }
            for t in held {
                if let started = startedTaskID, t.id != started {
                    try apply(TaskOutcome(taskID: t.id, owner: processID, attempt: t.attempt, result: .released,
                                          failure: TaskOutcome.notStarted), now: now)
                } else {
                    try apply(TaskOutcome(taskID: t.id, owner: processID, attempt: t.attempt, result: outcome(t),
                                          failure: "crashed"), now: now)
                }
            }
            // Released or retried now: claimable by the idle workers.
            if !held.isEmpty { try db.exec(PostgresChangeSignal.notifyIfWaiting) }
            try db.exec("""
                UPDATE tasks SET state = 'cancelled', finished_at = $1,
                       last_error = 'its supervisor (process ' || $2 || ') ended before it stopped by this sentinel'
                WHERE kind = 'taskq.stop' AND state = 'queued' AND payload::jsonb ->> 'supervisor' = $2
                """, [.ts(now), .text(String(processID))])
            return held
        }
    }

    package func recoverOrphans(now: Timestamp, outcome: (ClaimedTask, Int64) -> TaskOutcome.Result) throws
        -> [(task: ClaimedTask, owner: Int64)] {
        // A scan (no index covers running tasks), outside any transaction; then the
        // rows found are locked and looked at again. An owner id is never reused,
        // so an owner without a row never gets one back.
        let orphaned = "state = 'running' AND NOT EXISTS (SELECT 1 FROM processes p WHERE p.id = tasks.owner)"
        let seen = try pg { let r = try db.exec("SELECT id FROM tasks WHERE \(orphaned)"); return r.rows { r.int($0, 0) } }
        if seen.isEmpty { return [] }
        return try write {
            let r = try db.exec("""
                SELECT \(Self.claimedColumns()), owner FROM tasks WHERE id = ANY($1) AND \(orphaned) ORDER BY id FOR NO KEY UPDATE
                """, [.ints(seen)])
            let held = r.rows { (task: claimedTask(r, $0), owner: r.int($0, 10)) }
            if !held.isEmpty { try db.exec(PostgresChangeSignal.notifyIfWaiting) }
            for (t, owner) in held {
                try apply(TaskOutcome(taskID: t.id, owner: owner, attempt: t.attempt, result: outcome(t, owner), failure: "crashed"),
                          now: now)
            }
            return held
        }
    }

    // MARK: - idle workers

    package func nextRunAt(_ claim: ClaimRequest, now: Timestamp, retriesOnly: Bool) throws -> Timestamp? {
        // Reads the index of queued tasks with a start time (ready ones are not in
        // it); tasks blocked behind others (--after) are parked at `.blocked`.
        var values: [PGValue] = [.ts(now), .ts(.blocked), .texts(claim.kinds)]
        if let q = claim.queues { values.append(.texts(q)) }
        return try pg {
            let r = try db.exec("""
                SELECT min(run_at) FROM tasks
                WHERE state = 'queued' AND run_at IS NOT NULL AND run_at > $1 AND run_at < $2 AND kind = ANY($3)
                \(claim.queues == nil ? "" : "AND queue = ANY($4)") \(retriesOnly ? "AND attempts > 0" : "")
                """, values)
            return r.optionalTimestamp(0, 0)
        }
    }
}
