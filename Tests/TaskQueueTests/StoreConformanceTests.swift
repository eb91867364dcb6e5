// The store conformance suite: what every `TaskStore` backend must do, written
// against the protocol alone. Each case takes a factory that opens a new connection
// to one fresh database; a backend runs the suite by passing its own factory (see
// `StoreConformanceSQLiteTests` at the bottom, and do the same for PostgreSQL).
// The SQLite-only checks (column types, the schema's CHECKs and trigger seen from
// the sqlite3 shell, the busy timeout) follow in their own section.

import Foundation
import Testing
@testable import TaskQueue
@testable import TaskQueueSQLite
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// One named conformance check.
struct ConformanceCase: Sendable, CustomTestStringConvertible {
    let name: String
    let run: @Sendable (@escaping StoreFactory) throws -> Void
    init(_ name: String, _ run: @escaping @Sendable (@escaping StoreFactory) throws -> Void) {
        self.name = name
        self.run = run
    }
    var testDescription: String { name }
}

/// Lets a non-Sendable value (a factory, a store made for one thread) cross into a thread.
struct Unchecked<T>: @unchecked Sendable { let value: T }

enum StoreConformance {
    static let cases: [ConformanceCase] = [
        .init("insertTasks returns increasing ids and stores what it was given") { try insertReturnsIncreasingIDs($0) },
        .init("insertTasks is all-or-nothing") { try insertIsAllOrNothing($0) },
        .init("consecutive batches store each row's own values") { try consecutiveBatchesKeepEachRowsValues($0) },
        .init("insertTasks(kind:options:payloads:) stores each payload with the shared options") { try payloadBatchesShareOptions($0) },
        .init("claim order: priority desc, run_at, id; future run_at waits") { try claimOrder($0) },
        .init("claim order: a task ready at enqueue counts from its created_at") { try claimOrderMixesReadyAndDue($0) },
        .init("claimed rows are running, owned, attempts + 1") { try claimMarksRowsRunning($0) },
        .init("claim honours kinds, queues (nil = all) and limit") { try claimFilters($0) },
        .init("a second claimer never gets a running row (interleaved)") { try secondClaimerInterleaved($0) },
        .init("claimers on threads never share a task") { try concurrentClaimers($0) },
        .init("a stop sentinel bounds its supervisor's claims only") { try stopSentinelBound($0) },
        .init("insertStopSentinels addresses registered supervisors") { try insertStopSentinelsAddressing($0) },
        .init("fence: only the owner's current attempt finishes a task") { try fenceOwnerAndAttempt($0) },
        .init("fence: a stale attempt after recovery changes nothing") { try fenceStaleAttemptAfterRecovery($0) },
        .init("fence: an owner whose row is gone can neither claim nor finish") { try unregisteredOwnerWritesNothing($0) },
        .init("released puts back without counting the attempt") { try releaseDecrementsAttempts($0) },
        .init("retry sets run_at and last_error") { try retrySetsRunAtAndError($0) },
        .init("final failure sets finished_at") { try finalFailure($0) },
        .init("finishAndClaim finishes and claims in one call") { try finishThenClaimInOneCall($0) },
        .init("a batch of outcomes: the fence judges each on its own") { try batchOfOutcomes($0) },
        .init("result bytes round-trip byte for byte") { try resultBytesRoundTrip($0) },
        .init("recoverProcess applies outcomes, deletes the row, cancels sentinels") { try recoverProcess($0) },
        .init("recoverProcess with the started task charges only that one") { try recoverKnowingTheStartedTask($0) },
        .init("recoverProcess finds every task claimed and not reported, across claims") { try recoverEveryUnreportedClaim($0) },
        .init("nextRunAt: the earliest future start among claimable tasks") { try nextRunAtFindsTheNextDelayedTask($0) },
        .init("registerProcess, processes and heartbeat") { try processesAndHeartbeat($0) },
        .init("tasks(filter) and stats") { try listingAndStats($0) },
        .init("Recovery.deathReason judges factory rows") { try deathReason($0) },
        .init("Recovery.recoverDead gives dead processes' tasks back") { try recoverDead($0) },
    ]

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

    static func claimOrder(_ make: @escaping StoreFactory) throws {
        let store = try make()
        let f = RowFactory(store)
        let t = f.now
        let sup = try f.supervisor()
        let w = try f.worker(supervisor: sup)
        func insertSet() throws -> (a: Int64, b: Int64, c: Int64, d: Int64, e: Int64, future: Int64) {
            let a = try f.queued(priority: 0, runAt: t.adding(seconds: -3))
            let b = try f.queued(priority: 5, runAt: t.adding(seconds: -1))
            let c = try f.queued(priority: 5, runAt: t.adding(seconds: -2))
            let d = try f.queued(priority: 0, runAt: t.adding(seconds: -3))   // ties with a: id decides
            let e = try f.queued(priority: -1, runAt: t.adding(seconds: -10))
            let future = try f.queued(priority: 10, runAt: t.adding(seconds: 60))
            return (a, b, c, d, e, future)
        }
        // One at a time: the selection itself follows the order, not only the sort of what came back.
        let s = try insertSet()
        for expected in [s.c, s.b, s.a, s.d, s.e] {
            #expect(try f.claimed(w, supervisor: sup, limit: 1).map(\.id) == [expected])
        }
        #expect(try f.claimed(w, supervisor: sup, limit: 1).isEmpty, "a task whose run_at is in the future was claimed")
        #expect(try store.task(s.future)?.state == .queued)
        // All at once: returned in claim order.
        let s2 = try insertSet()
        #expect(try f.claimed(w, supervisor: sup, limit: 10).map(\.id) == [s2.c, s2.b, s2.a, s2.d, s2.e])
        // run_at == now is ready; a millisecond before, it is not.
        #expect(try f.claimed(w, supervisor: sup, at: t.adding(seconds: 59.999)).isEmpty)
        #expect(try f.claimed(w, supervisor: sup, at: t.adding(seconds: 60)).map(\.id) == [s.future, s2.future])
    }

    /// Tasks enqueued without a start time are claimable from the moment they
    /// were enqueued, and take their place among due delayed tasks by that time
    /// (the SQLite store keeps them in a separate index: this is its merge).
    static func claimOrderMixesReadyAndDue(_ make: @escaping StoreFactory) throws {
        let store = try make()
        let f = RowFactory(store)
        let t = f.now
        let sup = try f.supervisor()
        let w = try f.worker(supervisor: sup)
        func ready(_ priority: Int64, at seconds: Double) throws -> Int64 {
            try store.insertTasks([NewTask(kind: "t", options: EnqueueOptions(priority: priority))], now: t.adding(seconds: seconds))[0]
        }
        func due(_ priority: Int64, runAt seconds: Double) throws -> Int64 {
            try store.insertTasks([NewTask(kind: "t", options: EnqueueOptions(priority: priority, runAt: t.adding(seconds: seconds)))],
                                  now: t.adding(seconds: -100))[0]
        }
        func insertSet() throws -> [Int64] {
            let r1 = try ready(0, at: -5), d1 = try due(0, runAt: -4), r2 = try ready(0, at: -3), d2 = try due(0, runAt: -6)
            let r3 = try ready(1, at: -1), d3 = try due(1, runAt: -2), r4 = try ready(0, at: -3)   // r4 ties with r2: id decides
            return [d3, r3, d2, r1, d1, r2, r4]
        }
        func claim(_ limit: Int) throws -> [Int64] {
            try f.claimed(w, supervisor: sup, limit: limit, at: t).map(\.id)
        }
        let one = try insertSet()
        for expected in one { #expect(try claim(1) == [expected]) }
        #expect(try claim(1).isEmpty)
        let all = try insertSet()
        #expect(try claim(4) == Array(all.prefix(4)))
        #expect(try claim(10) == Array(all.dropFirst(4)))
        // Shown with the time it became claimable.
        #expect(try store.task(all[1])?.runAt == t.adding(seconds: -1) && store.task(all[0])?.runAt == t.adding(seconds: -2))
    }

    static func claimMarksRowsRunning(_ make: @escaping StoreFactory) throws {
        let store = try make()
        let f = RowFactory(store)
        let sup = try f.supervisor()
        let w = try f.worker(supervisor: sup)
        let id = try f.queued(kind: "t", payload: #"{"n":1}"#, queue: "q", maxAttempts: 4, timeout: 1.5)
        #expect(try f.claimed(w, supervisor: sup, limit: 0).isEmpty)
        #expect(try store.task(id)?.state == .queued)
        let at = f.now.adding(seconds: 5)
        let got = try f.claimed(w, supervisor: sup, at: at)
        #expect(got == [ClaimedTask(id: id, kind: "t", queue: "q", payload: #"{"n":1}"#, attempt: 1, maxAttempts: 4, timeout: 1.5)])
        let r = try #require(try store.task(id))
        #expect(r.state == .running && r.owner == w && r.attempts == 1)
        #expect(r.startedAt == at && r.finishedAt == nil && r.result == nil)
        // Committed: another connection sees it running.
        #expect(try make().task(id)?.owner == w)
    }

    static func claimFilters(_ make: @escaping StoreFactory) throws {
        let store = try make()
        let f = RowFactory(store)
        let sup = try f.supervisor()
        let w = try f.worker(supervisor: sup)
        let x1 = try f.queued(kind: "x", queue: "q1")
        let x2 = try f.queued(kind: "x", queue: "q2")
        let y1 = try f.queued(kind: "y", queue: "q1")
        let y2 = try f.queued(kind: "y", queue: "q2")
        let z1 = try f.queued(kind: "z", queue: "q1")
        #expect(try f.claimed(w, supervisor: sup, kinds: ["w"]).isEmpty)
        #expect(try f.claimed(w, supervisor: sup, kinds: ["y"], queues: ["q2"]).map(\.id) == [y2])
        #expect(try f.claimed(w, supervisor: sup, kinds: ["x"], queues: nil).map(\.id) == [x1, x2])
        #expect(try f.claimed(w, supervisor: sup, kinds: ["y", "z"], queues: ["q3"]).isEmpty)
        #expect(try f.claimed(w, supervisor: sup, kinds: ["y", "z"], queues: ["q1", "q3"]).map(\.id) == [y1, z1])
        #expect(try f.claimed(w, supervisor: sup, kinds: ["x", "y", "z"]).isEmpty)
        // limit
        let l = try (0..<5).map { _ in try f.queued(kind: "l") }
        #expect(try f.claimed(w, supervisor: sup, kinds: ["l"], limit: 2).map(\.id) == Array(l[0..<2]))
        #expect(try f.claimed(w, supervisor: sup, kinds: ["l"], limit: 2).map(\.id) == Array(l[2..<4]))
        #expect(try f.claimed(w, supervisor: sup, kinds: ["l"], limit: 2).map(\.id) == [l[4]])
    }

    static func secondClaimerInterleaved(_ make: @escaping StoreFactory) throws {
        // Two connections to one database, taking turns:
        //   s1 claims 2 | s2 claims up to 10 | s1 claims | s2 claims
        let s1 = try make(), s2 = try make()
        let f1 = RowFactory(s1), f2 = RowFactory(s2, now: f1.now)
        let sup = try f1.supervisor()
        let w1 = try f1.worker(supervisor: sup), w2 = try f2.worker(supervisor: sup)
        let ids = try (0..<5).map { _ in try f1.queued() }
        let a = try f1.claimed(w1, supervisor: sup, limit: 2)
        let b = try f2.claimed(w2, supervisor: sup, limit: 10)
        #expect(a.map(\.id) == Array(ids[0..<2]))
        #expect(b.map(\.id) == Array(ids[2...]))
        #expect(try f1.claimed(w1, supervisor: sup).isEmpty)
        #expect(try f2.claimed(w2, supervisor: sup).isEmpty)
        for (id, owner) in zip(ids, [w1, w1, w2, w2, w2]) {
            let r = try s2.task(id)
            #expect(r?.state == .running && r?.owner == owner && r?.attempts == 1, "task \(id): \(String(describing: r))")
        }
    }

    static func concurrentClaimers(_ make: @escaping StoreFactory) throws {
        let store = try make()
        let f = RowFactory(store)
        let sup = try f.supervisor()
        let workers = try (0..<4).map { _ in try f.worker(supervisor: sup) }
        let ids = try store.insertTasks((0..<300).map { NewTask(kind: "t", payload: "\($0)") }, now: f.now)
        let factory = Unchecked(value: make)
        let now = f.now
        let claims = Locked<[Int64: [Int64]]>([:])   // owner -> task ids, in claim order
        let errors = Locked<[String]>([])
        let finished = onThreads(4) { i in
            do {
                let s = try factory.value()
                while true {
                    let got = try s.finishAndClaim([], claim: ClaimRequest(owner: workers[i], supervisorID: sup, kinds: ["t"],
                                                                          queues: nil, limit: 3), now: now).claimed
                    if got.isEmpty { break }
                    claims.withLock { $0[workers[i], default: []] += got.map(\.id) }
                }
            } catch {
                errors.withLock { $0.append("\(error)") }
            }
        }
        #expect(finished)
        #expect(errors.current.isEmpty, "\(errors.current)")
        let byOwner = claims.current
        let all = byOwner.values.flatMap { $0 }
        #expect(all.count == ids.count, "claimed \(all.count) times for \(ids.count) tasks")
        #expect(Set(all) == Set(ids))
        for (owner, got) in byOwner {
            for id in got {
                let r = try store.task(id)
                #expect(r?.owner == owner && r?.attempts == 1 && r?.state == .running)
            }
        }
    }

    // MARK: stop sentinels

    static func stopSentinelBound(_ make: @escaping StoreFactory) throws {
        let store = try make()
        let f = RowFactory(store)
        let s = try f.supervisor(), other = try f.supervisor()
        let ws = try f.worker(supervisor: s), wo = try f.worker(supervisor: other)
        #expect(try store.stopSentinel(for: s) == nil)
        let before1 = try f.queued(), before2 = try f.queued()
        let sentinels = try store.insertStopSentinels(mode: .drain, supervisorIDs: [s], now: f.now)
        #expect(sentinels.count == 1)
        let sentinel = try #require(sentinels.first)
        #expect(sentinel.supervisorID == s && sentinel.mode == .drain && sentinel.id > before2)
        #expect(try store.stopSentinel(for: s) == sentinel)
        #expect(try store.stopSentinel(for: other) == nil)
        let sentinelRow = try #require(try store.task(sentinel.id))
        #expect(sentinelRow.kind == stopSentinelKind && sentinelRow.state == .queued)

        // Tasks after the sentinel, even urgent ones, are not for s.
        let urgent = try f.queued(priority: 100), after = try f.queued()
        #expect(try f.claimed(ws, supervisor: s).map(\.id) == [before1, before2])
        #expect(try f.claimed(ws, supervisor: s).isEmpty)
        #expect(try store.task(urgent)?.state == .queued)
        // Another supervisor's workers are not bound by it.
        #expect(try f.claimed(wo, supervisor: other).map(\.id) == [urgent, after])

        // Completed: it no longer bounds anything.
        let done = f.now.adding(seconds: 1)
        try store.completeStopSentinel(sentinel.id, note: "supervisor stopped after draining", now: done)
        let r = try #require(try store.task(sentinel.id))
        #expect(r.state == .succeeded && r.finishedAt == done && r.owner == nil)
        #expect(r.result == Array("supervisor stopped after draining".utf8))
        #expect(try store.stopSentinel(for: s) == nil)
        let next = try f.queued()
        #expect(try f.claimed(ws, supervisor: s).map(\.id) == [next])
    }

    static func insertStopSentinelsAddressing(_ make: @escaping StoreFactory) throws {
        let store = try make()
        let f = RowFactory(store)
        #expect(try store.insertStopSentinels(mode: .now, supervisorIDs: nil, now: f.now) == [])
        #expect(try store.tasks(TaskFilter()).isEmpty, "a sentinel was written with no supervisor to read it")
        let s = try f.supervisor(), t = try f.supervisor()
        let w = try f.worker(supervisor: s)
        let all = try store.insertStopSentinels(mode: .now, supervisorIDs: nil, now: f.now)
        #expect(all.map(\.supervisorID).sorted() == [s, t])
        #expect(all.allSatisfy { $0.mode == .now })
        #expect(Set(all.map(\.id)).count == 2)
        for sentinel in all { #expect(try store.stopSentinel(for: sentinel.supervisorID) == sentinel) }
        #expect(try store.stopSentinel(for: w) == nil)
        // A second one for t: stopSentinel(for:) still gives the oldest.
        let again = try store.insertStopSentinels(mode: .drain, supervisorIDs: [t], now: f.now)
        #expect(again.count == 1 && again[0].supervisorID == t && again[0].mode == .drain)
        #expect(try store.stopSentinel(for: t)?.id == all.first { $0.supervisorID == t }?.id)
        // Only supervisors are addressed.
        #expect(try store.insertStopSentinels(mode: .drain, supervisorIDs: [w], now: f.now) == [])
        #expect(try store.insertStopSentinels(mode: .drain, supervisorIDs: [w + 1000], now: f.now) == [])
        #expect(try store.tasks(TaskFilter(kind: stopSentinelKind)).count == 3)
    }

    // MARK: the fence

    static func fenceOwnerAndAttempt(_ make: @escaping StoreFactory) throws {
        let store = try make()
        let f = RowFactory(store)
        let s = try f.supervisor()
        let w = try f.worker(supervisor: s), v = try f.worker(supervisor: s)
        let t = try f.running(owner: w, supervisor: s)
        let before = try store.task(t.id)
        let wrong = try store.finishAndClaim([
            TaskOutcome(taskID: t.id, owner: v, attempt: 1, result: .succeeded(Array("v".utf8))),
            TaskOutcome(taskID: t.id, owner: w, attempt: 2, result: .succeeded(Array("w2".utf8))),
            TaskOutcome(taskID: t.id, owner: w, attempt: 0, result: .released),
            TaskOutcome(taskID: t.id, owner: v, attempt: 1, result: .failed(error: "not mine", retryAt: nil)),
            TaskOutcome(taskID: t.id + 1_000_000, owner: w, attempt: 1, result: .succeeded([])),
        ], claim: nil, now: f.now)
        #expect(wrong.accepted == [false, false, false, false, false])
        #expect(wrong.claimed.isEmpty)
        #expect(try store.task(t.id) == before)

        let at = f.now.adding(seconds: 2)
        #expect(try f.finish(t, owner: w, .succeeded(Array("done".utf8)), at: at))
        let r = try #require(try store.task(t.id))
        #expect(r.state == .succeeded && r.owner == nil && r.attempts == 1)
        #expect(r.finishedAt == at && r.result == Array("done".utf8) && r.lastError == nil)
        // Finished: nothing more applies.
        #expect(try !f.finish(t, owner: w, .failed(error: "late", retryAt: nil)))
        #expect(try !f.finish(t, owner: w, .released))
        #expect(try store.task(t.id) == r)
        // A queued task was never claimed by anyone: nothing applies to it.
        let q = try f.queued(kind: "other")
        let onQueued = try store.finishAndClaim([TaskOutcome(taskID: q, owner: w, attempt: 0, result: .succeeded([])),
                                                 TaskOutcome(taskID: q, owner: w, attempt: 1, result: .succeeded([]))],
                                                claim: nil, now: f.now)
        #expect(onQueued.accepted == [false, false])
        #expect(try store.task(q)?.state == .queued)
    }

    static func nextRunAtFindsTheNextDelayedTask(_ make: @escaping StoreFactory) throws {
        let store = try make()
        let f = RowFactory(store)
        let s = try f.supervisor()
        let w = try f.worker(supervisor: s)
        let req = f.claim(w, supervisor: s, kinds: ["t"], queues: ["q"])
        #expect(try store.nextRunAt(req, now: f.now) == nil)
        func at(_ seconds: Double, kind: String = "t", queue: String = "q") throws {
            _ = try store.insertTasks([NewTask(kind: kind, options: EnqueueOptions(queue: queue, runAt: f.now.adding(seconds: seconds)))], now: f.now)
        }
        try at(-5)                      // ready now: not a future start
        try at(30, kind: "other")       // not its kind
        try at(20, queue: "elsewhere")  // not its queue
        try at(90)
        try at(60)
        #expect(try store.nextRunAt(req, now: f.now) == f.now.adding(seconds: 60))
        #expect(try store.nextRunAt(f.claim(w, supervisor: s, kinds: ["t", "other"], queues: nil), now: f.now)
                == f.now.adding(seconds: 20))
        // Only retries: a task that failed an attempt and waits out its backoff.
        #expect(try store.nextRunAt(req, now: f.now, retriesOnly: true) == nil)
        _ = try store.insertTasks([NewTask(kind: "t", options: EnqueueOptions(queue: "q"))], now: f.now)
        let t = try #require(try f.claimed(w, supervisor: s, kinds: ["t"], queues: ["q"]).first { $0.attempt == 1 })
        #expect(try f.finish(t, owner: w, .failed(error: "x", retryAt: f.now.adding(seconds: 75))))
        #expect(try store.nextRunAt(req, now: f.now, retriesOnly: true) == f.now.adding(seconds: 75))
        #expect(try store.nextRunAt(req, now: f.now) == f.now.adding(seconds: 60))
    }

    static func recoverEveryUnreportedClaim(_ make: @escaping StoreFactory) throws {
        let store = try make()
        let f = RowFactory(store)
        let s = try f.supervisor()
        let w = try f.worker(supervisor: s), v = try f.worker(supervisor: s)
        let kind = f.uniqueKind()
        for _ in 0..<6 { try f.queued(kind: kind) }
        let first = try f.claimed(w, supervisor: s, kinds: [kind], limit: 3)
        #expect(first.count == 3)
        // w reports on one of them and claims two more in the same call; v claims the last.
        let r = try store.finishAndClaim([TaskOutcome(taskID: first[0].id, owner: w, attempt: first[0].attempt, result: .succeeded([]))],
                                         claim: f.claim(w, supervisor: s, kinds: [kind], limit: 2), now: f.now)
        #expect(r.accepted == [true] && r.claimed.count == 2)
        let other = try f.claimed(v, supervisor: s, kinds: [kind], limit: 3)
        #expect(other.count == 1)
        let held = try store.recoverProcess(w, now: f.now) { _ in .released }
        #expect(held.map(\.id) == [first[1].id, first[2].id] + r.claimed.map(\.id))
        #expect(try store.task(first[0].id)?.state == .succeeded)
        #expect(try store.task(other[0].id)?.owner == v)
        #expect(try store.recoverProcess(v, now: f.now) { _ in .released }.map(\.id) == [other[0].id])
    }

    static func recoverKnowingTheStartedTask(_ make: @escaping StoreFactory) throws {
        let store = try make()
        let f = RowFactory(store)
        let s = try f.supervisor()
        let w = try f.worker(supervisor: s)
        _ = try store.insertTasks((1...3).map { NewTask(kind: "t", payload: "\($0)") }, now: f.now)
        let batch = try f.claimed(w, supervisor: s)
        #expect(batch.count == 3)
        let started = batch[1]
        let held = try store.recoverProcess(w, now: f.now, startedTaskID: started.id) { _ in
            .failed(error: "worker died while running it", retryAt: f.now)
        }
        #expect(Set(held.map(\.id)) == Set(batch.map(\.id)))
        let charged = try #require(try store.task(started.id))
        #expect(charged.state == .queued && charged.attempts == 1 && charged.lastError == "worker died while running it")
        for t in [batch[0], batch[2]] {
            let r = try #require(try store.task(t.id))
            #expect(r.state == .queued && r.attempts == 0 && r.lastError == nil, "\(r)")
        }
        #expect(try store.processes().map(\.id) == [s])
    }

    static func fenceStaleAttemptAfterRecovery(_ make: @escaping StoreFactory) throws {
        let store = try make()
        let f = RowFactory(store)
        let s = try f.supervisor()
        let a = try f.worker(supervisor: s), b = try f.worker(supervisor: s)
        let t = try f.running(owner: a, supervisor: s)   // a's attempt 1
        // a is presumed dead; its task goes back for a retry.
        let held = try store.recoverProcess(a, now: f.now) { _ in .failed(error: "worker a died", retryAt: f.now) }
        #expect(held.map(\.id) == [t.id])
        var r = try #require(try store.task(t.id))
        #expect(r.state == .queued && r.attempts == 1 && r.owner == nil && r.lastError == "worker a died")
        // b takes it: attempt 2.
        let mine = try f.claimed(b, supervisor: s, kinds: [t.kind])
        #expect(mine.map(\.id) == [t.id] && mine.first?.attempt == 2)
        // a was only frozen: its late outcomes, whatever they are, change nothing.
        let late: [TaskOutcome.Result] = [.succeeded(Array("from a".utf8)), .failed(error: "a failed", retryAt: nil),
                                          .failed(error: "a retries", retryAt: f.now), .released]
        for outcome in late {
            #expect(throws: OwnerNotRegistered.self, "stale \(outcome) accepted") { try f.finish(t, owner: a, outcome) }
        }
        r = try #require(try store.task(t.id))
        #expect(r.state == .running && r.owner == b && r.attempts == 2)
        // b finishes; a's late result still changes nothing.
        #expect(try f.finish(mine[0], owner: b, .succeeded(Array("from b".utf8))))
        #expect(throws: OwnerNotRegistered.self) { try f.finish(t, owner: a, .succeeded(Array("from a".utf8))) }
        r = try #require(try store.task(t.id))
        #expect(r.state == .succeeded && r.result == Array("from b".utf8) && r.attempts == 2)
    }

    /// A worker declared dead while frozen (its row deleted by recovery) that thaws
    /// and reports its result and claims more in one call: the call fails whole.
    /// Had the claim gone through, its task would be `running` under an owner no
    /// recovery looks for, forever.
    static func unregisteredOwnerWritesNothing(_ make: @escaping StoreFactory) throws {
        let store = try make()
        let f = RowFactory(store)
        let s = try f.supervisor()
        let a = try f.worker(supervisor: s)
        let t = try f.running(owner: a, supervisor: s)
        let waiting = try f.queued()
        try store.recoverProcess(a, now: f.now) { _ in .failed(error: "worker a died", retryAt: f.now) }
        let kinds = ["t", t.kind]
        let result = TaskOutcome(taskID: t.id, owner: a, attempt: t.attempt, result: .succeeded(Array("late".utf8)))
        #expect(throws: OwnerNotRegistered.self) {
            try store.finishAndClaim([result], claim: f.claim(a, supervisor: s, kinds: kinds), now: f.now)
        }
        #expect(throws: OwnerNotRegistered.self) {
            try store.finishAndClaim([], claim: f.claim(a, supervisor: s, kinds: kinds), now: f.now)
        }
        for id in [t.id, waiting] {
            let r = try #require(try store.task(id))
            #expect(r.state == .queued && r.owner == nil, "\(r)")
        }
        #expect(try store.task(t.id)?.attempts == 1 && store.task(waiting)?.attempts == 0)
        // A live worker gets both.
        let b = try f.worker(supervisor: s)
        #expect(Set(try f.claimed(b, supervisor: s, kinds: kinds).map(\.id)) == [t.id, waiting])
    }

    static func releaseDecrementsAttempts(_ make: @escaping StoreFactory) throws {
        let store = try make()
        let f = RowFactory(store)
        let s = try f.supervisor()
        let w = try f.worker(supervisor: s)
        let t = try f.running(owner: w, supervisor: s, attempt: 2)
        #expect(try store.task(t.id)?.attempts == 2)
        #expect(try f.finish(t, owner: w, .released))
        let r = try #require(try store.task(t.id))
        #expect(r.state == .queued && r.attempts == 1 && r.owner == nil && r.finishedAt == nil && r.result == nil)
        #expect(r.lastError == "earlier attempt failed", "release must not touch the last error")
        let again = try f.claimed(w, supervisor: s, kinds: [t.kind])
        #expect(again.map(\.attempt) == [2])
    }

    static func retrySetsRunAtAndError(_ make: @escaping StoreFactory) throws {
        let store = try make()
        let f = RowFactory(store)
        let s = try f.supervisor()
        let w = try f.worker(supervisor: s)
        let t = try f.running(owner: w, supervisor: s)
        let retryAt = f.now.adding(seconds: 30)
        #expect(try f.finish(t, owner: w, .failed(error: "boom: exit status 3", retryAt: retryAt)))
        let r = try #require(try store.task(t.id))
        #expect(r.state == .queued && r.attempts == 1 && r.owner == nil)
        #expect(r.runAt == retryAt && r.lastError == "boom: exit status 3")
        #expect(r.finishedAt == nil && r.result == nil)
        #expect(try f.claimed(w, supervisor: s, kinds: [t.kind], at: retryAt.adding(seconds: -1)).isEmpty)
        #expect(try f.claimed(w, supervisor: s, kinds: [t.kind], at: retryAt).map(\.attempt) == [2])
    }

    static func finalFailure(_ make: @escaping StoreFactory) throws {
        let store = try make()
        let f = RowFactory(store)
        let s = try f.supervisor()
        let w = try f.worker(supervisor: s)
        let t = try f.running(owner: w, supervisor: s, attempt: 3, maxAttempts: 3)
        let at = f.now.adding(seconds: 3)
        #expect(try f.finish(t, owner: w, .failed(error: "gave up: exit status 1", retryAt: nil), at: at))
        let r = try #require(try store.task(t.id))
        #expect(r.state == .failed && r.finishedAt == at && r.lastError == "gave up: exit status 1")
        #expect(r.owner == nil && r.attempts == 3 && r.result == nil)
        #expect(try f.claimed(w, supervisor: s, kinds: [t.kind], at: at.adding(seconds: 3600)).isEmpty)
    }

    static func finishThenClaimInOneCall(_ make: @escaping StoreFactory) throws {
        let store = try make()
        let f = RowFactory(store)
        let s = try f.supervisor()
        let w = try f.worker(supervisor: s)
        let ids = try (0..<3).map { _ in try f.queued() }
        let first = try f.claimed(w, supervisor: s, limit: 1)
        #expect(first.map(\.id) == [ids[0]])
        let (accepted, claimed) = try store.finishAndClaim([
            TaskOutcome(taskID: first[0].id, owner: w, attempt: 1, result: .succeeded(Array("ok".utf8))),
            TaskOutcome(taskID: ids[2], owner: w, attempt: 1, result: .succeeded([])),   // not claimed: refused
        ], claim: f.claim(w, supervisor: s, limit: 1), now: f.now)
        #expect(accepted == [true, false])
        #expect(claimed.map(\.id) == [ids[1]])
        #expect(try store.task(ids[0])?.state == .succeeded)
        #expect(try store.task(ids[2])?.state == .queued)
    }

    /// Many outcomes in one call, as a worker reports a claimed batch (the SQLite
    /// store finishes the successful ones with one UPDATE over their id range): each
    /// is accepted or refused as it would be alone, and each row gets its own result.
    static func batchOfOutcomes(_ make: @escaping StoreFactory) throws {
        let store = try make()
        let f = RowFactory(store)
        let s = try f.supervisor()
        let w = try f.worker(supervisor: s), v = try f.worker(supervisor: s, kinds: ["u"])
        let ids = try (0..<10).map { try f.queued(kind: $0 == 2 ? "u" : "t", payload: "\($0)") }
        let waiting = try store.insertTasks([NewTask(kind: "d", options: EnqueueOptions(after: [ids[6]]))], now: f.now)[0]
        // v holds ids[2]; w claims the other nine (ids not consecutive: the id-list claim).
        #expect(try f.claimed(v, supervisor: s, kinds: ["u"]).map(\.id) == [ids[2]])
        let mine = try f.claimed(w, supervisor: s, kinds: ["t"], limit: 9)
        #expect(mine.map(\.id) == ids.enumerated().filter { $0.offset != 2 }.map(\.element))
        let outputs: [[UInt8]] = [Array("a".utf8), [0xFF, 0x00, 0x41], Array("from w".utf8), [], [], Array("stale".utf8),
                                  Array("six".utf8), Array("é✓".utf8), Array("x".utf8), Array("a\u{0}b".utf8)]
        let at = f.now.adding(seconds: 1)
        let outcomes = (0..<10).map { k -> TaskOutcome in
            let result: TaskOutcome.Result = k == 4 ? .failed(error: "four failed", retryAt: nil) : .succeeded(outputs[k])
            return TaskOutcome(taskID: ids[k], owner: w, attempt: k == 5 ? 2 : 1, result: result)
        }
        let r = try store.finishAndClaim(outcomes, claim: nil, now: at)
        // ids[2] is v's, and ids[5] is in its attempt 1, not 2.
        #expect(r.accepted == [true, true, false, true, true, false, true, true, true, true])
        for k in [0, 1, 3, 6, 7, 8, 9] {
            let t = try #require(try store.task(ids[k]))
            #expect(t.state == .succeeded && t.owner == nil && t.attempts == 1 && t.finishedAt == at, "task \(k)")
            #expect(t.result == outputs[k], "task \(k): \(t.result ?? [])")
        }
        let four = try #require(try store.task(ids[4]))
        #expect(four.state == .failed && four.lastError == "four failed" && four.result == nil)
        let two = try #require(try store.task(ids[2]))
        #expect(two.state == .running && two.owner == v && two.result == nil)
        let five = try #require(try store.task(ids[5]))
        #expect(five.state == .running && five.owner == w && five.attempts == 1)
        // ids[6] had a task waiting for it: released.
        #expect(try f.claimed(w, supervisor: s, kinds: ["d"], at: at).map(\.id) == [waiting])
        #expect(try f.finish(mine[4], owner: w, .succeeded([])))
        #expect(try store.task(ids[5])?.state == .succeeded)

        // Consecutive ids (one range claimed), each reported twice: once only counts.
        let more = try (0..<3).map { _ in try f.queued(kind: "t") }
        let got = try f.claimed(w, supervisor: s, kinds: ["t"], at: at)
        #expect(got.map(\.id) == more && got.allSatisfy { $0.attempt == 1 })
        for id in more {
            let t = try #require(try store.task(id))
            #expect(t.state == .running && t.owner == w && t.attempts == 1 && t.startedAt == at)
        }
        let twice = got.flatMap { t in ["first", "second"].map {
            TaskOutcome(taskID: t.id, owner: w, attempt: 1, result: .succeeded(Array($0.utf8)))
        } }
        #expect(try store.finishAndClaim(twice, claim: nil, now: at).accepted == [true, false, true, false, true, false])
        #expect(try more.map { try store.task($0)?.result } == Array(repeating: Array("first".utf8), count: 3))

        // Large outputs in one batch (1.8 MB in all): each stored whole.
        var random = SystemRandomNumberGenerator()
        let big = try (0..<3).map { _ in try f.queued(kind: "t") }
        let held = try f.claimed(w, supervisor: s, kinds: ["t"], at: at)
        #expect(held.map(\.id) == big)
        let outputsBig = big.map { _ in (0..<600_000).map { _ in UInt8.random(in: 0...255, using: &random) } }
        let done = try store.finishAndClaim(zip(held, outputsBig).map {
            TaskOutcome(taskID: $0.id, owner: w, attempt: $0.attempt, result: .succeeded($1))
        }, claim: nil, now: at)
        #expect(done.accepted == [true, true, true])
        #expect(try big.map { try store.task($0)?.result } == outputsBig)
    }

    // MARK: results

    static func resultBytesRoundTrip(_ make: @escaping StoreFactory) throws {
        let store = try make()
        let f = RowFactory(store)
        let s = try f.supervisor()
        let w = try f.worker(supervisor: s)
        var random = SystemRandomNumberGenerator()
        let outputs: [[UInt8]] = [
            Array("héllo wörld ✓ 🎉\n".utf8),
            [],
            [0xFF, 0xFE, 0x00, 0x41],
            Array("a\u{0}b\n".utf8),        // valid UTF-8 with a NUL
            [0x68, 0x69, 0xC3],             // UTF-8 cut in the middle of a character
            Array("\r\n\t '\"\\".utf8),
            (0..<262_144).map { _ in UInt8.random(in: 0...255, using: &random) },
        ]
        let ids = try outputs.map { try f.succeeded($0, owner: w, supervisor: s) }
        let other = try make()
        for (id, bytes) in zip(ids, outputs) {
            #expect(try store.task(id)?.result == bytes, "task \(id): \(bytes.prefix(16))")
            #expect(try other.task(id)?.result == bytes, "task \(id) read by another connection")
        }
    }

    // MARK: processes and recovery

    static func recoverProcess(_ make: @escaping StoreFactory) throws {
        let store = try make()
        let f = RowFactory(store)
        let s = try f.supervisor()
        let w = try f.worker(supervisor: s), v = try f.worker(supervisor: s)
        let t1 = try f.running(owner: w, supervisor: s)
        let t2 = try f.running(owner: w, supervisor: s, maxAttempts: 1)
        let t3 = try f.running(owner: v, supervisor: s)
        let at = f.now.adding(seconds: 1)
        var asked: [Int64] = []
        let held = try store.recoverProcess(w, now: at) { t in
            asked.append(t.id)
            return t.id == t1.id ? .failed(error: "w died", retryAt: at.adding(seconds: 5)) : .failed(error: "w died", retryAt: nil)
        }
        #expect(held.sorted { $0.id < $1.id } == [t1, t2])
        #expect(asked.sorted() == [t1.id, t2.id])
        let r1 = try #require(try store.task(t1.id))
        #expect(r1.state == .queued && r1.attempts == 1 && r1.owner == nil && r1.runAt == at.adding(seconds: 5))
        #expect(r1.lastError == "w died")
        let r2 = try #require(try store.task(t2.id))
        #expect(r2.state == .failed && r2.finishedAt == at && r2.lastError == "w died")
        #expect(try store.task(t3.id)?.owner == v)
        #expect(try store.processes().map(\.id) == [s, v])
        #expect(try !store.heartbeat(processID: w, now: at, lease: 30), "a recovered process must learn it is gone")
        #expect(try store.heartbeat(processID: v, now: at, lease: 30))
        // Gone already: nothing to do, no error.
        #expect(try store.recoverProcess(w, now: at) { _ in .released }.isEmpty)

        // A dead supervisor's sentinels are cancelled; they will never be read.
        let sentinel = try #require(try store.insertStopSentinels(mode: .drain, supervisorIDs: [s], now: at).first)
        #expect(try store.recoverProcess(s, now: at) { _ in .released }.isEmpty)
        let rs = try #require(try store.task(sentinel.id))
        #expect(rs.state == .cancelled && rs.finishedAt == at && rs.lastError != nil)
        #expect(try store.stopSentinel(for: s) == nil)
        #expect(try store.processes().map(\.id) == [v])

        // A clean exit: removeProcess of a worker holding nothing.
        _ = try store.finishAndClaim([TaskOutcome(taskID: t3.id, owner: v, attempt: 1, result: .succeeded([]))], claim: nil, now: at)
        try store.removeProcess(v)
        #expect(try store.processes().isEmpty)
        #expect(try !store.heartbeat(processID: v, now: at, lease: 30))
        #expect(try store.task(t3.id)?.state == .succeeded)
    }

    static func processesAndHeartbeat(_ make: @escaping StoreFactory) throws {
        let store = try make()
        let at = Timestamp.now()
        let s = try store.registerProcess(role: .supervisor, supervisorID: nil, pid: 4241, host: "h1", bootID: "b1",
                                          startTicks: 76, queues: nil, kinds: [], now: at, lease: 30)
        let w = try store.registerProcess(role: .worker, supervisorID: s, pid: 4242, host: "h1", bootID: "b1",
                                          startTicks: 77, queues: ["a", "b"], kinds: ["k1", "k.2"], now: at, lease: 30)
        #expect(w > s)
        #expect(try store.processes() == [
            ProcessRecord(id: s, role: .supervisor, supervisorID: nil, pid: 4241, host: "h1", bootID: "b1", startTicks: 76,
                          queues: nil, kinds: [], startedAt: at, heartbeatAt: at, expiresAt: at.adding(seconds: 30)),
            ProcessRecord(id: w, role: .worker, supervisorID: s, pid: 4242, host: "h1", bootID: "b1", startTicks: 77,
                          queues: ["a", "b"], kinds: ["k1", "k.2"], startedAt: at, heartbeatAt: at, expiresAt: at.adding(seconds: 30)),
        ])
        let beat = at.adding(seconds: 10)
        #expect(try store.heartbeat(processID: w, now: beat, lease: 45))
        let p = try #require(try store.processes().first { $0.id == w })
        #expect(p.startedAt == at && p.heartbeatAt == beat && p.expiresAt == beat.adding(seconds: 45))
        #expect(try !store.heartbeat(processID: w + 1000, now: beat, lease: 45))
        // Process ids are never reused.
        try store.removeProcess(w)
        let w2 = try store.registerProcess(role: .worker, supervisorID: s, pid: 4242, host: "h1", bootID: "b1",
                                           startTicks: 77, queues: nil, kinds: ["k1"], now: at, lease: 30)
        #expect(w2 > w)
    }

    static func listingAndStats(_ make: @escaping StoreFactory) throws {
        let store = try make()
        let f = RowFactory(store)
        let s = try f.supervisor()
        let w = try f.worker(supervisor: s)
        let a = try f.queued(kind: "t", queue: "q1")
        let b = try f.running(owner: w, supervisor: s, queue: "q1")
        let c = try f.running(owner: w, supervisor: s, queue: "q1")
        #expect(try f.finish(c, owner: w, .succeeded([])))
        let d = try f.running(owner: w, supervisor: s, maxAttempts: 1, queue: "q2")
        #expect(try f.finish(d, owner: w, .failed(error: "x", retryAt: nil)))
        let e = try f.queued(kind: "t", queue: "q2", runAt: f.now.adding(seconds: 600))
        _ = try store.insertStopSentinels(mode: .drain, supervisorIDs: [s], now: f.now)

        #expect(try store.tasks(TaskFilter(kind: "t")).map(\.id) == [e, a])
        #expect(try store.tasks(TaskFilter(states: [.succeeded, .failed])).map(\.id) == [d.id, c.id])
        #expect(try store.tasks(TaskFilter(queue: "q2")).map(\.id) == [e, d.id])
        #expect(try store.tasks(TaskFilter(states: [.running], queue: "q1")).map(\.id) == [b.id])
        #expect(try store.tasks(TaskFilter(limit: 2)).count == 2)

        let stats = try store.stats(now: f.now)
        let counts = stats.counts.map { "\($0.queue)/\($0.state.rawValue)=\($0.count)" }
        #expect(counts == ["q1/queued=1", "q1/running=1", "q1/succeeded=1", "q2/queued=1", "q2/failed=1"],
                "stop sentinels must not be counted as tasks")
        #expect(stats.waiting == ["q2": 1])
        #expect(stats.processes == (try store.processes()))
    }

    static func deathReason(_ make: @escaping StoreFactory) throws {
        let store = try make()
        let f = RowFactory(store)
        let me = getpid()
        let myTicks = try #require(System.startTicks(of: me))
        let dead = reapedChild()
        let live = try f.supervisor()
        let exited = try f.worker(supervisor: live, pid: dead.pid, startTicks: dead.startTicks)
        let noSuchPid = try f.worker(supervisor: live, pid: impossiblePid, startTicks: 0)
        let reused = try f.worker(supervisor: live, pid: me, startTicks: myTicks + 1)
        // Another boot, or another PID namespace, under this host name: an earlier boot
        // of this machine, a clone of it, or a container beside it. Its pid means
        // nothing here, so only its lease counts.
        let rebooted = try f.worker(supervisor: live, pid: me, bootID: otherBootID,
                                    registeredAt: f.now.adding(seconds: -120), lease: 60)
        let otherNamespace = try f.worker(supervisor: live, pid: impossiblePid, bootID: System.bootID + "/pid:[4026532999]")
        let remoteGone = try f.worker(supervisor: live, pid: impossiblePid, host: "elsewhere.invalid",
                                      registeredAt: f.now.adding(seconds: -120), lease: 60)
        let remoteAlive = try f.worker(supervisor: live, pid: impossiblePid, host: "elsewhere.invalid", lease: 60)
        // Past its lease but running: it was most likely waiting for a write lock.
        let late = try f.worker(supervisor: live, pid: me, registeredAt: f.now.adding(seconds: -120), lease: 60)
        // Past its lease and stopped (SIGSTOP): frozen, so dead to the queue.
        let child = Child("/bin/sleep", ["30"])
        defer { child.kill9() }
        var childTicks: Int64?
        eventually(timeout: 10) { childTicks = System.startTicks(of: child.pid); return childTicks != nil }
        child.signal(SIGSTOP)
        #expect(eventually(timeout: 10) { System.isStopped(child.pid) })
        let frozen = try f.worker(supervisor: live, pid: child.pid, startTicks: childTicks ?? 0,
                                  registeredAt: f.now.adding(seconds: -120), lease: 60)
        let rows = Dictionary(uniqueKeysWithValues: try store.processes().map { ($0.id, $0) })
        let now = Timestamp.now()
        func reason(_ id: Int64) -> String? { Recovery.deathReason(of: rows[id]!, now: now) }
        #expect(reason(live) == nil)
        #expect(reason(exited) == "exited without cleaning up")
        #expect(reason(noSuchPid) == "exited without cleaning up")
        #expect(reason(reused) == "exited without cleaning up", "a reused pid (other start time) is another process")
        #expect(reason(rebooted)?.hasPrefix("stopped heartbeating (its lease expired ") == true, "\(reason(rebooted) ?? "nil")")
        #expect(reason(otherNamespace) == nil, "a container with this host name is alive while its lease runs")
        #expect(reason(remoteAlive) == nil, "a process on another host is alive while its lease runs")
        let gone = try #require(reason(remoteGone))
        #expect(gone.hasPrefix("stopped heartbeating (its lease expired ") && gone.hasSuffix(" ago)"), "\(gone)")
        #expect(reason(late) == nil, "a running local process past its lease was waiting for a lock, not dead")
        #expect(reason(frozen)?.hasPrefix("stopped heartbeating") == true, "a stopped process is dead once its lease expires")
        #expect(try Recovery.liveSupervisors(store: store).map(\.id) == [live])
    }

    static func recoverDead(_ make: @escaping StoreFactory) throws {
        let store = try make()
        let f = RowFactory(store)
        let host = System.hostName
        // Local dead processes use a pid no process can have: recoverDead kills a dead
        // worker's session, and must never reach somebody else's process.
        let s = try f.supervisor()
        let deadWorker = try f.worker(supervisor: s, pid: impossiblePid, startTicks: 0)
        let t1 = try f.running(owner: deadWorker, supervisor: s)                              // attempt 1/3
        let t2 = try f.running(owner: deadWorker, supervisor: s, attempt: 2, maxAttempts: 2)  // its last attempt
        let remoteAlive = try f.worker(supervisor: s, pid: impossiblePid, host: "elsewhere.invalid")
        let t3 = try f.running(owner: remoteAlive, supervisor: s)
        let remoteGone = try f.worker(supervisor: s, pid: impossiblePid, host: "elsewhere.invalid",
                                      registeredAt: f.now.adding(seconds: -120), lease: 60)
        let t4 = try f.running(owner: remoteGone, supervisor: s)
        let rebootedSupervisor = try f.supervisor(pid: impossiblePid, bootID: otherBootID, startTicks: 0,
                                                  registeredAt: f.now.adding(seconds: -120), lease: 60)
        let sentinel = try #require(try store.insertStopSentinels(mode: .drain, supervisorIDs: [rebootedSupervisor], now: f.now).first)
        let skipped = try f.worker(supervisor: s, pid: impossiblePid, startTicks: 0)
        let t5 = try f.running(owner: skipped, supervisor: s)

        var log: [String] = []
        let before = Timestamp.now()
        let recovered = try Recovery.recoverDead(store: store, retry: RetryPolicy(base: 10, cap: 10), skip: [skipped]) { log.append($0) }
        #expect(recovered.map(\.id).sorted() == [deadWorker, remoteGone, rebootedSupervisor])

        let r1 = try #require(try store.task(t1.id))
        #expect(r1.state == .queued && r1.attempts == 1 && r1.owner == nil)
        #expect(r1.runAt >= before.adding(seconds: 5), "retried with backoff (10 s × [0.5, 1])")
        #expect(r1.lastError == "worker pid \(impossiblePid) on \(host) exited without cleaning up while running task \(t1.id), attempt 1/3")
        let r2 = try #require(try store.task(t2.id))
        #expect(r2.state == .failed && r2.attempts == 2 && r2.finishedAt != nil && r2.owner == nil)
        #expect(r2.lastError == "worker pid \(impossiblePid) on \(host) exited without cleaning up while running task \(t2.id), attempt 2/2")
        let r3 = try #require(try store.task(t3.id))
        #expect(r3.state == .running && r3.owner == remoteAlive)
        let r4 = try #require(try store.task(t4.id))
        #expect(r4.state == .queued && r4.attempts == 1)
        let e4 = r4.lastError ?? ""
        #expect(e4.hasPrefix("worker pid \(impossiblePid) on elsewhere.invalid stopped heartbeating (its lease expired "), "\(e4)")
        #expect(e4.hasSuffix(" while running task \(t4.id), attempt 1/3"), "\(e4)")
        #expect(try store.task(sentinel.id)?.state == .cancelled)
        #expect(try store.task(t5.id)?.owner == skipped)
        #expect(try store.processes().map(\.id) == [s, remoteAlive, skipped])

        #expect(log.count == 3, "\(log)")
        #expect(log.contains("recovered worker pid \(impossiblePid) (process \(deadWorker)), which exited without cleaning up; task \(t1.id) goes back for a retry; task \(t2.id) ends failed (no attempts left)"),
                "\(log)")
        #expect(log.contains { $0.hasPrefix("recovered supervisor pid \(impossiblePid) (process \(rebootedSupervisor)), which stopped heartbeating") }, "\(log)")
        // Done once: a second pass finds nothing.
        #expect(try Recovery.recoverDead(store: store, retry: RetryPolicy(), skip: [skipped]) { _ in }.isEmpty)
    }
}

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
