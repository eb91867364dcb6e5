import CSQLite
import TaskQueue

extension TaskQueueError {
    /// Turns a SQLite result code into a one-line error a person can act on.
    /// Bound values never appear in it (they may be private payloads).
    static func sqlite(code rc: Int32, message: String, path: String, during: String) -> TaskQueueError {
        switch rc & 0xff {
        case SQLITE_BUSY, SQLITE_LOCKED:
            return .busy("database \(path) is locked: another process held its write lock longer than the busy timeout (\(during))")
        case SQLITE_FULL:
            return .noSpace("no space left on device for database \(path) (\(during)); nothing was written")
        case SQLITE_NOTADB:
            return .badData("\(path) is not a taskq database: file is not a SQLite database")
        case SQLITE_CORRUPT:
            return .badData("database \(path) is corrupt (\(message)); restore it from a backup or inspect it with sqlite3's .recover")
        case SQLITE_READONLY:
            return .unavailable("database \(path) is read-only here (\(message)); check the permissions of the file and its directory")
        case SQLITE_CANTOPEN:
            return .notFound("cannot open database \(path): \(message)")
        case SQLITE_PERM, SQLITE_AUTH:
            return .unavailable("permission denied on database \(path): \(message)")
        case SQLITE_IOERR:
            return .unavailable("I/O error on database \(path) (\(message)) during \(during)")
        case SQLITE_CONSTRAINT:
            return .failed("the database refused the change: \(message)")
        default:
            return .failed("SQLite error \(rc) on \(path) during \(during): \(message)")
        }
    }
}
