// The schema's migrations: every file of migrations/ is embedded in the binary,
// a new database is brought to the latest version once, and a file that is not
// ours (or is from a newer taskq) is refused without being touched.

import Foundation
import Testing
@testable import TaskQueue
@testable import TaskQueueSQLite
import TaskQueueTestSupport
import TaskQueueConformance
#if canImport(Glibc)
import Glibc
#endif

@Suite struct MigrationTests {
    /// The package root: this file is <root>/Tests/TaskQueueTests/MigrationTests.swift.
    static let packageRoot: String = {
        var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/")
    }()

    // MARK: the embedded copy

    @Test func everyMigrationFileIsEmbeddedAndListedInOrder() throws {
        let dir = Self.packageRoot + "/migrations"
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".sql") }.sorted()
        try #require(!files.isEmpty, "no migrations found in \(dir)")
        // The target embeds them through its link to the top-level folder.
        let link = Self.packageRoot + "/Sources/TaskQueueSQLite/migrations"
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: link)) == "../../migrations")
        #expect(Migrator.files.map(\.name) == files,
                "the binary's migrations are not migrations/*.sql in order (the MigrationList plugin lists them)")
        for (i, name) in files.enumerated() {
            // Numbered 0001_name.sql, 0002_…, with no gap.
            let digits = name.prefix(4)
            #expect(digits.allSatisfy(\.isASCII) && digits.allSatisfy(\.isNumber) && name.dropFirst(4).hasPrefix("_"),
                    "\(name) is not named NNNN_name.sql")
            #expect(Int(digits) == i + 1, "\(name): migrations must be numbered 1, 2, 3, … without gaps")
            guard i < Migrator.migrations.count else { continue }
            let m = Migrator.migrations[i]
            #expect(m.version == i + 1 && m.name == name)
            #expect(m.sql == String(decoding: readAll(dir + "/" + name), as: UTF8.self),
                    "\(name) differs from the copy in the binary")
        }
        #expect(Migrator.latestVersion == files.count)
    }

    // MARK: a new database

    @Test func freshDatabaseEndsAtTheLatestVersionAndReopeningChangesNothing() throws {
        let db = TempDB()
        defer { db.close() }
        do { _ = try db.store() }   // opened, migrated, closed
        #expect(sqliteInt(db.path, "PRAGMA user_version") == Migrator.latestVersion)
        #expect(Migrator.latestVersion == Migrator.migrations.last?.version)
        let rows = sqlite(db.path, "SELECT version || ' ' || name FROM taskq_migrations ORDER BY version")
        #expect(rows == Migrator.migrations.map { "\($0.version) \($0.name)" }.joined(separator: "\n"))
        for applied in sqlite(db.path, "SELECT applied_at FROM taskq_migrations").split(separator: "\n") {
            #expect(Timestamp(iso: String(applied)) != nil, "applied_at \(applied) is not an ISO time")
        }
        #expect(sqlite(db.path, "SELECT group_concat(name, ' ') FROM (SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name)")
                    == "kinds processes queues schedule_runs schedules task_attempts task_dependencies task_groups task_id_high_water taskq_migrations tasks")
        #expect(sqlite(db.path, "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name = 'tasks_state_machine'") == "1")
        #expect(sqlite(db.path, "PRAGMA journal_mode") == "wal")

        let migrations = sqlite(db.path, "SELECT * FROM taskq_migrations ORDER BY version")
        let before = try #require(FileFingerprint(db.path))
        usleep(20_000)   // so a rewrite would show in the modification time
        do {
            _ = try db.store()
            _ = try SQLiteTaskStore(path: db.path, create: false)
        }
        #expect(sqlite(db.path, "SELECT * FROM taskq_migrations ORDER BY version") == migrations)
        #expect(sqliteInt(db.path, "PRAGMA user_version") == Migrator.latestVersion)
        #expect(FileFingerprint(db.path) == before, "reopening a current database rewrote it")
    }

    @Test func createdFilesAreReadableByTheOwnerOnly() throws {
        let db = TempDB()
        defer { db.close() }
        let store = try db.store()
        _ = try store.insertTasks([NewTask(kind: "t")], now: .now())
        for path in [db.path, db.path + "-wal", db.path + "-shm"] {
            let fp = try #require(FileFingerprint(path), "\(path) missing while the store is open")
            #expect(fp.mode & 0o777 == 0o600, "\(path) has mode \(String(fp.mode & 0o777, radix: 8))")
        }
    }

    /// Errors from opening a brand-new database at the same moment as others that are
    /// known bugs (see `concurrentFirstOpensMigrateOnce`); anything else is a new failure.
    static func isKnownFirstOpenRace(_ message: String) -> Bool {
        message.contains("(PRAGMA journal_mode=WAL)") || message.contains("is a SQLite database but not a taskq database")
    }

    static let firstOpenRace: Comment = """
        Known bugs, seen in 2-5% of rounds of 4 threads opening a new file: (1) PRAGMA journal_mode=WAL \
        (SQLiteConnection) needs an exclusive lock on a new file and SQLite returns SQLITE_BUSY at once, without \
        calling the busy handler, reported as "locked ... longer than the busy timeout"; (2) Migrator reads \
        user_version (0) and then sqlite_master as two statements outside one transaction (isUninitialized, and \
        again at the top of migrate): when another opener commits the schema in between, the new database is \
        refused as "not a taskq database"
        """

    @Test func concurrentFirstOpensMigrateOnce() throws {
        // Threads of one process, released together at a brand-new path; many rounds,
        // since the interesting interleavings are a matter of luck (~1 ms a round).
        var known: [String] = []
        for round in 0..<60 {
            let db = TempDB()
            defer { db.close() }
            let errors = Locked<[String]>([])
            let path = db.path
            let finished = onThreads(4) { _ in
                do { _ = try SQLiteTaskStore(path: path, create: true) } catch { errors.withLock { $0.append("\(error)") } }
            }
            #expect(finished)
            let unknown = errors.current.filter { !Self.isKnownFirstOpenRace($0) }
            #expect(unknown.isEmpty, "round \(round): \(unknown)")
            known += errors.current.filter(Self.isKnownFirstOpenRace).map { "round \(round): \($0)" }
            #expect(sqliteInt(path, "SELECT count(*) FROM taskq_migrations") == Migrator.migrations.count, "round \(round)")
            #expect(sqliteInt(path, "PRAGMA user_version") == Migrator.latestVersion, "round \(round)")
        }
        #expect(known.isEmpty, "\(known.count) of 240 first opens failed: \(known.prefix(3))")
    }

    @Test func concurrentFirstProcessesMigrateOnce() throws {
        // Processes: the taskq binary built beside this test bundle, several at once.
        guard fileExists(Harness.taskq) else {
            Issue.record("no taskq binary at \(Harness.taskq)")
            return
        }
        var known: [String] = []
        for round in 0..<4 {
            let db = TempDB()
            defer { db.close() }
            let children = (0..<4).map { i in
                Child(Harness.taskq, ["enqueue", "--db", db.path, "t", "\(i)"], captureOutput: true)
            }
            let results = children.map { $0.finish(timeout: 60) }
            for r in results where r.status != 0 {
                if Self.isKnownFirstOpenRace(r.stderr) { known.append("round \(round): \(r.stderr)") }
                else { Issue.record("round \(round): \(r)") }
            }
            #expect(sqliteInt(db.path, "SELECT count(*) FROM taskq_migrations") == Migrator.migrations.count)
            #expect(sqliteInt(db.path, "SELECT count(*) FROM tasks") == results.filter { $0.status == 0 }.count)
        }
        #expect(known.isEmpty, "\(known)")
    }

    @Test func upgradeFromVersion3KeepsSchedulesAndTasks() throws {
        // A database left by a taskq with schema 3: migration 4 rebuilds the
        // schedules table (max_attempts becomes nullable) and must keep its rows
        // and a view of one's own that reads it.
        let db = TempDB()
        defer { db.close() }
        let upTo3 = Migrator.migrations.filter { $0.version <= 3 }.map(\.sql).joined(separator: "\n")
        _ = sqlite(db.path, "PRAGMA journal_mode = WAL;\n" + upTo3 + """
            PRAGMA user_version = 3;
            INSERT INTO tasks (kind, run_at, created_at, max_attempts) VALUES ('old', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z', 7);
            INSERT INTO schedules (name, cron, kind, max_attempts, timeout_s, created_at, next_at, last_task_id)
                VALUES ('nightly', '0 3 * * *', 'report', 5, 60, '2026-01-01T00:00:00.000Z', '2026-01-02T03:00:00.000Z', 1);
            CREATE VIEW my_schedules AS SELECT name FROM schedules;
            """)
        #expect(sqliteInt(db.path, "PRAGMA user_version") == 3)
        let store = try db.store()
        #expect(sqliteInt(db.path, "PRAGMA user_version") == Migrator.latestVersion)
        let s = try #require(try store.schedules().first)
        #expect(s.name == "nightly" && s.kind == "report" && s.options.maxAttempts == 5 && s.options.timeout == 60
                && s.nextAt.iso == "2026-01-02T03:00:00.000Z" && s.lastTaskID == 1)
        let t = try #require(try store.task(1))
        #expect(t.kind == "old" && t.maxAttempts == 7 && t.backoffBase == nil && t.backoffCap == nil)
        // A view of one's own on the rebuilt table is kept, and reads the new one.
        #expect(sqlite(db.path, "SELECT name FROM my_schedules") == "nightly")
        #expect(sqlite(db.path, "PRAGMA integrity_check") == "ok")
    }

    // MARK: files that are not ours, or not ours to change

    @Test func newerDatabaseIsRefusedAndLeftAlone() throws {
        let db = TempDB()
        defer { db.close() }
        do { _ = try db.store() }
        let newer = Migrator.latestVersion + 1
        _ = sqlite(db.path, "PRAGMA user_version = \(newer)")
        let before = try #require(FileFingerprint(db.path))
        usleep(20_000)
        for create in [true, false] {
            let e = taskQueueError { _ = try SQLiteTaskStore(path: db.path, create: create) }
            #expect(e?.code == .unavailable, "\(String(describing: e))")
            #expect(e?.exitCode == 69)
            let message = e?.message ?? ""
            #expect(message.contains("newer") && message.contains("\(newer)") && message.contains(db.path), "\(message)")
        }
        #expect(FileFingerprint(db.path) == before, "a database from a newer taskq was changed")
        #expect(sqliteInt(db.path, "PRAGMA user_version") == newer)
        #expect(sqliteInt(db.path, "SELECT count(*) FROM taskq_migrations") == Migrator.migrations.count)
    }

    @Test func newerDatabaseInRollbackModeIsLeftAlone() throws {
        // The same, for a copy somebody switched out of WAL (say, to ship it as one file).
        let db = TempDB()
        defer { db.close() }
        do { _ = try db.store() }
        let newer = Migrator.latestVersion + 1
        _ = sqlite(db.path, "PRAGMA journal_mode = DELETE; PRAGMA user_version = \(newer);")
        let before = try #require(FileFingerprint(db.path))
        usleep(20_000)
        let e = taskQueueError { _ = try SQLiteTaskStore(path: db.path, create: true) }
        #expect(e?.code == .unavailable && e?.message.contains("newer") == true, "\(String(describing: e))")
        #expect(sqlite(db.path, "PRAGMA journal_mode") == "delete", "a newer taskq's database was switched to WAL")
        #expect(FileFingerprint(db.path) == before, "a newer taskq's database was changed")
    }

    @Test func foreignSQLiteDatabaseIsRefusedAndLeftAlone() throws {
        let db = TempDB()
        defer { db.close() }
        let path = db.dir + "/notes.db"
        // Somebody else's database, in SQLite's default (rollback journal) mode.
        _ = sqlite(path, "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes (body) VALUES ('keep me');")
        let before = try #require(FileFingerprint(path))
        usleep(20_000)
        for create in [true, false] {
            let e = taskQueueError { _ = try SQLiteTaskStore(path: path, create: create) }
            #expect(e?.code == .badData, "\(String(describing: e))")
            #expect(e?.message.contains("not a taskq database") == true, "\(String(describing: e))")
        }
        #expect(sqlite(path, "SELECT group_concat(name) FROM sqlite_master") == "notes")
        #expect(sqlite(path, "SELECT body FROM notes") == "keep me")
        #expect(sqlite(path, "PRAGMA journal_mode") == "delete", "the foreign database's journal mode was changed")
        #expect(FileFingerprint(path) == before, "a foreign SQLite database was changed")
        #expect(!fileExists(path + "-wal") && !fileExists(path + "-shm"))
    }

    @Test func nonSQLiteFileIsRefusedAsBadData() throws {
        let db = TempDB()
        defer { db.close() }
        let path = db.dir + "/notes.txt"
        writeFile(path, String(repeating: "these are my notes, not a database\n", count: 200))
        let before = try #require(FileFingerprint(path))
        usleep(20_000)
        for create in [true, false] {
            let e = taskQueueError { _ = try SQLiteTaskStore(path: path, create: create) }
            #expect(e?.code == .badData, "\(String(describing: e))")
            #expect(e?.exitCode == 65)
            #expect(e?.message.contains(path) == true, "\(String(describing: e))")
        }
        #expect(FileFingerprint(path) == before, "a text file was changed")
        #expect(!fileExists(path + "-wal") && !fileExists(path + "-shm"))
    }

    @Test func missingFileWithoutCreateIsNotFoundAndNothingIsCreated() throws {
        let db = TempDB()
        defer { db.close() }
        let e = taskQueueError { _ = try SQLiteTaskStore(path: db.path, create: false) }
        #expect(e?.code == .notFound, "\(String(describing: e))")
        #expect(e?.exitCode == 66)
        #expect(e?.message.contains(db.path) == true)
        for p in [db.path, db.path + "-wal", db.path + "-shm", db.path + "-journal"] {
            #expect(!fileExists(p), "\(p) was created")
        }
        // An empty file (say, from touch) is no database yet: without create it is
        // .notFound and stays empty; with create it becomes one.
        writeFile(db.path, "")
        let e3 = taskQueueError { _ = try SQLiteTaskStore(path: db.path, create: false) }
        #expect(e3?.code == .notFound, "\(String(describing: e3))")
        #expect(FileFingerprint(db.path)?.bytes.isEmpty == true)
        do { _ = try SQLiteTaskStore(path: db.path, create: true) }
        #expect(sqliteInt(db.path, "PRAGMA user_version") == Migrator.latestVersion)
        // With create, a missing directory is not created either.
        let deep = db.dir + "/no/such/dir/taskq.db"
        let e2 = taskQueueError { _ = try SQLiteTaskStore(path: deep, create: true) }
        #expect(e2?.code == .notFound, "\(String(describing: e2))")
        #expect(!fileExists(db.dir + "/no"))
    }

    @Test func directoryIsRefused() throws {
        let db = TempDB()
        defer { db.close() }
        for create in [true, false] {
            let e = taskQueueError { _ = try SQLiteTaskStore(path: db.dir, create: create) }
            #expect(e?.message.contains("directory") == true, "\(String(describing: e))")
            #expect(e.map { $0.exitCode != 0 } == true)
        }
        let entries = try FileManager.default.contentsOfDirectory(atPath: db.dir)
        #expect(entries.isEmpty, "files appeared in the directory: \(entries)")
    }
}
