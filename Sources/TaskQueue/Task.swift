/// Where a task is in its life. The words are the values of `tasks.state`.
public enum TaskState: String, CaseIterable, Sendable {
    case queued, running, succeeded, failed, cancelled

    /// A finished task will not run again unless retried by hand.
    public var isFinished: Bool { self == .succeeded || self == .failed || self == .cancelled }
}

/// The kind of taskq's own stop sentinel rows.
public let stopSentinelKind = "taskq.stop"

/// Checks a kind or queue name: 1–200 of letters, digits, `.`, `_`, `-`, `:`, not
/// starting with `-` (it would read as an option). Kinds starting with `taskq.`
/// are reserved for taskq's own rows.
public func validateName(_ name: String, what: String, allowReserved: Bool = false) throws {
    if name.isEmpty { throw TaskQueueError.usage("\(what) name is empty") }
    if name.hasPrefix("-") {
        throw TaskQueueError.usage("invalid \(what) name \(JSON.quote(name)): it must not start with '-' (an option given without its value?)")
    }
    if name.utf8.count > 200 { throw TaskQueueError.usage("\(what) name is longer than 200 characters") }
    for b in name.utf8 {
        let ok = (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
            || b == UInt8(ascii: ".") || b == UInt8(ascii: "_") || b == UInt8(ascii: "-") || b == UInt8(ascii: ":")
        if !ok {
            throw TaskQueueError.usage("invalid \(what) name \(JSON.quote(name)): use only letters, digits, '.', '_', '-' and ':'")
        }
    }
    if what == "kind" && !allowReserved && name.hasPrefix("taskq.") {
        throw TaskQueueError.usage("kind \(JSON.quote(name)) is reserved: kinds starting with 'taskq.' belong to taskq itself")
    }
}

/// Options a producer sets when enqueuing.
public struct EnqueueOptions: Sendable, Equatable {
    /// Queue name; workers can be limited to some queues.
    public var queue: String = "default"
    /// Higher runs first. Default 0.
    public var priority: Int64 = 0
    /// Not started before this time. `nil`: now. At most `latestRunAt`.
    public var runAt: Timestamp? = nil

    /// The latest `runAt` accepted, 9999-12-31T23:59:59.998Z: the next
    /// millisecond, the last one a stored time can show, marks tasks blocked
    /// behind `after` (`Timestamp.blocked`).
    public static let latestRunAt = Timestamp(milliseconds: Timestamp.blocked.milliseconds - 1)
    /// Attempts before the task ends `failed`; `nil`: its kind's policy
    /// (`Queue.setKindPolicy`), else 3.
    public var maxAttempts: Int64? = nil
    /// Per-attempt time limit in seconds; `nil`: none.
    public var timeout: Double? = nil
    /// What a crashed worker means for this task; `nil`: its kind's policy, else
    /// the supervisor's `--on-crash` for its kind, else retry.
    public var onCrash: CrashPolicy? = nil
    /// Backoff before the second attempt, in seconds (doubling per attempt);
    /// `nil`: its kind's policy, else the supervisor's (default 1).
    public var backoffBase: Double? = nil
    /// Longest backoff, in seconds; `nil`: its kind's policy, else the
    /// supervisor's (default 300).
    public var backoffCap: Double? = nil
    /// At most one task with this key is queued or running at a time; enqueuing
    /// another returns the existing task's id.
    public var uniqueKey: String? = nil
    /// Ready only once all these tasks succeeded; cancelled when one of them ends
    /// failed or cancelled.
    public var after: [Int64] = []

    public init(queue: String = "default", priority: Int64 = 0, runAt: Timestamp? = nil,
                maxAttempts: Int64? = nil, timeout: Double? = nil, onCrash: CrashPolicy? = nil,
                uniqueKey: String? = nil, after: [Int64] = [], backoffBase: Double? = nil, backoffCap: Double? = nil) {
        self.queue = queue
        self.priority = priority
        self.runAt = runAt
        self.maxAttempts = maxAttempts
        self.timeout = timeout
        self.onCrash = onCrash
        self.uniqueKey = uniqueKey
        self.after = after
        self.backoffBase = backoffBase
        self.backoffCap = backoffCap
    }

    /// Throws a usage error naming the first bad option (with `asOptions`, as the
    /// command-line option).
    public func validate(asOptions: Bool = false) throws {
        try validateName(queue, what: "queue")
        if let r = runAt, r > Self.latestRunAt {
            let why = r == Timestamp.blocked ? ": \(r.iso) marks tasks waiting for --after" : ", not a time past year 9999"
            throw TaskQueueError.usage("\(asOptions ? "--at" : "runAt") must be at most \(Self.latestRunAt.iso)\(why)")
        }
        try KindPolicy(maxAttempts: maxAttempts, backoffBase: backoffBase, backoffCap: backoffCap).validate(asOptions: asOptions)
        if let t = timeout, !(t > 0 && t <= 31_536_000) {
            throw TaskQueueError.usage("\(asOptions ? "--timeout" : "timeout") must be more than 0 and at most 1 year (365d), not \(formatDuration(t))")
        }
        if let k = uniqueKey, k.isEmpty || k.utf8.count > 1000 {
            throw TaskQueueError.usage("unique key must be 1 to 1000 bytes long")
        }
        if after.count > 1000 { throw TaskQueueError.usage("at most 1000 dependencies (--after) per task") }
        for id in after where id < 1 { throw TaskQueueError.usage("task ids are positive integers, not \(id)") }
    }
}

/// A task to insert.
public struct NewTask: Sendable, Equatable {
    public var kind: String
    /// JSON text; validated by `Queue` before it reaches the store.
    public var payload: String
    public var options: EnqueueOptions

    public init(kind: String, payload: String = "null", options: EnqueueOptions = .init()) {
        self.kind = kind
        self.payload = payload
        self.options = options
    }
}

/// A task as stored, for inspection.
public struct TaskRecord: Sendable, Equatable {
    public var id: Int64
    public var kind: String
    public var queue: String
    public var state: TaskState
    public var priority: Int64
    public var payload: String
    public var runAt: Timestamp
    public var attempts: Int64
    public var maxAttempts: Int64
    public var timeout: Double?
    /// `processes.id` of the worker running it (running tasks only).
    public var owner: Int64?
    public var createdAt: Timestamp
    public var startedAt: Timestamp?
    public var finishedAt: Timestamp?
    /// The handler's output, byte for byte (succeeded tasks only).
    public var result: [UInt8]?
    public var lastError: String?
    /// Pid and host of the worker that ran the latest attempt.
    public var workerPID: Int64? = nil
    public var workerHost: String? = nil
    public var onCrash: CrashPolicy? = nil
    public var uniqueKey: String? = nil
    /// The task's backoff base and cap in seconds; `nil`: the supervisor's.
    public var backoffBase: Double? = nil
    public var backoffCap: Double? = nil
    /// Dependencies (`--after`) that have not succeeded yet.
    public var waitingFor: [Int64] = []

    public init(id: Int64, kind: String, queue: String, state: TaskState, priority: Int64, payload: String,
                runAt: Timestamp, attempts: Int64, maxAttempts: Int64, timeout: Double?, owner: Int64?,
                createdAt: Timestamp, startedAt: Timestamp?, finishedAt: Timestamp?, result: [UInt8]?, lastError: String?) {
        self.id = id; self.kind = kind; self.queue = queue; self.state = state; self.priority = priority
        self.payload = payload; self.runAt = runAt; self.attempts = attempts; self.maxAttempts = maxAttempts
        self.timeout = timeout; self.owner = owner; self.createdAt = createdAt; self.startedAt = startedAt
        self.finishedAt = finishedAt; self.result = result; self.lastError = lastError
    }

    /// Queued behind dependencies that have not succeeded yet (`--after`).
    public var isBlocked: Bool { state == .queued && runAt == Timestamp.blocked }
}

/// A task a worker has claimed: what a handler gets.
public struct ClaimedTask: Sendable, Equatable {
    public var id: Int64
    public var kind: String
    public var queue: String
    /// JSON text.
    public var payload: String
    /// 1 for the first attempt.
    public var attempt: Int64
    public var maxAttempts: Int64
    public var timeout: Double?
    /// The task's own on-crash setting, if it has one.
    public var onCrash: CrashPolicy?
    /// The task's own backoff base and cap in seconds; `nil`: the supervisor's.
    public var backoffBase: Double?
    public var backoffCap: Double?

    public init(id: Int64, kind: String, queue: String, payload: String, attempt: Int64, maxAttempts: Int64, timeout: Double?,
                onCrash: CrashPolicy? = nil, backoffBase: Double? = nil, backoffCap: Double? = nil) {
        self.id = id; self.kind = kind; self.queue = queue; self.payload = payload
        self.attempt = attempt; self.maxAttempts = maxAttempts; self.timeout = timeout; self.onCrash = onCrash
        self.backoffBase = backoffBase; self.backoffCap = backoffCap
    }
}

/// Filters for listing tasks.
public struct TaskFilter: Sendable {
    public var states: [TaskState] = []
    public var queue: String? = nil
    public var kind: String? = nil
    public var limit: Int = 100
    /// Newest finish first instead of newest id first.
    public var latestFinishedFirst = false
    /// Whether stop sentinels (kind `taskq.stop`, rows `taskq stop` writes) are listed.
    public var includeStopSentinels = true
    public init(states: [TaskState] = [], queue: String? = nil, kind: String? = nil, limit: Int = 100,
                latestFinishedFirst: Bool = false, includeStopSentinels: Bool = true) {
        self.states = states; self.queue = queue; self.kind = kind; self.limit = limit
        self.latestFinishedFirst = latestFinishedFirst
        self.includeStopSentinels = includeStopSentinels
    }
}

/// Counts for `taskq status`.
public struct QueueStats: Sendable {
    /// (queue, state, count), sorted by queue then state order.
    public var counts: [(queue: String, state: TaskState, count: Int64)]
    /// Queued tasks whose run_at is still in the future, per queue.
    public var waiting: [String: Int64]
    public var processes: [ProcessRecord]
    public init(counts: [(queue: String, state: TaskState, count: Int64)], waiting: [String: Int64], processes: [ProcessRecord]) {
        self.counts = counts; self.waiting = waiting; self.processes = processes
    }
}
