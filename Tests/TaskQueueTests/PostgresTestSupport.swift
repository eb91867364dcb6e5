// The PostgreSQL server for the store tests (see PostgresServer in
// TaskQueueTestSupport): its URL, and a fresh schema per test.

import Foundation
import Testing
@testable import TaskQueue
@testable import TaskQueuePostgres
import TaskQueueTestSupport
import TaskQueueConformance
#if canImport(Glibc)
import Glibc
#endif

enum TestPostgres {
    /// The server's URL, or nil with `skipReason` saying why there is none.
    static let server: (url: String?, skipReason: String) = PostgresServer.server

    static var url: String? { server.url }
    static var isAvailable: Bool { server.url != nil }
    static var skipReason: Comment { Comment(rawValue: server.skipReason) }

    private static let serial = Locked(0)

    /// A new, empty schema on the server; returns a URL whose connections use it.
    static func freshSchema() throws -> String {
        let url = try #require(url, "no PostgreSQL server")
        let n = serial.withLock { $0 += 1; return $0 }
        let name = "taskq_test_\(getpid())_\(n)"
        let admin = try PostgresConnection(url)
        try admin.exec("DROP SCHEMA IF EXISTS \(name) CASCADE")
        try admin.exec("CREATE SCHEMA \(name)")
        return with(url, searchPath: name)
    }

    /// `url` with connections put in schema `name`.
    static func with(_ url: String, searchPath name: String) -> String { PostgresServer.with(url, searchPath: name) }

    /// The factory of a fresh schema: each call opens a new connection to it.
    static func factory() throws -> StoreFactory {
        let url = try freshSchema()
        return { try PostgresTaskStore(url: url) }
    }
}
