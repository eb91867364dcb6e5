import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

extension Bench {
    /// Scale: W2 (2 workers) on a table that already holds `finished` succeeded tasks
    /// and `queued` new ones, against the same drain on a fresh table (medians of 3,
    /// alternating); then `big`
    /// tasks enqueued in 10 slices (rate per slice) and drained by a long-running
    /// taskq-bench-worker (rate per second, from the count of succeeded tasks), and the
    /// RSS of its supervisor and workers after.
    func scale(finished: Int, queued: Int, big: Int) throws {
        say("scale: W2 with \(grouped(finished)) finished + \(grouped(queued)) queued vs a fresh table; then \(grouped(big)) through")
        // One database of each kind, copied before each drain; the drains alternate,
        // three of each (one drain of 100,000 lasts under a second, and one alone
        // swings by a quarter), and the medians are compared.
        let freshBase = "\(tmp)/fresh-base.db"
        try enqueueLines(freshBase, queued, commitEvery: 1000)
        let fullBase = "\(tmp)/full-base.db"
        try runChecked(taskq, ["init", "--db", fullBase])
        _ = try sql(fullBase, """
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < \(finished))
                INSERT INTO tasks (kind, payload, run_at, created_at, state, attempts, started_at, finished_at, result)
                SELECT 'bench-noop', '{"seq":-1}', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z', 'succeeded', 1,
                       '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:01.000Z', '9' FROM n
            """)
        try enqueueLines(fullBase, queued, commitEvery: 1000)
        var freshRates: [Double] = [], fullRates: [Double] = []
        for rep in 0..<3 {
            for (base, isFull) in [(freshBase, false), (fullBase, true)] {
                let db = "\(tmp)/scale-\(rep)-\(isFull).db"
                try copyDatabase(base, db)
                let rate = Double(queued) / (try drain(db, workers: 2))
                if isFull { fullRates.append(rate) } else { freshRates.append(rate) }
                removeDatabase(db)
            }
        }
        let a = median(freshRates), b = median(fullRates)
        row("scale W2 fresh table, 2 workers", a, "tasks/s", "", "median of 3")
        row("scale W2 with \(grouped(finished)) finished, 2 workers", b, "tasks/s", "\(percent(b / a)) of fresh",
            "goal >= 80%; median of 3, alternating")

        let db = "\(tmp)/big.db"
        let slices = 10, per = big / slices
        var rates: [Double] = []
        for s in 0..<slices {
            rates.append(Double(per) / (try enqueueLines(db, per, commitEvery: 100, start: s * per)))
        }
        let lo = rates.min()!, hi = rates.max()!
        row("scale enqueue \(grouped(big)) (batches of 100), min slice", lo, "tasks/s", "max/min \(fixed(hi / lo, 2))",
            "slices: " + rates.map { fixed($0, 0, grouped: true) }.joined(separator: " "))

        let sup = start(worker, ["--db", db, "--workers", "2"])
        var samples: [Double] = []
        var last = 0, tLast = System.monotonic()
        let deadline = tLast + 1200
        while last < big {
            guard System.monotonic() < deadline else {
                throw BenchError("taskq-bench-worker drained \(last) of \(big) in 1,200 s: \(sup.stderrSoFar)")
            }
            sleepSeconds(1.0)
            try checkInterrupted()
            let done = try succeeded(db)
            let now = System.monotonic()
            if done > last && done < big { samples.append(Double(done - last) / (now - tLast)) }
            (last, tLast) = (done, now)
        }
        let ws = children(of: sup.pid).map(rssKB)
        let supRSS = rssKB(sup.pid)
        try stop(sup, SIGINT, timeout: 60)
        if !samples.isEmpty {
            row("scale drain \(grouped(big)), 2 workers, median second", median(samples), "tasks/s",
                "max/min \(fixed(samples.max()! / max(1, samples.min()!), 2)) over \(samples.count) s")
        }
        row("memory after \(grouped(big)): worker RSS (max)", Double(ws.max() ?? 0) / 1024, "MiB", "goal <= 15")
        row("memory after \(grouped(big)): supervisor RSS", Double(supRSS) / 1024, "MiB", "goal <= 20")
    }
}
