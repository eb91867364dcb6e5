#if canImport(Glibc)
import Glibc
#endif

/// "Wake me when the queue changes", as a store provides it: an idle worker, or
/// `Queue.waitFor`, sleeps on it instead of polling the database. Each store has
/// its own way (SQLite: inotify on the database's directory; PostgreSQL:
/// LISTEN/NOTIFY on the store's connection). A slow timeout remains the fallback,
/// so a missed signal only costs latency.
///
/// Callers loop: `drain()`, look for work, `wait(timeout:)`, again.
package protocol ChangeSignal: AnyObject {
    /// Takes the signals that arrived; true if any did. Call before looking for
    /// work, so that a change after the look still wakes `wait`.
    @discardableResult
    func drain() -> Bool

    /// Sleeps until the queue changes, a signal arrives, or `timeout` seconds
    /// pass. After `stopWaiting` (and at the first call) it may only arm itself
    /// and return at once: a change between the caller's last look and the
    /// arming was not signalled, so the caller must look again before it sleeps.
    func wait(timeout: Double)

    /// The caller found work and will not wait for a while: a store whose
    /// producers signal only while someone waits may tell them to stop.
    func stopWaiting()
}

extension ChangeSignal {
    package func stopWaiting() {}
}

/// Plain timeouts: for a store with no way to signal changes.
package final class PollingSignal: ChangeSignal {
    package init() {}
    package func drain() -> Bool { false }
    package func wait(timeout: Double) { poll(nil, 0, Int32(max(0, min(timeout, 3600)) * 1000)) }
}
