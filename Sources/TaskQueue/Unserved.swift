/// Queued tasks that no live supervisor will run: none has a handler for their
/// kind on their queue. Without a word about them they would wait forever, so
/// `status`, `top` and `wait` name them.
public struct UnservedTasks: Sendable, Equatable {
    public var queue: String
    public var kind: String
    /// Queued tasks of this kind in this queue (among the ids asked about, if any).
    public var count: Int64
    /// Why nobody runs them.
    public var reason: Reason

    public enum Reason: Sendable, Equatable {
        /// No live supervisor at all.
        case noSupervisor
        /// No live supervisor has a handler for the kind.
        case noHandler
        /// Some live supervisor has a handler for the kind, but none serves the queue with it.
        case queueNotServed
    }

    public init(queue: String, kind: String, count: Int64, reason: Reason) {
        self.queue = queue; self.kind = kind; self.count = count; self.reason = reason
    }

    /// One line for people, e.g. "50 tasks of kind 'square' queued; no live
    /// supervisor has a handler for it (start one: taskq supervise --handler square=COMMAND)".
    public var message: String {
        let what = "\(count) task\(count == 1 ? "" : "s") of kind '\(kind)' queued" + (queue == "default" ? "" : " in queue '\(queue)'")
        switch reason {
        case .noSupervisor:
            return what + "; no supervisor is running (start one: taskq supervise --handler \(kind)=COMMAND)"
        case .noHandler:
            return what + "; no live supervisor has a handler for it (start one: taskq supervise --handler \(kind)=COMMAND)"
        case .queueNotServed:
            return what + "; no live supervisor serves queue '\(queue)' with a handler for it (its supervisors serve other queues: add --queue \(queue))"
        }
    }
}

extension Queue {
    /// Queued tasks no live supervisor will run, per queue and kind; among `ids`
    /// only when given. A supervisor's reach is its live workers' kinds and queues
    /// (its own row's while it has no live worker yet). Tasks of a paused queue
    /// count too: resuming the queue would not get them run.
    public func unservedTasks(ids: [Int64]? = nil) throws -> [UnservedTasks] {
        let queued = try store.queuedCounts(ids: ids)
        if queued.isEmpty { return [] }
        let now = Timestamp.now()
        let live = try store.processes().filter { Recovery.deathReason(of: $0, now: now) == nil }
        let supervisors = live.filter { $0.role == .supervisor }
        // Who serves what: each live supervisor through its live workers, or
        // through its own row while it has none.
        var reach: [(kinds: Set<String>, queues: Set<String>?)] = []
        for sup in supervisors {
            let workers = live.filter { $0.supervisorID == sup.id }
            for p in workers.isEmpty ? [sup] : workers { reach.append((Set(p.kinds), p.queues.map(Set.init))) }
        }
        var out: [UnservedTasks] = []
        for q in queued {
            let handlers = reach.filter { $0.kinds.contains(q.kind) }
            if handlers.contains(where: { $0.queues == nil || $0.queues!.contains(q.queue) }) { continue }
            let reason: UnservedTasks.Reason = supervisors.isEmpty ? .noSupervisor : handlers.isEmpty ? .noHandler : .queueNotServed
            out.append(UnservedTasks(queue: q.queue, kind: q.kind, count: q.count, reason: reason))
        }
        return out
    }
}
