@_exported import TaskQueue
@_exported import TaskQueuePostgres
@_exported import TaskQueueSQLite
#if canImport(Glibc)
import Glibc
#endif

/// What a process opens a store for; each engine sizes its connection for it.
public enum StoreRole: Sendable {
    /// A command that reads or changes a few rows (the default).
    case command
    /// A producer that only enqueues, validating every task in Swift first (with
    /// a clear error and nothing written). On SQLite its connection skips the
    /// tables' CHECKs, which would test the same values again at about a tenth of
    /// SQLite's work per insert, and keeps a small page cache: it only appends.
    case producer
    /// A worker: claims and finishes.
    case worker
    /// A supervisor: registers, recovers, prunes; never claims.
    case supervisor
    /// A long-running reader that serves requests (the dashboard): as a command,
    /// but on PostgreSQL it reconnects after a lost connection, briefly, so that a
    /// request waits a few seconds at most.
    case service
}

/// The one place that turns a database named by `--db` (or `$TASKQ_DB`) into a
/// store: a PostgreSQL connection string (a `postgresql://` or `postgres://` URI,
/// or libpq `key=value` pairs such as `host=db dbname=jobs`) opens the PostgreSQL
/// store; anything else is the path of a SQLite file.
public enum Stores {
    /// True when `database` names a PostgreSQL database rather than a SQLite file.
    public static func isPostgres(_ database: String) -> Bool {
        if database.hasPrefix("postgresql://") || database.hasPrefix("postgres://") { return true }
        // libpq's key=value form: the first key is one of its keywords.
        let text = database.drop { $0 == " " }
        guard let eq = text.firstIndex(of: "=") else { return false }
        var key = text[..<eq]
        while key.last == " " { key = key.dropLast() }
        return conninfoKeywords.contains(String(key))
    }

    /// libpq's connection keywords that may open a key=value string.
    private static let conninfoKeywords: Set<String> = [
        "host", "hostaddr", "port", "dbname", "user", "password", "passfile", "service", "options",
        "application_name", "sslmode", "connect_timeout", "target_session_attrs", "channel_binding",
        "sslcert", "sslkey", "sslrootcert", "gssencmode", "krbsrvname", "require_auth", "load_balance_hosts",
    ]

    /// `database` for messages and `ps`: a password in it is left out.
    public static func label(_ database: String) -> String {
        guard isPostgres(database) else { return database }
        if database.contains("://") {
            // postgresql://user:secret@host/db?password=x → postgresql://user@host/db
            let chars = Array(database)
            var i = 0
            while !(chars[i] == ":" && chars[i + 1] == "/" && chars[i + 2] == "/") { i += 1 }
            let schemeEnd = i + 3
            var authorityEnd = schemeEnd
            while authorityEnd < chars.count && chars[authorityEnd] != "/" && chars[authorityEnd] != "?" { authorityEnd += 1 }
            let authority = chars[schemeEnd..<authorityEnd]
            var out = String(chars[..<schemeEnd])
            if let at = authority.lastIndex(of: "@") {
                let user: ArraySlice<Character> = authority[schemeEnd..<at]
                out += String(user.prefix { $0 != ":" })
                out += String(authority[at...])
            } else {
                out += String(authority)
            }
            let tail = chars[authorityEnd...]
            guard let q = tail.firstIndex(of: "?") else { return out + String(tail) }
            out += String(tail[..<q])
            let params = String(tail[(q + 1)...]).split(separator: "&").filter { !$0.hasPrefix("password=") }
            return out + (params.isEmpty ? "" : "?" + params.joined(separator: "&"))
        }
        // key=value: drop password=… (quoted or not).
        var out: [Substring] = []
        var skipping = false
        for word in database.split(separator: " ") {
            if skipping { if word.hasSuffix("'") { skipping = false }; continue }
            if word.hasPrefix("password=") {
                let value = word.dropFirst("password=".count)
                skipping = value.hasPrefix("'") && (value.count == 1 || !value.hasSuffix("'"))
                continue
            }
            out.append(word)
        }
        return out.joined(separator: " ")
    }

    /// `--db` when given (and not empty), else `$TASKQ_DB`, else `taskq.db`.
    public static func database(_ given: String?) -> String {
        if let given, !given.isEmpty { return given }
        if let env = getenv("TASKQ_DB"), env.pointee != 0 { return String(cString: env) }
        return "taskq.db"
    }

    /// Opens the store `database` names. With `create`, a missing database (a
    /// SQLite file, or a PostgreSQL schema without taskq's tables) is created;
    /// without it, that is a `.notFound` error and nothing is created.
    /// `synchronous` nil is the engine's default: `normal` on SQLite; on
    /// PostgreSQL the server's `synchronous_commit` (on unless configured
    /// otherwise), which `full` sets on and `normal` off. `busyTimeout`: how long to wait for a lock
    /// another process holds (SQLite's write lock; PostgreSQL's `lock_timeout`).
    /// `readOnly`: nothing is written, not even a migration (SQLite: the file
    /// opened read-only; PostgreSQL: a read-only session); a missing database or
    /// an older schema is an error.
    package static func openStore(_ database: String, create: Bool, synchronous: Synchronous? = nil,
                                  busyTimeout: Double = 10, role: StoreRole = .command,
                                  readOnly: Bool = false) throws -> any TaskStore {
        if isPostgres(database) {
            let store = try PostgresTaskStore(url: database, create: create && !readOnly, busyTimeout: busyTimeout, readOnly: readOnly)
            store.setLocation(label(database))
            // Long-running processes ride out a lost connection (a server restart,
            // a network cut); one-shot commands fail at once (exit 69).
            switch role {
            case .worker, .supervisor: store.keepConnected(budget: 30)
            case .service: store.keepConnected(budget: 5)
            case .command, .producer: break
            }
            if let synchronous { try store.setSynchronousCommit(synchronous == .full) }
            return store
        }
        let cacheKiB: Int, checks: Bool
        switch role {
        case .command, .service: (cacheKiB, checks) = (32768, true)
        case .producer: (cacheKiB, checks) = (SQLiteTaskStore.supervisorCacheKiB, false)
        case .worker: (cacheKiB, checks) = (SQLiteTaskStore.workerCacheKiB, false)
        case .supervisor: (cacheKiB, checks) = (SQLiteTaskStore.supervisorCacheKiB, true)
        }
        return try SQLiteTaskStore(path: database, create: create && !readOnly, synchronous: synchronous ?? .normal,
                                   busyTimeout: busyTimeout, cacheKiB: cacheKiB, checks: checks, readOnly: readOnly)
    }

    /// `Synchronous` from its name; "" (or nil) is the engine's default.
    package static func synchronous(_ name: String?) -> Synchronous? {
        name.flatMap { Synchronous(rawValue: $0.lowercased()) }
    }
}

extension Queue {
    /// Opens the queue `database` names: a SQLite file's path, or a PostgreSQL
    /// connection string (see `Stores`). `synchronous` nil: the engine's default.
    public static func open(database: String, create: Bool = true, synchronous: Synchronous? = nil,
                            busyTimeout: Double = 10, role: StoreRole = .command) throws -> Queue {
        Queue(store: try Stores.openStore(database, create: create, synchronous: synchronous, busyTimeout: busyTimeout,
                                          role: role))
    }
}
