#if canImport(Glibc)
import Glibc
#endif
import TaskQueue

/// The Prometheus text format (version 0.0.4), written by hand: every value is
/// computed from the database at scrape time, which client libraries that keep
/// their own counters cannot publish.
struct MetricsWriter {
    private(set) var text = ""

    /// Starts a metric family.
    mutating func family(_ name: String, _ type: String, _ help: String) {
        text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
    }

    mutating func sample(_ name: String, _ labels: [(String, String)] = [], _ value: Double) {
        text += name
        if !labels.isEmpty {
            text += "{" + labels.map { "\($0.0)=\"\(labelEscape($0.1))\"" }.joined(separator: ",") + "}"
        }
        text += " " + metricValue(value) + "\n"
    }

    mutating func sample(_ name: String, _ labels: [(String, String)] = [], _ value: Int64) {
        sample(name, labels, Double(value))
    }

    /// `_bucket` lines (cumulative, ending with +Inf), `_sum` and `_count`.
    mutating func histogram(_ name: String, _ labels: [(String, String)], bounds: [Double], _ b: BucketCounts) {
        var cumulative: Int64 = 0
        for (i, bound) in bounds.enumerated() {
            cumulative += b.counts[i]
            sample(name + "_bucket", labels + [("le", metricValue(bound))], cumulative)
        }
        sample(name + "_bucket", labels + [("le", "+Inf")], b.total)
        sample(name + "_sum", labels, b.sum)
        sample(name + "_count", labels, b.total)
    }
}

private func labelEscape(_ s: String) -> String {
    var out = ""
    for c in s.unicodeScalars {
        switch c {
        case "\\": out += "\\\\"
        case "\"": out += "\\\""
        case "\n": out += "\\n"
        default: out.unicodeScalars.append(c)
        }
    }
    return out
}

private func metricValue(_ v: Double) -> String {
    if v.isNaN { return "NaN" }
    if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
    if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
    return String(v)
}

private func split(_ key: String) -> [String] { key.split(separator: "\u{0}", omittingEmptySubsequences: false).map(String.init) }

extension Dashboard {
    /// `/metrics`: gauges of what is, counters of what happened (counts of rows,
    /// so they survive a restart of the dashboard), histograms from the rows'
    /// timestamps.
    func metricsText() throws -> String {
        let now = Timestamp.now()
        // A scrape waits for the first pass: partial counters would look like
        // resets. It looks for changes first (nobody may have looked since the
        // last one) and waits, a little, for the pass that counts them.
        feed.look()
        guard let (agg, _, _) = try aggregator.current(timeout: 5, version: feed.current)
                ?? aggregator.current(timeout: nil) else { return "" }
        let (l, sizes) = try read { (try store.dashboardLive(now: now), try store.dashboardSizes()) }
        // Finished tasks from the aggregate, queued and running ones live.
        var tasks: [String: [TaskState: Int64]] = [:]
        var enqueued: [String: Int64] = [:], finished: [String: Int64] = [:]
        for (key, n) in agg.tasks {
            let p = split(key)
            enqueued[p[0] + "\u{0}" + p[1], default: 0] += n
            guard let st = TaskState(rawValue: p[2]) else { continue }
            if st.isFinished {
                tasks[p[0], default: [:]][st, default: 0] += n
                finished[key, default: 0] += n
            } else if tasks[p[0]] == nil {
                tasks[p[0]] = [:]
            }
        }
        for (q, n) in l.ready { tasks[q, default: [:]][.queued, default: 0] += n }
        for (q, n) in l.delayed { tasks[q, default: [:]][.queued, default: 0] += n }
        for r in l.running { tasks[r.queue, default: [:]][.running, default: 0] += 1 }
        var w = MetricsWriter()
        w.family("taskq_tasks", "gauge", "Tasks in the database by queue and state.")
        for (queue, states) in tasks.sorted(by: { $0.key < $1.key }) {
            for st in TaskState.allCases { w.sample("taskq_tasks", [("queue", queue), ("state", st.rawValue)], states[st] ?? 0) }
        }
        w.family("taskq_queue_oldest_ready_age_seconds", "gauge", "How long the oldest claimable task of the queue has waited (0 when none).")
        for queue in tasks.keys.sorted() {
            w.sample("taskq_queue_oldest_ready_age_seconds", [("queue", queue)], max(0, l.oldestReady[queue].map { now.seconds(since: $0) } ?? 0))
        }
        w.family("taskq_queue_paused", "gauge", "1 when the queue is paused.")
        for queue in Set(tasks.keys).union(l.paused.keys).sorted() {
            w.sample("taskq_queue_paused", [("queue", queue)], (l.paused[queue] ?? false) ? Int64(1) : Int64(0))
        }
        w.family("taskq_tasks_enqueued_total", "counter", "Tasks enqueued (rows in the tasks table; purged tasks no longer count).")
        for (key, n) in enqueued.sorted(by: { $0.key < $1.key }) {
            let p = split(key)
            w.sample("taskq_tasks_enqueued_total", [("queue", p[0]), ("kind", p[1])], n)
        }
        w.family("taskq_attempts_total", "counter", "Attempts that ended, by outcome.")
        for (key, n) in agg.attempts.sorted(by: { $0.key < $1.key }) {
            let p = split(key)
            w.sample("taskq_attempts_total", [("queue", p[0]), ("kind", p[1]), ("outcome", p[2])], n)
        }
        w.family("taskq_tasks_finished_total", "counter", "Tasks that reached an end state.")
        for (key, n) in finished.sorted(by: { $0.key < $1.key }) {
            let p = split(key)
            w.sample("taskq_tasks_finished_total", [("queue", p[0]), ("kind", p[1]), ("state", p[2])], n)
        }
        w.family("taskq_attempt_duration_seconds", "histogram", "Run time of attempts that ended (succeeded, failed, timed out, crashed, cancelled).")
        for (key, b) in agg.attemptDuration.sorted(by: { $0.key < $1.key }) {
            let p = split(key)
            w.histogram("taskq_attempt_duration_seconds", [("queue", p[0]), ("kind", p[1])], bounds: attemptDurationBuckets, b)
        }
        w.family("taskq_task_wait_seconds", "histogram", "Time from when a task could run (enqueue, or its start time) to its latest start.")
        for (queue, b) in agg.wait.sorted(by: { $0.key < $1.key }) {
            w.histogram("taskq_task_wait_seconds", [("queue", queue)], bounds: taskWaitBuckets, b)
        }
        let m = (processes: l.processes, busyWorkers: Set(l.running.map(\.owner)), schedules: l.schedules)
        let live = m.processes.filter { Recovery.deathReason(of: $0, now: now) == nil }
        w.family("taskq_workers", "gauge", "Live worker processes by host and state (busy: holds a running task).")
        var workers: [String: (busy: Int64, idle: Int64)] = [:]
        for p in live where p.role == .worker {
            if m.busyWorkers.contains(p.id) { workers[p.host, default: (0, 0)].busy += 1 } else { workers[p.host, default: (0, 0)].idle += 1 }
        }
        for (host, n) in workers.sorted(by: { $0.key < $1.key }) {
            w.sample("taskq_workers", [("host", host), ("state", "busy")], n.busy)
            w.sample("taskq_workers", [("host", host), ("state", "idle")], n.idle)
        }
        w.family("taskq_supervisors", "gauge", "Live supervisor processes by host.")
        var supervisors: [String: Int64] = [:]
        for p in live where p.role == .supervisor { supervisors[p.host, default: 0] += 1 }
        for (host, n) in supervisors.sorted(by: { $0.key < $1.key }) { w.sample("taskq_supervisors", [("host", host)], n) }
        w.family("taskq_processes_expired", "gauge", "Dead processes whose tasks wait for the next supervisor to recover them.")
        for role in ["supervisor", "worker"] {
            let n = m.processes.filter { $0.role.rawValue == role && Recovery.deathReason(of: $0, now: now) != nil }.count
            w.sample("taskq_processes_expired", [("role", role)], Int64(n))
        }
        w.family("taskq_schedule_last_run_timestamp_seconds", "gauge", "Unix time of the schedule's latest occurrence enqueued.")
        for s in m.schedules {
            if let last = s.lastAt { w.sample("taskq_schedule_last_run_timestamp_seconds", [("schedule", s.name)], Double(last.milliseconds) / 1000) }
        }
        w.family("taskq_schedule_next_run_timestamp_seconds", "gauge", "Unix time of the schedule's next occurrence.")
        for s in m.schedules { w.sample("taskq_schedule_next_run_timestamp_seconds", [("schedule", s.name)], Double(s.nextAt.milliseconds) / 1000) }
        for (i, size) in sizes.enumerated() {
            if i == 0 || sizes[i - 1].metric != size.metric { w.family(size.metric, "gauge", size.help) }
            w.sample(size.metric, size.labels, size.bytes)
        }
        w.family("taskq_build_info", "gauge", "The taskq version serving these metrics.")
        w.sample("taskq_build_info", [("version", options.version)], Int64(1))
        return w.text
    }
}
