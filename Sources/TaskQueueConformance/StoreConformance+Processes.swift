#if canImport(Testing)
import Foundation
import Testing
import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

// Store conformance: processes, listing and stats.

extension StoreConformance {
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
}
#endif
