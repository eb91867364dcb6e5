import ArgumentParser
import TaskQueue
import TaskQueueStores
#if canImport(Glibc)
import Glibc
#endif

/// Prints what retry/cancel changed, one line per task, refusals on stderr;
/// throws the exit status: 66 when an id does not exist, 1 when one was refused.
private func report(_ changes: [TaskChange], verb: String, location: String, bulk: Bool, what: String = "", scope: String = "") throws {
    var text = ""
    var missing: [Int64] = []
    var refused = 0
    for c in changes {
        if let after = c.after, let before = c.before {
            if bulk { continue }
            text += "\(verb) task \(c.id) (was \(before.rawValue), now \(after.rawValue))"
            let d = c.dependantsCancelled
            if !d.isEmpty {
                text += "; cancelled with it, as \(d.count == 1 ? "it was" : "they were") to run after it: task\(d.count == 1 ? "" : "s") \(d.map(String.init).joined(separator: ", "))"
            }
            text += "\n"
        } else if c.before == nil {
            missing.append(c.id)
        } else {
            refused += 1
            System.log("taskq: \(c.note ?? "task \(c.id) left as it is")")
        }
    }
    let done = changes.filter { $0.after != nil }.count
    if bulk || changes.count != 1 { text += "\(verb) \(done)\(what) task\(done == 1 ? "" : "s")\(scope)\n" }
    out(text)
    if !missing.isEmpty {
        throw TaskQueueError.notFound("no task \(idList(missing)) in \(location)")
    }
    if refused > 0 {
        throw TaskQueueError.failed("\(refused) task\(refused == 1 ? " was" : "s were") left as \(refused == 1 ? "it was" : "they were") (see above)")
    }
}

struct Retry: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Put failed or cancelled tasks back as queued, with a fresh attempt budget.",
        discussion: """
            Give task ids, or --state failed|cancelled (optionally narrowed by --queue and \
            --kind) to retry every such task. Each retried task becomes queued, ready now, with \
            its attempt count back at 0; its earlier attempts stay in its history ('taskq show'). \
            A task in any other state is left as it is, with a message on stderr. Tasks that \
            were cancelled because a task they ran --after failed are not revived by retrying \
            that task: retry them too. A retried task waits again for its --after tasks that \
            have not succeeded; while one of them is failed, cancelled or purged it is left \
            as it is (retry that one first, or in the same call: ids are retried oldest first).

            Ids: as many as needed, separated by spaces or newlines; - reads more from stdin. \
            A repeated id counts once; a bad id is exit 64 before anything is done.

            Prints one line per retried task (and the count for several ids); with --state, \
            only the count, e.g. 'retried 7 failed tasks (queue emails)'.

            Examples:
              taskq retry 42
              taskq retry 42 43 44
              taskq retry - < ids.txt
              taskq retry --state failed
              taskq retry --state failed --queue emails --kind send

            Exit status: 0 all retried; 1 some task was left as it was; 64 usage; \
            66 no such task or database.
            """)

    @OptionGroup var database: DatabaseOptions
    @Argument(help: ArgumentHelp("Task ids; - reads more from stdin (whitespace-separated).", valueName: "id")) var ids: [String] = []
    @Option(parsing: .unconditional, help: ArgumentHelp("Retry every task in this state: failed or cancelled.", valueName: "state"))
    var state: String?
    @Option(parsing: .unconditional, help: ArgumentHelp("With --state: only this queue.", valueName: "name")) var queue: String?
    @Option(parsing: .unconditional, help: ArgumentHelp("With --state: only this kind.", valueName: "kind")) var kind: String?

    func validate() throws {
        if ids.isEmpty && state == nil { throw ValidationError("give task ids, or --state failed|cancelled: taskq retry ID... | --state failed") }
        if !ids.isEmpty && state != nil { throw ValidationError("give task ids or --state, not both") }
        if state == nil && (queue != nil || kind != nil) { throw ValidationError("--queue and --kind go with --state") }
        if let state, state != "failed" && state != "cancelled" {
            throw ValidationError("--state must be failed or cancelled (only those can be retried), not '\(state)'")
        }
        try TaskIDArguments(ids).check()
        try asUsageError {
            if let queue { try validateName(queue, what: "queue") }
            if let kind { try validateName(kind, what: "kind", allowReserved: true) }
        }
    }

    func run() throws {
        let ids = try TaskIDArguments(self.ids).read()
        let q = try database.open(create: false)
        if let state {
            let changes = try q.retryAll(state: TaskState(rawValue: state)!, queue: queue, kind: kind)
            let scope = [queue.map { "queue \($0)" }, kind.map { "kind \($0)" }].compactMap { $0 }
            try report(changes, verb: "retried", location: q.location, bulk: true,
                       what: " \(state)", scope: scope.isEmpty ? "" : " (\(scope.joined(separator: ", ")))")
        } else {
            try report(try q.retry(ids), verb: "retried", location: q.location, bulk: false)
        }
    }
}

struct Cancel: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Cancel queued or running tasks; a cancelled task is never retried.",
        discussion: """
            A queued task ends cancelled at once. A running one ends cancelled too, and its \
            worker notices within a fraction of a second (it checks every 0.2 s) and kills its \
            handler's whole process group; whatever the handler still reports is refused. \
            (Handlers written in Swift inside a worker cannot be interrupted: their result is \
            refused when they return.) Tasks waiting for a cancelled task (--after) are \
            cancelled too. Finished tasks are left as they are, with a message on stderr.

            Ids: as many as needed, separated by spaces or newlines; - reads more from stdin \
            (empty stdin cancels nothing). A repeated id counts once; a bad id is exit 64 \
            before anything is done.

            Examples:
              taskq cancel 42
              taskq cancel 42 43 44
              taskq list --state queued --kind report --json | jq '.[].id' | taskq cancel -

            Exit status: 0 all cancelled; 1 some task had already finished; 64 usage; 66 no \
            such task or database.
            """)

    @OptionGroup var database: DatabaseOptions
    @Argument(help: ArgumentHelp("Task ids; - reads more from stdin (whitespace-separated).", valueName: "id")) var ids: [String] = []

    func validate() throws {
        if ids.isEmpty { throw ValidationError("give the ids of the tasks to cancel: taskq cancel ID...") }
        try TaskIDArguments(ids).check()
    }

    func run() throws {
        let ids = try TaskIDArguments(self.ids).read()
        let q = try database.open(create: false)
        try report(try q.cancel(ids, reason: "cancelled by taskq cancel"), verb: "cancelled", location: q.location, bulk: false)
    }
}

struct Purge: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Delete finished tasks that finished longer ago than a duration.",
        discussion: """
            Deletes succeeded, failed and cancelled tasks (or only the --state ones) whose \
            finished_at is older than --older-than, with their attempt history, in small \
            transactions so workers are never held up for long. Queued and running tasks are \
            never touched; every task that matches is deleted, the newest too (the database \
            remembers the highest id it deleted, so no id is ever given out twice). \
            'taskq supervise' does this on its own (--retain, default 7d).

            Examples:
              taskq purge --older-than 7d
              taskq purge --older-than 12h --state succeeded
              taskq purge --older-than 0s --state failed --state cancelled

            Exit status: 0 (also when nothing was old enough); 64 usage; 66 no database.
            """)

    @OptionGroup var database: DatabaseOptions
    @Option(name: .customLong("older-than"), parsing: .unconditional, help: ArgumentHelp("Finished longer ago than this: 0s, 90s, 30m, 12h, 7d…", valueName: "duration"))
    var olderThan: String
    @Option(parsing: .unconditionalSingleValue, help: ArgumentHelp("Only this finished state: succeeded, failed or cancelled (repeatable). Default: all three.", valueName: "state"))
    var state: [String] = []

    func validate() throws {
        _ = try seconds(olderThan, option: "--older-than")
        for s in state where !(TaskState(rawValue: s)?.isFinished ?? false) {
            throw ValidationError("--state must be succeeded, failed or cancelled (only finished tasks are purged), not '\(s)'")
        }
    }

    func run() throws {
        let q = try database.open(create: false)
        let states = state.isEmpty ? [TaskState.succeeded, .failed, .cancelled] : Array(Set(state.compactMap(TaskState.init(rawValue:)))).sorted { $0.rawValue < $1.rawValue }
        let cutoff = Timestamp.now().adding(seconds: -(try seconds(olderThan, option: "--older-than")))
        let n = try q.purge(states: states, finishedBefore: cutoff)
        out("purged \(n) task\(n == 1 ? "" : "s") (\(states.map(\.rawValue).joined(separator: ", ")) before \(cutoff.iso))\n")
    }
}

struct Pause: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Pause a queue: its tasks are not claimed until 'taskq resume'.",
        discussion: """
            Persisted in the database (table queues), so every worker of every supervisor \
            sees it at its next claim, and it survives restarts. Running tasks finish; tasks \
            can still be enqueued ('taskq enqueue' warns on stderr). 'taskq status' and \
            'taskq top' mark paused queues. A queue can be paused before it has any task, \
            even before the database exists (pause and resume create it, as enqueue does).

            Examples:
              taskq pause emails
              taskq resume emails
            """)

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var target: QueueArgument
    var queue: String { target.queue }

    func run() throws {
        let q = try database.open(create: true)   // a queue can be paused before its first task
        if try q.pause(queue) { out("paused queue \(queue): no new claims until 'taskq resume \(queue)'\n") }
        else { out("queue \(queue) was already paused\n") }
    }
}

struct Resume: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Resume a paused queue.",
        discussion: """
            Workers claim from it again at once (they wake on the database change).

            Examples:
              taskq resume emails
            """)

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var target: QueueArgument
    var queue: String { target.queue }

    func run() throws {
        let q = try database.open(create: true)
        if try q.resume(queue) { out("resumed queue \(queue)\n") } else { out("queue \(queue) was not paused\n") }
    }
}

/// The QUEUE argument of pause and resume, checked like every queue name.
struct QueueArgument: ParsableArguments {
    @Argument(help: ArgumentHelp("Queue name.", valueName: "queue")) var queue: String

    func validate() throws {
        do { try validateName(queue, what: "queue") } catch let e as TaskQueueError { throw ValidationError(e.message) }
    }
}
