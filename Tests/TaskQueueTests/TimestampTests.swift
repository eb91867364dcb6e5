#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import TaskQueue

/// Local time via mktime, independently of the code under test (TZ is not changed:
/// tests run in parallel in one process).
private func localMillis(_ y: Int, _ mo: Int, _ d: Int, _ h: Int = 0, _ mi: Int = 0, _ s: Int = 0) -> Int64 {
    var t = tm()
    t.tm_year = Int32(y - 1900)
    t.tm_mon = Int32(mo - 1)
    t.tm_mday = Int32(d)
    t.tm_hour = Int32(h)
    t.tm_min = Int32(mi)
    t.tm_sec = Int32(s)
    t.tm_isdst = -1
    return Int64(mktime(&t)) * 1000
}

private func userTimeError(_ text: String) -> String? {
    do {
        _ = try Timestamp.parseUserTime(text)
        return nil
    } catch {
        return "\(error)"
    }
}

private func durationError(_ text: String) -> String? {
    do {
        _ = try parseDuration(text)
        return nil
    } catch {
        return "\(error)"
    }
}

private struct TimestampTestRNG: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite struct TimestampTests {
    @Test func knownValues() {
        let cases: [(Int64, String)] = [
            (0, "1970-01-01T00:00:00.000Z"),
            (1, "1970-01-01T00:00:00.001Z"),
            (-1, "1969-12-31T23:59:59.999Z"),
            (1_709_210_096_789, "2024-02-29T12:34:56.789Z"),
            (1_709_251_200_000, "2024-03-01T00:00:00.000Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (-2_208_988_800_000, "1900-01-01T00:00:00.000Z"),
            (-62_135_596_800_000, "0001-01-01T00:00:00.000Z"),
            (-62_167_219_200_000, "0000-01-01T00:00:00.000Z"),
            (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
            (1_795_697_056_123, "2026-11-26T12:44:16.123Z"),
        ]
        for (ms, iso) in cases {
            let t = Timestamp(milliseconds: ms)
            #expect(t.iso == iso)
            #expect(t.description == iso)
            #expect("\(t)" == iso)
            #expect(Timestamp(iso: iso) == t, "\(iso)")
        }
    }

    @Test func clampsOutsideYears0To9999() {
        #expect(Timestamp(milliseconds: .max).iso == "9999-12-31T23:59:59.999Z")
        #expect(Timestamp(milliseconds: 253_402_300_800_000).iso == "9999-12-31T23:59:59.999Z")
        #expect(Timestamp(milliseconds: .min).iso == "0000-01-01T00:00:00.000Z")
        #expect(Timestamp(milliseconds: -62_167_219_200_001).iso == "0000-01-01T00:00:00.000Z")
        #expect(Timestamp.isoMaximum.iso.utf8.count == 24)
    }

    @Test func randomRoundTripsAndLexicalOrder() {
        var rng = TimestampTestRNG(state: 7)
        let lo = Timestamp.isoMinimum.milliseconds, hi = Timestamp.isoMaximum.milliseconds
        var samples: [Timestamp] = []
        for k in 0..<3000 {
            // Mix the whole range with values near the epoch and near "now".
            let ms: Int64
            switch k % 3 {
            case 0: ms = Int64.random(in: lo...hi, using: &rng)
            case 1: ms = Int64.random(in: -100_000_000_000...100_000_000_000, using: &rng)
            default: ms = Int64.random(in: 1_700_000_000_000...1_900_000_000_000, using: &rng)
            }
            let t = Timestamp(milliseconds: ms)
            let iso = t.iso
            #expect(iso.utf8.count == 24)
            #expect(Timestamp(iso: iso) == t, "\(ms) \(iso)")
            samples.append(t)
        }
        let byValue = samples.sorted()
        let byText = samples.sorted { $0.iso < $1.iso }
        #expect(byValue == byText)
    }

    @Test func agreesWithGmtime() {
        var rng = TimestampTestRNG(state: 99)
        for _ in 0..<2000 {
            let secs = Int64.random(in: -62_167_219_200...253_402_300_799, using: &rng)
            var tt = time_t(secs)
            var parts = tm()
            _ = gmtime_r(&tt, &parts)
            let iso = Timestamp(milliseconds: secs * 1000).iso
            let y = Int(parts.tm_year) + 1900
            var expected = String(y)
            while expected.count < 4 { expected = "0" + expected }
            func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
            expected += "-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).000Z"
            #expect(iso == expected)
        }
    }

    @Test func isoParsingVariants() {
        let base = Timestamp(iso: "2026-11-26T12:44:16.123Z")!
        #expect(Timestamp(iso: "2026-11-26T12:44:16.123") == base)
        #expect(Timestamp(iso: "2026-11-26 12:44:16.123") == base)
        #expect(Timestamp(iso: "2026-11-26T12:44:16.1234567Z") == base)
        #expect(Timestamp(iso: "2026-11-26T12:44:16Z")?.milliseconds == base.milliseconds - 123)
        #expect(Timestamp(iso: "2026-11-26T12:44:16")?.milliseconds == base.milliseconds - 123)
        #expect(Timestamp(iso: "2026-11-26T12:44:16.5Z")?.milliseconds == base.milliseconds - 123 + 500)
        #expect(Timestamp(iso: "2024-02-29T00:00:00.000Z") != nil)
        for bad in ["", "garbage", "2026-13-01T00:00:00.000Z", "2026-00-01T00:00:00.000Z", "2026-02-29T00:00:00Z",
                    "2026-04-31T00:00:00Z", "2026-11-26T24:00:00Z", "2026-11-26T12:60:00Z", "2026-11-26T12:00:60Z",
                    "2026-11-26T12:44:16.123Z ", " 2026-11-26T12:44:16.123Z", "2026-11-26T12:44:16.Z",
                    "2026-11-26T12:44:16.1234567890Z", "2026-11-26T12:44", "2026-11-26", "26-11-26T12:44:16Z",
                    "2026-11-26T12:44:16+01:00", "2026/11/26T12:44:16Z", "2026-11-26T12:44:16ZZ", "２０２６-11-26T12:44:16Z"] {
            #expect(Timestamp(iso: bad) == nil, "\(bad)")
        }
    }

    @Test func comparisonAndArithmetic() {
        let a = Timestamp(milliseconds: 1000)
        #expect(a < Timestamp(milliseconds: 1001))
        #expect(!(a < a))
        #expect(a.adding(seconds: 2.5).milliseconds == 3500)
        #expect(a.adding(seconds: -1.25).milliseconds == -250)
        #expect(a.adding(seconds: 0.0004).milliseconds == 1000)
        #expect(a.adding(seconds: 0.0006).milliseconds == 1001)
        #expect(a.adding(seconds: 86_400 * 365).milliseconds == 1000 + 31_536_000_000)
        #expect(a.adding(seconds: .nan) == a)
        #expect(a.adding(seconds: .infinity).milliseconds > 8_000_000_000_000_000_000)
        #expect(a.adding(seconds: -.infinity).milliseconds < -8_000_000_000_000_000_000)
        #expect(a.adding(seconds: 2.5).seconds(since: a) == 2.5)
        #expect(a.seconds(since: a.adding(seconds: 90)) == -90)
        #expect(Timestamp(milliseconds: .max).seconds(since: Timestamp(milliseconds: .min)) > 1e16)
        let set: Set<Timestamp> = [a, Timestamp(milliseconds: 1000), Timestamp(milliseconds: 2)]
        #expect(set.count == 2)
    }

    @Test func nowIsTheWallClock() {
        let before = Int64(time(nil))
        let t = Timestamp.now()
        let after = Int64(time(nil))
        #expect(t.milliseconds / 1000 >= before - 1)
        #expect(t.milliseconds / 1000 <= after + 1)
        #expect(Timestamp.now() >= t)
        #expect(t.iso.hasSuffix("Z") && t.iso.utf8.count == 24)
    }

    @Test func userTimeWithZoneOrOffset() throws {
        let base = Timestamp(iso: "2026-11-26T12:44:16.000Z")!
        let cases: [(String, Int64)] = [
            ("2026-11-26T12:44:16Z", base.milliseconds),
            ("2026-11-26t12:44:16z", base.milliseconds),
            ("2026-11-26 12:44:16Z", base.milliseconds),
            ("  2026-11-26T12:44:16Z\n", base.milliseconds),
            ("2026-11-26T12:44:16.5Z", base.milliseconds + 500),
            ("2026-11-26T12:44:16.123456Z", base.milliseconds + 123),
            ("2026-11-26T12:44:16.9996Z", base.milliseconds + 1000),
            ("2026-11-26T12:44:16,25Z", base.milliseconds + 250),
            ("2026-11-26T12:44Z", base.milliseconds - 16_000),
            ("2026-11-26T14:44:16+02:00", base.milliseconds),
            ("2026-11-26T14:44:16+0200", base.milliseconds),
            ("2026-11-26T14:44:16+02", base.milliseconds),
            ("2026-11-26T07:14:16-05:30", base.milliseconds),
            ("2026-11-26T07:14:16-0530", base.milliseconds),
            ("2026-11-26T12:44:16+00:00", base.milliseconds),
            ("2026-11-27T00:14:16.000+11:30", base.milliseconds),
            ("1969-12-31T23:59:59Z", -1000),
            ("2024-02-29T00:00:00Z", 1_709_164_800_000),
        ]
        for (text, ms) in cases {
            #expect(try Timestamp.parseUserTime(text).milliseconds == ms, "\(text)")
        }
    }

    @Test func userTimeLocal() throws {
        #expect(try Timestamp.parseUserTime("2026-11-26T12:44:16").milliseconds == localMillis(2026, 11, 26, 12, 44, 16))
        #expect(try Timestamp.parseUserTime("2026-11-26 12:44").milliseconds == localMillis(2026, 11, 26, 12, 44))
        #expect(try Timestamp.parseUserTime("2026-07-04T08:00:00.250").milliseconds == localMillis(2026, 7, 4, 8) + 250)
        #expect(try Timestamp.parseUserTime("2026-11-26").milliseconds == localMillis(2026, 11, 26))
        #expect(try Timestamp.parseUserTime("2024-02-29").milliseconds == localMillis(2024, 2, 29))
    }

    @Test func userTimeErrors() {
        let suffix = "; expected ISO 8601 like 2026-11-26T14:30:00Z"
        #expect(userTimeError("2026-13-01") == "invalid time '2026-13-01': month 13 out of range" + suffix)
        #expect(userTimeError("2026-00-01") == "invalid time '2026-00-01': month 0 out of range" + suffix)
        #expect(userTimeError("2026-02-30T10:00:00Z") == "invalid time '2026-02-30T10:00:00Z': day 30 out of range (February 2026 has 28 days)" + suffix)
        #expect(userTimeError("2025-02-29")?.contains("day 29 out of range (February 2025 has 28 days)") == true)
        #expect(userTimeError("2026-04-31")?.contains("day 31 out of range") == true)
        #expect(userTimeError("2026-01-00")?.contains("day 0 out of range") == true)
        #expect(userTimeError("2026-11-26T24:00:00")?.contains("hour 24 out of range") == true)
        #expect(userTimeError("2026-11-26T12:60")?.contains("minute 60 out of range") == true)
        #expect(userTimeError("2026-11-26T12:44:60Z")?.contains("second 60 out of range") == true)
        #expect(userTimeError("2026-11-26T12:44:16+24:00")?.contains("UTC offset hour 24 out of range") == true)
        #expect(userTimeError("2026-11-26T12:44:16+02:60")?.contains("UTC offset minute 60 out of range") == true)
        #expect(userTimeError("") == "invalid time '': empty" + suffix)
        #expect(userTimeError("   ")?.contains("empty") == true)
        for bad in ["garbage", "tomorrow", "2026-11-26T", "2026-11-26X", "26-11-2026", "2026-1-5", "20261126",
                    "2026-11-26T12", "2026-11-26T12:44:16.", "2026-11-26T12:44:16 Z", "2026-11-26T12:44:16+2",
                    "2026-11-26T12:44:16+02:0", "2026-11-26T12:44:16Zjunk", "12026-11-26", "2026-11-26T1:44",
                    "2026-11-26T12:44:16+02:00:00"] {
            let e = userTimeError(bad)
            #expect(e == "invalid time '\(bad)': unrecognized format" + suffix, "\(bad)")
        }
    }

    @Test func durations() throws {
        let good: [(String, Double)] = [
            ("0", 0), ("30", 30), ("1.5", 1.5), (".5", 0.5), ("250ms", 0.25), ("90s", 90), ("30m", 1800),
            ("12h", 43_200), ("7d", 604_800), ("1.5h", 5400), (" 2m ", 120), ("0s", 0), ("36500d", 3_153_600_000),
        ]
        for (text, seconds) in good {
            #expect(try parseDuration(text) == seconds, "\(text)")
        }
        let generic = "expected a number of seconds or a number with ms, s, m, h or d, like 90s, 30m, 7d"
        #expect(durationError("5x") == "invalid duration '5x': " + generic)
        for bad in ["", " ", "x", "s", "5x", "5 m", "5mm", "5M", "1e3", "nan", "inf", "Infinity", "+5", "1.2.3", ".", "5w", "5y", "m5"] {
            #expect(durationError(bad) == "invalid duration '\(bad)': " + generic, "\(bad)")
        }
        #expect(durationError("-5") == "invalid duration '-5': must not be negative")
        #expect(durationError("-1s")?.contains("must not be negative") == true)
        #expect(durationError("36600d") == "invalid duration '36600d': longer than 100 years")
        #expect(durationError(String(repeating: "9", count: 400))?.contains("invalid duration") == true)
    }

    @Test func formattingDurations() {
        let cases: [(Double, String)] = [
            (0, "0s"), (0.0004, "0ms"), (0.001, "1ms"), (0.85, "850ms"), (0.9996, "1s"), (1, "1s"), (2.5, "2.5s"),
            (9.96, "10s"), (42, "42s"), (42.4, "42s"), (59.6, "1m00s"), (192, "3m12s"), (65, "1m05s"),
            (3599.6, "1h00m"), (7500, "2h05m"), (86_370, "1d0h"), (273_600, "3d4h"), (604_800, "7d0h"),
            (-5, "-5s"), (.nan, "nan"), (.infinity, "inf"), (-.infinity, "-inf"),
        ]
        for (seconds, text) in cases {
            #expect(formatDuration(seconds) == text, "\(seconds)")
        }
        // Absurdly large values do not trap.
        #expect(formatDuration(1e300).hasSuffix("d"))
    }
}
