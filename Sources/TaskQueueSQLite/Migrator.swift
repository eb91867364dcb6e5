import TaskQueue

/// Brings a database to the schema this binary knows, every pending migration in
/// one BEGIN IMMEDIATE transaction (all or nothing; and a new database costs one
/// commit, not one per migration), and refuses a database written by a newer taskq.
enum Migrator {
    /// The numbered migrations, migrations/NNNN_name.sql, as SwiftPM embeds them in
    /// the binary (`.embedInCode` in Package.swift), listed in file-name order by the
    /// MigrationList build plugin: the files are the one source of truth, and a new
    /// or edited one is in the next build.
    static let files: [(name: String, bytes: [UInt8])] = migrationFiles

    /// `files` in order, as (version, file name, SQL); the version is the number the
    /// name starts with.
    static let migrations: [(version: Int, name: String, sql: String)] = files.map { f in
        (version: version(of: f.name), name: f.name, sql: String(decoding: f.bytes, as: UTF8.self))
    }

    /// The newest version, from the last file's name: opening a current database
    /// decodes no migration.
    static let latestVersion = files.last.map { version(of: $0.name) } ?? 0

    private static func version(of name: String) -> Int { Int(name.prefix { $0.isNumber }) ?? 0 }

    /// Looks without changing anything, in one read snapshot (another process may
    /// be migrating the same new file right now). True for an empty database
    /// (version 0, no tables). Throws for a database from a newer taskq, a SQLite
    /// file holding somebody else's tables, or a file that is not SQLite.
    static func isUninitialized(_ db: SQLiteConnection) throws -> Bool {
        try db.readTransaction {
            let version = Int(try db.scalarInt("PRAGMA user_version") ?? 0)
            try checkNotNewer(version, db: db)
            if version != 0 { return false }
            try checkIsTaskqOrEmpty(db)
            return true
        }
    }

    /// For a read-only connection, which may not migrate: throws unless the
    /// schema is this taskq's.
    static func checkCurrent(_ db: SQLiteConnection) throws {
        let current = Int(try db.scalarInt("PRAGMA user_version") ?? 0)
        if current == latestVersion { return }
        try checkNotNewer(current, db: db)
        throw TaskQueueError.unavailable(
            "\(db.path) has taskq schema version \(current), older than this taskq's (\(latestVersion)); a read-only open does not upgrade it: run 'taskq status --db \(db.path)' once to upgrade")
    }

    static func migrate(_ db: SQLiteConnection, now: Timestamp) throws {
        // Fast path: one pragma read when the database is current.
        let current = Int(try db.scalarInt("PRAGMA user_version") ?? 0)
        if current == latestVersion { return }
        try checkNotNewer(current, db: db)
        try db.writeTransaction {
            // Re-read under the write lock: another process may have migrated
            // while we waited for it.
            let v = Int(try db.scalarInt("PRAGMA user_version") ?? 0)
            try checkNotNewer(v, db: db)
            if v == 0 { try checkIsTaskqOrEmpty(db) }
            let own = try ownIndexesAndTriggers(db)
            // A migration that rebuilds a table copies its rows as they are: a CHECK it
            // adds is for rows written from then on, and an older row that fails it
            // (put in by hand) must not leave the database unopenable.
            let checks = try db.scalarInt("PRAGMA ignore_check_constraints") == 0
            if checks { try db.exec("PRAGMA ignore_check_constraints=ON") }
            defer { if checks { try? db.exec("PRAGMA ignore_check_constraints=OFF") } }
            for m in migrations where m.version > v {
                try db.exec(m.sql)
                try db.prepare("INSERT INTO taskq_migrations(version, name, applied_at) VALUES (?, ?, ?)")
                    .bind(.int(Int64(m.version)), .text(m.name), .ts(now)).run()
            }
            // A migration that rebuilds a table drops its indexes and triggers with it:
            // those somebody added by hand are created again, as they were.
            for o in own where try db.prepare("SELECT 1 FROM sqlite_master WHERE name = ?").bind(.text(o.name)).firstRow({ _ in true }) == nil {
                try db.exec(o.sql)
            }
            if v < latestVersion { try db.exec("PRAGMA user_version=\(latestVersion)") }
        }
    }

    /// Indexes and triggers whose names no migration mentions: added by hand.
    private static func ownIndexesAndTriggers(_ db: SQLiteConnection) throws -> [(name: String, sql: String)] {
        let ours = Set(migrations.flatMap { m in
            m.sql.split { !($0.isLetter || $0.isNumber || $0 == "_") }.map { $0.lowercased() }
        })
        return try db.prepare("SELECT name, sql FROM sqlite_master WHERE (type = 'index' OR type = 'trigger') AND sql IS NOT NULL")
            .rows { (name: $0.string(0), sql: $0.string(1)) }
            .filter { !ours.contains($0.name.lowercased()) }
    }

    private static func checkNotNewer(_ version: Int, db: SQLiteConnection) throws {
        if version > latestVersion {
            throw TaskQueueError.unavailable(
                "database \(db.path) has schema version \(version), newer than this taskq knows (\(latestVersion)); use a newer taskq")
        }
    }

    /// A version-0 database must be empty: never add our tables to somebody
    /// else's SQLite file.
    private static func checkIsTaskqOrEmpty(_ db: SQLiteConnection) throws {
        let n = try db.scalarInt("SELECT count(*) FROM sqlite_master") ?? 0
        if n > 0 {
            throw TaskQueueError.badData("\(db.path) is a SQLite database but not a taskq database (it has tables and no taskq schema version)")
        }
    }
}
