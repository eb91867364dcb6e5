#if canImport(Testing)
import Foundation
import Testing
import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

// Store conformance: inserting tasks.

extension StoreConformance {
    // MARK: insert

    static func insertReturnsIncreasingIDs(_ make: @escaping StoreFactory) throws {
        let store = try make()
        let now = Timestamp.now()
        #expect(try store.insertTasks([], now: now) == [])
        let first = try store.insertTasks((0..<3).map { NewTask(kind: "t", payload: "\($0)") }, now: now)
        #expect(first.count == 3)
        #expect(zip(first, first.dropFirst()).allSatisfy { $0 < $1 }, "\(first)")
        // A batch long enough for several of the SQLite store's multi-row inserts
        // (100 + 100 + 50 rows): each id holds its own task, in order.
        let many = try store.insertTasks((0..<250).map { NewTask(kind: $0 % 3 == 0 ? "u" : "t", payload: "\($0)") }, now: now)
        #expect(many.count == 250 && zip(many, many.dropFirst()).allSatisfy { $0 < $1 } && many[0] > first.max()!)
        for (i, id) in many.enumerated() {
            let t = try store.task(id)
            #expect(t?.payload == "\(i)" && t?.kind == (i % 3 == 0 ? "u" : "t"), "task \(id)")
        }
        let second = try store.insertTasks([NewTask(kind: "t")], now: now)
        #expect(second.count == 1 && second[0] > many.max()!)
        // Another connection's insert gets a larger id too.
        let third = try make().insertTasks([NewTask(kind: "t")], now: now)
        #expect(third[0] > second[0])

        let runAt = now.adding(seconds: 90)
        let options = EnqueueOptions(queue: "mail", priority: -7, runAt: runAt, maxAttempts: 5, timeout: 2.5)
        let id = try store.insertTasks([NewTask(kind: "send", payload: #"{"to":"a@b"}"#, options: options)], now: now)[0]
        #expect(try store.task(id) == TaskRecord(
            id: id, kind: "send", queue: "mail", state: .queued, priority: -7, payload: #"{"to":"a@b"}"#, runAt: runAt,
            attempts: 0, maxAttempts: 5, timeout: 2.5, owner: nil, createdAt: now, startedAt: nil, finishedAt: nil,
            result: nil, lastError: nil))
        // Without run_at a task is ready at once; defaults are as documented.
        let plain = try #require(try store.task(first[0]))
        #expect(plain.runAt == now && plain.queue == "default" && plain.priority == 0 && plain.maxAttempts == 3)
        #expect(plain.timeout == nil && plain.payload == "0")
        #expect(try store.task(first.max()! + 1_000_000) == nil)
    }

    /// The SQLite store keeps its statements and skips binding a value a
    /// parameter already holds; each row here differs from the row that used the
    /// same parameters in the batch before (value to nil, nil to value, one value
    /// to another).
    static func consecutiveBatchesKeepEachRowsValues(_ make: @escaping StoreFactory) throws {
        let store = try make()
        let now = Timestamp.now()
        func task(_ row: Int, _ batch: Int) -> NewTask {
            let odd = (row + batch) % 2 == 1
            var o = EnqueueOptions(queue: odd ? "q\(batch)" : "default", priority: odd ? Int64(batch + 1) : 0)
            if odd {
                o.runAt = now.adding(seconds: Double(batch + 1))
                o.maxAttempts = Int64(batch + 4)
                o.timeout = Double(batch) + 0.5
                o.onCrash = .fail
                o.backoffBase = Double(batch + 1)
                o.backoffCap = Double(batch + 100)
            }
            return NewTask(kind: odd ? "k\(batch % 2)" : "plain", payload: "[\(row),\(batch)]", options: o)
        }
        for batch in 0..<3 {
            let tasks = (0..<100).map { task($0, batch) }
            let ids = try store.insertTasks(tasks, now: now)
            for (row, id) in ids.enumerated() {
                let t = try #require(try store.task(id))
                let want = tasks[row], o = want.options
                #expect(t.kind == want.kind && t.payload == want.payload && t.queue == o.queue && t.priority == o.priority,
                        "batch \(batch) row \(row): \(t)")
                #expect(t.runAt == (o.runAt ?? now) && t.maxAttempts == (o.maxAttempts ?? 3) && t.timeout == o.timeout,
                        "batch \(batch) row \(row): \(t)")
                #expect(t.onCrash == o.onCrash && t.backoffBase == o.backoffBase && t.backoffCap == o.backoffCap,
                        "batch \(batch) row \(row): \(t)")
            }
        }
    }

    /// The bulk path of `enqueue --lines`: one kind and options for every row,
    /// each row its own payload, ids in order; batches with other options, and
    /// `[NewTask]` inserts in between, do not bleed into each other.
    static func payloadBatchesShareOptions(_ make: @escaping StoreFactory) throws {
        let store = try make()
        let now = Timestamp.now()
        func batch(_ payloads: [String]) -> PayloadBatch {
            var b = PayloadBatch()
            for p in payloads { Array(p.utf8).withUnsafeBytes { b.append($0) } }
            return b
        }
        #expect(try store.insertTasks(kind: "t", options: .init(), payloads: PayloadBatch(), now: now) == [])
        let delayed = EnqueueOptions(queue: "mail", priority: -7, runAt: now.adding(seconds: 90), maxAttempts: 5, timeout: 2.5,
                                     onCrash: .fail, backoffBase: 2, backoffCap: 60)
        var last: Int64 = 0
        for (round, (kind, options)) in [("send", delayed), ("plain", EnqueueOptions()), ("send", delayed)].enumerated() {
            // 250 rows: 100 + 100 + 50 in the SQLite store's multi-row inserts.
            let payloads = (0..<250).map { i in i % 7 == 0 ? #"{"to":"\#(i)@\#(round)","pad":"\#(String(repeating: "x", count: i))"}"# : "[\(i),\(round)]" }
            let ids = try store.insertTasks(kind: kind, options: options, payloads: batch(payloads), now: now)
            #expect(ids.count == 250 && ids[0] > last && zip(ids, ids.dropFirst()).allSatisfy { $0 < $1 }, "round \(round)")
            for (i, id) in ids.enumerated() {
                let t = try #require(try store.task(id))
                #expect(t.kind == kind && t.payload == payloads[i] && t.queue == options.queue && t.priority == options.priority
                        && t.runAt == (options.runAt ?? now) && t.maxAttempts == (options.maxAttempts ?? 3)
                        && t.timeout == options.timeout && t.onCrash == options.onCrash
                        && t.backoffBase == options.backoffBase && t.backoffCap == options.backoffCap, "round \(round) row \(i): \(t)")
            }
            let one = try store.insertTasks([NewTask(kind: "between", payload: "\(round)")], now: now)
            #expect(try store.task(one[0])?.payload == "\(round)" && one[0] > ids.last!)
            let single = try store.insertTasks(kind: kind, options: options, payloads: batch(["[0]"]), now: now)
            let lone = try #require(try store.task(single[0]))
            #expect(lone.payload == "[0]" && lone.queue == options.queue && lone.priority == options.priority)
            last = single[0]
        }
    }

    static func insertIsAllOrNothing(_ make: @escaping StoreFactory) throws {
        let store = try make()
        let now = Timestamp.now()
        let kept = try store.insertTasks([NewTask(kind: "t")], now: now)[0]
        // The store is the last line of defence: a kind of 300 characters passed
        // straight to it (no Queue.validate) breaks the schema's rules.
        let tooLong = String(repeating: "k", count: 300)
        #expect(throws: (any Error).self) {
            try store.insertTasks([NewTask(kind: "t", payload: "1"), NewTask(kind: tooLong), NewTask(kind: "t", payload: "3")],
                                  now: now)
        }
        #expect(try store.tasks(TaskFilter()).map(\.id) == [kept])
        // The bad row last, after good ones, changes nothing either.
        #expect(throws: (any Error).self) {
            try store.insertTasks([NewTask(kind: "t"), NewTask(kind: "t"),
                                   NewTask(kind: "t", options: EnqueueOptions(maxAttempts: 0))], now: now)
        }
        #expect(try store.tasks(TaskFilter()).map(\.id) == [kept])
        // No transaction was left open: this connection and another can still write.
        let after = try store.insertTasks([NewTask(kind: "t")], now: now)[0]
        #expect(after > kept)
        let other = try make()
        let later = try other.insertTasks([NewTask(kind: "t")], now: now)[0]
        #expect(try other.tasks(TaskFilter()).map(\.id) == [later, after, kept])
    }
    // MARK: claim
}
#endif
