// The factory that turns a `--db` value into a store, and PostgreSQL's change signal.

import CLibPQ
import Testing
@testable import TaskQueue
@testable import TaskQueuePostgres
import TaskQueueStores
import TaskQueueTestSupport

@Suite struct StoresTests {
    @Test func postgresURLsAndKeyValueStringsArePostgres() {
        for db in ["postgresql://u@h/db", "postgres://h/db", "postgresql:///db?host=/tmp", "host=db dbname=jobs",
                   "dbname=jobs", "service=queue", " host = db"] {
            #expect(Stores.isPostgres(db), "\(db)")
        }
        for db in ["taskq.db", "/var/lib/q.db", "./host=x.db", "dir/host=x", "hostname.db", "postgresql.db", ""] {
            #expect(!Stores.isPostgres(db), "\(db)")
        }
    }

    @Test func labelsLeaveThePasswordOut() {
        #expect(Stores.label("postgresql://taskq:s3cret@db.example:5432/jobs") == "postgresql://taskq@db.example:5432/jobs")
        #expect(Stores.label("postgresql://db.example/jobs?password=s3cret&sslmode=require")
                == "postgresql://db.example/jobs?sslmode=require")
        #expect(Stores.label("host=db password=s3cret dbname=jobs") == "host=db dbname=jobs")
        #expect(Stores.label("host=db password='s 3cret' dbname=jobs") == "host=db dbname=jobs")
        #expect(Stores.label("/srv/q:s3cret@x.db") == "/srv/q:s3cret@x.db")
    }

    @Test func aPathOpensSQLite() throws {
        let dir = Harness.tempDir("taskq-stores")
        defer { Harness.remove(dir) }
        let q = try Queue.open(database: dir + "/q.db")
        #expect(q.location == dir + "/q.db")
        #expect(throws: TaskQueueError.self) { try Queue.open(database: dir + "/missing.db", create: false) }
    }
}

@Suite(.enabled(if: TestPostgres.isAvailable, TestPostgres.skipReason))
struct PostgresChangeSignalTests {
    /// Whether `listener` got a notification on `channel` by now.
    private func notified(_ listener: PostgresConnection) throws -> Bool {
        try listener.exec("SELECT 1")
        PQconsumeInput(listener.handle)
        var any = false
        while let n = PQnotifies(listener.handle) { PQfreemem(n); any = true }
        return any
    }

    @Test func producersNotifyOnlyWhileSomeoneWaits() throws {
        let url = try TestPostgres.freshSchema()
        let producer = try Queue.open(database: url)
        let listener = try PostgresConnection(url)
        try listener.exec("LISTEN \(PostgresChangeSignal.channel)")
        try producer.enqueue(kind: "k")
        #expect(try notified(listener) == false)

        let waiterStore = try PostgresTaskStore(url: url)
        let signal = waiterStore.makeChangeSignal(claims: true)
        signal.wait(timeout: 0)   // arms: LISTEN, and the waiting locks
        try producer.enqueue(kind: "k")
        #expect(try notified(listener))
        signal.wait(timeout: 5)
        #expect(signal.drain() == false)   // `wait` took it

        // Waiting again before the worker's next transaction keeps the locks it holds.
        signal.stopWaiting()
        signal.wait(timeout: 0)
        try producer.enqueue(kind: "k")
        #expect(try notified(listener))

        // The locks go with the worker's next transaction (its claim), each released once.
        signal.stopWaiting()
        try waiterStore.db.transaction {}
        try producer.enqueue(kind: "k")
        #expect(try notified(listener) == false)
        let pid = try waiterStore.db.exec("SELECT pg_backend_pid()").int(0, 0)
        #expect(try listener.exec("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = $1::int4", [.int(pid)])
            .int(0, 0) == 0)
    }

    @Test func synchronousMapsToSynchronousCommit() throws {
        let url = try TestPostgres.freshSchema()
        let normal = try Stores.openStore(url, create: true, synchronous: .normal) as! PostgresTaskStore
        #expect(try normal.db.exec("SHOW synchronous_commit").text(0, 0) == "off")
        let full = try Stores.openStore(url, create: true, synchronous: .full) as! PostgresTaskStore
        #expect(try full.db.exec("SHOW synchronous_commit").text(0, 0) == "on")
        // Not given: the server's own setting stays.
        let server = try PostgresConnection(url).exec("SHOW synchronous_commit").text(0, 0)
        let byDefault = try Stores.openStore(url, create: true) as! PostgresTaskStore
        #expect(try byDefault.db.exec("SHOW synchronous_commit").text(0, 0) == server)
    }
}
