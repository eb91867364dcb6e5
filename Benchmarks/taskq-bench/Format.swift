// Number formatting as the Python driver printed it (format specs ".2f", ",.2f",
// ",.0f", ".0%"), without Foundation.

/// `v` with `decimals` digits after the point, rounded half to even like Python's
/// `format(v, ".2f")`; `grouped` puts commas between thousands (",.2f").
func fixed(_ v: Double, _ decimals: Int, grouped: Bool = false) -> String {
    guard v.isFinite else { return v.isNaN ? "nan" : (v < 0 ? "-inf" : "inf") }
    var scale: UInt64 = 1
    for _ in 0..<decimals { scale *= 10 }
    let scaled = (abs(v) * Double(scale)).rounded(.toNearestOrEven)
    guard scaled < 9e18 else { return "\(v)" }
    let units = UInt64(scaled)
    var whole = String(units / scale)
    if grouped {
        var out = ""
        for (i, c) in whole.enumerated() {
            if i > 0 && (whole.count - i) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        whole = out
    }
    var s = (v < 0 ? "-" : "") + whole
    if decimals > 0 {
        let frac = String(units % scale)
        s += "." + String(repeating: "0", count: decimals - frac.count) + frac
    }
    return s
}

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
