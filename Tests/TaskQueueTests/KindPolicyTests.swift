// Retry policy per kind and per task: the kinds table fills what a task leaves
// unset when it is enqueued (any producer path), the claimed task carries its
// backoff, and the retry delay follows it.

import Testing
@testable import TaskQueue
@testable import TaskQueueSQLite
import TaskQueueTestSupport
import TaskQueueConformance

@Suite struct KindPolicyTests {
    @Test func aKindsPolicyFillsWhatTheTaskLeavesUnsetAtEnqueue() throws {
        try withSQLiteFactory { db, _ in
            let store = try db.store()
            let q = Queue(store: store)
            try q.setKindPolicy("mail", KindPolicy(maxAttempts: 9, backoffBase: 2, backoffCap: 60, onCrash: .fail))
            let plain = try q.enqueue(kind: "mail", payload: "1")
            let own = try q.enqueue(kind: "mail", payload: "2", options: EnqueueOptions(maxAttempts: 2, onCrash: .retry, backoffBase: 0.5))
            let other = try q.enqueue(kind: "other", payload: "3")
            func row(_ id: Int64) -> String {
                sqlite(db.path, "SELECT max_attempts || ' ' || ifnull(backoff_base_s, '-') || ' ' || ifnull(backoff_cap_s, '-') || ' ' || ifnull(on_crash, '-') FROM tasks WHERE id = \(id)")
            }
            #expect(row(plain) == "9 2.0 60.0 fail")
            #expect(row(own) == "2 0.5 60.0 retry", "the task's own options win, field by field")
            #expect(row(other) == "3 - - -", "another kind gets the built-in defaults")

            // A change applies to tasks enqueued afterwards; queued ones keep theirs.
            try q.setKindPolicy("mail", KindPolicy(maxAttempts: 4), clear: [.onCrash])
            #expect(row(plain) == "9 2.0 60.0 fail")
            #expect(row(try q.enqueue(kind: "mail", payload: "4")) == "4 2.0 60.0 -")

            // Schedules and map groups go through the same insert.
            _ = try store.createGroup("g", tasks: [NewTask(kind: "mail", payload: "5")], now: .now())
            #expect(sqlite(db.path, "SELECT max_attempts || ' ' || backoff_base_s FROM tasks WHERE id = (SELECT max(id) FROM tasks)") == "4 2.0")

            // A backoff half given at enqueue wins over the kind's other half.
            try q.setKindPolicy("mail", KindPolicy(backoffBase: 3, backoffCap: 60))
            #expect(row(try q.enqueue(kind: "mail", payload: "7", options: EnqueueOptions(backoffCap: 1))) == "4 1.0 1.0 -")
            #expect(row(try q.enqueue(kind: "mail", payload: "8", options: EnqueueOptions(backoffBase: 120))) == "4 120.0 120.0 -")
            #expect(row(try q.enqueue(kind: "mail", payload: "9", options: EnqueueOptions(backoffBase: 10))) == "4 10.0 60.0 -")

            #expect(try q.removeKindPolicy("mail"))
            #expect(try !q.removeKindPolicy("mail"))
            #expect(row(try q.enqueue(kind: "mail", payload: "6")) == "3 - - -")
        }
    }

    /// A producer keeps the kind policies it read while nothing else commits; a
    /// change made through another connection (the `taskq kind set` of another
    /// process, the sqlite3 shell) must reach its very next enqueue.
    @Test func aProducerSeesAPolicyChangedByAnotherConnectionAtItsNextEnqueue() throws {
        try withSQLiteFactory { db, _ in
            let producer = Queue(store: try db.store())
            let admin = Queue(store: try db.store())
            func maxAttempts(_ id: Int64) -> String { sqlite(db.path, "SELECT max_attempts FROM tasks WHERE id = \(id)") }
            #expect(maxAttempts(try producer.enqueue(kind: "mail", payload: "1")) == "3")
            #expect(maxAttempts(try producer.enqueue(kind: "mail", payload: "2")) == "3")
            try admin.setKindPolicy("mail", KindPolicy(maxAttempts: 7))
            #expect(maxAttempts(try producer.enqueue(kind: "mail", payload: "3")) == "7")
            #expect(maxAttempts(try producer.enqueue(kind: "mail", payload: "4")) == "7")
            _ = sqlite(db.path, "UPDATE kinds SET max_attempts = 8 WHERE kind = 'mail'")
            #expect(maxAttempts(try producer.enqueue(kind: "mail", payload: "5")) == "8")
            #expect(try admin.removeKindPolicy("mail"))
            #expect(maxAttempts(try producer.enqueue(kind: "mail", payload: "6")) == "3")
            // And through its own connection.
            try producer.setKindPolicy("mail", KindPolicy(maxAttempts: 5))
            #expect(maxAttempts(try producer.enqueue(kind: "mail", payload: "7")) == "5")
            // A batch too.
            try admin.setKindPolicy("mail", KindPolicy(maxAttempts: 6))
            let batch = try producer.enqueue((0..<3).map { NewTask(kind: "mail", payload: "\($0)") })
            #expect(batch.map(maxAttempts) == ["6", "6", "6"])
        }
    }

    @Test func setMergesClearsAndRefusesAnInvalidMergeWithoutWriting() throws {
        try withSQLiteFactory { db, _ in
            let q = Queue(store: try db.store())
            #expect(try q.setKindPolicy("k", KindPolicy(backoffBase: 10)) == KindPolicy(backoffBase: 10))
            #expect(try q.setKindPolicy("k", KindPolicy(maxAttempts: 5)) == KindPolicy(maxAttempts: 5, backoffBase: 10))
            // A cap below the stored base: refused as a whole.
            let e = taskQueueError { _ = try q.setKindPolicy("k", KindPolicy(backoffCap: 1)) }
            #expect(e?.code == .usage && e?.message.contains("backoff cap") == true, "\(String(describing: e))")
            #expect(try q.kindPolicies().map(\.policy) == [KindPolicy(maxAttempts: 5, backoffBase: 10)])
            // Clearing every field deletes the row.
            #expect(try q.setKindPolicy("k", KindPolicy(), clear: [.maxAttempts, .backoffBase]).isEmpty)
            #expect(sqliteInt(db.path, "SELECT count(*) FROM kinds") == 0)
            #expect(taskQueueError { _ = try q.setKindPolicy("taskq.stop", KindPolicy(maxAttempts: 1)) }?.code == .usage)
            #expect(taskQueueError { _ = try q.setKindPolicy("k", KindPolicy(maxAttempts: 0)) }?.code == .usage)
        }
    }

    @Test func theClaimedTaskCarriesItsBackoffAndTheRetryDelayFollowsIt() throws {
        try withSQLiteFactory { db, _ in
            let store = try db.store()
            let f = RowFactory(store)
            let sup = try f.supervisor(), w = try f.worker(supervisor: sup)
            _ = try store.insertTasks([NewTask(kind: "t", options: EnqueueOptions(maxAttempts: 5, backoffBase: 100, backoffCap: 150))],
                                      now: f.now)
            let t = try #require(try f.claimed(w, supervisor: sup).first)
            #expect(t.backoffBase == 100 && t.backoffCap == 150)
            let supervisorWide = RetryPolicy(base: 1, cap: 300)
            for attempt: Int64 in 1...4 {
                var a = t
                a.attempt = attempt
                guard case .failed(_, let at?) = supervisorWide.outcome(for: a, error: "x", now: f.now) else {
                    Issue.record("attempt \(attempt) was not retried"); continue
                }
                // base·2^(n-1), capped, times [0.5, 1].
                let full = min(150, 100 * Double(1 << (attempt - 1)))
                let delay = at.seconds(since: f.now)
                #expect(delay >= full * 0.5 - 0.002 && delay <= full + 0.002, "attempt \(attempt): \(delay)s")
            }
            // Its own base raises a supervisor's shorter cap (no cap of its own).
            var longBase = t
            longBase.backoffBase = 30; longBase.backoffCap = nil
            guard case .failed(_, let first?) = RetryPolicy(base: 1, cap: 1).outcome(for: longBase, error: "x", now: f.now) else {
                Issue.record("not retried"); return
            }
            #expect(first.seconds(since: f.now) >= 14.99, "\(first.seconds(since: f.now))")
            // Without its own backoff the supervisor's applies.
            let plain = ClaimedTask(id: 1, kind: "t", queue: "q", payload: "null", attempt: 1, maxAttempts: 3, timeout: nil)
            guard case .failed(_, let at?) = supervisorWide.outcome(for: plain, error: "x", now: f.now) else {
                Issue.record("not retried"); return
            }
            #expect(at.seconds(since: f.now) <= 1.002)
        }
    }
}
