import TaskQueue

/// Most tasks one "act on everything matching" touches.
let maxMatchingAction = 10_000

extension Dashboard {
    /// The tasks query from a request's query string (or a form): state, queue,
    /// kind, min/max id, a JSON path and value, error text, and `before` (the
    /// keyset page).
    func taskQuery(_ fields: [(String, String)]) throws -> DashboardTaskQuery {
        func value(_ name: String) -> String? {
            guard let v = fields.first(where: { $0.0 == name })?.1, !v.isEmpty else { return nil }
            return v
        }
        func id(_ name: String) throws -> Int64? {
            guard let v = value(name) else { return nil }
            guard let n = Int64(v), n > 0 else { throw TaskQueueError.usage("\(name) must be a task id (a positive integer), not '\(v)'") }
            return n
        }
        var q = DashboardTaskQuery()
        if let s = value("state") {
            guard let st = TaskState(rawValue: s) else { throw TaskQueueError.usage("state '\(s)' is not a state") }
            q.state = st
        }
        q.queue = value("queue")
        q.kind = value("kind")
        q.minID = try id("min")
        q.maxID = try id("max")
        q.beforeID = try id("before")
        if let path = value("path") {
            guard path.hasPrefix("$") else { throw TaskQueueError.usage("a JSON path starts with $, e.g. $.user.id, not '\(path)'") }
            q.jsonPath = path
            q.jsonValue = value("value") ?? ""
        }
        q.errorText = value("error")
        return q
    }

    /// The query as URL parameters (without paging), for links and forms.
    func queryFields(_ q: DashboardTaskQuery) -> [(String, String)] {
        var f: [(String, String)] = []
        if let s = q.state { f.append(("state", s.rawValue)) }
        if let s = q.queue { f.append(("queue", s)) }
        if let s = q.kind { f.append(("kind", s)) }
        if let n = q.minID { f.append(("min", String(n))) }
        if let n = q.maxID { f.append(("max", String(n))) }
        if let s = q.jsonPath { f.append(("path", s)); f.append(("value", q.jsonValue ?? "")) }
        if let s = q.errorText { f.append(("error", s)) }
        return f
    }

    /// `/tasks` with these filters.
    func tasksURL(_ fields: [(String, String)]) -> String {
        fields.isEmpty ? "/tasks" : "/tasks?" + queryString(fields)
    }

    func queryString(_ fields: [(String, String)]) -> String {
        fields.map { percentEncode($0.0) + "=" + percentEncode($0.1) }.joined(separator: "&")
    }

    func tasksPage(_ r: HTTPRequest) throws -> String {
        let q: DashboardTaskQuery
        do { q = try taskQuery(r.query) } catch let e as TaskQueueError {
            return layout("Tasks", nav: "/tasks", "<h1>Tasks</h1><p class=\"error\">\(escape(e.message))</p><p><a href=\"/tasks\">All tasks</a></p>")
        }
        let counts = try stateCounts(q)
        var bounded = q
        bounded.boundedScan = true
        let (tasks, scannedDownTo) = try read { () -> ([TaskRecord], Int64?) in
            // A state the counts say is empty is not looked for in a million rows.
            if let st = q.state, let counts, (counts[st] ?? 0) == 0 { return ([], nil) }
            let page = try store.dashboardTasks(bounded)
            return (page.tasks, page.scannedDownTo)
        }
        var body = "<h1>Tasks</h1>"
        // Tabs: one per state, counts under the other filters.
        var all = q
        all.state = nil
        body += "<nav class=\"tabs\">"
        let tabs: [(TaskState?, String)] = [(nil, "all")] + TaskState.allCases.map { ($0, $0.rawValue) }
        for (st, name) in tabs {
            var t = all
            t.state = st
            let n = counts.map { c in st.map { c[$0] ?? 0 } ?? c.values.reduce(0, +) }
            body += "<a href=\"\(escape(tasksURL(queryFields(t))))\"\(st == q.state ? " class=\"active\"" : "")>"
            body += escape(name) + (n.map { " <span class=\"count\" data-state=\"\(name)\">\(number($0))</span>" } ?? "") + "</a>"
        }
        body += "</nav>"
        body += filterForm(q)
        if let floor = scannedDownTo, tasks.count < q.limit {
            // Fewer matches than a page among the rows read: the rest lie further back.
            let further = tasksURL(queryFields(q).filter { $0.0 != "before" } + [("before", String(floor))])
            body += "<p class=\"notice\">This page looked at tasks from id \(floor) up only, \(number(Int64(q.scanLimit))) at most "
                + "(a filter that matches few tasks would otherwise read the whole table): "
                + "<a href=\"\(escape(further))\">look below id \(floor) →</a></p>"
        }
        if tasks.isEmpty {
            body += "<p class=\"empty\">No tasks match.</p>"
        } else {
            let back = tasksURL(queryFields(q))
            if !options.readOnly {
                body += "<form method=\"post\" action=\"/actions\" id=\"selection\">" + hidden("csrf", csrfToken) + hidden("back", back)
            }
            body += "<table class=\"tasks\"><thead><tr>\(options.readOnly ? "" : "<th><input type=\"checkbox\" id=\"select-all\" aria-label=\"select all\"></th>")"
            body += "<th class=\"n\">id</th><th>kind</th><th>queue</th><th>state</th><th class=\"n\">attempts</th><th>created</th>"
            body += options.hidePayloads ? "" : "<th>payload</th>"
            body += "<th>error</th></tr></thead><tbody>"
            for t in tasks {
                body += "<tr>" + (options.readOnly ? "" : "<td><input type=\"checkbox\" name=\"id\" value=\"\(t.id)\" aria-label=\"select \(t.id)\"></td>")
                body += "<td class=\"n\"><a href=\"/tasks/\(t.id)\">\(t.id)</a></td><td>\(escape(t.kind))</td><td>\(escape(t.queue))</td>"
                body += "<td>\(stateBadge(t.state))</td><td class=\"n\">\(t.attempts)/\(t.maxAttempts)</td><td>\(escape(t.createdAt.iso))</td>"
                if !options.hidePayloads { body += "<td class=\"payload\"><code>\(escape(String(t.payload.prefix(120))))</code></td>" }
                body += "<td class=\"error\">\(escape(String(firstLine(t.lastError ?? "").prefix(120))))</td></tr>"
            }
            body += "</tbody></table>"
            if !options.readOnly {
                body += "<div class=\"actions\">Selected: "
                body += "<button type=\"submit\" name=\"action\" value=\"retry\">retry</button> "
                body += "<button type=\"submit\" name=\"action\" value=\"cancel\" class=\"danger\">cancel</button></div></form>"
                let fields = queryString(queryFields(q))
                body += "<p class=\"actions\">Everything this filter matches: "
                body += "<a class=\"button\" href=\"/tasks/confirm?action=retry&\(escape(fields))\">retry all…</a> "
                body += "<a class=\"button danger\" href=\"/tasks/confirm?action=cancel&\(escape(fields))\">cancel all…</a>"
                if let st = q.state, st.isFinished, queryFields(q).count == 1 {
                    body += " <a class=\"button danger\" href=\"/tasks/confirm?action=purge&state=\(st.rawValue)\">purge all \(st.rawValue)…</a>"
                }
                body += "</p>"
            }
            if tasks.count == q.limit, let last = tasks.last {
                body += "<p class=\"pager\"><a href=\"/tasks?\(escape(queryString(queryFields(q) + [("before", String(last.id))])))\">older →</a></p>"
            }
        }
        body += cliBox([listCommand(q)], sql: listSQL(q))
        return layout("Tasks", nav: "/tasks", body)
    }

    /// Counts per state for the tabs: from the aggregate for a queue or kind, in
    /// the rows for an id range of at most 200,000 ids; none for a search (it
    /// would read every payload) or a wider range.
    func stateCounts(_ q: DashboardTaskQuery) throws -> [TaskState: Int64]? {
        if q.isSearch { return nil }
        if q.minID == nil && q.maxID == nil {
            guard var counts = try aggregator.current()?.0.stateCounts(queue: q.queue, kind: q.kind) else { return nil }
            if q.kind == nil {
                // Queued and running tasks change fastest: those counts are read now.
                let live = try read { try store.dashboardLive(now: .now()) }
                func mine(_ queue: String) -> Bool { q.queue.map { $0 == queue } ?? true }
                counts[.queued] = live.ready.filter { mine($0.key) }.values.reduce(0, +) + live.delayed.filter { mine($0.key) }.values.reduce(0, +)
                counts[.running] = Int64(live.running.filter { mine($0.queue) }.count)
            }
            return counts
        }
        let top = try q.maxID ?? read { try store.idRange(attempts: false)?.1 ?? 0 }
        if top - (q.minID ?? 1) > 200_000 { return nil }
        return try read { try store.dashboardStateCounts(q) }
    }

    private func filterForm(_ q: DashboardTaskQuery) -> String {
        func field(_ name: String, _ label: String, _ value: String?, _ placeholder: String = "") -> String {
            "<label>\(label) <input name=\"\(name)\" value=\"\(escape(value ?? ""))\" placeholder=\"\(escape(placeholder))\"></label>"
        }
        var s = "<form method=\"get\" action=\"/tasks\" class=\"filters\">"
        if let st = q.state { s += hidden("state", st.rawValue) }
        s += field("queue", "queue", q.queue) + field("kind", "kind", q.kind)
        s += field("min", "id from", q.minID.map(String.init)) + field("max", "to", q.maxID.map(String.init))
        s += field("path", "payload path", q.jsonPath, "$.user.id") + field("value", "=", q.jsonValue)
        s += field("error", "error contains", q.errorText)
        return s + "<button type=\"submit\">filter</button> <a href=\"/tasks\">clear</a></form>"
    }

    func listCommand(_ q: DashboardTaskQuery) -> String {
        var c = "taskq list \(dbArgument)"
        if let s = q.state { c += " --state \(s.rawValue)" }
        if let s = q.queue { c += " --queue \(shellWord(s))" }
        if let s = q.kind { c += " --kind \(shellWord(s))" }
        c += " --limit \(q.limit) --json"
        if q.minID != nil || q.maxID != nil || q.jsonPath != nil || q.errorText != nil { c += "   # then filter with jq, or use the SQL" }
        return c
    }

    func listSQL(_ q: DashboardTaskQuery) -> String {
        var w = ["kind <> 'taskq.stop'"]
        func lit(_ s: String) -> String { "'" + s.replacing("'", with: "''") + "'" }
        if let s = q.state { w.append("state = '\(s.rawValue)'") }
        if let s = q.queue { w.append("queue = \(lit(s))") }
        if let s = q.kind { w.append("kind = \(lit(s))") }
        if let n = q.minID { w.append("id >= \(n)") }
        if let n = q.maxID { w.append("id <= \(n)") }
        if let n = q.beforeID { w.append("id < \(n)") }
        if let p = q.jsonPath { w.append("CAST(json_extract(payload, \(lit(p))) AS TEXT) = \(lit(q.jsonValue ?? ""))") }
        if let e = q.errorText { w.append("instr(last_error, \(lit(e))) > 0") }
        return "SELECT id, kind, queue, state, attempts, created_at, last_error FROM tasks WHERE \(w.joined(separator: " AND ")) ORDER BY id DESC LIMIT \(q.limit)"
    }

    /// The confirmation before an action on everything a filter matches: it
    /// says how many tasks that is.
    func confirmPage(_ r: HTTPRequest) throws -> String {
        guard !options.readOnly else { return layout("Read-only", nav: "/tasks", "<p>This dashboard is read-only.</p>") }
        let action = r.queryValue("action") ?? ""
        guard ["retry", "cancel", "purge"].contains(action) else { throw TaskQueueError.notFound("no such action '\(action)'") }
        let q = try taskQuery(r.query)
        let n: Int
        if action == "purge" {
            guard let st = q.state, st.isFinished else { throw TaskQueueError.usage("purge needs a finished state") }
            n = Int(try stateCounts(q)?[st] ?? 0)
        } else if let st = q.state, st.isFinished, let counts = try stateCounts(q) {
            n = Int(counts[st] ?? 0)
        } else {
            n = try read { try store.dashboardMatchingIDs(q, limit: maxMatchingAction + 1).count }
        }
        let fields = queryFields(q)
        var body = "<h1>Confirm</h1><p class=\"confirm\">\(action.prefix(1).uppercased() + action.dropFirst()) "
        body += n > maxMatchingAction ? "the newest \(number(Int64(maxMatchingAction))) of more than \(number(Int64(maxMatchingAction))) tasks"
            : "<strong data-count=\"\(n)\">\(number(Int64(n)))</strong> task\(n == 1 ? "" : "s")"
        body += " matching \(escape(fields.isEmpty ? "no filter (all tasks)" : fields.map { "\($0.0)=\($0.1)" }.joined(separator: ", ")))?</p>"
        if action == "retry" { body += "<p>Only failed and cancelled tasks among them are retried; the others are left as they are.</p>" }
        if action == "cancel" { body += "<p>Only queued and running tasks among them are cancelled.</p>" }
        if action == "purge" { body += "<p>Deletes them and their attempt history for good.</p>" }
        body += actionForm(action + "-matching", label: "yes, \(action) them", fields: fields, back: tasksURL(fields), cssClass: "danger")
        body += " <a href=\"\(escape(tasksURL(fields)))\">no, go back</a>"
        return layout("Confirm", nav: "/tasks", body)
    }

    /// `/api/tasks`: the same array as `taskq list --json`.
    func tasksJSON(_ r: HTTPRequest) throws -> String {
        var q = try taskQuery(r.query)
        if let l = r.queryValue("limit"), let n = Int(l), n >= 1, n <= 1000 { q.limit = n }
        var tasks = try read { try store.dashboardTasks(q).tasks }
        if options.hidePayloads { tasks = tasks.map(hidingPayload) }
        return "[" + tasks.map { TaskJSON.task($0).text }.joined(separator: ",\n") + "]"
    }

    func hidingPayload(_ t: TaskRecord) -> TaskRecord {
        var t = t
        t.payload = "null"
        t.result = nil
        return t
    }
}
