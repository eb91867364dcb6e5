import ArgumentParser
import Logging
import TaskQueue
import TaskQueueStores
#if canImport(Glibc)
import Glibc
#endif

struct Taskq: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "taskq",
        abstract: "A durable task queue in one SQLite file.",
        discussion: """
            Enqueue tasks from the shell, run 'taskq supervise' to work them off with N worker \
            processes, inspect with 'taskq status' or the sqlite3 shell, stop with 'taskq stop'. \
            Nothing enqueued is lost: a killed worker's task is retried, a late result from a \
            worker that lost its claim is refused.

            Every command takes --db PATH (default $TASKQ_DB, else ./taskq.db; or a \
            PostgreSQL URL, postgresql://user@host/db, for a queue shared by many machines), \
            --synchronous and --busy-timeout, after the command name or before it \
            ('taskq --db x.db status'). enqueue, supervise, init, pause and resume create \
            the database (mode 0600) when it is missing; the other commands exit 66 and \
            create nothing. See 'taskq help <command>'.

            Quick start:
              taskq enqueue resize '{"file":"a.png"}'        # prints the task id
              taskq supervise --workers 4 --handler resize='./resize.sh' &
              taskq status
              taskq result 1 --wait --timeout 30
              taskq stop --wait

            Exit status: 0 ok, 1 failed (task or operation), 64 usage error, 65 bad data \
            (invalid JSON, bad batch line, not a taskq database), 66 no such database or \
            task, 69 database busy or unavailable, 75 not finished yet. The first line on \
            stderr says what was wrong.
            """,
        subcommands: [Enqueue.self, Supervise.self, Status.self, List.self, Show.self, Result.self, Retry.self, Cancel.self,
                      Purge.self, Pause.self, Resume.self, Stop.self, Init.self, Wait.self, ScheduleCommand.self, KindCommand.self, MapCommand.self,
                      Top.self, DashboardCommand.self])

    // On the root command only: a `version:` in the configuration would put
    // --version into every subcommand's help as well.
    @Flag(help: "Show the version.")
    var version = false

    func run() throws {
        guard version else { throw CleanExit.helpRequest(self) }
        out("taskq \(TaskQueueVersion.current)\n")
    }
}

// A worker started by a supervisor runs here and never returns.
// Supervisors and workers log through swift-log: here, one plain line per message.
LoggingSystem.bootstrap(OneLineLogHandler.init)
TaskQueueProcess.runWorkerIfRequested(handlers: HandlerSet())

/// Every error ends here: one first line on stderr, "taskq: <what was wrong>",
/// then (for usage errors) the usage; the exit status follows the documented codes.
func fail(_ error: Error) -> Never {
    switch error {
    case let e as CommandLineError:
        System.log("taskq: \(e.message)")
        if let hint = e.hint { System.log(hint) }
        exit(64)
    case let e as TaskQueueError:
        System.log("taskq: \(e.message)")
        exit(e.exitCode)
    default:
        let code = Taskq.exitCode(for: error)
        // --help and --version arrive here as errors; they print to stdout and exit 0.
        if code == .success { Taskq.exit(withError: error) }
        var message = Taskq.fullMessage(for: error)
        if message.hasPrefix("Error: ") { message = String(message.dropFirst(7)) }
        if !message.isEmpty { System.log("taskq: " + message) }
        exit(code.rawValue)
    }
}

/// `taskq enqueue KIND [PAYLOAD] [--db PATH] [--queue NAME] [--priority N] [--json]
/// [--quiet]`: the shape scripts run in loops, where process start-up is the whole
/// cost. It is parsed by hand: swift-argument-parser spends about a third of such a
/// run building its option set through protocol-conformance lookups (perf, static
/// release build). Anything else — another option, `--opt=value`, help, a value that
/// does not parse or validate — returns nil and goes through the full parser below,
/// so every message comes from one place. Then the same code as `Enqueue.run` runs.
func fastEnqueue(_ args: [String]) -> (() throws -> Void)? {
    guard args.count > 2, args[1] == "enqueue" else { return nil }
    var positional: [String] = []
    var db: String?, queue = "default", priority: Int64 = 0, json = false, quiet = false
    var i = 2
    while i < args.count {
        let a = args[i]
        i += 1
        if !a.hasPrefix("-") || a == "-" { positional.append(a); continue }
        if a == "--json" { json = true; continue }
        if a == "--quiet" { quiet = true; continue }
        // A value that looks like an option is left to the full parser.
        guard i < args.count, !args[i].hasPrefix("-") else { return nil }
        let value = args[i]
        i += 1
        switch a {
        case "--db": db = value
        case "--queue": queue = value
        case "--priority": guard let p = Int64(value) else { return nil }; priority = p
        default: return nil
        }
    }
    guard positional.count == 1 || positional.count == 2, db?.isEmpty != true,
          (try? validateName(positional[0], what: "kind")) != nil, (try? validateName(queue, what: "queue")) != nil
    else { return nil }
    let options = EnqueueOptions(queue: queue, priority: priority)
    return {
        try Enqueue.enqueueOne(kind: positional[0], payload: positional.count == 2 ? positional[1] : nil, options: options,
                               json: json, quiet: quiet) {
            try Queue.open(database: Stores.database(db), busyTimeout: DatabaseOptions.defaultBusyTimeout, role: .producer)
        }
    }
}

/// Other `taskq enqueue` commands parse only `enqueue`'s own options, skipping the
/// whole command tree; help and errors go through the full parser.
func parsedEnqueue(_ args: [String]) -> ParsableCommand? {
    guard args.count > 2, args[1] == "enqueue",
          !args.contains(where: { $0 == "-h" || $0 == "--help" || $0 == "help" }) else { return nil }
    return try? Enqueue.parse(Array(args.dropFirst(2)))
}

let arguments: [String]
do { arguments = try normalizedArguments(CommandLine.arguments) } catch { fail(error) }
if let run = fastEnqueue(arguments) {
    do { try run() } catch { fail(error) }
    exit(0)
}
let command: ParsableCommand
if let parsed = parsedEnqueue(arguments) { command = parsed } else {
    do { command = try Taskq.parseAsRoot(packingRepeatedOptions(packingTaskIDs(Array(arguments.dropFirst())))) } catch { fail(error) }
}
do {
    var command = command
    try command.run()
} catch let e as ValidationError {
    // A check that could only be made at run time: a usage error all the same,
    // without the root command's usage text.
    System.log("taskq: \(e.message)")
    exit(64)
} catch {
    fail(error)
}
