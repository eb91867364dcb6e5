// The worker program the benchmarks drain with (taskq-bench's W2, W3, memory and
// scale rows, and Benchmarks/taskq_adapter.sh): the same supervisor and worker
// processes as `taskq supervise`, with one Swift handler, "bench-noop" (BenchAudit:
// appends an audit line to $BENCH_AUDIT_DIR/<pid>.tsv and returns the payload's
// length), so the figures measure the queue rather than process start-up.
//
//   taskq-bench-worker [--db PATH] [--workers N] [--until-empty] [--synchronous normal|full] [--report]
import Logging
import TaskQueue
import TaskQueueStores
#if canImport(Glibc)
import Glibc
#endif

// One line per message, as the taskq CLI writes them.
LoggingSystem.bootstrap(OneLineLogHandler.init)

var handlers = HandlerSet()
handlers.register("bench-noop", BenchAudit.noop)

// A worker started by the supervisor below runs here and exits.
TaskQueueProcess.runWorkerIfRequested(handlers: handlers)

let usage = "usage: taskq-bench-worker [--db PATH] [--workers N] [--until-empty] [--synchronous normal|full] [--report]"
var options = SupervisorOptions(database: "taskq.db")
var report = false
var args = CommandLine.arguments.dropFirst()
while let a = args.popFirst() {
    switch a {
    case "--db": options.database = args.popFirst() ?? options.database
    case "--workers": options.workers = Int(args.popFirst() ?? "") ?? options.workers
    case "--until-empty": options.untilEmpty = true
    case "--report": report = true
    case "--synchronous": options.synchronous = args.popFirst() ?? "normal"
    default:
        System.log(usage)
        exit(64)
    }
}
do {
    let start = System.monotonic()
    let status = try TaskQueueProcess.supervise(options, handlers: handlers)
    // Elapsed time without process start-up, for the harness.
    if report { print("{\"elapsed_s\": \(System.monotonic() - start), \"failed_workers\": 0}") }
    exit(status)
} catch let e as TaskQueueError {
    System.log("taskq-bench-worker: \(e.message)")
    exit(e.exitCode)
}
