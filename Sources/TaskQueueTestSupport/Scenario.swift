import TaskQueue
#if canImport(Glibc)
import Glibc
#endif

/// One test's world: a temporary directory holding the database (./taskq.db, or
/// a PostgreSQL database named at init), handler scripts and process logs, and the
/// background processes it started. `close()` kills anything still running and
/// removes the directory.
public final class Scenario {
    public let dir: String
    /// The PostgreSQL URL every command of this scenario uses (`TASKQ_DB`), or nil
    /// for the file.
    public let postgresURL: String?
    public var db: String { postgresURL ?? dir + "/taskq.db" }
    public var isPostgres: Bool { postgresURL != nil }
    private var children: [Child] = []

    /// A `sleep` command unique to this scenario (a long, odd duration), so
    /// `pidsMatching(s.longSleep)` finds only this scenario's handlers even while
    /// other tests run at the same time.
    public let longSleep: String

    public init(_ name: String = "taskq-test", postgresURL: String? = nil) {
        dir = Harness.tempDir(name)
        self.postgresURL = postgresURL
        longSleep = "sleep \(300 + Int.random(in: 0...99_999))"
    }

    /// Runs `taskq args` in the scenario's directory.
    @discardableResult
    public func taskq(_ args: [String], stdin: String? = nil, env: [String: String] = [:], timeout: Double = 120) -> RunResult {
        TaskQueueTestSupport.taskq(args, stdin: stdin, env: withDatabase(env), cwd: dir, timeout: timeout)
    }

    /// Enqueues one task and returns its id (fails the precondition on error).
    @discardableResult
    public func enqueue(_ kind: String, _ payload: String = "null", _ extra: [String] = []) -> Int64 {
        let r = taskq(["enqueue", kind, payload] + extra)
        precondition(r.status == 0, "enqueue failed: \(r)")
        return Int64(r.out)!
    }

    /// Starts `taskq supervise args` in the background (logs in the directory).
    public func supervise(_ args: [String], env: [String: String] = [:]) -> Child {
        let c = Child(Harness.taskq, ["supervise"] + args, env: withDatabase(env), cwd: dir, logDir: dir)
        children.append(c)
        return c
    }

    /// Starts any program in the background, tracked for cleanup.
    public func start(_ path: String, _ args: [String], env: [String: String] = [:]) -> Child {
        let c = Child(path, args, env: withDatabase(env), cwd: dir, logDir: dir)
        children.append(c)
        return c
    }

    /// Writes an executable script into the directory; returns its path.
    @discardableResult
    public func script(_ name: String, _ body: String) -> String {
        let path = dir + "/" + name
        writeFile(path, "#!/bin/sh\n" + body + "\n", executable: true)
        return path
    }

    /// `env` with `TASKQ_DB` naming the PostgreSQL database, if there is one.
    private func withDatabase(_ env: [String: String]) -> [String: String] {
        guard let postgresURL, env["TASKQ_DB"] == nil else { return env }
        return env.merging(["TASKQ_DB": postgresURL]) { a, _ in a }
    }

    /// Runs SQL against the database with its own shell (sqlite3, psql).
    public func sql(_ query: String) -> String {
        guard let postgresURL else { return sqlite(db, query) }
        return PostgresServer.psql(postgresURL, query).out
    }
    public func sqlInt(_ query: String) -> Int {
        guard isPostgres else { return sqliteInt(db, query) }
        return Int(sql(query)) ?? -1
    }

    /// Count of tasks (not sentinels) in `state`.
    public func count(_ state: String) -> Int {
        sqlInt("SELECT count(*) FROM tasks WHERE state = '\(state)' AND kind <> 'taskq.stop'")
    }

    /// Pids of live worker processes started for this scenario's database.
    /// (Only session leaders: a worker's child between fork and exec still shows
    /// the worker's command line.)
    public var workerPids: [Int32] {
        pidsMatching("__taskq-worker {\"database\":" + JSON.quote(db)).filter { pid in
            let stat = String(decoding: readAll("/proc/\(pid)/stat"), as: UTF8.self)
            guard let close = stat.lastIndex(of: ")") else { return false }
            let f = stat[stat.index(after: close)...].split(separator: " ")
            return f.count > 3 && Int32(f[3]) == pid
        }
    }

    public func close() {
        for c in children { c.kill9() }
        for pid in workerPids { kill(pid, SIGKILL) }
        Harness.remove(dir)
    }

    deinit { close() }
}
