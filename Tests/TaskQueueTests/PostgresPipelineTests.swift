// The PostgreSQL connection's prepared statements and pipelines: a pipeline is one
// transaction, a failure in it leaves nothing written and the connection usable,
// prepared statements are made again after a reconnect, and the one-round-trip
// enqueue keeps the order of ids and waits for a stop in flight.

import Foundation
import Testing
@testable import TaskQueue
@testable import TaskQueuePostgres
import TaskQueueTestSupport
import TaskQueueConformance

@Suite(.enabled(if: TestPostgres.isAvailable, TestPostgres.skipReason))
struct PostgresPipelineTests {
    func connection() throws -> (String, PostgresConnection) {
        let url = try TestPostgres.freshSchema()
        let db = try PostgresConnection(url)
        try db.exec("CREATE TABLE notes (n int8 PRIMARY KEY)")
        return (url, db)
    }

    func notes(_ db: PostgresConnection) throws -> [Int64] {
        let r = try db.exec("SELECT n FROM notes ORDER BY n")
        return r.rows { r.int($0, 0) }
    }

    @Test func aPipelineCommitsAllOrNothing() throws {
        let (_, db) = try connection()
        let insert = "INSERT INTO notes VALUES ($1)"
        #expect(throws: PostgresError.self) {
            try db.pipeline([PGStatement(sql: insert, params: [.int(1)]), PGStatement(sql: "SELECT 1 / $1", params: [.int(0)]),
                             PGStatement(sql: insert, params: [.int(2)])])
        }
        #expect(db.isIdle, "the failed pipeline's transaction is over")
        #expect(try notes(db).isEmpty, "the statement before the failure was rolled back")
        let r = try db.pipeline([PGStatement(sql: insert, params: [.int(3)]), PGStatement(sql: insert, params: [.int(4)]),
                                 PGStatement(sql: "SELECT count(*) FROM notes")])
        #expect(r.count == 3 && r[2].int(0, 0) == 2, "each statement sees the ones before it")
        #expect(try notes(db) == [3, 4])
        // A failure at the end (a duplicate key) also undoes the rest.
        #expect(throws: PostgresError.self) {
            try db.pipeline([PGStatement(sql: insert, params: [.int(5)]), PGStatement(sql: insert, params: [.int(3)])])
        }
        #expect(try notes(db) == [3, 4])
    }

    @Test func insideATransactionAPipelineIsPartOfIt() throws {
        let (_, db) = try connection()
        try db.transaction {
            try db.pipeline([PGStatement(sql: "INSERT INTO notes VALUES ($1)", params: [.int(1)])])
            #expect(!db.isIdle, "still in the transaction")
            try db.run(script: "SELECT 1")
        }
        #expect(try notes(db) == [1])
        #expect(throws: (any Error).self) {
            try db.transaction {
                try db.pipeline([PGStatement(sql: "INSERT INTO notes VALUES ($1)", params: [.int(2)])])
                throw TaskQueueError.failed("changed my mind")
            }
        }
        #expect(try notes(db) == [1])
    }

    @Test func preparedStatementsAreMadeAgainAfterAReconnect() throws {
        let (url, db) = try connection()
        let insert = "INSERT INTO notes VALUES ($1)"
        try db.execPrepared(insert, [.int(1)])
        try db.pipeline([PGStatement(sql: insert, params: [.int(2)])])
        #expect(db.prepared.count == 1, "one statement, prepared once")
        let pid = try db.exec("SELECT pg_backend_pid()").int(0, 0)
        _ = try PostgresConnection(url).exec("SELECT pg_terminate_backend($1::int4)", [.int(pid)])
        #expect(throws: PostgresError.self) { try db.execPrepared(insert, [.int(3)]) }
        try db.reconnect()
        try db.execPrepared(insert, [.int(3)])
        try db.pipeline([PGStatement(sql: insert, params: [.int(4)])])
        #expect(try notes(db) == [1, 2, 3, 4])
    }

    /// A batch mixing kinds with and without a policy row (joined in the insert)
    /// gets its ids in the order given, each with its kind's policy.
    @Test func aBatchKeepsItsOrderAndEachKindsPolicy() throws {
        let store = try PostgresTaskStore(url: try TestPostgres.freshSchema())
        _ = try store.setKindPolicy("b", KindPolicy(maxAttempts: 9, backoffBase: 2), clear: [], now: .now())
        let tasks = (0..<60).map { i in
            NewTask(kind: ["a", "b", "c"][i % 3], payload: "\(i)",
                    options: EnqueueOptions(maxAttempts: i % 5 == 0 ? 4 : nil, backoffCap: i % 3 == 1 && i % 2 == 0 ? 1 : nil))
        }
        let ids = try store.insertTasks(tasks, now: .now())
        #expect(ids.count == 60)
        let r = try store.db.exec("SELECT id, payload, max_attempts, backoff_base_s, backoff_cap_s FROM tasks ORDER BY id")
        for i in 0..<r.count {
            let n = Int(r.string(i, 1))!
            #expect(r.int(i, 0) == ids[n], "task \(n) has the \(n)th id")
            let p = tasks[n].options.storedPolicy(kind: tasks[n].kind == "b" ? KindPolicy(maxAttempts: 9, backoffBase: 2) : nil)
            #expect(r.int(i, 2) == p.maxAttempts && r.optionalDouble(i, 3) == p.backoffBase && r.optionalDouble(i, 4) == p.backoffCap)
        }
        // A batch sharing its kind and options (`enqueue --lines`): the same.
        var batch = PayloadBatch()
        for i in 0..<30 { Array("\(i)".utf8).withUnsafeBytes { batch.append($0) } }
        let shared = try store.insertTasks(kind: "b", options: EnqueueOptions(backoffCap: 1), payloads: batch, now: .now())
        let b = try store.db.exec("SELECT payload, max_attempts, backoff_base_s, backoff_cap_s FROM tasks WHERE id = ANY($1) ORDER BY id",
                                  [.ints(shared)])
        #expect(b.rows { b.string($0, 0) } == (0..<30).map { "\($0)" })
        #expect(b.int(0, 1) == 9 && b.optionalDouble(0, 2) == 1 && b.optionalDouble(0, 3) == 1, "the kind's base, lowered to the task's cap")
    }

    /// Several transactions in one round trip (`enqueue --lines` reading ahead):
    /// each commits on its own; one the database refuses stops the rest, which the
    /// server skips, and the caller learns which committed. A COMMIT whose reply
    /// was lost is reported as unconfirmed, not as refused.
    @Test func eachBatchCommitsOnItsOwnAndAFailureStopsTheRest() throws {
        let url = try TestPostgres.freshSchema()
        let store = try PostgresTaskStore(url: url)
        func batches(_ range: ClosedRange<Int>, per: Int) -> [PayloadBatch] {
            stride(from: range.lowerBound, through: range.upperBound, by: per).map { first in
                var b = PayloadBatch()
                for i in first...min(first + per - 1, range.upperBound) { Array("\(i)".utf8).withUnsafeBytes { b.append($0) } }
                return b
            }
        }
        func payloads() throws -> [String] {
            let r = try store.db.exec("SELECT payload FROM tasks ORDER BY id")
            return r.rows { r.string($0, 0) }
        }
        let ids = try store.insertEach(kind: "t", options: EnqueueOptions(), batches: batches(1...10, per: 3), now: .now())
        #expect(ids.map(\.count) == [3, 3, 3, 1] && ids.flatMap { $0 } == ids.flatMap { $0 }.sorted())
        #expect(try payloads() == (1...10).map { "\($0)" })

        try store.db.exec("DELETE FROM tasks")
        try store.db.exec(#"ALTER TABLE tasks ADD CONSTRAINT "not 7" CHECK (payload <> '7')"#)
        do {
            _ = try store.insertEach(kind: "t", options: EnqueueOptions(), batches: batches(1...10, per: 2), now: .now())
            Issue.record("the batch holding 7 was accepted")
        } catch let e as InsertsStopped {
            #expect(e.committed.map(\.count) == [2, 2, 2] && e.unconfirmed == 0)
            #expect((e.cause as? TaskQueueError)?.message.contains("not 7") == true, "\(e.cause)")
        }
        #expect(try payloads() == (1...6).map { "\($0)" }, "the batches after the refused one were not written")
        #expect(store.db.isIdle)

        try store.db.exec(#"ALTER TABLE tasks DROP CONSTRAINT "not 7""#)
        try store.db.exec("DELETE FROM tasks")
        store.db.commitFault = .afterCommitting
        do {
            _ = try store.insertEach(kind: "t", options: EnqueueOptions(), batches: batches(1...4, per: 2), now: .now())
            Issue.record("the lost reply went unnoticed")
        } catch let e as InsertsStopped {
            #expect(e.committed.map(\.count) == [2] && e.unconfirmed == 1, "\(e)")
        }
        let after = try PostgresConnection(url)
        #expect(try after.exec("SELECT count(*) FROM tasks").int(0, 0) == 4, "the unconfirmed one did commit")
    }

    /// A stop in flight holds the insert lock: an enqueue waits for its commit and
    /// takes an id above the sentinel's, so the stop's bound leaves it for later.
    @Test func anEnqueueWaitsForAStopInFlight() throws {
        let url = try TestPostgres.freshSchema()
        let store = try PostgresTaskStore(url: url)
        let stopper = try PostgresConnection(url)
        try stopper.run(script: "SET taskq.writer = 'taskq'")
        try stopper.pipeline(PostgresTaskStore.beginSentinels)
        let sentinel = try stopper.exec("INSERT INTO tasks (kind, payload, created_at, max_attempts) VALUES ('taskq.stop', '{}', now(), 1) RETURNING id")
            .int(0, 0)
        let inserted = Locked<Int64?>(nil)
        Thread {
            let id = try? PostgresTaskStore(url: url).insertTasks([NewTask(kind: "t")], now: .now()).first
            inserted.withLock { $0 = id }
        }.start()
        #expect(eventually {
            (try? store.db.exec("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND wait_event = 'advisory'")
                .int(0, 0)) == 1
        }, "the enqueue should wait for the stop's commit")
        #expect(inserted.current == nil)
        try stopper.run(script: "COMMIT")
        #expect(eventually { inserted.current != nil })
        #expect(try #require(inserted.current) > sentinel)
    }
}
