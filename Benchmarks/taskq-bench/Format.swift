// Number formatting as the Python driver printed it (format specs ".2f", ",.2f",
// ",.0f", ".0%"), without Foundation.
#if canImport(Glibc)
import Glibc
#endif

/// `v` with `decimals` digits after the point (C's "%.*f": the exact value rounded
/// half to even, as Python's `format(v, ".2f")` does); `grouped` puts commas between
/// thousands (",.2f").
func fixed(_ v: Double, _ decimals: Int, grouped: Bool = false) -> String {
    var buf = [CChar](repeating: 0, count: 400)
    _ = withVaList([Int32(decimals), v]) { vsnprintf(&buf, buf.count, "%.*f", $0) }
    let s = String(cString: buf)
    guard grouped, v.isFinite else { return s }
    let sign = s.hasPrefix("-") ? "-" : ""
    let digits = s.dropFirst(sign.count)
    let whole = digits.prefix { $0 != "." }
    var out = ""
    for (i, c) in whole.enumerated() {
        if i > 0 && (whole.count - i) % 3 == 0 { out.append(",") }
        out.append(c)
    }
    return sign + out + digits.dropFirst(whole.count)
}

/// An integer with thousands commas, like Python's `format(n, ",")`.
func grouped(_ n: Int) -> String { fixed(Double(n), 0, grouped: true) }

/// A ratio as a whole percentage, like Python's `format(x, ".0%")`.
func percent(_ x: Double) -> String { fixed(x * 100, 0) + "%" }

/// `s` padded with spaces on the right to `width` characters (never cut).
func padRight(_ s: String, _ width: Int) -> String {
    s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
}

/// `s` padded with spaces on the left to `width` characters (never cut).
func padLeft(_ s: String, _ width: Int) -> String {
    s.count >= width ? s : String(repeating: " ", count: width - s.count) + s
}

/// The median of `xs` (the mean of the middle two for an even count), like Python's statistics.median.
func median(_ xs: [Double]) -> Double {
    precondition(!xs.isEmpty, "median of nothing")
    let s = xs.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}
