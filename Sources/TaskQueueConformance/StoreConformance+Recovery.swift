#if canImport(Testing)
import Foundation
import Testing
import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

// Store conformance: recovering dead processes.

extension StoreConformance {
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
        #expect(log.contains("recovered worker pid \(impossiblePid) on \(System.hostName) (process \(deadWorker)), which exited without cleaning up; task \(t1.id) goes back for a retry; task \(t2.id) ends failed (no attempts left)"),
                "\(log)")
        #expect(log.contains { $0.hasPrefix("recovered supervisor pid \(impossiblePid) on \(System.hostName) (process \(rebootedSupervisor)), which stopped heartbeating") },
                "\(log)")
        // Done once: a second pass finds nothing.
        #expect(try Recovery.recoverDead(store: store, retry: RetryPolicy(), skip: [skipped]) { _ in }.isEmpty)
    }
}
#endif
