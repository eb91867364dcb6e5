import CSQLite
import CSQLiteTuning
import TaskQueue
#if canImport(Glibc)
import Glibc
#endif

/// A thin wrapper over one `sqlite3*` connection. Not thread-safe: one thread at a
/// time. (Opened `SQLITE_OPEN_NOMUTEX`, SQLite's multi-thread mode: no lock of
/// SQLite's own per call, and threads may take turns, as a worker's main thread and
/// its lease thread do under the lease's lock, `ProcessLease`.)
final class SQLiteConnection {
    let handle: OpaquePointer
    let path: String
    let busyTimeoutMs: Int32
    /// Opened with SQLite's `immutable=1`: a file this user may only read, with no
    /// WAL beside it (see init).
    let isImmutable: Bool
    /// Opened with `SQLITE_OPEN_READONLY` (`taskq dashboard --read-only`): no
    /// statement may write, and the schema is never migrated.
    let isReadOnly: Bool
    /// Checkpoints this connection's commits leave to a thread (`configure`).
    private var checkpointer: OpaquePointer?

    /// Opens `path`. With `create`, a missing file is created first with mode 0600
    /// so the database (and the -wal/-shm files SQLite derives from it) is readable
    /// by its owner only.
    init(path: String, create: Bool, busyTimeoutMs: Int32, readOnly: Bool = false) throws {
        self.path = path
        isReadOnly = readOnly && !create
        if create && access(path, F_OK) == 0 && access(path, W_OK) != 0 {
            // SQLite would open it read-only without a word and fail at the first
            // write, after creating -wal and -shm files beside it.
            throw TaskQueueError.unavailable("database \(path) is read-only for this user (permission denied); nothing was written")
        }
        if create && access(path, F_OK) != 0 {
            // O_EXCL: close only a descriptor that created the file. Closing any
            // descriptor of a file drops this process's POSIX locks on it, and
            // with them the locks of other SQLite connections it has open there.
            let fd = open(path, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0o600)
            if fd >= 0 { close(fd) } else if errno != EEXIST { throw SQLiteConnection.openError(path: path, errno: errno) }
        }
        // A file this user may only read, with no -wal beside it (so no connection
        // is writing it: a WAL writer keeps the -wal file while it is open): read it
        // as immutable. Opened the usual way, SQLite would create -wal and -shm files
        // beside it with the file's read-only mode, and that -shm would make every
        // write fail once the file is writable again.
        isImmutable = !create && !path.hasPrefix("//") && access(path, F_OK) == 0 && access(path, W_OK) != 0
            && access(path + "-wal", F_OK) != 0
        taskq_sqlite_tune()
        var db: OpaquePointer?
        let flags = SQLITE_OPEN_NOMUTEX | (isImmutable ? SQLITE_OPEN_READONLY | SQLITE_OPEN_URI
                                                       : isReadOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE)
        let name = isImmutable ? "file:" + Self.uriEscaped(path) + "?immutable=1" : path
        let rc = sqlite3_open_v2(name, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let e = SQLiteError(extendedCode: db.map { sqlite3_extended_errcode($0) } ?? rc,
                                message: db.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory",
                                systemErrno: db.map { sqlite3_system_errno($0) } ?? 0)
            sqlite3_close_v2(db)
            throw TaskQueueError.sqlite(e, path: path, during: "open")
        }
        handle = db
        self.busyTimeoutMs = busyTimeoutMs
        sqlite3_extended_result_codes(db, 1)
        taskq_sqlite_busy_handler(db, busyTimeoutMs)
    }

    /// Switches to WAL and sets the per-connection pragmas. Called only once the
    /// file is known to be a taskq database (or empty and ours to create), so a
    /// stranger's SQLite file is never modified.
    func configure(synchronous: Synchronous, cacheKiB: Int = 32768, skipChecks: Bool = false) throws {
        if isImmutable {
            // Nothing to switch: it is only read, with every commit already in the file.
            try exec("PRAGMA cache_size=-\(cacheKiB)")
            return
        }
        if isReadOnly {
            // Nothing that writes: the journal mode is the file's own (WAL, set
            // by whoever created it), and no checkpoint is ever run from here.
            try exec("PRAGMA cache_size=-\(cacheKiB)")
            try exec("PRAGMA temp_store=MEMORY")
            try exec("PRAGMA query_only=ON")
            return
        }
        // WAL: readers never block the writer and the writer never blocks readers.
        // Switching a new file to WAL needs an exclusive lock, and SQLite answers
        // SQLITE_BUSY at once there (no busy handler): retry up to the timeout.
        let deadline = System.monotonic() + Double(busyTimeoutMs) / 1000
        var mode: String?
        while true {
            do {
                mode = try scalarText("PRAGMA journal_mode=WAL")
                break
            } catch let e as TaskQueueError where e.code == .busy && System.monotonic() < deadline {
                usleep(1000)
            }
        }
        if mode?.lowercased() != "wal" {
            throw TaskQueueError.unavailable("cannot switch \(path) to WAL mode (journal_mode is \(mode ?? "unknown")); is it on a network file system?")
        }
        try exec("PRAGMA synchronous=\(synchronous == .full ? "FULL" : "NORMAL")")
        // A page cache large enough for the hot part of the claim index:
        // SQLite's default 2 MiB made claims 4x slower once the table held ~20k rows.
        try exec("PRAGMA cache_size=-\(cacheKiB)")
        try exec("PRAGMA temp_store=MEMORY")
        // The state-machine trigger guards hand edits from the sqlite3 shell;
        // taskq's own statements keep to the same rules (the conformance tests
        // check them), so its connections skip the trigger's cost.
        taskq_sqlite_disable_triggers(handle)
        // The same for the CHECKs, on connections that only run taskq's fixed
        // statements on values it has checked: workers (claim, fenced finish,
        // heartbeat; ~8% of SQLite's work per claimed-and-finished task) and
        // `taskq enqueue` (every task validated in Swift first; ~10% per insert).
        // Other connections keep them as a last guard; the tests end with
        // `PRAGMA integrity_check`, which checks every CHECK of every row.
        if skipChecks { try exec("PRAGMA ignore_check_constraints=ON") }
        // Checkpoints at SQLite's usual WAL length (1,000 pages: a longer WAL measured
        // slower for workers), but off the commit path (checkpointer.c).
        checkpointer = taskq_checkpointer_attach(handle, path, 1000, synchronous == .full ? 2 : 1)
    }

    deinit {
        taskq_checkpointer_detach(handle, checkpointer)
        sqlite3_close_v2(handle)
    }

    /// `path` for a `file:` URI: the characters a URI gives meaning to, escaped.
    static func uriEscaped(_ path: String) -> String {
        var out = ""
        for c in path.unicodeScalars {
            switch c {
            case "%": out += "%25"
            case "?": out += "%3f"
            case "#": out += "%23"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    static func openError(path: String, errno e: Int32) -> TaskQueueError {
        let reason = String(cString: strerror(e))
        switch e {
        case ENOENT: return .notFound("cannot create database \(path): directory does not exist")
        case EISDIR: return .badData("\(path) is a directory, not a database file")
        case EACCES, EROFS: return .unavailable("cannot create database \(path): \(reason)")
        case ENOSPC, EDQUOT: return .noSpace("cannot create database \(path): no space left on device")
        default: return .unavailable("cannot create database \(path): \(reason)")
        }
    }

    /// The error for result code `rc` of a call on this connection that ran `sql`
    /// (`during` names it in the message).
    func error(_ rc: Int32, sql: String?, during: String) -> TaskQueueError {
        error(rc, message: String(cString: sqlite3_errmsg(handle)), sql: sql, during: during)
    }

    private func error(_ rc: Int32, message: String, sql: String?, during: String) -> TaskQueueError {
        TaskQueueError.sqlite(SQLiteError(extendedCode: rc, message: message, sql: sql,
                                          systemErrno: sqlite3_system_errno(handle)),
                              path: path, during: during)
    }

    func exec(_ sql: String) throws {
        var err: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &err)
        if rc != SQLITE_OK {
            let message = err.map { String(cString: $0) } ?? String(cString: sqlite3_errmsg(handle))
            sqlite3_free(err)
            throw error(rc, message: message, sql: sql, during: String(sql.prefix(60)))
        }
    }

    func prepare(_ sql: String) throws -> Statement {
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &stmt, nil)
        guard rc == SQLITE_OK, let stmt else { throw error(rc, sql: sql, during: "prepare") }
        return Statement(stmt, connection: self)
    }

    func scalarText(_ sql: String) throws -> String? {
        let s = try prepare(sql)
        return try s.step() ? s.text(0) : nil
    }

    func scalarInt(_ sql: String) throws -> Int64? {
        let s = try prepare(sql)
        return try s.step() ? s.optionalInt(0) : nil
    }

    var inTransaction: Bool { sqlite3_get_autocommit(handle) == 0 }

    /// Runs `body` in a write transaction. Always `BEGIN IMMEDIATE`: a deferred
    /// transaction that reads first and then writes can fail with SQLITE_BUSY in a
    /// way the busy timeout cannot cure (its snapshot may be stale), so every write
    /// transaction takes the write lock up front and waits for it (busy_timeout).
    func writeTransaction<T>(_ body: () throws -> T) throws -> T {
        try beginImmediate.run()
        do {
            let value = try body()
            try commit.run()
            return value
        } catch {
            if inTransaction { _ = try? rollback.run() }
            throw error
        }
    }

    /// Runs `body` in a read transaction (one consistent snapshot).
    func readTransaction<T>(_ body: () throws -> T) throws -> T {
        try beginDeferred.run()
        defer { if inTransaction { _ = try? rollback.run() } }
        return try body()
    }

    private lazy var beginImmediate = try! prepare("BEGIN IMMEDIATE")
    private lazy var beginDeferred = try! prepare("BEGIN")
    private lazy var commit = try! prepare("COMMIT")
    private lazy var rollback = try! prepare("ROLLBACK")

    /// SQLite's data version of the main database file: it changes with every
    /// commit, this connection's or another's (another's is seen when this one
    /// next begins a transaction).
    var dataVersion: UInt32 {
        var v: UInt32 = 0
        _ = sqlite3_file_control(handle, "main", SQLITE_FCNTL_DATA_VERSION, &v)
        return v
    }

    var changes: Int { Int(sqlite3_changes(handle)) }
    /// Most parameters one statement may have (SQLITE_LIMIT_VARIABLE_NUMBER).
    /// (Set by tests, to stand for a SQLite built with a lower limit.)
    var parameterLimit: Int {
        get { Int(sqlite3_limit(handle, SQLITE_LIMIT_VARIABLE_NUMBER, -1)) }
        set { sqlite3_limit(handle, SQLITE_LIMIT_VARIABLE_NUMBER, Int32(clamping: newValue)) }
    }
    var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }
}
