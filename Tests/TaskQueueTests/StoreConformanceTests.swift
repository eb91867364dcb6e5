// The SQLite store runs the store conformance suite (Sources/TaskQueueConformance),
// then the SQLite-only checks: column types, the schema's CHECKs and trigger seen
// from the sqlite3 shell, the busy timeout.

import Foundation
import Testing
@testable import TaskQueue
@testable import TaskQueueSQLite
import TaskQueueTestSupport
import TaskQueueConformance
#if canImport(Glibc)
import Glibc
#endif

// MARK: - SQLite runs the suite

@Suite struct StoreConformanceSQLiteTests {
    @Test("conformance", arguments: StoreConformance.cases)
    func conformance(_ c: ConformanceCase) throws {
        try withSQLiteFactory { _, make in try c.run(make) }
    }

    // MARK: SQLite only: a process from before processes.claimed (migration 0005)

    @Test func recoveryScansForTheTasksOfAProcessWithoutAClaimedList() throws {
        try withSQLiteFactory { db, make in
            let store = try make()
            let f = RowFactory(store)
            let s = try f.supervisor()
            let w = try f.worker(supervisor: s)
            let t = try f.running(owner: w, supervisor: s)
            // What the migration leaves on the rows of processes already running.
            _ = sqlite(db.path, "UPDATE processes SET claimed = NULL WHERE id = \(w)")
            let more = try f.running(owner: w, supervisor: s)
            #expect(sqlite(db.path, "SELECT claimed IS NULL FROM processes WHERE id = \(w)") == "1")
            let held = try store.recoverProcess(w, now: f.now) { _ in .released }
            #expect(held.map(\.id) == [t.id, more.id])
        }
    }

    // MARK: SQLite only: a task running under no registered process

    /// The fence keeps any path from leaving such a row; a row left by hand (or by
    /// an older taskq) is still found, and counts a crashed attempt.
    @Test func recoveryFindsTasksRunningUnderNoRegisteredProcess() throws {
        try withSQLiteFactory { db, make in
            let store = try make()
            let f = RowFactory(store)
            let s = try f.supervisor()
            let gone = try f.worker(supervisor: s), live = try f.worker(supervisor: s)
            let t = try f.running(owner: gone, supervisor: s)
            let last = try f.running(owner: gone, supervisor: s, attempt: 2, maxAttempts: 2)
            let other = try f.running(owner: live, supervisor: s)
            _ = sqlite(db.path, "DELETE FROM processes WHERE id = \(gone)")
            var log: [String] = []
            let held = try Recovery.recoverOrphans(store: store, retry: RetryPolicy(base: 10, cap: 10)) { log.append($0) }
            #expect(held.map(\.id) == [t.id, last.id])
            let r = try #require(try store.task(t.id))
            #expect(r.state == .queued && r.owner == nil && r.attempts == 1, "\(r)")
            #expect(r.lastError == "process \(gone), no longer registered, was left running task \(t.id), attempt 1/3")
            #expect(try store.task(last.id)?.state == .failed)
            #expect(try store.task(other.id)?.owner == live)
            #expect(sqlite(db.path, "SELECT outcome FROM task_attempts WHERE task_id = \(t.id)") == "crashed")
            #expect(log == ["recovered tasks left running by process \(gone), which is no longer registered; "
                            + "task \(t.id) goes back for a retry; task \(last.id) ends failed (no attempts left)"], "\(log)")
            #expect(try Recovery.recoverOrphans(store: store, retry: RetryPolicy()) { _ in }.isEmpty)
        }
    }

    // MARK: SQLite only: batch ids at the top of the id range

    @Test func aBatchNearTheLargestIDStillGetsEachTaskItsOwnID() throws {
        try withSQLiteFactory { db, make in
            let store = try make()
            // Past max(id) = 2^63 - 1 SQLite picks random ids, so a multi-row insert's
            // ids could not be derived from its last one: the store inserts one by one.
            _ = sqlite(db.path, "INSERT INTO tasks (id, kind, run_at, created_at) VALUES (9223372036854775807 - 40, 'top', 'x', 'x')")
            let ids = try store.insertTasks((0..<100).map { NewTask(kind: "t", payload: "\($0)") }, now: .now())
            #expect(Set(ids).count == 100)
            for (i, id) in ids.enumerated() { #expect(try store.task(id)?.payload == "\(i)", "task \(id)") }
        }
    }

    // MARK: SQLite only: what the multi-row inserts keep

    @Test func largePayloadsAreNotKeptByTheBatchStatementAndComeBackWhole() throws {
        try withSQLiteFactory { _, make in
            let store = try #require(try make() as? SQLiteTaskStore)
            // Twice the same batch: the second must bind every payload again,
            // although the statement held the same values before they were released.
            // (JSON strings: the schema checks payloads are JSON.)
            let payloads = (0..<100).map { "\"" + String(repeating: "\($0 % 10)", count: 10_000 + $0) + "\"" }
            var shared = PayloadBatch()
            for p in payloads { Array(p.utf8).withUnsafeBytes { shared.append($0) } }
            for round in 0..<4 {
                // Both insert paths: one task each, and one kind and options for all.
                let ids = round < 2 ? try store.insertTasks(payloads.map { NewTask(kind: "big", payload: $0) }, now: .now())
                    : try store.insertTasks(kind: "big", options: .init(), payloads: shared, now: .now())
                for (i, id) in ids.enumerated() { #expect(try store.task(id)?.payload == payloads[i], "task \(id)") }
                #expect(store.multiInsertKeptBytes < 100 * 1_024, "\(store.multiInsertKeptBytes) bytes kept")
            }
            // Short values stay kept between batches (that is what skips rebinding them).
            _ = try store.insertTasks((0..<100).map { NewTask(kind: "small", payload: "\($0)") }, now: .now())
            #expect(store.multiInsertKeptBytes > 0)
        }
    }

    @Test func aBatchFitsUnderALowerParameterLimit() throws {
        try withSQLiteFactory { _, make in
            let store = try #require(try make() as? SQLiteTaskStore)
            store.db.parameterLimit = 999   // SQLite before 3.32: 83 rows of 12 parameters
            let ids = try store.insertTasks((0..<250).map { NewTask(kind: "t", payload: "\($0)") }, now: .now())
            #expect(Set(ids).count == 250)
            for (i, id) in ids.enumerated() { #expect(try store.task(id)?.payload == "\(i)", "task \(id)") }
            var shared = PayloadBatch()
            for i in 0..<250 { Array("\(i)".utf8).withUnsafeBytes { shared.append($0) } }
            let more = try store.insertTasks(kind: "t", options: .init(), payloads: shared, now: .now())
            #expect(Set(more).count == 250 && more[0] > ids.last!)
            for (i, id) in more.enumerated() { #expect(try store.task(id)?.payload == "\(i)", "task \(id)") }
        }
    }

    // MARK: SQLite only: how results are stored

    @Test func resultIsTextWhenUTF8AndBlobOtherwise() throws {
        try withSQLiteFactory { db, make in
            let store = try make()
            let f = RowFactory(store)
            let s = try f.supervisor()
            let w = try f.worker(supervisor: s)
            let text = try f.succeeded(Array("héllo ✓\n".utf8), owner: w, supervisor: s)
            let empty = try f.succeeded([], owner: w, supervisor: s)
            let binary = try f.succeeded([0xFF, 0xFE, 0x00, 0x41], owner: w, supervisor: s)
            let nul = try f.succeeded(Array("a\u{0}b".utf8), owner: w, supervisor: s)
            let cut = try f.succeeded([0x68, 0xC3], owner: w, supervisor: s)
            func typeAndHex(_ id: Int64) -> String { sqlite(db.path, "SELECT typeof(result) || ' ' || hex(result) FROM tasks WHERE id = \(id)") }
            #expect(typeAndHex(text) == "text 68C3A96C6C6F20E29C930A")
            #expect(sqlite(db.path, "SELECT result = 'héllo ✓' || char(10) FROM tasks WHERE id = \(text)") == "1")
            #expect(typeAndHex(empty) == "text ")
            #expect(typeAndHex(binary) == "blob FFFE0041")
            #expect(typeAndHex(nul) == "blob 610062")
            #expect(typeAndHex(cut) == "blob 68C3")
        }
    }

    /// A worker's usual batch is claimed and finished by its id range (the store
    /// counts both), each row with its own result, typed as the single-row path types
    /// it; what the ranges cannot take goes one row at a time.
    @Test func aWorkersBatchIsClaimedAndFinishedByItsIDRange() throws {
        try withSQLiteFactory { db, make in
            let store = try #require(try make() as? SQLiteTaskStore)
            let f = RowFactory(store)
            let s = try f.supervisor()
            let w = try f.worker(supervisor: s), v = try f.worker(supervisor: s)
            func claim(_ owner: Int64, _ n: Int) throws -> [ClaimedTask] {
                let ids = try (0..<n).map { _ in try f.queued(kind: "t") }
                let got = try f.claimed(owner, supervisor: s, kinds: ["t"], limit: n)
                #expect(got.map(\.id) == ids)
                return got
            }
            func outcomes(_ tasks: [ClaimedTask], _ owner: Int64, _ outputs: [[UInt8]]) -> [TaskOutcome] {
                zip(tasks, outputs).map { TaskOutcome(taskID: $0.id, owner: owner, attempt: $0.attempt, result: .succeeded($1)) }
            }
            func finish(_ list: [TaskOutcome]) throws -> [Bool] { try store.finishAndClaim(list, claim: nil, now: f.now).accepted }
            func typeAndHex(_ id: Int64) -> String { sqlite(db.path, "SELECT typeof(result) || ' ' || hex(result) FROM tasks WHERE id = \(id)") }

            // The connection's first batch, every output empty: empty text, not NULL.
            let first = try claim(w, 3)
            #expect(store.rangeClaims == 1)
            #expect(try finish(outcomes(first, w, [[], [], []])) == [true, true, true])
            #expect(store.rangeFinishes == 1)
            #expect(first.map { typeAndHex($0.id) } == ["text ", "text ", "text "])
            // Text, a blob, a NUL, UTF-8 cut short, in one batch.
            let second = try claim(w, 4)
            #expect(try finish(outcomes(second, w, [Array("é✓".utf8), [0xFF, 0x00], Array("a\u{0}b".utf8), [0x68, 0xC3]])) == [true, true, true, true])
            #expect(store.rangeFinishes == 2)
            #expect(second.map { typeAndHex($0.id) } == ["text C3A9E29C93", "blob FF00", "blob 610062", "blob 68C3"])
            // 1 MiB of output goes by range; one byte more is bound row by row. Both whole.
            let half = [UInt8](repeating: UInt8(ascii: "x"), count: 1 << 19)
            let third = try claim(w, 2)
            #expect(try finish(outcomes(third, w, [half, half])) == [true, true])
            #expect(store.rangeFinishes == 3)
            let fourth = try claim(w, 2)
            #expect(try finish(outcomes(fourth, w, [half, half + [0x79]])) == [true, true])
            #expect(store.rangeFinishes == 3)
            #expect(try (third + fourth).map { try store.task($0.id)?.result } == [half, half, half, half + [0x79]])
            // Two owners in one call: the range is the first one's; the other's go one by one.
            let vs = try claim(v, 2), ws = try claim(w, 2)
            let mixed = [outcomes(vs, v, [[1], [2]])[0], outcomes(ws, w, [[3], [4]])[0],
                         outcomes(vs, v, [[1], [2]])[1], outcomes(ws, w, [[3], [4]])[1]]
            #expect(try finish(mixed) == [true, true, true, true])
            #expect(store.rangeFinishes == 4)
            #expect(try (vs + ws).map { try store.task($0.id)?.result } == [[1], [2], [3], [4]])
            // Ids at both ends of the range of integers, put in by hand and claimed in
            // priority order (the largest first): neither claim nor finish overflows.
            let top = sqliteInsertRow(db.path, ["id": "9223372036854775807", "priority": "5"])
            let low = sqliteInsertRow(db.path, ["id": "-5"])
            let ends = try f.claimed(w, supervisor: s, kinds: ["t"], limit: 2)
            #expect(ends.map(\.id) == [top, low])
            #expect(try finish(outcomes(ends, w, [[5], [6]])) == [true, true])
            #expect(try [top, low].map { try store.task($0)?.result } == [[5], [6]])
        }
    }

    // MARK: SQLite only: the schema refuses careless changes from the shell

    @Test func schemaRefusesCarelessUpdatesFromTheShell() throws {
        try withSQLiteFactory { db, make in
            let store = try make()
            let f = RowFactory(store)
            let s = try f.supervisor()
            let w = try f.worker(supervisor: s)
            let queued = try f.queued()
            let running = try f.running(owner: w, supervisor: s).id
            let succeeded = try f.succeeded(Array("out".utf8), owner: w, supervisor: s)
            let failed = try f.failed(owner: w, supervisor: s)
            let cancelled = sqliteInsertRow(db.path, ["state": "'cancelled'", "finished_at": "'2020-01-02T00:00:00.000Z'"])
            let ts = "'2030-01-01T00:00:00.000Z'"
            let trigger = "illegal task state change"
            let check = "CHECK constraint failed"
            // `says`: what sqlite3 prints (nil: refused either way, by a CHECK or the trigger).
            let careless: [(sql: String, row: Int64, says: String?)] = [
                ("UPDATE tasks SET state = 'running' WHERE id = \(queued)", queued, check),
                ("UPDATE tasks SET state = 'running', attempts = 1 WHERE id = \(queued)", queued, check),
                ("UPDATE tasks SET state = 'succeeded' WHERE id = \(queued)", queued, nil),
                ("UPDATE tasks SET state = 'succeeded', finished_at = \(ts), attempts = 1, result = 'x' WHERE id = \(queued)", queued, trigger),
                ("UPDATE tasks SET state = 'failed', finished_at = \(ts) WHERE id = \(queued)", queued, trigger),
                ("UPDATE tasks SET state = 'bogus' WHERE id = \(queued)", queued, nil),
                ("UPDATE tasks SET result = 'x' WHERE id = \(queued)", queued, check),
                ("UPDATE tasks SET attempts = -1 WHERE id = \(queued)", queued, check),
                ("UPDATE tasks SET max_attempts = 0 WHERE id = \(queued)", queued, check),
                ("UPDATE tasks SET kind = '' WHERE id = \(queued)", queued, check),
                ("UPDATE tasks SET timeout_s = 0 WHERE id = \(queued)", queued, check),
                ("UPDATE tasks SET state = 'queued' WHERE id = \(running)", running, check),
                ("UPDATE tasks SET owner = NULL WHERE id = \(running)", running, check),
                ("UPDATE tasks SET state = 'succeeded', owner = NULL WHERE id = \(running)", running, check),
                ("UPDATE tasks SET state = 'queued' WHERE id = \(succeeded)", succeeded, nil),
                ("UPDATE tasks SET state = 'queued', finished_at = NULL, result = NULL WHERE id = \(succeeded)", succeeded, trigger),
                ("UPDATE tasks SET state = 'running', owner = \(w), finished_at = NULL, result = NULL WHERE id = \(succeeded)", succeeded, trigger),
                ("UPDATE tasks SET state = 'cancelled', result = NULL WHERE id = \(succeeded)", succeeded, trigger),
                ("UPDATE tasks SET finished_at = NULL WHERE id = \(failed)", failed, check),
                ("UPDATE tasks SET state = 'running', owner = \(w), finished_at = NULL WHERE id = \(failed)", failed, trigger),
                ("UPDATE tasks SET state = 'running', owner = \(w), attempts = 1, finished_at = NULL WHERE id = \(cancelled)", cancelled, trigger),
            ]
            for c in careless {
                let before = rowSnapshot(db.path, c.row)
                let r = sqlite3Shell(db.path, c.sql)
                #expect(r.status != 0, "accepted: \(c.sql)")
                if let says = c.says { #expect(r.stderr.contains(says), "\(c.sql): \(r.stderr)") }
                #expect(rowSnapshot(db.path, c.row) == before, "changed by: \(c.sql)")
            }
            // A whole-table update stops at the first row it may not change, and changes none.
            let table = sqlite(db.path, "SELECT group_concat(id || ':' || state || ':' || ifnull(owner, '-'), ' ') FROM tasks")
            #expect(sqlite3Shell(db.path, "UPDATE tasks SET state = 'queued'").status != 0)
            #expect(sqlite3Shell(db.path, "UPDATE tasks SET state = 'queued', owner = NULL, finished_at = NULL, result = NULL").status != 0)
            #expect(sqlite(db.path, "SELECT group_concat(id || ':' || state || ':' || ifnull(owner, '-'), ' ') FROM tasks") == table)
            // Rows the shell may not insert.
            for bad in [
                "INSERT INTO tasks (kind, run_at, created_at, state) VALUES ('t', \(ts), \(ts), 'running')",
                "INSERT INTO tasks (kind, run_at, created_at, state, owner) VALUES ('t', \(ts), \(ts), 'running', 1)",
                "INSERT INTO tasks (kind, run_at, created_at, state, attempts) VALUES ('t', \(ts), \(ts), 'failed', 1)",
                "INSERT INTO processes (role, pid, host, started_at, heartbeat_at, expires_at) VALUES ('worker', 1, 'h', \(ts), \(ts), \(ts))",
                "INSERT INTO processes (role, supervisor_id, pid, host, started_at, heartbeat_at, expires_at) VALUES ('supervisor', 1, 1, 'h', \(ts), \(ts), \(ts))",
            ] {
                let r = sqlite3Shell(db.path, bad)
                #expect(r.status != 0 && r.stderr.contains(check), "accepted: \(bad)")
            }
            #expect(sqliteInt(db.path, "SELECT count(*) FROM tasks") == 5)
            #expect(sqliteInt(db.path, "SELECT count(*) FROM processes") == 2)

            // What a person may do by hand is allowed: retry a failed task, cancel a queued one.
            let retry = sqlite3Shell(db.path, "UPDATE tasks SET state = 'queued', finished_at = NULL, attempts = 0 WHERE id = \(failed)")
            #expect(retry.status == 0, "\(retry)")
            #expect(try store.task(failed)?.state == .queued)
            let cancel = sqlite3Shell(db.path, "UPDATE tasks SET state = 'cancelled', finished_at = \(ts) WHERE id = \(queued)")
            #expect(cancel.status == 0, "\(cancel)")
            #expect(try store.task(queued)?.state == .cancelled)
            let again = sqlite3Shell(db.path, "UPDATE tasks SET state = 'queued', finished_at = NULL WHERE id = \(cancelled)")
            #expect(again.status == 0, "\(again)")
        }
    }

    // MARK: SQLite only: two connections and the busy timeout

    /// Starts the sqlite3 shell holding the write lock (BEGIN IMMEDIATE, one row
    /// written) for `hold` seconds, then doing `end` (COMMIT or ROLLBACK). Returns once
    /// the lock is held.
    private func holdWriteLock(_ db: TempDB, hold: Double, end: String) throws -> Child {
        let ready = db.dir + "/locked-\(UInt32.random(in: 0...UInt32.max))"
        let script = """
            BEGIN IMMEDIATE;
            INSERT INTO tasks (kind, run_at, created_at) VALUES ('shell', '2020-01-01T00:00:00.000Z', '2020-01-01T00:00:00.000Z');
            .shell touch \(ready)
            .shell sleep \(hold)
            \(end);

            """
        // In its own session, so `stop` takes the `sleep` it runs down with it.
        let shell = Child("/usr/bin/sqlite3", ["-batch", "-bail", db.path], stdinData: Array(script.utf8), logDir: db.dir,
                          newSession: true)
        let locked = eventually(timeout: 10) { fileExists(ready) }
        if !locked { stop(shell) }
        try #require(locked, "the sqlite3 shell did not take the lock: \(shell.stderrSoFar)")
        return shell
    }

    /// Kills the shell and what it started; its open transaction dies with it.
    private func stop(_ shell: Child) {
        if !shell.exited { kill(-shell.pid, SIGKILL) }
        shell.kill9()
    }

    @Test func insertWaitsForAWriterThenSucceeds() throws {
        let db = TempDB()
        defer { db.close() }
        let store = try db.store(busyTimeout: 10)
        // shell: BEGIN IMMEDIATE, insert | store: insertTasks waits ... | shell: (1 s) COMMIT | store: inserts
        let shell = try holdWriteLock(db, hold: 1, end: "COMMIT")
        defer { stop(shell) }
        let start = System.monotonic()
        let ids = try store.insertTasks([NewTask(kind: "t"), NewTask(kind: "t")], now: .now())
        let waited = System.monotonic() - start
        #expect(waited > 0.5, "insert did not wait for the lock (\(waited) s)")
        #expect(waited < 8)
        #expect(shell.wait(timeout: 10) == 0, "\(shell.stderrSoFar)")
        #expect(sqlite(db.path, "SELECT group_concat(kind, ',') FROM (SELECT kind FROM tasks ORDER BY id)") == "shell,t,t")
        #expect(ids.count == 2 && ids[0] > Int64(sqliteInt(db.path, "SELECT id FROM tasks WHERE kind = 'shell'")))
    }

    @Test func insertGivesUpAfterTheBusyTimeoutAndWritesNothing() throws {
        let db = TempDB()
        defer { db.close() }
        let store = try db.store(busyTimeout: 0.2)
        let shell = try holdWriteLock(db, hold: 30, end: "ROLLBACK")
        defer { stop(shell) }
        let start = System.monotonic()
        let e = taskQueueError { _ = try store.insertTasks([NewTask(kind: "t"), NewTask(kind: "t")], now: .now()) }
        let waited = System.monotonic() - start
        #expect(e?.code == .busy, "\(String(describing: e))")
        #expect(e?.exitCode == 69)
        #expect(e?.message.contains("locked") == true, "\(String(describing: e))")
        #expect(waited >= 0.15 && waited < 5, "waited \(waited) s with a 0.2 s busy timeout")
        stop(shell)   // the shell's transaction dies with it
        #expect(sqliteInt(db.path, "SELECT count(*) FROM tasks") == 0)
        // The store is still usable once the lock is free.
        #expect(try store.insertTasks([NewTask(kind: "t")], now: .now()).count == 1)
        #expect(sqliteInt(db.path, "SELECT count(*) FROM tasks") == 1)
    }
}
