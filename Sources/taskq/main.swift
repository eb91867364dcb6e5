import ArgumentParser
import TaskQueue
import TaskQueueSQLite
#if canImport(Glibc)
import Glibc
#endif

/// The version printed by `taskq --version`.
let taskqVersion = "0.1.0"

struct Taskq: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "taskq",
        abstract: "A durable task queue in one SQLite file.",
        discussion: """
            Enqueue tasks from the shell, run 'taskq supervise' to work them off with N worker \
            processes, inspect with 'taskq status' or the sqlite3 shell, stop with 'taskq stop'. \
            Nothing enqueued is lost: a killed worker's task is retried, a late result from a \
            worker that lost its claim is refused.

            Every command takes --db PATH (default $TASKQ_DB, else ./taskq.db).

            Exit status: 0 ok, 1 failed, 64 usage error, 65 bad data, 66 no such database or \
            task, 69 database busy or unavailable, 75 not finished yet.
            """,
        version: taskqVersion,
        subcommands: [Enqueue.self, Supervise.self, Status.self, List.self, Show.self, Result.self, Stop.self, Init.self])
}

// A worker started by a supervisor runs here and never returns.
TaskQueueProcess.runWorkerIfRequested(handlers: HandlerSet())

do {
    var command = try Taskq.parseAsRoot()
    try command.run()
} catch let error as TaskQueueError {
    System.log("taskq: \(error.message)")
    exit(error.exitCode)
} catch {
    Taskq.exit(withError: error)
}
