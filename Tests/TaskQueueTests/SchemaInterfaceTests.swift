// The tasks table as an interface (migrations/0007): a plain INSERT from the sqlite3
// shell gets what `taskq enqueue` would give, bad rows are refused with a message,
// ids are never given out twice after a purge, and the rebuild of an existing
// database keeps every row.

import Foundation
import Testing
@testable import TaskQueue
@testable import TaskQueueSQLite
import TaskQueueTestSupport

@Suite struct SchemaInterfaceTests {
    /// The columns that describe how a task runs (not its id, payload or times).
    static let shape = "kind, queue, state, priority, run_at, attempts, max_attempts, quote(timeout_s), quote(on_crash), quote(backoff_base_s), quote(backoff_cap_s), quote(unique_key)"

    @Test func aPlainInsertGetsWhatEnqueueGives() throws {
        let db = TempDB()
        defer { db.close() }
        let store = try db.store()
        _ = try store.setKindPolicy("resize", KindPolicy(maxAttempts: 9, backoffBase: 10, backoffCap: 60, onCrash: .fail),
                                    clear: [], now: .now())
        let cases: [(options: EnqueueOptions, columns: String, values: String)] = [
            (EnqueueOptions(), "", ""),
            (EnqueueOptions(maxAttempts: 2), ", max_attempts", ", 2"),
            // A backoff half the row sets wins over the kind's other half.
            (EnqueueOptions(backoffCap: 5), ", backoff_cap_s", ", 5"),
            (EnqueueOptions(backoffBase: 100), ", backoff_base_s", ", 100"),
            (EnqueueOptions(queue: "img", priority: -3, onCrash: .retry), ", queue, priority, on_crash", ", 'img', -3, 'retry'"),
        ]
        for kind in ["resize", "nopolicy"] {
            for c in cases {
                let viaTaskq = try store.insertTasks([NewTask(kind: kind, payload: #"{"file":"a.png"}"#, options: c.options)], now: .now())[0]
                let r = sqlite3Shell(db.path, #"INSERT INTO tasks (kind, payload\#(c.columns)) VALUES ('\#(kind)', '{"file":"a.png"}'\#(c.values)) RETURNING id"#)
                #expect(r.status == 0, "\(r)")
                let byHand = Int64(r.out) ?? 0
                #expect(byHand == viaTaskq + 1)
                let row = { (id: Int64) in sqlite(db.path, "SELECT \(Self.shape), payload FROM tasks WHERE id = \(id)") }
                #expect(row(byHand) == row(viaTaskq), "\(kind) \(c.columns)")
                // created_at in taskq's own format; ready at once ('' = since created_at).
                let t = try #require(try store.task(byHand))
                #expect(abs(t.createdAt.milliseconds - Timestamp.now().milliseconds) < 60_000)
                #expect(sqlite(db.path, "SELECT created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9]Z' FROM tasks WHERE id = \(byHand)") == "1")
                #expect(t.runAt == t.createdAt && t.state == .queued)
            }
        }
        #expect(sqlite(db.path, "SELECT max_attempts || ' ' || backoff_base_s || ' ' || backoff_cap_s FROM tasks WHERE kind = 'resize' AND backoff_cap_s = 5 LIMIT 1") == "9 5.0 5.0")
        #expect(sqlite(db.path, "PRAGMA integrity_check") == "ok")
    }

    @Test func badRowsAreRefusedWithAMessageAndNothingIsWritten() throws {
        let db = TempDB()
        defer { db.close() }
        _ = try db.store()
        let refused: [(values: String, says: String)] = [
            ("(kind, payload) VALUES ('resize', '{\"file\":')", "payload must be valid JSON"),
            ("(kind) VALUES ('a b')", "kind must be 1 to 200 letters"),
            ("(kind) VALUES ('-x')", "kind must be 1 to 200 letters"),
            ("(kind) VALUES ('')", "kind must be 1 to 200 letters"),
            ("(kind, queue) VALUES ('t', 'mail box')", "queue must be 1 to 200 letters"),
            ("(kind) VALUES ('taskq.stop')", "reserved for taskq itself"),
            ("(kind, payload) VALUES ('taskq.stop', '{\"supervisor\":1,\"mode\":\"now\"}')", "reserved for taskq itself"),
            ("(kind, priority) VALUES ('t', 'high')", "priority must be an integer"),
            ("(kind, max_attempts) VALUES ('t', 0)", "max_attempts must be between 1 and 1000000"),
            ("(kind, timeout_s) VALUES ('t', -1)", "timeout_s must be more than 0"),
            ("(kind, unique_key) VALUES ('t', '')", "unique_key must be 1 to 1000 bytes"),
        ]
        for c in refused {
            let r = sqlite3Shell(db.path, "INSERT INTO tasks \(c.values)")
            #expect(r.status != 0 && r.stderr.contains(c.says), "\(c.values): \(r)")
        }
        let nulled = sqlite3Shell(db.path, "INSERT INTO tasks (kind) VALUES ('t'); UPDATE tasks SET max_attempts = NULL")
        #expect(nulled.status != 0 && nulled.stderr.contains("max_attempts"), "\(nulled)")
        #expect(sqlite(db.path, "SELECT count(*) || ' ' || max_attempts FROM tasks") == "1 3")
    }

    @Test func idsAreNeverGivenOutTwiceAfterPurgingTheNewest() throws {
        let db = TempDB()
        defer { db.close() }
        let store = try db.store()
        let later = Timestamp.now().adding(seconds: 60)
        func purgeAll() throws {
            let all = try store.tasks(TaskFilter(limit: 10_000)).filter { $0.state == .queued }.map(\.id)
            _ = try store.cancelTasks(all, reason: "x", now: .now())
            _ = try store.purgeTasks(states: [.cancelled], finishedBefore: later, limit: 10_000)
            #expect(sqliteInt(db.path, "SELECT count(*) FROM tasks") == 0)
        }
        var top = try store.insertTasks((0..<3).map { NewTask(kind: "t", payload: "\($0)") }, now: .now()).last!
        try purgeAll()
        #expect(sqliteInt(db.path, "SELECT max_id FROM task_id_high_water") == Int(top))
        // One row at a time (taskq's one-row statement).
        #expect(try store.insertTasks([NewTask(kind: "t")], now: .now()) == [top + 1])
        top += 1
        try purgeAll()
        // A batch (multi-row statements, the first id given), then the shared-options batch.
        let batch = try store.insertTasks((0..<150).map { NewTask(kind: "t", payload: "\($0)") }, now: .now())
        #expect(batch == Array((top + 1)...(top + 150)))
        for (i, id) in batch.enumerated() where i % 37 == 0 { #expect(try store.task(id)?.payload == "\(i)") }
        top += 150
        try purgeAll()
        var payloads = PayloadBatch()
        for i in 0..<120 { Array("\(i)".utf8).withUnsafeBytes { payloads.append($0) } }
        let shared = try store.insertTasks(kind: "t", options: EnqueueOptions(), payloads: payloads, now: .now())
        #expect(shared == Array((top + 1)...(top + 120)))
        top += 120
        try purgeAll()
        // A producer that has committed before (and so read the mark) sees another
        // connection's purge of the newest tasks.
        let producer = try db.store()
        #expect(try producer.insertTasks([NewTask(kind: "t")], now: .now()) == [top + 1])
        #expect(try producer.insertTasks([NewTask(kind: "t")], now: .now()) == [top + 2])
        top += 2
        try purgeAll()
        #expect(try producer.insertTasks([NewTask(kind: "t")], now: .now()) == [top + 1])
        top += 1
        try purgeAll()
        // With a unique key (its own statement).
        #expect(try store.enqueueTasks([NewTask(kind: "t", options: EnqueueOptions(uniqueKey: "k"))], now: .now()).map(\.id) == [top + 1])
        top += 1
        try purgeAll()
        // By hand: the driver's last-insert id and RETURNING are the row's own, and no
        // placeholder row is left.
        let hand = sqlite3Shell(db.path, "INSERT INTO tasks (kind) VALUES ('t'); SELECT last_insert_rowid(); INSERT INTO tasks (kind) VALUES ('t'), ('t') RETURNING id;")
        #expect(hand.status == 0, "\(hand)")
        #expect(hand.out == "\(top + 1)\n\(top + 2)\n\(top + 3)")
        #expect(sqlite(db.path, "SELECT group_concat(id) FROM (SELECT id FROM tasks ORDER BY id)") == "\(top + 1),\(top + 2),\(top + 3)")
        // A mark every id has passed is stale: the next purge deletes it.
        #expect(try store.insertTasks([NewTask(kind: "t")], now: .now()) == [top + 4])
        _ = try store.cancelTasks([top + 1], reason: "x", now: .now())
        #expect(try store.purgeTasks(states: [.cancelled], finishedBefore: later, limit: 10) == 1)
        #expect(sqliteInt(db.path, "SELECT count(*) FROM task_id_high_water") == 0)
        #expect(sqlite(db.path, "PRAGMA integrity_check") == "ok")
    }

    @Test func upgradingARowFilledVersion6DatabaseKeepsEveryRowIdAndIndex() throws {
        let db = TempDB()
        defer { db.close() }
        let upTo6 = Migrator.migrations.filter { $0.version <= 6 }.map(\.sql).joined(separator: "\n")
        let ts = "'2026-01-01T00:00:00.000Z'"
        let setup = sqlite3Shell(db.path, "PRAGMA journal_mode = WAL;\n" + upTo6 + """
            PRAGMA user_version = 6;
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000)
            INSERT INTO tasks (id, kind, queue, state, priority, payload, run_at, attempts, max_attempts, created_at,
                               finished_at, result, unique_key, owner, worker_pid)
            SELECT i * 3, 'k' || (i % 7), 'q' || (i % 3),
                   CASE i % 4 WHEN 0 THEN 'queued' WHEN 1 THEN 'succeeded' WHEN 2 THEN 'failed' ELSE 'running' END,
                   i % 5, '{"i":' || i || '}', CASE WHEN i % 8 = 0 THEN \(ts) ELSE '' END,
                   CASE WHEN i % 4 = 0 THEN 0 ELSE 1 END, 3, \(ts),
                   CASE WHEN i % 4 IN (1, 2) THEN \(ts) END, CASE WHEN i % 4 = 1 THEN 'ok' END,
                   CASE WHEN i % 4 = 0 THEN 'u' || i END, CASE WHEN i % 4 = 3 THEN 1 END, i
            FROM n;
            INSERT INTO processes (id, role, pid, host, started_at, heartbeat_at, expires_at) VALUES (40, 'supervisor', 1, 'h', \(ts), \(ts), \(ts));
            DELETE FROM processes;
            INSERT INTO processes (role, pid, host, started_at, heartbeat_at, expires_at) VALUES ('supervisor', 1, 'h', \(ts), \(ts), \(ts));
            -- Somebody's own view, index and trigger on the tables the migration rebuilds.
            CREATE VIEW my_failed AS SELECT id FROM tasks WHERE state = 'failed';
            CREATE INDEX my_kinds ON tasks (kind);
            CREATE TABLE my_log (id INTEGER);
            CREATE TRIGGER my_trigger AFTER DELETE ON processes BEGIN INSERT INTO my_log VALUES (OLD.id); END;
            """)
        #expect(setup.status == 0, "\(setup)")
        let everything = "SELECT count(*), sum(id), max(id), sum(length(payload)), count(unique_key), count(result) FROM tasks"
        let indexes = "SELECT group_concat(name, ' ') FROM (SELECT name FROM sqlite_master WHERE type IN ('index', 'trigger', 'view') AND name NOT LIKE 'sqlite_%' ORDER BY name)"
        let before = sqlite(db.path, everything)
        let objectsBefore = sqlite(db.path, indexes)
        let byState = sqlite(db.path, "SELECT group_concat(s) FROM (SELECT state || count(*) AS s FROM tasks GROUP BY state ORDER BY state)")
        do { _ = try db.store() }   // migrates
        #expect(sqliteInt(db.path, "PRAGMA user_version") == Migrator.latestVersion)
        #expect(sqlite(db.path, everything) == before)
        #expect(sqlite(db.path, "SELECT group_concat(s) FROM (SELECT state || count(*) AS s FROM tasks GROUP BY state ORDER BY state)") == byState)
        let added = ["tasks_insert_checks", "tasks_insert_defaults", "tasks_max_attempts_set"]
        #expect(objectsBefore.contains("my_kinds") && objectsBefore.contains("my_trigger"))
        #expect(sqlite(db.path, indexes).split(separator: " ").map(String.init)
                    == (objectsBefore.split(separator: " ").map(String.init) + added).sorted())
        #expect(sqliteInt(db.path, "SELECT count(*) FROM tasks INDEXED BY tasks_ready WHERE state = 'queued' AND run_at = ''") == 25_000)
        #expect(sqliteInt(db.path, "SELECT count(*) FROM tasks INDEXED BY tasks_delayed WHERE state = 'queued' AND run_at > ''") == 25_000)
        // The view, index and trigger of somebody's own are there and work.
        #expect(sqliteInt(db.path, "SELECT count(*) FROM my_failed") == 50_000)
        #expect(sqlite(db.path, "EXPLAIN QUERY PLAN SELECT id FROM tasks WHERE kind = 'k1'").contains("my_kinds"))
        _ = sqlite(db.path, "DELETE FROM processes WHERE id = 41")
        #expect(sqliteInt(db.path, "SELECT id FROM my_log") == 41)
        _ = sqlite(db.path, "INSERT INTO processes (role, pid, host, started_at, heartbeat_at, expires_at) VALUES ('supervisor', 1, 'h', \(ts), \(ts), \(ts))")
        // The process ids' sequence is carried over: an owner id is never reused.
        #expect(sqliteInt(db.path, "SELECT seq FROM sqlite_sequence WHERE name = 'processes'") == 42)
        #expect(sqliteInt(db.path, "SELECT id FROM processes") == 42)
        #expect(sqlite(db.path, "PRAGMA integrity_check") == "ok")
        // And the next task follows the highest id.
        #expect(try db.store().insertTasks([NewTask(kind: "t")], now: .now()) == [600_001])
    }

    @Test func anOldRowTheNewChecksWouldRefuseIsCarriedOver() throws {
        let db = TempDB()
        defer { db.close() }
        let upTo6 = Migrator.migrations.filter { $0.version <= 6 }.map(\.sql).joined(separator: "\n")
        _ = sqlite(db.path, "PRAGMA journal_mode = WAL;\n" + upTo6 + """
            PRAGMA user_version = 6;
            INSERT INTO tasks (kind, payload, run_at, created_at) VALUES ('by hand', 'not json', '', '2026-01-01T00:00:00.000Z');
            """)
        let store = try db.store()   // a connection with the CHECKs on
        #expect(sqliteInt(db.path, "PRAGMA user_version") == Migrator.latestVersion)
        #expect(try store.task(1)?.payload == "not json")
        // New rows are checked.
        #expect(throws: TaskQueueError.self) { try store.insertTasks([NewTask(kind: "t", payload: "not json")], now: .now()) }
    }

    @Test func theSchemaReadsOneColumnPerLine() throws {
        let db = TempDB()
        defer { db.close() }
        _ = try db.store()
        let schema = run("/usr/bin/sqlite3", [db.path, ".schema"]).stdout
        let lines = schema.split(separator: "\n").map(String.init)
        // The columns once added by ALTER TABLE each start their own line.
        for column in ["worker_pid", "worker_host", "on_crash", "has_dependants", "unique_key", "backoff_base_s", "backoff_cap_s", "claimed"] {
            #expect(lines.contains { $0.hasPrefix("    \(column) ") }, "\(column) does not start a line of .schema")
        }
        // No line holds a column definition after another one's comment.
        for line in lines where line.contains("--") {
            let code = line[..<line.range(of: "--")!.lowerBound]
            #expect(code.filter { $0 == "," }.count <= 1 || code.contains("CHECK") || code.contains("INSERT") || code.contains("SELECT"),
                    "\(line)")
        }
    }

    /// `sqlite3 taskq.db .schema` shows every table as CREATE TABLE name (: a table
    /// renamed into place is stored as CREATE TABLE "name", which the shell shows as
    /// CREATE TABLE IF NOT EXISTS "name". At every version on the way from 1, and
    /// the upgraded database shows what a new one does.
    @Test func everyTableReadsCreateTableItsNameInDotSchema() throws {
        func checkHeaders(_ path: String, _ at: String) -> String {
            let schema = run("/usr/bin/sqlite3", [path, ".schema"]).stdout
            for line in schema.split(separator: "\n") where line.contains("IF NOT EXISTS") || line.contains("CREATE TABLE \"") {
                Issue.record("\(at): \(line)")
            }
            for table in sqlite(path, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").split(separator: "\n") {
                #expect(schema.contains("\nCREATE TABLE \(table) (\n") || schema.hasPrefix("CREATE TABLE \(table) (\n"), "\(at): \(table)")
            }
            return schema
        }
        let fresh = TempDB()
        defer { fresh.close() }
        _ = try fresh.store()
        let expected = checkHeaders(fresh.path, "new database")

        // One migration per transaction, as taskq versions 1, 2, ... would have left it.
        let db = TempDB()
        defer { db.close() }
        #expect(sqlite3Shell(db.path, "PRAGMA journal_mode = WAL").status == 0)
        for m in Migrator.migrations.dropLast() {
            let step = sqlite3Shell(db.path, "BEGIN IMMEDIATE;\n\(m.sql)\nPRAGMA user_version = \(m.version);\nCOMMIT;")
            #expect(step.status == 0, "\(m.name): \(step)")
            _ = checkHeaders(db.path, "version \(m.version)")
        }
        _ = try db.store()   // the last migration, by taskq
        #expect(sqliteInt(db.path, "PRAGMA user_version") == Migrator.latestVersion)
        #expect(checkHeaders(db.path, "upgraded database") == expected)
    }
}
