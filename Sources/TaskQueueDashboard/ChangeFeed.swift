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
    /// Probes started and completed; one asked for by `sync`.
    private var started: UInt64 = 0
    private var probes: UInt64 = 0
    private var probeWanted = false
    private var probeStarted = -Double.infinity
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
        spawnThread { [self] in
            var last: String? = watch == .signal ? try? mark() : nil
            while !isStopped {
                if watch == .probe {
                    guard waitUntilLooked() else { break }
                } else {
                    signal.wait(timeout: 1)
                }
                let now = try? mark()
                if now != last {
                    if watch == .signal {
                        // Let the burst finish, then announce it once.
                        usleep(useconds_t(coalesce * 1_000_000))
                        signal.drain()
                        last = try? mark()
                    } else {
                        last = now
                    }
                    bump()
                }
                if watch == .probe { finishProbe() }
            }
        }
    }

    /// Probe mode: waits until somebody looks and a probe is due (or asked for
    /// by `sync`); false once stopped.
    private func waitUntilLooked() -> Bool {
        lock.locked {
            while !stopped {
                let now = System.monotonic()
                let looked = streams > 0 || now - lastRequest < Self.lookingFor
                let due = probeWanted || now - probeStarted >= Self.probeInterval
                if looked && due {
                    probeStarted = now
                    probeWanted = false
                    started &+= 1
                    return true
                }
                timedWait(looked ? max(0.01, Self.probeInterval - (now - probeStarted)) : 1)
            }
            return false
        }
    }

    private func finishProbe() {
        lock.locked {
            probes &+= 1
            pthread_cond_broadcast(cond)
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

    /// Probe mode: has a probe run now (waiting at most `timeout` seconds), so
    /// that `current` counts every change committed before this call.
    package func sync(timeout: Double = 2) {
        lock.locked {
            lastRequest = System.monotonic()
            // A probe already running may have read before this call: wait for the next.
            let target = started &+ 1
            probeWanted = true
            pthread_cond_broadcast(cond)
            let deadline = System.monotonic() + timeout
            while probes < target && !stopped {
                let left = deadline - System.monotonic()
                if left <= 0 { break }
                timedWait(left)
            }
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
