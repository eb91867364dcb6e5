import TaskQueue

extension Dashboard {
    /// Every POST but the login: checked (not read-only, same origin, CSRF
    /// token), done with the store's own verbs, then back to the page it came
    /// from with a note of what happened.
    func act(_ r: HTTPRequest) -> HTTPResponse {
        guard !options.readOnly else { return text(403, "this dashboard is read-only (--read-only): no action is possible\n") }
        guard r.path == "/actions" else { return text(404, "no such action\n") }
        guard sameOrigin(r) else {
            return text(403, "refused: an action must come from this dashboard's own page (Origin or Sec-Fetch-Site)\n")
        }
        let form = r.form
        func field(_ name: String) -> String? { form.first { $0.0 == name }?.1 }
        guard let csrf = field("csrf"), constantTimeEqual(csrf, csrfToken) else {
            return text(403, "refused: the form's CSRF token is missing or stale; reload the page\n")
        }
        // Only a path of this dashboard: never an address elsewhere.
        var back = field("back") ?? "/"
        if !back.hasPrefix("/") || back.hasPrefix("//") { back = "/" }
        let note: String
        do {
            note = try perform(field("action") ?? "", form: form, field: field)
        } catch let e as TaskQueueError {
            note = "failed: " + e.message
        } catch {
            note = "failed: \(error)"
        }
        aggregator.invalidate()
        feed.bump()
        return redirect(back + (back.contains("?") ? "&" : "?") + "done=" + percentEncode(note))
    }

    private func perform(_ action: String, form: [(String, String)], field: (String) -> String?) throws -> String {
        let ids = form.filter { $0.0 == "id" }.compactMap { Int64($0.1) }.filter { $0 > 0 }
        switch action {
        case "retry", "cancel":
            guard !ids.isEmpty else { return "nothing selected" }
            let changes = try read { action == "retry" ? try queue.retry(ids) : try queue.cancel(ids, reason: "cancelled from taskq dashboard") }
            return summary(action, changes)
        case "retry-matching", "cancel-matching":
            let q = try taskQuery(form)
            let verb = String(action.prefix { $0 != "-" })
            let matching = try read { try store.dashboardMatchingIDs(q, limit: maxMatchingAction) }
            var changes: [TaskChange] = []
            // In chunks, each its own short transaction, so workers keep claiming.
            var i = 0
            while i < matching.count {
                let chunk = Array(matching[i..<min(i + 500, matching.count)])
                changes += try read { verb == "retry" ? try queue.retry(chunk) : try queue.cancel(chunk, reason: "cancelled from taskq dashboard") }
                i += 500
            }
            return summary(verb, changes)
        case "purge-matching":
            let q = try taskQuery(form)
            guard let st = q.state, st.isFinished else { throw TaskQueueError.usage("purge needs a finished state") }
            let n = try read { try queue.purge(states: [st], finishedBefore: .now()) }
            return "purged \(n) \(st.rawValue) task\(n == 1 ? "" : "s")"
        case "retry-group":
            guard let kind = field("kind"), let line = field("line") else { return "no group given" }
            let groupIDs = try read { try store.dashboardFailureGroupIDs(kind: kind, firstLine: line) }
            var changes: [TaskChange] = []
            var i = 0
            while i < groupIDs.count {
                let chunk = Array(groupIDs[i..<min(i + 500, groupIDs.count)])
                changes += try read { try queue.retry(chunk) }
                i += 500
            }
            return summary("retry", changes)
        case "pause", "resume":
            guard let name = field("queue"), !name.isEmpty else { return "no queue given" }
            let changed = try read { action == "pause" ? try queue.pause(name) : try queue.resume(name) }
            return changed ? "queue \(name) \(action == "pause" ? "paused" : "resumed")" : "queue \(name) was already \(action == "pause" ? "paused" : "running")"
        default:
            throw TaskQueueError.usage("no such action '\(action)'")
        }
    }

    private func summary(_ verb: String, _ changes: [TaskChange]) -> String {
        let done = changes.filter { $0.after != nil }.count
        let left = changes.count - done
        var s = "\(verb == "retry" ? "retried" : "cancelled") \(done) task\(done == 1 ? "" : "s")"
        if left > 0 { s += "; \(left) left as they were" + (changes.first { $0.after == nil }?.note.map { " (\($0))" } ?? "") }
        return s
    }
}
