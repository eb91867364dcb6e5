// The PostgreSQL store: the conformance suite in a fresh schema per case, and what
// only PostgreSQL needs checked: the claim's plan, the locks READ COMMITTED needs
// (two recoverers, claimers skipping each other's rows, stop sentinels and inserts
// in flight, dependencies), the migrations and the schema's rules. Skipped, with
// the reason, where no PostgreSQL server can be had (see PostgresTestSupport.swift).

import Foundation
import Testing
@testable import TaskQueue
@testable import TaskQueuePostgres
import TaskQueueTestSupport
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

    // MARK: the claim's plan

    /// The claim must read the two partial indexes in order, whatever the table
    /// holds: never a scan of the table, never a sort of its rows (only the merge
    /// of at most twice `limit` picked rows is sorted).
    @Test func claimPlanReadsThePartialIndexes() throws {
        let url = try TestPostgres.freshSchema()
        let store = try PostgresTaskStore(url: url)
        let sql = try admin(url)
        let f = RowFactory(store)
        let s = try f.supervisor()
        let w = try f.worker(supervisor: s)
        // 100,000 finished tasks, 20,000 ready, 2,000 delayed (half due), 500 blocked.
        try sql.exec("""
            INSERT INTO tasks (kind, state, attempts, created_at, started_at, finished_at)
            SELECT 't', 'succeeded', 1, now(), now(), now() FROM generate_series(1, 100000)
            """)
        try sql.exec("INSERT INTO tasks (kind, priority, created_at) SELECT 't', i % 3, now() FROM generate_series(1, 20000) i")
        try sql.exec("""
            INSERT INTO tasks (kind, run_at, created_at)
            SELECT 't', now() + (i - 1000) * interval '1 second', now() FROM generate_series(1, 2000) i
            """)
        try sql.exec("INSERT INTO tasks (kind, run_at, created_at) SELECT 't', '9999-12-31T23:59:59.999Z', now() FROM generate_series(1, 500)")
        try sql.exec("ANALYZE tasks")
        let sentinel = try #require(try store.insertStopSentinels(mode: .drain, supervisorIDs: [s], now: f.now).first)
        for paused in [false, true] {
            if paused { #expect(try store.setPaused(queue: "elsewhere", paused: true, now: f.now)) }
            for queues in [false, true] {
                var values: [PGValue] = [.ts(.now()), .text(String(s)), .int(100), .texts(["t"]), .int(w), .int(1), .text("h")]
                if queues { values.append(.texts(["default"])) }
                if paused { values.append(.texts(["elsewhere"])) }
                let claim = PostgresTaskStore.claimSQL(queues: queues, paused: paused)
                try sql.run(script: "BEGIN")
                let plan = try sql.exec("EXPLAIN (ANALYZE, COSTS OFF) " + claim, values)
                try sql.run(script: "ROLLBACK")
                let lines = plan.rows { plan.string($0, 0) }
                let text = lines.joined(separator: "\n")
                print("claim plan (queues: \(queues), paused: \(paused)):\n\(text)")
                #expect(text.contains("Index Scan using tasks_ready on tasks"), "\(text)")
                #expect(text.contains("Index Scan using tasks_delayed on tasks"), "\(text)")
                #expect(text.contains("tasks_stop_sentinels"), "\(text)")
                #expect(!text.contains("Seq Scan on tasks") && !text.contains("Bitmap Heap Scan on tasks"), "\(text)")
                // Only the merge sorts: its keys are the picked rows' (priority, since, id).
                let sortKeys = lines.filter { $0.contains("Sort Key:") }
                #expect(sortKeys.count <= 1 && sortKeys.allSatisfy { $0.contains("since") }, "\(text)")
            }
        }
        // And it claims: the first 100 by priority, below the sentinel.
        _ = try store.completeStopSentinel(sentinel.id, note: "done", now: f.now)
        let got = try f.claimed(w, supervisor: s, limit: 100)
        #expect(got.count == 100)
    }

    /// `nextRunAt` reads the delayed index only.
    @Test func nextRunAtPlanReadsTheDelayedIndex() throws {
        let url = try TestPostgres.freshSchema()
        _ = try PostgresTaskStore(url: url)
        let sql = try admin(url)
        try sql.exec("""
            INSERT INTO tasks (kind, state, attempts, created_at, started_at, finished_at)
            SELECT 't', 'succeeded', 1, now(), now(), now() FROM generate_series(1, 50000)
            """)
        try sql.exec("INSERT INTO tasks (kind, run_at, created_at) SELECT 't', now() + i * interval '1 second', now() FROM generate_series(1, 500) i")
        try sql.exec("ANALYZE tasks")
        let plan = try sql.exec("""
            EXPLAIN (COSTS OFF) SELECT min(run_at) FROM tasks
            WHERE state = 'queued' AND run_at IS NOT NULL AND run_at > now() AND run_at < 'infinity' AND kind = ANY('{t}')
            """)
        let text = plan.rows { plan.string($0, 0) }.joined(separator: "\n")
        #expect(text.contains("tasks_delayed") && !text.contains("Seq Scan"), "\(text)")
    }

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
        tasks += (0..<200).map { NewTask(kind: "t", payload: "d\($0)", options: EnqueueOptions(runAt: now.adding(seconds: -Double($0)))) }
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
        try producer.run(script: PostgresTaskStore.beginInsert)
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

    /// Errors are one line and never carry bound values (payloads may be private).
    @Test func errorsNameTheProblemNotTheValues() throws {
        let store = try PostgresTaskStore(url: try TestPostgres.freshSchema())
        let bad = NewTask(kind: String(repeating: "k", count: 300), payload: #"{"secret":"hunter2"}"#)
        do {
            _ = try store.insertTasks([bad], now: .now())
            Issue.record("a kind of 300 characters was stored")
        } catch {
            let text = "\(error)"
            #expect(!text.contains("hunter2") && !text.contains("\n") && text.contains("tasks_kind_check"), "\(text)")
        }
    }

    // MARK: the schema

    /// Careless changes from psql are refused by the CHECKs and the trigger.
    @Test func schemaRefusesIllegalChanges() throws {
        let url = try TestPostgres.freshSchema()
        let store = try PostgresTaskStore(url: url)
        let sql = try admin(url)
        let f = RowFactory(store)
        let s = try f.supervisor()
        let w = try f.worker(supervisor: s)
        let queued = try f.queued(kind: "other")
        let done = try f.succeeded(Array("ok".utf8), owner: w, supervisor: s)
        for bad in [
            "UPDATE tasks SET state = 'running' WHERE id = \(queued)",                       // no owner
            "UPDATE tasks SET state = 'succeeded', finished_at = now() WHERE id = \(queued)",  // queued -> succeeded
            "UPDATE tasks SET state = 'queued', finished_at = NULL, result = NULL WHERE id = \(done)",  // succeeded -> queued
            "UPDATE tasks SET state = 'bogus' WHERE id = \(queued)",
            "UPDATE tasks SET attempts = -1 WHERE id = \(queued)",
            "INSERT INTO tasks (kind, created_at) VALUES ('', now())",
            "INSERT INTO processes (role, pid, host, started_at, heartbeat_at, expires_at) VALUES ('worker', 1, 'h', now(), now(), now())",
        ] {
            #expect(throws: PostgresError.self, "\(bad)") { try sql.exec(bad) }
        }
        do {
            try sql.exec("UPDATE tasks SET state = 'queued', finished_at = NULL, result = NULL WHERE id = \(done)")
        } catch let e as PostgresError {
            #expect(e.sqlstate == "23514" && e.message.hasPrefix("taskq: illegal task state change"), "\(e)")
        }
        #expect(try store.task(done)?.state == .succeeded && store.task(queued)?.state == .queued)
        // Legal by hand: cancel a queued task, retry it.
        try sql.exec("UPDATE tasks SET state = 'cancelled', finished_at = now() WHERE id = \(queued)")
        try sql.exec("UPDATE tasks SET state = 'queued', finished_at = NULL WHERE id = \(queued)")
    }

    /// Times come back to the millisecond, as given, across the whole range taskq uses.
    @Test func timesRoundTripToTheMillisecond() throws {
        let store = try PostgresTaskStore(url: try TestPostgres.freshSchema())
        for ms: Int64 in [0, 1, -1, 1_765_000_000_123, -86_400_001, Timestamp.blocked.milliseconds] {
            let t = Timestamp(milliseconds: ms)
            let id = try store.insertTasks([NewTask(kind: "t", options: EnqueueOptions(runAt: t))], now: t)[0]
            let r = try #require(try store.task(id))
            #expect(r.runAt == t && r.createdAt == t, "\(ms)")
        }
        // Past the years ISO 8601 text can show, clamped as the SQLite store's text is.
        let far = try store.insertTasks([NewTask(kind: "t", options: EnqueueOptions(runAt: Timestamp(milliseconds: .max)))], now: .now())[0]
        #expect(try store.task(far)?.runAt == Timestamp.isoMaximum)
    }

    // MARK: migrations

    @Test func migrationsRecordEveryVersionAndRefuseANewerSchema() throws {
        let url = try TestPostgres.freshSchema()
        // Several processes' connections opening a new schema at once migrate it once.
        let errors = Locked<[String]>([])
        #expect(onThreads(4) { _ in
            do { _ = try PostgresTaskStore(url: url) } catch { errors.withLock { $0.append("\(error)") } }
        })
        #expect(errors.current.isEmpty, "\(errors.current)")
        let sql = try admin(url)
        let rows = try sql.exec("SELECT version, name FROM taskq_migrations ORDER BY version")
        #expect(rows.rows { "\(rows.int($0, 0)) \(rows.string($0, 1))" } == embeddedPostgresMigrations.map { "\($0.version) \($0.name)" })
        try sql.exec("INSERT INTO taskq_migrations (version, name, applied_at) VALUES (999, 'future', now())")
        let e = taskQueueError { _ = try PostgresTaskStore(url: url) }
        #expect(e?.code == .unavailable && e?.message.contains("newer than this taskq knows") == true, "\(String(describing: e))")
    }

    @Test func aSchemaWithOtherTablesIsRefusedAndAnEmptyOneNotCreatedWithoutCreate() throws {
        let url = try TestPostgres.freshSchema()
        let e1 = taskQueueError { _ = try PostgresTaskStore(url: url, create: false) }
        #expect(e1?.code == .notFound, "\(String(describing: e1))")
        try admin(url).exec("CREATE TABLE theirs (x int)")
        let e2 = taskQueueError { _ = try PostgresTaskStore(url: url) }
        #expect(e2?.code == .badData, "\(String(describing: e2))")
        let unreachable = taskQueueError { _ = try PostgresTaskStore(url: "postgresql:///nosuchdb?host=/nonexistent-dir") }
        #expect(unreachable?.code == .unavailable && unreachable?.message.contains("\n") == false, "\(String(describing: unreachable))")
    }
}

/// Needs no server: the binary's copy of the PostgreSQL migrations equals the files.
@Suite struct PostgresMigrationFilesTests {
    @Test func embeddedMigrationsEqualTheFiles() throws {
        let dir = MigrationTests.packageRoot + "/migrations/postgres"
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".sql") }.sorted()
        try #require(!files.isEmpty, "no migrations found in \(dir)")
        #expect(embeddedPostgresMigrations.map(\.name) == files,
                "the embedded migrations differ from migrations/postgres/*.sql: run scripts/embed-postgres-migrations.sh")
        for (m, name) in zip(embeddedPostgresMigrations, files) {
            let text = String(decoding: readAll(dir + "/" + name), as: UTF8.self)
            #expect(m.sql.trimmingCharacters(in: .newlines) == text.trimmingCharacters(in: .newlines),
                    "\(name) differs from its embedded copy: run scripts/embed-postgres-migrations.sh")
            #expect(Int(name.prefix(4)) == m.version)
        }
        // The same version numbers as the SQLite migrations, where both have one.
        let sqlite = try FileManager.default.contentsOfDirectory(atPath: MigrationTests.packageRoot + "/migrations")
            .filter { $0.hasSuffix(".sql") }.sorted()
        #expect(Array(sqlite.prefix(files.count)) == files, "PostgreSQL migrations carry the SQLite migrations' numbers and names")
    }
}
