/// What a crashed worker (killed, lost in a reboot, frozen past its lease) means
/// for the task it was running.
public enum CrashPolicy: String, Sendable, CaseIterable {
    /// Count the attempt as failed and retry with backoff (the default).
    case retry
    /// End the task `failed` at once: for work that must not run twice.
    case fail
}

extension Timestamp {
    /// The run_at of a task blocked behind dependencies (`--after`): the largest
    /// ISO 8601 time, '9999-12-31T23:59:59.999Z', so the claim never reaches it.
    public static let blocked = Timestamp.isoMaximum
}

/// One attempt of a task, as `show` lists it.
public struct TaskAttempt: Sendable, Equatable {
    /// How it ended: failed, timed out, crashed, released, cancelled; or running,
    /// succeeded for the attempt the task row itself describes.
    public var outcome: String
    public var attempt: Int64
    public var startedAt: Timestamp?
    public var finishedAt: Timestamp?
    public var workerPID: Int64?
    public var workerHost: String?
    /// Why it failed; a failed command's stderr is at its end ("…; stderr: …").
    public var error: String?
    /// The end of a succeeded command handler's stderr (nil when it wrote none).
    public var stderr: String?

    public init(outcome: String, attempt: Int64, startedAt: Timestamp?, finishedAt: Timestamp?,
                workerPID: Int64?, workerHost: String?, error: String?, stderr: String? = nil) {
        self.outcome = outcome; self.attempt = attempt; self.startedAt = startedAt; self.finishedAt = finishedAt
        self.workerPID = workerPID; self.workerHost = workerHost; self.error = error; self.stderr = stderr
    }
}

/// What `retry` or `cancel` did to one task.
public struct TaskChange: Sendable, Equatable {
    public var id: Int64
    /// The state before; nil when there is no such task.
    public var before: TaskState?
    /// The state after; nil when the task was left as it was (see `note`).
    public var after: TaskState?
    /// Why it was left alone, for people.
    public var note: String?
    /// Tasks enqueued `--after` it (and after those) that were cancelled with it.
    public var dependantsCancelled: [Int64] = []

    public init(id: Int64, before: TaskState?, after: TaskState?, note: String? = nil, dependantsCancelled: [Int64] = []) {
        self.id = id; self.before = before; self.after = after; self.note = note
        self.dependantsCancelled = dependantsCancelled
    }
}

extension TaskChange {
    /// `body` for each id once (the first change for a repeated id is the only
    /// one), worked in `order`, reported in the order given: how every store
    /// retries (oldest first) and cancels (newest first) a list of ids.
    package static func eachOnce(_ ids: [Int64], order: (Int64, Int64) -> Bool,
                                 _ body: (Int64) throws -> TaskChange) rethrows -> [TaskChange] {
        var changes: [Int64: TaskChange] = [:]
        for id in Set(ids).sorted(by: order) { changes[id] = try body(id) }
        return ids.compactMap { changes.removeValue(forKey: $0) }
    }

    /// A task `retry` leaves as it was: it is neither failed nor cancelled.
    package static func notRetried(_ id: Int64, _ state: TaskState) -> TaskChange {
        TaskChange(id: id, before: state, after: nil,
                   note: "task \(id) is \(state.rawValue); only failed or cancelled tasks can be retried")
    }
}

/// The result of one enqueued task.
public struct EnqueuedTask: Sendable, Equatable {
    public var id: Int64
    /// True when a task with the same unique key was already queued or running:
    /// nothing was inserted and `id` is that task's.
    public var existing: Bool
    public init(id: Int64, existing: Bool) { self.id = id; self.existing = existing }
}

/// A queue that has a setting (today: paused).
public struct QueueSetting: Sendable, Equatable {
    public var name: String
    public var pausedAt: Timestamp?
    public init(name: String, pausedAt: Timestamp?) { self.name = name; self.pausedAt = pausedAt }
}

/// The store verbs behind retry, cancel, purge, pause and attempt history. A
/// backend that has them conforms to this capability protocol too.
package protocol TaskOperationsStore: TaskStore {
    /// Inserts `tasks` in one transaction, like `insertTasks`, honouring
    /// `uniqueKey` (a task whose key is held by a queued or running task — one
    /// inserted earlier in the same call included — is not inserted; its result
    /// names the holder, `existing: true`; enforced by the database, never by a
    /// read-then-write) and `after` (every id must exist: else `.notFound` and
    /// nothing is written; a dependency already failed or cancelled is a
    /// `.failed` error; the task stays blocked until all have succeeded).
    func enqueueTasks(_ tasks: [NewTask], now: Timestamp) throws -> [EnqueuedTask]

    /// Every attempt of a task, oldest first: the failed, crashed, timed-out,
    /// released and cancelled ones kept in history, then the running or succeeded
    /// one the task row describes.
    func attempts(of taskID: Int64) throws -> [TaskAttempt]

    /// The state of each task among `ids` that exists (sentinels excluded), read
    /// in one snapshot: what `taskq wait` polls for thousands of ids.
    func states(of ids: [Int64]) throws -> [Int64: TaskState]

    /// In one transaction: each failed or cancelled task among `ids` becomes
    /// queued, ready now, with a fresh attempt budget (attempts 0); others are
    /// left as they are with a note. A task whose unique key is held by another
    /// queued or running task is left too. A task enqueued `after` others waits
    /// again (blocked) for those still queued or running, and is left while one
    /// is failed, cancelled or gone. Ids are worked oldest first, each once; the
    /// changes follow the order given.
    func retryTasks(_ ids: [Int64], now: Timestamp) throws -> [TaskChange]

    /// The ids of tasks in `state` (failed or cancelled), optionally of one queue
    /// and kind, oldest first — the bulk form of retry reads these, then retries.
    func taskIDs(state: TaskState, queue: String?, kind: String?) throws -> [Int64]

    /// In one transaction: each queued or running task among `ids` ends
    /// `cancelled` with `reason` as its error (a running one loses its owner, so
    /// the worker's late result is refused by the fence; the running attempt is
    /// kept in history as cancelled). Its dependants are cancelled too. Finished
    /// tasks are left as they are with a note. A cancelled task keeps the list
    /// of dependencies it still waited for, for `retryTasks`. Ids are worked
    /// newest first (dependants before their dependencies), each once; the
    /// changes follow the order given.
    func cancelTasks(_ ids: [Int64], reason: String, now: Timestamp) throws -> [TaskChange]

    /// Cheap (one primary-key read): is `taskID` still running with this owner
    /// and attempt? False once it was cancelled or recovered from that owner.
    func stillRunning(taskID: Int64, owner: Int64, attempt: Int64) throws -> Bool

    /// Deletes up to `limit` finished tasks in one of `states` whose finished_at
    /// is before `before`, with their history rows, in one short transaction.
    /// Deletes every one that matches, the newest too; an id it deleted is never
    /// given to a new task.
    /// Returns how many it deleted.
    func purgeTasks(states: [TaskState], finishedBefore before: Timestamp, limit: Int) throws -> Int

    /// Pauses (true) or resumes (false) a queue. Returns false when it already was so.
    func setPaused(queue: String, paused: Bool, now: Timestamp) throws -> Bool

    /// Queues that have a setting, by name.
    func queueSettings() throws -> [QueueSetting]
}

extension Queue {
    package var operations: any TaskOperationsStore {
        get throws { try capability((any TaskOperationsStore).self, "support retry, cancel, purge or pause") }
    }

    /// Enqueues tasks in one transaction (all or none), honouring unique keys and
    /// dependencies; says per task whether it already existed.
    public func enqueueReportingExisting(_ tasks: [NewTask]) throws -> [EnqueuedTask] {
        for t in tasks { try Self.validate(t) }
        if tasks.isEmpty { return [] }
        return try operations.enqueueTasks(tasks, now: .now())
    }

    /// Every attempt of a task, oldest first.
    public func attempts(of id: Int64) throws -> [TaskAttempt] { try operations.attempts(of: id) }

    /// The state of each task among `ids` that exists, read in one snapshot;
    /// ids with no task are absent.
    public func states(of ids: [Int64]) throws -> [Int64: TaskState] { try operations.states(of: ids) }

    /// Puts failed or cancelled tasks back as queued with a fresh attempt budget.
    @discardableResult
    public func retry(_ ids: [Int64]) throws -> [TaskChange] { try operations.retryTasks(ids, now: .now()) }

    /// Retries every task in `state` (failed or cancelled), of `queue` and `kind` when given.
    @discardableResult
    public func retryAll(state: TaskState, queue: String? = nil, kind: String? = nil) throws -> [TaskChange] {
        let ids = try operations.taskIDs(state: state, queue: queue, kind: kind)
        var changes: [TaskChange] = []
        // In chunks, so a huge backlog never holds the write lock for long.
        var i = 0
        while i < ids.count {
            let chunk = Array(ids[i..<min(i + 500, ids.count)])
            changes += try operations.retryTasks(chunk, now: .now())
            i += 500
        }
        return changes
    }

    /// Cancels queued or running tasks; `reason` becomes each one's `last_error`.
    @discardableResult
    public func cancel(_ ids: [Int64], reason: String = "cancelled") throws -> [TaskChange] {
        try operations.cancelTasks(ids, reason: reason, now: .now())
    }

    /// Deletes finished tasks in `states` whose finish time is before `before`, in
    /// small transactions. Returns how many were deleted.
    @discardableResult
    public func purge(states: [TaskState], finishedBefore before: Timestamp, batch: Int = 500, maxBatches: Int = .max) throws -> Int {
        var total = 0
        for _ in 0..<maxBatches {
            let n = try operations.purgeTasks(states: states, finishedBefore: before, limit: batch)
            total += n
            if n < batch { break }
        }
        return total
    }

    /// Pauses a queue: no new claims until `resume`. False when it already was paused.
    @discardableResult
    public func pause(_ queue: String) throws -> Bool { try operations.setPaused(queue: queue, paused: true, now: .now()) }

    /// Resumes a paused queue. False when it was not paused.
    @discardableResult
    public func resume(_ queue: String) throws -> Bool { try operations.setPaused(queue: queue, paused: false, now: .now()) }

    /// Paused queues, by name.
    public func pausedQueues() throws -> [QueueSetting] { try operations.queueSettings().filter { $0.pausedAt != nil } }
}
