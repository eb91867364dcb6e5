// A worker program with Swift handlers: the same supervisor and worker processes
// as `taskq supervise`, running Swift functions inside the workers instead of
// shell commands.
//
//   taskq-example-worker [--db PATH|URL] [--workers N] [--until-empty] [--synchronous normal|full]
//
// --db takes a SQLite file's path or a PostgreSQL URL (postgresql://…), as taskq does.
//
// Kinds: "square" ({"n": 3} -> 9), "report" (returns a line of text), and "crash"
// (kills its own worker process, to see recovery at work).
import TaskQueue
import TaskQueueStores
#if canImport(Glibc)
import Glibc
#endif

var handlers = HandlerSet()
handlers.register("square") { task in
    guard let n = (try JSON.parse(task.payload))["n"]?.intValue else {
        throw TaskQueueError.badData("payload needs an integer \"n\"")
    }
    return Array("\(n * n)\n".utf8)
}
handlers.register("report") { task in
    Array("report for \(task.payload), attempt \(task.attempt)\n".utf8)
}
// Dies the way a buggy handler can (SIGKILL of its own worker): for trying crash
// recovery by hand, and for the tests.
handlers.register("crash") { _ in
    kill(getpid(), SIGKILL)
    return []
}

// A worker started by the supervisor below runs here and exits.
TaskQueueProcess.runWorkerIfRequested(handlers: handlers)

var options = SupervisorOptions(database: Stores.database(nil))   // $TASKQ_DB, else taskq.db
var args = CommandLine.arguments.dropFirst()
while let a = args.popFirst() {
    switch a {
    case "--db": options.database = args.popFirst() ?? options.database
    case "--workers": options.workers = Int(args.popFirst() ?? "") ?? options.workers
    case "--until-empty": options.untilEmpty = true
    case "--synchronous": options.synchronous = args.popFirst() ?? "normal"
    default:
        System.log("usage: taskq-example-worker [--db PATH|URL] [--workers N] [--until-empty] [--synchronous normal|full]")
        exit(64)
    }
}
do {
    exit(try TaskQueueProcess.supervise(options, handlers: handlers))
} catch let e as TaskQueueError {
    System.log("taskq-example-worker: \(e.message)")
    exit(e.exitCode)
}
