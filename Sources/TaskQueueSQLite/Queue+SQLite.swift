import TaskQueue

extension Queue {
    /// Opens the SQLite queue at `path`. With `create` (the default) a missing
    /// database is created with the current schema; without it, a missing file is
    /// a `.notFound` error and nothing is created.
    public static func open(path: String, create: Bool = true, synchronous: Synchronous = .normal,
                            busyTimeout: Double = 10) throws -> Queue {
        Queue(store: try SQLiteTaskStore(path: path, create: create, synchronous: synchronous, busyTimeout: busyTimeout))
    }
}

extension SQLiteTaskStore {
    /// The page cache of a connection that never claims (a supervisor, a producer):
    /// its periodic scans (recovery, pruning finished tasks) must not grow its
    /// memory with the table. A producer only appends, so the pages it needs are
    /// the last leaves of the table and its indexes; a 32 MiB cache only grew with
    /// every page written (a page fault each: about a tenth of `enqueue --lines`).
    package static let supervisorCacheKiB = 2048

    /// A worker's page cache: a claimed batch's pages and the head of the claim
    /// index fit in 4 MiB (1,024 pages). A bigger cache bought no throughput: with
    /// two or more workers SQLite empties it whenever another process has committed,
    /// and a single worker draining 200,000 tasks ran as fast with 2, 4 or 32 MiB.
    /// What 32 MiB did was fill up: that worker's RSS grew to 45 MiB (13.5 MiB with 4).
    package static let workerCacheKiB = 4096
}
