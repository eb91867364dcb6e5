/// A supervisor or worker as registered in the store.
public struct ProcessRecord: Sendable, Equatable {
    public enum Role: String, Sendable { case supervisor, worker }
    /// The owner id tasks refer to; never reused (unlike a pid).
    public var id: Int64
    public var role: Role
    public var supervisorID: Int64?
    public var pid: Int32
    public var host: String
    public var bootID: String
    public var startTicks: Int64
    /// Queues served; `nil`: all.
    public var queues: [String]?
    public var kinds: [String]
    public var startedAt: Timestamp
    public var heartbeatAt: Timestamp
    public var expiresAt: Timestamp

    public init(id: Int64, role: Role, supervisorID: Int64?, pid: Int32, host: String, bootID: String, startTicks: Int64,
                queues: [String]?, kinds: [String], startedAt: Timestamp, heartbeatAt: Timestamp, expiresAt: Timestamp) {
        self.id = id; self.role = role; self.supervisorID = supervisorID; self.pid = pid; self.host = host
        self.bootID = bootID; self.startTicks = startTicks; self.queues = queues; self.kinds = kinds
        self.startedAt = startedAt; self.heartbeatAt = heartbeatAt; self.expiresAt = expiresAt
    }
}

/// What a worker asks for when it claims.
package struct ClaimRequest: Sendable, Equatable {
    /// The claiming worker's `processes.id`.
    package var owner: Int64
    /// Its supervisor: a live stop sentinel addressed to it bounds what may be claimed.
    package var supervisorID: Int64
    /// Kinds it has handlers for (never empty).
    package var kinds: [String]
    /// Queues it serves; `nil`: all.
    package var queues: [String]?
    /// At most this many tasks.
    package var limit: Int
    /// The worker's pid and host, recorded on each claimed task (for attempt history).
    package var pid: Int32
    package var host: String

    package init(owner: Int64, supervisorID: Int64, kinds: [String], queues: [String]?, limit: Int,
                 pid: Int32 = 0, host: String = "") {
        self.owner = owner; self.supervisorID = supervisorID; self.kinds = kinds; self.queues = queues; self.limit = limit
        self.pid = pid; self.host = host
    }
}

/// How an attempt ended, to be written only if the attempt still owns its task.
package struct TaskOutcome: Sendable, Equatable {
    package enum Result: Sendable, Equatable {
        /// The handler succeeded with this output.
        case succeeded([UInt8])
        /// The attempt failed; retry at `retryAt`, or end `failed` when it is nil.
        case failed(error: String, retryAt: Timestamp?)
        /// Put back as queued without counting the attempt (shutdown, abort).
        case released
    }
    package var taskID: Int64
    package var owner: Int64
    package var attempt: Int64
    package var result: Result
    /// How a failed attempt failed, for the attempt history: "failed",
    /// "timed out" or "crashed". (A released attempt is kept as "released",
    /// unless this is `notStarted`: claimed in a batch, never run, nothing to keep.)
    package var failure: String
    package static let notStarted = "not started"
    /// The end of a successful command handler's stderr (stored in `tasks.stderr`);
    /// nil when it wrote none. A failed attempt's stderr is part of its error.
    package var stderr: String?

    package init(taskID: Int64, owner: Int64, attempt: Int64, result: Result, failure: String = "failed", stderr: String? = nil) {
        self.taskID = taskID; self.owner = owner; self.attempt = attempt; self.result = result; self.failure = failure
        self.stderr = stderr
    }
}

/// Thrown by `finishAndClaim` when a process writes as an owner whose
/// registration is gone (another process declared it dead and recovered its
/// tasks). Nothing was written; the process must stop, as on a lost lease.
package struct OwnerNotRegistered: Error, CustomStringConvertible {
    package let owner: Int64
    package init(owner: Int64) { self.owner = owner }
    package var description: String {
        "process \(owner) is no longer registered (it was declared dead and its tasks recovered)"
    }
}

/// A live stop sentinel: a `taskq.stop` row addressed to one supervisor.
public struct StopSentinel: Sendable, Equatable {
    public enum Mode: String, Sendable { case drain, now }
    public var id: Int64
    public var supervisorID: Int64
    public var mode: Mode
    public init(id: Int64, supervisorID: Int64, mode: Mode) {
        self.id = id; self.supervisorID = supervisorID; self.mode = mode
    }
}

/// The storage seam. The core and the CLI reach the database only through these
/// verbs; a backend (SQLite today, PostgreSQL later) implements them all and must
/// pass the shared conformance tests. Every verb that writes is one transaction:
/// it happens whole or not at all.
package protocol TaskStore: AnyObject {
    /// Inserts `tasks` in one transaction and returns their ids, in order. Ids only
    /// grow: a task inserted later always has a larger id.
    func insertTasks(_ tasks: [NewTask], now: Timestamp) throws -> [Int64]

    /// `insertTasks` for one task per payload, all of `kind` with `options` (which
    /// have no unique key and no `after`): the bulk path of `enqueue --lines`. A
    /// backend without a faster way keeps the default, which builds the tasks.
    func insertTasks(kind: String, options: EnqueueOptions, payloads: PayloadBatch, now: Timestamp) throws -> [Int64]

    /// Begins `insertTasks(kind:options:payloads:now:)` for each of `batches`, each
    /// in a transaction of its own, in order; `finish` waits for them and returns
    /// each batch's ids. When one fails, the batches before it stay committed and
    /// those after it are not written: `finish` throws an `InsertsStopped`. A store
    /// may return before they are done (PostgreSQL sends them in one round trip,
    /// and the caller reads its next input while they run); until `finish`, use
    /// the store for nothing else. The default inserts them here, one by one.
    func startInsertEach(kind: String, options: EnqueueOptions, batches: [PayloadBatch], now: Timestamp) throws -> PendingInserts

    /// In one transaction: applies each outcome only if its task is still
    /// `running` with that owner and attempt (the fence; a rescued task's late
    /// result changes nothing), then, when `claim` is given, claims up to
    /// `claim.limit` ready tasks (queued, run_at <= now, one of its kinds and
    /// queues, not a paused queue, id below any live stop sentinel addressed to its supervisor), in
    /// order of priority (high first), run_at, id, marking them `running`, owned by
    /// `claim.owner`, attempts + 1. Never returns a task another live owner holds.
    /// A failed or released outcome is kept in the attempt history; a succeeded
    /// one costs no extra write. A task that ends failed or succeeded settles its
    /// dependants (`after`) in the same transaction.
    /// Returns the claimed tasks and, per outcome, whether the fence accepted it.
    /// Throws `OwnerNotRegistered`, and writes nothing, when the claim's owner (if
    /// it claimed anything) or an outcome's owner has no process row: it was
    /// declared dead and recovered, so it may neither finish nor claim (a claim under
    /// such an owner would leave a task `running` that no recovery ever finds).
    func finishAndClaim(_ outcomes: [TaskOutcome], claim: ClaimRequest?, now: Timestamp) throws
        -> (accepted: [Bool], claimed: [ClaimedTask])

    /// The earliest `run_at` after `now` among queued tasks `claim` could take
    /// (its kinds and queues; tasks blocked on others excluded), or nil; with
    /// `retriesOnly`, among those waiting out a retry backoff (attempts > 0). An
    /// idle worker sleeps until then at the latest, so a delayed task or a retry
    /// after its backoff starts on time without polling.
    func nextRunAt(_ claim: ClaimRequest, now: Timestamp, retriesOnly: Bool) throws -> Timestamp?

    /// Registers a process; its lease runs until `now + lease`.
    func registerProcess(role: ProcessRecord.Role, supervisorID: Int64?, pid: Int32, host: String, bootID: String,
                         startTicks: Int64, queues: [String]?, kinds: [String], now: Timestamp, lease: Double) throws -> Int64

    /// Extends a process's lease. False when its row is gone: another process
    /// declared it dead and recovered its tasks, so it must stop at once.
    func heartbeat(processID: Int64, now: Timestamp, lease: Double) throws -> Bool

    /// Every registered process.
    func processes() throws -> [ProcessRecord]

    /// In one transaction: for each task `processID` still runs, applies
    /// `outcome(task)` (fenced as in `finishAndClaim`, kept in the attempt history
    /// as "crashed"); cancels stop sentinels addressed to it; deletes its row.
    /// When `startedTaskID` is given, the process is known to have been running
    /// that task only: every other task it held was claimed in its batch but never
    /// started, and goes back as queued without counting or recording an attempt.
    /// Returns the tasks it held.
    @discardableResult
    func recoverProcess(_ processID: Int64, now: Timestamp, startedTaskID: Int64?,
                        outcome: (ClaimedTask) -> TaskOutcome.Result) throws -> [ClaimedTask]

    /// Tasks left `running` under an owner that has no process row (which no
    /// `recoverProcess` would ever find): in one transaction, each gets
    /// `outcome(task, owner)`, fenced and kept in the attempt history as in
    /// `recoverProcess`. Returns them with their owners. May read the whole table:
    /// run it at start and now and then, not per claim.
    func recoverOrphans(now: Timestamp, outcome: (ClaimedTask, Int64) -> TaskOutcome.Result) throws
        -> [(task: ClaimedTask, owner: Int64)]

    /// Deletes a process row that holds no tasks (clean exit).
    func removeProcess(_ processID: Int64) throws

    /// The oldest live stop sentinel addressed to `supervisorID`, if any.
    func stopSentinel(for supervisorID: Int64) throws -> StopSentinel?

    /// In one transaction: one sentinel row per registered supervisor (all of them,
    /// or only `supervisorIDs` when given). Returns them; empty when there is none.
    func insertStopSentinels(mode: StopSentinel.Mode, supervisorIDs: [Int64]?, now: Timestamp) throws -> [StopSentinel]

    /// Marks a sentinel `succeeded` (its supervisor stopped) with a note as result.
    func completeStopSentinel(_ id: Int64, note: String, now: Timestamp) throws

    /// One task, or nil.
    func task(_ id: Int64) throws -> TaskRecord?

    /// Tasks matching `filter`, newest first.
    func tasks(_ filter: TaskFilter) throws -> [TaskRecord]

    /// Counts per queue and state, and the registered processes.
    func stats(now: Timestamp) throws -> QueueStats

    /// Queued tasks (stop sentinels left out) per queue and kind, ids among `ids`
    /// only when given.
    func queuedCounts(ids: [Int64]?) throws -> [(queue: String, kind: String, count: Int64)]

    /// The path or address of the database, for messages.
    var location: String { get }

    /// A new "wake me when the queue changes" for this store's process (see
    /// `ChangeSignal`). It may use this store's connection: use both from one thread
    /// at a time, and nothing else on the connection while `wait` sleeps.
    /// `claims`: the caller waits for tasks to claim (a worker), and only new or
    /// newly claimable tasks need to wake it; otherwise it waits for any change (a
    /// task finishing, a process leaving), which a store may only poll for.
    func makeChangeSignal(claims: Bool) -> any ChangeSignal
}

extension TaskStore {
    /// Plain timeouts, for a store with no change signal of its own.
    package func makeChangeSignal(claims: Bool) -> any ChangeSignal { PollingSignal() }

    package func insertTasks(kind: String, options: EnqueueOptions, payloads: PayloadBatch, now: Timestamp) throws -> [Int64] {
        try insertTasks((0..<payloads.count).map { NewTask(kind: kind, payload: payloads.payload($0), options: options) }, now: now)
    }

    package func startInsertEach(kind: String, options: EnqueueOptions, batches: [PayloadBatch], now: Timestamp) throws -> PendingInserts {
        .oneByOne(batches) { try insertTasks(kind: kind, options: options, payloads: $0, now: now) }
    }

    /// `startInsertEach`, finished.
    package func insertEach(kind: String, options: EnqueueOptions, batches: [PayloadBatch], now: Timestamp) throws -> [[Int64]] {
        try startInsertEach(kind: kind, options: options, batches: batches, now: now).finish()
    }

    /// `nextRunAt` among every queued task the claim could take.
    package func nextRunAt(_ claim: ClaimRequest, now: Timestamp) throws -> Timestamp? {
        try nextRunAt(claim, now: now, retriesOnly: false)
    }

    /// `recoverProcess` when it is not known which held task was running.
    @discardableResult
    package func recoverProcess(_ processID: Int64, now: Timestamp,
                                outcome: (ClaimedTask) -> TaskOutcome.Result) throws -> [ClaimedTask] {
        try recoverProcess(processID, now: now, startedTaskID: nil, outcome: outcome)
    }
}

/// Inserts `startInsertEach` has begun.
package struct PendingInserts {
    /// Waits for them; returns each batch's ids, or throws `InsertsStopped`.
    package let finish: () throws -> [[Int64]]

    package init(finish: @escaping () throws -> [[Int64]]) { self.finish = finish }

    /// Each batch inserted now by `insert`, one after another, until one fails.
    package static func oneByOne(_ batches: [PayloadBatch], _ insert: (PayloadBatch) throws -> [Int64]) -> PendingInserts {
        var committed: [[Int64]] = []
        for b in batches {
            do { committed.append(try insert(b)) }
            catch {
                let stopped = InsertsStopped(committed: committed, unconfirmed: 0, cause: error)
                return PendingInserts { throw stopped }
            }
        }
        return PendingInserts { [committed] in committed }
    }
}

/// `startInsertEach` stopped at a batch that failed.
package struct InsertsStopped: Error {
    /// The ids of the batches committed before it, in order.
    package var committed: [[Int64]]
    /// How many batches after those may or may not have committed: the connection
    /// was lost before their commit was confirmed (0 when the failure was refused
    /// by the database, and nothing after the committed ones was written).
    package var unconfirmed: Int
    /// What stopped it.
    package var cause: Error

    package init(committed: [[Int64]], unconfirmed: Int, cause: Error) {
        self.committed = committed
        self.unconfirmed = unconfirmed
        self.cause = cause
    }
}
