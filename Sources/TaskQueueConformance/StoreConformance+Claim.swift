#if canImport(Testing)
import Foundation
import Testing
import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

// Store conformance: claiming, stop sentinels and the next run.

extension StoreConformance {
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
}
#endif
