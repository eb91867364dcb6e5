// The PostgreSQL store: the conformance suite in a fresh schema per case, and the
// locks READ COMMITTED needs (two recoverers, recovery against a worker's
// transaction in flight, claimers skipping each other's rows, stop sentinels and
// inserts in flight, dependencies, the busy timeout). Skipped, with the reason,
// where no PostgreSQL server can be had (see PostgresTestSupport.swift).

import Foundation
import Testing
@testable import TaskQueue
@testable import TaskQueuePostgres
import TaskQueueTestSupport
import TaskQueueConformance
#if canImport(Glibc)
import Glibc
#endif

@Suite(.enabled(if: TestPostgres.isAvailable, TestPostgres.skipReason))
struct StoreConformancePostgresTests {
    @Test("conformance", arguments: StoreConformance.cases)
    func conformance(_ c: ConformanceCase) throws {
        try c.run(try TestPostgres.factory())
    }
}

@Suite(.enabled(if: TestPostgres.isAvailable, TestPostgres.skipReason))
struct PostgresStoreTests {
    /// A connection to the schema behind `url`, around the store, as psql would be.
    func admin(_ url: String) throws -> PostgresConnection { try PostgresConnection(url) }

    // MARK: locks

    /// Two supervisors recover one dead worker at the same moment: one of them
    /// gets its tasks, the other nothing, and each task counts one crashed attempt.
    @Test func twoRecoverersOfOneDeadProcessHaveOneWinner() throws {
        let url = try TestPostgres.freshSchema()
        let store = try PostgresTaskStore(url: url)
        let f = RowFactory(store)
        let s = try f.supervisor()
        let w = try f.worker(supervisor: s, pid: impossiblePid, startTicks: 0)
        let held = try (0..<3).map { _ in try f.running(owner: w, supervisor: s) }
        // Hold the worker's row, as the worker itself would mid-transaction, so both
        // recoverers are waiting on it before either can go on.
        let holder = try admin(url)
        try holder.run(script: "BEGIN")
        try holder.exec("SELECT 1 FROM processes WHERE id = $1 FOR NO KEY UPDATE", [.int(w)])
        let results = Locked<[[Int64]]>([])
        let errors = Locked<[String]>([])
        let done = Locked(0)
        let started = DispatchSemaphore(value: 0)
        for _ in 0..<2 {
            Thread {
                started.signal()
                do {
                    let r = try PostgresTaskStore(url: url).recoverProcess(w, now: .now()) { _ in
                        .failed(error: "worker died", retryAt: .now())
                    }
                    results.withLock { $0.append(r.map(\.id)) }
                } catch { errors.withLock { $0.append("\(error)") } }
                done.withLock { $0 += 1 }
            }.start()
        }
        started.wait(); started.wait()
        let watcher = try admin(url)
        #expect(eventually(timeout: 30) {
            (try? watcher.exec("""
                SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'DELETE FROM processes%'
                """).int(0, 0)) == 2
        }, "both recoverers should be waiting for the worker's row")
        try holder.run(script: "COMMIT")
        #expect(eventually(timeout: 30) { done.current == 2 })
        #expect(errors.current.isEmpty, "\(errors.current)")
        let got = results.current.sorted { $0.count > $1.count }
        #expect(got.count == 2 && got[0] == held.map(\.id) && got[1].isEmpty, "\(got)")
        for t in held {
            #expect(try store.task(t.id)?.state == .queued)
            #expect(try store.attempts(of: t.id).map(\.outcome) == ["crashed"])
        }
    }

    /// Recovery of a worker whose finish-and-claim is in flight (or frozen inside
    /// it) waits briefly, fails as busy and changes nothing; once that transaction
    /// has ended, recovery takes what it claimed: nothing is left running under a
    /// deleted row.
    @Test func recoveryLeavesATransactionInFlightAloneThenTakesItsNewClaims() throws {
        let url = try TestPostgres.freshSchema()
        let store = try PostgresTaskStore(url: url)
        let f = RowFactory(store)
        let s = try f.supervisor()
        let w = try f.worker(supervisor: s, pid: impossiblePid, startTicks: 0)
        let t = try f.running(owner: w, supervisor: s)
        let waiting = try (0..<2).map { _ in try f.queued() }
        // Pause the worker's transaction after it locked its row: it waits for t.
        let holder = try admin(url)
        try holder.run(script: "BEGIN")
        try holder.exec("SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE", [.int(t.id)])
        let claimed = Locked<[Int64]?>(nil)
        let recovered = Locked<[Int64]?>(nil)
        Thread {
            let got = try? PostgresTaskStore(url: url).finishAndClaim(
                [TaskOutcome(taskID: t.id, owner: w, attempt: t.attempt, result: .succeeded(Array("done".utf8)))],
                claim: f.claim(w, supervisor: s), now: .now())
            claimed.withLock { $0 = got?.claimed.map(\.id) }
        }.start()
        let watcher = try admin(url)
        func waitingOn(_ prefix: String) -> Bool {
            eventually(timeout: 30) {
                (try? watcher.exec("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1",
                                   [.text(prefix + "%")]).int(0, 0)) == 1
            }
        }
        #expect(waitingOn("UPDATE tasks t SET state = 'succeeded'"), "the worker should wait for its task's row")
        // A recoverer meanwhile: busy after a short wait, the row and tasks untouched.
        let recoverer = try PostgresTaskStore(url: url)
        let t0 = System.monotonic()
        #expect { try recoverer.recoverProcess(w, now: .now()) { _ in .failed(error: "died", retryAt: .now()) } } throws: { e in
            (e as? TaskQueueError)?.code == .busy
        }
        #expect(System.monotonic() - t0 < 5, "recovery must not wait for the whole transaction")
        #expect(try store.processes().contains { $0.id == w })
        #expect(try store.task(t.id)?.state == .running)
        try holder.run(script: "ROLLBACK")
        #expect(eventually(timeout: 30) { claimed.current != nil })
        // The worker's transaction ended: the next round recovers what it claimed.
        recovered.withLock { $0 = (try? recoverer.recoverProcess(w, now: .now()) { _ in .failed(error: "died", retryAt: .now()) })?.map(\.id) }
        #expect(eventually(timeout: 30) { claimed.current != nil && recovered.current != nil })
        #expect(claimed.current == waiting)
        #expect(recovered.current == waiting, "recovery must find what the worker claimed while it waited")
        #expect(try store.task(t.id)?.state == .succeeded)
        for id in waiting {
            let r = try #require(try store.task(id))
            #expect(r.state == .queued && r.owner == nil && r.lastError == "died", "\(r)")
        }
        // And the worker, thawed, may neither finish nor claim.
        #expect(throws: OwnerNotRegistered.self) { try f.claimed(w, supervisor: s, at: .now()) }
    }

    /// A claim skips rows another transaction has locked and takes the next ones;
    /// when every claimable row is locked it returns empty (it does not wait), and
    /// takes them once the lock is gone.
    @Test func claimersSkipLockedRows() throws {
        let url = try TestPostgres.freshSchema()
        let store = try PostgresTaskStore(url: url)
        let f = RowFactory(store)
        let s = try f.supervisor()
        let w = try f.worker(supervisor: s)
        let ids = try (0..<5).map { _ in try f.queued() }
        let other = try admin(url)
        try other.run(script: "BEGIN")
        try other.exec("SELECT 1 FROM tasks WHERE id = ANY($1) FOR UPDATE", [.ints(Array(ids.prefix(3)))])
        #expect(try f.claimed(w, supervisor: s, limit: 10).map(\.id) == Array(ids.suffix(2)))
        #expect(try f.claimed(w, supervisor: s, limit: 10).isEmpty)
        try other.run(script: "ROLLBACK")
        #expect(try f.claimed(w, supervisor: s, limit: 10).map(\.id) == Array(ids.prefix(3)))
    }

    /// Claimers in several processes' worth of connections, each claiming and
    /// finishing in one call: every task runs exactly once.
    @Test func claimersOnThreadsNeverShareATask() throws {
        let url = try TestPostgres.freshSchema()
        let store = try PostgresTaskStore(url: url)
        let f = RowFactory(store)
        let s = try f.supervisor()
        let workers = try (0..<6).map { _ in try f.worker(supervisor: s) }
        let now = f.now
        var tasks = (0..<600).map { NewTask(kind: "t", payload: "\($0)", options: EnqueueOptions(priority: Int64($0 % 3))) }
        tasks += (0..<200).map { NewTask(kind: "t", payload: "\"d\($0)\"", options: EnqueueOptions(runAt: now.adding(seconds: -Double($0)))) }
        let ids = try store.insertTasks(tasks, now: now)
        let claims = Locked<[Int64]>([])
        let errors = Locked<[String]>([])
        let finished = onThreads(6) { i in
            do {
                let s2 = try PostgresTaskStore(url: url)
                var held: [ClaimedTask] = []
                while true {
                    let outcomes = held.map { TaskOutcome(taskID: $0.id, owner: workers[i], attempt: $0.attempt, result: .succeeded([])) }
                    let r = try s2.finishAndClaim(outcomes, claim: ClaimRequest(owner: workers[i], supervisorID: s, kinds: ["t"],
                                                                                 queues: nil, limit: 7), now: now)
                    if r.accepted.contains(false) { errors.withLock { $0.append("refused outcome") } }
                    held = r.claimed
                    if held.isEmpty { break }
                    claims.withLock { $0 += held.map(\.id) }
                }
            } catch { errors.withLock { $0.append("\(error)") } }
        }
        #expect(finished)
        #expect(errors.current.isEmpty, "\(errors.current)")
        #expect(claims.current.count == ids.count && Set(claims.current) == Set(ids))
        #expect(try store.stats(now: now).counts.map { "\($0.state.rawValue)=\($0.count)" } == ["succeeded=800"])
    }

    /// Sequence ids are not commit-ordered: a task whose transaction took its id
    /// before `taskq stop` and commits after the sentinel's insert began would lie
    /// beyond the bound. The sentinel waits for inserts in flight, so every task
    /// committed before `stop` returned is below it and runs before the stop.
    @Test func stopSentinelWaitsForInsertsInFlight() throws {
        let url = try TestPostgres.freshSchema()
        let store = try PostgresTaskStore(url: url)
        let f = RowFactory(store)
        let s = try f.supervisor()
        let w = try f.worker(supervisor: s)
        // A producer mid-transaction: it has its id, and has not committed.
        let producer = try admin(url)
        try producer.pipeline(PostgresTaskStore.beginInsert)
        let late = try producer.exec("INSERT INTO tasks (kind, created_at) VALUES ('t', now()) RETURNING id").int(0, 0)
        let sentinel = Locked<StopSentinel?>(nil)
        let thread = Thread {
            let inserted = try? PostgresTaskStore(url: url).insertStopSentinels(mode: .drain, supervisorIDs: [s], now: .now()).first
            sentinel.withLock { $0 = inserted }
        }
        thread.start()
        let watcher = try admin(url)
        #expect(eventually(timeout: 30) {
            (try? watcher.exec("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND wait_event = 'advisory'")
                .int(0, 0)) == 1
        }, "the sentinel should wait for the insert in flight")
        #expect(sentinel.current == nil)
        try producer.run(script: "COMMIT")
        #expect(eventually(timeout: 30) { sentinel.current != nil })
        let stop = try #require(sentinel.current)
        #expect(stop.id > late)
        #expect(try f.claimed(w, supervisor: s).map(\.id) == [late])
        // A task inserted after the sentinel is beyond it.
        let after = try f.queued()
        #expect(after > stop.id)
        #expect(try f.claimed(w, supervisor: s).isEmpty)
    }

    /// Two dependencies of one task finish at the same moment in two transactions:
    /// the task is released once, by whichever commits second.
    @Test func dependenciesFinishingTogetherReleaseTheirDependant() throws {
        let url = try TestPostgres.freshSchema()
        let store = try PostgresTaskStore(url: url)
        let f = RowFactory(store)
        let s = try f.supervisor()
        let w1 = try f.worker(supervisor: s, kinds: ["a"]), w2 = try f.worker(supervisor: s, kinds: ["b"])
        let a = try f.queued(kind: "a"), b = try f.queued(kind: "b")
        let d = try store.insertTasks([NewTask(kind: "d", options: EnqueueOptions(after: [a, b]))], now: f.now)[0]
        let ta = try f.claimed(w1, supervisor: s, kinds: ["a"])[0], tb = try f.claimed(w2, supervisor: s, kinds: ["b"])[0]
        // Hold d's row: both finishing transactions reach it and wait.
        let holder = try admin(url)
        try holder.run(script: "BEGIN")
        try holder.exec("SELECT 1 FROM tasks WHERE id = $1 FOR NO KEY UPDATE", [.int(d)])
        let errors = Locked<[String]>([])
        for (t, owner) in [(ta, w1), (tb, w2)] {
            Thread {
                do {
                    _ = try PostgresTaskStore(url: url).finishAndClaim(
                        [TaskOutcome(taskID: t.id, owner: owner, attempt: 1, result: .succeeded([]))], claim: nil, now: .now())
                } catch { errors.withLock { $0.append("\(error)") } }
            }.start()
        }
        let watcher = try admin(url)
        #expect(eventually(timeout: 30) {
            (try? watcher.exec("""
                SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'SELECT 1 FROM tasks WHERE id = ANY%'
                """).int(0, 0)) == 2
        }, "both finishes should be waiting for the dependant's row")
        try holder.run(script: "COMMIT")
        #expect(eventually(timeout: 30) { (try? store.task(a)?.state) == .succeeded && (try? store.task(b)?.state) == .succeeded })
        #expect(errors.current.isEmpty, "\(errors.current)")
        #expect(eventually(timeout: 30) { (try? store.task(d)?.isBlocked) == false })
        #expect(try f.claimed(w1, supervisor: s, kinds: ["d"], at: .now()).map(\.id) == [d])
    }

    /// A lock held longer than the busy timeout fails the call as `.busy`, whole,
    /// and the connection goes on working.
    @Test func aLockHeldPastTheBusyTimeoutIsBusy() throws {
        let url = try TestPostgres.freshSchema()
        let store = try PostgresTaskStore(url: url, busyTimeout: 0.2)
        let id = try store.insertTasks([NewTask(kind: "t")], now: .now())[0]
        let holder = try admin(url)
        try holder.run(script: "BEGIN")
        try holder.exec("SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE", [.int(id)])
        let e = taskQueueError { _ = try store.cancelTasks([id], reason: "x", now: .now()) }
        #expect(e?.code == .busy && e?.exitCode == 69, "\(String(describing: e))")
        try holder.run(script: "ROLLBACK")
        #expect(try store.task(id)?.state == .queued)
        #expect(try store.cancelTasks([id], reason: "x", now: .now()).map(\.after) == [.cancelled])
    }

    /// A session frozen mid-transaction is ended by the server, its locks released:
    /// recovering its process does not wait for it to thaw.
    @Test func aTransactionLeftIdleIsEndedAndItsLocksReleased() throws {
        let url = try TestPostgres.freshSchema()
        let store = try PostgresTaskStore(url: url, busyTimeout: 30, idleTimeout: 0.3)
        let f = RowFactory(store)
        let s = try f.supervisor(), w = try f.worker(supervisor: s)
        // What a worker frozen after locking its row leaves: this connection's
        // transaction, open, holding the row.
        try store.db.run(script: "BEGIN")
        try store.db.exec("SELECT 1 FROM processes WHERE id = $1 FOR NO KEY UPDATE", [.int(w)])
        // Recovery is busy until the server has ended that session (each try waits
        // briefly), then takes the row.
        let recoverer = try PostgresTaskStore(url: url)
        var recovered: [ClaimedTask]?
        #expect(eventually(timeout: 10) {
            recovered = try? recoverer.recoverProcess(w, now: .now()) { _ in .released }
            return recovered != nil
        })
        #expect(recovered?.isEmpty == true)
        #expect(try PostgresTaskStore(url: url).processes().map(\.id) == [s])
        #expect(throws: (any Error).self) { try store.db.exec("SELECT 1") }
    }

    /// Errors are one line and never carry bound values (payloads may be private).
    @Test func errorsNameTheProblemNotTheValues() throws {
        let store = try PostgresTaskStore(url: try TestPostgres.freshSchema())
        let bad = NewTask(kind: String(repeating: "k", count: 300), payload: #"{"secret":"hunter2"}"#)
        do {
            _ = try store.insertTasks([bad], now: .now())
            Issue.record("a kind of 300 characters was stored")
        } catch {
            let text = "\(error)"
            #expect(!text.contains("hunter2") && !text.contains("\n") && text.contains("kind must be 1 to 200"), "\(text)")
        }
    }
}
