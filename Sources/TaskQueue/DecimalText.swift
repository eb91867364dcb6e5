/// Appends the decimal digits of `v` (with a leading `-` when negative) to `out`,
/// without making a `String`: for hot paths that build text as bytes (a worker's id
/// lists, JSON numbers, the benchmark's audit lines).
public func appendDecimal(_ v: Int64, to out: inout [UInt8]) {
    // Digits written backwards into a small buffer, appended at once.
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
        var k = 20
        var m = v.magnitude
        repeat {
            k -= 1
            digits[k] = UInt8(ascii: "0") + UInt8(m % 10)
            m /= 10
        } while m > 0
        if v < 0 { out.append(UInt8(ascii: "-")) }
        out.append(contentsOf: UnsafeBufferPointer(rebasing: digits[k...]))
    }
}
