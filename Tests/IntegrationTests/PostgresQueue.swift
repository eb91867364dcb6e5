import TaskQueueTestSupport

/// One test's queue on PostgreSQL: a scenario directory for scripts and logs, and
/// the database (or fresh schema) `url` names.
class PGQueue {
    let s: Scenario
    let url: String

    /// A fresh schema on the test server.
    convenience init() { self.init("taskq-pgcli", url: PostgresServer.freshSchema()!) }

    init(_ name: String, url: String) {
        s = Scenario(name)
        self.url = url
    }

    /// `taskq COMMAND ARGS… --db URL`.
    @discardableResult
    func taskq(_ command: String, _ args: [String] = [], stdin: String? = nil) -> RunResult {
        s.taskq([command] + args + ["--db", url], stdin: stdin)
    }

    func supervise(_ args: [String]) -> Child { s.supervise(["--db", url] + args) }

    /// One value (or rows, one per line) of a query; "" while the server is down.
    func sql(_ query: String) -> String { PostgresServer.psql(url, query).out }

    func count(_ state: String) -> Int {
        Int(sql("SELECT count(*) FROM tasks WHERE state = '\(state)' AND kind <> 'taskq.stop'")) ?? -1
    }

    var workerPids: [Int32] {
        sql("SELECT pid FROM processes WHERE role = 'worker' ORDER BY pid").split(separator: "\n").compactMap { Int32($0) }
    }

    func close() { s.close() }
}
