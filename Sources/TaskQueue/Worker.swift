import CTaskQSystem
#if canImport(Glibc)
import Glibc
#endif

/// A worker process: claim, run, finish (fenced), repeat. Started by a supervisor
/// as `<exe> __taskq-worker '{"database":…,"config_fd":…}'` (see WorkerConfig), in
/// its own session, so the supervisor can kill it together with every handler it started.
///
/// Signals: SIGTERM/SIGINT finish the task in hand, then exit 0. SIGUSR1 aborts
/// the task in hand (its handler group is killed, the task released without
/// counting the attempt). The parent-death signal (SIGUSR2) kills the handler
/// group and exits at once: a worker never outlives its supervisor.
public final class Worker {
    /// Exit statuses a supervisor reads.
    public enum Exit {
        public static let clean: Int32 = 0
        public static let parentGone: Int32 = 2
        public static let leaseLost: Int32 = 3
        /// Could not start for an error that may heal (the database locked past the
        /// busy timeout, say): the supervisor tries again after a delay.
        public static let failedToStart: Int32 = 70
        /// Stopped by an error that retrying cannot heal (see `isPermanent`); its
        /// message is in the shared slot. The supervisor stops too.
        public static let permanentFailure: Int32 = 78
    }

    let config: WorkerConfig
    let handlers: HandlerSet
    let makeStore: () throws -> any TaskStore
    private var store: (any TaskStore)!
    /// The process row and its lease; its lock guards the store's one connection,
    /// which the main thread holds except while handlers run (see `run`).
    private var lease: ProcessLease!
    private var processID: Int64 = 0
    /// Shared with the supervisor: the task running now (see CurrentTaskSlot).
    private var currentTask: CurrentTaskSlot?
    private var baseEnvironment: [String] = []
    private var stopping = false
    private var aborting = false
    /// Tasks taken from this worker while it ran them (cancelled): their refused
    /// late results are expected, not worth a warning.
    private var lost: Set<Int64> = []
    /// The store's task operations (cancel checks), looked up once: a dynamic cast
    /// is not free, and runs between a claim and its handler's start otherwise.
    private lazy var operations: (any TaskOperationsStore)? = store as? any TaskOperationsStore

    package init(config: WorkerConfig, handlers: HandlerSet, makeStore: @escaping () throws -> any TaskStore) {
        var h = handlers
        for (kind, command) in config.commands where h.commands[kind] == nil && h.functions[kind] == nil {
            h.command(kind, command)
        }
        self.config = config
        self.handlers = h
        self.makeStore = makeStore
    }

    /// Runs until stopped; returns the process exit status.
    public func run() -> Int32 {
        // Die with the supervisor. The check after prctl closes the race where
        // the supervisor died before the signal was armed.
        taskq_install_die_with_child_group(SIGUSR2, Exit.parentGone)
        taskq_set_parent_death_signal(SIGUSR2)
        if getppid() != config.supervisorPID { return Exit.parentGone }
        for sig in [SIGTERM, SIGINT, SIGUSR1, SIGHUP] { taskq_install_flag_handler(sig) }
        // Map the slot first, and close its descriptor so handlers do not inherit it.
        currentTask = CurrentTaskSlot.open(descriptor: config.currentTaskFD)
        signal(SIGPIPE, SIG_IGN)

        let kinds = handlers.kinds
        if kinds.isEmpty { return stop(permanently: "this worker program has no handlers") }
        do {
            store = try makeStore()
            lease = try ProcessLease(store: store, role: .worker, supervisorID: config.supervisorID, queues: config.queues,
                                     kinds: kinds, lease: config.lease)
            processID = lease.id
        } catch {
            if Self.isPermanent(error) { return stop(permanently: "cannot start: \(error)") }
            System.log("taskq worker \(getpid()): cannot start: \(error)", level: .error)
            return Exit.failedToStart
        }
        baseEnvironment = currentEnvironment().filter { !$0.hasPrefix("TASKQ_") } + ["TASKQ_DB=\(config.database)"]
        _ = operations
        // One connection per process (on PostgreSQL, one server backend per worker).
        // The main thread holds it from here on and renews the lease itself, except
        // while handlers run, when a thread renews it. Why not the thread always: a
        // PostgreSQL store's change signal LISTENs on this connection and an idle
        // worker poll()s its socket; a renewal sent meanwhile would read a NOTIFY off
        // the socket into libpq, and the wait would sleep through it. So an idle
        // worker's waits end at the next renewal, which it makes itself.
        lease.lock()
        let supervisorPID = config.supervisorPID
        lease.renewInBackground(check: { if getppid() != supervisorPID { taskq_die(Exit.parentGone) } },
                                handle: Self.renewed)

        let waiter = store.makeChangeSignal(claims: true)
        let onlyFunctions = handlers.commands.isEmpty
        var batch = 1
        var pending: [TaskOutcome] = []
        var retryDelay = 0.0, lastError = "", lastErrorLogged = 0.0
        let request = { (limit: Int) in
            ClaimRequest(owner: self.processID, supervisorID: self.config.supervisorID, kinds: kinds,
                         queues: self.config.queues, limit: limit, pid: getpid(), host: System.hostName)
        }

        while true {
            readSignals()
            Self.renewed(lease.renewIfDue())
            waiter.drain()
            let limit = stopping ? 0 : batch
            let claimed: [ClaimedTask]
            // The claim's own time: what was due then and is still queued was not
            // this worker's to take (another took it, or its queue is paused).
            let claimedAt = Timestamp.now()
            do {
                let r = try store.finishAndClaim(pending, claim: limit > 0 ? request(limit) : nil, now: claimedAt)
                for (o, ok) in zip(pending, r.accepted) where !ok && lost.remove(o.taskID) == nil {
                    System.log("taskq worker \(getpid()): result of task \(o.taskID) attempt \(o.attempt) rejected: the task was recovered from this worker (its lease expired) and is no longer its to finish", level: .warning)
                }
                pending = []
                claimed = r.claimed
            } catch let gone as OwnerNotRegistered {
                // Declared dead while frozen or cut off: the claim and the results
                // were refused together. The next renewal would find out too.
                System.log("taskq worker \(getpid()): lease lost (\(gone)); exiting", level: .warning)
                return Exit.leaseLost
            } catch {
                if Self.isPermanent(error) {
                    // It would fail the same way every time. Write what it can, give
                    // back what it claimed, and stop, so its supervisor stops too.
                    if !pending.isEmpty { _ = try? store.finishAndClaim(pending, claim: nil, now: .now()) }
                    lease.end()
                    return stop(permanently: "\(error)")
                }
                // "database is locked" past the busy timeout, a full disk: keep
                // the outcomes and try again, backing off from 0.5 s to 5 s; never
                // die of it. (Not on the waiter: the failed write itself touched
                // the -wal file and would wake it at once.) The same error is
                // logged once, then again only every minute.
                retryDelay = min(5, max(0.5, retryDelay * 2))
                let message = "\(error)"
                if message != lastError || System.monotonic() - lastErrorLogged > 60 {
                    System.log("taskq worker \(getpid()): \(message); retrying every \(formatDuration(retryDelay)) or so", level: .warning)
                    lastError = message
                    lastErrorLogged = System.monotonic()
                }
                readSignals()
                if !stopping { lease.withoutConnection { _ = poll(nil, 0, Int32(retryDelay * 1000)) } }
                if stopping { break }
                continue
            }
            retryDelay = 0
            lastError = ""
            if stopping { break }
            if claimed.isEmpty {
                if config.untilEmpty {
                    // A batch run drains retries too: wait for the next one that is
                    // due (tasks delayed at enqueue are left for later).
                    // Asked from the claim's time, not from now: a retry that came due
                    // between the two is found (and claimed next time round), where
                    // asking from now missed it and the worker left it behind.
                    let next: Timestamp?
                    do { next = try store.nextRunAt(request(1), now: claimedAt, retriesOnly: true) } catch {
                        idle(waiter, 0.1)   // could not tell: look again rather than leave
                        continue
                    }
                    guard let retry = next else { break }
                    idle(waiter, min(1, max(0.001, retry.seconds(since: .now()))))
                    continue
                }
                if (try? store.stopSentinel(for: config.supervisorID)) ?? nil != nil { break }
                // Sleep until the database changes, or until the next delayed task
                // (or retry) is due; a slow fallback beyond that.
                var timeout = 1.0
                if let next = (try? store.nextRunAt(request(1), now: claimedAt)) ?? nil {
                    timeout = min(timeout, max(0.001, next.seconds(since: .now())))
                }
                idle(waiter, timeout)
                continue
            }
            waiter.stopWaiting()
            let full = claimed.count == batch
            let batchStart = System.monotonic()
            // Handlers run without the connection: the lease's thread renews meanwhile.
            lease.unlock()
            for task in claimed {
                readSignals()
                if stopping || aborting {
                    // Claimed in a batch but never started: no attempt to keep in history.
                    pending.append(TaskOutcome(taskID: task.id, owner: processID, attempt: task.attempt, result: .released,
                                               failure: TaskOutcome.notStarted))
                    continue
                }
                currentTask?.taskID = task.id
                let (result, failure, stderr) = execute(task)
                currentTask?.taskID = 0
                pending.append(TaskOutcome(taskID: task.id, owner: processID, attempt: task.attempt, result: result, failure: failure,
                                           stderr: stderr))
            }
            lease.lock()
            // Claim more at once while the backlog is deep (a full claim) and its
            // tasks are quick (the batch ran in under 10 ms, so a bigger one only
            // saves transactions and delays nothing much); fewer when it is shallow,
            // so a short queue still spreads over all workers.
            if onlyFunctions {
                if !full { batch = max(1, batch / 2) }
                else if System.monotonic() - batchStart < 0.01 { batch = min(batch * 2, config.maxBatch) }
            }
        }
        flush(pending)
        lease.end()
        return Exit.clean
    }

    /// Whether retrying cannot heal `error`: the one place that decides. A statement
    /// SQLite refuses (SQLITE_ERROR or SQLITE_MISUSE: a missing index, a statement
    /// past SQLite's limits), a file that is not a database or is corrupt, and a bad
    /// configuration fail the same way every time. A lock held too long, a full disk,
    /// an I/O error, a read-only or missing file may heal, and are retried.
    package static func isPermanent(_ error: any Error) -> Bool {
        guard let e = error as? TaskQueueError, !e.isTransient else { return false }
        return e.code == .failed || e.code == .badData || e.code == .usage
    }

    /// Logs why this worker cannot go on, leaves it in the slot for the supervisor,
    /// and returns the status that says so.
    private func stop(permanently why: String) -> Int32 {
        System.log("taskq worker \(getpid()): \(why); retrying cannot heal this: exiting (status \(Exit.permanentFailure))", level: .error)
        currentTask?.failure = why
        return Exit.permanentFailure
    }

    private func readSignals() {
        let f = taskq_take_signal_flags()
        if f & (1 << UInt64(SIGTERM) | 1 << UInt64(SIGINT) | 1 << UInt64(SIGHUP)) != 0 { stopping = true }
        if f & (1 << UInt64(SIGUSR1)) != 0 { stopping = true; aborting = true }
    }

    /// Writes the last outcomes, retrying through a busy database for a while.
    private func flush(_ outcomes: [TaskOutcome]) {
        if outcomes.isEmpty { return }
        for attempt in 1...20 {
            do {
                _ = try store.finishAndClaim(outcomes, claim: nil, now: .now())
                return
            } catch is OwnerNotRegistered {
                return   // its tasks were recovered: these results are not its to store
            } catch {
                System.log("taskq worker \(getpid()): cannot store results (\(error)); try \(attempt)/20", level: .warning)
                lease.withoutConnection { _ = usleep(500_000) }
            }
        }
    }

    /// Runs one attempt and says how it ended: the result, how a failure failed
    /// (for the history), and the end of a successful command's stderr.
    private func execute(_ task: ClaimedTask) -> (TaskOutcome.Result, String, String?) {
        let error: String
        var failure = "failed"
        var permanent = false
        if let f = handlers.functions[task.kind] {
            do { return (.succeeded(try f(task)), "", nil) } catch let e {
                // A thrown TaskQueueError.badData fails the task for good, as exit 65 does.
                permanent = (e as? TaskQueueError)?.code == .badData
                error = "handler threw: \(e)" + (permanent ? " " + CommandRunner.notRetried : "")
            }
        } else if let command = handlers.commands[task.kind] {
            var runner = CommandRunner(command: command, environment: baseEnvironment,
                                       textInput: !config.textInput.isEmpty && config.textInput.contains(task.kind))
            runner.logOutput = config.logOutput
            let env = ["TASKQ_TASK_ID=\(task.id)", "TASKQ_KIND=\(task.kind)", "TASKQ_QUEUE=\(task.queue)",
                       "TASKQ_ATTEMPT=\(task.attempt)"]
            let ops = operations
            var taken = false
            let outcome = runner.run(task, extraEnv: env, tick: { [self] in
                readSignals()
                // Still ours? One primary-key read per tick: a cancelled task's
                // handler is killed within a tick.
                if let ops, lease.withConnection({ try? ops.stillRunning(taskID: task.id, owner: processID, attempt: task.attempt) }) == false {
                    taken = true
                    return false
                }
                return !aborting
            }, tickInterval: 0.2)
            if taken {
                lost.insert(task.id)
                if lease.withConnection({ try? store.task(task.id) })??.state == .cancelled {
                    System.log("taskq worker \(getpid()): task \(task.id) was cancelled while running; its handler's process group was killed")
                } else {
                    System.log("taskq worker \(getpid()): task \(task.id) attempt \(task.attempt) was recovered from this worker (its lease expired) and is no longer its to finish: its handler's process group was killed and its result rejected", level: .warning)
                }
                return (.released, "", nil)
            }
            switch outcome {
            case .succeeded(let out, let stderr): return (.succeeded(out), "", stderr)
            case .failed(let e, let timedOut, let badData):
                if aborting { return (.released, "", nil) }
                error = e
                if timedOut { failure = "timed out" }
                permanent = badData
            }
        } else {
            error = "no handler for kind \(task.kind)"
        }
        let message = "attempt \(task.attempt)/\(task.maxAttempts): \(error)"
        let result = config.retry.outcome(for: task, error: message, permanent: permanent, now: .now())
        if case .failed(let message, let retryAt) = result {
            System.log("taskq worker \(getpid()): task \(task.id) (\(task.kind)) \(message)"
                       + (retryAt.map { "; retry at \($0.iso)" } ?? (permanent ? "; task failed" : "; no attempts left, task failed")))
        }
        return (result, failure, nil)
    }

    /// Waits for a change, no longer than `timeout` nor past the next renewal of the
    /// lease: the main thread holds the connection while idle, so renewing is its job.
    private func idle(_ waiter: any ChangeSignal, _ timeout: Double) {
        waiter.wait(timeout: min(timeout, max(0.001, lease.dueIn)))
    }

    /// Acts on a renewal of the lease, from either thread: a lost lease ends the
    /// worker at once, its handler's process group with it (its task is no longer
    /// its own); a failed one is logged and tried again.
    private static func renewed(_ renewal: ProcessLease.Renewal) {
        switch renewal {
        case .fine: break
        case .lost:
            System.log("taskq worker \(getpid()): lease lost (this worker was declared dead and its tasks recovered); exiting", level: .warning)
            taskq_die(Exit.leaseLost)
        case .failed(let error):
            System.log("taskq worker \(getpid()): heartbeat failed: \(error)", level: .warning)
        }
    }
}

/// This process's environment as KEY=VALUE strings.
func currentEnvironment() -> [String] {
    var out: [String] = []
    var p = environ
    while let s = p.pointee {
        out.append(String(cString: s))
        p += 1
    }
    return out
}
