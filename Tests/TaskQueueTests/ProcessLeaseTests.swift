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
            let l = try ProcessLease(store: store, role: .supervisor, supervisorID: nil, queues: nil, kinds: ["k"], lease: lease)
            #expect(abs(l.interval - interval) < 1e-9, "lease \(lease)")
        }
    }

    /// Not before it is due; a row another process removed is a lost lease; after
    /// `end` the row is gone and a renewal that comes due is not read as a lost lease.
    @Test func renewsWhenDueReportsALossAndEndsQuietly() throws {
        let db = TempDB()
        defer { db.close() }
        let store = try db.store()
        let lease = try ProcessLease(store: store, role: .supervisor, supervisorID: nil, queues: nil, kinds: ["k"], lease: 0.15)
        let registered = try #require(try store.processes().first).heartbeatAt
        #expect(eventually { lease.dueIn == 0 })
        #expect(isFine(lease.renewIfDue()))
        #expect(try store.processes().first!.heartbeatAt > registered)

        let other = try ProcessLease(store: store, role: .supervisor, supervisorID: nil, queues: nil, kinds: ["k"], lease: 0.15)
        try db.store().removeProcess(other.id)
        #expect(eventually { other.dueIn == 0 })
        guard case .lost = other.renewIfDue() else { Issue.record("a removed row is a lost lease"); return }

        lease.end()
        #expect(try store.processes().isEmpty)
        #expect(eventually { lease.dueIn == 0 })
        #expect(isFine(lease.renewIfDue()))
    }

    /// The thread renews only while the connection is free, and reports a lost lease.
    @Test func aThreadRenewsWhileTheConnectionIsFree() throws {
        let db = TempDB()
        defer { db.close() }
        let store = try db.store()
        let lease = try ProcessLease(store: store, role: .supervisor, supervisorID: nil, queues: nil, kinds: ["k"], lease: 0.15)
        let registered = try #require(try store.processes().first).heartbeatAt
        let lost = Flag()
        lease.renewInBackground(check: {}, handle: { if case .lost = $0 { lost.set() } })
        defer { lease.withConnection { lease.end() } }
        #expect(eventually { lease.withConnection { (try? store.processes().first?.heartbeatAt).flatMap { $0 } ?? registered } > registered })
        try db.store().removeProcess(lease.id)
        #expect(eventually { lost.isSet })
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
