import CSQLite
import TaskQueue
#if canImport(Glibc)
import Glibc
#endif

/// SQLITE_TRANSIENT: tells SQLite to copy bound text/blobs before the call returns.
/// (Computed, not global `let`s: each use of a global goes through a one-time
/// initialization check.)
private var transient: sqlite3_destructor_type { unsafeBitCast(-1, to: sqlite3_destructor_type.self) }
/// SQLITE_STATIC: the bound memory stays valid and unchanged while it is bound.
private var staticValue: sqlite3_destructor_type { unsafeBitCast(0, to: sqlite3_destructor_type.self) }

/// A prepared statement, kept for the life of its connection and reset after use.
final class Statement {
    let stmt: OpaquePointer
    unowned let connection: SQLiteConnection

    init(_ stmt: OpaquePointer, connection: SQLiteConnection) {
        self.stmt = stmt
        self.connection = connection
        parameterCount = Int(sqlite3_bind_parameter_count(stmt))
        slots = .allocate(capacity: max(1, parameterCount))
        slots.initialize(repeating: Slot(), count: max(1, parameterCount))
    }

    deinit {
        sqlite3_finalize(stmt)
        for k in 0..<parameterCount { slots[k].buffer.deallocate() }
        slots.deallocate()
    }

    /// What a parameter holds. Each parameter has one byte buffer, reused for
    /// every text or blob bound to it and handed to SQLite as SQLITE_STATIC:
    /// SQLite reads the value in place instead of copying it into an allocation of
    /// its own (a malloc, a copy and a free per bound value; about a tenth of an
    /// enqueue's work outside SQLite). A buffer stays bound until the parameter is
    /// bound again (or to NULL by `releaseLargeBuffers()`) or the statement is
    /// finalized, as SQLITE_STATIC requires.
    /// Values over 64 KiB are copied by SQLite instead, so a large result does not
    /// stay allocated here.
    private struct Slot {
        var buffer = UnsafeMutableRawBufferPointer(start: nil, count: 0)
        /// What the parameter is bound to: while it is `buffer`, the length times 2,
        /// plus 1 for text; `Slot.null`, `Slot.integer` (the value in `integer`),
        /// or `Slot.unknown`. SQLite keeps bindings across resets, so binding the
        /// same value again (a batch's kind, queue, priority and unset options,
        /// transaction after transaction) is skipped: a compare instead of a copy
        /// and a call into SQLite.
        var bound = Slot.unknown
        var integer: Int64 = 0
        static let unknown = -1, null = -2, integer = -3
    }

    /// (A `let` pointer rather than an array property: Swift checks exclusive
    /// access at run time on every use of a class's `var`.)
    private let slots: UnsafeMutablePointer<Slot>
    private let parameterCount: Int
    private static let keptBufferLimit = 65_536

    private func bindBytes(_ i: Int32, _ src: UnsafeRawBufferPointer, text: Bool) {
        let n = src.count
        let p: UnsafeRawPointer
        let kept = n <= Self.keptBufferLimit && Int(i) <= parameterCount && i >= 1
        // A buffer the parameter may still be bound to, freed only once the new
        // value is bound: a failed bind leaves the old binding in place.
        var outgrown = UnsafeMutableRawBufferPointer(start: nil, count: 0)
        if !kept {
            forget(i)
            // An empty buffer may have no address; SQLite needs a non-NULL pointer for ''.
            p = src.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!
        } else {
            let k = Int(i) - 1
            if slots[k].bound == n * 2 + (text ? 1 : 0) && (n == 0 || memcmp(slots[k].buffer.baseAddress!, src.baseAddress!, n) == 0) {
                return
            }
            // SQLite reads a bound value only while stepping, and the statement is
            // reset: a buffer big enough is overwritten in place before the bind.
            if slots[k].buffer.count < n || slots[k].buffer.baseAddress == nil {
                outgrown = slots[k].buffer
                let capacity = max(64, n + n / 2)
                slots[k].buffer = .allocate(byteCount: capacity, alignment: 8)
                if capacity > Self.largeBufferBytes { holdsLargeBuffers = true }
            }
            if n > 0 { slots[k].buffer.baseAddress!.copyMemory(from: src.baseAddress!, byteCount: n) }
            p = UnsafeRawPointer(slots[k].buffer.baseAddress!)
        }
        let destructor = kept ? staticValue : transient
        let rc = text ? sqlite3_bind_text(stmt, i, p.assumingMemoryBound(to: CChar.self), Int32(n), destructor)
                      : sqlite3_bind_blob(stmt, i, p, Int32(n), destructor)
        if kept {
            if outgrown.baseAddress != nil {
                // A failed bind is still bound to the old buffer: keep that one.
                if rc != SQLITE_OK { swap(&outgrown, &slots[Int(i) - 1].buffer) }
                outgrown.deallocate()
            }
            record(i, rc, n * 2 + (text ? 1 : 0))
        }
    }

    /// Bytes held in parameter buffers.
    var keptBytes: Int { (0..<parameterCount).reduce(0) { $0 + slots[$1].buffer.count } }

    /// Buffers larger than this are freed by `releaseLargeBuffers()`.
    static let largeBufferBytes = 1_024
    /// Whether a buffer over `largeBufferBytes` was allocated since the last
    /// `releaseLargeBuffers()`.
    private var holdsLargeBuffers = false

    /// Frees every parameter buffer over `largeBufferBytes`, binding its
    /// parameter to NULL. A multi-row insert binds a payload per row,
    /// and its statement is kept: without this, it would hold up to its last
    /// hundred payloads (each up to 64 KiB) for the life of the connection. Short
    /// values keep their buffers, so the next batch still skips rebinding equal ones.
    func releaseLargeBuffers() {
        guard holdsLargeBuffers else { return }
        holdsLargeBuffers = false
        sqlite3_reset(stmt)
        for k in 0..<parameterCount where slots[k].buffer.count > Self.largeBufferBytes {
            sqlite3_bind_null(stmt, Int32(k + 1))
            slots[k].buffer.deallocate()
            slots[k].buffer = UnsafeMutableRawBufferPointer(start: nil, count: 0)
            slots[k].bound = Slot.null
        }
    }

    /// Parameter `i` is about to hold something not tracked in its slot.
    @inline(__always)
    private func forget(_ i: Int32) {
        if i >= 1 && Int(i) <= parameterCount { slots[Int(i) - 1].bound = Slot.unknown }
    }

    /// Whether parameter `i` is known to hold `bound` (and `integer`).
    @inline(__always)
    private func holds(_ i: Int32, _ bound: Int, _ integer: Int64 = 0) -> Bool {
        guard i >= 1 && Int(i) <= parameterCount else { return false }
        let k = Int(i) - 1
        return slots[k].bound == bound && (bound != Slot.integer || slots[k].integer == integer)
    }

    /// Records what parameter `i` holds after a bind that returned `rc`.
    @inline(__always)
    private func record(_ i: Int32, _ rc: Int32, _ bound: Int, _ integer: Int64 = 0) {
        guard i >= 1 && Int(i) <= parameterCount else { return }
        slots[Int(i) - 1].bound = rc == SQLITE_OK ? bound : Slot.unknown
        slots[Int(i) - 1].integer = integer
    }

    @discardableResult
    func bind(_ values: SQLValue...) -> Statement { bind(values) }

    @discardableResult
    func bind(_ values: [SQLValue]) -> Statement {
        sqlite3_reset(stmt)
        sqlite3_clear_bindings(stmt)
        for k in 0..<parameterCount { slots[k].bound = Slot.null }   // clear_bindings binds NULL
        for (i, v) in values.enumerated() { bind(v, at: Int32(i + 1)) }
        return self
    }

    // Direct binds for the hot paths (no enum, no array). Call `reset()` first
    // and bind every parameter.
    func reset() { sqlite3_reset(stmt) }
    func bind(_ i: Int32, _ v: Int64) {
        if !holds(i, Slot.integer, v) { record(i, sqlite3_bind_int64(stmt, i, v), Slot.integer, v) }
    }
    func bind(_ i: Int32, _ v: Int64?) {
        if let v { bind(i, v) } else { bindNull(i) }
    }
    func bind(_ i: Int32, _ v: Double?) {
        if let v { forget(i); sqlite3_bind_double(stmt, i, v) } else { bindNull(i) }
    }
    func bindNull(_ i: Int32) {
        if !holds(i, Slot.null) { record(i, sqlite3_bind_null(stmt, i), Slot.null) }
    }
    func bind(_ i: Int32, _ v: String) {
        // A native string lends its bytes without the copy `withUTF8` needs.
        if v.utf8.withContiguousStorageIfAvailable({ bindBytes(i, UnsafeRawBufferPointer($0), text: true) }) != nil { return }
        var v = v
        v.withUTF8 { bindBytes(i, UnsafeRawBufferPointer($0), text: true) }
    }
    /// Binds UTF-8 `text` (copied: the caller's buffer may go right after).
    func bind(_ i: Int32, text: UnsafeRawBufferPointer) {
        bindBytes(i, text, text: true)
    }
    func bind(_ i: Int32, bytes: [UInt8], asText: Bool = false) {
        bytes.withUnsafeBytes { bindBytes(i, $0, text: asText) }
    }

    func bind(_ value: SQLValue, at i: Int32) {
        switch value {
        case .null: bindNull(i)
        case .int(let v): bind(i, v)
        case .double(let v): bind(i, v)
        case .text(let v): bind(i, v)
        case .blob(let bytes): bind(i, bytes: bytes)
        }
    }

    /// Steps once: true when a row is available.
    func step() throws -> Bool {
        let rc = sqlite3_step(stmt)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        let sql = String(cString: sqlite3_sql(stmt))
        let err = connection.error(rc, sql: sql, during: String(sql.prefix(80)))
        sqlite3_reset(stmt)
        throw err
    }

    /// Steps to completion, ignoring rows, then resets.
    func run() throws {
        defer { sqlite3_reset(stmt) }
        while try step() {}
    }

    /// Collects every row through `row`, then resets.
    func rows<T>(_ row: (Statement) throws -> T) throws -> [T] {
        defer { sqlite3_reset(stmt) }
        var out: [T] = []
        while try step() { out.append(try row(self)) }
        return out
    }

    func firstRow<T>(_ row: (Statement) throws -> T) throws -> T? {
        defer { sqlite3_reset(stmt) }
        return try step() ? try row(self) : nil
    }

    func int(_ i: Int32) -> Int64 { sqlite3_column_int64(stmt, i) }
    func isNull(_ i: Int32) -> Bool { sqlite3_column_type(stmt, i) == SQLITE_NULL }
    func optionalInt(_ i: Int32) -> Int64? { isNull(i) ? nil : int(i) }
    func double(_ i: Int32) -> Double { sqlite3_column_double(stmt, i) }
    func optionalDouble(_ i: Int32) -> Double? { isNull(i) ? nil : double(i) }
    func text(_ i: Int32) -> String? {
        guard let p = sqlite3_column_text(stmt, i) else { return nil }
        let n = Int(sqlite3_column_bytes(stmt, i))
        return String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self)
    }
    func string(_ i: Int32) -> String { text(i) ?? "" }
    func bytes(_ i: Int32) -> [UInt8]? {
        if isNull(i) { return nil }
        let n = Int(sqlite3_column_bytes(stmt, i))
        guard n > 0, let p = sqlite3_column_blob(stmt, i) else { return [] }
        return Array(UnsafeRawBufferPointer(start: p, count: n))
    }
}

/// A value bound to a statement parameter.
enum SQLValue {
    case null
    case int(Int64)
    case double(Double)
    case text(String)
    case blob([UInt8])

    static func opt(_ s: String?) -> SQLValue { s.map { .text($0) } ?? .null }
    static func opt(_ v: Int64?) -> SQLValue { v.map { .int($0) } ?? .null }
    static func opt(_ v: Double?) -> SQLValue { v.map { .double($0) } ?? .null }
    static func ts(_ t: Timestamp) -> SQLValue { .text(t.iso) }
}
