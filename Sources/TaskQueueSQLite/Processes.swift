import TaskQueue
#if canImport(Glibc)
import Glibc
#endif

extension Queue {
    /// Opens the SQLite queue at `path`. With `create` (the default) a missing
    /// database is created with the current schema; without it, a missing file is
    /// a `.notFound` error and nothing is created.
    public static func open(path: String, create: Bool = true, synchronous: Synchronous = .normal,
                            busyTimeout: Double = 10) throws -> Queue {
        try open(path: path, create: create, synchronous: synchronous, busyTimeout: busyTimeout, checks: true)
    }

    /// `checks: false` skips the tables' CHECK constraints, for a producer that
    /// only enqueues: `enqueue` validates every task in Swift first (with a clear
    /// error and nothing written), so the CHECKs would test the same values again,
    /// at about a tenth of SQLite's work per insert. Such a producer also keeps a
    /// small page cache: it only appends, so the pages it needs are the last leaves
    /// of the table and its indexes, and a 32 MiB cache only grew with every page
    /// written (a page fault each: about a tenth of `enqueue --lines` in batches).
    package static func open(path: String, create: Bool, synchronous: Synchronous, busyTimeout: Double,
                             checks: Bool) throws -> Queue {
        Queue(store: try SQLiteTaskStore(path: path, create: create, synchronous: synchronous, busyTimeout: busyTimeout,
                                         cacheKiB: checks ? 32768 : TaskQueueProcess.supervisorCacheKiB, checks: checks))
    }
}

/// Entry points for programs that run workers: the `taskq` CLI, or your own Swift
/// program with Swift handlers.
///
/// ```swift
/// var handlers = HandlerSet()
/// handlers.register("greet") { task in Array("hello \(task.payload)".utf8) }
/// TaskQueueProcess.runWorkerIfRequested(handlers: handlers)   // first thing in main
/// var options = SupervisorOptions(database: "/abs/path/taskq.db")
/// exit(try TaskQueueProcess.supervise(options, handlers: handlers))
/// ```
public enum TaskQueueProcess {
    /// If this process was started by a supervisor as a worker
    /// (`<exe> __taskq-worker '{"database":…,"config_fd":…}'`, its configuration in
    /// an inherited descriptor), runs the worker and exits; otherwise returns at once.
    /// Call it first thing in `main`, before any threads start (the descriptor is
    /// read and closed here, so no handler inherits it).
    public static func runWorkerIfRequested(handlers: HandlerSet, arguments: [String] = CommandLine.arguments) {
        guard arguments.count >= 3, arguments[1] == WorkerConfig.argument else { return }
        let config: WorkerConfig
        do { config = try WorkerConfig(launchArgument: arguments[2]) } catch {
            System.log("taskq worker \(getpid()): \(error); retrying cannot heal this: exiting (status \(Worker.Exit.permanentFailure))")
            exit(Worker.Exit.permanentFailure)
        }
        let worker = Worker(config: config, handlers: handlers) {
            try SQLiteTaskStore(path: config.database, create: false,
                                synchronous: Synchronous(rawValue: config.synchronous) ?? .normal, busyTimeout: config.busyTimeout,
                                cacheKiB: workerCacheKiB, checks: false)
        }
        exit(worker.run())
    }

    /// Runs a supervisor in the foreground until it is stopped (sentinel, signal,
    /// or until-empty). Creates the database if missing. Returns the exit status.
    public static func supervise(_ options: SupervisorOptions, handlers: HandlerSet) throws -> Int32 {
        var options = options
        options.database = absolutePath(options.database)
        // A handler that surely cannot run is refused before anything is written.
        let path = getenv("PATH").map { String(cString: $0) }
        for (kind, command) in options.commands.merging(handlers.commands, uniquingKeysWith: { a, _ in a }).sorted(by: { $0.key < $1.key }) {
            if let problem = HandlerCheck.problem(with: command, path: path) {
                throw TaskQueueError.usage("handler for kind \(kind) cannot run: \(problem)")
            }
        }
        let sync = Synchronous(rawValue: options.synchronous) ?? .normal
        // Create and migrate once up front, so workers only ever open. The
        // supervisor keeps this connection: closing it, as the last one, would
        // delete the -wal and -shm files only for the supervisor's next open to
        // make them again (and sync the directory at its first write).
        var created: SQLiteTaskStore? = try SQLiteTaskStore(path: options.database, create: true, synchronous: sync,
                                                            busyTimeout: options.busyTimeout, cacheKiB: supervisorCacheKiB)
        // Now that it exists: its canonical path (no '..', no symlink) is what
        // workers open, watch for changes (the -wal sits beside the real file) and
        // hand to handlers as TASKQ_DB.
        if let real = realpath(options.database, nil) {
            options.database = String(cString: real)
            free(real)
        }
        var commands = options.commands
        for k in handlers.commands.keys where commands[k] == nil { commands[k] = handlers.commands[k] }
        options.commands = commands
        let db = options.database, timeout = options.busyTimeout
        let supervisor = Supervisor(options: options, functionKinds: Array(handlers.functions.keys)) {
            if let store = created { created = nil; return store }
            return try SQLiteTaskStore(path: db, create: false, synchronous: sync, busyTimeout: timeout,
                                       cacheKiB: supervisorCacheKiB)
        }
        return try supervisor.run()
    }

    /// The supervisor's page cache: it never claims, and its periodic scans
    /// (recovery, pruning finished tasks) must not grow its memory with the table.
    public static let supervisorCacheKiB = 2048

    /// A worker's page cache: a claimed batch's pages and the head of the claim
    /// index fit in 4 MiB (1,024 pages). A bigger cache bought no throughput: with
    /// two or more workers SQLite empties it whenever another process has committed,
    /// and a single worker draining 200,000 tasks ran as fast with 2, 4 or 32 MiB.
    /// What 32 MiB did was fill up: that worker's RSS grew to 45 MiB (13.5 MiB with 4).
    public static let workerCacheKiB = 4096

    /// `path` made absolute against the current directory.
    public static func absolutePath(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        var buf = [CChar](repeating: 0, count: 4096)
        guard getcwd(&buf, buf.count) != nil else { return path }
        var cwd = String(cString: buf)
        if cwd.hasSuffix("/") { cwd.removeLast() }
        var rel = Substring(path)
        while rel.hasPrefix("./") { rel = rel.dropFirst(2) }
        return cwd + "/" + rel
    }
}
