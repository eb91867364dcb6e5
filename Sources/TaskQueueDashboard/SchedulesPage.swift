import TaskQueue

/// A schedule whose occurrence is this far past without being enqueued is late:
/// no supervisor is firing it.
let scheduleLateAfter = 60.0

extension Dashboard {
    /// `/schedules`: each schedule's next occurrences, its last run and that
    /// task's state, and whether it is late.
    func schedulesPage() throws -> String {
        let now = Timestamp.now()
        let (schedules, lastTasks) = try read { () -> ([Schedule], [Int64: TaskRecord]) in
            let all = try queue.schedules()
            var tasks: [Int64: TaskRecord] = [:]
            for s in all { if let id = s.lastTaskID, let t = try queue.task(id) { tasks[id] = t } }
            return (all, tasks)
        }
        var body = "<h1>Schedules</h1>"
        if schedules.isEmpty {
            body += "<p class=\"empty\">No schedules. <code>taskq schedule add NAME CRON KIND</code> adds one.</p>"
        } else {
            body += "<table class=\"schedules\"><thead><tr><th>name</th><th>cron</th><th>kind</th><th>queue</th>"
            body += "<th>next occurrences</th><th>last run</th><th>its task</th></tr></thead><tbody>"
            for s in schedules {
                let late = now.seconds(since: s.nextAt) > scheduleLateAfter
                var next = [s.nextAt]
                if let cron = try? CronExpression(s.cron), let zone = try? CronTimeZone(named: s.timeZone) {
                    while next.count < 3, let n = cron.next(after: max(next.last!, now), in: zone) { next.append(n) }
                }
                body += "<tr\(late ? " class=\"late\"" : "")><td>\(escape(s.name))</td><td><code>\(escape(s.cron))</code> \(escape(s.timeZone))</td>"
                body += "<td>\(escape(s.kind))</td><td>\(escape(s.options.queue))</td><td>"
                body += next.map { escape($0.iso) }.joined(separator: "<br>")
                if late { body += " <span class=\"dead\" title=\"no supervisor has enqueued this occurrence\">late by \(age(now.seconds(since: s.nextAt)))</span>" }
                body += "</td><td>\(s.lastAt.map { escape($0.iso) } ?? "never")</td><td>"
                if let id = s.lastTaskID {
                    body += "<a href=\"/tasks/\(id)\">\(id)</a> " + (lastTasks[id].map { stateBadge($0.state) } ?? "(purged)")
                }
                body += "</td></tr>"
            }
            body += "</tbody></table>"
            body += "<p class=\"asof\">Occurrences are enqueued by a running supervisor; one more than \(Int(scheduleLateAfter)) s overdue is late.</p>"
        }
        body += cliBox(["taskq schedule list \(dbArgument)", "taskq schedule list \(dbArgument) --json"],
                       sql: "SELECT name, cron, tz, kind, queue, next_at, last_at, last_task_id FROM schedules ORDER BY name")
        return layout("Schedules", nav: "/schedules", body)
    }

    /// `/api/schedules`: the same array as `taskq schedule list --json`.
    func schedulesJSON() throws -> String {
        let all = try read { try queue.schedules() }
        return "[" + all.map(TaskJSON.schedule).joined(separator: ",\n") + "]"
    }

    /// `/maps`: the progress of each `taskq map` run.
    func mapsPage() throws -> String {
        var body = "<h1>Map groups</h1>"
        guard let (agg, asOf, _) = try aggregator.current() else { return layout("Map groups", nav: "/maps", body + counting) }
        if agg.mapGroups.isEmpty {
            body += "<p class=\"empty\">No map runs. <code>taskq map --handler CMD &lt; lines</code> starts one.</p>"
        } else {
            body += "<table class=\"maps\"><thead><tr><th>group</th><th class=\"n\">lines</th><th>progress</th>"
            for st in TaskState.allCases { body += "<th class=\"n\">\(st.rawValue)</th>" }
            body += "<th>started</th><th>last finish</th></tr></thead><tbody>"
            for g in agg.mapGroups {
                let done = (g.states[.succeeded] ?? 0) + (g.states[.failed] ?? 0) + (g.states[.cancelled] ?? 0)
                let pct = g.lines > 0 ? Int(100 * done / g.lines) : 100
                body += "<tr><td><a href=\"/tasks?min=\(g.firstTaskID)&amp;max=\(g.lastTaskID)\">\(escape(g.name))</a></td><td class=\"n\">\(number(g.lines))</td>"
                body += "<td><progress max=\"\(g.lines)\" value=\"\(done)\"></progress> \(pct)%</td>"
                for st in TaskState.allCases { body += "<td class=\"n\">\(number(g.states[st] ?? 0))</td>" }
                body += "<td>\(g.createdAt.map { escape($0.iso) } ?? "")</td><td>\(g.lastFinishedAt.map { escape($0.iso) } ?? "")</td></tr>"
            }
            body += "</tbody></table><p class=\"asof\">As of \(escape(asOf.iso)).</p>"
        }
        body += cliBox(["taskq map --group NAME --handler CMD < the-same-input   # prints the results in input order, resumes where it stopped"],
                       sql: "SELECT g.group_name, count(*), sum(t.state = 'succeeded'), sum(t.state = 'failed') FROM task_groups g "
                           + "LEFT JOIN tasks t ON t.id = g.task_id GROUP BY g.group_name")
        return layout("Map groups", nav: "/maps", body)
    }

    /// `/api/maps`: [{"group", "lines", "queued", "running", "succeeded", "failed", "cancelled", "purged", "created_at", "last_finished_at"}].
    func mapsJSON() throws -> String {
        let groups = try aggregator.current(timeout: nil)?.0.mapGroups ?? []
        return "[" + groups.map { g in
            var o = JSONObjectWriter()
            o.add("group", g.name)
            o.add("lines", g.lines)
            for st in TaskState.allCases { o.add(st.rawValue, g.states[st] ?? 0) }
            o.add("purged", g.purged)
            o.add("created_at", g.createdAt?.iso)
            o.add("last_finished_at", g.lastFinishedAt?.iso)
            return o.text
        }.joined(separator: ",\n") + "]"
    }
}
