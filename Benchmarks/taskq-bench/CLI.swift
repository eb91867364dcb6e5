extension Bench {
    /// CLI: `taskq enqueue k {}` as a new process, median wall time of `reps`, against
    /// `sqlite3 FILE "INSERT ..."` on the same database, alternately.
    func cli(_ reps: Int) throws {
        say("CLI: one enqueue as a new process, median of \(reps)")
        let db = "\(tmp)/cli.db"
        try runChecked(taskq, ["init", "--db", db])
        let insert = "INSERT INTO tasks (kind, payload, run_at, created_at) VALUES "
            + "('k', '{}', strftime('%Y-%m-%dT%H:%M:%fZ','now'), strftime('%Y-%m-%dT%H:%M:%fZ','now'))"
        var ours: [Double] = [], theirs: [Double] = []
        for _ in 0..<reps {
            ours.append(try runChecked(taskq, ["enqueue", "k", "{}", "--db", db]).seconds)
            theirs.append(try runChecked(sqlite3, [db, insert]).seconds)
        }
        let a = median(ours) * 1000, b = median(theirs) * 1000
        row("CLI sqlite3 INSERT (new process)", b, "ms")
        row("CLI taskq enqueue (new process)", a, "ms", "\(fixed(a / b, 2))x sqlite3")
    }
}
