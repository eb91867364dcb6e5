// The PostgreSQL store's schema: the claim's plan on the partial indexes (EXPLAIN),
// the CHECKs and trigger seen from SQL, times, migrations and their embedded copy.

import Foundation
import Testing
@testable import TaskQueue
@testable import TaskQueuePostgres
import TaskQueueTestSupport
import TaskQueueConformance

@Suite(.enabled(if: TestPostgres.isAvailable, TestPostgres.skipReason))
struct PostgresSchemaTests {
    /// A connection to the schema behind `url`, around the store, as psql would be.
    func admin(_ url: String) throws -> PostgresConnection { try PostgresConnection(url) }

    /// A fresh schema with its store, a psql-like connection, a supervisor and a worker.
    func fixture() throws -> (PostgresTaskStore, PostgresConnection, RowFactory, Int64, Int64) {
        let url = try TestPostgres.freshSchema()
        let store = try PostgresTaskStore(url: url)
        let f = RowFactory(store)
        let s = try f.supervisor()
        return (store, try admin(url), f, s, try f.worker(supervisor: s))
    }

    // MARK: the claim's plan

    /// The claim must read the two partial indexes in order, whatever the table
    /// holds: never a scan of the table, never a sort of its rows (only the merge
    /// of at most twice `limit` picked rows is sorted).
    @Test func claimPlanReadsThePartialIndexes() throws {
        let (store, sql, f, s, w) = try fixture()
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

    /// A worker's claim and finish read only the rows they name, also where the
    /// statistics of a mid-sized, all-queued table make a hash of the whole table
    /// look cheaper to the planner.
    @Test func claimAndFinishPlansReadOnlyTheirRowsOnAMidSizedQueue() throws {
        let (_, sql, f, s, w) = try fixture()
        try sql.exec("INSERT INTO tasks (kind, created_at) SELECT 't', now() FROM generate_series(1, 20000)")
        try sql.exec("ANALYZE tasks")
        let running = try f.claimed(w, supervisor: s, limit: 512)
        #expect(running.count == 512)
        // The worker prepares both, and runs them with the plan made for any values
        // (see `PostgresTaskStore.beginWorker`): check that one, as the server makes it.
        try sql.exec("""
            PREPARE claim(timestamptz, text, int8, text[], int8, int8, text) AS \(PostgresTaskStore.claimSQL(queues: false, paused: false))
            """)
        try sql.exec("PREPARE finish(timestamptz, int8[], int8[], int8[], bytea[], text[]) AS \(PostgresTaskStore.finishBatchSQL)")
        try sql.pipeline(PostgresTaskStore.beginWorker)
        // (EXECUTE takes no bound parameters: literals; the plan is the same for any.)
        let ids = running.map { String($0.id) }.joined(separator: ",")
        let claim = try sql.exec("EXPLAIN (COSTS OFF) EXECUTE claim(now(), '\(s)', 512, '{t}', \(w), 1, 'h')")
        let finish = try sql.exec("""
            EXPLAIN (COSTS OFF) EXECUTE finish(now(), '{\(ids)}', array_fill(\(w)::int8, ARRAY[\(running.count)]),
                                               array_fill(1::int8, ARRAY[\(running.count)]), '{}', '{}')
            """)
        try sql.run(script: "ROLLBACK")
        for plan in [claim, finish] {
            let text = plan.rows { plan.string($0, 0) }.joined(separator: "\n")
            print(text)
            #expect(!text.contains("Seq Scan on tasks") && !text.contains("Hash Join") && !text.contains("Merge Join"), "\(text)")
            #expect(!text.contains("JIT"), "no compiling for a claim: \(text)")
            #expect(text.contains("Index Scan using tasks_pkey on tasks t"), "\(text)")
        }
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

    // MARK: the schema

    /// Careless changes from psql are refused by the CHECKs and the trigger.
    @Test func schemaRefusesIllegalChanges() throws {
        let (store, sql, f, s, w) = try fixture()
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

    /// A plain INSERT from psql gets what `taskq enqueue` would give it: ready now,
    /// queue 'default', the kind's policy for each column left NULL, else 3 attempts.
    @Test func plainInsertsGetEnqueuesDefaults() throws {
        let url = try TestPostgres.freshSchema()
        let store = try PostgresTaskStore(url: url)
        let sql = try admin(url)
        _ = try store.setKindPolicy("resize", KindPolicy(maxAttempts: 7, backoffBase: 2, onCrash: .fail), clear: [], now: .now())
        let r = try sql.exec("""
            INSERT INTO tasks (kind, payload) VALUES ('resize', '{"file":"a.png"}'), ('other', '1') RETURNING id
            """)
        let ids = r.rows { r.int($0, 0) }
        let before = Timestamp.now().adding(seconds: -60)
        let a = try #require(try store.task(ids[0])), b = try #require(try store.task(ids[1]))
        #expect(a.state == .queued && a.queue == "default" && a.priority == 0 && a.payload == #"{"file":"a.png"}"#)
        #expect(a.maxAttempts == 7 && a.backoffBase == 2 && a.backoffCap == nil && a.onCrash == .fail)
        #expect(a.createdAt > before && a.runAt == a.createdAt)
        #expect(b.maxAttempts == 3 && b.backoffBase == nil && b.onCrash == nil)
        // A backoff half given wins over the kind's other half; given columns stay.
        let c = try sql.exec("""
            INSERT INTO tasks (kind, backoff_cap_s, max_attempts) VALUES ('resize', 1, 2)
            RETURNING max_attempts, backoff_base_s, backoff_cap_s, on_crash
            """)
        #expect(c.int(0, 0) == 2 && c.double(0, 1) == 1 && c.double(0, 2) == 1 && c.text(0, 3) == "fail")
        // And the worker claims them.
        let f = RowFactory(store)
        let s = try f.supervisor(), w = try f.worker(supervisor: s)
        #expect(try f.claimed(w, supervisor: s, kinds: ["resize", "other"]).map(\.id).sorted() == (ids + [ids[1] + 1]).sorted())
    }

    /// Bad rows are refused by named CHECKs (or the json cast, or the reserved-kind
    /// trigger), with a message that says what was wrong; taskq's own connection
    /// still writes its stop sentinels.
    @Test func badInsertsAreRefusedWithReadableMessages() throws {
        let url = try TestPostgres.freshSchema()
        let store = try PostgresTaskStore(url: url)
        let sql = try admin(url)
        for (bad, says) in [
            ("INSERT INTO tasks (kind) VALUES ('')", "kind must be 1 to 200 [A-Za-z0-9._:-], not starting with '-'"),
            ("INSERT INTO tasks (kind) VALUES ('a b')", "kind must be"),
            ("INSERT INTO tasks (kind) VALUES ('-a')", "kind must be"),
            ("INSERT INTO tasks (kind, queue) VALUES ('a', 'q/1')", "queue must be 1 to 200"),
            ("INSERT INTO tasks (kind, payload) VALUES ('a', '{')", "invalid input syntax for type json"),
            ("INSERT INTO tasks (kind, payload) VALUES ('a', '\"' || repeat('x', 1048576) || '\"')", "payload must be valid JSON of at most 1 MiB"),
            ("INSERT INTO tasks (kind, max_attempts) VALUES ('a', 0)", "max_attempts must be between 1 and 1000000"),
            ("INSERT INTO tasks (kind, timeout_s) VALUES ('a', 31536001)", "timeout_s must be more than 0 and at most 31536000 (a year)"),
            ("INSERT INTO tasks (kind, unique_key) VALUES ('a', '')", "unique_key must be 1 to 1000 bytes"),
            ("INSERT INTO tasks (kind) VALUES ('taskq.stop')", "kinds starting with 'taskq.' are reserved for taskq itself"),
        ] {
            do {
                try sql.exec(bad)
                Issue.record("accepted: \(bad)")
            } catch let e as PostgresError {
                #expect(e.message.contains(says), "\(bad): \(e)")
            }
        }
        #expect(try sql.exec("SELECT count(*) FROM tasks").int(0, 0) == 0)
        let s = try RowFactory(store).supervisor()
        #expect(try store.insertStopSentinels(mode: .drain, supervisorIDs: [s], now: .now()).count == 1)
    }

    /// queuedCounts reads the two partial indexes, never the finished tasks.
    @Test func queuedCountsPlanReadsThePartialIndexes() throws {
        let url = try TestPostgres.freshSchema()
        let store = try PostgresTaskStore(url: url)
        let sql = try admin(url)
        try sql.exec("""
            INSERT INTO tasks (kind, state, attempts, created_at, started_at, finished_at, max_attempts)
            SELECT 't', 'succeeded', 1, now(), now(), now(), 3 FROM generate_series(1, 50000)
            """)
        try sql.exec("INSERT INTO tasks (kind, max_attempts) SELECT 'r', 3 FROM generate_series(1, 300)")
        try sql.exec("INSERT INTO tasks (kind, run_at, max_attempts) SELECT 'd', now() + interval '1 hour', 3 FROM generate_series(1, 200)")
        try sql.exec("ANALYZE tasks")
        let plan = try sql.exec("EXPLAIN (COSTS OFF) " + PostgresTaskStore.queuedCountsSQL)
        let text = plan.rows { plan.string($0, 0) }.joined(separator: "\n")
        #expect(text.contains("tasks_ready") && text.contains("tasks_delayed") && !text.contains("Seq Scan"), "\(text)")
        #expect(try store.queuedCounts(ids: nil).map { "\($0.kind) \($0.count)" } == ["d 200", "r 300"])
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

    /// Rows a version-6 schema holds are kept by 0007 and 0008 as they are, even
    /// ones their new CHECKs would refuse (they are NOT VALID: new values only), and
    /// such a row can still change state: a domain's CHECK sees only the values
    /// written, not the row's other columns.
    @Test func laterVersionsKeepRowsTheirChecksWouldRefuse() throws {
        let url = try TestPostgres.freshSchema()
        let sql = try admin(url)
        for m in embeddedPostgresMigrations where m.version <= 6 {
            try sql.run(script: m.sql)
            try sql.exec("INSERT INTO taskq_migrations (version, name, applied_at) VALUES ($1, $2, now())", [.int(Int64(m.version)), .text(m.name)])
        }
        let r = try sql.exec("INSERT INTO tasks (kind, payload, created_at) VALUES ('a b', 'not json', now()) RETURNING id")
        let old = r.int(0, 0)
        let store = try PostgresTaskStore(url: url)
        #expect(try sql.exec("SELECT max(version) FROM taskq_migrations").int(0, 0) == Int64(PostgresMigrator.latestVersion))
        let t = try #require(try store.task(old))
        #expect(t.kind == "a b" && t.payload == "not json" && t.maxAttempts == 3)
        try sql.exec("UPDATE tasks SET state = 'cancelled', finished_at = now() WHERE id = $1", [.int(old)])
        #expect(try store.task(old)?.state == .cancelled)
        // Writing the bad value is refused, also over the stored one.
        #expect(throws: PostgresError.self) { try sql.exec("UPDATE tasks SET kind = 'a b' WHERE id = $1", [.int(old)]) }
        #expect(try store.insertTasks([NewTask(kind: "t")], now: .now()) == [old + 1])
    }

    /// 0008 changes the types of columns that views read: the user's own views
    /// (and views on those) are kept with their options, privileges and comments; a
    /// materialized view stops the upgrade, which then changes nothing and says why.
    @Test func version8KeepsTheUsersViewsAndStopsAtAMaterializedOne() throws {
        let url = try TestPostgres.freshSchema()
        let sql = try admin(url)
        func upTo(_ version: Int) throws {
            for m in embeddedPostgresMigrations where m.version <= version {
                try sql.run(script: m.sql)
                try sql.exec("INSERT INTO taskq_migrations (version, name, applied_at) VALUES ($1, $2, now())", [.int(Int64(m.version)), .text(m.name)])
            }
        }
        try upTo(7)
        try sql.run(script: """
            CREATE VIEW "Kinds" AS SELECT kind, count(*) AS n FROM tasks GROUP BY kind;
            CREATE VIEW queued_kinds WITH (security_barrier) AS
                SELECT k.kind, k.n FROM "Kinds" k JOIN tasks t USING (kind) WHERE t.state = 'queued';
            GRANT SELECT ON queued_kinds TO PUBLIC;
            COMMENT ON VIEW "Kinds" IS 'tasks per kind';
            CREATE MATERIALIZED VIEW kind_snapshot AS SELECT kind FROM tasks;
            """)
        let e = taskQueueError { _ = try PostgresTaskStore(url: url) }
        #expect(e?.code == .unavailable && e?.message.contains("materialized view") == true
                && e?.message.contains("kind_snapshot") == true && e?.message.contains("nothing was changed") == true,
                "\(String(describing: e))")
        #expect(try sql.exec("SELECT max(version) FROM taskq_migrations").int(0, 0) == 7)
        try sql.exec("DROP MATERIALIZED VIEW kind_snapshot")
        let store = try PostgresTaskStore(url: url)
        #expect(try sql.exec("SELECT max(version) FROM taskq_migrations").int(0, 0) == Int64(PostgresMigrator.latestVersion))
        _ = try store.insertTasks([NewTask(kind: "a"), NewTask(kind: "a")], now: .now())
        #expect(try sql.exec("SELECT n FROM queued_kinds").int(0, 0) == 2)
        let kept = try sql.exec("""
            SELECT obj_description('"Kinds"'::regclass, 'pg_class'), has_table_privilege('public', 'queued_kinds', 'SELECT'),
                   (SELECT array_to_string(reloptions, ',') FROM pg_class WHERE oid = 'queued_kinds'::regclass)
            """)
        #expect(kept.text(0, 0) == "tasks per kind" && kept.bool(0, 1) && kept.text(0, 2) == "security_barrier=true")
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


/// Needs no server: the binary's PostgreSQL migrations are the files, in order.
@Suite struct PostgresMigrationFilesTests {
    @Test func embeddedMigrationsEqualTheFiles() throws {
        let dir = MigrationTests.packageRoot + "/migrations/postgres"
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".sql") }.sorted()
        try #require(!files.isEmpty, "no migrations found in \(dir)")
        #expect(embeddedPostgresMigrations.map(\.name) == files,
                "the embedded migrations differ from migrations/postgres/*.sql")
        for (m, name) in zip(embeddedPostgresMigrations, files) {
            let text = String(decoding: readAll(dir + "/" + name), as: UTF8.self)
            #expect(m.sql.trimmingCharacters(in: .newlines) == text.trimmingCharacters(in: .newlines),
                    "\(name) differs from its embedded copy")
            #expect(Int(name.prefix(4)) == m.version)
        }
        // The same version numbers as the SQLite migrations, where both have one.
        let sqlite = try FileManager.default.contentsOfDirectory(atPath: MigrationTests.packageRoot + "/migrations")
            .filter { $0.hasSuffix(".sql") }.sorted()
        #expect(Array(sqlite.prefix(files.count)) == files, "PostgreSQL migrations carry the SQLite migrations' numbers and names")
    }
}
