import Testing
@testable import TaskQueue
import TaskQueueStores
import TaskQueueTestSupport

/// The dashboard's stores: a read-only open cannot write, on either engine.
@Suite struct DashboardStoreTests {
    @Test func aReadOnlySQLiteStoreCannotWrite() throws {
        let dir = Harness.tempDir("taskq-dashstore")
        defer { Harness.remove(dir) }
        let path = dir + "/taskq.db"
        _ = try Stores.openStore(path, create: true).insertTasks([NewTask(kind: "a")], now: .now())
        let store = try Stores.openStore(path, create: false, readOnly: true)
        #expect(throws: TaskQueueError.self) { try store.insertTasks([NewTask(kind: "b")], now: .now()) }
        #expect(try store.tasks(TaskFilter()).map(\.kind) == ["a"])
        #expect(throws: TaskQueueError.self) { try Stores.openStore(dir + "/none.db", create: true, readOnly: true) }
    }

    @Test(.enabled(if: TestPostgres.isAvailable, TestPostgres.skipReason))
    func aReadOnlyPostgresSessionCannotWrite() throws {
        let url = try TestPostgres.freshSchema()
        _ = try Stores.openStore(url, create: true).insertTasks([NewTask(kind: "a")], now: .now())
        let store = try Stores.openStore(url, create: false, readOnly: true)
        #expect(throws: TaskQueueError.self) { try store.insertTasks([NewTask(kind: "b")], now: .now()) }
        #expect(try store.tasks(TaskFilter()).map(\.kind) == ["a"])
    }
}
