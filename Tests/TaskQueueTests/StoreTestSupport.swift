// Helpers for the store conformance suite and the SQLite store tests: a temporary
// database, a row factory that builds rows in any state through the TaskStore seam
// (so it works for every backend), a few SQLite-only helpers that go around the
// seam with the sqlite3 shell, and a way to run code on real threads at once.

import Foundation
import Testing
@testable import TaskQueue
@testable import TaskQueueSQLite
import TaskQueueTestSupport
import TaskQueueConformance
#if canImport(Glibc)
import Glibc
#endif

/// Opens a new connection to one database (the same database at every call).
/// The conformance suite takes one of these, so every backend can run it.

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
