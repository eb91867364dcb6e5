import TaskQueueTestSupport

extension Bench {
    /// W2: drain `n` queued no-op tasks (taskq-bench-worker's `bench-noop`
    /// handler) with 2 and 4 workers, each from a copy of one database. The figure is
    /// the worker's own `--report` time: supervisor and workers started and stopped.
    func w2(_ n: Int) throws {
        say("W2: drain \(n) queued no-op tasks")
        let base = "\(tmp)/w2-base.db"
        try enqueueLines(base, n, commitEvery: 1000)
        for w in [2, 4] {
            let db = "\(tmp)/w2-\(w).db"
            try copyDatabase(base, db)
            let secs = try drain(db, workers: w)
            let done = try succeeded(db)
            row("W2 drain, \(w) workers", Double(n) / secs, "tasks/s", "", "\(done)/\(n) succeeded")
        }
    }
}
