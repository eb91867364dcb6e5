import ArgumentParser
import CTaskQSystem
import TaskQueue
import TaskQueueStores
#if canImport(Glibc)
import Glibc
#endif

struct MapCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "map",
        abstract: "Run a command over every stdin line, durably and in parallel; print the results in input order.",
        discussion: """
            Each stdin line becomes one task of kind 'map' (or --kind), stored as a JSON \
            string (with --json: the line itself, which must be JSON). All of them are \
            enqueued in one transaction (a bad line is refused, named by its number, \
            before anything is written), then map runs its own supervisor with --workers \
            workers (default: the CPUs) until every one has finished, and prints each \
            result in input order, as 'parallel -k' does: the handler's stdout, with a \
            newline added when it has none. A failed line prints nothing on stdout; its \
            number and error go to stderr. On a terminal a progress bar runs on stderr.

            Task options (--queue, --priority, --max-attempts, --timeout, --backoff-base, \
            --backoff-cap, --on-crash) are those of 'taskq enqueue', except that a line is \
            tried once (--max-attempts 1) unless the option or the kind's policy says \
            otherwise, and map's workers serve only its --queue.

            The handler is COMMAND run with /bin/sh -c, as for 'taskq supervise \
            --handler', with the line itself and a newline on stdin, as xargs and parallel \
            users expect (with --json: the JSON value as it is).

            It is resumable: the run is the group --group NAME (default: a name derived \
            from the handler, kind, queue and input). Running the same map again after \
            Ctrl-C, kill -9 or a reboot runs only what has not succeeded yet (failed lines \
            get a fresh try) and prints the full ordered output; stderr says how many \
            results were replayed from the earlier run. --fresh starts over: every line \
            runs again, as the group's next generation (NAME:2, NAME:3…), and the earlier \
            run's rows stay as they are. The tasks are ordinary rows: 'taskq status', \
            'taskq list --kind map' and sqlite3 show them (table task_groups gives each \
            group's order; a plain line is stored as a JSON string). A 'taskq supervise' \
            with a handler for the kind helps drain them, its handler getting the JSON \
            string. Two different maps at once on the same database should use different \
            --kind values, since a kind names its handler.

            Examples:
              seq 1 100 | taskq map --handler 'n=$(cat); echo $((n * n))'
              ls *.png | taskq map --handler 'read -r f; convert "$f" "${f%.png}.jpg" && echo "$f"'
              cat urls.txt | taskq map --workers 8 --max-attempts 3 --handler 'read -r u; curl -fsS "$u" | wc -c'
              printf '%s\\n' '{"n":1}' '{"n":2}' | taskq map --json --handler 'jq .n'
              taskq map --group nightly-thumbs --handler ./thumb.sh < files.txt   # re-run to resume
              taskq map --group nightly-thumbs --fresh --handler ./thumb.sh < files.txt

            Exit status: 0 every line succeeded; 1 at least one failed (each named on \
            stderr); 64 usage; 65 bad input line, or --group holds different input (use \
            --fresh to start it over with this input); 130 \
            interrupted: lines still running get 2 s to finish, then go back to the queue \
            for the next run (run the same command again to resume).
            """)

    @OptionGroup var database: DatabaseOptions

    @Option(parsing: .unconditional, help: ArgumentHelp("The command run for each line (with /bin/sh -c; the line on stdin).", valueName: "command"))
    var handler: String

    @Option(parsing: .unconditional, help: ArgumentHelp("Worker processes. Default: the CPUs this process may use (\(System.cpuCount) here).", valueName: "n"))
    var workers: Int?

    @Option(parsing: .unconditional, help: ArgumentHelp("Kind of the tasks.", valueName: "kind"))
    var kind: String = "map"

    @Option(parsing: .unconditional, help: ArgumentHelp("Name of this run, to resume it. Default: derived from the handler, kind, queue and input.", valueName: "name"))
    var group: String?

    @Flag(help: "Each line is a JSON value, passed as is (default: each line is text, passed as it is).")
    var json = false

    @Flag(help: "Run every line again, even those an earlier run of this map finished (default: replay their results).")
    var fresh = false

    @OptionGroup var task: TaskOptions

    func validate() throws {
        if let w = workers, w < 1 || w > 1024 { throw ValidationError("--workers must be between 1 and 1024, not \(w)") }
        if handler.trimmingCharacters(in: " \t").isEmpty { throw ValidationError("--handler is empty: give the command to run for each line") }
        try asUsageError {
            try validateName(kind, what: "kind")
            if let group { try validateName(group, what: "group") }
        }
    }

    func run() throws {
        let queue = task.queue
        var o = try task.options()
        // Read and check every line before writing anything.
        var tasks: [NewTask] = []
        var hash = FNV1a()
        for part in [handler, kind, queue, json ? "json" : "text"] { hash.add(part); hash.add("\u{0}") }
        var reader = LineReader(fd: 0)
        var n = 0
        while let bytes = try reader.next() {
            n += 1
            guard isValidUTF8(bytes) else { throw TaskQueueError.badData("line \(n): not valid UTF-8 text; nothing was enqueued") }
            var line = String(decoding: bytes, as: UTF8.self)
            if line.hasSuffix("\r") { line.removeLast() }
            hash.add(line); hash.add("\n")
            let payload: String
            if json {
                let text = line.trimmingCharacters(in: " \t")
                do { try JSON.validate(text) } catch {
                    throw TaskQueueError.badData("line \(n): not valid JSON: \(error); nothing was enqueued")
                }
                payload = text
            } else {
                payload = JSON.quote(line)
            }
            if payload.utf8.count > Queue.maxPayloadBytes {
                throw TaskQueueError.badData("line \(n): longer than the 1 MiB payload limit; nothing was enqueued")
            }
            tasks.append(NewTask(kind: kind, payload: payload, options: o))
        }
        if tasks.isEmpty { return }
        let q = try database.open(create: true)
        let groupName = try generation(of: group ?? "map-\(hash.hex)", in: q)
        if o.maxAttempts == nil {
            // A line is tried once unless the kind's policy says otherwise: a map's
            // user watches the outcome and re-runs the map to retry failures.
            o.maxAttempts = try q.kindPolicies().first { $0.kind == kind }?.policy.maxAttempts ?? 1
            for i in tasks.indices { tasks[i].options.maxAttempts = o.maxAttempts }
        }
        let opened = try q.openGroup(groupName, tasks: tasks)
        if !opened.created {
            if opened.ids.count != tasks.count {
                throw TaskQueueError.badData("map group \(JSON.quote(groupName)) holds \(opened.ids.count) lines, this input has \(tasks.count): give another --group, the same input, or --fresh")
            }
            try checkSameInput(opened.group, tasks)
            // Give back what dead processes (a map killed with -9) still hold, so a
            // line cut short is not counted as failed, then retry the failures.
            _ = try? Recovery.recoverDead(store: q.store, retry: RetryPolicy(), skip: []) { _ in }
            let again = try opened.group.requeueFailures(options: o)
            let done = try opened.group.counts()[.succeeded] ?? 0
            var also: [String] = []
            if again > 0 { also.append("\(again) failed line\(again == 1 ? "" : "s") run again") }
            if opened.restored > 0 { also.append("\(opened.restored) line\(opened.restored == 1 ? "" : "s") whose task was purged run again") }
            let detail = " (map group \(groupName)" + also.map { ", " + $0 }.joined() + ")"
            if done > 0 {
                System.log("taskq: \(done) of \(tasks.count) result\(tasks.count == 1 ? "" : "s") replayed from an earlier run\(detail); use --fresh to run \(done == 1 ? "it" : "them") again")
            } else {
                System.log("taskq: resuming an earlier run of this map\(detail)")
            }
        }
        if try q.pausedQueues().contains(where: { $0.name == queue }) {
            System.log("taskq: queue \(queue) is paused: the lines wait until 'taskq resume \(queue)'")
        }
        let code = try runWorkers(database: database, groupName: groupName, total: tasks.count)
        if code != 0 { throw ExitCode(code) }
    }

    /// The group this run uses: `base`'s latest generation (`base`, `base:2`,
    /// `base:3`…), or with --fresh a new one after it (`base` itself when unused).
    private func generation(of base: String, in q: Queue) throws -> String {
        var latest: String?
        var n = 1
        while true {
            let name = n == 1 ? base : "\(base):\(n)"
            if try q.group(name) == nil { return fresh ? name : latest ?? base }
            latest = name
            n += 1
        }
    }

    /// Every line the group still has a task for must equal the input's line.
    private func checkSameInput(_ g: TaskGroup, _ tasks: [NewTask]) throws {
        var position = 1
        while true {
            let page = try g.tasks(from: position, limit: 1000)
            if page.isEmpty { break }
            for (p, t) in page {
                if p > tasks.count || tasks[p - 1].payload != t.payload || tasks[p - 1].kind != t.kind {
                    throw TaskQueueError.badData("map group \(JSON.quote(g.name)) holds a different input (line \(p) differs): give another --group, the same input, or --fresh")
                }
                position = p + 1
            }
        }
    }

    /// Runs a supervisor in this process (main thread) while a monitor thread
    /// prints results in order; the monitor stops the supervisor with SIGTERM
    /// when every line has finished.
    private func runWorkers(database: DatabaseOptions, groupName: String, total: Int) throws -> Int32 {
        var options = SupervisorOptions(database: database.path)
        options.synchronous = database.durability?.rawValue ?? ""
        options.busyTimeout = database.busyTimeout
        options.workers = workers ?? System.cpuCount
        options.queues = [task.queue]
        options.commands = [kind: handler]
        // A plain line reaches the handler as the text it is, not as its JSON string.
        if !json { options.textInput = [kind] }
        // Ctrl-C: running lines get 2 s to finish, then go back to the queue
        // (not counted as an attempt) for the next run.
        options.shutdownTimeout = 2

        // Block the signals the supervisor takes with sigtimedwait before the
        // monitor thread starts, so it inherits the mask and never takes them.
        for s in [SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT] { taskq_block_signal(s, 1) }
        let errFD = dup(2)
        let monitor = MapMonitor(database: database, group: groupName, total: total, errFD: errFD)
        let box = Unmanaged.passRetained(monitor).toOpaque()
        let rc = taskq_start_thread({ p in
            let m = Unmanaged<MapMonitor>.fromOpaque(p!).takeRetainedValue()
            m.run()
        }, box)
        if rc != 0 { throw TaskQueueError.unavailable("cannot start a thread: \(String(cString: strerror(rc)))") }
        // The supervisor's own log lines (started, stopping…) are not map's output:
        // handler errors reach the user through the tasks' errors.
        let devnull = open("/dev/null", O_WRONLY | O_CLOEXEC)
        if devnull >= 0 { dup2(devnull, 2); close(devnull) }
        defer { dup2(errFD, 2) }
        let code: Int32
        // Not TaskQueueProcess.supervise: it opens the database with create, and
        // opening and closing the file from this process while the monitor's
        // connection is open would drop that connection's POSIX locks (Linux drops
        // all of a process's locks on a file when any descriptor of it closes);
        // another process could then reset the WAL under it. The database exists.
        if !database.isPostgres { options.database = TaskQueueProcess.absolutePath(options.database) }
        let path = options.database, sync = database.durability, busy = database.busyTimeout
        let supervisor = Supervisor(options: options, functionKinds: []) {
            try Stores.openStore(path, create: false, synchronous: sync, busyTimeout: busy, role: .supervisor)
        }
        do { code = try supervisor.run() } catch {
            dup2(errFD, 2)
            monitor.requestStop()
            throw error
        }
        dup2(errFD, 2)
        monitor.requestStop()
        let outcome = monitor.waitDone()
        if let e = outcome.error { throw e }
        if !outcome.complete {
            System.log("taskq: map interrupted: \(outcome.finished) of \(total) lines finished; run the same command again to resume (group \(groupName))")
            return code == 0 ? 130 : code
        }
        if outcome.failures > 0 {
            System.log("taskq: \(outcome.failures) of \(total) lines failed")
            return 1
        }
        return 0
    }
}

/// Follows a map group from its own connection: streams finished results in
/// order, draws progress, and stops the supervisor when everything finished.
final class MapMonitor {
    let database: DatabaseOptions
    let group: String
    let total: Int
    let errFD: Int32
    /// On the heap: `&storedProperty` may hand pthread a temporary copy.
    private let lock: UnsafeMutablePointer<pthread_mutex_t> = {
        let p = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(p, nil)
        return p
    }()
    private var stopRequested = false
    private var done = false
    private(set) var complete = false
    private(set) var failures = 0
    private(set) var finished = 0
    private(set) var error: Error?

    init(database: DatabaseOptions, group: String, total: Int, errFD: Int32) {
        self.database = database; self.group = group; self.total = total; self.errFD = errFD
    }

    deinit { pthread_mutex_destroy(lock); lock.deallocate() }

    private func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(lock); defer { pthread_mutex_unlock(lock) }
        return body()
    }

    func requestStop() { locked { stopRequested = true } }

    /// Waits (up to 5 s) for the monitor to end; returns what it saw.
    func waitDone() -> (complete: Bool, failures: Int, finished: Int, error: Error?) {
        let deadline = System.monotonic() + 5
        while !locked({ done }) && System.monotonic() < deadline { usleep(10_000) }
        return locked { (complete, failures, finished, error) }
    }

    private func writeErr(_ s: String) {
        var s = s
        s.withUTF8 { writeAll(errFD, UnsafeRawBufferPointer($0)) }
    }

    func run() {
        defer { locked { done = true } }
        do {
            let q = try database.open(create: false)
            guard let g = try q.group(group) else { throw TaskQueueError.notFound("map group \(group) is gone") }
            let progress = isatty(errFD) == 1 ? Progress(tty: true, fd: errFD) : nil
            let start = System.monotonic()
            var next = 1
            var lastLook = 0.0
            var baseline: Int64?
            _ = try q.waitFor(timeout: nil, interval: 0.5) { () -> Bool? in
                if locked({ stopRequested }) { return true }
                let gap = System.monotonic() - lastLook
                if gap < 0.05 { usleep(useconds_t((0.05 - gap) * 1_000_000)) }
                lastLook = System.monotonic()
                var printed = false
                while next <= total {
                    let page = try g.tasks(from: next, limit: 500)
                    var advanced = false, blocked = false
                    // Lines before `p` that have no task: purged (taskq purge, --retain)
                    // after they finished, before their result was printed here.
                    func lose(before p: Int) {
                        if p <= next { return }
                        if !printed { progress?.clear(); printed = true }
                        for lost in next..<p {
                            writeErr("taskq: line \(lost): its task was purged before its result was printed; run the same map again to run it again\n")
                        }
                        locked { failures += p - next }
                        next = p
                        advanced = true
                    }
                    for (p, t) in page {
                        lose(before: p)
                        guard t.state.isFinished else { blocked = true; break }
                        if !printed { progress?.clear(); printed = true }
                        if t.state == .succeeded {
                            var bytes = t.result ?? []
                            if bytes.last != UInt8(ascii: "\n") { bytes.append(UInt8(ascii: "\n")) }
                            bytes.withUnsafeBytes { writeAll(1, $0) }
                        } else {
                            let why = t.lastError ?? t.state.rawValue
                            writeErr("taskq: line \(p) \(t.state == .failed ? "failed" : "was cancelled"): \(why)\n")
                            locked { failures += 1 }
                        }
                        next += 1
                        advanced = true
                    }
                    // No task past the last one read: the lines after it were purged too.
                    if !blocked && page.count < 500 { lose(before: total + 1) }
                    if !advanced || page.count < 500 { break }
                }
                locked { finished = next - 1 }
                if let progress {
                    let c = try g.counts()
                    let counts = Wait.Counts(succeeded: c[.succeeded] ?? 0, failed: c[.failed] ?? 0, cancelled: c[.cancelled] ?? 0,
                                             queued: c[.queued] ?? 0, running: c[.running] ?? 0)
                    if baseline == nil { baseline = counts.done }
                    progress.update(counts, elapsed: System.monotonic() - start, doneSinceStart: counts.done - (baseline ?? 0))
                }
                return next > total ? true : nil
            }
            if next > total {
                progress?.clear()
                locked { complete = true }
                kill(getpid(), SIGTERM)   // stop the supervisor on the main thread
            } else {
                progress?.clear()
            }
        } catch {
            writeErr("taskq: map stopped following its tasks: \(error)\n")
            locked { self.error = error }
            kill(getpid(), SIGTERM)
        }
    }
}

/// 64-bit FNV-1a, for naming a map run after its input.
struct FNV1a {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325
    mutating func add(_ s: String) {
        for b in s.utf8 { value = (value ^ UInt64(b)) &* 0x100_0000_01b3 }
    }
    var hex: String {
        let h = String(value, radix: 16)
        return String(repeating: "0", count: 16 - h.count) + h
    }
}
