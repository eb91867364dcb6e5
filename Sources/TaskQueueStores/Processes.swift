import TaskQueue
import TaskQueueSQLite
import TaskQueuePostgres
#if canImport(Glibc)
import Glibc
#endif

/// Entry points for programs that run workers: the `taskq` CLI, or your own Swift
/// program with Swift handlers.
///
/// ```swift
/// var handlers = HandlerSet()
/// handlers.register("greet") { task in Array("hello \(task.payload)".utf8) }
/// TaskQueueProcess.runWorkerIfRequested(handlers: handlers)   // first thing in main
/// var options = SupervisorOptions(database: "taskq.db")   // or "postgresql://host/db"
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
            try Stores.openStore(config.database, create: false, synchronous: Stores.synchronous(config.synchronous),
                                 busyTimeout: config.busyTimeout, role: .worker)
        }
        exit(worker.run())
    }

    /// Runs a supervisor in the foreground until it is stopped (sentinel, signal,
    /// or until-empty). Creates the database if missing. Returns the exit status.
    public static func supervise(_ options: SupervisorOptions, handlers: HandlerSet) throws -> Int32 {
        var options = options
        let postgres = Stores.isPostgres(options.database)
        if !postgres { options.database = absolutePath(options.database) }
        // A handler that surely cannot run is refused before anything is written.
        let path = getenv("PATH").map { String(cString: $0) }
        for (kind, command) in options.commands.merging(handlers.commands, uniquingKeysWith: { a, _ in a }).sorted(by: { $0.key < $1.key }) {
            if let problem = HandlerCheck.problem(with: command, path: path) {
                throw TaskQueueError.usage("handler for kind \(kind) cannot run: \(problem)")
            }
        }
        let sync = Stores.synchronous(options.synchronous)
        // Create and migrate once up front, so workers only ever open. The
        // supervisor keeps this connection: closing it, as the last one, would
        // delete a SQLite database's -wal and -shm files only for the supervisor's
        // next open to make them again (and sync the directory at its first write).
        var created: (any TaskStore)? = try Stores.openStore(options.database, create: true, synchronous: sync,
                                                            busyTimeout: options.busyTimeout, role: .supervisor)
        // Now that it exists: a SQLite file's canonical path (no '..', no symlink)
        // is what workers open, watch for changes (the -wal sits beside the real
        // file) and hand to handlers as TASKQ_DB. A PostgreSQL URL goes as given.
        if !postgres, let real = realpath(options.database, nil) {
            options.database = String(cString: real)
            free(real)
        }
        var commands = options.commands
        for k in handlers.commands.keys where commands[k] == nil { commands[k] = handlers.commands[k] }
        options.commands = commands
        let db = options.database, timeout = options.busyTimeout
        let supervisor = Supervisor(options: options, functionKinds: Array(handlers.functions.keys)) {
            if let store = created { created = nil; return store }
            return try Stores.openStore(db, create: false, synchronous: sync, busyTimeout: timeout, role: .supervisor)
        }
        return try supervisor.run()
    }

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
