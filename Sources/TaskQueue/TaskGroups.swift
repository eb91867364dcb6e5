/// A store that keeps named, ordered groups of tasks (`taskq map`); a capability
/// beside `TaskStore`.
package protocol TaskGroupStore: AnyObject {
    /// In one write transaction: when group `name` does not exist, inserts `tasks`
    /// and their positions (1, 2, …) and returns the new ids, `created` true.
    /// When it exists, returns its task ids in position order, `created` false;
    /// if it has as many positions as `tasks`, the positions whose task was purged
    /// (`purge`, `--retain`) get `tasks[position - 1]` inserted again, counted in
    /// `restored`, so a re-run can still produce every line's result.
    func createGroup(_ name: String, tasks: [NewTask], now: Timestamp) throws -> (ids: [Int64], created: Bool, restored: Int)

    /// Up to `limit` of the group's tasks from `position` (1-based) on, in order.
    func groupTasks(_ name: String, from position: Int, limit: Int) throws -> [(position: Int, task: TaskRecord)]

    /// How many of the group's tasks are in each state.
    func groupCounts(_ name: String) throws -> [TaskState: Int64]

    /// In one write transaction: gives the group's queued, failed and cancelled
    /// tasks `options`' priority, timeout and retry policy (what it leaves unset
    /// comes from the kind's policy, as at enqueue), and puts the failed and
    /// cancelled ones back as queued, ready now, with a fresh attempt budget.
    /// Returns how many it put back.
    func requeueGroupFailures(_ name: String, options: EnqueueOptions, now: Timestamp) throws -> Int
}

/// A named, ordered group of tasks: the durable state of one `map` run.
public struct TaskGroup {
    public let name: String
    let store: any TaskGroupStore

    /// The group's tasks from `position` on (at most `limit`), in input order.
    public func tasks(from position: Int = 1, limit: Int = 1000) throws -> [(position: Int, task: TaskRecord)] {
        try store.groupTasks(name, from: position, limit: limit)
    }

    /// Counts per state.
    public func counts() throws -> [TaskState: Int64] { try store.groupCounts(name) }

    /// Gives the tasks not yet run or failed `options` (priority, timeout, retry
    /// policy: a re-run's options win) and puts failed and cancelled tasks back
    /// as queued; returns how many it put back.
    @discardableResult
    public func requeueFailures(options: EnqueueOptions) throws -> Int {
        try options.validate()
        return try store.requeueGroupFailures(name, options: options, now: .now())
    }
}

extension Queue {
    private var groupStore: any TaskGroupStore {
        get throws { try capability((any TaskGroupStore).self, "keep task groups") }
    }

    /// Opens group `name`: creates it with `tasks` (validated first, inserted in
    /// one transaction) when it does not exist; otherwise leaves it as it is,
    /// except that lines whose task was purged are enqueued again from `tasks`
    /// (when the group has as many lines). Returns the group, its task ids in
    /// order, whether it was created, and how many purged lines were restored.
    public func openGroup(_ name: String, tasks: [NewTask]) throws -> (group: TaskGroup, ids: [Int64], created: Bool, restored: Int) {
        try validateName(name, what: "group")
        for t in tasks { try Self.validate(t) }
        let s = try groupStore
        let r = try s.createGroup(name, tasks: tasks, now: .now())
        return (TaskGroup(name: name, store: s), r.ids, r.created, r.restored)
    }

    /// An existing group, or nil.
    public func group(_ name: String) throws -> TaskGroup? {
        let s = try groupStore
        return try s.groupTasks(name, from: 1, limit: 1).isEmpty ? nil : TaskGroup(name: name, store: s)
    }
}

/// A store that can say what finished recently (for `taskq top`); a capability
/// beside `TaskStore`.
package protocol ActivityStore: AnyObject {
    /// Tasks (not stop sentinels) that finished at or after `since`, counted per
    /// queue and state. May scan the table: for once-a-second views, not hot paths.
    func finishedSince(_ since: Timestamp) throws -> [(queue: String, state: TaskState, count: Int64)]
}

extension Queue {
    /// Tasks finished at or after `since`, per queue and state (empty when the
    /// store cannot tell).
    public func finishedSince(_ since: Timestamp) throws -> [(queue: String, state: TaskState, count: Int64)] {
        guard let s = store as? any ActivityStore else { return [] }
        return try s.finishedSince(since)
    }
}
