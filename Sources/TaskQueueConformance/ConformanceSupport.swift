// Built only with the tests: Swift Testing is there for test builds alone, and a
// plain `swift build` leaves this module empty.
#if canImport(Testing)
import Foundation
import Testing
import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

// What every store conformance case builds on: the factory a backend passes, a row
// factory that builds rows in any state through the seam alone, processes that are
// certainly dead, and threads released together.

/// Opens a new connection to one database (the same database at every call).
/// The conformance suite takes one of these, so every backend can run it.
package typealias StoreFactory = () throws -> any TaskStore

/// One named conformance check.
package struct ConformanceCase: Sendable, CustomTestStringConvertible {
    package let name: String
    package let run: @Sendable (@escaping StoreFactory) throws -> Void
    package init(_ name: String, _ run: @escaping @Sendable (@escaping StoreFactory) throws -> Void) {
        self.name = name
        self.run = run
    }
    package var testDescription: String { name }
}

/// Lets a non-Sendable value (a factory, a store made for one thread) cross into a thread.
package struct Unchecked<T>: @unchecked Sendable { let value: T }

// MARK: - the row factory (backend-neutral)

/// Builds rows in any state through the `TaskStore` verbs alone, so the aftermath of
/// a crash (a `running` row owned by a dead pid, an expired lease, another boot) is
/// set up without crashing anything, on any backend.
package final class RowFactory {
    package let store: any TaskStore
    /// The time rows are written at, unless a call says otherwise.
    package let now: Timestamp
    private var serial = 0

    package init(_ store: any TaskStore, now: Timestamp = .now()) {
        self.store = store
        self.now = now
    }

    /// A kind no other row of this factory has: claiming it claims exactly one row.
    package func uniqueKind(_ prefix: String = "k") -> String {
        serial += 1
        return "\(prefix)\(serial)"
    }

    /// Inserts one queued task; returns its id.
    @discardableResult
    package func queued(kind: String = "t", payload: String = "null", queue: String = "default", priority: Int64 = 0,
                runAt: Timestamp? = nil, maxAttempts: Int64 = 3, timeout: Double? = nil) throws -> Int64 {
        let options = EnqueueOptions(queue: queue, priority: priority, runAt: runAt, maxAttempts: maxAttempts, timeout: timeout)
        return try store.insertTasks([NewTask(kind: kind, payload: payload, options: options)], now: now)[0]
    }

    /// Registers a supervisor. Defaults describe a live process: this test process,
    /// on this host and boot, with a lease well in the future.
    package func supervisor(pid: Int32 = getpid(), host: String = System.hostName, bootID: String = System.bootID,
                    startTicks: Int64? = nil, registeredAt: Timestamp? = nil, lease: Double = 60) throws -> Int64 {
        try store.registerProcess(role: .supervisor, supervisorID: nil, pid: pid, host: host, bootID: bootID,
                                  startTicks: startTicks ?? System.startTicks(of: pid) ?? 0, queues: nil, kinds: [],
                                  now: registeredAt ?? now, lease: lease)
    }

    /// Registers a worker of `supervisor` (defaults as for `supervisor`).
    package func worker(supervisor: Int64, pid: Int32 = getpid(), host: String = System.hostName, bootID: String = System.bootID,
                startTicks: Int64? = nil, kinds: [String] = ["t"], queues: [String]? = nil,
                registeredAt: Timestamp? = nil, lease: Double = 60) throws -> Int64 {
        try store.registerProcess(role: .worker, supervisorID: supervisor, pid: pid, host: host, bootID: bootID,
                                  startTicks: startTicks ?? System.startTicks(of: pid) ?? 0, queues: queues, kinds: kinds,
                                  now: registeredAt ?? now, lease: lease)
    }

    /// A claim request for `owner` of `supervisor`.
    package func claim(_ owner: Int64, supervisor: Int64, kinds: [String] = ["t"], queues: [String]? = nil,
               limit: Int = 100) -> ClaimRequest {
        ClaimRequest(owner: owner, supervisorID: supervisor, kinds: kinds, queues: queues, limit: limit)
    }

    /// Claims for `owner` and returns what it got.
    package func claimed(_ owner: Int64, supervisor: Int64, kinds: [String] = ["t"], queues: [String]? = nil,
                 limit: Int = 100, at time: Timestamp? = nil) throws -> [ClaimedTask] {
        try store.finishAndClaim([], claim: claim(owner, supervisor: supervisor, kinds: kinds, queues: queues, limit: limit),
                                 now: time ?? now).claimed
    }

    /// Applies one outcome (no claim); returns whether the fence accepted it.
    @discardableResult
    package func finish(_ t: ClaimedTask, owner: Int64, _ result: TaskOutcome.Result, at time: Timestamp? = nil) throws -> Bool {
        try store.finishAndClaim([TaskOutcome(taskID: t.id, owner: owner, attempt: t.attempt, result: result)],
                                 claim: nil, now: time ?? now).accepted[0]
    }

    /// A task `running` under `owner`, in attempt `attempt` of `maxAttempts`: earlier
    /// attempts are claimed and failed with an immediate retry, so they count.
    package func running(owner: Int64, supervisor: Int64, attempt: Int64 = 1, maxAttempts: Int64 = 3,
                 payload: String = "null", queue: String = "default") throws -> ClaimedTask {
        precondition(attempt >= 1 && attempt <= maxAttempts)
        let kind = uniqueKind("run")
        let id = try queued(kind: kind, payload: payload, queue: queue, maxAttempts: maxAttempts)
        for _ in 1..<attempt {
            let earlier = try claimed(owner, supervisor: supervisor, kinds: [kind])
            precondition(earlier.map(\.id) == [id])
            let ok = try finish(earlier[0], owner: owner, .failed(error: "earlier attempt failed", retryAt: now))
            precondition(ok)
        }
        let got = try claimed(owner, supervisor: supervisor, kinds: [kind])
        precondition(got.count == 1 && got[0].id == id && got[0].attempt == attempt, "factory claim failed: \(got)")
        return got[0]
    }

    /// A task that ended `succeeded` with `output`, run by `owner`.
    @discardableResult
    package func succeeded(_ output: [UInt8], owner: Int64, supervisor: Int64) throws -> Int64 {
        let t = try running(owner: owner, supervisor: supervisor)
        let ok = try finish(t, owner: owner, .succeeded(output))
        precondition(ok)
        return t.id
    }

    /// A task that ended `failed` after one attempt.
    @discardableResult
    package func failed(_ error: String = "it broke", owner: Int64, supervisor: Int64) throws -> Int64 {
        let t = try running(owner: owner, supervisor: supervisor, maxAttempts: 1)
        let ok = try finish(t, owner: owner, .failed(error: error, retryAt: nil))
        precondition(ok)
        return t.id
    }
}

// MARK: - processes that are certainly dead

/// A pid that was this test's child and has been reaped, with the start time it had
/// while alive: the aftermath of a worker that died. (On Linux pids are handed out
/// in increasing order, so it is not reused while the test runs; and even if it
/// were, the recorded start ticks would tell the new process apart.)
package func reapedChild() -> (pid: Int32, startTicks: Int64) {
    let c = Child("/bin/sleep", ["30"])
    var ticks: Int64?
    eventually(timeout: 10) { ticks = System.startTicks(of: c.pid); return ticks != nil }
    c.kill9()
    return (c.pid, ticks ?? 1)
}

/// A pid above Linux's largest pid_max (2^22): no process can ever have it. Used
/// where the code under test may kill the session of a dead pid, so a reused pid can
/// never point at somebody else's process.
package let impossiblePid: Int32 = 4_194_000

/// A boot id that is not this machine's.
package let otherBootID = "00000000-0000-4000-8000-000000000000"

// MARK: - threads

/// Runs `body(i)` for i in 0..<n, each on its own OS thread, released together from
/// a gate so they really overlap, and waits (at most `timeout` seconds) for all.
/// Returns false if some did not finish in time.
@discardableResult
package func onThreads(_ n: Int, timeout: Double = 60, _ body: @escaping @Sendable (Int) -> Void) -> Bool {
    let gate = DispatchSemaphore(value: 0)
    let ready = DispatchSemaphore(value: 0)
    let done = DispatchGroup()
    for i in 0..<n {
        done.enter()
        let t = Thread {
            ready.signal()
            gate.wait()
            body(i)
            done.leave()
        }
        t.start()
    }
    for _ in 0..<n { ready.wait() }
    for _ in 0..<n { gate.signal() }
    return done.wait(timeout: .now() + timeout) == .success
}

/// A value shared between threads behind a lock.
package final class Locked<Value>: @unchecked Sendable {
    private var value: Value
    private let lock = NSLock()
    package init(_ value: Value) { self.value = value }
    package func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
    package var current: Value { withLock { $0 } }
}
#endif
