// A PostgreSQL server for the tests: the one $TASKQ_TEST_POSTGRES_URL names, or a
// private one started for this test process (initdb into a temporary directory, unix
// socket only, fsync off), stopped when the process exits. Where neither is possible
// the PostgreSQL tests are skipped with the reason, never passed.

import TaskQueue
#if canImport(Glibc)
import Glibc
#endif

public enum PostgresServer {
    /// The server's URL, or nil with `skipReason` saying why there is none.
    public static let server: (url: String?, skipReason: String) = start()

    public static var url: String? { server.url }
    public static var skipReason: String { server.skipReason }

    public static let bin = "/usr/lib/postgresql/15/bin"

    /// The directory of the private server (removed at exit).
    nonisolated(unsafe) private static var privateDir: String?

    private static func start() -> (url: String?, skipReason: String) {
        if let env = getenv("TASKQ_TEST_POSTGRES_URL"), env.pointee != 0 {
            let url = String(cString: env)
            let r = psql(url, "SELECT 1")
            if r.status != 0 { return (nil, "TASKQ_TEST_POSTGRES_URL is set but does not connect: \(r.stderr)") }
            return (url, "")
        }
        guard access(bin + "/initdb", X_OK) == 0, access(bin + "/pg_ctl", X_OK) == 0 else {
            return (nil, "no PostgreSQL server: \(bin)/initdb not found (apt-get install postgresql-15) and TASKQ_TEST_POSTGRES_URL not set")
        }
        removeAbandonedServers()
        let dir: String
        switch create(durable: false) {
        case .success(let d): dir = d
        case .failure(let why): return (nil, why.message)
        }
        privateDir = dir
        atexit {
            guard let dir = PostgresServer.privateDir else { return }
            PostgresServer.stopServer(dir)
        }
        return ("postgresql:///postgres?host=\(dir)", "")
    }

    struct Failure: Error { let message: String }

    /// initdb and start a server in a new directory (marked as this process's, so
    /// `removeAbandonedServers` stops it if the process dies first). `durable`:
    /// commits wait for their WAL (`synchronous_commit` on), so that an immediate
    /// restart (a crash) loses no commit that was acknowledged.
    fileprivate static func create(durable: Bool) -> Result<String, Failure> {
        // Short: the socket path (DIR/.s.PGSQL.5432) must fit in 107 bytes.
        let dir = Harness.tempDir("taskq-pg")
        writeFile(dir + "/owner", "\(getpid())\n")
        if getuid() == 0 {
            let chown = run("/bin/chown", ["postgres:", dir])
            if chown.status != 0 { Harness.remove(dir); return .failure(Failure(message: "cannot hand \(dir) to user postgres: \(chown.stderr)")) }
        }
        let me = String(cString: getpwuid(getuid()).pointee.pw_name)
        let initdb = asServer([bin + "/initdb", "-D", dir + "/data", "-U", me, "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"])
        if initdb.status != 0 { Harness.remove(dir); return .failure(Failure(message: "initdb failed: \(initdb.stderr)")) }
        let started = pgctl(dir, ["-o", options(dir, durable: durable), "-w", "-t", "60", "start"])
        if started.status != 0 {
            let log = String(decoding: readAll(dir + "/server.log"), as: UTF8.self)
            Harness.remove(dir)
            return .failure(Failure(message: "the private PostgreSQL server did not start: \(started.stderr) \(log)"))
        }
        return .success(dir)
    }

    /// The server's settings: unix socket only, in `dir`.
    fileprivate static func options(_ dir: String, durable: Bool) -> String {
        "-c listen_addresses='' -k \(dir) -c fsync=off -c synchronous_commit=\(durable ? "on" : "off") -c full_page_writes=off -c max_connections=300"
    }

    /// `pg_ctl ARGS…` on the server in `dir`, as its owner.
    fileprivate static func pgctl(_ dir: String, _ args: [String]) -> RunResult {
        asServer([bin + "/pg_ctl", "-D", dir + "/data", "-l", dir + "/server.log"] + args)
    }

    private static func asServer(_ args: [String]) -> RunResult {
        getuid() == 0 ? run("/usr/sbin/runuser", ["-u", "postgres", "--"] + args) : run(args[0], Array(args.dropFirst()))
    }

    /// Stops the server in `dir` (when one runs there) and removes `dir`.
    public static func stopServer(_ dir: String) {
        if access(dir + "/data/postmaster.pid", F_OK) == 0 {
            _ = asServer([bin + "/pg_ctl", "-D", dir + "/data", "-m", "immediate", "-w", "stop"])
        }
        Harness.remove(dir)
    }

    /// A test run killed before its exit handler ran leaves its server behind:
    /// stop those whose test process is gone.
    private static func removeAbandonedServers() {
        for d in listDirectory("/tmp") where d.hasPrefix("taskq-pg-") {
            let owner = String(decoding: readAll("/tmp/\(d)/owner"), as: UTF8.self).filter { $0.isNumber }
            guard let pid = Int32(owner), kill(pid, 0) != 0, errno == ESRCH else { continue }
            stopServer("/tmp/" + d)
        }
    }

    /// Runs SQL with psql (unaligned, tuples only); its output is in `out`.
    @discardableResult
    public static func psql(_ url: String, _ sql: String) -> RunResult {
        let psql = access(bin + "/psql", X_OK) == 0 ? bin + "/psql" : "/usr/bin/psql"
        return run(psql, ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
    }

    private static let serial = Mutex(0)

    /// A new, empty schema on the server; returns a URL whose connections use it.
    /// Nil when there is no server.
    public static func freshSchema() -> String? {
        guard let url else { return nil }
        let n = serial.next()
        let name = "taskq_it_\(getpid())_\(n)"
        let r = psql(url, "DROP SCHEMA IF EXISTS \(name) CASCADE; CREATE SCHEMA \(name)")
        precondition(r.status == 0, "cannot create schema \(name): \(r)")
        return with(url, searchPath: name)
    }

    /// `url` with connections put in schema `name`.
    public static func with(_ url: String, searchPath name: String) -> String {
        if url.contains("://") { return url + (url.contains("?") ? "&" : "?") + "options=-csearch_path%3D\(name)" }
        return url + " options='-c search_path=\(name)'"
    }
}

/// A server of one test's own, in its own directory with its own socket, that the
/// test may restart or stop without disturbing the others; stopped and removed by
/// `close` (or, if the test process dies first, by the next run).
public final class PrivatePostgresServer {
    public let dir: String
    /// Its `postgres` database.
    public var url: String { "postgresql:///postgres?host=\(dir)" }

    /// Whether one can be started here (the server binaries exist).
    public static var available: Bool {
        access(PostgresServer.bin + "/initdb", X_OK) == 0 && access(PostgresServer.bin + "/pg_ctl", X_OK) == 0
    }

    /// Starts one (`synchronous_commit` on, see `PostgresServer.create`), or
    /// says why it cannot.
    public static func start() -> Result<PrivatePostgresServer, Error> {
        PostgresServer.create(durable: true).map { PrivatePostgresServer(dir: $0) }.mapError { $0 as Error }
    }

    private init(dir: String) { self.dir = dir }

    /// `pg_ctl -m immediate restart`: every backend is killed at once, as in a
    /// crash, and the server recovers and accepts connections again.
    @discardableResult
    public func restartImmediately() -> RunResult { PostgresServer.pgctl(dir, ["-m", "immediate", "-w", "-t", "60", "restart"]) }

    /// Stops it (`-m immediate`).
    @discardableResult
    public func stop() -> RunResult { PostgresServer.pgctl(dir, ["-m", "immediate", "-w", "stop"]) }

    /// Starts it again after `stop`.
    @discardableResult
    public func startAgain() -> RunResult {
        PostgresServer.pgctl(dir, ["-o", PostgresServer.options(dir, durable: true), "-w", "-t", "60", "start"])
    }

    public func close() { PostgresServer.stopServer(dir) }
}

/// A counter shared by threads.
private final class Mutex: @unchecked Sendable {
    private var value: Int
    private var lock = pthread_mutex_t()
    init(_ value: Int) { self.value = value; pthread_mutex_init(&lock, nil) }
    func next() -> Int {
        pthread_mutex_lock(&lock); defer { pthread_mutex_unlock(&lock) }
        value += 1
        return value
    }
}
