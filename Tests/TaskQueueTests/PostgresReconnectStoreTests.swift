// The PostgreSQL store across a lost connection: a finish and claim whose COMMIT
// got no reply is settled, after reconnecting, as committed or not, so that no
// task is finished twice or left running unknown to its worker.

import Foundation
import Testing
@testable import TaskQueue
@testable import TaskQueuePostgres
import TaskQueueTestSupport
import TaskQueueConformance

@Suite(.enabled(if: TestPostgres.isAvailable, TestPostgres.skipReason))
struct PostgresReconnectStoreTests {
    /// A fresh schema and a store that keeps its connection, with a supervisor and a worker.
    func fixture() throws -> (String, PostgresTaskStore, RowFactory, Int64, Int64) {
        let url = try TestPostgres.freshSchema()
        let store = try PostgresTaskStore(url: url)
        store.keepConnected(budget: 10)
        let f = RowFactory(store)
        let s = try f.supervisor()
        return (url, store, f, s, try f.worker(supervisor: s))
    }

    /// Runs one worker's batch of two tasks and then asks to finish it and claim
    /// the next two, with the connection dropping at that COMMIT (`fault`).
    func finishAcrossALostCommit(_ fault: PostgresConnection.CommitFault) throws {
        let (url, store, f, s, w) = try fixture()
        let ids = try (0..<4).map { _ in try f.queued() }
        let first = try store.finishAndClaim([], claim: f.claim(w, supervisor: s, limit: 2), now: .now()).claimed
        #expect(first.map(\.id) == Array(ids[0..<2]))
        let outcomes = first.map { TaskOutcome(taskID: $0.id, owner: w, attempt: $0.attempt, result: .succeeded([])) }

        store.db.commitFault = fault
        let r = try store.finishAndClaim(outcomes, claim: f.claim(w, supervisor: s, limit: 2), now: .now())
        #expect(store.db.generation == 1, "reconnected once")
        // Either way: both results stored once, the next two claimed once (attempt
        // 1), and they are this worker's to run.
        #expect(r.accepted == [true, true])
        #expect(r.claimed.map(\.id) == Array(ids[2..<4]))
        #expect(r.claimed.map(\.attempt) == [1, 1])
        let admin = try PostgresConnection(url)
        let states = try admin.exec("SELECT id, state, attempts, owner FROM tasks ORDER BY id")
        let rows = states.rows { i, r in "\(r.int(i, 0)) \(r.string(i, 1)) \(r.int(i, 2)) \(r.optionalInt(i, 3).map(String.init) ?? "-")" }
        #expect(rows == ["\(ids[0]) succeeded 1 -", "\(ids[1]) succeeded 1 -", "\(ids[2]) running 1 \(w)", "\(ids[3]) running 1 \(w)"])
        #expect(try admin.exec("SELECT claimed FROM processes WHERE id = $1", [.int(w)]).int64s(0, 0) == Array(ids[2..<4]))
        #expect(try admin.exec("SELECT count(*) FROM task_attempts").int(0, 0) == 0)

        // And the worker goes on as usual.
        let last = r.claimed.map { TaskOutcome(taskID: $0.id, owner: w, attempt: $0.attempt, result: .succeeded([])) }
        let done = try store.finishAndClaim(last, claim: f.claim(w, supervisor: s, limit: 2), now: .now())
        #expect(done.accepted == [true, true] && done.claimed.isEmpty)
    }

    /// The COMMIT reached the server and committed; its reply was lost.
    @Test func aCommitWhoseReplyWasLostIsSettledAsCommitted() throws {
        try finishAcrossALostCommit(.afterCommitting)
    }

    /// The connection dropped before the COMMIT was sent: rolled back, run again.
    @Test func aCommitThatNeverArrivedIsRunAgain() throws {
        try finishAcrossALostCommit(.beforeSending)
    }

    /// A worker declared dead while its connection was down: after reconnecting,
    /// its results are refused by the owner fence (it then exits, lease lost).
    @Test func aWorkerRecoveredDuringTheOutageFindsItsRowGone() throws {
        let (url, store, f, s, w) = try fixture()
        try f.queued()
        let claimed = try f.claimed(w, supervisor: s)
        store.db.cut()
        let other = try PostgresTaskStore(url: url)
        #expect(try other.recoverProcess(w, now: .now()) { _ in .failed(error: "worker died", retryAt: .now()) }.count == 1)
        let outcome = TaskOutcome(taskID: claimed[0].id, owner: w, attempt: claimed[0].attempt, result: .succeeded([]))
        #expect(throws: OwnerNotRegistered.self) {
            try store.finishAndClaim([outcome], claim: f.claim(w, supervisor: s), now: .now())
        }
        #expect(store.db.generation == 1)
        #expect(try other.task(claimed[0].id)?.state == .queued)
    }

    /// An idle worker's change signal after a reconnect: it returns at once from a
    /// dead connection (the next store call reconnects), then LISTENs and arms
    /// again on the new session, and an insert wakes it.
    @Test func theChangeSignalListensAgainAfterAReconnect() throws {
        let url = try TestPostgres.freshSchema()
        let store = try PostgresTaskStore(url: url)
        store.keepConnected(budget: 10)
        let signal = store.makeChangeSignal(claims: true)
        signal.wait(timeout: 0)   // arms
        store.db.cut()
        var t0 = System.monotonic()
        signal.wait(timeout: 5)
        #expect(System.monotonic() - t0 < 2.5, "a dead connection is not slept on")
        _ = try store.processes()   // reconnects
        #expect(store.db.generation == 1)
        signal.wait(timeout: 0)   // arms again
        let producer = try Queue.open(database: url)
        let done = DispatchSemaphore(value: 0)
        Thread {
            usleep(200_000)
            _ = try? producer.enqueue(kind: "k")
            done.signal()
        }.start()
        t0 = System.monotonic()
        signal.wait(timeout: 5)
        #expect(System.monotonic() - t0 < 2.5, "woken by the insert's NOTIFY, not by the timeout")
        done.wait()
    }

    /// A store that does not keep its connection (a one-shot command) fails at once.
    @Test func aCommandStoreFailsOnALostConnection() throws {
        let url = try TestPostgres.freshSchema()
        let store = try PostgresTaskStore(url: url)
        store.db.commitFault = .beforeSending
        #expect(throws: TaskQueueError.self) { try RowFactory(store).queued() }
        #expect(store.db.isBroken)
    }
}
