// The PostgreSQL store's other capabilities, through `Queue` as the CLI uses them:
// unique keys, dependencies, cancel, retry, purge, pause, kind policies, schedules,
// map groups and recent activity. Skipped, with the reason, without a server.

import Foundation
import Testing
@testable import TaskQueue
@testable import TaskQueuePostgres
import TaskQueueTestSupport
import TaskQueueConformance

@Suite(.enabled(if: TestPostgres.isAvailable, TestPostgres.skipReason))
struct PostgresOperationsTests {
    func open() throws -> (store: PostgresTaskStore, queue: Queue, url: String) {
        let url = try TestPostgres.freshSchema()
        let store = try PostgresTaskStore(url: url)
        return (store, Queue(store: store), url)
    }

    @Test func uniqueKeysHoldOneQueuedOrRunningTaskPerKey() throws {
        let (store, q, _) = try open()
        let f = RowFactory(store)
        let s = try f.supervisor(), w = try f.worker(supervisor: s)
        let keyed = NewTask(kind: "t", options: EnqueueOptions(uniqueKey: "k"))
        let r = try q.enqueueReportingExisting([keyed, keyed, NewTask(kind: "t")])
        #expect(r.map(\.existing) == [false, true, false] && r[1].id == r[0].id)
        let t = try #require(try f.claimed(w, supervisor: s, limit: 1).first)
        #expect(t.id == r[0].id)
        #expect(try q.enqueueReportingExisting([keyed]) == [EnqueuedTask(id: t.id, existing: true)], "running still holds the key")
        #expect(try f.finish(t, owner: w, .succeeded([])))
        let again = try q.enqueueReportingExisting([keyed])
        #expect(!again[0].existing && again[0].id > t.id)
    }

    @Test func dependenciesBlockReleaseAndCancel() throws {
        let (store, q, _) = try open()
        let f = RowFactory(store)
        let s = try f.supervisor(), w = try f.worker(supervisor: s, kinds: ["t", "d"])
        let a = try q.enqueue(kind: "t"), b = try q.enqueue(kind: "t")
        let missing = taskQueueError { _ = try q.enqueue(kind: "d", options: EnqueueOptions(after: [a, b + 100])) }
        #expect(missing?.code == .notFound)
        #expect(try store.tasks(TaskFilter(kind: "d")).isEmpty, "nothing was enqueued")
        let d = try q.enqueue(kind: "d", options: EnqueueOptions(after: [a, b]))
        let e = try q.enqueue(kind: "d", options: EnqueueOptions(after: [d]))
        #expect(try q.task(d)?.isBlocked == true && q.task(d)?.waitingFor == [a, b])
        let got = try f.claimed(w, supervisor: s, kinds: ["t", "d"], at: .now())
        #expect(got.map(\.id) == [a, b])
        #expect(try f.finish(got[0], owner: w, .succeeded([]), at: .now()))
        #expect(try q.task(d)?.waitingFor == [b] && q.task(d)?.isBlocked == true)
        #expect(try f.finish(got[1], owner: w, .succeeded([]), at: .now()))
        #expect(try q.task(d)?.isBlocked == false)
        // d fails for good: e, waiting for it, is cancelled.
        let td = try #require(try f.claimed(w, supervisor: s, kinds: ["d"], at: .now()).first)
        #expect(td.id == d)
        #expect(try f.finish(td, owner: w, .failed(error: "no", retryAt: nil), at: .now()))
        let re = try #require(try q.task(e))
        #expect(re.state == .cancelled && re.lastError == "task \(d), which it was to run after, failed")
        let failedDep = taskQueueError { _ = try q.enqueue(kind: "d", options: EnqueueOptions(after: [d])) }
        #expect(failedDep?.code == .failed)
    }

    @Test func cancelTakesARunningTaskAndRetryPutsItBack() throws {
        let (store, q, _) = try open()
        let f = RowFactory(store)
        let s = try f.supervisor(), w = try f.worker(supervisor: s)
        let t = try f.running(owner: w, supervisor: s)
        let queued = try f.queued(kind: "other")
        let changes = try q.cancel([t.id, queued, t.id + 1000], reason: "not wanted")
        #expect(changes.map(\.after) == [.cancelled, .cancelled, nil] && changes[2].before == nil)
        #expect(try q.tasks(TaskFilter(includeStopSentinels: false)).map(\.id) == [queued, t.id])
        #expect(try !f.finish(t, owner: w, .succeeded(Array("late".utf8))), "the fence refuses a cancelled task's result")
        #expect(try q.attempts(of: t.id).map(\.outcome) == ["cancelled"])
        #expect(try store.stillRunning(taskID: t.id, owner: w, attempt: 1) == false)
        // Retry: queued again with a fresh budget; a key held by another task is left with a note.
        let keyed = try q.enqueueReportingExisting([NewTask(kind: "u", options: EnqueueOptions(uniqueKey: "k"))])[0].id
        _ = try q.cancel([keyed])
        let holder = try q.enqueueReportingExisting([NewTask(kind: "u", options: EnqueueOptions(uniqueKey: "k"))])[0].id
        let retried = try q.retry([t.id, keyed, queued])
        #expect(retried.map(\.after) == [.queued, nil, .queued])
        #expect(retried[1].note == "task \(keyed) has unique key \"k\", held by task \(holder) now; not retried")
        let r = try #require(try q.task(t.id))
        #expect(r.state == .queued && r.attempts == 0 && r.finishedAt == nil)
        #expect(try q.task(keyed)?.state == .cancelled)
        #expect(try store.taskIDs(state: .cancelled, queue: nil, kind: nil) == [keyed])
    }

    @Test func retryBlocksADependantAgainAndRepeatedIdsCountOnce() throws {
        let (store, q, url) = try open()
        let f = RowFactory(store)
        let a = try f.queued()
        let b = try store.enqueueTasks([NewTask(kind: "d", options: EnqueueOptions(after: [a]))], now: f.now)[0].id
        #expect(try store.cancelTasks([b, b], reason: "x", now: f.now) == [TaskChange(id: b, before: .queued, after: .cancelled)])
        #expect(try store.retryTasks([b, b], now: f.now) == [TaskChange(id: b, before: .cancelled, after: .queued)])
        #expect(try q.task(b)?.isBlocked == true && q.task(b)?.waitingFor == [a])
        // Its dependency cancelled (which cancels it again): not retried alone.
        #expect(try store.cancelTasks([a], reason: "x", now: f.now)[0].dependantsCancelled == [b])
        let admin = try PostgresConnection(url)
        let rows = try admin.exec("SELECT task_id, depends_on FROM task_dependencies")
        #expect(rows.rows { "\(rows.int($0, 0))>\(rows.int($0, 1))" } == ["\(b)>\(a)"], "a cancelled dependant keeps its rows")
        let alone = try store.retryTasks([b], now: f.now)
        #expect(alone[0].after == nil && alone[0].note?.contains("which is cancelled") == true, "\(alone)")
        // Both, the dependant named first: the dependency is retried first.
        #expect(try store.retryTasks([b, a], now: f.now).map(\.id) == [b, a])
        #expect(try q.task(a)?.isBlocked == false && q.task(b)?.isBlocked == true)
        #expect(try q.states(of: [a, b, b + 100]) == [a: .queued, b: .queued])
        // Named together, a task and its dependant are both cancelled as asked.
        #expect(try store.cancelTasks([a, b], reason: "x", now: f.now).map(\.after) == [.cancelled, .cancelled])
        // A dependency that succeeded meanwhile no longer holds a retried task back.
        #expect(try store.retryTasks([a], now: f.now).map(\.after) == [.queued])
        let s = try f.supervisor(), w = try f.worker(supervisor: s)
        let ta = try #require(try f.claimed(w, supervisor: s, at: .now()).first)
        #expect(ta.id == a)
        #expect(try f.finish(ta, owner: w, .succeeded([]), at: .now()))
        #expect(try store.retryTasks([b], now: .now()).map(\.after) == [.queued])
        #expect(try q.task(b)?.isBlocked == false && q.task(b)?.waitingFor == [])
    }

    @Test func purgeDeletesOldFinishedTasksWithTheirHistory() throws {
        let (store, q, _) = try open()
        let f = RowFactory(store)
        let s = try f.supervisor(), w = try f.worker(supervisor: s)
        let old = try (0..<3).map { _ in try f.failed(owner: w, supervisor: s) }
        let kept = try f.queued()
        let later = Timestamp.now().adding(seconds: 10)
        #expect(try q.purge(states: [.failed], finishedBefore: later, batch: 2) == 3)
        for id in old { #expect(try q.task(id) == nil && q.attempts(of: id).isEmpty) }
        #expect(try q.task(kept)?.state == .queued)
        // The newest task is never purged (ids are never reused).
        let newest = try f.failed(owner: w, supervisor: s)
        #expect(try q.purge(states: [.failed], finishedBefore: Timestamp.now().adding(seconds: 10)) == 0)
        #expect(try q.task(newest) != nil)
    }

    /// A paused queue closes the claim's gate: the claim runs its paused variant,
    /// which takes every other queue's tasks.
    @Test func aPausedQueueIsNotClaimedFromAndOthersAre() throws {
        let (store, q, _) = try open()
        let f = RowFactory(store)
        let s = try f.supervisor(), w = try f.worker(supervisor: s)
        let a = try f.queued(queue: "a"), b = try f.queued(queue: "b"), later = try f.queued(queue: "b", runAt: f.now.adding(seconds: -1))
        #expect(try q.pause("a") && !q.pause("a"))
        #expect(try q.pausedQueues().map(\.name) == ["a"])
        #expect(try f.claimed(w, supervisor: s).map(\.id) == [later, b])
        #expect(try f.claimed(w, supervisor: s).isEmpty)
        #expect(try f.claimed(w, supervisor: s, queues: ["a", "b"]).isEmpty)
        #expect(try q.resume("a") && !q.resume("a"))
        #expect(try f.claimed(w, supervisor: s, queues: ["a"]).map(\.id) == [a])
        #expect(try store.queueSettings() == [QueueSetting(name: "a", pausedAt: nil)])
    }

    @Test func kindPoliciesResolveAtEnqueue() throws {
        let (store, q, url) = try open()
        #expect(try q.setKindPolicy("mail", KindPolicy(maxAttempts: 7, backoffBase: 2)) == KindPolicy(maxAttempts: 7, backoffBase: 2))
        try q.setKindPolicy("b.kind", KindPolicy(onCrash: .fail))
        let m = try q.enqueue(kind: "mail"), own = try q.enqueue(kind: "mail", options: EnqueueOptions(maxAttempts: 2))
        #expect(try q.task(m)?.maxAttempts == 7 && q.task(m)?.backoffBase == 2 && q.task(own)?.maxAttempts == 2)
        // Another connection's change applies to the next enqueue.
        try Queue(store: try PostgresTaskStore(url: url)).setKindPolicy("mail", KindPolicy(), clear: [.maxAttempts])
        #expect(try q.task(q.enqueue(kind: "mail"))?.maxAttempts == 3)
        #expect(try q.kindPolicies().map(\.kind) == ["b.kind", "mail"])
        let bad = taskQueueError { try q.setKindPolicy("mail", KindPolicy(backoffCap: 1)) }
        #expect(bad?.code == .usage)
        #expect(try q.removeKindPolicy("b.kind") && !q.removeKindPolicy("b.kind"))
        _ = store
    }

    @Test func schedulesFireEachOccurrenceOnce() throws {
        let (store, q, url) = try open()
        let s = try q.addSchedule(name: "hourly", cron: "0 * * * *", kind: "report", payload: #"{"a":1}"#)
        #expect(throws: TaskQueueError.self) { try q.addSchedule(name: "hourly", cron: "5 * * * *", kind: "report") }
        try q.addSchedule(name: "hourly", cron: "0 * * * *", kind: "report", payload: #"{"a":1}"#, replace: true)
        #expect(try q.schedules().map(\.name) == ["hourly"])
        #expect(try store.nextScheduleTime() == s.nextAt)
        #expect(try q.fireDueSchedules(now: s.nextAt.adding(seconds: -1)).isEmpty)
        // Two supervisors at the same due time: one occurrence, one task.
        let other = Queue(store: try PostgresTaskStore(url: url))
        let fired = try q.fireDueSchedules(now: s.nextAt.adding(seconds: 1)) + other.fireDueSchedules(now: s.nextAt.adding(seconds: 1))
        #expect(fired.count == 1 && fired[0].occurrence == s.nextAt)
        let task = try #require(try q.task(fired[0].taskID))
        #expect(task.kind == "report" && task.payload == #"{"a":1}"#)
        let after = try #require(try q.schedules().first)
        #expect(after.lastAt == s.nextAt && after.lastTaskID == task.id && after.nextAt == s.nextAt.adding(seconds: 3600))
        #expect(try q.removeSchedule(named: "hourly") && !q.removeSchedule(named: "hourly"))
    }

    @Test func groupsKeepTheirTasksInOrder() throws {
        let (store, q, _) = try open()
        let f = RowFactory(store)
        let s = try f.supervisor(), w = try f.worker(supervisor: s, kinds: ["m"])
        let lines = (1...5).map { NewTask(kind: "m", payload: "\($0)") }
        let (group, ids, created, _) = try q.openGroup("run1", tasks: lines)
        #expect(created && ids.count == 5 && ids == ids.sorted())
        let reopened = try q.openGroup("run1", tasks: lines)
        #expect(!reopened.created && reopened.ids == ids)
        #expect(try group.tasks(from: 2, limit: 2).map { "\($0.position):\($0.task.payload)" } == ["2:2", "3:3"])
        let got = try f.claimed(w, supervisor: s, kinds: ["m"], limit: 2)
        #expect(try f.finish(got[0], owner: w, .succeeded([])) && f.finish(got[1], owner: w, .failed(error: "x", retryAt: nil)))
        #expect(try group.counts() == [.succeeded: 1, .failed: 1, .queued: 3])
        #expect(try group.requeueFailures(options: EnqueueOptions(priority: 4)) == 1)
        #expect(try q.task(ids[1])?.state == .queued && q.task(ids[1])?.priority == 4 && q.task(ids[4])?.priority == 4)
        #expect(try q.finishedSince(Timestamp.now().adding(seconds: -60)).map { "\($0.queue)/\($0.state.rawValue)=\($0.count)" }
                == ["default/succeeded=1"])
        // A purged line is enqueued again when the group is opened with the same lines.
        #expect(try q.purge(states: [.succeeded], finishedBefore: Timestamp.now().adding(seconds: 10)) == 1)
        let restored = try q.openGroup("run1", tasks: lines)
        #expect(restored.restored == 1 && restored.ids[0] > ids[4] && Array(restored.ids.dropFirst()) == Array(ids.dropFirst()))
    }
}
