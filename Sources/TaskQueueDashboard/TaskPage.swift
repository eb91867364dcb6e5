import TaskQueue

/// Results longer than this are cut on the page (the whole one is a download).
let resultPreviewBytes = 8192

extension Dashboard {
    private func loadTask(_ id: Int64) throws -> (TaskRecord, [TaskAttempt], [Int64]) {
        try read {
            guard let t = try queue.task(id) else { throw TaskQueueError.notFound("no task \(id) in \(queue.location)") }
            return (t, try queue.attempts(of: id), try store.dashboardDependants(of: id))
        }
    }

    /// `/tasks/ID`: what `taskq show` prints, and what waits for the task.
    func taskPage(_ id: Int64) throws -> HTTPResponse {
        let (t, history, dependants) = try loadTask(id)
        let back = "/tasks/\(id)"
        var body = "<h1>Task \(t.id) \(stateBadge(t.state))</h1><div class=\"actions\">"
        if t.state == .failed || t.state == .cancelled { body += actionForm("retry", label: "retry", fields: [("id", String(id))], back: back) }
        if t.state == .queued || t.state == .running {
            body += actionForm("cancel", label: "cancel", fields: [("id", String(id))], back: back, cssClass: "danger")
        }
        body += "</div><table class=\"fields\"><tbody>"
        func row(_ k: String, _ v: String) { body += "<tr><th scope=\"row\">\(k)</th><td>\(v)</td></tr>" }
        row("kind", escape(t.kind))
        row("queue", "<a href=\"/tasks?queue=\(escape(percentEncode(t.queue)))\">\(escape(t.queue))</a>")
        row("priority", String(t.priority))
        row("attempts", "\(t.attempts)/\(t.maxAttempts)")
        row("timeout", t.timeout.map(formatDuration) ?? "none")
        row("created", escape(t.createdAt.iso))
        if t.isBlocked { row("run at", "after the tasks it waits for") } else { row("run at", escape(t.runAt.iso)) }
        if let s = t.startedAt { row("started", escape(s.iso)) }
        if let f = t.finishedAt { row("finished", escape(f.iso)) }
        if let o = t.owner { row("owner", "process \(o)" + (t.workerPID.map { ", pid \($0)" } ?? "") + (t.workerHost.map { " on " + escape($0) } ?? "")) }
        if let k = t.uniqueKey { row("unique", escape(k)) }
        if let c = t.onCrash { row("on crash", c.rawValue) }
        if t.backoffBase != nil || t.backoffCap != nil {
            row("backoff", "\(t.backoffBase.map(formatDuration) ?? "(supervisor's)") doubling up to \(t.backoffCap.map(formatDuration) ?? "(supervisor's)")")
        }
        if !t.waitingFor.isEmpty { row("waits for", t.waitingFor.map { "<a href=\"/tasks/\($0)\">\($0)</a>" }.joined(separator: ", ")) }
        if !dependants.isEmpty { row("waited for by", dependants.map { "<a href=\"/tasks/\($0)\">\($0)</a>" }.joined(separator: ", ")) }
        if let e = t.lastError { row("error", "<pre class=\"error\">\(escape(e))</pre>") }
        body += "</tbody></table>"
        if !options.hidePayloads {
            body += "<h2>Payload</h2><pre class=\"payload\">\(escape(prettyJSON(t.payload)))</pre>"
            if let r = t.result {
                body += "<h2>Result</h2>"
                let text = String(decoding: r.prefix(resultPreviewBytes), as: UTF8.self)
                body += "<pre class=\"result\">\(escape(text))</pre>"
                if r.count > resultPreviewBytes { body += "<p>Cut at \(number(Int64(resultPreviewBytes))) of \(number(Int64(r.count))) bytes. " }
                body += "<a href=\"/tasks/\(id)/result\" download>download the result (\(number(Int64(r.count))) bytes)</a></p>"
            }
        }
        body += "<h2>Attempts</h2>"
        if history.isEmpty {
            body += "<p class=\"empty\">Not started yet.</p>"
        } else {
            body += "<table class=\"attempts\"><thead><tr><th class=\"n\">#</th><th>outcome</th><th>started</th><th>finished</th>"
            body += "<th>worker</th><th>error</th></tr></thead><tbody>"
            for a in history {
                body += "<tr><td class=\"n\">\(a.attempt)</td><td><span class=\"outcome \(escape(a.outcome.replacing(" ", with: "-")))\">\(escape(a.outcome))</span></td>"
                body += "<td>\(escape(a.startedAt?.iso ?? "–"))</td><td>\(escape(a.finishedAt?.iso ?? "–"))</td>"
                body += "<td>\(a.workerPID.map { "pid \($0)" + (a.workerHost.map { " on " + escape($0) } ?? "") } ?? "–")</td>"
                body += "<td><pre class=\"error\">\(escape(a.error ?? ""))</pre>"
                if let err = a.stderr, !err.isEmpty, !options.hidePayloads {
                    body += "<details><summary>stderr</summary><pre>\(escape(err))</pre></details>"
                }
                body += "</td></tr>"
            }
            body += "</tbody></table>"
        }
        body += cliBox(["taskq show \(id) \(dbArgument)", "taskq show \(id) \(dbArgument) --json"],
                       sql: "SELECT * FROM task_attempts WHERE task_id = \(id) ORDER BY id")
        return html(200, layout("Task \(id)", nav: "/tasks", body))
    }

    /// `/api/tasks/ID`: the same object as `taskq show ID --json`.
    func taskJSON(_ id: Int64) throws -> HTTPResponse {
        let (t, history, _) = try loadTask(id)
        return json(TaskJSON.detail(options.hidePayloads ? hidingPayload(t) : t, history: history))
    }

    /// `/tasks/ID/result`: the result, byte for byte, as a download.
    func rawResult(_ id: Int64) throws -> HTTPResponse {
        guard !options.hidePayloads else { return text(403, "results are hidden (--hide-payloads)\n") }
        let (t, _, _) = try loadTask(id)
        guard let r = t.result else { return text(404, "task \(id) has no result\n") }
        return HTTPResponse(status: 200, headers: [("Content-Type", "application/octet-stream"),
                                                   ("Content-Disposition", "attachment; filename=\"task-\(id)-result\"")], body: r)
    }
}

/// The JSON text indented two spaces a level; text that does not parse as is.
func prettyJSON(_ text: String) -> String {
    guard let v = try? JSON.parse(text) else { return text }
    var out = ""
    func write(_ v: JSONValue, _ indent: String) {
        if let members = v.objectMembers {
            if members.isEmpty { out += "{}"; return }
            out += "{\n"
            for (i, m) in members.enumerated() {
                out += indent + "  " + JSON.quote(m.key) + ": "
                write(m.value, indent + "  ")
                out += i == members.count - 1 ? "\n" : ",\n"
            }
            out += indent + "}"
        } else if let items = v.arrayValue {
            if items.isEmpty { out += "[]"; return }
            out += "[\n"
            for (i, item) in items.enumerated() {
                out += indent + "  "
                write(item, indent + "  ")
                out += i == items.count - 1 ? "\n" : ",\n"
            }
            out += indent + "]"
        } else {
            out += v.compactText
        }
    }
    write(v, "")
    return out
}
