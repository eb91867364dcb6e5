import TaskQueue
#if canImport(Glibc)
import Glibc
#endif

/// Tasks enqueued into a paused queue wait for 'taskq resume': says so on stderr
/// (the ids are printed all the same). One read of the small queues table.
func warnIfPaused(_ queue: Queue, _ names: [String]) {
    guard let paused = try? queue.pausedQueues(), !paused.isEmpty else { return }
    for p in paused where names.contains(p.name) {
        System.log("taskq: queue \(p.name) is paused: its tasks wait until 'taskq resume \(p.name)'")
    }
}

/// The lines `status` and `top` print for queued tasks no live supervisor runs.
func unservedLines(_ unserved: [UnservedTasks]) -> String {
    unserved.map { $0.message + "\n" }.joined()
}

/// `status --json`'s "unserved" array.
func unservedJSON(_ unserved: [UnservedTasks]) -> String { TaskJSON.unserved(unserved) }

/// `wait`'s hint: once, a few seconds in, if some of what it waits for is queued
/// where no live supervisor will run it, says so on stderr (stdout stays as it
/// was, for --json and scripts), rather than showing 0% until the timeout.
final class UnservedHint {
    private let after: Double
    private let start = System.monotonic()
    private var done = false

    init(after: Double = 3) { self.after = after }

    /// Call on every look; looks once, `after` seconds in. `ids`: the tasks waited
    /// for (nil: every queue, or just `queue`). `before`: called first when there is
    /// something to say (to clear a progress bar from the terminal).
    func check(_ q: Queue, ids: [Int64]?, queue: String?, before: () -> Void = {}) {
        if done || System.monotonic() - start < after { return }
        done = true
        guard let unserved = try? q.unservedTasks(ids: ids) else { return }
        let lines = unserved.filter { queue == nil || $0.queue == queue }
        if lines.isEmpty { return }
        before()
        for u in lines { System.log("taskq: " + u.message) }
    }
}
