#if canImport(Glibc)
import Glibc
#endif
import TaskQueue

/// Keeps the figures that need every row (counts of finished tasks, the chart,
/// failure groups, histograms) up to date on a thread of its own, so that no
/// page waits for a scan of a large table. It recomputes after each database
/// change on a read-only connection of its own (requests never wait for it),
/// one id range at a time, each range in its own short read transaction (a long
/// one would keep the WAL from being checkpointed). After a first full pass it
/// reads again only the ranges that may have changed (see `fullPassEvery`), and
/// it rests after each pass as long as the pass took (up to a second). While
/// nothing changes it reads nothing.
final class Aggregator: @unchecked Sendable {
    /// Ids per read transaction.
    static let chunk: Int64 = 50_000
    private let lock = Mutex()
    private let ready = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var latest: (DashboardAggregate, Timestamp, Double)?
    /// The database version (`ChangeFeed.current`) the latest pass started after.
    private var latestVersion: UInt64 = 0
    private var failure: String?

    init() { pthread_cond_init(ready, nil) }

    /// Starts the loop: a first pass at once, then one after each change.
    func start(_ d: Dashboard) {
        spawnThread { [self] in
            let store: any DashboardStore
            do {
                // It only reads: its connection cannot write.
                store = try Dashboard.openStore(d.options, readOnly: true)
            } catch {
                lock.locked {
                    failure = "\(error)"
                    pthread_cond_broadcast(ready)
                }
                return
            }
            var seen = d.feed.current &- 1
            while true {
                guard let v = d.feed.wait(after: seen, timeout: 3600) else { return }
                if v == seen { continue }
                seen = v
                let started = System.monotonic()
                do {
                    let a = try compute(store)
                    let took = System.monotonic() - started
                    lock.locked {
                        latest = (a, .now(), took)
                        latestVersion = v
                        failure = nil
                        pthread_cond_broadcast(ready)
                    }
                    d.feed.announce()
                    // A rest after each pass, as long as the pass took (at most a
                    // second: a full pass is followed by cheap ones, see
                    // `fullPassEvery`).
                    usleep(useconds_t(min(1, max(0.2, took)) * 1_000_000))
                } catch {
                    lock.locked {
                        failure = "\(error)"
                        pthread_cond_broadcast(ready)
                    }
                    usleep(1_000_000)
                }
            }
        }
    }

    /// The latest aggregate, when it was taken and how long that took. Before
    /// the first pass has finished it waits up to `timeout` seconds (nil: as
    /// long as it takes), then answers nil: a page then shows what it can and
    /// updates itself when the pass is done.
    /// With `version`, it waits (as long) for a pass that started at that
    /// database version or later, and answers the latest when none comes in time.
    func current(timeout: Double? = 0.15, version: UInt64? = nil) throws -> (DashboardAggregate, Timestamp, Double)? {
        try lock.locked {
            var deadline = timespec()
            clock_gettime(CLOCK_REALTIME, &deadline)
            let ns = Int(deadline.tv_nsec) + Int((timeout ?? 0) * 1e9)
            deadline.tv_sec += ns / 1_000_000_000
            deadline.tv_nsec = ns % 1_000_000_000
            while (latest == nil || version.map { latestVersion < $0 } == true) && failure == nil {
                if timeout == nil { pthread_cond_wait(ready, lock.m) } else if pthread_cond_timedwait(ready, lock.m, &deadline) == ETIMEDOUT { break }
            }
            if let latest { return latest }
            if let failure { throw TaskQueueError.unavailable("cannot read the database: \(failure)") }
            return nil
        }
    }

    /// A full pass at least this often while the database changes (or ten times
    /// as long as the last one took, so that full passes cost a tenth of a core
    /// at most). Between two, a pass reads again only the id ranges that may have
    /// changed: those with a queued or running task (then or now: a retried task
    /// is queued), and the newest (for the chart, those with a task finished in
    /// the last hour, by a cheaper statement). A settled range (every task
    /// finished) changes otherwise only by a purge, or a retry whose task ran to
    /// its end between two passes: the dashboard's own retry or purge is followed
    /// by a full pass, another process's is counted by the next.
    static let fullPassEvery = 60.0
    /// The figures of settled id ranges, by chunk ((id - 1) / chunk), with the
    /// range they were taken over. Used by the aggregator's thread only.
    private var settledTasks: [Int64: (from: Int64, to: Int64, a: DashboardAggregate)] = [:]
    private var settledAttempts: [Int64: (from: Int64, to: Int64, a: DashboardAggregate)] = [:]
    private var settledCharts: [Int64: (from: Int64, to: Int64, chart: DashboardAggregate)] = [:]
    private var lastFullPass = -Double.infinity
    private var lastFullPassTook = 0.0
    private var fullPassWanted = false

    /// The next pass reads every row (after the dashboard's own retry or purge).
    func invalidate() { lock.locked { fullPassWanted = true } }

    private func compute(_ store: any DashboardStore) throws -> DashboardAggregate {
        let started = System.monotonic()
        let wanted = lock.locked { () -> Bool in
            defer { fullPassWanted = false }
            return fullPassWanted
        }
        let full = wanted || started - lastFullPass >= max(Self.fullPassEvery, 10 * lastFullPassTook)
        if full {
            settledTasks = [:]
            settledAttempts = [:]
            settledCharts = [:]
            lastFullPass = started
        }
        defer { if full { lastFullPassTook = System.monotonic() - started } }
        var total = DashboardAggregate()
        // A range at or above the oldest queued or running task is read again:
        // a task retried (by any process) since the last pass lies there.
        let floor = try store.dashboardUnfinishedFloor() ?? Int64.max
        let now = Timestamp.now(), hourAgo = now.adding(seconds: -3600)
        var ranges: [(from: Int64, to: Int64, newestFinish: Timestamp?)] = []
        settledTasks = try pass(store.idRange(attempts: false), settledTasks.filter { $0.value.to < floor }, into: &total,
                                ranges: &ranges) { from, to, a in
            try store.aggregateTasks(from: from, to: to, into: &a)
            // Settled when every task in it has finished, as read in the same snapshot.
            return !a.tasks.contains { key, n in n > 0 && (key.hasSuffix("\u{0}queued") || key.hasSuffix("\u{0}running")) }
        }
        // The chart: only ranges with a task finished in the last hour. A settled
        // range's minutes do not change: they are read once, and later only the
        // minutes still in the hour are kept (while none of its tasks finished in
        // the last minute, which is counted exactly).
        let oldestMinute = String(hourAgo.iso.prefix(16)), minuteAgo = now.adding(seconds: -60)
        var charts: [Int64: (from: Int64, to: Int64, chart: DashboardAggregate)] = [:]
        for r in ranges where r.newestFinish.map({ $0 >= hourAgo }) ?? false {
            let k = (r.from - 1) / Self.chunk
            if settledTasks[k] != nil, let c = settledCharts[k], c.from == r.from, c.to == r.to,
               r.newestFinish.map({ $0 < minuteAgo }) ?? true {
                for (minute, m) in c.chart.minutes where minute >= oldestMinute { total.minutes[minute] = m.adding(total.minutes[minute]) }
                charts[k] = c
                continue
            }
            var chart = DashboardAggregate()
            try store.aggregateChart(from: r.from, to: r.to, now: now, into: &chart)
            if settledTasks[k] != nil { charts[k] = (r.from, r.to, chart) }
            total.merge(chart)
        }
        settledCharts = charts
        let attemptRange = try store.idRange(attempts: true)
        let highAttempt = attemptRange?.1 ?? 0
        var attemptRanges: [(from: Int64, to: Int64, newestFinish: Timestamp?)] = []
        settledAttempts = try pass(attemptRange, settledAttempts, into: &total, ranges: &attemptRanges) { from, to, a in
            try store.aggregateAttempts(from: from, to: to, into: &a)
            // Not the newest ranges: a PostgreSQL insert may commit below the highest id seen.
            return to + Self.chunk <= highAttempt
        }
        total.mapGroups = try store.mapGroups()
        return total
    }

    /// Adds every chunk of `range` to `total`: a settled one from `settled`,
    /// others read by `read`, which says whether what it read is settled now.
    /// Returns the settled chunks for the next pass; `ranges` gets every chunk.
    private func pass(_ range: (Int64, Int64)?, _ settled: [Int64: (from: Int64, to: Int64, a: DashboardAggregate)],
                      into total: inout DashboardAggregate, ranges: inout [(from: Int64, to: Int64, newestFinish: Timestamp?)],
                      _ read: (Int64, Int64, inout DashboardAggregate) throws -> Bool) throws
        -> [Int64: (from: Int64, to: Int64, a: DashboardAggregate)] {
        guard let (low, high) = range else { return [:] }
        var kept: [Int64: (from: Int64, to: Int64, a: DashboardAggregate)] = [:]
        for k in ((low - 1) / Self.chunk)...((high - 1) / Self.chunk) {
            let from = max(low, k * Self.chunk + 1), to = min(high, (k + 1) * Self.chunk)
            var a: DashboardAggregate
            if let c = settled[k], c.from == from, c.to == to {
                a = c.a
                kept[k] = c
            } else {
                a = DashboardAggregate()
                if try read(from, to, &a) { kept[k] = (from, to, a) }
            }
            total.merge(a)
            ranges.append((from, to, a.newestFinish))
        }
        return kept
    }
}
