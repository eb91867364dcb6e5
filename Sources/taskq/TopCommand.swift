import ArgumentParser
import CTaskQSystem
import TaskQueue
import TaskQueueStores
#if canImport(Glibc)
import Glibc
#endif

struct Top: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "A live view of the queue: counts, throughput, running tasks, failures (also 'status --watch').",
        discussion: """
            Redraws every --interval seconds: per queue the tasks queued (ready and \
            waiting), running, succeeded, failed and cancelled, and how many finished in \
            the last minute (a paused queue is marked "(paused)"); the live supervisors, and \
            queued tasks of a kind no live supervisor runs; the running tasks with their age (oldest \
            first); the latest failures with their error. On a terminal it uses the \
            alternate screen and hides the cursor; Ctrl-C (or q then Enter, or SIGTERM) \
            restores both and exits 0. When stdout is not a terminal it prints a plain \
            snapshot each interval (--iterations N stops after N).

            Examples:
              taskq top
              taskq status --watch
              taskq top --interval 0.5
              taskq top --iterations 1 > snapshot.txt
            """)

    @OptionGroup var database: DatabaseOptions

    @Option(parsing: .unconditional, help: ArgumentHelp("Time between refreshes (0.1s to 1h: seconds, or 500ms, 5s, 1m…).", valueName: "duration"))
    var interval: String = "1s"

    @Option(parsing: .unconditional, help: ArgumentHelp("Stop after this many refreshes. Default: until Ctrl-C.", valueName: "n"))
    var iterations: Int?

    func validate() throws {
        let every = try seconds(interval, option: "--interval")
        if !(every >= 0.1 && every <= 3600) { throw ValidationError("--interval must be between 100ms and 1h, not \(interval)") }
        if let n = iterations, n < 1 { throw ValidationError("--iterations must be at least 1, not \(n)") }
    }

    func run() throws { try LiveView(database: database, interval: try seconds(interval, option: "--interval"), iterations: iterations).run() }
}

/// The refreshing screen behind `taskq top` and `taskq status --watch`.
struct LiveView {
    let database: DatabaseOptions
    let interval: Double
    let iterations: Int?

    private func write(_ s: String) {
        var s = s
        s.withUTF8 { writeAll(1, UnsafeRawBufferPointer($0)) }
    }

    func run() throws {
        let q = try database.open(create: false)
        let tty = isatty(1) == 1
        for sig in [SIGINT, SIGTERM, SIGHUP] { taskq_install_flag_handler(sig) }
        if tty { write("\u{1B}[?1049h\u{1B}[?25l") }          // alternate screen, hide cursor
        defer { if tty { write("\u{1B}[?25h\u{1B}[?1049l") } } // cursor back, main screen back
        var n = 0
        while true {
            let screen = try render(q, width: tty ? columns() : 1000)
            if tty { write("\u{1B}[H" + screen.replacingOccurrences("\n", "\u{1B}[K\n") + "\u{1B}[J") } else { write(screen + "\n") }
            n += 1
            if let iterations, n >= iterations { return }
            // Sleep in slices, waking for a signal or a 'q' line on a terminal.
            let deadline = System.monotonic() + interval
            while System.monotonic() < deadline {
                if taskq_peek_signal_flags() != 0 { return }
                var p = pollfd(fd: 0, events: Int16(POLLIN), revents: 0)
                let ms = Int32(max(1, min(100, (deadline - System.monotonic()) * 1000)))
                if tty && isatty(0) == 1, poll(&p, 1, ms) > 0 {
                    var buf = [UInt8](repeating: 0, count: 64)
                    let got = read(0, &buf, buf.count)
                    if got <= 0 || buf[0..<got].contains(UInt8(ascii: "q")) { return }
                } else if !(tty && isatty(0) == 1) {
                    usleep(useconds_t(ms) * 1000)
                }
            }
        }
    }

    private func columns() -> Int {
        var ws = winsize()
        if ioctl(1, UInt(TIOCGWINSZ), &ws) == 0, ws.ws_col > 20 { return Int(ws.ws_col) }
        return 100
    }

    private func clip(_ s: String, _ width: Int) -> String { s.count <= width ? s : String(s.prefix(max(1, width - 1))) + "…" }

    func render(_ q: Queue, width: Int) throws -> String {
        let now = Timestamp.now()
        let stats = try q.stats()
        let minuteAgo = now.adding(seconds: -60)
        let recent = try q.finishedSince(minuteAgo)
        var perQueue: [String: [TaskState: Int64]] = [:]
        for c in stats.counts { perQueue[c.queue, default: [:]][c.state] = c.count }
        var lastMinute: [String: Int64] = [:]
        var minuteTotal: [TaskState: Int64] = [:]
        for r in recent {
            lastMinute[r.queue, default: 0] += r.count
            minuteTotal[r.state, default: 0] += r.count
            if perQueue[r.queue] == nil { perQueue[r.queue] = [:] }
        }
        let paused = Set(try q.pausedQueues().map(\.name))
        for name in paused where perQueue[name] == nil { perQueue[name] = [:] }   // listed even without tasks, as in status
        let queues = perQueue.keys.sorted()
        var text = "taskq top - \(q.location) - \(now.iso) - every \(formatDuration(interval)), Ctrl-C to quit\n\n"
        if queues.isEmpty {
            text += "no tasks\n"
        } else {
            let rows = queues.map { name -> [String] in
                let m = perQueue[name]!
                let waiting = stats.waiting[name] ?? 0
                return [name + (paused.contains(name) ? " (paused)" : ""), String((m[.queued] ?? 0) - waiting), String(waiting), String(m[.running] ?? 0),
                        String(m[.succeeded] ?? 0), String(m[.failed] ?? 0), String(m[.cancelled] ?? 0), String(lastMinute[name] ?? 0)]
            }
            text += table(["QUEUE", "READY", "WAITING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", "DONE/MIN"], rows)
        }
        let done = minuteTotal.values.reduce(0, +)
        text += "\nlast minute: \(done) finished (\(minuteTotal[.succeeded] ?? 0) succeeded, \(minuteTotal[.failed] ?? 0) failed, "
            + "\(minuteTotal[.cancelled] ?? 0) cancelled), \((Double(done) / 60 * 10).rounded() / 10)/s\n"
        let dead = Set(stats.processes.filter { Recovery.deathReason(of: $0, now: now) != nil }.map(\.id))
        let sups = stats.processes.filter { $0.role == .supervisor && !dead.contains($0.id) }
        let unserved = unservedLines(try q.unservedTasks())
        // With no supervisor, the unserved lines say so themselves, with what to start.
        text += sups.isEmpty ? (unserved.isEmpty ? "no supervisor is running\n" : "") : sups.map { s in
            let n = stats.processes.filter { $0.supervisorID == s.id && !dead.contains($0.id) }.count
            return "supervisor pid \(s.pid) on \(s.host): \(n) workers, kinds \(s.kinds.joined(separator: ", "))\n"
        }.joined()
        text += unserved
        let running = try q.tasks(TaskFilter(states: [.running], limit: 1000))
            .sorted { ($0.startedAt ?? now) < ($1.startedAt ?? now) }
        text += "\nRUNNING (\(running.count))\n"
        if !running.isEmpty {
            text += table(["ID", "KIND", "QUEUE", "ATTEMPT", "AGE"], running.prefix(10).map { t in
                [String(t.id), t.kind, t.queue, "\(t.attempts)/\(t.maxAttempts)", formatDuration(now.seconds(since: t.startedAt ?? now).rounded())]
            })
        }
        let failures = try q.tasks(TaskFilter(states: [.failed], limit: 5, latestFinishedFirst: true))
        text += "\nRECENT FAILURES\n"
        text += failures.isEmpty ? "none\n" : table(["ID", "KIND", "FINISHED", "ERROR"], failures.map { t in
            [String(t.id), t.kind, t.finishedAt?.iso ?? "", (t.lastError ?? "").replacingOccurrences("\n", " ")]
        })
        return text.split(separator: "\n", omittingEmptySubsequences: false).map { clip(String($0), width) }.joined(separator: "\n")
    }
}

private extension String {
    func replacingOccurrences(_ target: Character, _ replacement: String) -> String {
        var out = ""
        for c in self { if c == target { out += replacement } else { out.append(c) } }
        return out
    }
}
