#if canImport(Glibc)
import Glibc
#endif

/// A recurring schedule: a task of `kind` with `payload` enqueued at every
/// occurrence of `cron` in `timeZone`.
public struct Schedule: Sendable, Equatable {
    public var name: String
    /// The cron expression as given.
    public var cron: String
    /// IANA zone name, or "UTC".
    public var timeZone: String
    public var kind: String
    /// JSON text, copied into each task.
    public var payload: String
    /// Queue, priority, max attempts and timeout of each task (`runAt` is ignored).
    public var options: EnqueueOptions
    public var createdAt: Timestamp
    /// The next occurrence to enqueue.
    public var nextAt: Timestamp
    /// The latest occurrence enqueued, and its task.
    public var lastAt: Timestamp?
    public var lastTaskID: Int64?

    public init(name: String, cron: String, timeZone: String = "UTC", kind: String, payload: String = "null",
                options: EnqueueOptions = .init(), createdAt: Timestamp = .epoch, nextAt: Timestamp = .epoch,
                lastAt: Timestamp? = nil, lastTaskID: Int64? = nil) {
        self.name = name; self.cron = cron; self.timeZone = timeZone; self.kind = kind; self.payload = payload
        self.options = options; self.createdAt = createdAt; self.nextAt = nextAt; self.lastAt = lastAt; self.lastTaskID = lastTaskID
    }
}

/// What the store writes when a schedule comes due.
package struct SchedulePlan: Sendable {
    /// The occurrence being enqueued (part of the unique key (schedule, occurrence)).
    package var occurrence: Timestamp
    /// The schedule's new `next_at`.
    package var next: Timestamp
    package var task: NewTask
    package init(occurrence: Timestamp, next: Timestamp, task: NewTask) {
        self.occurrence = occurrence; self.next = next; self.task = task
    }
}

/// An occurrence a supervisor enqueued.
public struct FiredOccurrence: Sendable, Equatable {
    public var schedule: String
    public var occurrence: Timestamp
    public var taskID: Int64
    public init(schedule: String, occurrence: Timestamp, taskID: Int64) {
        self.schedule = schedule; self.occurrence = occurrence; self.taskID = taskID
    }
}

/// A store that keeps recurring schedules (a capability beside `TaskStore`).
package protocol ScheduleStore: AnyObject {
    /// Inserts `schedule` (its `nextAt` already computed). When a schedule of that
    /// name exists: with `replace`, it is overwritten (its history stays);
    /// otherwise nothing is written and the call throws `.failed`. Returns true
    /// when it replaced one.
    func addSchedule(_ schedule: Schedule, replace: Bool, now: Timestamp) throws -> Bool

    /// Deletes the schedule and its occurrence history; false when there is none.
    /// Tasks it enqueued stay.
    func removeSchedule(named name: String) throws -> Bool

    /// Every schedule, by name.
    func schedules() throws -> [Schedule]

    /// The earliest `nextAt` of any schedule, or nil when there is none (cheap:
    /// supervisors call it about once a second).
    func nextScheduleTime() throws -> Timestamp?

    /// In one write transaction (BEGIN IMMEDIATE): for each schedule whose
    /// `nextAt <= now`, asks `plan` for the occurrence to enqueue and inserts its
    /// task, an occurrence row keyed by (schedule, occurrence), and the new
    /// `nextAt`/`lastAt`/`lastTaskID`. A backend must guarantee that an
    /// occurrence is enqueued at most once however many processes call this at
    /// the same time: an occurrence already recorded inserts no task. A `plan`
    /// that throws skips that schedule (it stays due). Returns what it enqueued.
    func fireDueSchedules(now: Timestamp, plan: (Schedule) throws -> SchedulePlan) throws -> [FiredOccurrence]
}

/// Fires due schedules; a supervisor calls `tick` from its loop.
public final class Scheduler {
    let store: any ScheduleStore
    let now: () -> Timestamp
    let log: (String) -> Void
    private var nextLook = 0.0
    private var cachedNext: Timestamp?

    package init(store: any ScheduleStore, now: @escaping () -> Timestamp = Scheduler.clock, log: @escaping (String) -> Void = { _ in }) {
        self.store = store; self.now = now; self.log = log
    }

    /// The scheduler's clock: the system clock, shifted by
    /// `$TASKQ_TEST_CLOCK_OFFSET` seconds when set. The variable is for tests only
    /// (it lets a test see a `* * * * *` occurrence without waiting a minute);
    /// it moves schedules and nothing else.
    public static func clock() -> Timestamp {
        let now = Timestamp.now()
        return clockOffset == 0 ? now : now.adding(seconds: clockOffset)
    }

    private static let clockOffset: Double = {
        guard let v = getenv("TASKQ_TEST_CLOCK_OFFSET") else { return 0 }
        return Double(String(cString: v)) ?? 0
    }()

    /// Looks at the schedules at most once a second (so one added by another
    /// process is seen within a second), and fires those due.
    package func tick() {
        let mono = System.monotonic()
        let t = now()
        if mono >= nextLook {
            nextLook = mono + 1
            do { cachedNext = try store.nextScheduleTime() } catch { return }
        }
        guard let due = cachedNext, due <= t else { return }
        do {
            for f in try fire(now: t) {
                log("schedule \(f.schedule): enqueued task \(f.taskID) for \(f.occurrence.iso)")
            }
            cachedNext = try store.nextScheduleTime()
        } catch {
            log("schedules: \(error)")
            nextLook = mono + 1
        }
    }

    /// Enqueues every due occurrence (missed ones collapse into the latest).
    package func fire(now t: Timestamp) throws -> [FiredOccurrence] {
        try store.fireDueSchedules(now: t) { s in try Self.plan(s, now: t) }
    }

    /// The latest occurrence at or before `now` (never before `nextAt`: older
    /// missed ones are not back-filled) and the one after it.
    package static func plan(_ s: Schedule, now: Timestamp) throws -> SchedulePlan {
        let cron = try CronExpression(s.cron)
        let zone = try CronTimeZone(named: s.timeZone)
        var occurrence = s.nextAt
        if let latest = cron.latest(atOrBefore: now, in: zone), latest > occurrence { occurrence = latest }
        // No later occurrence within 8 years: park it far ahead rather than fire again.
        let next = cron.next(after: max(occurrence, now), in: zone) ?? Timestamp.isoMaximum
        var options = s.options
        // Ready at once by the system clock (the scheduler's clock may be shifted in tests).
        options.runAt = Timestamp.now()
        return SchedulePlan(occurrence: occurrence, next: next, task: NewTask(kind: s.kind, payload: s.payload, options: options))
    }
}

extension Queue {
    private var scheduleStore: any ScheduleStore {
        get throws { try capability((any ScheduleStore).self, "keep schedules") }
    }

    /// Adds a recurring schedule: a task of `kind` at every occurrence of `cron`
    /// (5 fields or @daily-style, see `CronExpression`) in `timeZone`. Checks
    /// everything first (a bad field is a usage error naming it). Returns the
    /// stored schedule with its first occurrence in `nextAt`.
    @discardableResult
    public func addSchedule(name: String, cron: String, timeZone: String = "UTC", kind: String, payload: String = "null",
                            options: EnqueueOptions = .init(), replace: Bool = false) throws -> Schedule {
        let now = Scheduler.clock()
        let s = try Self.validateSchedule(name: name, cron: cron, timeZone: timeZone, kind: kind, payload: payload,
                                          options: options, now: now)
        _ = try scheduleStore.addSchedule(s, replace: replace, now: now)
        return s
    }

    /// Checks a schedule and computes its first occurrence, writing nothing.
    public static func validateSchedule(name: String, cron: String, timeZone: String, kind: String, payload: String,
                                        options: EnqueueOptions, now: Timestamp) throws -> Schedule {
        try validateName(name, what: "schedule")
        let expr = try CronExpression(cron)
        let zone = try CronTimeZone(named: timeZone)
        var options = options
        options.runAt = nil
        try validate(NewTask(kind: kind, payload: payload, options: options))
        guard let first = expr.next(after: now, in: zone) else {
            throw TaskQueueError.usage("cron expression \(JSON.quote(cron)): day-of-month and month never match (like 30 February), so it would never run")
        }
        return Schedule(name: name, cron: cron, timeZone: timeZone, kind: kind, payload: payload, options: options,
                        createdAt: now, nextAt: first)
    }

    /// Removes a schedule; false when there is none of that name.
    @discardableResult
    public func removeSchedule(named name: String) throws -> Bool { try scheduleStore.removeSchedule(named: name) }

    /// Every schedule, by name.
    public func schedules() throws -> [Schedule] { try scheduleStore.schedules() }

    /// Enqueues every schedule occurrence due at `now` (what a running supervisor
    /// does about once a second). Returns what it enqueued.
    @discardableResult
    public func fireDueSchedules(now: Timestamp = Scheduler.clock()) throws -> [FiredOccurrence] {
        try Scheduler(store: scheduleStore).fire(now: now)
    }
}
