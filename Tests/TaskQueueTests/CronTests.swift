// Cron expressions, time zones, and the schedule store driven by an injected clock.

import Foundation
import Testing
import TaskQueueConformance
@testable import TaskQueue
@testable import TaskQueueSQLite
import TaskQueueTestSupport

private func ts(_ iso: String) -> Timestamp { Timestamp(iso: iso)! }

private func nexts(_ expr: String, after: String, _ n: Int, tz: String = "UTC") throws -> [String] {
    let c = try CronExpression(expr)
    let zone = try CronTimeZone(named: tz)
    var out: [String] = []
    var t = ts(after)
    for _ in 0..<n {
        guard let x = c.next(after: t, in: zone) else { break }
        out.append(x.iso); t = x
    }
    return out
}

@Suite struct CronTests {
    @Test func fieldsListsRangesStepsAndNames() throws {
        #expect(try nexts("*/15 * * * *", after: "2026-01-01T00:07:00.000Z", 3)
                == ["2026-01-01T00:15:00.000Z", "2026-01-01T00:30:00.000Z", "2026-01-01T00:45:00.000Z"])
        #expect(try nexts("0 9-17/4 * * *", after: "2026-01-01T10:00:00.000Z", 3)
                == ["2026-01-01T13:00:00.000Z", "2026-01-01T17:00:00.000Z", "2026-01-02T09:00:00.000Z"])
        #expect(try nexts("5,10 0 1 jan,Jul *", after: "2026-01-01T00:05:00.000Z", 3)
                == ["2026-01-01T00:10:00.000Z", "2026-07-01T00:05:00.000Z", "2026-07-01T00:10:00.000Z"])
        // 2026-01-03 is a Saturday: MON-FRI skips to Monday the 5th.
        #expect(try nexts("30 8 * * MON-FRI", after: "2026-01-02T09:00:00.000Z", 2)
                == ["2026-01-05T08:30:00.000Z", "2026-01-06T08:30:00.000Z"])
        // 7 is Sunday too (2026-01-04 is a Sunday).
        #expect(try nexts("0 0 * * 7", after: "2026-01-01T00:00:00.000Z", 1) == ["2026-01-04T00:00:00.000Z"])
        // a/n runs from a to the maximum.
        #expect(try nexts("50/5 * * * *", after: "2026-01-01T00:00:00.000Z", 3)
                == ["2026-01-01T00:50:00.000Z", "2026-01-01T00:55:00.000Z", "2026-01-01T01:50:00.000Z"])
    }

    @Test func dayOfMonthOrDayOfWeek() throws {
        // Both restricted: the 13th OR any Friday (2026-02-06 is a Friday).
        #expect(try nexts("0 0 13 * FRI", after: "2026-02-01T00:00:00.000Z", 3)
                == ["2026-02-06T00:00:00.000Z", "2026-02-13T00:00:00.000Z", "2026-02-20T00:00:00.000Z"])
        // Day of month '*': only the weekday counts.
        #expect(try nexts("0 0 * * FRI", after: "2026-02-06T00:00:00.000Z", 1) == ["2026-02-13T00:00:00.000Z"])
        // 31st only in months that have one; leap day every four years.
        #expect(try nexts("0 0 31 * *", after: "2026-01-31T00:00:00.000Z", 2) == ["2026-03-31T00:00:00.000Z", "2026-05-31T00:00:00.000Z"])
        #expect(try nexts("0 0 29 2 *", after: "2026-01-01T00:00:00.000Z", 1) == ["2028-02-29T00:00:00.000Z"])
    }

    @Test func shortcuts() throws {
        let after = "2026-03-15T10:20:00.000Z"
        #expect(try nexts("@hourly", after: after, 1) == ["2026-03-15T11:00:00.000Z"])
        #expect(try nexts("@daily", after: after, 1) == ["2026-03-16T00:00:00.000Z"])
        #expect(try nexts("@midnight", after: after, 1) == ["2026-03-16T00:00:00.000Z"])
        #expect(try nexts("@weekly", after: after, 1) == ["2026-03-22T00:00:00.000Z"])
        #expect(try nexts("@monthly", after: after, 1) == ["2026-04-01T00:00:00.000Z"])
        #expect(try nexts("@yearly", after: after, 1) == ["2027-01-01T00:00:00.000Z"])
        #expect(try nexts("@annually", after: after, 1) == ["2027-01-01T00:00:00.000Z"])
    }

    @Test func nextIsStrictlyAfter() throws {
        #expect(try nexts("* * * * *", after: "2026-01-01T00:00:00.000Z", 1) == ["2026-01-01T00:01:00.000Z"])
        #expect(try nexts("* * * * *", after: "2026-01-01T00:00:59.999Z", 1) == ["2026-01-01T00:01:00.000Z"])
    }

    @Test func badExpressionsNameTheField() {
        func message(_ e: String) -> String {
            do { _ = try CronExpression(e); return "" } catch { return "\(error)" }
        }
        #expect(message("60 * * * *").contains("minute field \"60\": 60 is out of range 0-59"))
        #expect(message("* 24 * * *").contains("hour field"))
        #expect(message("* * 0 * *").contains("day-of-month field"))
        #expect(message("* * * 13 *").contains("month field"))
        #expect(message("* * * FOO *").contains("month field \"FOO\""))
        #expect(message("* * * * 8").contains("day-of-week field"))
        #expect(message("* * * * MON-BAR").contains("day-of-week field"))
        #expect(message("*/0 * * * *").contains("minute field \"*/0\": step"))
        #expect(message("5-1 * * * *").contains("goes backwards"))
        #expect(message("* * * *").contains("expected 5 fields"))
        #expect(message("* * * * * *").contains("expected 5 fields"))
        #expect(message("@fortnightly").contains("unknown shortcut"))
        #expect(message("1,,2 * * * *").contains("minute field"))
        #expect(message("0 0 30 2 *") == "")   // parses, but never fires:
        #expect((try? CronExpression("0 0 30 2 *").next(after: ts("2026-01-01T00:00:00.000Z"))) == .some(nil))
    }

    @Test func timeZonesAndDaylightSaving() throws {
        // 09:00 in Berlin is 08:00 UTC in winter, 07:00 UTC in summer.
        #expect(try nexts("0 9 * * *", after: "2026-03-28T12:00:00.000Z", 2, tz: "Europe/Berlin")
                == ["2026-03-29T07:00:00.000Z", "2026-03-30T07:00:00.000Z"])
        // Spring forward (2026-03-29, 02:00 CET -> 03:00 CEST): 02:30 does not exist and
        // runs once at the jump (01:00 UTC); the next day as usual (00:30 UTC).
        #expect(try nexts("30 2 * * *", after: "2026-03-28T12:00:00.000Z", 2, tz: "Europe/Berlin")
                == ["2026-03-29T01:00:00.000Z", "2026-03-30T00:30:00.000Z"])
        // Fall back (2026-10-25, 03:00 CEST -> 02:00 CET): 02:30 happens twice; it runs once, the first time.
        #expect(try nexts("30 2 * * *", after: "2026-10-24T12:00:00.000Z", 2, tz: "Europe/Berlin")
                == ["2026-10-25T00:30:00.000Z", "2026-10-26T01:30:00.000Z"])
        // ...but with hour '*' the repeated hour runs in both passes.
        #expect(try nexts("30 * * * *", after: "2026-10-24T23:00:00.000Z", 4, tz: "Europe/Berlin")
                == ["2026-10-24T23:30:00.000Z", "2026-10-25T00:30:00.000Z", "2026-10-25T01:30:00.000Z", "2026-10-25T02:30:00.000Z"])
        // Southern hemisphere and a half-hour zone; far beyond the file's table (footer rule).
        #expect(try nexts("0 12 1 1 *", after: "2026-06-01T00:00:00.000Z", 1, tz: "Australia/Sydney") == ["2027-01-01T01:00:00.000Z"])
        #expect(try nexts("0 0 * * *", after: "2026-06-01T00:00:00.000Z", 1, tz: "Asia/Kolkata") == ["2026-06-01T18:30:00.000Z"])
        #expect(try nexts("0 9 4 7 *", after: "2090-01-01T00:00:00.000Z", 1, tz: "America/New_York") == ["2090-07-04T13:00:00.000Z"])
        #expect(try nexts("0 9 4 12 *", after: "2090-01-01T00:00:00.000Z", 1, tz: "America/New_York") == ["2090-12-04T14:00:00.000Z"])
    }

    @Test func unknownZonesAreRefused() {
        #expect(throws: TaskQueueError.self) { try CronTimeZone(named: "Mars/Olympus") }
        #expect(throws: TaskQueueError.self) { try CronTimeZone(named: "../../etc/passwd") }
        #expect(throws: TaskQueueError.self) { try CronTimeZone(named: "/etc/passwd") }
        #expect((try? CronTimeZone(named: "UTC")) != nil)
    }

    @Test func latestOccurrence() throws {
        let c = try CronExpression("*/10 * * * *")
        #expect(c.latest(atOrBefore: ts("2026-01-01T05:37:12.000Z")) == ts("2026-01-01T05:30:00.000Z"))
        #expect(c.latest(atOrBefore: ts("2026-01-01T05:30:00.000Z")) == ts("2026-01-01T05:30:00.000Z"))
        #expect(try CronExpression("@yearly").latest(atOrBefore: ts("2026-06-01T00:00:00.000Z")) == ts("2026-01-01T00:00:00.000Z"))
    }
}

/// The schedule store, driven with an injected clock (no waiting for minutes).
@Suite struct ScheduleStoreTests {
    private func add(_ q: Queue, _ name: String, _ cron: String, at now: Timestamp, tz: String = "UTC") throws {
        let s = try Queue.validateSchedule(name: name, cron: cron, timeZone: tz, kind: "k", payload: #"{"n":1}"#,
                                           options: EnqueueOptions(queue: "cron", priority: 2, maxAttempts: 4, timeout: 9), now: now)
        _ = try (q.store as! any ScheduleStore).addSchedule(s, replace: false, now: now)
    }

    @Test func firesEachOccurrenceOnceAtItsTime() throws {
        let db = TempDB()
        defer { db.close() }
        let q = Queue(store: try db.store())
        try add(q, "every", "* * * * *", at: ts("2026-01-01T00:00:30.000Z"))
        #expect(try q.schedules().first?.nextAt == ts("2026-01-01T00:01:00.000Z"))
        #expect(try q.fireDueSchedules(now: ts("2026-01-01T00:00:59.999Z")).isEmpty)
        let fired = try q.fireDueSchedules(now: ts("2026-01-01T00:01:00.200Z"))
        #expect(fired.map(\.occurrence) == [ts("2026-01-01T00:01:00.000Z")])
        // The same instant again, and a moment later: nothing more.
        #expect(try q.fireDueSchedules(now: ts("2026-01-01T00:01:00.200Z")).isEmpty)
        #expect(try q.fireDueSchedules(now: ts("2026-01-01T00:01:59.000Z")).isEmpty)
        let t = try #require(try q.task(fired[0].taskID))
        #expect(t.kind == "k" && t.payload == #"{"n":1}"# && t.queue == "cron" && t.priority == 2 && t.maxAttempts == 4 && t.timeout == 9)
        let s = try #require(try q.schedules().first)
        #expect(s.lastAt == ts("2026-01-01T00:01:00.000Z") && s.lastTaskID == t.id && s.nextAt == ts("2026-01-01T00:02:00.000Z"))
        #expect(sqliteInt(db.path, "SELECT count(*) FROM schedule_runs WHERE schedule = 'every'") == 1)
    }

    @Test func missedOccurrencesCollapseIntoTheLatest() throws {
        let db = TempDB()
        defer { db.close() }
        let q = Queue(store: try db.store())
        try add(q, "tenmin", "*/10 * * * *", at: ts("2026-01-01T00:00:00.000Z"))
        // No supervisor ran from 00:00 to 01:25: 8 occurrences passed; only 01:20 is enqueued.
        let fired = try q.fireDueSchedules(now: ts("2026-01-01T01:25:00.000Z"))
        #expect(fired.map(\.occurrence) == [ts("2026-01-01T01:20:00.000Z")])
        #expect(try q.schedules().first?.nextAt == ts("2026-01-01T01:30:00.000Z"))
        #expect(try q.tasks(TaskFilter(kind: "k")).count == 1)
    }

    @Test func severalSupervisorsEnqueueEachOccurrenceOnce() throws {
        let db = TempDB()
        defer { db.close() }
        let q = Queue(store: try db.store())
        try add(q, "a", "* * * * *", at: ts("2026-01-01T00:00:00.000Z"))
        try add(q, "b", "*/2 * * * *", at: ts("2026-01-01T00:00:00.000Z"))
        // Four connections (as four supervisors) race through 30 minutes, 100 ms apart.
        let stores = try (0..<4).map { _ in try db.store() }
        let counts = Locked<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 4) { i in
            let sched = Scheduler(store: stores[i])
            var t = ts("2026-01-01T00:00:00.000Z")
            var n = 0
            while t < ts("2026-01-01T00:30:00.500Z") {
                n += (try? sched.fire(now: t).count) ?? 0
                t = t.adding(seconds: 7 + Double(i) * 0.1)
            }
            counts.withLock { $0 += n }
        }
        #expect(counts.withLock { $0 } == 30 + 15)
        #expect(sqliteInt(db.path, "SELECT count(*) FROM tasks WHERE kind = 'k'") == 45)
        #expect(sqliteInt(db.path, "SELECT count(DISTINCT schedule || occurrence) FROM schedule_runs") == 45)
    }

    @Test func removeAndReplace() throws {
        let db = TempDB()
        defer { db.close() }
        let q = Queue(store: try db.store())
        try add(q, "x", "@daily", at: ts("2026-01-01T10:00:00.000Z"))
        #expect(throws: TaskQueueError.self) { try add(q, "x", "@hourly", at: ts("2026-01-01T10:00:00.000Z")) }
        let s = try Queue.validateSchedule(name: "x", cron: "@hourly", timeZone: "UTC", kind: "k", payload: "null", options: .init(),
                                           now: ts("2026-01-01T10:00:00.000Z"))
        #expect(try (q.store as! any ScheduleStore).addSchedule(s, replace: true, now: .now()) == true)
        #expect(try q.schedules().map(\.cron) == ["@hourly"])
        #expect(try q.removeSchedule(named: "x"))
        #expect(try q.removeSchedule(named: "x") == false)
        #expect(try q.schedules().isEmpty)
    }
}
