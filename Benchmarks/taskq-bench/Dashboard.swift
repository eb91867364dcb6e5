import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

extension Bench {
    /// W2 while the queue is watched: `taskq dashboard` on the database, with an
    /// event stream open (a browser's live page) and `/metrics` and the overview
    /// fetched every second (a Prometheus scrape and a reload far more often than
    /// either usually comes), against W2 alone; 2 workers, runs alternating.
    /// The dashboard adds nothing to the claim/finish path: what it costs W2 is its
    /// reads and the CPU it takes from the workers.
    func dashboardW2(_ n: Int, reps: Int = 3) throws {
        say("W2 while a dashboard is watched: drain \(n) queued no-op tasks, 2 workers, \(reps) runs each, alternating")
        let curl = try required("curl", "apt-get install curl")
        let base = "\(tmp)/dash-base.db"
        try enqueueLines(base, n, commitEvery: 1000)
        var alone: [Double] = [], watched: [Double] = []
        for rep in 0..<reps {
            for watch in [false, true] {
                let db = "\(tmp)/dash-\(rep)-\(watch).db"
                try copyDatabase(base, db)
                var helpers: [Child] = []
                if watch {
                    let dash = start(taskq, ["dashboard", "--db", db, "--listen", "127.0.0.1:0"])
                    var url = ""
                    guard try waitFor(10, {
                        url = dash.stdoutSoFar.split(separator: "\n").first { $0.hasPrefix("http://") }.map(String.init) ?? ""
                        return !url.isEmpty
                    }) else { throw BenchError("taskq dashboard printed no URL in 10 s: \(dash.stderrSoFar)") }
                    if url.hasSuffix("/") { url.removeLast() }
                    let stream = start(curl, ["-sN", "-o", "/dev/null", url + "/events"])
                    let scrape = start("/bin/sh", ["-c", "while :; do \(curl) -s -o /dev/null \(url)/metrics; \(curl) -s -o /dev/null \(url)/; sleep 1; done"])
                    helpers = [scrape, stream, dash]
                }
                let secs = try drain(db, workers: 2)
                for h in helpers { try stop(h, SIGTERM, timeout: 10) }
                guard try succeeded(db) == n else { throw BenchError("\(db): not every task succeeded") }
                if watch { watched.append(Double(n) / secs) } else { alone.append(Double(n) / secs) }
            }
        }
        let a = median(alone), w = median(watched)
        row("W2 alone, 2 workers", a, "tasks/s", "", "median of \(reps)")
        row("W2 with the dashboard watched, 2 workers", w, "tasks/s", "\(fixed(w / a * 100, 1))% of alone",
            "goal >= 95%; median of \(reps)")
    }
}
