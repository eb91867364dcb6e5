import TaskQueueTestSupport

/// One test's queue on PostgreSQL: a scenario on the database (or fresh schema)
/// `url` names, whose commands spell out `--db URL`, as a user types them.
class PGQueue {
    let s: Scenario
    var url: String { s.db }

    /// A fresh schema on the test server.
    convenience init() { self.init("taskq-pgcli", url: PostgresServer.freshSchema()!) }

    init(_ name: String, url: String) {
        s = Scenario(name, postgresURL: url)
    }

    /// `taskq COMMAND ARGS… --db URL`.
    @discardableResult
    func taskq(_ command: String, _ args: [String] = [], stdin: String? = nil) -> RunResult {
        s.taskq([command] + args + ["--db", url], stdin: stdin)
    }

    func supervise(_ args: [String]) -> Child { s.supervise(["--db", url] + args) }

    /// One value (or rows, one per line) of a query; "" while the server is down.
    func sql(_ query: String) -> String { s.sql(query) }

    func count(_ state: String) -> Int { s.count(state) }

    /// The registered workers' pids.
    var workerPids: [Int32] {
        sql("SELECT pid FROM processes WHERE role = 'worker' ORDER BY pid").split(separator: "\n").compactMap { Int32($0) }
    }

    func close() { s.close() }
}
