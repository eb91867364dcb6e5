// Which SQLite the build runs on (the system's by default, the bundled one with the
// BundledSQLite trait), what taskq needs from it either way, and SQLite's errors as
// the store reports them: result codes and statement apart from the message.

import Foundation
import Testing
@testable import TaskQueue
@testable import TaskQueueSQLite
import TaskQueueTestSupport
import CSQLite
import CSQLiteTuning
#if canImport(Glibc)
import Glibc
#endif

@Suite struct SQLiteLibraryTests {
    /// The library linked is the one the headers describe: the system's shared
    /// libsqlite3 by default; with the trait, SQLite 3.54.1 compiled in and no
    /// libsqlite3 mapped at all.
    @Test func theBuildRunsOnTheSQLiteItWasConfiguredFor() throws {
        let version = String(cString: sqlite3_libversion())
        #expect(version == SQLITE_VERSION)
        // Read to the end: /proc files report size 0, and a one-read loader stops early.
        let maps = String(decoding: readAll("/proc/self/maps"), as: UTF8.self)
        #if BundledSQLite
        #expect(version == "3.54.1")
        #expect(!maps.contains("libsqlite3"), "libsqlite3 is mapped in a BundledSQLite build")
        #else
        #expect(maps.contains("libsqlite3.so"), "the default build does not run on the system's libsqlite3")
        #endif
    }

    /// What a NOOP checkpoint would report, read from the WAL-index for a SQLite
    /// without them (checkpointer.c): checked against PRAGMA wal_checkpoint, with a
    /// reader holding a snapshot so that only part of the WAL can be copied.
    @Test func walBackfillIsReadFromTheWALIndex() throws {
        let db = TempDB("taskq-sqlite-wal")
        defer { db.close() }
        let writer = try db.store()
        let reader = try db.store()
        let checkpointer = try db.store()
        for i in 0..<20 { _ = try writer.insertTasks([NewTask(kind: "t", payload: "{\"i\":\(i)}")], now: .now()) }
        try reader.db.exec("BEGIN")
        defer { try? reader.db.exec("ROLLBACK") }
        #expect(try reader.db.scalarInt("SELECT count(*) FROM tasks") == 20)
        for i in 0..<20 { _ = try writer.insertTasks([NewTask(kind: "t", payload: "{\"i\":\(i)}")], now: .now()) }
        let r = try checkpointer.db.prepare("PRAGMA wal_checkpoint(PASSIVE)").firstRow { [$0.int(0), $0.int(1), $0.int(2)] }
        let (log, copied) = (r?[1] ?? -1, r?[2] ?? -1)
        #expect(copied > 0 && copied < log, "log \(log), copied \(copied)")
        #expect(Int64(taskq_wal_backfilled(writer.db.handle, "main")) == copied)
        #expect(Int64(taskq_wal_backfilled(checkpointer.db.handle, "main")) == copied)
    }

    /// A UNIQUE index refusing a row: the codes and the statement are kept apart
    /// from the message, and no bound value appears anywhere.
    @Test func aConstraintErrorCarriesCodesAndStatementButNoValues() throws {
        let db = TempDB("taskq-sqlite-error")
        defer { db.close() }
        let store = try db.store()
        try store.db.exec("CREATE TABLE t (k TEXT UNIQUE)")
        let insert = try store.db.prepare("INSERT INTO t (k) VALUES (?)")
        try insert.bind(.text("private-value")).run()
        let e = taskQueueError { try insert.bind(.text("private-value")).run() }
        let s = e?.sqliteError
        #expect(s?.code == SQLITE_CONSTRAINT)
        #expect(s?.extendedCode == SQLiteError.constraintUnique)
        #expect(s?.message == "UNIQUE constraint failed: t.k")
        #expect(s?.sql == "INSERT INTO t (k) VALUES (?)")
        #expect(s?.isTransient == false && e?.isTransient == false)
        #expect(e?.code == .failed)
        #expect(e?.message == "the database refused the change: UNIQUE constraint failed: t.k")
        #expect(!"\(String(describing: s)) \(String(describing: e))".contains("private-value"))
    }

    /// Another connection holding the write lock past the busy timeout: transient.
    @Test func aLockHeldPastTheBusyTimeoutIsTransient() throws {
        let db = TempDB("taskq-sqlite-busy")
        defer { db.close() }
        let store = try db.store(busyTimeout: 0.05)
        let holder = try db.store()
        try holder.db.exec("BEGIN IMMEDIATE")
        defer { try? holder.db.exec("ROLLBACK") }
        let e = taskQueueError { _ = try store.insertTasks([NewTask(kind: "t")], now: .now()) }
        #expect(e?.code == .busy)
        #expect(e?.sqliteError?.code == SQLITE_BUSY)
        #expect(e?.sqliteError?.sql == "BEGIN IMMEDIATE")
        #expect(e?.isTransient == true)
    }

    /// A file that is not a database: permanent.
    @Test func aFileThatIsNotADatabaseIsPermanent() throws {
        let db = TempDB("taskq-sqlite-notadb")
        defer { db.close() }
        try Data(repeating: 0x41, count: 8192).write(to: URL(fileURLWithPath: db.path))
        let c = try SQLiteConnection(path: db.path, create: false, busyTimeoutMs: 100)
        let e = taskQueueError { _ = try c.scalarInt("SELECT count(*) FROM sqlite_schema") }
        #expect(e?.sqliteError?.code == SQLITE_NOTADB)
        #expect(e?.code == .badData)
        #expect(e?.isTransient == false)
    }

    @Test func transientAndPermanentResultCodes() {
        let ioerrFsync: Int32 = SQLITE_IOERR | (4 << 8)
        for code in [SQLITE_BUSY, SQLITE_LOCKED, SQLITE_FULL, SQLITE_IOERR, ioerrFsync, SQLITE_NOMEM, SQLITE_PROTOCOL] {
            #expect(SQLiteError(extendedCode: code, message: "").isTransient, "code \(code)")
        }
        for code in [SQLITE_ERROR, SQLITE_MISUSE, SQLITE_CORRUPT, SQLITE_NOTADB, SQLITE_CONSTRAINT,
                     SQLiteError.constraintUnique, SQLITE_READONLY, SQLITE_CANTOPEN, SQLITE_PERM] {
            #expect(!SQLiteError(extendedCode: code, message: "").isTransient, "code \(code)")
        }
        // A full disk met while opening a file is a full disk all the same.
        #expect(SQLiteError(extendedCode: SQLITE_CANTOPEN, message: "", systemErrno: ENOSPC).isTransient)
        #expect(TaskQueueError.usage("bad").isTransient == false)
        #expect(TaskQueueError.busy("locked").isTransient == true)
    }
}
