import CLibPQ
import TaskQueue
#if canImport(Glibc)
import Glibc
#endif

/// PostgreSQL's `ChangeSignal`: LISTEN on the store's own connection, and `poll()`
/// on its socket until a NOTIFY arrives or the timeout passes.
///
/// A NOTIFY takes a database-wide lock at commit, which caps producers at a few
/// hundred commits a second; so producers send one only while some process waits.
/// A waiting process holds, for as long as it waits, a shared session lock on each
/// of `slots` advisory keys; a producer's insert transaction tries to take one key
/// (chosen by its backend pid) exclusive until it commits: when it cannot, someone
/// waits, and it notifies (`notifyIfWaiting`). A process that starts waiting while
/// such an insert is in flight waits for its commit to take the key, then looks for
/// work once more before it sleeps (`wait` arms and returns first), so it sees that
/// insert. Two producers holding the same key at once send one NOTIFY too many:
/// harmless, and rare with one key per slot.
final class PostgresChangeSignal: ChangeSignal {
    /// The channel producers notify and waiters listen on.
    static let channel = "taskq_changed"
    static let waitKey: Int32 = 0x7471_7761   // "tqwa"
    static let slots = 16
    private static let oid = "'tasks'::regclass::oid::integer"

    /// Run in every transaction that makes tasks claimable now (inserts, retries,
    /// resumes, released dependants, recovered tasks): notify only if some process waits.
    static let notifyIfWaiting = "SELECT pg_notify('\(channel)', '') WHERE NOT pg_try_advisory_xact_lock(\(waitKey) + pg_backend_pid() % \(slots), \(oid))"
    /// Run by changes every idle worker must see (stop): notify whether or not one waits.
    static let notifyAlways = "SELECT pg_notify('\(channel)', '')"

    private static let lockAll = "SELECT pg_advisory_lock_shared(\(waitKey) + s, \(oid)) FROM generate_series(0, \(slots - 1)) s"
    private static let unlockAll = "SELECT pg_advisory_unlock_shared(\(waitKey) + s, \(oid)) FROM generate_series(0, \(slots - 1)) s"

    private let db: PostgresConnection
    private var listening = false
    /// The waiting locks are held.
    private var armed = false
    /// The connection's generation they belong to: a reconnected session holds
    /// neither, and the next `wait` LISTENs and arms again.
    private var generation = 0

    init(db: PostgresConnection) { self.db = db; generation = db.generation }

    /// Forgets what the old session held once the store has reconnected.
    private func followReconnect() {
        guard generation != db.generation else { return }
        generation = db.generation
        listening = false
        armed = false
    }

    func drain() -> Bool {
        followReconnect()
        guard listening, !db.isBroken else { return false }
        PQconsumeInput(db.handle)
        var any = false
        while let n = PQnotifies(db.handle) {
            PQfreemem(n)
            any = true
        }
        return any
    }

    func wait(timeout: Double) {
        followReconnect()
        // A lost connection: back at once, so that the caller's next store call
        // reconnects (with backoff) rather than sleeping on a dead socket.
        if db.isBroken { return }
        if !armed && arm() { return }
        let ms = { (t: Double) in Int32(max(0, min(t, 3600)) * 1000) + 1 }
        guard armed else { poll(nil, 0, ms(timeout)); return }
        var p = pollfd(fd: PQsocket(db.handle), events: Int16(POLLIN), revents: 0)
        let deadline = System.monotonic() + timeout
        while true {
            if drain() || db.isBroken { return }
            let left = deadline - System.monotonic()
            if left <= 0 { return }
            if poll(&p, 1, ms(left)) <= 0 { return }   // timeout or EINTR (signal)
            if p.revents & Int16(POLLERR | POLLHUP | POLLNVAL) != 0 { poll(nil, 0, ms(left)); return }
        }
    }

    /// The locks go with the worker's next transaction (its claim follows at
    /// once), not in a round trip of their own before it.
    func stopWaiting() {
        followReconnect()
        guard armed, !db.isBroken else { return }
        armed = false
        db.withNextBegin.append(PGStatement(sql: Self.unlockAll))
    }

    /// LISTENs (once) and takes the waiting locks. False when the server refused:
    /// the caller then sleeps out its timeouts instead.
    private func arm() -> Bool {
        // Still held (their unlock not sent yet): keep them.
        if let i = db.withNextBegin.firstIndex(where: { $0.sql == Self.unlockAll }) {
            db.withNextBegin.remove(at: i)
            armed = true
            return true
        }
        guard db.isIdle else { return false }
        do {
            try db.run(script: (listening ? "" : "LISTEN \(Self.channel); ") + Self.lockAll)
            listening = true
            armed = true
            return true
        } catch {
            return false
        }
    }
}

extension PostgresTaskStore {
    /// For a worker, LISTEN/NOTIFY on this store's connection (see
    /// `PostgresChangeSignal`). What makes a task claimable now (an insert, a
    /// retry, a resume, a dependant released, a task recovered) and stop
    /// sentinels notify, so a wait for anything else (a task finishing, a
    /// supervisor leaving) polls.
    package func makeChangeSignal(claims: Bool) -> any ChangeSignal {
        claims ? PostgresChangeSignal(db: db) : PollingSignal()
    }

    /// Names the database in messages as `label` (the URL it was opened with, its
    /// password left out) rather than by database and host.
    package func setLocation(_ label: String) { db.location = label }

    /// Whether this connection's commits wait for the WAL to reach disk
    /// (`synchronous_commit`; on is PostgreSQL's default). Off: a commit returns
    /// before its WAL is flushed, and a server crash may lose the last commits
    /// (up to three times `wal_writer_delay`, 600 ms by default); never a
    /// half-written one, and a taskq process crash loses nothing.
    package func setSynchronousCommit(_ on: Bool) throws {
        try pg { try db.setUp("SET synchronous_commit = \(on ? "on" : "off")") }
    }
}
