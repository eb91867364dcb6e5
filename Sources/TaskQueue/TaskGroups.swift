/// A store that keeps named, ordered groups of tasks (`taskq map`); a capability
/// beside `TaskStore`.
package protocol TaskGroupStore: AnyObject {
    /// In one write transaction: when group `name` exists, inserts nothing and
    /// returns its task ids in position order with `created` false; otherwise
    /// inserts `tasks` and their positions (1, 2, …) and returns the new ids.
    func createGroup(_ name: String, tasks: [NewTask], now: Timestamp) throws -> (ids: [Int64], created: Bool)

    /// Up to `limit` of the group's tasks from `position` (1-based) on, in order.
    func groupTasks(_ name: String, from position: Int, limit: Int) throws -> [(position: Int, task: TaskRecord)]

    /// How many of the group's tasks are in each state.
    func groupCounts(_ name: String) throws -> [TaskState: Int64]

    /// In one write transaction: puts the group's failed and cancelled tasks back
    /// as queued, ready now, with a fresh attempt budget. Returns how many.
    func requeueGroupFailures(_ name: String, now: Timestamp) throws -> Int
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

    /// Puts failed and cancelled tasks back as queued; returns how many.
    @discardableResult
    public func requeueFailures() throws -> Int { try store.requeueGroupFailures(name, now: .now()) }
}

extension Queue {
    private var groupStore: any TaskGroupStore {
        get throws {
            guard let s = store as? any TaskGroupStore else { throw TaskQueueError.unavailable("this store does not keep task groups") }
            return s
        }
    }

    /// Opens group `name`: creates it with `tasks` (validated first, inserted in
    /// one transaction) when it does not exist; otherwise leaves it as it is.
    /// Returns the group, its task ids in order, and whether it was created.
    public func openGroup(_ name: String, tasks: [NewTask]) throws -> (group: TaskGroup, ids: [Int64], created: Bool) {
        try validateName(name, what: "group")
        for t in tasks { try Self.validate(t) }
        let s = try groupStore
        let r = try s.createGroup(name, tasks: tasks, now: .now())
        return (TaskGroup(name: name, store: s), r.ids, r.created)
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
