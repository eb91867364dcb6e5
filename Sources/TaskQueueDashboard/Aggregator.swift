#if canImport(Glibc)
import Glibc
#endif
import TaskQueue

/// Keeps the figures that need every row (counts of finished tasks, the chart,
/// failure groups, histograms) up to date on a thread of its own, so that no
/// page waits for a scan of a large table. It recomputes after each database
/// change on a connection of its own (requests never wait for it), one id
/// range at a time, each range in its own short read transaction (a long one
/// would keep the WAL from being checkpointed); it rests at least as long as the
/// last pass took, so a busy queue costs it at most half a core. While nothing
/// changes it reads nothing.
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
                    usleep(useconds_t(min(30, max(0.2, took)) * 1_000_000))
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

    private func compute(_ store: any DashboardStore) throws -> DashboardAggregate {
        var a = DashboardAggregate()
        let now = Timestamp.now()
        for attempts in [false, true] {
            guard let (low, high) = try store.idRange(attempts: attempts) else { continue }
            var from = low
            while from <= high {
                let to = min(high, from + Self.chunk - 1)
                if attempts { try store.aggregateAttempts(from: from, to: to, into: &a) } else {
                    try store.aggregateTasks(from: from, to: to, now: now, into: &a)
                }
                from = to + 1
            }
        }
        a.mapGroups = try store.mapGroups()
        return a
    }
}
