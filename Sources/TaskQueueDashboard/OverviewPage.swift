import TaskQueue

/// One queue's row on the overview.
struct QueueRow {
    var queue: String
    var paused = false
    var ready: Int64 = 0, delayed: Int64 = 0, running: Int64 = 0
    var succeeded: Int64 = 0, failed: Int64 = 0, cancelled: Int64 = 0
    var finishedLastMinute: Int64 = 0
    var oldestReadySince: Timestamp?
}

extension Dashboard {
    /// Per queue: queued and running tasks live, finished ones from the aggregate.
    func queueRows(_ live: DashboardLive, _ agg: DashboardAggregate) -> [QueueRow] {
        var rows: [String: QueueRow] = [:]
        func touch(_ q: String) { if rows[q] == nil { rows[q] = QueueRow(queue: q) } }
        for (key, n) in agg.tasks {
            let p = key.split(separator: "\u{0}", omittingEmptySubsequences: false).map(String.init)
            touch(p[0])
            switch TaskState(rawValue: p[2]) {
            case .succeeded?: rows[p[0]]!.succeeded += n
            case .failed?: rows[p[0]]!.failed += n
            case .cancelled?: rows[p[0]]!.cancelled += n
            default: break
            }
        }
        for (q, n) in live.ready { touch(q); rows[q]!.ready = n }
        for (q, n) in live.delayed { touch(q); rows[q]!.delayed = n }
        for (q, t) in live.oldestReady { rows[q]?.oldestReadySince = t }
        for r in live.running { touch(r.queue); rows[r.queue]!.running += 1 }
        for (q, n) in agg.finishedLastMinute { rows[q]?.finishedLastMinute = n }
        for (q, p) in live.paused where p { touch(q); rows[q]!.paused = true }
        return rows.values.sorted { $0.queue < $1.queue }
    }

    /// `/api/status`, as `status --json` prints it, without its count of every
    /// row: finished tasks from the aggregate (after a look for changes, waiting
    /// a little for the pass that counts them), queued and running ones live.
    /// Before the first pass has ended, the counts are `status`'s own.
    func statusJSON() throws -> String {
        feed.look()
        let now = Timestamp.now()
        let aggregate = try aggregator.current(timeout: 0.5, version: feed.current) ?? aggregator.current(timeout: 0)
        return try read {
            let stats: QueueStats
            if let (agg, _, _) = aggregate {
                let live = try store.dashboardLive(now: now)
                var counts: [String: [TaskState: Int64]] = [:]
                for (key, n) in agg.tasks {
                    let p = key.split(separator: "\u{0}", omittingEmptySubsequences: false).map(String.init)
                    if let st = TaskState(rawValue: p[2]), st.isFinished { counts[p[0], default: [:]][st, default: 0] += n }
                }
                for (q, n) in live.ready { counts[q, default: [:]][.queued, default: 0] += n }
                for (q, n) in live.delayed { counts[q, default: [:]][.queued, default: 0] += n }
                for r in live.running { counts[r.queue, default: [:]][.running, default: 0] += 1 }
                let rows = counts.keys.sorted().flatMap { q in
                    TaskState.allCases.compactMap { st in counts[q]?[st].flatMap { $0 > 0 ? (queue: q, state: st, count: $0) : nil } }
                }
                stats = QueueStats(counts: rows, waiting: live.delayed.filter { $0.value > 0 }, processes: live.processes)
            } else {
                stats = try queue.stats()
            }
            return TaskJSON.status(database: queue.location, stats: stats, paused: try queue.pausedQueues(),
                                   unserved: try queue.unservedTasks(), now: now)
        }
    }

    func overviewPage() throws -> String {
        let now = Timestamp.now()
        let aggregate = try aggregator.current()
        let agg = aggregate?.0 ?? DashboardAggregate()
        let (live, failures) = try read { () -> (DashboardLive, [TaskRecord]) in
            (try store.dashboardLive(now: now), try agg.latestFailed.compactMap { try queue.task($0.1) }.filter { $0.state == .failed })
        }
        let queues = queueRows(live, agg)
        var body = "<h1>Overview</h1>"
        body += "<section><h2>Queues</h2>"
        if queues.isEmpty {
            body += "<p class=\"empty\">No tasks yet. <code>taskq enqueue KIND PAYLOAD</code> adds one.</p>"
        } else {
            body += """
                <table class="queues"><thead><tr><th>queue</th><th class="n">ready</th><th class="n">delayed</th>
                <th class="n">running</th><th class="n">finished (1 min)</th><th class="n">succeeded</th><th class="n">failed</th>
                <th class="n">cancelled</th><th class="n">oldest ready</th><th>paused</th></tr></thead><tbody>
                """
            for q in queues {
                let key = escape(q.queue)
                func cell(_ field: String, _ n: Int64, link: String? = nil, counted: Bool = false) -> String {
                    // Finished counts come from the aggregate: "…" until its first pass.
                    if counted && aggregate == nil { return "<td class=\"n\">…</td>" }
                    let text = link.map { "<a href=\"\($0)\">\(number(n))</a>" } ?? number(n)
                    return "<td class=\"n\" data-queue=\"\(key)\" data-field=\"\(field)\">\(text)</td>"
                }
                let tasksLink = "/tasks?queue=" + percentEncode(q.queue) + "&state="
                body += "<tr><th scope=\"row\"><a href=\"/tasks?queue=\(percentEncode(q.queue))\">\(key)</a></th>"
                body += cell("ready", q.ready, link: tasksLink + "queued") + cell("delayed", q.delayed)
                body += cell("running", q.running, link: tasksLink + "running") + cell("finished_1m", q.finishedLastMinute, counted: true)
                body += cell("succeeded", q.succeeded, link: tasksLink + "succeeded", counted: true)
                body += cell("failed", q.failed, link: tasksLink + "failed", counted: true)
                    + cell("cancelled", q.cancelled, link: tasksLink + "cancelled", counted: true)
                body += "<td class=\"n\">\(q.oldestReadySince.map { age(now.seconds(since: $0)) } ?? "–")</td><td>"
                body += q.paused ? "<span class=\"paused\">paused</span> " : ""
                body += actionForm(q.paused ? "resume" : "pause", label: q.paused ? "resume" : "pause", fields: [("queue", q.queue)], back: "/")
                body += "</td></tr>"
            }
            body += "</tbody></table>"
            if let (_, asOf, took) = aggregate {
                body += "<p class=\"asof\">Finished counts as of \(escape(asOf.iso)) (a pass over the table takes \(formatSeconds(took))); queued and running: now.</p>"
            } else {
                body += counting
            }
        }
        body += "</section>"
        body += "<section><h2>Finished per minute, last hour</h2>" + chart(Array(agg.minutes.values), now: now) + "</section>"
        body += processesSection(live, now: now)
        body += "<section><h2>Latest failures</h2>"
        if failures.isEmpty {
            body += "<p class=\"empty\">No failed tasks.</p>"
        } else {
            body += "<table><thead><tr><th class=\"n\">id</th><th>kind</th><th>queue</th><th>finished</th><th>error</th></tr></thead><tbody>"
            for t in failures {
                body += "<tr><td class=\"n\"><a href=\"/tasks/\(t.id)\">\(t.id)</a></td><td>\(escape(t.kind))</td><td>\(escape(t.queue))</td>"
                body += "<td>\(t.finishedAt.map { age(now.seconds(since: $0)) + " ago" } ?? "")</td>"
                body += "<td class=\"error\">\(escape(firstLine(t.lastError ?? "")))</td></tr>"
            }
            body += "</tbody></table><p><a href=\"/failures\">All failures, grouped</a></p>"
        }
        body += "</section>"
        body += cliBox(["taskq status \(dbArgument)", "taskq status \(dbArgument) --json",
                        "taskq list \(dbArgument) --state failed --limit 10"],
                       sql: "SELECT queue, state, count(*) FROM tasks WHERE kind <> 'taskq.stop' GROUP BY queue, state")
        return layout("Overview", nav: "/", body)
    }

    private func processesSection(_ o: DashboardLive, now: Timestamp) -> String {
        var body = "<section><h2>Supervisors and workers</h2>"
        let supervisors = o.processes.filter { $0.role == .supervisor }
        let orphans = o.processes.filter { p in p.role == .worker && !supervisors.contains { $0.id == p.supervisorID } }
        if o.processes.isEmpty {
            return body + "<p class=\"empty\">No supervisor is running. <code>taskq supervise --handler KIND=COMMAND</code> starts one.</p></section>"
        }
        body += "<table class=\"processes\"><thead><tr><th>role</th><th>host</th><th class=\"n\">pid</th><th>up since</th>"
        body += "<th>heartbeat</th><th>running</th><th>status</th></tr></thead><tbody>"
        func row(_ p: ProcessRecord) -> String {
            let dead = Recovery.deathReason(of: p, now: now)
            let tasks = o.running.filter { $0.owner == p.id }
            var s = "<tr class=\"\(p.role.rawValue)\(dead != nil ? " dead" : "")\"><td>\(p.role.rawValue)</td><td>\(escape(p.host))</td>"
            s += "<td class=\"n\">\(p.pid)</td><td>\(escape(p.startedAt.iso))</td><td>\(age(now.seconds(since: p.heartbeatAt))) ago</td><td>"
            if p.role == .supervisor {
                s += "kinds: " + escape(p.kinds.joined(separator: ", ")) + (p.queues.map { "; queues: " + escape($0.joined(separator: ", ")) } ?? "")
            } else {
                s += tasks.map { "<a href=\"/tasks/\($0.taskID)\">\($0.taskID)</a> \(escape($0.kind))" }.joined(separator: ", ")
                if tasks.isEmpty { s += "<span class=\"idle\">idle</span>" }
            }
            s += "</td><td>" + (dead.map { "<span class=\"dead\" title=\"\(escape($0))\">dead: awaiting recovery</span>" } ?? "alive") + "</td></tr>"
            return s
        }
        for sup in supervisors {
            body += row(sup)
            for w in o.processes where w.supervisorID == sup.id { body += row(w) }
        }
        for w in orphans { body += row(w) }
        return body + "</tbody></table></section>"
    }

    /// Succeeded and failed tasks per minute as stacked bars, in SVG (no script).
    private func chart(_ minutes: [DashboardMinute], now: Timestamp) -> String {
        let byMinute = Dictionary(minutes.map { ($0.minute, $0) }, uniquingKeysWith: { a, _ in a })
        let slots: [(String, Int64, Int64)] = (0..<60).map { i in
            let key = String(now.adding(seconds: Double(i - 59) * 60).iso.prefix(16))
            return (key, byMinute[key]?.succeeded ?? 0, byMinute[key]?.failed ?? 0)
        }
        let peak = max(1, slots.map { $0.1 + $0.2 }.max() ?? 1)
        // Bars from y = top to y = h; the scale's label above them, the time axis below.
        let w = 600.0, h = 134.0, top = 14.0, bar = w / 60
        var svg = "<svg class=\"chart\" viewBox=\"0 0 \(Int(w)) \(Int(h) + 16)\" role=\"img\" aria-label=\"tasks finished per minute\">"
        for (i, s) in slots.enumerated() {
            let x = Double(i) * bar
            let hs = (h - top) * Double(s.1) / Double(peak), hf = (h - top) * Double(s.2) / Double(peak)
            let label = "\(s.0.suffix(5)) UTC: \(s.1) succeeded, \(s.2) failed"
            svg += "<g><title>\(escape(label))</title>"
            if s.1 > 0 { svg += "<rect class=\"ok\" x=\"\(fmt(x))\" y=\"\(fmt(h - hs))\" width=\"\(fmt(bar - 1))\" height=\"\(fmt(hs))\"/>" }
            if s.2 > 0 { svg += "<rect class=\"bad\" x=\"\(fmt(x))\" y=\"\(fmt(h - hs - hf))\" width=\"\(fmt(bar - 1))\" height=\"\(fmt(hf))\"/>" }
            svg += "</g>"
        }
        svg += "<line class=\"axis\" x1=\"0\" y1=\"\(Int(h))\" x2=\"\(Int(w))\" y2=\"\(Int(h))\"/>"
        svg += "<text x=\"0\" y=\"\(Int(h) + 13)\">−60 min</text><text x=\"\(Int(w))\" y=\"\(Int(h) + 13)\" text-anchor=\"end\">now</text>"
        svg += "<text x=\"2\" y=\"11\">\(peak)/min</text></svg>"
        let total = slots.reduce((Int64(0), Int64(0))) { ($0.0 + $1.1, $0.1 + $1.2) }
        return svg + "<p class=\"legend\"><span class=\"ok\">■</span> succeeded \(number(total.0)) · <span class=\"bad\">■</span> failed \(number(total.1)) in the last hour</p>"
    }
}

private func fmt(_ x: Double) -> String {
    let v = (x * 10).rounded() / 10
    return v == v.rounded() ? String(Int(v)) : String(v)
}

func formatSeconds(_ s: Double) -> String {
    s < 1 ? "\(Int((s * 1000).rounded())) ms" : formatDuration((s * 10).rounded() / 10)
}

func firstLine(_ s: String) -> String {
    String(s.prefix { $0 != "\n" && $0 != "\r\n" })
}
