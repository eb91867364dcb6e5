import ArgumentParser
import TaskQueue
import TaskQueueSQLite
#if canImport(Glibc)
import Glibc
#endif

/// Options every command takes: which database, and how to talk to it.
struct DatabaseOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The queue's SQLite file. Default: $TASKQ_DB, else ./taskq.db.", valueName: "path"))
    var db: String?

    @Option(name: .long, help: ArgumentHelp("""
        SQLite durability: 'normal' (default; a commit survives any process crash, a power \
        loss may lose the last commits) or 'full' (fsync every commit; survives power loss).
        """, valueName: "level"))
    var synchronous: String = "normal"

    @Option(name: .customLong("busy-timeout"), parsing: .unconditional, help: ArgumentHelp(
        "Seconds to wait for the database's write lock before giving up with exit 69.", valueName: "seconds"))
    var busyTimeout: Double = DatabaseOptions.defaultBusyTimeout

    static let defaultBusyTimeout: Double = 10

    var path: String { Self.path(db) }

    /// --db when given, else $TASKQ_DB, else ./taskq.db.
    static func path(_ db: String?) -> String {
        if let db, !db.isEmpty { return db }
        if let env = getenv("TASKQ_DB"), env.pointee != 0 { return String(cString: env) }
        return "taskq.db"
    }

    var durability: Synchronous { Synchronous(rawValue: synchronous.lowercased()) ?? .normal }

    mutating func validate() throws {
        if let db, db.isEmpty {
            throw ValidationError("--db is empty: give the database file's path, e.g. --db ./taskq.db")
        }
        guard Synchronous(rawValue: synchronous.lowercased()) != nil else {
            throw ValidationError("--synchronous must be 'normal' or 'full', not '\(synchronous)'")
        }
        guard busyTimeout >= 0, busyTimeout <= 86_400 else {
            throw ValidationError("--busy-timeout must be between 0 and 86400 seconds, not \(busyTimeout)")
        }
    }

    /// Opens the queue. Read-only commands pass `create: false`: a missing
    /// database is then exit 66 and nothing is created.
    func open(create: Bool) throws -> Queue {
        try Queue.open(path: path, create: create, synchronous: durability, busyTimeout: busyTimeout)
    }

    /// Opens the queue for `enqueue`, which writes only tasks it has validated
    /// (see `Queue.open(…, checks:)`).
    func openForEnqueue() throws -> Queue {
        try Queue.open(path: path, create: true, synchronous: durability, busyTimeout: busyTimeout, checks: false)
    }
}

/// Writes text to stdout as is.
func out(_ s: String) {
    var s = s
    s.withUTF8 { writeAll(1, UnsafeRawBufferPointer($0)) }
}

func writeAll(_ fd: Int32, _ buf: UnsafeRawBufferPointer) {
    var off = 0
    while off < buf.count {
        let n = write(fd, buf.baseAddress! + off, buf.count - off)
        if n < 0 { if errno == EINTR { continue }; return }
        off += n
    }
}

/// Reads all of stdin; with `limit`, stops reading past `limit` bytes and
/// throws a bad-data error naming `what` (so `cat /dev/zero | taskq enqueue x`
/// ends at once instead of filling memory).
func readStdin(limit: Int? = nil, what: String = "stdin") throws -> [UInt8] {
    var data: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = read(0, &buf, buf.count)
        if n < 0 && errno == EINTR { continue }
        if n < 0 {
            throw TaskQueueError.unavailable("cannot read \(what): \(String(cString: strerror(errno)))")
        }
        if n == 0 { break }
        data += buf[0..<n]
        if let limit, data.count > limit {
            throw TaskQueueError.badData("\(what) is over the payload limit of \(Queue.maxPayloadBytes) bytes (1 MiB); stopped reading after \(data.count) bytes: store large data elsewhere and enqueue its path")
        }
    }
    return data
}

/// Bytes as UTF-8 text, or a bad-data error naming `what`.
func utf8<C: Collection>(_ bytes: C, what: String) throws -> String where C.Element == UInt8 {
    guard isValidUTF8(bytes) else {
        throw TaskQueueError.badData("\(what) is not valid UTF-8 text")
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// Parses "90", "1.5", "90s", "5m"… for options that take seconds. Throws a
/// `ValidationError` (exit 64), so call it from `validate()`.
func seconds(_ text: String, option: String) throws -> Double {
    do { return try parseDuration(text) } catch {
        throw ValidationError("\(option): \(error)")
    }
}

/// Runs `body`, turning a `TaskQueueError` into a `ValidationError` (exit 64,
/// with the usage), prefixed with `prefix` when given.
func asUsageError<T>(_ prefix: String = "", _ body: () throws -> T) throws -> T {
    do { return try body() } catch let e as TaskQueueError { throw ValidationError(prefix + e.message) }
}

/// A task id given on the command line: ids start at 1.
func checkID(_ id: Int64) throws {
    if id < 1 { throw ValidationError("task ids are positive integers, not \(id)") }
}

/// A fixed-width text table.
func table(_ header: [String], _ rows: [[String]]) -> String {
    var widths = header.map(\.count)
    for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
    func line(_ cells: [String]) -> String {
        var s = ""
        for (i, c) in cells.enumerated() {
            s += i == cells.count - 1 ? c : c + String(repeating: " ", count: widths[i] - c.count + 2)
        }
        return s + "\n"
    }
    return line(header) + rows.map(line).joined()
}

/// JSON for one task (the documented shape of `show --json` and `list --json`).
func taskJSON(_ t: TaskRecord) -> String { TaskJSON.task(t).text }
