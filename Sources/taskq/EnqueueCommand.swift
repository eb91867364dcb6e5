import ArgumentParser
import TaskQueue
import TaskQueueStores
#if canImport(Glibc)
import Glibc
#endif

struct Enqueue: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Add tasks to the queue; prints each new task's id.",
        discussion: """
            PAYLOAD is JSON text (at most 1 MiB) handed to the handler on stdin. Use '-' \
            (or omit it while stdin is not a terminal) to read it from stdin; empty stdin \
            without '-' means null. Everything is validated before anything is written, and \
            the database is created if it is missing. On success only the new id and a \
            newline are printed. Into a paused queue ('taskq pause') the task is enqueued all \
            the same, and stderr says that it waits for 'taskq resume'.

            KIND and --queue names use letters, digits, '.', '_', '-' and ':'. Kinds starting \
            with 'taskq.' are reserved.

            --batch reads one JSON object per stdin line, e.g.
              {"kind": "resize", "payload": {"file": "a.png"}, "priority": 5}
            with optional "queue", "priority", "delay", "at", "max_attempts", "timeout", \
            "on_crash", "backoff_base", "backoff_cap", "unique" (a key) and "after" (an id or \
            an array of ids); the \
            command line's KIND and options are the defaults for lines that omit them. All \
            lines commit in one transaction or none do; a bad line is named by its number.

            --unique KEY: at most one task with KEY is queued or running at a time (the \
            database enforces it). Enqueuing another while one is prints the existing task's \
            id, says so on stderr, and exits 0; once that task has finished, the key is free again.

            --after ID[,ID...]: the task becomes ready only when all those tasks have \
            succeeded; if one of them ends failed or cancelled, this one ends cancelled, its \
            error naming that task. An unknown id is refused (exit 66).

            Retry policy: a failed attempt is retried after a backoff of --backoff-base, \
            doubling per attempt up to --backoff-cap, times a random 0.5-1 (jitter), until \
            --max-attempts are spent; --on-crash says whether a crashed worker's task is \
            retried or ends failed. Each option left out comes from the kind's policy \
            ('taskq kind set KIND ...'), else the supervisor's setting, else 3 attempts, \
            1s doubling up to 5m, retry. The task row keeps what applies to it.

            --json prints {"id": N, "existing": true|false} per task (one line each).

            Examples:
              taskq enqueue resize '{"file":"a.png"}'
              echo '{"n": 3}' | taskq enqueue square
              taskq enqueue square - < payload.json
              taskq enqueue report --delay 10m --priority 5 --timeout 60 '{}'
              taskq enqueue report --at 2026-12-01T09:00:00Z --queue nightly null
              id=$(taskq enqueue square 7) && taskq result "$id" --wait
              printf '%s\\n' '{"payload":1}' '{"payload":2}' | taskq enqueue sq --batch
              seq 1 100 | taskq enqueue square --lines
              taskq enqueue sync --unique sync:alice '{"user":"alice"}'
              a=$(taskq enqueue fetch 1) && taskq enqueue merge --after "$a" null
              taskq enqueue charge --on-crash fail '{"order": 7}'
              taskq enqueue fetch --max-attempts 10 --backoff-base 2s --backoff-cap 10m '{"url": "…"}'

            Exit status: 0 enqueued (or already there, with --unique); 1 an --after task has \
            already failed or been cancelled; 64 bad option or name; 65 bad payload or batch \
            line; 66 the database's directory does not exist, or no such --after task; 69 \
            database busy.
            """)

    @OptionGroup var database: DatabaseOptions

    @Argument(help: ArgumentHelp("The task's kind (which handler runs it). With --batch: the default for lines without \"kind\".", valueName: "kind"))
    var kind: String?

    @Argument(help: ArgumentHelp("JSON payload, or '-' for stdin. Default: stdin when it is not a terminal, else null.", valueName: "payload"))
    var payload: String?

    @OptionGroup var task: TaskOptions

    @Option(parsing: .unconditional, help: ArgumentHelp("Start no sooner than this long from now: seconds, or 250ms, 90s, 5m, 2h, 1d.", valueName: "duration"))
    var delay: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("Start no sooner than this time: ISO 8601, e.g. 2026-12-01T09:00:00Z or 2026-12-01T10:00:00+01:00; without an offset or Z it is local time ($TZ).", valueName: "time"))
    var at: String?

    @Flag(help: "Read JSON objects from stdin, one task per line: {\"kind\", \"payload\", and optionally any option above, e.g. \"max_attempts\"}. All commit in one transaction, or none.")
    var batch = false

    @Flag(help: "Read stdin line by line; each line is the JSON payload of one task of KIND, committed as soon as it is read (see --commit-every); lines already waiting are sent together.")
    var lines = false

    @Option(name: .customLong("commit-every"), parsing: .unconditional, help: ArgumentHelp("With --lines: commit every N lines instead of every line.", valueName: "n"))
    var commitEvery: Int = 1

    @Option(parsing: .unconditional, help: ArgumentHelp("At most one task with this key is queued or running; a second enqueue prints the existing id and exits 0.", valueName: "key"))
    var unique: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("Run only after these tasks succeeded (comma-separated ids); cancelled if one of them fails or is cancelled.", valueName: "id,..."))
    var after: String?

    @Flag(help: "Print {\"id\": N, \"existing\": true|false} for each task instead of the bare id.")
    var json = false

    @Flag(help: "Print nothing on success.")
    var quiet = false

    /// For the benchmark harness: a last stdout line {"enqueued": n, "elapsed_s": s}.
    @Flag(help: .hidden)
    var report = false

    func validate() throws {
        if delay != nil && at != nil { throw ValidationError("give --delay or --at, not both") }
        if batch && lines { throw ValidationError("give --batch or --lines, not both") }
        if (batch || lines) && payload != nil { throw ValidationError("--batch and --lines read stdin; give no PAYLOAD") }
        if lines && kind == nil { throw ValidationError("--lines needs a KIND") }
        if !batch && kind == nil { throw ValidationError("missing KIND: taskq enqueue KIND [PAYLOAD]") }
        if commitEvery < 1 { throw ValidationError("--commit-every must be at least 1, not \(commitEvery)") }
        if commitEvery != 1 && !lines { throw ValidationError("--commit-every goes with --lines") }
        if let kind { try asUsageError { try validateName(kind, what: "kind") } }
        if (unique != nil || after != nil || json) && lines {
            throw ValidationError("--unique, --after and --json do not go with --lines (use --batch with \"unique\" and \"after\" fields)")
        }
        if after != nil && (delay != nil || at != nil) { throw ValidationError("give --after or --delay/--at, not both") }
        _ = try options()
    }

    /// The options given on the command line (defaults for --batch lines).
    func options() throws -> EnqueueOptions {
        var o = try task.options()
        if let delay { o.runAt = Timestamp.now().adding(seconds: try seconds(delay, option: "--delay")) }
        if let at {
            do { o.runAt = try Timestamp.parseUserTime(at) } catch { throw ValidationError("--at: \(error)") }
            try asUsageError { try o.validate(asOptions: true) }
        }
        if let unique {
            if unique.isEmpty || unique.utf8.count > 1000 { throw ValidationError("--unique: the key must be 1 to 1000 bytes long") }
            o.uniqueKey = unique
        }
        if let after { o.after = try parseIDs(after, option: "--after") }
        return o
    }

    func run() throws {
        let defaults = try options()
        if batch { return try runBatch(defaults) }
        if lines { return try runLines(defaults) }
        try Self.enqueueOne(kind: kind!, payload: payload, options: defaults, json: json, quiet: quiet) { try database.openForEnqueue() }
    }

    /// One task from the command line: PAYLOAD (or stdin) checked, then enqueued
    /// into the queue `open` returns, its id printed. Shared with the fast path.
    static func enqueueOne(kind: String, payload: String?, options: EnqueueOptions, json: Bool, quiet: Bool,
                           open: () throws -> Queue) throws {
        var text: String
        if payload == "-" || (payload == nil && isatty(0) == 0) {
            // A little over the limit, so surrounding whitespace does not count against it.
            let bytes = try readStdin(limit: Queue.maxPayloadBytes + 65_536, what: "payload on stdin")
            guard let t = trimmedText(bytes[...]) else { throw TaskQueueError.badData("payload on stdin is not valid UTF-8 text") }
            text = t
            if text.isEmpty {
                if payload == "-" { throw TaskQueueError.badData("payload on stdin is empty; give JSON, e.g. null or {}") }
                text = "null"
            }
        } else {
            text = trimmedText(Array((payload ?? "null").utf8)[...]) ?? ""
            if text.isEmpty { throw TaskQueueError.badData("payload is empty; give JSON, e.g. null or {}") }
        }
        let task = NewTask(kind: kind, payload: text, options: options)
        do { try Queue.validate(task) } catch let e as TaskQueueError where e.code == .badData && payload != "-" && payload != nil {
            throw shellHint(text) ?? e
        }
        let queue = try open()
        if task.options.uniqueKey == nil && task.options.after.isEmpty && !json {
            let id = try queue.enqueue([task])[0]
            if !quiet { out("\(id)\n") }
            warnIfPaused(queue, [task.options.queue])
            return
        }
        printEnqueued(try queue.enqueueReportingExisting([task]), [task], json: json, quiet: quiet)
        warnIfPaused(queue, [task.options.queue])
    }

    /// For a PAYLOAD argument that is a bare word (`taskq enqueue email hello`):
    /// the JSON error with the fix as it is typed in a shell, `'"hello"'`.
    private static func shellHint(_ text: String) -> TaskQueueError? {
        guard text.utf8.count <= 60, !text.contains("'"), text.unicodeScalars.allSatisfy({ $0.value >= 0x20 }),
              let first = text.unicodeScalars.first, first.properties.isAlphabetic, first.isASCII else { return nil }
        do { try JSON.validate(text) } catch {
            return TaskQueueError.badData("payload is not valid JSON: \(error.message) at byte \(error.offset) (a JSON string needs quotes: '\(JSON.quote(text))')")
        }
        return nil
    }

    /// Prints ids (or --json objects); an existing unique task is named on stderr.
    private static func printEnqueued(_ results: [EnqueuedTask], _ tasks: [NewTask], json: Bool, quiet: Bool) {
        for (r, t) in zip(results, tasks) where r.existing {
            System.log("taskq: task \(r.id) with unique key \(JSON.quote(t.options.uniqueKey ?? "")) is already queued or running; not enqueued again")
        }
        if quiet { return }
        if json {
            out(results.map { "{\"id\": \($0.id), \"existing\": \($0.existing)}\n" }.joined())
        } else {
            out(results.map { "\($0.id)\n" }.joined())
        }
    }

    /// stdin split into lines (without their newline), as bytes.
    private func stdinLines() throws -> [ArraySlice<UInt8>] {
        try readStdin().split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
    }

    private func runBatch(_ defaults: EnqueueOptions) throws {
        var tasks: [NewTask] = []
        for (i, bytes) in try stdinLines().enumerated() {
            let n = i + 1
            do {
                guard let line = trimmedText(bytes) else { throw TaskQueueError.badData("not valid UTF-8 text") }
                if line.isEmpty { continue }
                tasks.append(try batchTask(line, defaults: defaults))
            } catch let e as TaskQueueError {
                throw TaskQueueError.badData("line \(n): \(e.message); nothing was enqueued")
            } catch {
                throw TaskQueueError.badData("line \(n): \(error); nothing was enqueued")
            }
        }
        if tasks.isEmpty { throw TaskQueueError.badData("no tasks on stdin: --batch expects one JSON object per line, e.g. {\"kind\": \"resize\", \"payload\": {}}") }
        let queue = try database.openForEnqueue()
        Self.printEnqueued(try queue.enqueueReportingExisting(tasks), tasks, json: json, quiet: quiet)
        warnIfPaused(queue, Array(Set(tasks.map(\.options.queue))).sorted())
    }

    private func batchTask(_ line: String, defaults: EnqueueOptions) throws -> NewTask {
        let value: JSONValue
        do { value = try JSON.parse(line) } catch { throw TaskQueueError.badData("not valid JSON: \(error)") }
        guard case .object(let members) = value else {
            throw TaskQueueError.badData("expected a JSON object like {\"kind\": \"resize\", \"payload\": {…}}")
        }
        let known: Set<String> = ["kind", "payload", "queue", "priority", "delay", "at", "max_attempts", "timeout",
                                  "on_crash", "backoff_base", "backoff_cap", "unique", "after"]
        if let unknown = members.first(where: { !known.contains($0.key) }) {
            throw TaskQueueError.badData("unknown field \(JSON.quote(unknown.key)) (known: \(known.sorted().joined(separator: ", ")))")
        }
        // A field that is absent or null is not given.
        func given(_ key: String) -> Bool { value[key].map { $0 != .null } ?? false }
        func field<T>(_ key: String, _ what: String, _ get: (JSONValue) -> T?) throws -> T? {
            guard given(key), let v = value[key] else { return nil }
            guard let x = get(v) else { throw TaskQueueError.badData("\"\(key)\" must be \(what)") }
            return x
        }
        guard let kind = try field("kind", "a string", \.stringValue) ?? self.kind else {
            throw TaskQueueError.badData("no \"kind\" (and no KIND given on the command line)")
        }
        var o = defaults
        if let q = try field("queue", "a string", \.stringValue) { o.queue = q }
        if let p = try field("priority", "an integer", \.intValue) { o.priority = p }
        if let m = try field("max_attempts", "an integer", \.intValue) { o.maxAttempts = m }
        if let d = try field("delay", "a number of seconds or a duration like \"5m\"", durationValue) {
            o.runAt = Timestamp.now().adding(seconds: d)
        }
        if let a = try field("at", "an ISO 8601 time string", \.stringValue) {
            if given("delay") { throw TaskQueueError.badData("give \"delay\" or \"at\", not both") }
            o.runAt = try Timestamp.parseUserTime(a)
        }
        if let t = try field("timeout", "a number of seconds or a duration like \"5m\"", durationValue) { o.timeout = t }
        if let c = try field("on_crash", "\"retry\" or \"fail\"", { $0.stringValue.flatMap(CrashPolicy.init(rawValue:)) }) { o.onCrash = c }
        if let b = try field("backoff_base", "a number of seconds or a duration like \"5m\"", durationValue) { o.backoffBase = b }
        if let c = try field("backoff_cap", "a number of seconds or a duration like \"5m\"", durationValue) { o.backoffCap = c }
        if let u = try field("unique", "a string key", \.stringValue) { o.uniqueKey = u }
        if let a = try field("after", "a task id or an array of task ids", { v -> [Int64]? in
            if let i = v.intValue { return [i] }
            if case .array(let items) = v { let ids = items.compactMap(\.intValue); return ids.count == items.count ? ids : nil }
            return nil
        }) {
            if given("delay") || given("at") { throw TaskQueueError.badData("give \"after\" or \"delay\"/\"at\", not both") }
            o.after = a
        }
        let payload = value["payload"]?.compactText ?? "null"
        let task = NewTask(kind: kind, payload: payload, options: o)
        try Queue.validate(task)
        return task
    }

    private func parseIDs(_ text: String, option: String) throws -> [Int64] {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
        var ids: [Int64] = []
        for p in parts {
            guard let id = Int64(String(p).trimmingCharacters(in: " ")), id >= 1 else {
                throw ValidationError("\(option) '\(text)': give task ids separated by commas, e.g. \(option) 12,13")
            }
            ids.append(id)
        }
        return ids
    }

    private func durationValue(_ v: JSONValue) -> Double? {
        if let d = v.doubleValue { return d >= 0 ? d : nil }
        if let s = v.stringValue { return try? parseDuration(s) }
        return nil
    }
}
