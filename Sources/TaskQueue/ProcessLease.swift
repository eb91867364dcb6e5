import CTaskQSystem
#if canImport(Glibc)
import Glibc
#endif

/// A supervisor's or worker's registration in the store: registers its process row,
/// renews its lease on schedule, says when the lease was lost (another process
/// declared this one dead and recovered its tasks), and removes the row at a clean end.
///
/// It renews through the process's one store (one database connection). A process
/// that uses the store from one thread (a supervisor) calls `renewIfDue` from its
/// loop and never locks. A worker also renews from a thread of its own
/// (`renewInBackground`) while its main thread runs handlers: the two share the
/// connection under this lease's lock (see `lock`).
package final class ProcessLease {
    package let store: any TaskStore
    /// The process row's id: the owner its tasks refer to.
    package let id: Int64
    /// Seconds a renewal keeps the lease.
    package let lease: Double
    /// Seconds between renewals: a third of the lease, so two renewals may fail
    /// before it runs out, but at least 50 ms (a tiny lease in tests) and at most
    /// 5 s (a long lease is still renewed often enough to show liveness).
    package let interval: Double
    /// When the last renewal was tried (monotonic seconds).
    private var renewedAt: Double
    private var ended = false
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    /// How a renewal went.
    package enum Renewal {
        /// Renewed, or not due yet: nothing to do.
        case fine
        /// The row is gone: this process was declared dead and its tasks recovered;
        /// it must stop at once.
        case lost
        /// The store failed (busy, unreachable); tried again after `interval`.
        case failed(any Error)
    }

    /// Registers this process (its pid, host, boot and start time) in `store`.
    package init(store: any TaskStore, role: ProcessRecord.Role, supervisorID: Int64?, queues: [String]?, kinds: [String],
                 lease: Double) throws {
        id = try store.registerProcess(role: role, supervisorID: supervisorID, pid: getpid(), host: System.hostName,
                                       bootID: System.bootID, startTicks: System.startTicks(of: getpid()) ?? 0,
                                       queues: queues, kinds: kinds, now: .now(), lease: lease)
        self.store = store
        self.lease = lease
        interval = max(0.05, min(lease / 3, 5))
        renewedAt = System.monotonic()
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Seconds until the next renewal is due (0: now). A thread that waits while
    /// holding the connection waits no longer than this.
    package var dueIn: Double { max(0, renewedAt + interval - System.monotonic()) }

    /// Renews the lease when `interval` has passed since the last try. Call with the
    /// connection held (or from the store's only thread).
    package func renewIfDue() -> Renewal {
        if ended || System.monotonic() < renewedAt + interval { return .fine }
        renewedAt = System.monotonic()
        do { return try store.heartbeat(processID: id, now: .now(), lease: lease) ? .fine : .lost } catch { return .failed(error) }
    }

    /// Removes the process row (it holds no tasks: a clean end) and renews no more.
    /// Call with the connection held; a renewal after the row is gone would read as
    /// a lost lease.
    package func end() {
        ended = true
        try? store.removeProcess(id)
    }

    // MARK: sharing the connection

    /// Takes the connection (blocks while the other thread uses it).
    package func lock() { pthread_mutex_lock(mutex) }
    package func unlock() { pthread_mutex_unlock(mutex) }

    /// `body` with the connection taken.
    package func withConnection<T>(_ body: () throws -> T) rethrows -> T {
        lock()
        defer { unlock() }
        return try body()
    }

    /// `body` with the connection given up, for the thread that holds it.
    package func withoutConnection<T>(_ body: () throws -> T) rethrows -> T {
        unlock()
        defer { lock() }
        return try body()
    }

    /// Starts a thread that renews the lease on schedule whenever the connection is
    /// free, and calls `check` before each try (a worker dies there if its
    /// supervisor is gone). It only tries for the lock: a thread holding the
    /// connection for long (an idle worker waiting for work) renews itself. It runs
    /// until `end`.
    package func renewInBackground(check: @escaping () -> Void, handle: @escaping (Renewal) -> Void) {
        let context = BackgroundRenewal(lease: self, check: check, handle: handle)
        taskq_start_thread({ p in
            Unmanaged<BackgroundRenewal>.fromOpaque(p!).takeRetainedValue().loop()
        }, Unmanaged.passRetained(context).toOpaque())
    }

    private final class BackgroundRenewal {
        let lease: ProcessLease
        let check: () -> Void
        let handle: (Renewal) -> Void

        init(lease: ProcessLease, check: @escaping () -> Void, handle: @escaping (Renewal) -> Void) {
            self.lease = lease; self.check = check; self.handle = handle
        }

        func loop() {
            var wait = lease.interval
            while true {
                usleep(UInt32(wait * 1_000_000))
                check()
                // Held: the main thread is claiming or waiting for work, and renews
                // itself meanwhile. Look again soon, for when it runs handlers.
                guard pthread_mutex_trylock(lease.mutex) == 0 else {
                    wait = lease.interval / 4
                    continue
                }
                if lease.ended {
                    lease.unlock()
                    return
                }
                let r = lease.renewIfDue()
                wait = max(0.01, lease.dueIn)
                lease.unlock()
                handle(r)
            }
        }
    }
}
