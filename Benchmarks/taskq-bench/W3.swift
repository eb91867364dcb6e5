import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

extension Bench {
    /// W3: `n` tasks enqueued one commit at a time, `gapMs` apart, into 2 idle
    /// workers, through one long-lived `taskq enqueue --lines` fed line by line on
    /// stdin. Enqueue-to-start latency from the bench handler's audit lines
    /// ($BENCH_AUDIT_DIR/<pid>.tsv: seq, enq_ns, start ns, pid; tab-separated).
    func w3(_ n: Int, gapMs: Double = 2) throws {
        let gap = gapMs == gapMs.rounded() ? String(Int(gapMs)) : "\(gapMs)"
        say("W3: \(n) tasks enqueued \(gap) ms apart into 2 idle workers")
        let db = "\(tmp)/w3.db"
        let audit = "\(tmp)/w3-audit"
        try runChecked(taskq, ["init", "--db", db])
        let workers = start(worker, ["--db", db, "--workers", "2"], env: ["BENCH_AUDIT_DIR": audit])
        guard try waitFor(10, { children(of: workers.pid).count == 2 }) else {
            throw BenchError("taskq-bench-worker did not start 2 workers in 10 s: \(workers.stderrSoFar)")
        }
        // The producer starts before the warm-up, as the shared harness's does: the
        // first lines are then not stamped while it is still opening the database.
        let producer = Child(taskq, ["enqueue", "bench-noop", "--lines", "--quiet", "--db", db],
                             stdinWriter: true, logDir: tmp)
        sleepSeconds(1.5)   // warm-up: the workers go idle, the producer waits on stdin
        var nextAt = System.monotonic()
        for i in 0..<n {
            try checkInterrupted()
            // Sleep most of the gap, spin the last 0.3 ms: a 2 ms spin would keep
            // one of the machine's cores busy while the workers are measured.
            sleepSeconds(nextAt - System.monotonic() - 0.0003)
            while System.monotonic() < nextAt {}
            guard producer.writeStdin(Array("{\"seq\":\(i),\"enq_ns\":\(wallNanos())}\n".utf8)) else {
                producer.kill9()
                throw BenchError("taskq enqueue --lines stopped reading: \(producer.stderrSoFar)")
            }
            nextAt += gapMs / 1000
        }
        producer.closeStdin()
        guard producer.wait(timeout: 60) == 0 else {
            producer.kill9()
            throw BenchError("taskq enqueue --lines failed: \(producer.stderrSoFar)")
        }
        // Those not done in 60 s show in the note ("k of n started").
        _ = try waitFor(60, { try succeeded(db) == n })
        try stop(workers, SIGTERM, timeout: 30)

        var lags: [Double] = []
        for name in listDirectory(audit) {
            let text = String(decoding: readAll("\(audit)/\(name)"), as: UTF8.self)
            for line in text.split(separator: "\n") {
                let f = line.split(separator: "\t")
                if f.count > 2, let enq = Int64(f[1]), let started = Int64(f[2]) {
                    lags.append(Double(started - enq) / 1e6)
                }
            }
        }
        guard !lags.isEmpty else { throw BenchError("no audit lines in \(audit): \(workers.stderrSoFar)") }
        lags.sort()
        row("W3 enqueue-to-start p50", lags[lags.count / 2], "ms", "", "goal <= 1")
        row("W3 enqueue-to-start p99", lags[Int(Double(lags.count) * 0.99)], "ms", "",
            "goal <= 5; \(lags.count) of \(n) started")
    }
}
