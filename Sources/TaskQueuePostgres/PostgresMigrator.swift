import TaskQueue

/// Brings a PostgreSQL schema (the connection's `current_schema()`) to the version
/// this binary knows. Each migration runs in its own transaction under an advisory
/// lock, so processes starting together migrate once and never see half a schema;
/// a schema written by a newer taskq is refused untouched.
enum PostgresMigrator {
    static var latestVersion: Int { embeddedPostgresMigrations.last?.version ?? 0 }

    /// The advisory lock migrations take (any 64-bit number taskq alone uses).
    static let lockKey: Int64 = 0x7461_736B_715F_6D67   // "taskq_mg"

    /// The schema's version: 0 when it has no taskq tables. Throws when it holds
    /// other tables but no taskq schema version (somebody else's schema), or a
    /// version newer than this binary knows.
    static func version(_ db: PostgresConnection) throws -> Int {
        let r = try db.exec("""
            SELECT to_regclass('taskq_migrations') IS NOT NULL,
                   (SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()),
                   current_schema()
            """)
        guard r.count == 1, !r.isNull(0, 2) else { throw try noSchema(db) }
        if !r.bool(0, 0) {
            if r.int(0, 1) > 0 {
                throw TaskQueueError.badData("schema \(r.string(0, 2)) of \(db.location) has tables but is not a taskq schema (no taskq_migrations)")
            }
            return 0
        }
        let v = Int(try db.exec("SELECT coalesce(max(version), 0) FROM taskq_migrations").int(0, 0))
        if v > latestVersion {
            throw TaskQueueError.unavailable(
                "\(db.location) has taskq schema version \(v), newer than this taskq knows (\(latestVersion)); use a newer taskq")
        }
        return v
    }

    /// Why the connection has no current schema: the schemas its `search_path` names
    /// do not exist (`.notFound`, as a missing directory is for a SQLite file), or
    /// the role lacks USAGE on them (`.unavailable`, as a read-only file is).
    static func noSchema(_ db: PostgresConnection) throws -> TaskQueueError {
        let r = try db.exec(#"""
            SELECT current_user::text, current_setting('search_path'),
                   (SELECT string_agg(n.nspname, ', ')
                    FROM unnest(regexp_split_to_array(current_setting('search_path'), '\s*,\s*')) AS p(name)
                    JOIN pg_namespace n ON n.nspname = replace(btrim(p.name, '" '), '$user', current_user)
                    WHERE NOT has_schema_privilege(n.oid, 'USAGE'))
            """#)
        if let refused = r.text(0, 2) {
            return .unavailable("permission denied on \(db.location): role \(r.string(0, 0)) lacks USAGE on schema \(refused)")
        }
        return .notFound("\(db.location) has no schema named by search_path (\(r.string(0, 1))) to keep taskq's tables in: create it (CREATE SCHEMA), or name another")
    }

    /// For a read-only session, which may not migrate: throws unless the schema
    /// is this taskq's.
    static func checkCurrent(_ db: PostgresConnection) throws {
        let v = try version(db)
        if v == latestVersion { return }
        throw TaskQueueError.unavailable(
            "\(db.location) has taskq schema version \(v), older than this taskq's (\(latestVersion)); a read-only session does not upgrade it: run 'taskq status' on it once to upgrade")
    }

    /// Applies every pending migration, each in one transaction.
    static func migrate(_ db: PostgresConnection, now: Timestamp) throws {
        if try version(db) == latestVersion { return }
        for m in embeddedPostgresMigrations {
            try db.transaction(begin: [.begin, PGStatement(sql: "SELECT pg_advisory_xact_lock(\(lockKey))")]) {
                // Looked at again under the lock: another process may have applied it.
                guard try version(db) < m.version else { return }
                do {
                    try db.run(script: m.sql)
                } catch let e as PostgresError where !e.sqlstate.hasPrefix("08") && e.sqlstate != "42501" {
                    // Something of the user's stands in the way (a view the migration
                    // cannot keep): say which migration, and that it changed nothing.
                    throw TaskQueueError.unavailable(
                        "cannot upgrade \(db.location) to taskq schema version \(m.version) (\(m.name)): \(e.message); nothing was changed")
                }
                try db.exec("INSERT INTO taskq_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                            [.int(Int64(m.version)), .text(m.name), .ts(now)])
            }
        }
    }
}
