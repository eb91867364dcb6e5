// Times and durations, without Foundation.
//
// taskq stores times in SQLite as fixed-width UTC ISO-8601 text with milliseconds,
// `2026-11-26T12:44:16.123Z` (24 characters), so that comparing the text compares the
// times and people can read them in the sqlite3 shell.

#if canImport(Glibc)
import Glibc
#endif

/// A point in time with millisecond precision, as milliseconds since the Unix epoch (UTC).
public struct Timestamp: Comparable, Hashable, Sendable, CustomStringConvertible {
    /// Milliseconds since 1970-01-01T00:00:00Z (negative before it).
    public var milliseconds: Int64

    /// The time `milliseconds` after the Unix epoch.
    public init(milliseconds: Int64) {
        self.milliseconds = milliseconds
    }

    /// The Unix epoch, 1970-01-01T00:00:00.000Z.
    public static let epoch = Timestamp(milliseconds: 0)

    /// The earliest time `iso` can show: 0000-01-01T00:00:00.000Z.
    public static let isoMinimum = Timestamp(milliseconds: -62_167_219_200_000)

    /// The latest time `iso` can show: 9999-12-31T23:59:59.999Z.
    public static let isoMaximum = Timestamp(milliseconds: 253_402_300_799_999)

    public static func < (a: Timestamp, b: Timestamp) -> Bool {
        a.milliseconds < b.milliseconds
    }

    /// The current wall-clock time (`clock_gettime(CLOCK_REALTIME)`).
    public static func now() -> Timestamp {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Timestamp(milliseconds: Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000)
    }

    /// This time plus `seconds` (which may be negative), rounded to the nearest
    /// millisecond. NaN adds nothing; huge values saturate instead of trapping.
    public func adding(seconds: Double) -> Timestamp {
        guard !seconds.isNaN else { return self }
        let delta = (seconds * 1000).rounded()
        let limit = 9.0e18   // comfortably inside Int64
        let clamped = delta > limit ? limit : (delta < -limit ? -limit : delta)
        let (sum, overflow) = milliseconds.addingReportingOverflow(Int64(clamped))
        if overflow { return Timestamp(milliseconds: clamped > 0 ? .max : .min) }
        return Timestamp(milliseconds: sum)
    }

    /// Seconds from `other` to this time (positive when this is later).
    public func seconds(since other: Timestamp) -> Double {
        let (d, overflow) = milliseconds.subtractingReportingOverflow(other.milliseconds)
        if overflow { return (Double(milliseconds) - Double(other.milliseconds)) / 1000 }
        return Double(d) / 1000
    }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ` in UTC, always 24 characters. Times outside years
    /// 0000–9999 are clamped to `isoMinimum` / `isoMaximum`.
    public var iso: String {
        let ms = min(max(milliseconds, Timestamp.isoMinimum.milliseconds), Timestamp.isoMaximum.milliseconds)
        let (days, msOfDay) = floorDivMod(ms, 86_400_000)
        let (y, m, d) = CivilTime.civil(fromDays: days)
        let h = Int(msOfDay / 3_600_000)
        let mi = Int(msOfDay / 60_000 % 60)
        let s = Int(msOfDay / 1000 % 60)
        let f = Int(msOfDay % 1000)
        return String(unsafeUninitializedCapacity: 24) { buf in
            @inline(__always) func put(_ at: Int, _ v: Int, _ width: Int) {
                var v = v
                var k = at + width - 1
                while k >= at {
                    buf[k] = UInt8(truncatingIfNeeded: 0x30 + v % 10)
                    v /= 10
                    k -= 1
                }
            }
            put(0, y, 4); buf[4] = 0x2D
            put(5, m, 2); buf[7] = 0x2D
            put(8, d, 2); buf[10] = 0x54
            put(11, h, 2); buf[13] = 0x3A
            put(14, mi, 2); buf[16] = 0x3A
            put(17, s, 2); buf[19] = 0x2E
            put(20, f, 3); buf[23] = 0x5A
            return 24
        }
    }

    /// Parses the stored format `YYYY-MM-DDTHH:MM:SS.mmmZ` as UTC. Also accepted: no
    /// fraction, 1–9 fraction digits (truncated to milliseconds), no `Z`, and a space
    /// instead of `T` (as SQLite's `datetime()` writes). Nil for anything else,
    /// including out-of-range fields.
    public init?(iso: String) {
        var text = iso
        let parsed: Int64? = text.withUTF8 { b -> Int64? in
            let n = b.count
            guard n >= 19 else { return nil }
            @inline(__always) func num(_ at: Int, _ width: Int) -> Int? {
                var v = 0
                for k in at..<(at + width) {
                    let c = b[k] &- 0x30
                    guard c < 10 else { return nil }
                    v = v * 10 + Int(c)
                }
                return v
            }
            guard let y = num(0, 4), b[4] == 0x2D, let mo = num(5, 2), b[7] == 0x2D, let d = num(8, 2),
                  b[10] == 0x54 || b[10] == 0x20,
                  let h = num(11, 2), b[13] == 0x3A, let mi = num(14, 2), b[16] == 0x3A, let s = num(17, 2)
            else { return nil }
            var k = 19
            var ms = 0
            if k < n && b[k] == 0x2E {
                k += 1
                var digits = 0
                while k < n, b[k] &- 0x30 < 10 {
                    if digits < 3 { ms = ms * 10 + Int(b[k] - 0x30) }
                    digits += 1
                    k += 1
                }
                guard digits >= 1 && digits <= 9 else { return nil }
                while digits < 3 { ms *= 10; digits += 1 }
            }
            if k < n && b[k] == 0x5A { k += 1 }
            guard k == n, mo >= 1 && mo <= 12, d >= 1 && d <= CivilTime.daysInMonth(y, mo),
                  h <= 23, mi <= 59, s <= 59 else { return nil }
            return (CivilTime.days(y, mo, d) * 86_400 + Int64(h * 3600 + mi * 60 + s)) * 1000 + Int64(ms)
        }
        guard let parsed else { return nil }
        milliseconds = parsed
    }

    /// The same as `iso`.
    public var description: String { iso }

    /// Parses a time given by a person (e.g. `--at`): an ISO 8601 date-time such as
    /// `2026-11-26T12:44:16`, with optional fractional seconds (rounded to
    /// milliseconds) and an optional `Z`, `+HH:MM`, `-HH:MM`, `+HHMM` or `+HH` offset.
    /// `T` may be a space; the seconds may be left out (`2026-11-26T12:44`); a date
    /// alone (`2026-11-26`) means local midnight. Without `Z` or an offset the time is
    /// local time (via `mktime`, honouring `TZ`). Surrounding whitespace is ignored.
    /// Throws `TimeParseError` naming what was wrong.
    public static func parseUserTime(_ text: String) throws -> Timestamp {
        var parser = UserTimeParser(text)
        return try parser.parse()
    }
}

/// Why `Timestamp.parseUserTime` rejected its input.
public struct TimeParseError: Error, CustomStringConvertible, Sendable, Equatable {
    /// A message for people, e.g. "invalid time '2026-13-01': month 13 out of range; expected ISO 8601 like 2026-11-26T14:30:00Z".
    public var description: String

    /// An error with the message `description`.
    public init(_ description: String) {
        self.description = description
    }
}

/// Why `parseDuration` rejected its input.
public struct DurationParseError: Error, CustomStringConvertible, Sendable, Equatable {
    /// A message for people, e.g. "invalid duration '5x': expected ...".
    public var description: String

    /// An error with the message `description`.
    public init(_ description: String) {
        self.description = description
    }
}

/// The longest duration `parseDuration` accepts: 100 years of 365.25 days, in seconds.
public let maximumDurationSeconds: Double = 100 * 365.25 * 86_400

/// Parses a duration: a plain non-negative number of seconds (`1.5`, `30`), or a number
/// with one unit suffix `ms`, `s`, `m`, `h` or `d` (`250ms`, `90s`, `30m`, `12h`, `7d`,
/// `1.5h`). Numbers are decimal digits with an optional fraction (no sign, no
/// exponent). Surrounding whitespace is ignored. Rejects negatives, empty text,
/// NaN/infinity, unknown units and values over 100 years by throwing
/// `DurationParseError`. Returns seconds.
public func parseDuration(_ text: String) throws -> Double {
    let trimmed = trimmedASCIIWhitespace(text)
    func fail(_ why: String? = nil) -> DurationParseError {
        DurationParseError("invalid duration '\(text)': "
            + (why ?? "expected a number of seconds or a number with ms, s, m, h or d, like 90s, 30m, 7d"))
    }
    let u = Array(trimmed.utf8)
    if u.first == 0x2D { throw fail("must not be negative") }
    var k = 0
    var digits = 0
    var dots = 0
    while k < u.count {
        let c = u[k]
        if c &- 0x30 < 10 { digits += 1 } else if c == 0x2E { dots += 1 } else { break }
        k += 1
    }
    guard digits > 0, dots <= 1, let number = Double(String(decoding: u[0..<k], as: UTF8.self)) else {
        throw fail()
    }
    let multiplier: Double
    switch String(decoding: u[k...], as: UTF8.self) {
    case "", "s": multiplier = 1
    case "ms": multiplier = 0.001
    case "m": multiplier = 60
    case "h": multiplier = 3600
    case "d": multiplier = 86_400
    default: throw fail()
    }
    let seconds = number * multiplier
    guard seconds.isFinite else { throw fail() }
    if seconds > maximumDurationSeconds { throw fail("longer than 100 years") }
    return seconds
}

/// Formats `seconds` for people: `850ms`, `2.5s`, `42s`, `3m12s`, `2h05m`, `3d4h`.
/// Under a second: milliseconds; under 10 s: tenths when not whole; then whole seconds,
/// minutes+seconds, hours+minutes, days+hours (each rounded to its smaller unit).
/// Negative values get a leading `-`; NaN prints `nan`, infinities `inf` / `-inf`.
public func formatDuration(_ seconds: Double) -> String {
    if seconds.isNaN { return "nan" }
    if seconds < 0 { return "-" + formatDuration(-seconds) }
    if seconds.isInfinite { return "inf" }
    if seconds == 0 { return "0s" }
    func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
    if seconds < 1 {
        let ms = Int64((seconds * 1000).rounded())
        if ms < 1000 { return "\(ms)ms" }
    }
    if seconds < 10 {
        let tenths = Int64((seconds * 10).rounded())
        if tenths < 100 {
            return tenths % 10 == 0 ? "\(tenths / 10)s" : "\(tenths / 10).\(tenths % 10)s"
        }
    }
    if seconds > 9.0e15 { return "\(Int64(min(seconds / 86_400, 9.0e18)))d" }
    let totalSeconds = Int64(seconds.rounded())
    if totalSeconds < 60 { return "\(totalSeconds)s" }
    if totalSeconds < 3600 { return "\(totalSeconds / 60)m\(two(totalSeconds % 60))s" }
    let totalMinutes = Int64((seconds / 60).rounded())
    if totalMinutes < 24 * 60 { return "\(totalMinutes / 60)h\(two(totalMinutes % 60))m" }
    let totalHours = Int64((seconds / 3600).rounded())
    return "\(totalHours / 24)d\(totalHours % 24)h"
}

// MARK: - Calendar arithmetic (proleptic Gregorian, UTC)

/// Floor division and the matching non-negative remainder.
@inline(__always)
private func floorDivMod(_ a: Int64, _ b: Int64) -> (Int64, Int64) {
    let q = a / b
    let r = a % b
    return r < 0 ? (q - 1, r + b) : (q, r)
}

private func trimmedASCIIWhitespace(_ s: String) -> Substring {
    @inline(__always) func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D }
    let v = s.utf8
    guard let first = v.firstIndex(where: { !isSpace($0) }), let last = v.lastIndex(where: { !isSpace($0) }) else {
        return s[s.endIndex...]
    }
    return s[first...last]
}

// MARK: - User time parsing

private let monthNames = ["January", "February", "March", "April", "May", "June", "July",
                          "August", "September", "October", "November", "December"]

/// The parser behind `Timestamp.parseUserTime`.
private struct UserTimeParser {
    let text: String
    let u: [UInt8]
    var k = 0

    init(_ text: String) {
        self.text = text
        u = Array(trimmedASCIIWhitespace(text).utf8)
    }

    func fail(_ why: String) -> TimeParseError {
        TimeParseError("invalid time '\(text)': \(why); expected ISO 8601 like 2026-11-26T14:30:00Z")
    }

    /// Exactly `width` digits at the cursor (not followed by another digit unless
    /// `more` allows it), or nil (cursor unchanged).
    mutating func digits(_ width: Int, more: Bool = false) -> Int? {
        guard k + width <= u.count else { return nil }
        var v = 0
        for j in k..<(k + width) {
            let c = u[j] &- 0x30
            guard c < 10 else { return nil }
            v = v * 10 + Int(c)
        }
        // Reject a longer run of digits, e.g. a 5-digit year.
        if !more && k + width < u.count && u[k + width] &- 0x30 < 10 { return nil }
        k += width
        return v
    }

    mutating func eat(_ c: UInt8) -> Bool {
        if k < u.count && u[k] == c { k += 1; return true }
        return false
    }

    mutating func parse() throws -> Timestamp {
        if u.isEmpty { throw fail("empty") }
        let format = fail("unrecognized format")
        guard let year = digits(4), eat(0x2D), let month = digits(2), eat(0x2D), let day = digits(2) else {
            throw format
        }
        var hour = 0, minute = 0, second = 0, millis = 0
        var offsetSeconds: Int? = nil
        var hasTime = false
        if k < u.count {
            guard u[k] == 0x54 || u[k] == 0x74 || u[k] == 0x20 else { throw format }
            k += 1
            hasTime = true
            guard let h = digits(2), eat(0x3A), let mi = digits(2) else { throw format }
            hour = h
            minute = mi
            if eat(0x3A) {
                guard let s = digits(2) else { throw format }
                second = s
                if eat(0x2E) || eat(0x2C) {
                    var n = 0
                    var scale = 100
                    var roundUp = false
                    while k < u.count, u[k] &- 0x30 < 10 {
                        let dgt = Int(u[k] - 0x30)
                        if n < 3 { millis += dgt * scale; scale /= 10 } else if n == 3 { roundUp = dgt >= 5 }
                        n += 1
                        k += 1
                    }
                    guard n > 0 else { throw format }
                    if roundUp { millis += 1 }
                }
            }
            if k < u.count {
                if eat(0x5A) || eat(0x7A) {
                    offsetSeconds = 0
                } else if u[k] == 0x2B || u[k] == 0x2D {
                    let sign = u[k] == 0x2D ? -1 : 1
                    k += 1
                    guard let oh = digits(2, more: true) else { throw format }
                    var om = 0
                    if eat(0x3A) {
                        guard let m = digits(2) else { throw format }
                        om = m
                    } else if k < u.count {
                        guard let m = digits(2) else { throw format }
                        om = m
                    }
                    guard oh <= 23 else { throw fail("UTC offset hour \(oh) out of range") }
                    guard om <= 59 else { throw fail("UTC offset minute \(om) out of range") }
                    offsetSeconds = sign * (oh * 3600 + om * 60)
                } else {
                    throw format
                }
            }
            guard k == u.count else { throw format }
        }
        guard month >= 1 && month <= 12 else { throw fail("month \(month) out of range") }
        let dim = CivilTime.daysInMonth(year, month)
        guard day >= 1 && day <= dim else {
            throw fail("day \(day) out of range (\(monthNames[month - 1]) \(year) has \(dim) days)")
        }
        if hasTime {
            guard hour <= 23 else { throw fail("hour \(hour) out of range") }
            guard minute <= 59 else { throw fail("minute \(minute) out of range") }
            guard second <= 59 else { throw fail("second \(second) out of range") }
        }
        let wholeSeconds: Int64
        if let offsetSeconds {
            wholeSeconds = CivilTime.days(year, month, day) * 86_400
                + Int64(hour * 3600 + minute * 60 + second - offsetSeconds)
        } else {
            var t = tm()
            t.tm_year = Int32(year - 1900)
            t.tm_mon = Int32(month - 1)
            t.tm_mday = Int32(day)
            t.tm_hour = Int32(hour)
            t.tm_min = Int32(minute)
            t.tm_sec = Int32(second)
            t.tm_isdst = -1
            wholeSeconds = Int64(mktime(&t))
        }
        return Timestamp(milliseconds: wholeSeconds * 1000 + Int64(millis))
    }
}
