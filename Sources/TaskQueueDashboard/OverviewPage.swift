import TaskQueue
import TaskQueueSQLite

extension Dashboard {
    func overviewPage() throws -> String {
        let now = Timestamp.now()
        let o = try read { try store.dashboardOverview(now: now) }
        var body = "<h1>Overview</h1>"
        body += "<section><h2>Queues</h2>"
        if o.queues.isEmpty {
            body += "<p class=\"empty\">No tasks yet. <code>taskq enqueue KIND PAYLOAD</code> adds one.</p>"
        } else {
            body += """
                <table class="queues"><thead><tr><th>queue</th><th class="n">ready</th><th class="n">delayed</th>
                <th class="n">running</th><th class="n">finished (1 min)</th><th class="n">succeeded</th><th class="n">failed</th>
                <th class="n">cancelled</th><th class="n">oldest ready</th><th>paused</th></tr></thead><tbody>
                """
            for q in o.queues {
                let key = escape(q.queue)
                func cell(_ field: String, _ n: Int64, link: String? = nil) -> String {
                    let text = link.map { "<a href=\"\($0)\">\(number(n))</a>" } ?? number(n)
                    return "<td class=\"n\" data-queue=\"\(key)\" data-field=\"\(field)\">\(text)</td>"
                }
                let tasksLink = "/tasks?queue=" + percentEncode(q.queue) + "&state="
                body += "<tr><th scope=\"row\"><a href=\"/tasks?queue=\(percentEncode(q.queue))\">\(key)</a></th>"
                body += cell("ready", q.ready, link: tasksLink + "queued") + cell("delayed", q.delayed)
                body += cell("running", q.running, link: tasksLink + "running") + cell("finished_1m", q.finishedLastMinute)
                body += cell("succeeded", q.succeeded, link: tasksLink + "succeeded")
                body += cell("failed", q.failed, link: tasksLink + "failed") + cell("cancelled", q.cancelled, link: tasksLink + "cancelled")
                body += "<td class=\"n\">\(q.oldestReadySince.map { age(now.seconds(since: $0)) } ?? "–")</td><td>"
                body += q.paused ? "<span class=\"paused\">paused</span> " : ""
                body += actionForm(q.paused ? "resume" : "pause", label: q.paused ? "resume" : "pause", fields: [("queue", q.queue)], back: "/")
                body += "</td></tr>"
            }
            body += "</tbody></table>"
        }
        body += "</section>"
        body += "<section><h2>Finished per minute, last hour</h2>" + chart(o.minutes, now: now) + "</section>"
        body += processesSection(o, now: now)
        body += "<section><h2>Latest failures</h2>"
        if o.latestFailures.isEmpty {
            body += "<p class=\"empty\">No failed tasks.</p>"
        } else {
            body += "<table><thead><tr><th class=\"n\">id</th><th>kind</th><th>queue</th><th>finished</th><th>error</th></tr></thead><tbody>"
            for t in o.latestFailures {
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

    private func processesSection(_ o: DashboardOverview, now: Timestamp) -> String {
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
        let w = 600.0, h = 120.0, bar = w / 60
        var svg = "<svg class=\"chart\" viewBox=\"0 0 \(Int(w)) \(Int(h) + 16)\" role=\"img\" aria-label=\"tasks finished per minute\">"
        for (i, s) in slots.enumerated() {
            let x = Double(i) * bar
            let hs = h * Double(s.1) / Double(peak), hf = h * Double(s.2) / Double(peak)
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

func firstLine(_ s: String) -> String {
    String(s.prefix { $0 != "\n" && $0 != "\r\n" })
}
