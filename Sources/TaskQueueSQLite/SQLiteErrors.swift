import CSQLite
import TaskQueue
#if canImport(Glibc)
import Glibc
#endif

extension TaskQueueError {
    /// Turns a SQLite result code into a one-line error a person can act on.
    /// Bound values never appear in it (they may be private payloads).
    /// `systemErrno` is sqlite3_system_errno: a full disk can reach SQLite as an
    /// I/O error (say, while it creates the -shm file), and errno tells it apart.
    static func sqlite(code rc: Int32, message: String, path: String, during: String, systemErrno: Int32 = 0) -> TaskQueueError {
        if systemErrno == ENOSPC || systemErrno == EDQUOT {
            return .noSpace("no space left on device for database \(path) (\(during)); nothing was written")
        }
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
            var hint = "check the permissions of the file and its directory"
            if access(path + "-shm", W_OK) != 0 && access(path + "-shm", F_OK) == 0 && access(path, W_OK) == 0 {
                hint = "its \(path)-shm file is not writable (left by a reader while the database was read-only?): remove it while no taskq process runs"
            }
            return .unavailable("database \(path) is read-only here (\(message)); \(hint)")
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
