import ArgumentParser
import TaskQueue
import TaskQueueStores
#if canImport(Glibc)
import Glibc
#endif

struct Result: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a task's result.",
        discussion: """
            Exit 0 and the stored result (the handler's stdout, byte for byte) if the task \
            succeeded; exit 1 with its last error on stderr if it failed or was cancelled; \
            exit 75 if it has not finished (or --wait timed out); exit 66 if there is no such task.

            Examples:
              taskq result 42
              taskq result 42 --wait                  # block until it finishes
              id=$(taskq enqueue square 7) && taskq result "$id" --wait --timeout 30
            """)

    @OptionGroup var database: DatabaseOptions
    @Argument(help: ArgumentHelp("Task id.", valueName: "id")) var id: Int64
    @Flag(help: "Wait until the task has finished.") var wait = false
    @Option(parsing: .unconditional, help: ArgumentHelp("With --wait: give up after this long (seconds, or 90s, 5m…; exit 75). Default: wait forever.", valueName: "duration"))
    var timeout: String?

    func validate() throws {
        try checkID(id)
        if timeout != nil && !wait { throw ValidationError("--timeout goes with --wait: taskq result ID --wait --timeout SECONDS") }
        if let t = timeout { _ = try seconds(t, option: "--timeout") }
    }

    func run() throws {
        let q = try database.open(create: false)
        guard var t = try q.task(id) else { throw TaskQueueError.notFound("no task \(id) in \(q.location)") }
        if wait && !t.state.isFinished {
            let limit = try timeout.map { try seconds($0, option: "--timeout") }
            if let done = try q.waitFor(timeout: limit, { () -> TaskRecord? in
                guard let r = try q.task(id) else { throw TaskQueueError.notFound("task \(id) was deleted while waiting") }
                return r.state.isFinished ? r : nil
            }) { t = done } else {
                let now = try q.task(id)?.state ?? t.state
                throw TaskQueueError(.notFinished, "task \(id) is still \(now.rawValue) after waiting \(formatDuration(limit ?? 0)) (--timeout)")
            }
        }
        switch t.state {
        case .succeeded:
            (t.result ?? []).withUnsafeBytes { writeAll(1, $0) }
        case .failed, .cancelled:
            throw TaskQueueError.failed("task \(id) \(t.state.rawValue) after \(t.attempts) attempt\(t.attempts == 1 ? "" : "s"): \(t.lastError ?? "no error recorded")")
        case .queued, .running:
            let when = t.isBlocked
                ? (t.waitingFor.isEmpty ? " (blocked)" : " (waiting for task \(t.waitingFor.map(String.init).joined(separator: ", ")) to succeed: --after)")
                : t.state == .queued && t.runAt > Timestamp.now() ? " (next attempt at \(t.runAt.iso))" : ""
            throw TaskQueueError(.notFinished, "task \(id) is \(t.state.rawValue), not finished yet\(when)")
        }
    }
}

struct Stop: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stop the running supervisors by writing a stop sentinel row.",
        discussion: """
            Writes one row of kind 'taskq.stop' per live supervisor. Its workers finish every \
            ready task enqueued before the sentinel, start nothing enqueued after it (those wait \
            for the next start), then every worker and the supervisor exit 0. Delayed tasks and \
            tasks waiting out a retry backoff are not ready: they stay queued. The sentinel \
            survives crashes; a supervisor started later ignores sentinels addressed to dead ones.

            --now: like SIGTERM: running tasks get --shutdown-timeout to finish, then are put \
            back as queued. With no live supervisor, nothing is written and the exit status is 1.

            --wait prints 'stopped' once every supervisor has stopped. A supervisor that dies \
            instead (SIGKILL, a crash) is named on stderr with the tasks it still held, which \
            stay running in the database until the next 'taskq supervise' recovers them; the \
            exit status is then 1.

            Examples:
              taskq stop                       # drain, then exit
              taskq stop --wait --timeout 60   # ... and block until they have exited
              taskq stop --now

            Exit status: 0 stopped (without --wait: sentinels written); 1 no supervisor was \
            running, or (--wait) one died before it had stopped; 64 usage; 66 no database; \
            75 --timeout passed first.
            """)

    @OptionGroup var database: DatabaseOptions
    @Flag(help: "Stop without draining: let running tasks finish (up to the shutdown timeout), start nothing new.")
    var now = false
    @Flag(help: "Block until the supervisors have exited.") var wait = false
    @Option(parsing: .unconditional, help: ArgumentHelp("With --wait: give up after this long (seconds, or 90s, 5m…; exit 75).", valueName: "duration")) var timeout: String?

    func validate() throws {
        if timeout != nil && !wait { throw ValidationError("--timeout goes with --wait: taskq stop --wait --timeout SECONDS") }
        if let t = timeout { _ = try seconds(t, option: "--timeout") }
    }

    func run() throws {
        let q = try database.open(create: false)
        let sentinels = try q.stop(mode: now ? .now : .drain)
        if sentinels.isEmpty {
            throw TaskQueueError.failed("no supervisor is running on \(q.location); nothing to stop")
        }
        let supervisors = Dictionary(uniqueKeysWithValues: try q.stats().processes.map { ($0.id, $0) })
        for s in sentinels {
            out("stop sentinel \(s.id) written for supervisor pid \(supervisors[s.supervisorID].map { String($0.pid) } ?? "?") (\(now ? "now" : "drain"))\n")
        }
        guard wait else { return }
        let ids = Set(sentinels.map(\.supervisorID))
        let limit = try timeout.map { try seconds($0, option: "--timeout") }
        let done = try q.waitFor(timeout: limit, interval: 0.1) { () -> Bool? in
            let live = Set(try q.liveSupervisors().map(\.id))
            return live.isDisjoint(with: ids) ? true : nil
        }
        if done == nil { throw TaskQueueError(.notFinished, "supervisors still running after waiting \(formatDuration(limit ?? 0)) (--timeout); the sentinels stay in place") }
        let died = try sentinels.compactMap { try deathNote($0, supervisor: supervisors[$0.supervisorID], q) }
        if !died.isEmpty { throw TaskQueueError.failed(died.joined(separator: "; ")) }
        out("stopped\n")
    }

    /// Nil when the supervisor stopped as asked: it completes its sentinel and
    /// removes its process row on the way out. One that died (SIGKILL, a crash)
    /// left its row, or was recovered by another supervisor, which cancels the
    /// sentinel: says what became of its running tasks.
    private func deathNote(_ sentinel: StopSentinel, supervisor: ProcessRecord?, _ q: Queue) throws -> String? {
        let sentinelState = try q.task(sentinel.id)?.state
        if sentinelState == .succeeded { return nil }
        let processes = try q.stats().processes
        let left = processes.contains { $0.id == sentinel.supervisorID }
        if sentinelState == .queued && !left { return nil }   // exited, but could not mark the sentinel
        let who = "supervisor pid \(supervisor.map { String($0.pid) } ?? "?") on \(supervisor?.host ?? "?")"
        guard left else { return "\(who) died before it had stopped; another supervisor has recovered its tasks" }
        let reason = supervisor.flatMap { Recovery.deathReason(of: $0, now: .now()) } ?? "died"
        let workers = Set(processes.filter { $0.supervisorID == sentinel.supervisorID }.map(\.id))
        let running = try q.tasks(TaskFilter(states: [.running], limit: 1_000_000))
            .filter { $0.owner.map(workers.contains) ?? false }.map(\.id).sorted()
        let tasks = running.isEmpty ? "it held no running task"
            : "its running task\(running.count == 1 ? "" : "s") \(idList(running)) wait\(running.count == 1 ? "s" : "") for the next 'taskq supervise' to recover \(running.count == 1 ? "it" : "them")"
        return "\(who) \(reason) before it had stopped: \(tasks)"
    }
}
