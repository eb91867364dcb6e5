import CTaskQSystem
import TaskQueue
#if canImport(Glibc)
import Glibc
#endif

// Connection loss. A supervisor or worker keeps its store for hours; its server
// may restart or the network drop meanwhile. The retry lives here, in the store,
// rather than in the core's loops: only the store can tell a lost connection from
// a refused statement (libpq's CONNECTION_BAD), knows what a session held (LISTEN,
// session locks, SET) and must be set up again, and can tell whether a COMMIT whose
// reply was lost committed. The core stays store-agnostic, and a caller sharing
// the store under a lock (the heartbeat) sees a call that took longer, not a new
// connection. One-shot commands do not keep their connection: a lost one fails
// the command at once, as any unavailable database does.

/// A lost connection, from its first failure until a reconnect succeeds.
struct Outage {
    /// When it began (monotonic seconds).
    let since: Double
    /// The first failure's message: what the warning and the error say.
    let message: String
    /// The next reconnect's delay: 0.1 s, doubling to 5 s.
    var delay = 0.1
    /// Not before this time (monotonic seconds).
    var nextTry: Double
}

extension PostgresTaskStore {
    /// Makes this store reconnect when its connection is lost (the server
    /// restarted, the network dropped) instead of failing: a call that meets a
    /// lost connection reconnects with backoff and runs again, for up to `budget`
    /// seconds, or until a signal arrives (the caller may have to stop, or reap a
    /// child); then it fails with `.unavailable` (transient), and the next call
    /// goes on where it left off. For long-running processes (supervisors,
    /// workers), whose own loops call again.
    package func keepConnected(budget: Double) { reconnectBudget = budget }

    /// Runs `body`; when it (or an earlier call) lost the connection, reconnects
    /// and runs it again. Running it again is safe: a transaction that failed
    /// before its COMMIT was sent was rolled back by the server; one whose COMMIT
    /// reply was lost may have committed, and every write a supervisor or worker
    /// makes is fenced (a finish by owner, attempt and state; a recovery deletes the
    /// process row first; a schedule fires by its stored next time) except the
    /// claim, which `finishAndClaim` settles from its owner's claimed list (see
    /// `UncertainFinish`), and registering a process, which at worst leaves an
    /// extra row with no tasks that expires and is removed by recovery.
    func keepingConnected<T>(_ body: () throws -> T) throws -> T {
        let deadline = System.monotonic() + (reconnectBudget ?? 0)
        while true {
            if outage != nil || db.isBroken { try reconnect(until: deadline) }
            do {
                return try body()
            } catch let e as PostgresError where db.isBroken {
                lost(e.message)
            } catch let e as TaskQueueError where db.isBroken {
                lost(e.message)   // from a nested `pg`, already in taskq's words
            } catch let e as PostgresError {
                throw explained(e).taskQueueError(location: db.location)
            }
        }
    }

    /// Notes a lost connection; the first failure of an outage logs one warning.
    private func lost(_ message: String) {
        guard outage == nil else { return }
        let now = System.monotonic()
        // libpq repeats itself when it meets the closed socket twice.
        var seen = Set<Substring>()
        let message = message.split(separator: "; ").filter { seen.insert($0).inserted }.joined(separator: "; ")
        outage = Outage(since: now, message: message, nextTry: now)
        System.log("taskq \(getpid()): lost the connection to \(db.location) (\(message)); reconnecting", level: .warning)
    }

    /// Reconnects, waiting between tries (with jitter, so that many workers do not
    /// reconnect in step), until it succeeds, `deadline` would pass or a signal
    /// arrives.
    private func reconnect(until deadline: Double) throws {
        if outage == nil { lost(db.lastError) }
        while var o = outage {
            while System.monotonic() < o.nextTry {
                if System.monotonic() + 0.05 > deadline || Self.signalArrived {
                    throw TaskQueueError(.unavailable, "lost the connection to \(db.location) (\(o.message)); reconnecting",
                                         isTransient: true)
                }
                usleep(UInt32(min(0.05, o.nextTry - System.monotonic()) * 1_000_000))
            }
            do {
                try db.reconnect()
                System.log("taskq \(getpid()): reconnected to \(db.location) after \(formatDuration(System.monotonic() - o.since))")
                outage = nil
            } catch {
                o.nextTry = System.monotonic() + o.delay * Double.random(in: 0.5...1)
                o.delay = min(5, o.delay * 2)
                outage = o
            }
        }
    }

    /// A signal this process has yet to act on: a flag set by a worker's handler,
    /// or one a supervisor blocks and waits for.
    private static var signalArrived: Bool {
        if taskq_peek_signal_flags() != 0 { return true }
        var set = sigset_t()
        sigemptyset(&set)
        guard sigpending(&set) == 0 else { return false }
        return [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGCHLD, SIGUSR1].contains { sigismember(&set, $0) == 1 }
    }
}
