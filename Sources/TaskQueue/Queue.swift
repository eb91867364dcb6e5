/// A task queue: what producers and inspecting tools use. Open one with
/// `Queue.open(path:)` (module TaskQueueSQLite).
///
/// ```swift
/// let queue = try Queue.open(path: "taskq.db")
/// let id = try queue.enqueue(kind: "resize", payload: #"{"file":"a.png"}"#)
/// ```
public final class Queue {
    package let store: any TaskStore

    /// Largest payload accepted, in bytes of JSON text.
    public static let maxPayloadBytes = 1 << 20

    package init(store: any TaskStore) { self.store = store }

    /// The store as one of its optional capabilities (`ScheduleStore`, …), or an
    /// `.unavailable` error saying what this store does not do.
    package func capability<S>(_ type: S.Type, _ missing: String) throws -> S {
        guard let s = store as? S else { throw TaskQueueError.unavailable("this store does not \(missing)") }
        return s
    }

    private lazy var waiter = store.makeChangeSignal(claims: false)

    /// Polls `check` until it returns a value or `timeout` seconds pass (nil: no
    /// limit), sleeping between looks until the queue changes (the store's `ChangeSignal`) or
    /// `interval` passes, whichever is first.
    public func waitFor<T>(timeout: Double?, interval: Double = 0.5, _ check: () throws -> T?) throws -> T? {
        let deadline = timeout.map { System.monotonic() + $0 }
        while true {
            waiter.drain()
            if let v = try check() { return v }
            let left = deadline.map { $0 - System.monotonic() } ?? interval
            if left <= 0 { return nil }
            waiter.wait(timeout: min(left, interval))
        }
    }

    /// Where the queue lives (the database path).
    public var location: String { store.location }

    /// Checks a task before anything is written: names, options, JSON payload.
    public static func validate(_ task: NewTask) throws {
        try validateName(task.kind, what: "kind")
        try task.options.validate()
        try validatePayload(task.payload)
    }

    /// The payload part of `validate`: for producers that check kind and options
    /// once and then many payloads (`enqueue --lines`).
    public static func validatePayload(_ payload: String) throws {
        if payload.utf8.count > maxPayloadBytes { throw payloadTooLarge(payload.utf8.count) }
        do { try JSON.validate(payload) } catch {
            throw TaskQueueError.badData("payload is not valid JSON: \(error)")
        }
    }

    /// `validatePayload` for UTF-8 bytes; text that is not UTF-8 is not valid JSON.
    package static func validatePayload(bytes: UnsafeRawBufferPointer) throws {
        if bytes.count > maxPayloadBytes { throw payloadTooLarge(bytes.count) }
        do { try JSON.validate(bytes) } catch {
            throw TaskQueueError.badData("payload is not valid JSON: \(error)")
        }
    }

    private static func payloadTooLarge(_ count: Int) -> TaskQueueError {
        .badData("payload is \(count) bytes; the limit is \(maxPayloadBytes) bytes (1 MiB): store large data elsewhere and enqueue its path")
    }

    /// Enqueues one task and returns its id.
    @discardableResult
    public func enqueue(kind: String, payload: String = "null", options: EnqueueOptions = .init()) throws -> Int64 {
        try enqueue([NewTask(kind: kind, payload: payload, options: options)])[0]
    }

    /// Enqueues tasks in one transaction: all or none. Returns their ids in order.
    @discardableResult
    public func enqueue(_ tasks: [NewTask]) throws -> [Int64] {
        for t in tasks { try Self.validate(t) }
        return try enqueue(validated: tasks)
    }

    /// `enqueue` for tasks the caller has already passed through `validate` (or
    /// `validatePayload`, with kind and options checked once): not checked again.
    package func enqueue(validated tasks: [NewTask]) throws -> [Int64] {
        if tasks.isEmpty { return [] }
        return try store.insertTasks(tasks, now: .now())
    }

    /// One task per payload of each of `batches`, all with `template`'s kind and
    /// options (a template that passed `validate`, with no unique key and no
    /// `after`; payloads that passed `validatePayload(bytes:)`), each batch in a
    /// transaction of its own, sent together where the store can; `finish` returns
    /// each batch's ids or throws `InsertsStopped` (what was committed, and why the
    /// rest was not). Until then, use this queue for nothing else.
    package func startEnqueue(validated template: NewTask, eachOf batches: [PayloadBatch]) throws -> PendingInserts {
        precondition(template.options.uniqueKey == nil && template.options.after.isEmpty, "a shared template has no unique key and no after")
        let batches = batches.filter { !$0.isEmpty }
        if batches.isEmpty { return PendingInserts { [] } }
        return try store.startInsertEach(kind: template.kind, options: template.options, batches: batches, now: .now())
    }

    /// One task, or nil when there is no such id.
    public func task(_ id: Int64) throws -> TaskRecord? { try store.task(id) }

    /// Tasks matching `filter`, newest first.
    public func tasks(_ filter: TaskFilter = .init()) throws -> [TaskRecord] { try store.tasks(filter) }

    /// Counts per queue and state, and the registered processes.
    public func stats() throws -> QueueStats { try store.stats(now: .now()) }

    /// Supervisors that are alive as far as anyone can tell.
    public func liveSupervisors() throws -> [ProcessRecord] { try Recovery.liveSupervisors(store: store) }

    /// Writes a stop sentinel for each live supervisor and returns them (empty:
    /// no supervisor is running, nothing was written).
    public func stop(mode: StopSentinel.Mode) throws -> [StopSentinel] {
        let live = try liveSupervisors().map(\.id)
        if live.isEmpty { return [] }
        return try store.insertStopSentinels(mode: mode, supervisorIDs: live, now: .now())
    }
}
