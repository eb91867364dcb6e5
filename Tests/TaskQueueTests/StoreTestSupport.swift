// Helpers for the store conformance suite and the SQLite store tests: a temporary
// database, a row factory that builds rows in any state through the TaskStore seam
// (so it works for every backend), a few SQLite-only helpers that go around the
// seam with the sqlite3 shell, and a way to run code on real threads at once.

import Foundation
import Testing
@testable import TaskQueue
@testable import TaskQueueSQLite
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Opens a new connection to one database (the same database at every call).
/// The conformance suite takes one of these, so every backend can run it.
typealias StoreFactory = () throws -> any TaskStore

// MARK: - a temporary SQLite database

/// A fresh directory under /tmp holding `taskq.db` (not created until opened).
/// Removed by `close()`.
final class TempDB: @unchecked Sendable {
    let dir: String
    var path: String { dir + "/taskq.db" }

    init(_ name: String = "taskq-store") { dir = Harness.tempDir(name) }

    /// A new connection (creating and migrating the database when needed).
    func store(busyTimeout: Double = 10) throws -> SQLiteTaskStore {
        try SQLiteTaskStore(path: path, create: true, busyTimeout: busyTimeout)
    }

    var factory: StoreFactory { { [path] in try SQLiteTaskStore(path: path, create: true) } }

    func close() { Harness.remove(dir) }
}

/// Runs `body` with the factory of a fresh SQLite database, then removes it.
func withSQLiteFactory(_ body: (TempDB, @escaping StoreFactory) throws -> Void) throws {
    let db = TempDB()
    defer { db.close() }
    try body(db, db.factory)
}

// MARK: - the row factory (backend-neutral)

/// Builds rows in any state through the `TaskStore` verbs alone, so the aftermath of
/// a crash (a `running` row owned by a dead pid, an expired lease, another boot) is
/// set up without crashing anything, on any backend.
final class RowFactory {
    let store: any TaskStore
    /// The time rows are written at, unless a call says otherwise.
    let now: Timestamp
    private var serial = 0

    init(_ store: any TaskStore, now: Timestamp = .now()) {
        self.store = store
        self.now = now
    }

    /// A kind no other row of this factory has: claiming it claims exactly one row.
    func uniqueKind(_ prefix: String = "k") -> String {
        serial += 1
        return "\(prefix)\(serial)"
    }

    /// Inserts one queued task; returns its id.
    @discardableResult
    func queued(kind: String = "t", payload: String = "null", queue: String = "default", priority: Int64 = 0,
                runAt: Timestamp? = nil, maxAttempts: Int64 = 3, timeout: Double? = nil) throws -> Int64 {
        let options = EnqueueOptions(queue: queue, priority: priority, runAt: runAt, maxAttempts: maxAttempts, timeout: timeout)
        return try store.insertTasks([NewTask(kind: kind, payload: payload, options: options)], now: now)[0]
    }

    /// Registers a supervisor. Defaults describe a live process: this test process,
    /// on this host and boot, with a lease well in the future.
    func supervisor(pid: Int32 = getpid(), host: String = System.hostName, bootID: String = System.bootID,
                    startTicks: Int64? = nil, registeredAt: Timestamp? = nil, lease: Double = 60) throws -> Int64 {
        try store.registerProcess(role: .supervisor, supervisorID: nil, pid: pid, host: host, bootID: bootID,
                                  startTicks: startTicks ?? System.startTicks(of: pid) ?? 0, queues: nil, kinds: [],
                                  now: registeredAt ?? now, lease: lease)
    }

    /// Registers a worker of `supervisor` (defaults as for `supervisor`).
    func worker(supervisor: Int64, pid: Int32 = getpid(), host: String = System.hostName, bootID: String = System.bootID,
                startTicks: Int64? = nil, kinds: [String] = ["t"], queues: [String]? = nil,
                registeredAt: Timestamp? = nil, lease: Double = 60) throws -> Int64 {
        try store.registerProcess(role: .worker, supervisorID: supervisor, pid: pid, host: host, bootID: bootID,
                                  startTicks: startTicks ?? System.startTicks(of: pid) ?? 0, queues: queues, kinds: kinds,
                                  now: registeredAt ?? now, lease: lease)
    }

    /// A claim request for `owner` of `supervisor`.
    func claim(_ owner: Int64, supervisor: Int64, kinds: [String] = ["t"], queues: [String]? = nil,
               limit: Int = 100) -> ClaimRequest {
        ClaimRequest(owner: owner, supervisorID: supervisor, kinds: kinds, queues: queues, limit: limit)
    }

    /// Claims for `owner` and returns what it got.
    func claimed(_ owner: Int64, supervisor: Int64, kinds: [String] = ["t"], queues: [String]? = nil,
                 limit: Int = 100, at time: Timestamp? = nil) throws -> [ClaimedTask] {
        try store.finishAndClaim([], claim: claim(owner, supervisor: supervisor, kinds: kinds, queues: queues, limit: limit),
                                 now: time ?? now).claimed
    }

    /// Applies one outcome (no claim); returns whether the fence accepted it.
    @discardableResult
    func finish(_ t: ClaimedTask, owner: Int64, _ result: TaskOutcome.Result, at time: Timestamp? = nil) throws -> Bool {
        try store.finishAndClaim([TaskOutcome(taskID: t.id, owner: owner, attempt: t.attempt, result: result)],
                                 claim: nil, now: time ?? now).accepted[0]
    }

    /// A task `running` under `owner`, in attempt `attempt` of `maxAttempts`: earlier
    /// attempts are claimed and failed with an immediate retry, so they count.
    func running(owner: Int64, supervisor: Int64, attempt: Int64 = 1, maxAttempts: Int64 = 3,
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
    func succeeded(_ output: [UInt8], owner: Int64, supervisor: Int64) throws -> Int64 {
        let t = try running(owner: owner, supervisor: supervisor)
        let ok = try finish(t, owner: owner, .succeeded(output))
        precondition(ok)
        return t.id
    }

    /// A task that ended `failed` after one attempt.
    @discardableResult
    func failed(_ error: String = "it broke", owner: Int64, supervisor: Int64) throws -> Int64 {
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
func reapedChild() -> (pid: Int32, startTicks: Int64) {
    let c = Child("/bin/sleep", ["30"])
    var ticks: Int64?
    eventually(timeout: 10) { ticks = System.startTicks(of: c.pid); return ticks != nil }
    c.kill9()
    return (c.pid, ticks ?? 1)
}

/// A pid above Linux's largest pid_max (2^22): no process can ever have it. Used
/// where the code under test may kill the session of a dead pid, so a reused pid can
/// never point at somebody else's process.
let impossiblePid: Int32 = 4_194_000

/// A boot id that is not this machine's.
let otherBootID = "00000000-0000-4000-8000-000000000000"

// MARK: - SQLite-only helpers (around the seam, with the sqlite3 shell)

/// Runs SQL with the sqlite3 shell as a user would, without asserting success.
func sqlite3Shell(_ db: String, _ sql: String) -> RunResult {
    run("/usr/bin/sqlite3", ["-batch", "-bail", "-cmd", ".timeout 10000", db, sql])
}

/// Every column of one task row, quoted, for before/after comparisons.
func rowSnapshot(_ db: String, _ id: Int64) -> String {
    sqlite(db, """
        SELECT quote(id), quote(kind), quote(queue), quote(state), quote(priority), quote(payload), quote(run_at),
               quote(attempts), quote(max_attempts), quote(timeout_s), quote(owner), quote(created_at),
               quote(started_at), quote(finished_at), quote(result), quote(last_error)
        FROM tasks WHERE id = \(id)
        """)
}

/// Inserts a task row straight into SQLite with `columns` (SQL expressions) over
/// defaults for a queued task: rows in states the seam cannot make (`cancelled`).
@discardableResult
func sqliteInsertRow(_ db: String, _ columns: [String: String] = [:]) -> Int64 {
    var values: [String: String] = ["kind": "'t'", "run_at": "'2020-01-01T00:00:00.000Z'",
                                    "created_at": "'2020-01-01T00:00:00.000Z'"]
    for (k, v) in columns { values[k] = v }
    let names = values.keys.sorted()
    let out = sqlite(db, "INSERT INTO tasks (\(names.joined(separator: ", "))) VALUES (\(names.map { values[$0]! }.joined(separator: ", "))) RETURNING id")
    return Int64(out)!
}

/// The bytes, size, mode and modification time of a file (nil when missing).
struct FileFingerprint: Equatable, CustomStringConvertible {
    var bytes: [UInt8]
    var mode: UInt32
    var mtimeNanos: Int64

    init?(_ path: String) {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        bytes = readAll(path)
        mode = UInt32(st.st_mode)
        mtimeNanos = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
    }

    var description: String { "\(bytes.count) bytes, mode \(String(mode, radix: 8)), mtime \(mtimeNanos)" }
}

func fileExists(_ path: String) -> Bool {
    var st = stat()
    return stat(path, &st) == 0
}

/// The `TaskQueueError` `body` throws, or nil (recording an issue) when it throws
/// something else or nothing.
func taskQueueError(sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) -> TaskQueueError? {
    do {
        try body()
        Issue.record("expected a TaskQueueError, nothing was thrown", sourceLocation: sourceLocation)
        return nil
    } catch let e as TaskQueueError {
        return e
    } catch {
        Issue.record("expected a TaskQueueError, got \(type(of: error)): \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

// MARK: - threads

/// Runs `body(i)` for i in 0..<n, each on its own OS thread, released together from
/// a gate so they really overlap, and waits (at most `timeout` seconds) for all.
/// Returns false if some did not finish in time.
@discardableResult
func onThreads(_ n: Int, timeout: Double = 60, _ body: @escaping @Sendable (Int) -> Void) -> Bool {
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
final class Locked<Value>: @unchecked Sendable {
    private var value: Value
    private let lock = NSLock()
    init(_ value: Value) { self.value = value }
    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
    var current: Value { withLock { $0 } }
}
