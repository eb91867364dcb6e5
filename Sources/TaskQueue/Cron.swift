#if canImport(Glibc)
import Glibc
#endif

/// A standard 5-field cron expression — minute, hour, day of month, month, day of
/// week — or one of the shortcuts @yearly (@annually), @monthly, @weekly, @daily
/// (@midnight), @hourly.
///
/// Each field is `*`, a number, a range `a-b`, a step `*/n`, `a-b/n` or `a/n`
/// (from a to the field's maximum), or a comma-separated list of those. Months
/// may be written JAN–DEC and days of week SUN–SAT (any case); day of week 0 and
/// 7 are both Sunday. When both day of month and day of week are restricted
/// (neither starts with `*`), a day matches if either matches (the classic cron
/// rule): `0 9 1 * MON` is 09:00 on the 1st and on every Monday.
///
/// Times are read as wall-clock times in a `CronTimeZone`. Around daylight-saving
/// changes: a wall time skipped when the clocks go forward runs once, at the
/// moment of the jump (02:30 on that day runs at 03:00); a wall time that occurs
/// twice when the clocks go back runs once, the first time, unless the hour field
/// is `*` (every hour), in which case it runs in both passes so that an
/// every-N-minutes schedule keeps its pace.
public struct CronExpression: Sendable, Equatable, CustomStringConvertible {
    /// The expression as given.
    public let text: String
    var minutes: UInt64 = 0     // bits 0...59
    var hours: UInt32 = 0       // bits 0...23
    var days: UInt32 = 0        // bits 1...31
    var months: UInt16 = 0      // bits 1...12
    var weekdays: UInt8 = 0     // bits 0...6, Sunday = 0
    var dayOfMonthStar = true
    var dayOfWeekStar = true
    var hourStar = true

    public var description: String { text }

    static let shortcuts: [String: String] = [
        "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
        "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
    ]
    static let monthNames = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    static let dayNames = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]

    /// Parses `text`; a usage error names the field that is wrong.
    public init(_ text: String) throws {
        self.text = text
        let trimmed = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        var fields = trimmed
        if trimmed.count == 1, trimmed[0].hasPrefix("@") {
            guard let expanded = Self.shortcuts[trimmed[0].lowercased()] else {
                throw Self.error(text, "unknown shortcut \(trimmed[0]) (known: @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly)")
            }
            fields = expanded.split(separator: " ").map(String.init)
        }
        guard fields.count == 5 else {
            throw Self.error(text, "expected 5 fields (minute hour day-of-month month day-of-week) or a shortcut like @daily, got \(fields.count) field\(fields.count == 1 ? "" : "s")")
        }
        minutes = try Self.field(fields[0], name: "minute", 0, 59, names: nil, expr: text)
        hours = UInt32(try Self.field(fields[1], name: "hour", 0, 23, names: nil, expr: text))
        days = UInt32(try Self.field(fields[2], name: "day-of-month", 1, 31, names: nil, expr: text))
        months = UInt16(try Self.field(fields[3], name: "month", 1, 12, names: Self.monthNames, expr: text))
        let dow = try Self.field(fields[4], name: "day-of-week", 0, 7, names: Self.dayNames, expr: text)
        weekdays = UInt8((dow | (dow >> 7)) & 0x7F)
        hourStar = fields[1].hasPrefix("*")
        dayOfMonthStar = fields[2].hasPrefix("*")
        dayOfWeekStar = fields[4].hasPrefix("*")
    }

    private static func error(_ expr: String, _ why: String) -> TaskQueueError {
        .usage("cron expression \(JSON.quote(expr)): \(why)")
    }

    /// One field as a bit set of its allowed values.
    private static func field(_ f: String, name: String, _ lo: Int, _ hi: Int, names: [String]?, expr: String) throws -> UInt64 {
        func bad(_ why: String) -> TaskQueueError { error(expr, "\(name) field \(JSON.quote(f)): \(why)") }
        func value(_ s: Substring) throws -> Int {
            if let n = Int(s), String(n) == s || s.allSatisfy(\.isNumber) {
                guard n >= lo && n <= hi else { throw bad("\(n) is out of range \(lo)-\(hi)") }
                return n
            }
            if let names, let i = names.firstIndex(of: s.uppercased()) { return i + (name == "month" ? 1 : 0) }
            let what = names == nil ? "a number \(lo)-\(hi)" : (name == "month" ? "a number 1-12 or a month name (JAN-DEC)" : "a number 0-7 or a day name (SUN-SAT)")
            throw bad("\(s.isEmpty ? "empty value" : JSON.quote(String(s))) is not \(what)")
        }
        var bits: UInt64 = 0
        for item in f.split(separator: ",", omittingEmptySubsequences: false) {
            var base = item, step = 1
            if let slash = item.firstIndex(of: "/") {
                base = item[..<slash]
                let s = item[item.index(after: slash)...]
                guard let n = Int(s), n >= 1 else { throw bad("step \(JSON.quote(String(s))) is not a whole number of at least 1") }
                step = n
            }
            var a: Int, b: Int
            if base == "*" {
                a = lo; b = hi
                if name == "day-of-week" { b = 6 }
            } else if let dash = base.firstIndex(of: "-") {
                a = try value(base[..<dash])
                b = try value(base[base.index(after: dash)...])
                guard a <= b else { throw bad("range \(a)-\(b) goes backwards") }
            } else {
                a = try value(base)
                b = item.contains("/") ? hi : a
            }
            var v = a
            while v <= b { bits |= 1 << UInt64(v); v += step }
        }
        return bits
    }

    // MARK: matching wall-clock minutes

    private func dayMatches(day: Int, weekday: Int) -> Bool {
        let dom = days & (1 << UInt32(day)) != 0
        let dow = weekdays & (1 << UInt8(weekday)) != 0
        if dayOfMonthStar && dayOfWeekStar { return true }
        if dayOfMonthStar { return dow }
        if dayOfWeekStar { return dom }
        return dom || dow
    }

    /// The first wall-clock minute (minutes since 1970-01-01T00:00 read as a wall
    /// time) after `after` that matches, or nil when there is none up to `limit`.
    func nextWallMinute(after: Int64, limit: Int64) -> Int64? {
        var c = after + 1
        while c <= limit {
            let (dayNumber, minuteOfDay) = CivilTime.divMod(c, 1440)
            let (y, m, d) = CivilTime.civil(fromDays: dayNumber)
            if months & (1 << UInt16(m)) == 0 {
                c = CivilTime.days(y + (m == 12 ? 1 : 0), m == 12 ? 1 : m + 1, 1) * 1440
                continue
            }
            if !dayMatches(day: d, weekday: Int(CivilTime.divMod(dayNumber + 4, 7).1)) {
                c = (dayNumber + 1) * 1440
                continue
            }
            let h = Int(minuteOfDay / 60), mm = Int(minuteOfDay % 60)
            if hours & (1 << UInt32(h)) == 0 {
                c = dayNumber * 1440 + Int64(h + 1) * 60
                continue
            }
            let later = minutes >> UInt64(mm)
            if later == 0 {
                c = dayNumber * 1440 + Int64(h + 1) * 60
                continue
            }
            return c + Int64(later.trailingZeroBitCount)
        }
        return nil
    }

    /// How far ahead `next` looks before deciding an expression never fires:
    /// 8 years covers 29 February across a century's skipped leap year.
    static let horizonSeconds: Int64 = 8 * 366 * 86_400

    /// The first occurrence strictly after `after`, in `zone`; nil when none comes
    /// within 8 years (e.g. `0 0 30 2 *`).
    public func next(after: Timestamp, in zone: CronTimeZone = .utc) -> Timestamp? {
        let t = CivilTime.divMod(after.milliseconds, 1000).0
        guard let s = nextSecond(after: t, zone: zone) else { return nil }
        return Timestamp(milliseconds: s * 1000)
    }

    private func nextSecond(after t: Int64, zone: CronTimeZone) -> Int64? {
        let horizon = t + Self.horizonSeconds
        var from = t   // exclusive
        while from < horizon {
            let seg = zone.segment(containing: from + 1)   // candidates are > from
            let o = Int64(seg.offset)
            // Wall times below this (seconds) happened already, before the clocks went back.
            let repeatsBelow: Int64? = seg.previousOffset.flatMap { p in p > seg.offset ? seg.start + Int64(p) : nil }
            let wallLimit = seg.end == Int64.max ? (horizon + o) / 60 + 1 : (seg.end + o) / 60 + 1
            var w = CivilTime.divMod(from + o, 60).0
            while let wall = nextWallMinute(after: w, limit: wallLimit) {
                let u = wall * 60 - o
                if u >= seg.end { break }
                if let r = repeatsBelow, wall * 60 < r, !hourStar { w = wall; continue }
                return u
            }
            if seg.end == Int64.max { return nil }
            // The clocks change at seg.end. Going forward skips wall times
            // [end + o, end + o2): any of them that matches runs at the jump.
            let o2 = Int64(seg.nextOffset ?? seg.offset)
            if o2 > o, let wall = nextWallMinute(after: CivilTime.divMod(seg.end + o, 60).0 - 1, limit: (seg.end + o2) / 60 + 1),
               wall * 60 < seg.end + o2, wall * 60 >= seg.end + o {
                return seg.end
            }
            from = seg.end - 1
        }
        return nil
    }

    /// The latest occurrence at or before `time`, or nil when there is none in the
    /// 8 years before it.
    public func latest(atOrBefore time: Timestamp, in zone: CronTimeZone = .utc) -> Timestamp? {
        for window: Int64 in [7_200, 2 * 86_400, 32 * 86_400, 367 * 86_400, Self.horizonSeconds] {
            var cursor = time.adding(seconds: -Double(window))
            var found: Timestamp?
            var steps = 0
            while let n = next(after: cursor, in: zone), n <= time, steps < 100_000 {
                found = n; cursor = n; steps += 1
            }
            if let found { return found }
        }
        return nil
    }
}
