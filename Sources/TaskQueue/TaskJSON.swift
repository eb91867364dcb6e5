/// The documented JSON shapes of the CLI's `--json` output, shared by the CLI
/// and the dashboard's `/api/…` so both always print the same thing.
public enum TaskJSON {
    /// One task: the shape of `list --json` items (and `show --json` without its
    /// two extra fields).
    public static func task(_ t: TaskRecord) -> JSONObjectWriter {
        var o = JSONObjectWriter()
        o.add("id", t.id)
        o.add("kind", t.kind)
        o.add("queue", t.queue)
        o.add("state", t.state.rawValue)
        o.add("priority", t.priority)
        o.addRaw("payload", t.payload)
        o.add("run_at", t.runAt.iso)
        o.add("attempts", t.attempts)
        o.add("max_attempts", t.maxAttempts)
        o.add("timeout", t.timeout)
        o.add("backoff_base", t.backoffBase)
        o.add("backoff_cap", t.backoffCap)
        o.add("owner", t.owner)
        o.add("created_at", t.createdAt.iso)
        o.add("started_at", t.startedAt?.iso)
        o.add("finished_at", t.finishedAt?.iso)
        // Bytes that are not UTF-8 come out with U+FFFD in their place.
        if let r = t.result { o.add("result", String(decoding: r, as: UTF8.self)) } else { o.addNull("result") }
        o.add("error", t.lastError)
        o.add("worker_pid", t.workerPID)
        o.add("worker_host", t.workerHost)
        o.add("on_crash", t.onCrash?.rawValue)
        o.add("unique_key", t.uniqueKey)
        return o
    }

    /// `show --json`: the task with "after" and "attempts_history".
    public static func detail(_ t: TaskRecord, history: [TaskAttempt]) -> String {
        var o = task(t)
        o.addRaw("after", "[" + t.waitingFor.map(String.init).joined(separator: ",") + "]")
        o.addRaw("attempts_history", "[" + history.map { a in
            var h = JSONObjectWriter()
            h.add("attempt", a.attempt)
            h.add("started_at", a.startedAt?.iso)
            h.add("finished_at", a.finishedAt?.iso)
            h.add("worker_pid", a.workerPID)
            h.add("host", a.workerHost)
            h.add("outcome", a.outcome)
            h.add("error", a.error)
            h.add("stderr", a.stderr)
            return h.text
        }.joined(separator: ",") + "]")
        return o.text
    }

    /// `status --json`, from `Queue.stats()`, `Queue.pausedQueues()` and `Queue.unservedTasks()`.
    public static func status(database: String, stats s: QueueStats, paused: [QueueSetting], unserved: [UnservedTasks],
                              now: Timestamp) -> String {
        let pausedNames = Set(paused.map(\.name))
        var perQueue: [String: [TaskState: Int64]] = [:]
        for c in s.counts { perQueue[c.queue, default: [:]][c.state] = c.count }
        for (queue, _) in s.waiting where perQueue[queue] == nil { perQueue[queue] = [:] }
        for p in paused where perQueue[p.name] == nil { perQueue[p.name] = [:] }
        var totals: [TaskState: Int64] = [:]
        for (_, m) in perQueue { for (k, v) in m { totals[k, default: 0] += v } }
        let dead = Set(s.processes.filter { Recovery.deathReason(of: $0, now: now) != nil }.map(\.id))
        func processJSON(_ p: ProcessRecord) -> JSONObjectWriter {
            var o = JSONObjectWriter()
            o.add("id", p.id)
            o.add("pid", Int64(p.pid))
            o.add("host", p.host)
            o.add("alive", !dead.contains(p.id))
            o.add("started_at", p.startedAt.iso)
            o.add("heartbeat_at", p.heartbeatAt.iso)
            if p.role == .supervisor {
                if let qs = p.queues { o.addRaw("queues", "[" + qs.map(JSON.quote).joined(separator: ",") + "]") } else { o.addNull("queues") }
                o.addRaw("kinds", "[" + p.kinds.map(JSON.quote).joined(separator: ",") + "]")
            }
            return o
        }
        func counts(_ m: [TaskState: Int64], waiting: Int64) -> JSONObjectWriter {
            var o = JSONObjectWriter()
            o.add("queued", m[.queued] ?? 0)
            o.add("waiting", waiting)
            for st in TaskState.allCases where st != .queued { o.add(st.rawValue, m[st] ?? 0) }
            return o
        }
        var items: [String] = []
        for queue in perQueue.keys.sorted() {
            var o = JSONObjectWriter()
            o.add("queue", queue)
            o.add("paused", pausedNames.contains(queue))
            let c = counts(perQueue[queue]!, waiting: s.waiting[queue] ?? 0)
            items.append("{" + o.text.dropFirst().dropLast() + "," + c.text.dropFirst())
        }
        var root = JSONObjectWriter()
        root.add("database", database)
        root.addRaw("queues", "[" + items.joined(separator: ",") + "]")
        root.addRaw("totals", counts(totals, waiting: s.waiting.values.reduce(0, +)).text)
        root.addRaw("paused_queues", "[" + paused.map { p in
            var o = JSONObjectWriter()
            o.add("queue", p.name)
            o.add("paused_at", p.pausedAt?.iso)
            return o.text
        }.joined(separator: ",") + "]")
        root.addRaw("supervisors", "[" + s.processes.filter { $0.role == .supervisor }.map { sup in
            var o = processJSON(sup)
            o.addRaw("workers", "[" + s.processes.filter { $0.supervisorID == sup.id }.map { processJSON($0).text }.joined(separator: ",") + "]")
            return o.text
        }.joined(separator: ",") + "]")
        root.addRaw("unserved", Self.unserved(unserved))
        return root.text
    }

    /// `status --json`'s "unserved" array.
    public static func unserved(_ unserved: [UnservedTasks]) -> String {
        "[" + unserved.map { u in
            var o = JSONObjectWriter()
            o.add("queue", u.queue)
            o.add("kind", u.kind)
            o.add("queued", u.count)
            switch u.reason {
            case .noSupervisor: o.add("reason", "no supervisor")
            case .noHandler: o.add("reason", "no handler")
            case .queueNotServed: o.add("reason", "queue not served")
            }
            return o.text
        }.joined(separator: ",") + "]"
    }

    /// One schedule: the shape of `schedule list --json` items.
    public static func schedule(_ s: Schedule) -> String {
        var o = JSONObjectWriter()
        o.add("name", s.name)
        o.add("cron", s.cron)
        o.add("tz", s.timeZone)
        o.add("kind", s.kind)
        o.addRaw("payload", s.payload)
        o.add("queue", s.options.queue)
        o.add("priority", s.options.priority)
        o.add("max_attempts", s.options.maxAttempts)
        o.add("timeout", s.options.timeout)
        o.add("on_crash", s.options.onCrash?.rawValue)
        o.add("backoff_base", s.options.backoffBase)
        o.add("backoff_cap", s.options.backoffCap)
        o.add("created_at", s.createdAt.iso)
        o.add("next_at", s.nextAt.iso)
        o.add("last_at", s.lastAt?.iso)
        o.add("last_task_id", s.lastTaskID)
        return o.text
    }
}
