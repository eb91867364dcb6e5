import CLibPQ
import TaskQueue

/// The rows of one statement, read in binary format; freed with it.
final class PGResult {
    private let r: OpaquePointer
    init(_ r: OpaquePointer) { self.r = r }
    deinit { PQclear(r) }

    var count: Int { Int(PQntuples(r)) }
    /// Rows the statement changed (UPDATE, DELETE, INSERT).
    var changes: Int { Int(String(cString: PQcmdTuples(r))) ?? 0 }

    func isNull(_ row: Int, _ col: Int) -> Bool { PQgetisnull(r, Int32(row), Int32(col)) == 1 }

    private func raw(_ row: Int, _ col: Int) -> UnsafeRawBufferPointer {
        let n = Int(PQgetlength(r, Int32(row), Int32(col)))
        return UnsafeRawBufferPointer(start: PQgetvalue(r, Int32(row), Int32(col)), count: n)
    }

    private func be(_ b: UnsafeRawBufferPointer, at: Int = 0, _ width: Int) -> UInt64 {
        var v: UInt64 = 0
        for k in 0..<width { v = v << 8 | UInt64(b[at + k]) }
        return v
    }

    /// An integer column (int2, int4 or int8), or a bool as 0/1.
    func int(_ row: Int, _ col: Int) -> Int64 {
        let b = raw(row, col)
        switch b.count {
        case 8: return Int64(bitPattern: be(b, 8))
        case 4: return Int64(Int32(bitPattern: UInt32(be(b, 4))))
        case 2: return Int64(Int16(bitPattern: UInt16(be(b, 2))))
        case 1: return Int64(b[0])
        default: return 0
        }
    }
    func optionalInt(_ row: Int, _ col: Int) -> Int64? { isNull(row, col) ? nil : int(row, col) }
    func bool(_ row: Int, _ col: Int) -> Bool { !isNull(row, col) && int(row, col) != 0 }

    func double(_ row: Int, _ col: Int) -> Double {
        let b = raw(row, col)
        return b.count == 8 ? Double(bitPattern: be(b, 8)) : 0
    }
    func optionalDouble(_ row: Int, _ col: Int) -> Double? { isNull(row, col) ? nil : double(row, col) }

    func string(_ row: Int, _ col: Int) -> String { String(decoding: raw(row, col), as: UTF8.self) }
    func text(_ row: Int, _ col: Int) -> String? { isNull(row, col) ? nil : string(row, col) }

    func bytes(_ row: Int, _ col: Int) -> [UInt8]? { isNull(row, col) ? nil : Array(raw(row, col)) }

    /// A timestamptz column, to the millisecond.
    func timestamp(_ row: Int, _ col: Int) -> Timestamp {
        let micros = Int64(bitPattern: be(raw(row, col), 8))
        let (q, r) = micros.quotientAndRemainder(dividingBy: 1000)
        return Timestamp(milliseconds: (r < 0 ? q - 1 : q) + PGType.epochMs)
    }
    func optionalTimestamp(_ row: Int, _ col: Int) -> Timestamp? { isNull(row, col) ? nil : timestamp(row, col) }

    /// A one-dimensional array of bigint or text (NULL elements skipped).
    func int64s(_ row: Int, _ col: Int) -> [Int64]? {
        array(row, col) { b, at, n in n == 8 ? Int64(bitPattern: be(b, at: at, 8)) : Int64(Int32(bitPattern: UInt32(be(b, at: at, 4)))) }
    }
    func strings(_ row: Int, _ col: Int) -> [String]? {
        array(row, col) { b, at, n in String(decoding: UnsafeRawBufferPointer(rebasing: b[at..<(at + n)]), as: UTF8.self) }
    }

    private func array<T>(_ row: Int, _ col: Int, _ element: (UnsafeRawBufferPointer, Int, Int) -> T) -> [T]? {
        if isNull(row, col) { return nil }
        let b = raw(row, col)
        guard b.count >= 12 else { return [] }
        let dims = Int(be(b, at: 0, 4))
        if dims == 0 { return [] }
        let n = Int(be(b, at: 12, 4))
        var at = 12 + 8 * dims
        var out: [T] = []
        out.reserveCapacity(n)
        for _ in 0..<n {
            let len = Int(Int32(bitPattern: UInt32(be(b, at: at, 4))))
            at += 4
            if len < 0 { continue }
            out.append(element(b, at, len))
            at += len
        }
        return out
    }

    /// `read(row)` for every row.
    func rows<T>(_ read: (Int) throws -> T) rethrows -> [T] {
        var out: [T] = []
        out.reserveCapacity(count)
        for i in 0..<count { out.append(try read(i)) }
        return out
    }
}
