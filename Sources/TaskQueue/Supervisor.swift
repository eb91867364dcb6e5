import CTaskQSystem
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// How a supervisor runs.
public struct SupervisorOptions: Sendable {
    /// The database as `--db` names it: a SQLite file's path (made absolute by
    /// `TaskQueueProcess.supervise`) or a PostgreSQL connection string.
    public var database: String
    /// `normal` or `full`; empty: the engine's default (see `--synchronous`).
    public var synchronous: String = ""
    /// Seconds to wait for a lock another process holds.
    public var busyTimeout: Double = 10
    /// Worker processes to keep running. Default: CPUs this process may use.
    public var workers: Int = System.cpuCount
    /// Queues served; nil = all. With `pools` set, ignored.
    public var queues: [String]? = nil
    /// Worker pools, each serving its queues (nil: all) with its own count, so a
    /// slow queue cannot starve another. Empty: one pool of `workers` for `queues`.
    public var pools: [WorkerPool] = []
    /// kind → what a crashed worker means for its tasks (a task's own setting wins; default retry).
    public var onCrash: [String: CrashPolicy] = [:]
    /// Finished tasks older than this many seconds are deleted (checked at most
    /// once a minute, in small batches). nil: never. Default 7 days.
    public var retain: Double? = 7 * 86_400
    /// kind → shell command.
    public var commands: [String: String] = [:]
    /// Kinds whose shell command reads a JSON-string payload as the text it holds,
    /// plus a newline, rather than as JSON (`taskq map`'s lines; other payloads
    /// reach it as JSON all the same).
    public var textInput: Set<String> = []
    /// Seconds a claim lives without a heartbeat. Default 30.
    public var lease: Double = 30
    /// On SIGTERM/SIGINT/stop --now: how long running tasks may finish. Default 30.
    public var shutdownTimeout: Double = 30
    public var retry: RetryPolicy = .init()
    /// Exit once no task is ready (workers exit when they find nothing to claim).
    public var untilEmpty: Bool = false
    /// Echo each line a command handler writes (stdout and stderr) to the
    /// supervisor's stderr, prefixed `[task ID KIND] `. The stored result is unchanged.
    public var logOutput: Bool = false

    public init(database: String) { self.database = database }

    /// The pools actually run.
    public var effectivePools: [WorkerPool] { pools.isEmpty ? [WorkerPool(queues: queues, workers: workers)] : pools }
}

/// Workers that serve some queues.
public struct WorkerPool: Sendable, Equatable {
    /// Queues served; nil = all.
    public var queues: [String]?
    public var workers: Int
    public init(queues: [String]?, workers: Int) { self.queues = queues; self.workers = workers }
}

/// The supervisor: keeps N worker processes running, reaps and replaces them,
/// recovers what dead processes held, and stops on a sentinel or a signal.
///
/// It is single-threaded by design: signals are blocked and taken synchronously
/// with `sigtimedwait`, children are reaped with `waitpid(-1, WNOHANG)`, and
/// workers are started with `posix_spawn` of this same executable (never `fork`
/// without `exec` in a Swift process), from the main thread, because the workers'
/// parent-death signal fires when the spawning *thread* exits. (A store's checkpoint
/// thread, `Sources/CSQLiteTuning/checkpointer.c`, may run beside it; it blocks every
/// signal, so they all still reach `sigtimedwait` here.)
public final class Supervisor {
    let options: SupervisorOptions
    let kinds: [String]
    let makeStore: () throws -> any TaskStore
    private var store: (any TaskStore)!
    private var lease: ProcessLease!
    var processID: Int64 { lease.id }

    private struct Slot {
        var startedAt: Double
        var pool: Int
        var retired = false
        /// What the worker is running now; read when it dies.
        var current: CurrentTaskSlot?
    }
    private var workers: [pid_t: Slot] = [:]
    private let pools: [WorkerPool]
    /// How many workers should be running per pool: starts at the pool's count and
    /// drops by one each time a worker exits because it is done (drain, until-empty).
    private var desired: [Int] = []
    private var crashStreak = 0
    private var nextSpawnAt = 0.0

    private enum Phase: Equatable { case running, draining, stopping, aborting }
    private var phase = Phase.running
    private var sentinel: StopSentinel?
    /// What `run` returns once its workers are gone; set by the first cause of a
    /// stop that is not orderly.
    private var exitStatus = Exit.stopped
    private var leaseLost = false
    private var stopDeadline = 0.0
    private var killDeadline = 0.0
    private lazy var scheduler = (store as? any ScheduleStore).map { Scheduler(store: $0, log: { [unowned self] in self.log($0) }) }

    package init(options: SupervisorOptions, functionKinds: [String], makeStore: @escaping () throws -> any TaskStore) {
        self.options = options
        self.kinds = Array(Set(functionKinds).union(options.commands.keys)).sorted()
        self.makeStore = makeStore
        self.pools = options.effectivePools
    }

    /// Queues this supervisor serves, for its process row: nil when a pool serves all.
    private var servedQueues: [String]? {
        if pools.contains(where: { $0.queues == nil }) { return nil }
        return Array(Set(pools.flatMap { $0.queues ?? [] })).sorted()
    }

    private func log(_ s: String, level: Logger.Level = .info) { System.log("taskq supervisor \(getpid()): \(s)", level: level) }

    private static let signals: [Int32] = [SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT]

    /// Runs until stopped. Returns the exit status (`Exit`): 0 for every orderly stop.
    public func run() throws -> Int32 {
        for s in Self.signals { taskq_block_signal(s, 1) }
        signal(SIGPIPE, SIG_IGN)
        if kinds.isEmpty { throw TaskQueueError.usage("no handlers: give at least one --handler KIND=COMMAND") }
        store = try makeStore()
        lease = try ProcessLease(store: store, role: .supervisor, supervisorID: nil, queues: servedQueues, kinds: kinds,
                                 lease: options.lease)
        let poolText = pools.count == 1 && pools[0].queues == nil ? "\(pools[0].workers) workers"
            : "workers " + pools.map { "\($0.workers) for \($0.queues.map { Self.shortList($0, "+", "queues") } ?? "all queues")" }.joined(separator: ", ")
        log("started as process \(processID) with \(poolText), handling \(Self.shortList(kinds, ", ", "kinds")), on \(store.location)")
        recover()
        desired = pools.map(\.workers)
        var nextPrune = System.monotonic() + 2

        var nextRecovery = System.monotonic() + 1
        while true {
            spawnMissing()
            let now = System.monotonic()
            var wake = min(now + lease.dueIn, nextRecovery, now + 0.25)
            if phase == .stopping { wake = min(wake, stopDeadline) }
            if phase == .aborting { wake = min(wake, killDeadline) }
            if activeCount < desiredTotal && (phase == .running || phase == .draining) { wake = min(wake, max(now, nextSpawnAt)) }
            let sig = Self.signals.withUnsafeBufferPointer {
                taskq_wait_signals($0.baseAddress, Int32($0.count), Int32(max(0, wake - now) * 1000))
            }
            switch sig {
            case SIGTERM, SIGINT, SIGHUP, SIGQUIT:
                if phase == .stopping || phase == .aborting { abort("second \(System.signalName(sig))") }
                else { stopGracefully("\(System.signalName(sig))") }
            default: break
            }
            reap()
            let t = System.monotonic()
            // A renewal that fails (the database busy) is tried again after an interval.
            if !leaseLost, case .lost = lease.renewIfDue() {
                // Its workers are healthy and still own their tasks (their own
                // rows and leases are alive): they finish or give back what they
                // run, as on SIGTERM; nothing more counts as a crash.
                leaseLost = true
                stop(exiting: Exit.leaseLost, "lease lost: another supervisor declared this one dead (it was stopped or stalled longer than --lease) and recovered its row")
            }
            checkSentinel()
            if phase == .running { scheduler?.tick() }   // recurring schedules (Scheduler.swift)
            if t >= nextRecovery {
                nextRecovery = t + 1
                recover()
            }
            if t >= nextPrune && phase == .running {
                nextPrune = t + 60
                prune()
            }
            if phase == .stopping && t >= stopDeadline { abort("shutdown timeout of \(formatDuration(options.shutdownTimeout)) passed") }
            if phase == .aborting && t >= killDeadline { killAll() }
            if activeCount == 0 && (desiredTotal == 0 || phase == .stopping || phase == .aborting) {
                if !workers.isEmpty { killAll() }
                return finish()
            }
        }
    }

    // MARK: stopping

    private func checkSentinel() {
        guard sentinel == nil, let s = try? store.stopSentinel(for: processID) else { return }
        sentinel = s
        switch s.mode {
        case .drain:
            log("stop sentinel \(s.id): draining tasks enqueued before it, then exiting")
            if phase == .running { phase = .draining }
        case .now:
            stopGracefully("stop --now (sentinel \(s.id))")
        }
    }

    private func stopGracefully(_ why: String) {
        log("\(why): finishing running tasks (up to \(formatDuration(options.shutdownTimeout))), then exiting")
        signalStop()
    }

    /// A stop that is not orderly: exit with `status` once the workers have stopped
    /// as on SIGTERM. Only the first cause counts.
    private func stop(exiting status: Int32, _ why: String) {
        guard exitStatus == Exit.stopped else { return }
        exitStatus = status
        guard phase == .running || phase == .draining else {
            log("\(why); exiting with status \(status) once stopped")
            return
        }
        log("\(why); stopping workers as on SIGTERM (running tasks get up to \(formatDuration(options.shutdownTimeout)) to finish), then exiting with status \(status)")
        signalStop()
    }

    private func signalStop() {
        phase = .stopping
        stopDeadline = System.monotonic() + options.shutdownTimeout
        for pid in workers.keys { kill(pid, SIGTERM) }
    }

    private func abort(_ why: String) {
        log("\(why): stopping running tasks now; they go back to the queue without counting the attempt")
        phase = .aborting
        killDeadline = System.monotonic() + 2
        for pid in workers.keys { kill(pid, SIGUSR1); kill(pid, SIGCONT) }
    }

    /// Kills every worker's whole session (worker and handlers) and reaps them.
    private func killAll() {
        for pid in workers.keys { System.killSession(pid) }
        while !workers.isEmpty {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, 0)
            if pid <= 0 { break }
            workerExited(pid, status: status)
        }
        workers.removeAll()
    }

    private func finish() -> Int32 {
        if let s = sentinel {
            try? store.completeStopSentinel(s.id, note: "supervisor pid \(getpid()) (process \(processID)) stopped", now: .now())
        }
        lease.end()
        log(exitStatus == Exit.stopped ? "stopped" : "stopped; exit status \(exitStatus)")
        return exitStatus
    }

    // MARK: workers

    private var activeCount: Int { workers.values.filter { !$0.retired }.count }
    private var desiredTotal: Int { desired.reduce(0, +) }

    private func spawnMissing() {
        guard phase == .running || phase == .draining else { return }
        if System.monotonic() < nextSpawnAt { return }
        for (i, want) in desired.enumerated() {
            let active = workers.values.filter { !$0.retired && $0.pool == i }.count
            if active < want { for _ in active..<want where phase == .running || phase == .draining { spawnWorker(pool: i) } }
        }
    }

    /// Deletes finished tasks older than --retain, a few small batches at a time
    /// (at most once a minute), so it never holds the write lock for long.
    private func prune() {
        guard let retain = options.retain else { return }
        let queue = Queue(store: store)
        do {
            let n = try queue.purge(states: [.succeeded, .failed, .cancelled],
                                    finishedBefore: Timestamp.now().adding(seconds: -retain), batch: 500, maxBatches: 20)
            if n > 0 { log("pruned \(n) finished task\(n == 1 ? "" : "s") older than \(formatDuration(retain)) (--retain)") }
        } catch {
            log("pruning failed: \(error)", level: .error)
        }
    }

    private func spawnWorker(pool: Int) {
        var config = WorkerConfig(database: options.database, supervisorID: processID, supervisorPID: getpid())
        config.synchronous = options.synchronous
        config.busyTimeout = options.busyTimeout
        config.queues = pools[pool].queues
        config.commands = options.commands
        config.textInput = options.textInput.sorted()
        config.lease = options.lease
        config.retry = options.retry
        config.untilEmpty = options.untilEmpty
        config.logOutput = options.logOutput
        // Spawn /proc/self/exe, not the path it points to: after an upgrade in
        // place that path names the new file (or "… (deleted)"), and a running
        // supervisor must keep starting workers of its own version.
        let current = CurrentTaskSlot.create()
        config.currentTaskFD = current?.descriptor ?? -1
        // The configuration goes in a memfd, not in argv (see WorkerConfig).
        let configFD = config.descriptor()
        var rc = configFD < 0 ? errno : 0
        var pid: pid_t = 0
        if configFD >= 0 {
            let argv = [System.executablePath, WorkerConfig.argument,
                        WorkerConfig.launchArgument(database: store.location, descriptor: configFD)]
            rc = withCStrings(argv) { a in
                withCStrings(currentEnvironment()) { e in taskq_spawn(&pid, "/proc/self/exe", a, e, 1, 0, -1, -1, -1, nil, 0) }
            }
            close(configFD)
        }
        // The worker has its copy; ours must not leak into the next worker.
        current?.closeDescriptor()
        if rc != 0 {
            let why = "cannot start a worker (\(configFD < 0 ? "memfd for its configuration: " : "")\(String(cString: strerror(rc))))"
            if Self.isPermanent(spawnError: rc) {
                stop(exiting: Exit.permanentFailure, "\(why), and retrying cannot heal this")
                return
            }
            log("\(why); retrying", level: .warning)
            noteCrash()
            return
        }
        workers[pid] = Slot(startedAt: System.monotonic(), pool: pool, current: current)
    }

    private func noteCrash() {
        crashStreak += 1
        let delay = min(10, 0.1 * Double(1 << min(crashStreak, 7)))
        nextSpawnAt = System.monotonic() + delay
    }

    private func reap() {
        while true {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, WNOHANG)
            if pid <= 0 { return }
            workerExited(pid, status: status)
        }
    }

    /// A worker is gone: kill what is left of its session (a retry must never
    /// overlap the old run), give back what it held, decide whether to replace it.
    private func workerExited(_ pid: pid_t, status: Int32) {
        guard let slot = workers.removeValue(forKey: pid) else { return }
        System.killSession(pid)
        let how = System.describe(waitStatus: status)
        let clean = status == 0
        let deliberate = phase == .aborting || slot.retired
        // It stopped on an error it could not get past, not while running a task:
        // what it still held goes back without counting an attempt.
        let permanent = status & 0x7f == 0 && (status >> 8) & 0xff == Worker.Exit.permanentFailure
        let now = Timestamp.now()
        if let rows = try? store.processes().filter({ $0.role == .worker && $0.supervisorID == processID && $0.pid == pid }) {
            for row in rows {
                // Of a batch claimed at once, only the task that was running counts
                // the crash; the others never started and go back as they were.
                let running = slot.current?.taskID ?? 0
                let held = (try? store.recoverProcess(row.id, now: now, startedTaskID: running != 0 ? running : nil) { t in
                    if clean || deliberate || permanent { return .released }
                    return self.options.retry.crashOutcome(
                        for: t, error: "worker pid \(pid) \(how) while running task \(t.id), attempt \(t.attempt)/\(t.maxAttempts)",
                        policy: Recovery.crashPolicy(t, self.options.onCrash), now: now)
                }) ?? []
                if !held.isEmpty && !clean && !deliberate && !permanent {
                    let hit = running != 0 ? held.filter { $0.id == running } : held
                    log("worker pid \(pid) \(how) while running task \(hit.map { String($0.id) }.joined(separator: ", "))"
                        + Recovery.fates(hit, options.onCrash))
                }
            }
        }
        if deliberate { return }
        if permanent {
            stop(exiting: Exit.permanentFailure,
                 "worker pid \(pid) stopped on an error that retrying cannot heal (\(slot.current?.failure ?? "see its log line above"))")
            return
        }
        if clean {
            // A worker exits 0 only when told to stop or when it found nothing
            // left (until-empty, a drain sentinel): it is done, not replaced.
            crashStreak = 0
            if phase == .running || phase == .draining { desired[slot.pool] = max(0, desired[slot.pool] - 1) }
            return
        }
        if phase == .running || phase == .draining {
            log("worker pid \(pid) \(how); starting a replacement", level: .warning)
        }
        // A worker that exits with an error within a second of its start cannot
        // start (a broken database, say): back off before the next one. One killed
        // from outside (SIGKILL, the OOM killer) is replaced at once.
        let failedToStart = status & 0x7f == 0 && System.monotonic() - slot.startedAt < 1
        if failedToStart { noteCrash() } else { crashStreak = 0 }
    }

    /// When to look for tasks running under no registered process next (at start,
    /// then every five minutes: it reads the whole table).
    private var nextOrphanScan = 0.0

    private func recover() {
        if System.monotonic() >= nextOrphanScan {
            nextOrphanScan = System.monotonic() + 300
            do { try Recovery.recoverOrphans(store: store, retry: options.retry, onCrash: options.onCrash) { log($0) } }
            catch { log("recovery of orphaned tasks failed: \(error)", level: .error) }
        }
        let mine = Set((try? store.processes())?.filter { p in
            p.id == processID || (p.supervisorID == processID && workers[p.pid] != nil && !(p.expiresAt < .now()))
        }.map(\.id) ?? [])
        do {
            let recovered = try Recovery.recoverDead(store: store, retry: options.retry, onCrash: options.onCrash, skip: mine) { log($0) }
            for p in recovered where p.supervisorID == processID {
                // Our own worker, frozen past its lease: its tasks were just given
                // back; replace it. If it ever resumes, its late result is refused by
                // the fence and it exits when it finds its lease gone.
                if workers[p.pid] != nil {
                    workers[p.pid]?.retired = true
                    kill(p.pid, SIGTERM)
                }
            }
        } catch {
            log("recovery failed: \(error)", level: .error)
        }
    }
}
