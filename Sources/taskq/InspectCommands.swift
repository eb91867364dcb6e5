import ArgumentParser
import TaskQueue
import TaskQueueStores
#if canImport(Glibc)
import Glibc
#endif

struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create the database with the current schema (other commands that write do this too).",
        discussion: """
            Creates the file (mode 0600: readable by its owner only) in WAL mode and applies \
            the schema; on an existing taskq database it only brings the schema up to date. \
            Safe to run more than once. On PostgreSQL (--db postgresql://…) it creates taskq's \
            tables in the connection's current schema.

            Examples:
              taskq init
              taskq init --db /var/lib/myapp/queue.db
              TASKQ_DB=/srv/q.db taskq init && sqlite3 /srv/q.db .tables
              taskq init --db postgresql://taskq@db.example/jobs
            """)

    @OptionGroup var database: DatabaseOptions

    func run() throws {
        let q = try database.open(create: true)
        out("initialized \(q.location)\n")
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show task counts per queue and state, and the live supervisors and workers.",
        discussion: """
            --json prints one object: {"database", "queues": [{"queue", "paused", "queued", "waiting", \
            "running", "succeeded", "failed", "cancelled"}], "totals": {same counts}, \
            "paused_queues": [{"queue", "paused_at"}], \
            "supervisors": [{"id", "pid", "host", "alive", "started_at", "heartbeat_at", "queues", \
            "kinds", "workers": [{"id", "pid", "host", "alive", "started_at", "heartbeat_at"}]}], \
            "unserved": [{"queue", "kind", "queued", "reason"}]}. \
            "unserved" lists queued tasks no live supervisor will run: reason "no supervisor", \
            "no handler" (no live supervisor has a handler for the kind) or "queue not served" \
            (those that have one serve other queues). \
            "waiting" counts queued tasks whose start time (delay or retry backoff) is still ahead. \
            "alive" is false for a process that died without cleaning up (its pid is gone, or \
            its lease expired while it was stopped); the next supervisor recovers its tasks. \
            Times are UTC ISO 8601.

            Examples:
              taskq status
              taskq status --json | jq .totals
              taskq status --db /srv/q.db
            """)

    @OptionGroup var database: DatabaseOptions
    @Flag(help: "Print JSON (shape above).") var json = false
    @Flag(help: "Refresh every second as a live view, until Ctrl-C (the same as 'taskq top').") var watch = false

    func run() throws {
        if watch { return try LiveView(database: database, interval: 1, iterations: nil).run() }
        let q = try database.open(create: false)
        let s = try q.stats()
        let paused = try q.pausedQueues()
        let pausedNames = Set(paused.map(\.name))
        let states = TaskState.allCases
        var perQueue: [String: [TaskState: Int64]] = [:]
        for c in s.counts { perQueue[c.queue, default: [:]][c.state] = c.count }
        for (queue, _) in s.waiting where perQueue[queue] == nil { perQueue[queue] = [:] }
        for p in paused where perQueue[p.name] == nil { perQueue[p.name] = [:] }
        let queues = perQueue.keys.sorted()
        var totals: [TaskState: Int64] = [:]
        for (_, m) in perQueue { for (k, v) in m { totals[k, default: 0] += v } }
        let waitingTotal = s.waiting.values.reduce(0, +)
        let supervisors = s.processes.filter { $0.role == .supervisor }
        let now = Timestamp.now()
        let dead = Set(s.processes.filter { Recovery.deathReason(of: $0, now: now) != nil }.map(\.id))
        if json {
            out(TaskJSON.status(database: q.location, stats: s, paused: paused, unserved: try q.unservedTasks(), now: now) + "\n")
            return
        }
        var text = "database: \(q.location)\n\n"
        if queues.isEmpty {
            text += "no tasks\n"
        } else {
            let header = ["QUEUE"] + states.map { $0.rawValue.uppercased() } + ["WAITING"]
            var rows = queues.map { queue in
                [queue + (pausedNames.contains(queue) ? " (paused)" : "")] + states.map { String(perQueue[queue]![$0] ?? 0) } + [String(s.waiting[queue] ?? 0)]
            }
            if queues.count > 1 { rows.append(["(all)"] + states.map { String(totals[$0] ?? 0) } + [String(waitingTotal)]) }
            text += table(header, rows)
        }
        if !paused.isEmpty {
            text += "\npaused: " + paused.map { "\($0.name) (since \($0.pausedAt?.iso ?? "?"))" }.joined(separator: ", ")
                + "; 'taskq resume QUEUE' lets workers claim from it again\n"
        }
        text += "\n"
        let live = supervisors.filter { !dead.contains($0.id) }
        let unserved = unservedLines(try q.unservedTasks())
        if live.isEmpty {
            // The unserved lines say it themselves, with what to start.
            if unserved.isEmpty { text += "no supervisor is running\n" }
        } else {
            for sup in live {
                let ws = s.processes.filter { $0.supervisorID == sup.id && !dead.contains($0.id) }
                text += "supervisor pid \(sup.pid) on \(sup.host) (process \(sup.id)), up since \(sup.startedAt.iso), \(ws.count) workers"
                text += " [pids \(ws.map { String($0.pid) }.joined(separator: " "))], kinds: \(sup.kinds.joined(separator: ", "))"
                text += sup.queues.map { ", queues: \($0.joined(separator: ", "))" } ?? ", all queues"
                text += "\n"
            }
        }
        text += unserved
        if !dead.isEmpty {
            let pids = s.processes.filter { dead.contains($0.id) }.map { "\($0.role.rawValue) pid \($0.pid)" }
            text += "\(dead.count) dead process\(dead.count == 1 ? "" : "es") not cleaned up yet (\(pids.joined(separator: ", "))): "
                + "the next 'taskq supervise' recovers their tasks\n"
        }
        out(text)
    }

}

struct List: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List tasks, newest first.",
        discussion: """
            Filters combine: every given filter must match. Stop sentinels (kind \
            taskq.stop, the rows 'taskq stop' writes) are left out unless --all or \
            --kind taskq.stop asks for them, as 'taskq status' leaves them out. --json \
            prints a JSON array of task objects, each shaped as in 'taskq show --json'.

            Examples:
              taskq list
              taskq list --state failed --limit 20
              taskq list --state queued --state running --queue emails
              taskq list --kind resize --json | jq '.[].id'
              taskq list --all --limit 5
            """)

    @OptionGroup var database: DatabaseOptions
    @Option(parsing: .unconditionalSingleValue, help: ArgumentHelp("Only tasks in this state: queued, running, succeeded, failed, cancelled (repeatable).", valueName: "state"))
    var state: [String] = []
    @Option(parsing: .unconditional, help: ArgumentHelp("Only this queue.", valueName: "name")) var queue: String?
    @Option(parsing: .unconditional, help: ArgumentHelp("Only this kind.", valueName: "kind")) var kind: String?
    @Option(parsing: .unconditional, help: ArgumentHelp("At most this many tasks (1 to 1000000).", valueName: "n")) var limit: Int = 100
    @Flag(help: "Include stop sentinels (kind taskq.stop).") var all = false
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        for s in state where TaskState(rawValue: s) == nil {
            throw ValidationError("--state '\(s)' is not a state; use queued, running, succeeded, failed or cancelled")
        }
        if limit < 1 || limit > 1_000_000 { throw ValidationError("--limit must be between 1 and 1000000, not \(limit)") }
        try asUsageError {
            if let queue { try validateName(queue, what: "queue") }
            if let kind { try validateName(kind, what: "kind", allowReserved: true) }
        }
    }

    func run() throws {
        let q = try database.open(create: false)
        let tasks = try q.tasks(TaskFilter(states: state.compactMap(TaskState.init(rawValue:)), queue: queue, kind: kind, limit: limit,
                                           includeStopSentinels: all || kind == stopSentinelKind))
        if json {
            out("[" + tasks.map(taskJSON).joined(separator: ",\n") + "]\n")
            return
        }
        if tasks.isEmpty { out("no tasks\n"); return }
        out(table(["ID", "KIND", "QUEUE", "STATE", "ATTEMPTS", "CREATED", "ERROR"], tasks.map { t in
            [String(t.id), t.kind, t.queue, t.state.rawValue, "\(t.attempts)/\(t.maxAttempts)", t.createdAt.iso,
             t.lastError.map { String($0.prefix(60)) } ?? ""]
        }))
    }
}

struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show one task.",
        discussion: """
            --json prints {"id", "kind", "queue", "state", "priority", "payload" (the JSON itself), \
            "run_at", "attempts", "max_attempts", "timeout", "backoff_base", "backoff_cap" \
            (seconds; null: the supervisor's), "owner", "created_at", "started_at", \
            "finished_at", "result" (text), "error", "worker_pid", "worker_host", "on_crash", \
            "unique_key", "after" (ids it still waits for), "attempts_history": [{"attempt", \
            "started_at", "finished_at", "worker_pid", "host", "outcome", "error", "stderr"}]}; \
            "stderr" is the end (2 KiB) of a succeeded command handler's stderr (a failed \
            attempt's is at the end of its "error"); times are \
            UTC ISO 8601, absent values null. "outcome" is failed, timed out, crashed, released \
            (put back at shutdown, not counted), cancelled, or running / succeeded for the \
            attempt in hand. Every attempt is listed, oldest first; in sqlite3: \
            SELECT * FROM attempts WHERE task_id = 42 ORDER BY started_at.

            Examples:
              taskq show 42
              taskq show 42 --json | jq -r .error
              taskq show 42 --json | jq '.attempts_history[] | [.attempt, .outcome, .error]'

            Exit status: 0 shown, 64 not a task id, 66 no such task or database.
            """)

    @OptionGroup var database: DatabaseOptions
    @Argument(help: ArgumentHelp("Task id.", valueName: "id")) var id: Int64
    @Flag(help: "Print JSON (shape above).") var json = false

    func validate() throws { try checkID(id) }

    func run() throws {
        let q = try database.open(create: false)
        guard let t = try q.task(id) else { throw TaskQueueError.notFound("no task \(id) in \(q.location)") }
        let history = try q.attempts(of: id)
        if json {
            out(TaskJSON.detail(t, history: history) + "\n")
            return
        }
        var lines: [(String, String)] = [
            ("id", String(t.id)), ("kind", t.kind), ("queue", t.queue), ("state", t.state.rawValue),
            ("priority", String(t.priority)), ("attempts", "\(t.attempts)/\(t.maxAttempts)"),
            ("timeout", t.timeout.map { formatDuration($0) } ?? "none"),
            ("created", t.createdAt.iso), ("run at", t.runAt.iso),
        ]
        if let s = t.startedAt { lines.append(("started", s.iso)) }
        if let f = t.finishedAt { lines.append(("finished", f.iso)) }
        if let o = t.owner { lines.append(("owner", "process \(o)")) }
        if let k = t.uniqueKey { lines.append(("unique", k)) }
        if let c = t.onCrash { lines.append(("on crash", c.rawValue)) }
        if t.backoffBase != nil || t.backoffCap != nil {
            lines.append(("backoff", "\(t.backoffBase.map(formatDuration) ?? "(supervisor's)") doubling up to \(t.backoffCap.map(formatDuration) ?? "(supervisor's)")"))
        }
        if !t.waitingFor.isEmpty { lines.append(("after", "waiting for task " + t.waitingFor.map(String.init).joined(separator: ", "))) }
        if let e = t.lastError { lines.append(("error", e)) }
        lines.append(("payload", t.payload))
        if let r = t.result { lines.append(("result", String(decoding: r, as: UTF8.self))) }
        if let e = history.last(where: { $0.stderr != nil })?.stderr { lines.append(("stderr", e)) }
        var text = lines.map { "\($0.0):" + String(repeating: " ", count: 10 - $0.0.count) + $0.1 + "\n" }.joined()
        if !history.isEmpty {
            text += "\nattempt history:\n" + table(["#", "OUTCOME", "STARTED", "FINISHED", "WORKER", "ERROR"], history.map { a in
                [String(a.attempt), a.outcome, a.startedAt?.iso ?? "-", a.finishedAt?.iso ?? "-",
                 a.workerPID.map { "pid \($0)" + (a.workerHost.map { " on \($0)" } ?? "") } ?? "-",
                 a.error ?? a.stderr.map { "stderr: " + $0.split(separator: "\n").joined(separator: " ⏎ ") } ?? ""]
            }).split(separator: "\n", omittingEmptySubsequences: false).map { $0.isEmpty ? "" : "  " + $0 }.joined(separator: "\n")
        }
        out(text)
    }
}
