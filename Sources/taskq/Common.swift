import ArgumentParser
import TaskQueue
import TaskQueueStores
#if canImport(Glibc)
import Glibc
#endif

/// Options every command takes: which database, and how to talk to it.
struct DatabaseOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("""
        The queue: a SQLite file's path, or a PostgreSQL database as a URL \
        (postgresql://user@host/db) or libpq key=value string (host=… dbname=…); \
        a password belongs in ~/.pgpass or $PGPASSWORD, not here. \
        Default: $TASKQ_DB, else ./taskq.db.
        """, valueName: "path|url"))
    var db: String?

    @Option(name: .long, help: ArgumentHelp("""
        Durability. SQLite: 'normal' (default; a commit survives any process crash, a power \
        loss may lose the last commits) or 'full' (fsync every commit; survives power loss). \
        PostgreSQL: 'full' (synchronous_commit on: PostgreSQL's default, used when not given \
        unless the server sets otherwise) or 'normal' (synchronous_commit off: a server \
        crash may lose the last commits, up to about 0.6 s of them).
        """, valueName: "level"))
    var synchronous: String?

    // Optional, so that --help prints the default as documented ("10"), not as
    // Swift prints a Double ("10.0").
    @Option(name: .customLong("busy-timeout"), parsing: .unconditional, help: ArgumentHelp(
        "Seconds to wait for a lock another process holds (SQLite: the write lock; PostgreSQL: lock_timeout) before giving up with exit 69. (default: 10)",
        valueName: "seconds"))
    var busyTimeoutOption: Double?

    static let defaultBusyTimeout: Double = 10

    var busyTimeout: Double { busyTimeoutOption ?? Self.defaultBusyTimeout }

    /// The database as named: --db when given, else $TASKQ_DB, else ./taskq.db.
    var path: String { Stores.database(db) }

    /// The database for messages: a PostgreSQL URL without its password.
    var label: String { Stores.label(path) }

    var isPostgres: Bool { Stores.isPostgres(path) }

    /// nil: the engine's default (normal on SQLite, full on PostgreSQL).
    var durability: Synchronous? { Stores.synchronous(synchronous) }

    mutating func validate() throws {
        if let db, db.isEmpty {
            throw ValidationError("--db is empty: give the database file's path, e.g. --db ./taskq.db, or a PostgreSQL URL")
        }
        if let synchronous, Synchronous(rawValue: synchronous.lowercased()) == nil {
            throw ValidationError("--synchronous must be 'normal' or 'full', not '\(synchronous)'")
        }
        guard busyTimeout >= 0, busyTimeout <= 86_400 else {
            throw ValidationError("--busy-timeout must be between 0 and 86400 seconds, not \(busyTimeout)")
        }
    }

    /// Opens the queue. Read-only commands pass `create: false`: a missing
    /// database is then exit 66 and nothing is created.
    func open(create: Bool) throws -> Queue {
        try Queue.open(database: path, create: create, synchronous: durability, busyTimeout: busyTimeout)
    }

    /// Opens the queue for `enqueue`, which writes only tasks it has validated
    /// (see `StoreRole.producer`).
    func openForEnqueue() throws -> Queue {
        try Queue.open(database: path, create: true, synchronous: durability, busyTimeout: busyTimeout, role: .producer)
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

/// The ids of `wait`, `cancel` and `retry`: each argument holds one or more ids
/// separated by whitespace (`packingTaskIDs` joins runs of them), and `-` reads
/// more, whitespace- or newline-separated, from stdin. Repeated ids count once;
/// the order is kept. A bad id anywhere is a usage error naming it (exit 64).
struct TaskIDArguments {
    let arguments: [String]

    init(_ arguments: [String]) { self.arguments = arguments }

    /// Checks the arguments themselves (not stdin): for `validate()`.
    func check() throws {
        if arguments.filter({ $0 == "-" }).count > 1 { throw ValidationError("give - (read ids from stdin) at most once") }
        var ids = TaskIDReader(source: "")
        for a in arguments where a != "-" { try ids.read(a.utf8); try ids.endToken() }
    }

    /// The ids, reading stdin for `-`.
    func read() throws -> [Int64] {
        var ids = TaskIDReader(source: "")
        for a in arguments {
            if a != "-" { try ids.read(a.utf8); try ids.endToken(); continue }
            ids.source = " (on stdin)"
            var buf = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = Glibc.read(0, &buf, buf.count)
                if n < 0 && errno == EINTR { continue }
                if n < 0 { throw TaskQueueError.unavailable("cannot read task ids from stdin: \(String(cString: strerror(errno)))") }
                if n == 0 { break }
                try ids.read(buf[0..<n])
            }
            try ids.endToken()
            ids.source = ""
        }
        return ids.ids
    }
}

/// Splits bytes into task ids, one token at a time (input may come in chunks).
private struct TaskIDReader {
    var source: String
    private(set) var ids: [Int64] = []
    private var seen = Set<Int64>()
    private var token: [UInt8] = []

    init(source: String) { self.source = source }

    mutating func read<C: Collection>(_ bytes: C) throws where C.Element == UInt8 {
        for b in bytes {
            if b == 32 || (b >= 9 && b <= 13) { try endToken() } else {
                token.append(b)
                // No id is this long: stop early on garbage (`taskq wait - < /dev/zero`).
                if token.count > 64 { try endToken() }
            }
        }
    }

    mutating func endToken() throws {
        if token.isEmpty { return }
        defer { token.removeAll(keepingCapacity: true) }
        guard token.allSatisfy({ $0 >= 48 && $0 <= 57 }), let id = Int64(String(decoding: token, as: UTF8.self)), id > 0 else {
            let text = String(decoding: token.prefix(40), as: UTF8.self).unicodeScalars
                .map { $0.properties.generalCategory == .control ? "?" : String($0) }.joined()
            throw ValidationError("task ids are positive integers, not '\(text)\(token.count > 40 ? "…" : "")'\(source)")
        }
        if seen.insert(id).inserted { ids.append(id) }
    }
}

/// Ids for a message: the first ten, then how many more.
func idList(_ ids: [Int64]) -> String {
    ids.prefix(10).map(String.init).joined(separator: ", ") + (ids.count > 10 ? " and \(ids.count - 10) more" : "")
}

/// `wait`, `cancel` and `retry` take thousands of ids (`taskq wait $(cat ids.txt)`),
/// but swift-argument-parser's cost grows with the square of a repeated
/// argument's count (for each value it copies the array and the set of input
/// positions gathered so far): 20,000 ids took 13 s. So before parsing, each run
/// of bare numbers that cannot be an option's value (none follows an option
/// name) is joined into one argument, which those commands split again
/// (`TaskIDArguments`). Other commands' arguments are returned as they are.
func packingTaskIDs(_ args: [String]) -> [String] {
    guard let command = args.first, ["wait", "cancel", "retry"].contains(command) else { return args }
    var out: [String] = [command]
    var run: [String] = []
    var previous = command
    for a in args.dropFirst() {
        let isNumber = !a.isEmpty && a.utf8.allSatisfy { $0 >= 48 && $0 <= 57 }
        let optionName = previous.hasPrefix("-") && previous != "-" && !previous.contains("=")
        if isNumber && !optionName {
            run.append(a)
        } else {
            if !run.isEmpty { out.append(run.joined(separator: " ")); run = [] }
            out.append(a)
        }
        previous = a
    }
    if !run.isEmpty { out.append(run.joined(separator: " ")) }
    return out
}

/// `supervise` takes thousands of `--handler` (and `--queue`, `--on-crash`)
/// options, whose parsing grows with the square of their count in
/// swift-argument-parser as repeated ids do (8,000 handlers took minutes). So
/// before parsing, the values of each are joined into one, separated by NUL (which
/// no command-line argument can hold), and `unpacked` splits them again.
func packingRepeatedOptions(_ args: [String]) -> [String] {
    guard args.first == "supervise" else { return args }
    let names = ["--handler", "--queue", "--on-crash"]
    var values: [String: [String]] = [:]
    var out: [String] = []
    var i = 0
    while i < args.count {
        let a = args[i]
        if let name = names.first(where: { $0 == a }), i + 1 < args.count {
            values[name, default: []].append(args[i + 1])
            i += 2
        } else if let name = names.first(where: { a.hasPrefix($0 + "=") }) {
            values[name, default: []].append(String(a.dropFirst(name.count + 1)))
            i += 1
        } else {
            out.append(a)
            i += 1
        }
    }
    // Right after the command: an option left without its value at the end still
    // reads as missing, not as taking one of these.
    var packed: [String] = []
    for name in names { if let v = values[name] { packed += [name, v.joined(separator: "\0")] } }
    return [out[0]] + packed + out.dropFirst()
}

/// The values `packingRepeatedOptions` joined, one per option given.
func unpacked(_ values: [String]) -> [String] {
    values.flatMap { $0.split(separator: "\0", omittingEmptySubsequences: false).map(String.init) }
}

/// Seconds since this process started (its start time in /proc, against the
/// boot-time clock), so a --timeout also counts reading arguments, stdin and
/// opening the database. 0 when /proc cannot tell.
func secondsSinceStart() -> Double {
    guard let ticks = System.startTicks(of: getpid()) else { return 0 }
    var ts = timespec()
    clock_gettime(CLOCK_BOOTTIME, &ts)
    let now = Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    return max(0, now - Double(ticks) / Double(sysconf(Int32(_SC_CLK_TCK))))
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
        // No trailing blanks when the last cells are empty (diff- and grep-friendly).
        while s.last == " " { s.removeLast() }
        return s + "\n"
    }
    return line(header) + rows.map(line).joined()
}

/// JSON for one task (the documented shape of `show --json` and `list --json`).
func taskJSON(_ t: TaskRecord) -> String { TaskJSON.task(t).text }
