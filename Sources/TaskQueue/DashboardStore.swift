/// A size `/metrics` publishes about the database: what it is depends on the
/// engine (a SQLite file and its write-ahead log; a PostgreSQL database and its
/// tables), so each store names its own metric and labels.
package struct DashboardSize: Sendable, Equatable {
    /// The metric family, e.g. `taskq_database_size_bytes`.
    package var metric: String
    /// Its HELP text.
    package var help: String
    package var labels: [(String, String)]
    package var bytes: Int64

    package init(metric: String, help: String, labels: [(String, String)], bytes: Int64) {
        self.metric = metric; self.help = help; self.labels = labels; self.bytes = bytes
    }

    package static func == (a: DashboardSize, b: DashboardSize) -> Bool {
        a.metric == b.metric && a.help == b.help && a.bytes == b.bytes
            && a.labels.map { $0.0 + "=" + $0.1 } == b.labels.map { $0.0 + "=" + $0.1 }
    }
}

/// How a store tells the dashboard that the database changed.
package enum DashboardChangeWatch: Sendable {
    /// `makeChangeSignal(claims: false)` wakes on every commit by any process, and
    /// `dashboardChangeMark` reads no row (SQLite: inotify, then the files' sizes
    /// and times): it may run whether or not anyone is looking.
    case signal
    /// Not every commit signals (PostgreSQL producers notify only a waiting
    /// worker, finishes never do): `dashboardChangeMark` is a query, run at most
    /// once a second and only while somebody looks at the dashboard.
    case probe
}

/// The dashboard's reads: what `taskq dashboard` needs beyond `TaskStore`, so
/// that it serves the same pages, APIs and metrics on every store. Reads only;
/// the actions go through `Queue` like the CLI's.
package protocol DashboardStore: TaskStore {
    /// One page of tasks, newest first, and, when the query reads only the newest
    /// rows (`scansNewestOnly`), the lowest id it read (nil: it read down to the first).
    func dashboardTasks(_ q: DashboardTaskQuery) throws -> (tasks: [TaskRecord], scannedDownTo: Int64?)

    /// Counts per state under the query's filters (state and paging aside),
    /// counted in the rows: call it for an id range, which bounds the work.
    func dashboardStateCounts(_ q: DashboardTaskQuery) throws -> [TaskState: Int64]

    /// The ids of every task the query matches (without paging), at most `limit`.
    func dashboardMatchingIDs(_ q: DashboardTaskQuery, limit: Int) throws -> [Int64]

    /// The ids of the failed tasks of one failure group.
    func dashboardFailureGroupIDs(kind: String, firstLine: String) throws -> [Int64]

    /// The tasks enqueued `--after` this one.
    func dashboardDependants(of id: Int64) throws -> [Int64]

    /// The lowest and highest id of `tasks` (with `attempts`, of `task_attempts`).
    func idRange(attempts: Bool) throws -> (Int64, Int64)?

    /// The lowest id of a queued or running task (through the claim's partial
    /// indexes and the workers' claimed lists; nil: none). Every task below it
    /// has finished; a retried task lowers it while it is queued or running.
    func dashboardUnfinishedFloor() throws -> Int64?

    /// Adds the tasks with ids `from...to` to `a` (`newestFinish` included, the
    /// chart left out), in one read transaction. Every statement reads the id
    /// range through the primary key, never the whole table.
    func aggregateTasks(from: Int64, to: Int64, into a: inout DashboardAggregate) throws

    /// Adds the chart's figures of the tasks with ids `from...to` to `a`: tasks
    /// finished per minute in the hour before `now`, and per queue in its last minute.
    func aggregateChart(from: Int64, to: Int64, now: Timestamp, into a: inout DashboardAggregate) throws

    /// Adds the attempt history rows with ids `from...to` to `a`, in one read transaction.
    func aggregateAttempts(from: Int64, to: Int64, into a: inout DashboardAggregate) throws

    /// Every `taskq map` group's progress.
    func mapGroups() throws -> [DashboardMapGroup]

    /// The figures cheap enough to read at every request, in one read transaction.
    func dashboardLive(now: Timestamp) throws -> DashboardLive

    /// The sizes `/metrics` publishes.
    func dashboardSizes() throws -> [DashboardSize]

    /// How changes are noticed (see `DashboardChangeWatch`).
    var dashboardChangeWatch: DashboardChangeWatch { get }

    /// A value that differs after any commit to the database (it may also differ
    /// without one: that only costs a needless refresh).
    func dashboardChangeMark() throws -> String
}
