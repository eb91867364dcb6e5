import TaskQueue

extension Dashboard {
    /// From the aggregate, biggest group first; nil before its first pass.
    func failureGroups(timeout: Double? = 0.15) throws -> [DashboardFailureGroup]? {
        try aggregator.current(timeout: timeout)?.0.failureGroups.values.sorted {
            ($0.count, $1.kind, $1.firstLine) > ($1.count, $0.kind, $0.firstLine)
        }
    }

    /// `/failures`: failed tasks grouped by kind and the first line of their
    /// error, biggest group first, each with "retry this group".
    func failuresPage() throws -> String {
        let now = Timestamp.now()
        var body = "<h1>Failures</h1>"
        guard let groups = try failureGroups() else { return layout("Failures", nav: "/failures", body + counting) }
        if groups.isEmpty {
            body += "<p class=\"empty\">No failed tasks.</p>"
        } else {
            body += "<table class=\"failures\"><thead><tr><th>kind</th><th>error (first line)</th><th class=\"n\">tasks</th>"
            body += "<th>first seen</th><th>last seen</th><th></th></tr></thead><tbody>"
            for g in groups {
                let list = "/tasks?state=failed&kind=\(percentEncode(g.kind))" + (g.firstLine.isEmpty ? "" : "&error=\(percentEncode(g.firstLine))")
                body += "<tr><td>\(escape(g.kind))</td><td class=\"error\"><a href=\"\(escape(list))\">\(escape(g.firstLine.isEmpty ? "(no error text)" : g.firstLine))</a></td>"
                body += "<td class=\"n\">\(number(g.count))</td>"
                body += "<td>\(g.firstSeen.map { age(now.seconds(since: $0)) + " ago" } ?? "")</td>"
                body += "<td>\(g.lastSeen.map { age(now.seconds(since: $0)) + " ago" } ?? "") (<a href=\"/tasks/\(g.newestID)\">\(g.newestID)</a>)</td><td>"
                body += actionForm("retry-group", label: "retry this group", fields: [("kind", g.kind), ("line", g.firstLine)], back: "/failures")
                body += "</td></tr>"
            }
            body += "</tbody></table>"
        }
        body += cliBox(["taskq list \(dbArgument) --state failed --json | jq -r '.[] | [.kind, (.error | split(\"\\n\")[0])] | @tsv' | sort | uniq -c | sort -rn",
                        "taskq retry --state failed --kind KIND \(dbArgument)"],
                       sql: "SELECT kind, substr(last_error, 1, instr(last_error || char(10), char(10)) - 1) AS line, count(*), min(finished_at), max(finished_at) "
                           + "FROM tasks WHERE state = 'failed' GROUP BY kind, line ORDER BY count(*) DESC")
        return layout("Failures", nav: "/failures", body)
    }

    /// `/api/failures`: [{"kind", "error", "count", "first_seen", "last_seen", "newest_id"}].
    func failuresJSON() throws -> String {
        let groups = try failureGroups(timeout: nil) ?? []
        return "[" + groups.map { g in
            var o = JSONObjectWriter()
            o.add("kind", g.kind)
            o.add("error", g.firstLine)
            o.add("count", g.count)
            o.add("first_seen", g.firstSeen?.iso)
            o.add("last_seen", g.lastSeen?.iso)
            o.add("newest_id", g.newestID)
            return o.text
        }.joined(separator: ",\n") + "]"
    }
}
