import CLibPQ
import TaskQueue
#if canImport(Glibc)
import Glibc
#endif

/// An error PostgreSQL (or libpq) reported: its SQLSTATE, its primary message and
/// the first line of the statement it came from. Bound values never appear in it
/// (they may be private payloads).
struct PostgresError: Error, CustomStringConvertible {
    /// Five characters (`23505` unique violation, `40P01` deadlock, …); `08006`
    /// when the connection itself failed and the server sent nothing.
    let sqlstate: String
    let message: String
    /// The statement's first line, for people.
    let statement: String

    var description: String { statement.isEmpty ? message : "\(message) (in: \(statement))" }

    /// The same, as the error taskq shows and maps to an exit status.
    func taskQueueError(location: String) -> TaskQueueError {
        let m = message
        switch sqlstate {
        case let s where s.hasPrefix("23"): return .failed("the database refused the change: \(m)")
        case "40001", "40P01", "55P03", "57014":
            return .busy("\(location) is busy: \(m) (another process held a lock too long); nothing was written")
        case "53100": return .noSpace("no space left on device for \(location) (\(m)); nothing was written")
        case "3D000", "3F000": return .notFound("cannot open \(location): \(m)")
        case let s where s.hasPrefix("08") || s.hasPrefix("28") || s.hasPrefix("53") || s.hasPrefix("57"):
            return .unavailable("cannot use \(location): \(m)")
        case "42501": return .unavailable("permission denied on \(location): \(m)")
        default: return .failed("PostgreSQL error \(sqlstate) on \(location): \(m)\(statement.isEmpty ? "" : " (in: \(statement))")")
        }
    }
}

/// A value bound to a statement parameter. Scalars go in PostgreSQL's binary
/// format with their type named, so nothing is parsed from text on either side.
enum PGValue {
    case null
    case int(Int64)
    case double(Double)
    case text(String)
    case bytes([UInt8])
    case bool(Bool)
    case ts(Timestamp)
    /// A one-dimensional array, already in binary array format, of type `oid`.
    case array(oid: UInt32, data: [UInt8])

    static func opt(_ v: Int64?) -> PGValue { v.map { .int($0) } ?? .null }
    static func opt(_ v: Double?) -> PGValue { v.map { .double($0) } ?? .null }
    static func opt(_ v: String?) -> PGValue { v.map { .text($0) } ?? .null }
    static func opt(_ v: Timestamp?) -> PGValue { v.map { .ts($0) } ?? .null }

    /// `[Int64]` as `bigint[]`.
    static func ints(_ values: [Int64]) -> PGValue {
        var b = PGArray(elementOID: PGType.int8, count: values.count, hasNull: false)
        for v in values { b.element(8); b.int64(v) }
        return .array(oid: PGType.int8Array, data: b.data)
    }
    /// `[String]` as `text[]`.
    static func texts(_ values: [String]) -> PGValue {
        var b = PGArray(elementOID: PGType.text, count: values.count, hasNull: false)
        for v in values { b.element(v.utf8.count); b.data.append(contentsOf: v.utf8) }
        return .array(oid: PGType.textArray, data: b.data)
    }
    /// `[[UInt8]]` as `bytea[]`.
    static func byteas(_ values: [[UInt8]]) -> PGValue {
        var b = PGArray(elementOID: PGType.bytea, count: values.count, hasNull: false)
        for v in values { b.element(v.count); b.data.append(contentsOf: v) }
        return .array(oid: PGType.byteaArray, data: b.data)
    }

    /// A one-dimensional array of `elements` (each of type `elementOID`, or NULL).
    static func list(_ elements: [PGValue], of elementOID: UInt32, arrayOID: UInt32) -> PGValue {
        let hasNull = elements.contains { if case .null = $0 { return true } else { return false } }
        var b = PGArray(elementOID: elementOID, count: elements.count, hasNull: hasNull)
        for e in elements {
            if let bytes = e.wire.bytes { b.element(bytes.count); b.data.append(contentsOf: bytes) } else { b.element(-1) }
        }
        return .array(oid: arrayOID, data: b.data)
    }

    /// Its type oid (0 for NULL: the server infers it).
    var oid: UInt32 {
        switch self {
        case .null: return 0
        case .int: return PGType.int8
        case .double: return PGType.float8
        case .text: return PGType.text
        case .bytes: return PGType.bytea
        case .bool: return PGType.bool
        case .ts: return PGType.timestamptz
        case .array(let oid, _): return oid
        }
    }

    /// Its type and binary representation for PQexecParams.
    var wire: (oid: UInt32, bytes: [UInt8]?) {
        switch self {
        case .null: return (oid, nil)
        case .int(let v): return (oid, bigEndian(UInt64(bitPattern: v)))
        case .double(let v): return (oid, bigEndian(v.bitPattern))
        case .text(let s): return (oid, Array(s.utf8))
        case .bytes(let b): return (oid, b)
        case .bool(let b): return (oid, [b ? 1 : 0])
        case .ts(let t): return (oid, bigEndian(UInt64(bitPattern: PGType.micros(t))))
        case .array(let oid, let data): return (oid, data)
        }
    }
}

/// The type oids taskq binds and reads (pg_type.h; fixed since PostgreSQL 7).
enum PGType {
    static let bool: UInt32 = 16, bytea: UInt32 = 17, int8: UInt32 = 20, int4: UInt32 = 23, text: UInt32 = 25
    static let float8: UInt32 = 701, timestamptz: UInt32 = 1184
    static let int8Array: UInt32 = 1016, textArray: UInt32 = 1009, byteaArray: UInt32 = 1001
    static let float8Array: UInt32 = 1022, timestamptzArray: UInt32 = 1185
    /// PostgreSQL's epoch, 2000-01-01, in Unix milliseconds.
    static let epochMs: Int64 = 946_684_800_000
    /// Microseconds since PostgreSQL's epoch, clamped to years 0000–9999 as
    /// `Timestamp.iso` (what the SQLite store writes) clamps.
    static func micros(_ t: Timestamp) -> Int64 {
        let ms = min(max(t.milliseconds, Timestamp.isoMinimum.milliseconds), Timestamp.isoMaximum.milliseconds)
        return (ms - epochMs) * 1000
    }
}

private func bigEndian(_ v: UInt64) -> [UInt8] {
    (0..<8).map { UInt8(truncatingIfNeeded: v >> (56 - 8 * $0)) }
}

/// Builds a one-dimensional array in PostgreSQL's binary format.
struct PGArray {
    var data: [UInt8] = []
    init(elementOID: UInt32, count: Int, hasNull: Bool) {
        int32(1); int32(hasNull ? 1 : 0); int32(Int32(bitPattern: elementOID))
        int32(Int32(count)); int32(1)
    }
    mutating func int32(_ v: Int32) {
        let u = UInt32(bitPattern: v)
        data.append(contentsOf: [UInt8(u >> 24), UInt8(truncatingIfNeeded: u >> 16), UInt8(truncatingIfNeeded: u >> 8),
                                 UInt8(truncatingIfNeeded: u)])
    }
    mutating func int64(_ v: Int64) { data.append(contentsOf: bigEndian(UInt64(bitPattern: v))) }
    /// The length word of the next element (-1: NULL).
    mutating func element(_ length: Int) { int32(Int32(length)) }
}

/// One synchronous connection (libpq). Every statement is sent with PQexecParams,
/// parameters and results in binary format. Use it from one thread at a time.
final class PostgresConnection {
    let handle: OpaquePointer
    /// Where it is connected, without the password, for messages.
    var location: String

    /// Connects with a libpq URI (`postgresql://…`) or key=value string.
    init(_ conninfo: String) throws {
        guard taskq_libpq_load() == 0 else {
            throw TaskQueueError.unavailable("cannot open a PostgreSQL queue: \(String(cString: taskq_libpq_error()))")
        }
        // A URL or key=value string libpq cannot read is the caller's mistake (exit
        // 64), not an unreachable server.
        var parseError: UnsafeMutablePointer<CChar>?
        if let options = PQconninfoParse(conninfo, &parseError) {
            PQconninfoFree(options)
        } else {
            let m = parseError.map { Self.oneLine(String(cString: $0)) } ?? "out of memory"
            parseError.map { PQfreemem($0) }
            throw TaskQueueError.usage("not a PostgreSQL URL or connection string libpq can read: \(m)")
        }
        guard let c = PQconnectdb(conninfo) else {
            throw TaskQueueError.unavailable("cannot connect to PostgreSQL: out of memory")
        }
        guard PQstatus(c) == CONNECTION_OK else {
            let m = Self.oneLine(String(cString: PQerrorMessage(c)))
            PQfinish(c)
            let notFound = m.contains("does not exist")
            throw TaskQueueError(notFound ? .notFound : .unavailable, "cannot connect to PostgreSQL: \(m)")
        }
        handle = c
        let db = String(cString: PQdb(c))
        let host = PQhost(c).map { String(cString: $0) } ?? ""
        location = "PostgreSQL database \(db)" + (host.isEmpty ? "" : " on \(host)")
        PQsetClientEncoding(c, "UTF8")
        // Notices (NOTICE, WARNING from the server) are not errors: libpq would
        // print them on stderr, in the middle of taskq's own output.
        PQsetNoticeProcessor(c, { _, _ in }, nil)
    }

    deinit { PQfinish(handle) }

    /// Statements that set up a session (`SET …`), run again after a reconnect.
    var sessionSetup: [String] = []
    /// The statements prepared on this connection (see `execPrepared`): the name of
    /// each, by its text and parameter types.
    var prepared: [String: String] = [:]
    /// Names given so far (`taskq_1`, `taskq_2`, …).
    var preparedCount = 0
    /// How many times it has reconnected: what a session holds (LISTEN, session
    /// locks) belongs to one generation.
    private(set) var generation = 0

    /// The server closed the connection, or it broke: nothing more can be sent on it.
    var isBroken: Bool { PQstatus(handle) == CONNECTION_BAD }
    /// libpq's last message on this connection, on one line.
    var lastError: String {
        let m = Self.oneLine(String(cString: PQerrorMessage(handle)))
        return m.isEmpty ? "connection lost" : m
    }

    /// Connects again with the same parameters (PQreset) and replays
    /// `sessionSetup`. Throws, as a `PostgresError`, what made it fail.
    func reconnect() throws {
        PQreset(handle)
        guard PQstatus(handle) == CONNECTION_OK else {
            throw PostgresError(sqlstate: "08006", message: Self.oneLine(String(cString: PQerrorMessage(handle))), statement: "")
        }
        generation += 1
        prepared = [:]
        withNextBegin = []
        PQsetClientEncoding(handle, "UTF8")
        for statement in sessionSetup { try run(script: statement) }
    }

    /// Runs `statement` now and after every reconnect.
    func setUp(_ statement: String) throws {
        try run(script: statement)
        sessionSetup.append(statement)
    }

    /// A setting the server reports at connect (`server_encoding`, `server_version`, …).
    func parameter(_ name: String) -> String? {
        PQparameterStatus(handle, name).map { String(cString: $0) }
    }

    /// Runs one statement (no parameters: several, separated by `;`, with the simple
    /// protocol, as migrations need). Returns its rows.
    @discardableResult
    func exec(_ sql: String, _ params: [PGValue] = []) throws -> PGResult {
        if params.isEmpty { return try check(PQexecParams(handle, sql, 0, nil, nil, nil, nil, 1), sql) }
        return try check(Self.withWire(params) { w in
            PQexecParams(handle, sql, w.count, w.types, w.values, w.lengths, w.formats, 1)
        }, sql)
    }

    /// `params` as libpq takes them: types, values (binary format), lengths and formats,
    /// valid while `body` runs.
    static func withWire<T>(_ params: [PGValue], _ body: (Wire) throws -> T) rethrows -> T {
        let wires = params.map(\.wire)
        var types = wires.map(\.oid)
        var lengths = wires.map { Int32($0.bytes?.count ?? 0) }
        var formats = [Int32](repeating: 1, count: wires.count)
        // Every value's bytes live until `body` returns.
        var pointers: [UnsafePointer<CChar>?] = []
        var buffers: [UnsafeMutablePointer<CChar>] = []
        defer { buffers.forEach { $0.deallocate() } }
        for w in wires {
            guard let b = w.bytes else { pointers.append(nil); continue }
            let p = UnsafeMutablePointer<CChar>.allocate(capacity: max(1, b.count))
            b.withUnsafeBufferPointer { src in
                if let base = src.baseAddress { UnsafeMutableRawPointer(p).copyMemory(from: base, byteCount: b.count) }
            }
            buffers.append(p)
            pointers.append(UnsafePointer(p))
        }
        return try types.withUnsafeMutableBufferPointer { t in
            try pointers.withUnsafeMutableBufferPointer { v in
                try lengths.withUnsafeMutableBufferPointer { l in
                    try formats.withUnsafeMutableBufferPointer { f in
                        try body(Wire(count: Int32(wires.count), types: t.baseAddress, values: v.baseAddress,
                                      lengths: l.baseAddress, formats: f.baseAddress))
                    }
                }
            }
        }
    }

    /// Bound parameters in libpq's shape (see `withWire`).
    struct Wire {
        let count: Int32
        let types: UnsafeMutablePointer<UInt32>?
        let values: UnsafeMutablePointer<UnsafePointer<CChar>?>?
        let lengths: UnsafeMutablePointer<Int32>?
        let formats: UnsafeMutablePointer<Int32>?
    }

    /// Several statements without parameters or results, in one round trip (simple
    /// query protocol): BEGIN with a lock, a migration file.
    func run(script sql: String) throws {
        _ = try check(PQexec(handle, sql), sql)
    }

    func check(_ result: OpaquePointer?, _ sql: String) throws -> PGResult {
        guard let result else { throw error(nil, sql) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            return PGResult(result)
        default:
            let e = error(result, sql)
            PQclear(result)
            throw e
        }
    }

    func error(_ result: OpaquePointer?, _ sql: String) -> PostgresError {
        func field(_ code: UInt8) -> String? {
            guard let result, let p = PQresultErrorField(result, Int32(code)) else { return nil }
            return String(cString: p)
        }
        let message = field(UInt8(ascii: "M")) ?? Self.oneLine(String(cString: PQerrorMessage(handle)))
        let firstLine = sql.split(separator: "\n", omittingEmptySubsequences: true).first.map {
            String($0.drop { $0 == " " })
        } ?? ""
        return PostgresError(sqlstate: field(UInt8(ascii: "C")) ?? "08006", message: Self.oneLine(message),
                             statement: firstLine.count > 120 ? String(firstLine.prefix(117)) + "..." : firstLine)
    }

    static func oneLine(_ s: String) -> String {
        s.split(whereSeparator: \.isNewline).map { String($0).trimmingCharacters(in: " \t") }.filter { !$0.isEmpty }
            .joined(separator: "; ")
    }

    /// True while no transaction is open or failed on this connection.
    var isIdle: Bool { PQtransactionStatus(handle) == PQTRANS_IDLE }

    /// Statements whose results nobody reads and that need not run at once, sent
    /// right after the BEGIN of the next transaction (the same round trip).
    /// Forgotten on a reconnect.
    var withNextBegin: [PGStatement] = []
    /// Statements whose results nobody reads, sent with this transaction's COMMIT
    /// (in the same round trip) rather than each on its own.
    var beforeCommit: [PGStatement] = []

    /// For the tests: the connection drops at the next COMMIT, just before it is
    /// sent (the transaction is rolled back) or just after its reply came (it
    /// committed): both look the same to the caller, a COMMIT without a reply.
    enum CommitFault { case beforeSending, afterCommitting }
    var commitFault: CommitFault?

    /// Closes the socket under libpq, as a network cut would (the tests' faults).
    func cut() {
        shutdown(PQsocket(handle), Int32(SHUT_RDWR))
        _ = PQconsumeInput(handle)
    }

    /// Runs `body` in a transaction (READ COMMITTED unless `begin` says otherwise):
    /// committed when it returns, rolled back when it throws. `begin` is BEGIN and
    /// the statements that go with it, sent in one round trip with `withNextBegin`;
    /// `body` gets the results of those after BEGIN. The COMMIT goes with
    /// `beforeCommit`, in one round trip too.
    func transaction<T>(begin: [PGStatement] = [.begin], _ body: ([PGResult]) throws -> T) throws -> T {
        let extra = withNextBegin
        withNextBegin = []
        beforeCommit = []
        do {
            let begun = Array(try pipeline(begin.prefix(1) + extra + begin.dropFirst()).dropFirst(1 + extra.count))
            let value = try body(begun)
            // A COMMIT that fails with the connection lost may have committed: see
            // `PostgresTaskStore.keepingConnected`.
            try pipeline(beforeCommit + [.commit])
            beforeCommit = []
            return value
        } catch {
            beforeCommit = []
            if !isIdle { _ = PQexec(handle, "ROLLBACK").map { PQclear($0) } }
            throw error
        }
    }

    /// The same, for a body that needs no results of `begin`.
    func transaction<T>(begin: [PGStatement] = [.begin], _ body: () throws -> T) throws -> T {
        try transaction(begin: begin) { (_: [PGResult]) in try body() }
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: String) -> String {
        let chars = Set(set)
        var s = Substring(self)
        while let f = s.first, chars.contains(f) { s = s.dropFirst() }
        while let l = s.last, chars.contains(l) { s = s.dropLast() }
        return String(s)
    }
}
