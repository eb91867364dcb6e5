import CSQLite
import TaskQueue
#if canImport(Glibc)
import Glibc
#endif

/// A failed SQLite call as SQLite reported it, kept apart from the one-line message
/// taskq shows for it: the `underlying` error of the store's `TaskQueueError`s.
/// Decide by `code`/`extendedCode`, never by the text of `message`.
/// Never holds bound values (they may be private payloads): `sql` is the
/// statement's text, with its `?` parameters.
public struct SQLiteError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The extended result code: SQLITE_CONSTRAINT_UNIQUE, SQLITE_IOERR_FSYNC, …
    /// (connections enable extended codes), or a primary code where SQLite has no
    /// finer one.
    public let extendedCode: Int32
    /// SQLite's message (sqlite3_errmsg).
    public let message: String
    /// The statement that failed (being prepared, run or stepped), if any.
    public let sql: String?
    /// errno of the last system call SQLite saw fail (sqlite3_system_errno), 0 if none.
    public let systemErrno: Int32

    public init(extendedCode: Int32, message: String, sql: String? = nil, systemErrno: Int32 = 0) {
        self.extendedCode = extendedCode
        self.message = message
        self.sql = sql
        self.systemErrno = systemErrno
    }

    /// SQLITE_CONSTRAINT_UNIQUE: a UNIQUE index refused a row. (Swift does not
    /// import SQLite's macros for extended codes, which are expressions.)
    public static let constraintUnique: Int32 = SQLITE_CONSTRAINT | (8 << 8)

    /// The primary result code: SQLITE_BUSY, SQLITE_CONSTRAINT, … (the low byte of
    /// `extendedCode`).
    public var code: Int32 { extendedCode & 0xff }

    /// Whether the same call may succeed later with nothing changed but time:
    /// BUSY and LOCKED (another connection holds a lock), FULL and a full disk met
    /// as an I/O error, IOERR, NOMEM, PROTOCOL (a WAL race), SCHEMA (the schema
    /// changed under a statement). Every other code, ERROR, MISUSE, CORRUPT, NOTADB,
    /// CONSTRAINT, READONLY, CANTOPEN, PERM…, stays until someone acts.
    public var isTransient: Bool {
        switch code {
        case SQLITE_BUSY, SQLITE_LOCKED, SQLITE_FULL, SQLITE_IOERR, SQLITE_NOMEM, SQLITE_PROTOCOL, SQLITE_SCHEMA:
            return true
        default:
            return systemErrno == ENOSPC || systemErrno == EDQUOT
        }
    }

    public var description: String {
        var s = "SQLite error \(extendedCode): \(message)"
        if let sql { s += " - while executing `\(sql)`" }
        return s
    }
}

extension TaskQueueError {
    /// The `SQLiteError` this error reports, if it reports one.
    package var sqliteError: SQLiteError? { underlying as? SQLiteError }

    /// Turns a SQLite error into a one-line error a person can act on, carrying the
    /// SQLite error as `underlying`. Bound values never appear in it (they may be
    /// private payloads). The errno tells a full disk that reached SQLite as an I/O
    /// error (say, while it creates the -shm file) apart from other I/O errors.
    static func sqlite(_ e: SQLiteError, path: String, during: String) -> TaskQueueError {
        let message = e.message
        let t: TaskQueueError
        if e.systemErrno == ENOSPC || e.systemErrno == EDQUOT {
            t = .noSpace("no space left on device for database \(path) (\(during)); nothing was written")
        } else {
            switch e.code {
            case SQLITE_BUSY, SQLITE_LOCKED:
                t = .busy("database \(path) is locked: another process held its write lock longer than the busy timeout (\(during))")
            case SQLITE_FULL:
                t = .noSpace("no space left on device for database \(path) (\(during)); nothing was written")
            case SQLITE_NOTADB:
                t = .badData("\(path) is not a taskq database: file is not a SQLite database")
            case SQLITE_CORRUPT:
                t = .badData("database \(path) is corrupt (\(message)); restore it from a backup or inspect it with sqlite3's .recover")
            case SQLITE_READONLY:
                var hint = "check the permissions of the file and its directory"
                if access(path + "-shm", W_OK) != 0 && access(path + "-shm", F_OK) == 0 && access(path, W_OK) == 0 {
                    hint = "its \(path)-shm file is not writable (left by a reader while the database was read-only?): remove it while no taskq process runs"
                }
                t = .unavailable("database \(path) is read-only here (\(message)); \(hint)")
            case SQLITE_CANTOPEN:
                t = .notFound("cannot open database \(path): \(message)")
            case SQLITE_PERM, SQLITE_AUTH:
                t = .unavailable("permission denied on database \(path): \(message)")
            case SQLITE_IOERR:
                t = .unavailable("I/O error on database \(path) (\(message)) during \(during)")
            case SQLITE_CONSTRAINT:
                t = .failed("the database refused the change: \(message)")
            default:
                t = .failed("SQLite error \(e.extendedCode) on \(path) during \(during): \(message)")
            }
        }
        return TaskQueueError(t.code, t.message, underlying: e, isTransient: e.isTransient)
    }
}
