import ArgumentParser
import TaskQueue
import TaskQueueStores
#if canImport(Glibc)
import Glibc
#endif

struct Supervise: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run N worker processes that claim and run tasks, in the foreground, until stopped.",
        discussion: """
            Each --handler KIND=COMMAND runs COMMAND with /bin/sh -c for tasks of KIND, in its own \
            process group, in this directory, with the task's JSON payload on stdin and \
            TASKQ_TASK_ID, TASKQ_KIND, TASKQ_QUEUE, TASKQ_ATTEMPT and TASKQ_DB in its environment. \
            Exit 0: the task succeeded and its stdout is the result (the end of its stderr is \
            kept beside it: 'taskq show ID'). Exit 65 (bad data): the task ends failed at once, \
            without retries. Anything else: the attempt failed; it is retried with exponential \
            backoff until the task's max attempts are spent, then ends failed. --backoff-base, \
            --backoff-cap and --on-crash KIND=... apply to tasks that have no setting of their \
            own (from 'enqueue' or the kind's policy, 'taskq kind set').

            Output: nothing a handler writes reaches the terminal unless --log-output is given; \
            then each line (stdout and stderr) is printed on stderr as [task ID KIND] LINE.

            Checked at start: a handler whose program is surely missing or not executable (its \
            first word a path that is not an executable file, or a plain word that is neither a \
            shell builtin nor in PATH) is refused with exit 64 before anything is written.

            Stopping: 'taskq stop' drains what was ready before it, then every process exits 0. \
            SIGTERM or SIGINT (Ctrl-C) lets running tasks finish for up to --shutdown-timeout, \
            then puts them back as queued; a second signal does that at once.

            A worker killed mid-task is noticed at once: its handler's process group is killed \
            and the task goes back for a retry (or ends failed, for kinds with --on-crash \
            KIND=fail or tasks enqueued with --on-crash fail: work that must not run twice). A \
            killed supervisor takes its workers with it; the next supervisor recovers what they held.

            Queues: --queue NAME=N gives queue NAME its own N workers, so a slow queue cannot \
            starve another; a bare --queue NAME shares the --workers pool with the other bare \
            ones. Without --queue, the workers serve every queue. Paused queues ('taskq pause') \
            are skipped by every worker.

            Housekeeping: finished tasks older than --retain (default 7d) are deleted, checked \
            once a minute in small batches ('taskq purge' does it by hand); --retain never keeps \
            them forever.

            Examples:
              taskq supervise --workers 4 --handler resize='./resize.sh'
              taskq supervise --handler email='python3 send.py' --queue emails --lease 60
              taskq supervise --handler t=./t.sh --queue default=4 --queue emails=1
              taskq supervise --handler charge=./charge.sh --on-crash charge=fail --retain 30d
              taskq supervise --handler square='jq ".n * .n"' --until-empty
              taskq supervise --workers 4 --log-output --handler show='echo "number $(cat)"'
            """)

    @OptionGroup var database: DatabaseOptions

    @Option(parsing: .unconditional, help: ArgumentHelp("Worker processes (1 to 1024). Default: the CPUs this process may use (\(System.cpuCount) here).", valueName: "n"))
    var workers: Int?

    @Option(name: .customLong("handler"), parsing: .unconditionalSingleValue, help: ArgumentHelp("KIND=COMMAND: run COMMAND (with /bin/sh -c) for tasks of KIND. Repeatable; at least one.", valueName: "kind=command"))
    var handlerOptions: [String] = []
    /// Each --handler given (see `packingRepeatedOptions`).
    var handlers: [String] { unpacked(handlerOptions) }

    @Option(name: .customLong("queue"), parsing: .unconditionalSingleValue, help: ArgumentHelp("Serve this queue (repeatable): NAME shares the --workers pool, NAME=N gets its own N workers. Default: every queue.", valueName: "name[=n]"))
    var queueOptions: [String] = []
    var queues: [String] { unpacked(queueOptions) }

    @Option(name: .customLong("on-crash"), parsing: .unconditionalSingleValue, help: ArgumentHelp("KIND=retry|fail: what a crashed worker means for tasks of KIND (repeatable; a task's own --on-crash, or its kind's policy, wins). Default: retry.", valueName: "kind=policy"))
    var onCrashOptions: [String] = []
    var onCrash: [String] { unpacked(onCrashOptions) }

    @Option(parsing: .unconditional, help: ArgumentHelp("Delete finished tasks older than this (checked once a minute, in small batches), or 'never'.", valueName: "duration"))
    var retain: String = "7d"

    @Option(parsing: .unconditional, help: ArgumentHelp("How long a claim lives without a heartbeat; a worker frozen longer loses its task to a retry.", valueName: "duration"))
    var lease: String = "30s"

    @Option(name: .customLong("shutdown-timeout"), parsing: .unconditional, help: ArgumentHelp("On SIGTERM/SIGINT/stop --now: how long running tasks may finish before they are killed and put back.", valueName: "duration"))
    var shutdownTimeout: String = "30s"

    @Option(name: .customLong("backoff-base"), parsing: .unconditional, help: ArgumentHelp("Retry delay after the first failed attempt; it doubles per attempt, with jitter. For tasks without their own (enqueue --backoff-base, taskq kind set).", valueName: "duration"))
    var backoffBase: String = "1s"

    @Option(name: .customLong("backoff-cap"), parsing: .unconditional, help: ArgumentHelp("Longest retry delay, for tasks without their own. Default: 5m, or --backoff-base when that is longer.", valueName: "duration"))
    var backoffCap: String?

    @Flag(name: .customLong("log-output"), help: "Also print each line a handler writes (stdout and stderr) to this command's stderr, prefixed [task ID KIND]. The stored result stays byte-exact.")
    var logOutput = false

    @Flag(name: .customLong("until-empty"), help: "A batch run: exit 0 once no task is ready for these handlers and none waits out a retry backoff (tasks delayed at enqueue are left).")
    var untilEmpty = false

    func validate() throws {
        if let w = workers, w < 1 { throw ValidationError("--workers must be at least 1, not \(w)") }
        if let w = workers, w > 1024 { throw ValidationError("--workers must be at most 1024, not \(w)") }
        if handlers.isEmpty { throw ValidationError("give at least one --handler KIND=COMMAND, e.g. --handler resize='./resize.sh'") }
        var seen = Set<String>()
        for h in handlers {
            guard let eq = h.firstIndex(of: "=") else {
                throw ValidationError("--handler '\(h)' has no '=': write KIND=COMMAND, e.g. --handler resize='./resize.sh'")
            }
            let kind = String(h[..<eq]), command = String(h[h.index(after: eq)...])
            try asUsageError("--handler: ") { try validateName(kind, what: "kind") }
            if command.trimmingCharacters(in: " \t").isEmpty { throw ValidationError("--handler \(kind)= has an empty command") }
            if !seen.insert(kind).inserted { throw ValidationError("--handler: kind '\(kind)' given twice") }
        }
        _ = try settings()
    }

    func settings() throws -> SupervisorOptions {
        var o = SupervisorOptions(database: database.path)
        o.synchronous = database.durability?.rawValue ?? ""
        o.busyTimeout = database.busyTimeout
        o.workers = workers ?? System.cpuCount
        var bare: [String] = []
        var named: [WorkerPool] = []
        var seenQueues = Set<String>()
        for q in queues {
            var name = q
            var count: Int?
            if let eq = q.firstIndex(of: "=") {
                name = String(q[..<eq])
                let n = String(q[q.index(after: eq)...])
                guard let c = Int(n), c >= 1, c <= 1024 else {
                    throw ValidationError("--queue \(q): the worker count after '=' must be a number from 1 to 1024")
                }
                count = c
            }
            try asUsageError("--queue: ") { try validateName(name, what: "queue") }
            if !seenQueues.insert(name).inserted { throw ValidationError("--queue: queue '\(name)' given twice") }
            if let count { named.append(WorkerPool(queues: [name], workers: count)) } else { bare.append(name) }
        }
        if !named.isEmpty {
            if bare.isEmpty, let w = workers {
                throw ValidationError("--workers \(w) has no queue to serve: every --queue names its own count (give a bare --queue NAME to share --workers)")
            }
            o.pools = named + (bare.isEmpty ? [] : [WorkerPool(queues: bare.sorted(), workers: o.workers)])
            if o.pools.reduce(0, { $0 + $1.workers }) > 1024 { throw ValidationError("at most 1024 workers in all") }
        }
        o.queues = bare.isEmpty ? nil : bare.sorted()
        for c in onCrash {
            guard let eq = c.firstIndex(of: "="), let policy = CrashPolicy(rawValue: String(c[c.index(after: eq)...])) else {
                throw ValidationError("--on-crash '\(c)': write KIND=retry or KIND=fail")
            }
            let kind = String(c[..<eq])
            try asUsageError("--on-crash: ") { try validateName(kind, what: "kind") }
            if o.onCrash[kind] != nil { throw ValidationError("--on-crash: kind '\(kind)' given twice") }
            o.onCrash[kind] = policy
        }
        if retain == "never" { o.retain = nil } else {
            o.retain = try seconds(retain, option: "--retain")
        }
        for h in handlers {
            let eq = h.firstIndex(of: "=")!
            o.commands[String(h[..<eq])] = String(h[h.index(after: eq)...])
        }
        o.lease = try seconds(lease, option: "--lease")
        if o.lease < 0.5 { throw ValidationError("--lease must be at least 0.5 seconds, not \(lease)") }
        o.shutdownTimeout = try seconds(shutdownTimeout, option: "--shutdown-timeout")
        let base = try seconds(backoffBase, option: "--backoff-base")
        o.retry = RetryPolicy(base: base, cap: try backoffCap.map { try seconds($0, option: "--backoff-cap") } ?? max(300, base))
        try asUsageError { try KindPolicy(backoffBase: o.retry.base, backoffCap: o.retry.cap).validate(asOptions: true) }
        o.untilEmpty = untilEmpty
        o.logOutput = logOutput
        return o
    }

    func run() throws {
        let code = try TaskQueueProcess.supervise(try settings(), handlers: HandlerSet())
        if code != 0 { throw ExitCode(code) }
    }
}
