// A PostgreSQL server for the tests: the one $TASKQ_TEST_POSTGRES_URL names, or a
// private one started for this test run (initdb into a temporary directory, unix
// socket only, fsync off), stopped when the test process exits. Where neither is
// possible the PostgreSQL suites are skipped with the reason, never passed.

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
    static let server: (url: String?, skipReason: String) = start()

    static var url: String? { server.url }
    static var isAvailable: Bool { server.url != nil }
    static var skipReason: Comment { Comment(rawValue: server.skipReason) }

    static let bin = "/usr/lib/postgresql/15/bin"

    /// The directory of the private server (removed at exit).
    nonisolated(unsafe) private static var privateDir: String?

    private static func start() -> (url: String?, skipReason: String) {
        if let url = ProcessInfo.processInfo.environment["TASKQ_TEST_POSTGRES_URL"], !url.isEmpty {
            do { _ = try PostgresConnection(url) } catch {
                return (nil, "TASKQ_TEST_POSTGRES_URL is set but does not connect: \(error)")
            }
            return (url, "")
        }
        guard access(bin + "/initdb", X_OK) == 0, access(bin + "/pg_ctl", X_OK) == 0 else {
            return (nil, "no PostgreSQL server: \(bin)/initdb not found (apt-get install postgresql-15) and TASKQ_TEST_POSTGRES_URL not set")
        }
        removeAbandonedServers()
        // Short: the socket path (DIR/.s.PGSQL.5432) must fit in 107 bytes.
        let dir = Harness.tempDir("taskq-pg")
        let asRoot = getuid() == 0
        if asRoot {
            let chown = run("/bin/chown", ["postgres:", dir])
            if chown.status != 0 { return (nil, "cannot hand \(dir) to user postgres: \(chown.stderr)") }
        }
        let me = String(cString: getpwuid(getuid()).pointee.pw_name)
        let initdb = asServer([bin + "/initdb", "-D", dir + "/data", "-U", me, "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"])
        if initdb.status != 0 { Harness.remove(dir); return (nil, "initdb failed: \(initdb.stderr)") }
        let options = "-c listen_addresses='' -k \(dir) -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        let started = asServer([bin + "/pg_ctl", "-D", dir + "/data", "-l", dir + "/server.log", "-o", options, "-w", "-t", "60", "start"])
        if started.status != 0 {
            let log = String(decoding: readAll(dir + "/server.log"), as: UTF8.self)
            Harness.remove(dir)
            return (nil, "the private PostgreSQL server did not start: \(started.stderr) \(log)")
        }
        privateDir = dir
        _ = run("/bin/sh", ["-c", "echo \(getpid()) > \(dir)/owner"])
        atexit {
            guard let dir = TestPostgres.privateDir else { return }
            TestPostgres.stopServer(dir)
        }
        return ("postgresql:///postgres?host=\(dir)", "")
    }

    private static func asServer(_ args: [String]) -> RunResult {
        getuid() == 0 ? run("/usr/sbin/runuser", ["-u", "postgres", "--"] + args) : run(args[0], Array(args.dropFirst()))
    }

    /// Stops the server in `dir` (when one runs there) and removes `dir`.
    static func stopServer(_ dir: String) {
        if access(dir + "/data/postmaster.pid", F_OK) == 0 {
            _ = asServer([bin + "/pg_ctl", "-D", dir + "/data", "-m", "immediate", "-w", "stop"])
        }
        Harness.remove(dir)
    }

    /// A test run killed before its exit handler ran leaves its server behind:
    /// stop those whose test process is gone.
    private static func removeAbandonedServers() {
        let dirs = (try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? []
        for d in dirs where d.hasPrefix("taskq-pg-") {
            let owner = String(decoding: readAll("/tmp/\(d)/owner"), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard let pid = Int32(owner), kill(pid, 0) != 0, errno == ESRCH else { continue }
            stopServer("/tmp/" + d)
        }
    }

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
    static func with(_ url: String, searchPath name: String) -> String {
        if url.contains("://") { return url + (url.contains("?") ? "&" : "?") + "options=-csearch_path%3D\(name)" }
        return url + " options='-c search_path=\(name)'"
    }

    /// The factory of a fresh schema: each call opens a new connection to it.
    static func factory() throws -> StoreFactory {
        let url = try freshSchema()
        return { try PostgresTaskStore(url: url) }
    }
}
