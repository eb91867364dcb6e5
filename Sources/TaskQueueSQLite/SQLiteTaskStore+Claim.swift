import CSQLite
import CSQLiteTuning
import TaskQueue
#if canImport(Glibc)
import Glibc
#endif

// Workers: finish and claim in one transaction, the claim in two halves merged,
// the claimed lists recovery reads, and batches finished by their id range.

extension SQLiteTaskStore {
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

    func claim(_ claim: ClaimRequest, now: Timestamp) throws -> [ClaimedTask] {
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

    func claimOrderKeyed(_ r: Statement) -> KeyedClaim {
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
    static func markRunningSQL(_ rows: String) -> String {
        """
        UPDATE tasks SET state = 'running', owner = ?1, attempts = attempts + 1, started_at = ?2,
                         worker_pid = ?3, worker_host = ?4
        WHERE \(rows)
        """
    }

    /// `[1,2,3]`, written digit by digit (no String per id).
    func idListText(_ ids: [Int64]) -> [UInt8] {
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


    /// Keeps `processes.claimed` (what recovery reads; migration 0005): each owner's
    /// list loses the tasks it reported on and gains the ones it just claimed. One
    /// small row per owner and transaction, where an index on tasks.owner cost an
    /// insert and a delete per task.
    func updateClaimedLists(reported outcomes: [TaskOutcome], claimed: [ClaimedTask], owner: Int64?) throws {
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
    func finishInRange(_ outcomes: [TaskOutcome], now: Timestamp) throws -> [Bool] {
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
}
