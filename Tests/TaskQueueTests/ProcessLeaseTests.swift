// ProcessLease: a process's row and lease, renewed on schedule from one thread or
// two sharing the store's connection.

import Foundation
import Testing
@testable import TaskQueue
@testable import TaskQueueSQLite
import TaskQueueTestSupport

@Suite struct ProcessLeaseTests {
    @Test func renewsEveryThirdOfTheLeaseWithinBounds() throws {
        let db = TempDB()
        defer { db.close() }
        let store = try db.store()
        for (lease, interval) in [(0.03, 0.05), (0.9, 0.3), (9.0, 3.0), (30.0, 5.0)] {
            let l = try register(store, lease: lease)
            #expect(abs(l.interval - interval) < 1e-9, "lease \(lease)")
        }
    }

    /// Not before it is due; a row another process removed is a lost lease; after
    /// `end` the row is gone and a renewal that comes due is not read as a lost lease.
    @Test func renewsWhenDueReportsALossAndEndsQuietly() throws {
        try withLease { db, store, lease, registered in
            #expect(eventually { lease.dueIn == 0 })
            #expect(isFine(lease.renewIfDue()))
            #expect(try store.processes().first!.heartbeatAt > registered)

            let other = try register(store)
            try db.store().removeProcess(other.id)
            #expect(eventually { other.dueIn == 0 })
            if case .lost = other.renewIfDue() {} else { Issue.record("a removed row is a lost lease") }

            lease.end()
            #expect(try store.processes().isEmpty)
            #expect(eventually { lease.dueIn == 0 })
            #expect(isFine(lease.renewIfDue()))
        }
    }

    /// The thread renews when the connection is free, and reports a lost lease.
    @Test func aThreadRenewsWhenTheConnectionIsFree() throws {
        try withLease { db, store, lease, registered in
            let lost = Flag()
            lease.renewInBackground(check: {}, handle: { if case .lost = $0 { lost.set() } })
            defer { lease.withConnection { lease.end() } }
            #expect(eventually { lease.withConnection { (try? store.processes().first?.heartbeatAt).flatMap { $0 } ?? registered } > registered })
            try db.store().removeProcess(lease.id)
            #expect(eventually { lost.isSet })
        }
    }

    /// `body` with a lease of 0.15 s on a fresh database, and the heartbeat it registered with.
    private func withLease(_ body: (TempDB, SQLiteTaskStore, ProcessLease, Timestamp) throws -> Void) throws {
        let db = TempDB()
        defer { db.close() }
        let store = try db.store()
        let lease = try register(store)
        try body(db, store, lease, try #require(try store.processes().first).heartbeatAt)
    }

    private func register(_ store: SQLiteTaskStore, lease: Double = 0.15) throws -> ProcessLease {
        try ProcessLease(store: store, role: .supervisor, supervisorID: nil, queues: nil, kinds: ["k"], lease: lease)
    }

    private func isFine(_ r: ProcessLease.Renewal) -> Bool { if case .fine = r { return true } else { return false } }
}

/// Set once from another thread.
private final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}
