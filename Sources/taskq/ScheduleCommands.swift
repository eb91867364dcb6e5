import ArgumentParser
import TaskQueue
import TaskQueueStores
#if canImport(Glibc)
import Glibc
#endif

struct ScheduleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schedule",
        abstract: "Recurring tasks: enqueue a task at every occurrence of a cron expression.",
        discussion: """
            A running 'taskq supervise' (any of them; one is enough) looks at the schedules \
            about once a second and enqueues each occurrence exactly once, even with several \
            supervisors on the same database and across restarts. Occurrences missed while \
            no supervisor ran are not back-filled, except the latest one, which is enqueued \
            when a supervisor starts.

            Examples:
              taskq schedule add nightly --cron '0 3 * * *' report '{"kind":"daily"}'
              taskq schedule add standup --cron '0 9 * * MON-FRI' --tz Europe/Berlin remind
              taskq schedule add tick --cron '*/5 * * * *' ping --queue monitoring --timeout 30
              taskq schedule list
              taskq schedule remove nightly
            """,
        subcommands: [ScheduleAdd.self, ScheduleList.self, ScheduleRemove.self])
}

struct ScheduleAdd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add",
        abstract: "Add a recurring schedule.",
        discussion: """
            --cron takes the standard 5 fields, minute hour day-of-month month day-of-week, \
            each '*', a number, a range 'a-b', a step '*/n' or 'a-b/n', or a comma list of \
            those; months JAN-DEC and days SUN-SAT may be written by name; day of week 0 and 7 \
            are Sunday. When both day of month and day of week are restricted, a day matching \
            either runs (classic cron). Shortcuts: @yearly (@annually), @monthly, @weekly, \
            @daily (@midnight), @hourly. A bad expression is refused naming the field.

            --tz reads the fields as wall-clock time in an IANA zone (default UTC). When the \
            clocks go forward, a skipped time runs once at the moment of the jump (02:30 runs \
            at 03:00); when they go back, a repeated time runs once, the first time, unless \
            the hour field is '*' (then it runs in both passes, so '*/15 * * * *' keeps its \
            pace).

            Each occurrence enqueues an ordinary task of KIND with PAYLOAD (JSON, default \
            null) and the given task options, as 'taskq enqueue' does (options left out come \
            from the kind's policy when the task is enqueued). Prints the schedule's next \
            occurrences.

            Examples:
              taskq schedule add nightly --cron '0 3 * * *' report '{"kind":"daily"}'
              taskq schedule add weekdays --cron '30 8 * * MON-FRI' --tz America/New_York digest
              taskq schedule add often --cron '*/10 * * * *' ping --priority 5
              taskq schedule add nightly --cron '0 4 * * *' report --replace

            Exit status: 0 added; 1 a schedule of that name exists (use --replace); 64 bad \
            expression, zone, name or option; 65 bad payload.
            """)

    @OptionGroup var database: DatabaseOptions

    @Argument(help: ArgumentHelp("The schedule's name (letters, digits, '.', '_', '-', ':').", valueName: "name"))
    var name: String

    @Option(parsing: .unconditional, help: ArgumentHelp("5-field cron expression or @hourly-style shortcut (quote it).", valueName: "expr"))
    var cron: String

    @Argument(help: ArgumentHelp("Kind of the task to enqueue.", valueName: "kind"))
    var kind: String

    @Argument(help: ArgumentHelp("JSON payload of each task.", valueName: "payload"))
    var payload: String = "null"

    @Option(parsing: .unconditional, help: ArgumentHelp("IANA time zone the cron fields are read in, e.g. Europe/Berlin.", valueName: "zone"))
    var tz: String = "UTC"

    @OptionGroup var task: TaskOptions

    @Flag(help: "Overwrite a schedule of the same name.")
    var replace = false

    func validate() throws {
        // Usage errors here (exit 64); a bad payload is reported by run (exit 65).
        do { _ = try checked() } catch let e as TaskQueueError where e.code == .badData {}
    }

    /// Everything checked, nothing written.
    func checked() throws -> Schedule {
        let o = try task.options()
        do {
            try validateName(kind, what: "kind")
            return try Queue.validateSchedule(name: name, cron: cron, timeZone: tz, kind: kind, payload: payload,
                                              options: o, now: Scheduler.clock())
        } catch let e as TaskQueueError where e.code == .usage {
            throw ValidationError(e.message)
        }
    }

    func run() throws {
        let s = try checked()
        let q = try database.open(create: true)
        let saved = try q.addSchedule(name: s.name, cron: s.cron, timeZone: s.timeZone, kind: s.kind, payload: s.payload,
                                      options: s.options, replace: replace)
        let expr = try CronExpression(saved.cron)
        let zone = try CronTimeZone(named: saved.timeZone)
        var upcoming: [Timestamp] = [saved.nextAt]
        while upcoming.count < 3, let n = expr.next(after: upcoming.last!, in: zone) { upcoming.append(n) }
        out("schedule \(saved.name): \(saved.kind) at '\(saved.cron)' (\(saved.timeZone)); next: \(upcoming.map(\.iso).joined(separator: ", "))\n")
    }
}

struct ScheduleList: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List the schedules.",
        discussion: """
            --json prints an array of {"name", "cron", "tz", "kind", "payload" (the JSON \
            itself), "queue", "priority", "max_attempts", "timeout", "on_crash", \
            "backoff_base", "backoff_cap" (seconds), "created_at", "next_at", "last_at", \
            "last_task_id"}; times are UTC ISO 8601, absent values null (a task option left \
            null comes from the kind's policy when each task is enqueued).

            Examples:
              taskq schedule list
              taskq schedule list --json | jq -r '.[].next_at'
            """)

    @OptionGroup var database: DatabaseOptions
    @Flag(help: "Print JSON (shape above).") var json = false

    func run() throws {
        let all = try database.open(create: false).schedules()
        if json {
            out("[" + all.map(TaskJSON.schedule).joined(separator: ",\n") + "]\n")
            return
        }
        if all.isEmpty { out("no schedules\n"); return }
        out(table(["NAME", "CRON", "TZ", "KIND", "QUEUE", "NEXT", "LAST", "LAST TASK"], all.map { s in
            [s.name, s.cron, s.timeZone, s.kind, s.options.queue, s.nextAt.iso, s.lastAt?.iso ?? "-", s.lastTaskID.map(String.init) ?? "-"]
        }))
    }
}

struct ScheduleRemove: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove",
        abstract: "Remove a schedule (tasks it already enqueued stay).",
        discussion: """
            Examples:
              taskq schedule remove nightly

            Exit status: 0 removed; 66 no such schedule or database.
            """)

    @OptionGroup var database: DatabaseOptions
    @Argument(help: ArgumentHelp("The schedule's name.", valueName: "name")) var name: String

    func run() throws {
        let q = try database.open(create: false)
        guard try q.removeSchedule(named: name) else {
            throw TaskQueueError.notFound("no schedule \(JSON.quote(name)) in \(q.location)")
        }
        out("removed schedule \(name)\n")
    }
}
