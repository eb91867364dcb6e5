#if canImport(Glibc)
import Glibc
#endif
import TaskQueue

/// Tells open pages that the database changed, in the store's own way
/// (`DashboardChangeWatch`):
/// - SQLite: the store's change signal (inotify on the database's directory, the
///   one idle workers sleep on) wakes it at every commit by any process; it then
///   compares the files' sizes and times. It never queries the database.
/// - PostgreSQL: not every commit signals (producers notify only a waiting
///   worker, finishes never do), so it probes: one cheap query
///   (`dashboardChangeMark`, which reads no table) at most once a second, and
///   only while somebody looks (an open event stream, or a request in the last
///   few seconds). While nobody looks, it sends nothing to the server.
/// Changes within `coalesce` seconds become one version, so a busy queue sends at
/// most a few events a second.
///
/// Two counters: `version` counts database changes (the aggregate waits on it),
/// `events` counts what pages are told: a change, or a fresh aggregate.
package final class ChangeFeed: @unchecked Sendable {
    private let lock = Mutex()
    private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var version: UInt64 = 0
    private var events: UInt64 = 0
    private var stopped = false
    private let coalesce: Double
    /// Open event streams.
    private var streams = 0
    /// When the last request came (monotonic seconds).
    private var lastRequest = -Double.infinity
    /// When the last probe started (monotonic seconds).
    private var probeStarted = -Double.infinity
    /// The store's mark (`DashboardStore.dashboardChangeMark`), and its last value.
    private var mark: (() throws -> String)?
    private var last: String?
    /// How long after a request the probe goes on without an open stream.
    static let lookingFor = 5.0
    /// Seconds between two probes.
    static let probeInterval = 1.0

    package init(coalesce: Double = 0.25) {
        self.coalesce = coalesce
        pthread_cond_init(cond, nil)
    }

    /// Starts watching on a thread of its own. `signal` wakes it (it may only
    /// time out); `mark` is compared after each wake: a different value is a change.
    package func start(watch: DashboardChangeWatch, signal: any ChangeSignal, mark: @escaping () throws -> String) {
        lock.locked { self.mark = mark }
        // Marked once at start too, with the aggregate's first pass: what
        // changes later is a change.
        look()
        spawnThread { [self] in
            while !isStopped {
                if watch == .probe {
                    guard waitUntilLooked() else { break }
                    look()
                    continue
                }
                signal.wait(timeout: 1)
                guard let m = try? mark(), m != lock.locked({ last }) else { continue }
                // Let the burst finish, then announce it once.
                usleep(useconds_t(coalesce * 1_000_000))
                signal.drain()
                look()
            }
        }
    }

    /// Reads the mark now; a different one than last time counts as a change.
    /// A caller that must count every change committed before it (a scrape)
    /// calls it first: nobody may have looked for a while.
    @discardableResult
    package func look() -> Bool {
        guard let mark = lock.locked({ self.mark }) else { return false }
        let m = try? mark()
        return lock.locked {
            guard m != last else { return false }
            last = m
            version &+= 1
            events &+= 1
            pthread_cond_broadcast(cond)
            return true
        }
    }

    /// Probe mode: waits until somebody looks and a probe is due; false once stopped.
    private func waitUntilLooked() -> Bool {
        lock.locked {
            while !stopped {
                let now = System.monotonic()
                let looked = streams > 0 || now - lastRequest < Self.lookingFor
                let due = now - probeStarted >= Self.probeInterval
                if looked && due {
                    probeStarted = now
                    return true
                }
                timedWait(looked ? max(0.01, Self.probeInterval - (now - probeStarted)) : 1)
            }
            return false
        }
    }

    /// Waits on the condition up to `seconds` (the lock held).
    private func timedWait(_ seconds: Double) {
        var deadline = timespec()
        clock_gettime(CLOCK_REALTIME, &deadline)
        let ns = Int(deadline.tv_nsec) + Int(seconds * 1e9)
        deadline.tv_sec += ns / 1_000_000_000
        deadline.tv_nsec = ns % 1_000_000_000
        pthread_cond_timedwait(cond, lock.m, &deadline)
    }

    /// A request came: in probe mode, probing goes on for a few seconds.
    package func touch() {
        lock.locked {
            let idle = streams == 0 && System.monotonic() - lastRequest >= Self.lookingFor
            lastRequest = System.monotonic()
            if idle { pthread_cond_broadcast(cond) }
        }
    }

    /// An event stream opened (true) or closed (false).
    package func stream(_ open: Bool) {
        lock.locked {
            streams += open ? 1 : -1
            pthread_cond_broadcast(cond)
        }
    }

    /// Counts a change (also called after the dashboard's own actions).
    package func bump() {
        lock.locked {
            version &+= 1
            events &+= 1
            pthread_cond_broadcast(cond)
        }
    }

    /// Tells pages to look again without a database change (a fresh aggregate).
    package func announce() {
        lock.locked {
            events &+= 1
            pthread_cond_broadcast(cond)
        }
    }

    package func stop() {
        lock.locked {
            stopped = true
            pthread_cond_broadcast(cond)
        }
    }

    private var isStopped: Bool { lock.locked { stopped } }

    package var current: UInt64 { lock.locked { version } }
    package var currentEvent: UInt64 { lock.locked { events } }

    /// Waits until the database version (or with `events`, the event count) is
    /// past `seen`, the feed stops, or `timeout` seconds pass; returns the count
    /// then (nil once stopped).
    package func wait(after seen: UInt64, timeout: Double, events: Bool = false) -> UInt64? {
        lock.locked {
            let deadline = System.monotonic() + timeout
            while (events ? self.events : version) == seen && !stopped {
                let left = deadline - System.monotonic()
                if left <= 0 { break }
                timedWait(left)
            }
            return stopped ? nil : (events ? self.events : version)
        }
    }
}
