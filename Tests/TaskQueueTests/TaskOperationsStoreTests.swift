// The TaskOperationsStore verbs on the SQLite store: attempt history, the fence
// after cancel, unique keys, dependencies settled by finishAndClaim, purge, pause.

import Testing
@testable import TaskQueue
@testable import TaskQueueSQLite
import TaskQueueTestSupport
import TaskQueueConformance

@Suite struct TaskOperationsStoreTests {
    @Test func historyKeepsEveryAttemptButSuccessWritesNoHistoryRow() throws {
        try withSQLiteFactory { db, make in
            let store = try db.store()
            let f = RowFactory(store)
            let sup = try f.supervisor(), w = try f.worker(supervisor: sup)
            let id = try f.queued(maxAttempts: 3)
            var t = try store.finishAndClaim([], claim: ClaimRequest(owner: w, supervisorID: sup, kinds: ["t"], queues: nil, limit: 1,
                                                                     pid: 4321, host: "h1"), now: f.now).claimed[0]
            #expect(try f.finish(t, owner: w, .failed(error: "boom", retryAt: f.now)))
            t = try f.claimed(w, supervisor: sup)[0]
            #expect(try f.finish(t, owner: w, .released))
            t = try f.claimed(w, supervisor: sup)[0]
            #expect(t.attempt == 2)
            #expect(try f.finish(t, owner: w, .succeeded(Array("ok".utf8))))
            #expect(sqliteInt(db.path, "SELECT count(*) FROM task_attempts") == 2)
            let history = try store.attempts(of: id)
            #expect(history.map(\.outcome) == ["failed", "released", "succeeded"])
            #expect(history.map(\.attempt) == [1, 2, 2])
            #expect(history[0].workerPID == 4321 && history[0].workerHost == "h1" && history[0].error == "boom")
            #expect(history[2].finishedAt != nil)
            #expect(sqlite(db.path, "SELECT group_concat(outcome) FROM attempts WHERE task_id = \(id)") == "failed,released,succeeded")
            _ = make
        }
    }

    @Test func cancelTakesARunningTaskAndTheFenceRefusesItsResult() throws {
        try withSQLiteFactory { db, _ in
            let store = try db.store()
            let f = RowFactory(store)
            let sup = try f.supervisor(), w = try f.worker(supervisor: sup)
            let t = try f.running(owner: w, supervisor: sup)
            #expect(try store.stillRunning(taskID: t.id, owner: w, attempt: t.attempt))
            let changes = try store.cancelTasks([t.id, 999], reason: "no longer needed", now: f.now)
            #expect(changes == [TaskChange(id: t.id, before: .running, after: .cancelled), TaskChange(id: 999, before: nil, after: nil)])
            #expect(try store.stillRunning(taskID: t.id, owner: w, attempt: t.attempt) == false)
            #expect(try f.finish(t, owner: w, .succeeded([])) == false)
            let r = try #require(try store.task(t.id))
            #expect(r.state == .cancelled && r.owner == nil && r.lastError == "no longer needed" && r.result == nil)
            #expect(try store.attempts(of: t.id).map(\.outcome) == ["cancelled"])
            // A finished task is left alone, with a note.
            let again = try store.cancelTasks([t.id], reason: "x", now: f.now)
            #expect(again[0].after == nil && again[0].note?.contains("only queued or running") == true)
            // Retry: queued, ready now, fresh budget.
            #expect(try store.retryTasks([t.id], now: f.now) == [TaskChange(id: t.id, before: .cancelled, after: .queued)])
            let back = try #require(try store.task(t.id))
            #expect(back.state == .queued && back.attempts == 0 && back.finishedAt == nil && back.runAt == f.now)
        }
    }

    @Test func uniqueKeysHoldAcrossABatchAndRetry() throws {
        try withSQLiteFactory { db, _ in
            let store = try db.store()
            let f = RowFactory(store)
            func task(_ key: String?) -> NewTask { NewTask(kind: "t", options: EnqueueOptions(uniqueKey: key)) }
            let got = try store.enqueueTasks([task("a"), task("a"), task("b"), task(nil), task(nil)], now: f.now)
            #expect(got.map(\.existing) == [false, true, false, false, false])
            #expect(got[1].id == got[0].id)
            #expect(Set(got.map(\.id)).count == 4)
            // A cancelled holder frees the key; retrying it while another holds it is refused.
            _ = try store.cancelTasks([got[0].id], reason: "x", now: f.now)
            let next = try store.enqueueTasks([task("a")], now: f.now)[0]
            #expect(!next.existing && next.id != got[0].id)
            let r = try store.retryTasks([got[0].id], now: f.now)
            #expect(r[0].after == nil && r[0].note?.contains("held by task \(next.id)") == true, "\(r)")
            #expect(try store.task(got[0].id)?.state == .cancelled)
        }
    }

    @Test func dependenciesAreSettledInTheFinishingTransaction() throws {
        try withSQLiteFactory { db, _ in
            let store = try db.store()
            let f = RowFactory(store)
            let sup = try f.supervisor(), w = try f.worker(supervisor: sup)
            let a = try f.queued(), b = try f.queued()
            let d = try store.enqueueTasks([NewTask(kind: "d", options: EnqueueOptions(after: [a, b, a]))], now: f.now)[0].id
            #expect(try store.task(d)?.isBlocked == true)
            #expect(try store.task(d)?.waitingFor == [a, b])
            let claimed = try f.claimed(w, supervisor: sup, kinds: ["t", "d"])
            #expect(Set(claimed.map(\.id)) == [a, b])
            #expect(try f.finish(claimed.first { $0.id == a }!, owner: w, .succeeded([])))
            #expect(try store.task(d)?.waitingFor == [b])
            #expect(try f.claimed(w, supervisor: sup, kinds: ["d"]).isEmpty)
            #expect(try f.finish(claimed.first { $0.id == b }!, owner: w, .succeeded([])))
            #expect(try store.task(d)?.isBlocked == false)
            #expect(try f.claimed(w, supervisor: sup, kinds: ["d"]).map(\.id) == [d])
            // A dependency that fails for good cancels its dependants, transitively.
            let x = try f.queued(kind: "x", maxAttempts: 1)
            let y = try store.enqueueTasks([NewTask(kind: "d", options: EnqueueOptions(after: [x]))], now: f.now)[0].id
            let z = try store.enqueueTasks([NewTask(kind: "d", options: EnqueueOptions(after: [y]))], now: f.now)[0].id
            let tx = try f.claimed(w, supervisor: sup, kinds: ["x"])[0]
            #expect(try f.finish(tx, owner: w, .failed(error: "no", retryAt: nil)))
            #expect(try store.task(y)?.state == .cancelled)
            #expect(try store.task(y)?.lastError == "task \(x), which it was to run after, failed")
            #expect(try store.task(z)?.lastError == "task \(y), which it was to run after, was cancelled")
            // The cancelled dependants keep their rows: a retry makes them wait again.
            #expect(sqlite(db.path, "SELECT group_concat(task_id || '>' || depends_on) FROM task_dependencies") == "\(y)>\(x),\(z)>\(y)")
            #expect(throws: TaskQueueError.self) { try store.enqueueTasks([NewTask(kind: "d", options: EnqueueOptions(after: [9999]))], now: f.now) }
        }
    }

    @Test func retryBlocksADependantAgainAndRepeatedIdsCountOnce() throws {
        try withSQLiteFactory { db, _ in
            let store = try db.store()
            let f = RowFactory(store)
            let a = try f.queued()
            let b = try store.enqueueTasks([NewTask(kind: "d", options: EnqueueOptions(after: [a]))], now: f.now)[0].id
            #expect(try store.cancelTasks([b, b], reason: "x", now: f.now) == [TaskChange(id: b, before: .queued, after: .cancelled)])
            #expect(try store.retryTasks([b, b], now: f.now) == [TaskChange(id: b, before: .cancelled, after: .queued)])
            #expect(try store.task(b)?.isBlocked == true)
            #expect(try store.task(b)?.waitingFor == [a])
            // Its dependency cancelled (which cancels it again): not retried alone.
            #expect(try store.cancelTasks([a], reason: "x", now: f.now)[0].dependantsCancelled == [b])
            let alone = try store.retryTasks([b], now: f.now)
            #expect(alone[0].after == nil && alone[0].note?.contains("which is cancelled") == true, "\(alone)")
            // Both, the dependant named first: the dependency is retried first.
            #expect(try store.retryTasks([b, a], now: f.now).map(\.id) == [b, a])
            #expect(try store.task(a)?.isBlocked == false)
            #expect(try store.task(b)?.isBlocked == true)
            // Named together, a task and its dependant are both cancelled as asked.
            #expect(try store.cancelTasks([a, b], reason: "x", now: f.now).map(\.after) == [.cancelled, .cancelled])
        }
    }

    @Test func aStartTimeStopsShortOfTheMarkOfBlockedTasks() throws {
        #expect(throws: TaskQueueError.self) { try EnqueueOptions(runAt: .blocked).validate() }
        #expect(throws: TaskQueueError.self) { try EnqueueOptions(runAt: Timestamp(milliseconds: .max)).validate() }
        try EnqueueOptions(runAt: EnqueueOptions.latestRunAt).validate()
        #expect(EnqueueOptions.latestRunAt.iso == "9999-12-31T23:59:59.998Z")
    }

    @Test func purgeDeletesEveryMatchNewestTooAndPauseStopsClaims() throws {
        try withSQLiteFactory { db, _ in
            let store = try db.store()
            let f = RowFactory(store)
            let sup = try f.supervisor(), w = try f.worker(supervisor: sup)
            let ids = try (1...3).map { _ in try f.queued() }
            _ = try store.cancelTasks(ids, reason: "x", now: f.now)
            let later = f.now.adding(seconds: 60)
            #expect(try store.purgeTasks(states: [.succeeded], finishedBefore: later, limit: 10) == 0)
            #expect(try store.purgeTasks(states: [.cancelled], finishedBefore: f.now, limit: 10) == 0)
            #expect(try store.purgeTasks(states: [.cancelled], finishedBefore: later, limit: 1) == 1)
            #expect(try store.purgeTasks(states: [.cancelled], finishedBefore: later, limit: 10) == 2)
            #expect(try store.tasks(TaskFilter()).isEmpty)
            // The ids of the purged tasks are not given out again.
            #expect(try store.insertTasks([NewTask(kind: "t")], now: f.now) == [ids[2] + 1])
            _ = try store.cancelTasks([ids[2] + 1], reason: "x", now: f.now)
            #expect(try store.purgeTasks(states: [.cancelled], finishedBefore: later, limit: 10) == 1)
            // Paused: nothing claimed from it until resumed.
            let q = try f.queued(queue: "mail")
            #expect(try store.setPaused(queue: "mail", paused: true, now: f.now))
            #expect(try store.setPaused(queue: "mail", paused: true, now: f.now) == false)
            #expect(try f.claimed(w, supervisor: sup).isEmpty)
            #expect(try store.queueSettings().map(\.name) == ["mail"])
            #expect(try store.setPaused(queue: "mail", paused: false, now: f.now))
            #expect(try f.claimed(w, supervisor: sup).map(\.id) == [q])
        }
    }
}
