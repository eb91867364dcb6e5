import ArgumentParser
import TaskQueue
import TaskQueueSQLite
#if canImport(Glibc)
import Glibc
#endif

struct Enqueue: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Add tasks to the queue; prints each new task's id.",
        discussion: """
            PAYLOAD is JSON text handed to the handler on stdin. Use '-' (or omit it while \
            stdin is not a terminal) to read it from stdin. It is validated before anything \
            is written.

            Examples:
              taskq enqueue resize '{"file":"a.png"}'
              echo '{"n": 3}' | taskq enqueue square
              taskq enqueue report --delay 10m --priority 5 --timeout 60 '{}'
              printf '%s\\n' '{"kind":"a","payload":1}' '{"kind":"b","payload":[2]}' | taskq enqueue --batch
              seq 1 100 | taskq enqueue square --lines
            """)

    @OptionGroup var database: DatabaseOptions

    @Argument(help: ArgumentHelp("The task's kind (which handler runs it). With --batch: the default for lines without \"kind\".", valueName: "kind"))
    var kind: String?

    @Argument(help: ArgumentHelp("JSON payload, or '-' for stdin. Default: stdin when it is not a terminal, else null.", valueName: "payload"))
    var payload: String?

    @Option(help: ArgumentHelp("Queue name.", valueName: "name"))
    var queue: String = "default"

    @Option(parsing: .unconditional, help: ArgumentHelp("Higher runs first.", valueName: "n"))
    var priority: Int64 = 0

    @Option(help: ArgumentHelp("Start no sooner than this long from now: seconds, or 90s, 5m, 2h, 1d.", valueName: "duration"))
    var delay: String?

    @Option(help: ArgumentHelp("Start no sooner than this time: ISO 8601, e.g. 2026-12-01T09:00:00Z; without an offset or Z it is local time.", valueName: "time"))
    var at: String?

    @Option(name: .customLong("max-attempts"), parsing: .unconditional, help: ArgumentHelp("Attempts before the task ends failed.", valueName: "n"))
    var maxAttempts: Int64 = 3

    @Option(help: ArgumentHelp("Time limit per attempt (seconds, or 90s, 5m…); its handler's process group is killed when it passes. Default: none.", valueName: "duration"))
    var timeout: String?

    @Flag(help: "Read JSON lines from stdin, one task per line: {\"kind\", \"payload\", and optionally \"queue\", \"priority\", \"delay\", \"at\", \"max_attempts\", \"timeout\"}. All commit in one transaction, or none.")
    var batch = false

    @Flag(help: "Read stdin line by line; each line is the JSON payload of one task of KIND, committed as soon as it is read (see --commit-every).")
    var lines = false

    @Option(name: .customLong("commit-every"), help: ArgumentHelp("With --lines: commit every N lines instead of every line.", valueName: "n"))
    var commitEvery: Int = 1

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
        if commitEvery < 1 { throw ValidationError("--commit-every must be at least 1") }
    }

    /// The options given on the command line (defaults for --batch lines).
    func options() throws -> EnqueueOptions {
        var o = EnqueueOptions(queue: queue, priority: priority, maxAttempts: maxAttempts)
        if let delay { o.runAt = Timestamp.now().adding(seconds: try seconds(delay, option: "--delay")) }
        if let at {
            do { o.runAt = try Timestamp.parseUserTime(at) } catch { throw ValidationError("--at: \(error)") }
        }
        if let timeout { o.timeout = try seconds(timeout, option: "--timeout") }
        return o
    }

    func run() throws {
        let defaults = try options()
        if batch { return try runBatch(defaults) }
        if lines { return try runLines(defaults) }
        let kind = kind!
        var text = payload ?? "null"
        if payload == "-" || (payload == nil && isatty(0) == 0) {
            let bytes = readStdin()
            text = try utf8(bytes, what: "payload on stdin")
            if text.allSatisfy({ $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" }) {
                if payload == "-" { throw TaskQueueError.badData("payload on stdin is empty; give JSON, e.g. null or {}") }
                text = "null"
            }
        }
        let task = NewTask(kind: kind, payload: trimmed(text), options: defaults)
        try Queue.validate(task)
        let queue = try database.open(create: true)
        let id = try queue.enqueue([task])[0]
        if !quiet { out("\(id)\n") }
    }

    private func trimmed(_ s: String) -> String { s.trimmingCharacters(in: " \n\t\r") }

    private func runBatch(_ defaults: EnqueueOptions) throws {
        let text = try utf8(readStdin(), what: "stdin")
        var tasks: [NewTask] = []
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let n = i + 1
            if line.allSatisfy({ $0 == " " || $0 == "\t" || $0 == "\r" }) { continue }
            do {
                tasks.append(try batchTask(String(line), defaults: defaults))
            } catch let e as TaskQueueError {
                throw TaskQueueError.badData("line \(n): \(e.message)")
            } catch {
                throw TaskQueueError.badData("line \(n): \(error)")
            }
        }
        if tasks.isEmpty { throw TaskQueueError.badData("no tasks on stdin: --batch expects one JSON object per line") }
        let ids = try database.open(create: true).enqueue(tasks)
        if !quiet { out(ids.map { "\($0)\n" }.joined()) }
    }

    private func batchTask(_ line: String, defaults: EnqueueOptions) throws -> NewTask {
        let value: JSONValue
        do { value = try JSON.parse(line) } catch { throw TaskQueueError.badData("not valid JSON: \(error)") }
        guard case .object(let members) = value else {
            throw TaskQueueError.badData("expected a JSON object like {\"kind\": \"resize\", \"payload\": {…}}")
        }
        let known: Set<String> = ["kind", "payload", "queue", "priority", "delay", "at", "max_attempts", "timeout"]
        if let unknown = members.first(where: { !known.contains($0.key) }) {
            throw TaskQueueError.badData("unknown field \(JSON.quote(unknown.key)) (known: \(known.sorted().joined(separator: ", ")))")
        }
        func field<T>(_ key: String, _ what: String, _ get: (JSONValue) -> T?) throws -> T? {
            guard let v = value[key] else { return nil }
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
            if value["delay"] != nil { throw TaskQueueError.badData("give \"delay\" or \"at\", not both") }
            o.runAt = try Timestamp.parseUserTime(a)
        }
        if let t = try field("timeout", "a number of seconds or a duration like \"5m\"", durationValue) { o.timeout = t }
        let payload = value["payload"]?.compactText ?? "null"
        let task = NewTask(kind: kind, payload: payload, options: o)
        try Queue.validate(task)
        return task
    }

    private func durationValue(_ v: JSONValue) -> Double? {
        if let d = v.doubleValue { return d >= 0 ? d : nil }
        if let s = v.stringValue { return try? parseDuration(s) }
        return nil
    }

    /// One task per stdin line, committed as it is read: the shape the benchmark
    /// harness drives, and `tail -f log | taskq enqueue KIND --lines`.
    private func runLines(_ defaults: EnqueueOptions) throws {
        let queue = try database.open(create: true)
        var pending: [NewTask] = []
        var n = 0, count = 0
        let start = System.monotonic()
        var first: Double?
        func commit() throws {
            if pending.isEmpty { return }
            let ids = try queue.enqueue(pending)
            pending.removeAll(keepingCapacity: true)
            if !quiet { out(ids.map { "\($0)\n" }.joined()) }
        }
        while let line = readLine(strippingNewline: true) {
            n += 1
            if first == nil { first = System.monotonic() }
            if line.isEmpty { continue }
            let task = NewTask(kind: kind!, payload: line, options: defaults)
            do { try Queue.validate(task) } catch let e as TaskQueueError {
                try commit()
                throw TaskQueueError.badData("line \(n): \(e.message) (earlier lines were enqueued)")
            }
            pending.append(task)
            count += 1
            if pending.count >= commitEvery { try commit() }
        }
        try commit()
        if report {
            let elapsed = System.monotonic() - (first ?? start)
            out("{\"enqueued\": \(count), \"elapsed_s\": \(elapsed)}\n")
        }
    }
}
