// A producer written in Swift: enqueues tasks with the TaskQueue library.
//
//   taskq-example-producer [DB] [COUNT]
//
// DB: a SQLite file's path or a PostgreSQL URL (postgresql://…); default taskq.db.
//
// Enqueues COUNT (default 10) "square" tasks in one transaction and one "report"
// task that runs after a 1 s delay, then prints their ids.
import TaskQueue
import TaskQueueStores
#if canImport(Glibc)
import Glibc
#endif

let args = CommandLine.arguments
let db = args.count > 1 ? args[1] : "taskq.db"
let count = args.count > 2 ? Int(args[2]) ?? 10 : 10

do {
    let queue = try Queue.open(database: db)
    // Many at once: one transaction, all or nothing.
    let ids = try queue.enqueue((1...count).map { n in
        NewTask(kind: "square", payload: "{\"n\": \(n)}")
    })
    // One with options.
    let report = try queue.enqueue(kind: "report", payload: "{\"of\": \(ids.count)}",
                                   options: EnqueueOptions(queue: "reports", priority: 5,
                                                           runAt: Timestamp.now().adding(seconds: 1), maxAttempts: 5))
    for id in ids + [report] { print(id) }
} catch {
    System.log("taskq-example-producer: \(error)")
    exit(1)
}
