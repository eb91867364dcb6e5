import ArgumentParser
import TaskQueue
import TaskQueueStores
#if canImport(Glibc)
import Glibc
#endif

struct Wait: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Block until tasks (given ids, a queue, or everything) are finished.",
        discussion: """
            With IDs: waits until each of those tasks has finished (succeeded, failed or \
            cancelled). With --queue: until that queue has no queued or running task left \
            (delayed and retrying tasks count as not finished). With neither: until no queue \
            has any. Ids: as many as needed (a repeated one counts once); - reads more from \
            stdin, separated by spaces or newlines. --timeout counts from the start of the \
            command. It sleeps until the database changes (inotify), with a look every half \
            second as a fallback, rather than polling in a loop.

            On a terminal it shows a progress bar with counts and the rate; otherwise it \
            prints a plain line when the counts change (at most once a second). The last line \
            always sums up. If, 3 seconds in, some of the tasks are queued where no live \
            supervisor will run them (no handler for their kind, or not for their queue), it \
            says so once on stderr. In --queue mode the counts are of tasks that finished since wait \
            started plus those still to do; "failed" means tasks that ended failed or \
            cancelled while it waited.

            --json prints nothing while waiting, then one object: {"finished": true|false, \
            "total", "succeeded", "failed", "cancelled", "queued", "running", "elapsed_s"}.

            Examples:
              id=$(taskq enqueue resize '{"file":"a.png"}'); taskq wait "$id"
              taskq wait 12 13 14 --timeout 60
              taskq wait --queue emails
              taskq enqueue sq --lines < inputs.txt > ids.txt && taskq wait $(cat ids.txt)
              taskq wait - < ids.txt

            Exit status: 0 all finished and none failed or was cancelled; 1 at least one \
            failed or was cancelled; 64 usage; 66 no such task or database; 75 --timeout \
            passed first.
            """)

    @OptionGroup var database: DatabaseOptions

    @Argument(help: ArgumentHelp("Task ids to wait for; - reads more from stdin (whitespace-separated).", valueName: "id"))
    var ids: [String] = []

    @Option(parsing: .unconditional, help: ArgumentHelp("Wait until this queue has no queued or running task.", valueName: "name"))
    var queue: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("Give up after this long (seconds, or 90s, 5m…) with exit 75. Default: no limit.", valueName: "duration"))
    var timeout: String?

    @Flag(help: "Print one JSON object when done (shape above) instead of progress.")
    var json = false

    func validate() throws {
        try TaskIDArguments(ids).check()
        if !ids.isEmpty && queue != nil { throw ValidationError("give task ids or --queue, not both") }
        if let queue {
            try asUsageError { try validateName(queue, what: "queue") }
        }
        if let timeout { _ = try seconds(timeout, option: "--timeout") }
    }

    struct Counts: Equatable {
        var succeeded: Int64 = 0, failed: Int64 = 0, cancelled: Int64 = 0, queued: Int64 = 0, running: Int64 = 0
        var done: Int64 { succeeded + failed + cancelled }
        var total: Int64 { done + queued + running }
        var bad: Int64 { failed + cancelled }
    }

    func run() throws {
        let byID = !ids.isEmpty
        let ids = try TaskIDArguments(self.ids).read()
        let q = try database.open(create: false)
        let limit = try timeout.map { try seconds($0, option: "--timeout") }
        var pending = Set(ids)
        var finished: [Int64: TaskState] = [:]
        let known = try q.states(of: ids)
        let missing = ids.filter { known[$0] == nil }
        if !missing.isEmpty { throw TaskQueueError.notFound("no task \(idList(missing)) in \(q.location)") }
        func queueCounts() throws -> Counts {
            var c = Counts()
            for row in try q.stats().counts where queue == nil || row.queue == queue {
                switch row.state {
                case .succeeded: c.succeeded += row.count
                case .failed: c.failed += row.count
                case .cancelled: c.cancelled += row.count
                case .queued: c.queued += row.count
                case .running: c.running += row.count
                }
            }
            return c
        }
        let baseline = !byID ? try queueCounts() : Counts()
        func look() throws -> Counts {
            if !byID {
                var c = try queueCounts()
                c.succeeded = max(0, c.succeeded - baseline.succeeded)
                c.failed = max(0, c.failed - baseline.failed)
                c.cancelled = max(0, c.cancelled - baseline.cancelled)
                return c
            }
            var c = Counts()
            let states = try q.states(of: Array(pending))
            for id in pending {
                switch states[id] ?? .cancelled {   // no task: deleted (purged)
                case .queued: c.queued += 1
                case .running: c.running += 1
                case let state: finished[id] = state; pending.remove(id)
                }
            }
            for (_, s) in finished {
                switch s {
                case .succeeded: c.succeeded += 1
                case .failed: c.failed += 1
                default: c.cancelled += 1
                }
            }
            return c
        }

        let start = System.monotonic()
        let progress = json ? nil : Progress(tty: isatty(1) == 1)
        var last = Counts()
        var lastLook = 0.0
        var doneAtStart: Int64?   // finished before the wait began: not part of the rate
        let hint = UnservedHint()
        // --timeout counts from the start of the command, reading ids and opening included.
        let result = try q.waitFor(timeout: limit.map { max(0, $0 - secondsSinceStart()) }, interval: 0.5) { () -> Counts? in
            // At most ten looks a second, however often the database changes.
            let gap = System.monotonic() - lastLook
            if gap < 0.1 { usleep(useconds_t((0.1 - gap) * 1_000_000)) }
            lastLook = System.monotonic()
            last = try look()
            if last.queued > 0 { hint.check(q, ids: ids.isEmpty ? nil : ids, queue: queue, before: { progress?.clear() }) }
            if doneAtStart == nil { doneAtStart = last.done }
            progress?.update(last, elapsed: System.monotonic() - start, doneSinceStart: last.done - (doneAtStart ?? 0))
            return last.queued + last.running == 0 ? last : nil
        }
        let elapsed = System.monotonic() - start
        if json {
            var o = JSONObjectWriter()
            o.add("finished", result != nil)
            o.add("total", last.total)
            o.add("succeeded", last.succeeded)
            o.add("failed", last.failed)
            o.add("cancelled", last.cancelled)
            o.add("queued", last.queued)
            o.add("running", last.running)
            o.add("elapsed_s", (elapsed * 1000).rounded() / 1000)
            out(o.text + "\n")
        } else {
            progress?.finish(last, elapsed: elapsed, complete: result != nil)
        }
        guard result != nil else {
            throw TaskQueueError(.notFinished, "timed out after \(formatDuration(limit ?? 0)): \(last.done) of \(last.total) finished, \(last.running) running, \(last.queued) queued")
        }
        if last.bad > 0 { throw ExitCode(1) }
    }
}

/// Progress output for `wait` and `map`: a bar redrawn in place on a terminal,
/// else a plain line when the counts change (at most once a second).
final class Progress {
    let tty: Bool
    let fd: Int32
    private var lastLine = ""
    private var lastPrint = -10.0
    private var drawn = false

    init(tty: Bool, fd: Int32 = 1) { self.tty = tty; self.fd = fd }

    private func write(_ s: String) {
        var s = s
        s.withUTF8 { writeAll(fd, UnsafeRawBufferPointer($0)) }
    }

    static func summary(_ c: Wait.Counts) -> String {
        "\(c.succeeded) succeeded, \(c.failed) failed, \(c.cancelled) cancelled"
    }

    private static func rate(_ done: Int64, _ elapsed: Double) -> String {
        let r = elapsed > 0 ? Double(done) / elapsed : 0
        return r >= 10 ? "\(Int(r.rounded()))/s" : "\((r * 10).rounded() / 10)/s"
    }

    /// Erases the bar (before other output goes to the same terminal).
    func clear() {
        if tty && drawn { write("\r\u{1B}[K"); lastLine = ""; drawn = false }
    }

    /// `doneSinceStart`: what the rate counts (default: every finished task).
    func update(_ c: Wait.Counts, elapsed: Double, doneSinceStart: Int64? = nil) {
        let doneNow = doneSinceStart ?? c.done
        if tty {
            let width = 30
            let fraction = c.total == 0 ? 1 : Double(c.done) / Double(c.total)
            let filled = Int((fraction * Double(width)).rounded(.down))
            var line = "[" + String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled) + "] "
            line += "\(c.done)/\(c.total) \(Int((fraction * 100).rounded(.down)))%"
            if c.bad > 0 { line += ", \(c.bad) failed" }
            line += ", \(c.running) running, \(Self.rate(doneNow, elapsed))"
            let r = elapsed > 0 ? Double(doneNow) / elapsed : 0
            if r > 0 && c.done < c.total { line += ", ETA \(formatDuration((Double(c.total - c.done) / r).rounded(.up)))" }
            if line != lastLine { write("\r" + line + "\u{1B}[K"); lastLine = line; drawn = true }
            return
        }
        let line = "\(c.done)/\(c.total) finished (\(Self.summary(c))), \(c.running) running, \(c.queued) queued, \(Self.rate(doneNow, elapsed))"
        let now = System.monotonic()
        if line != lastLine && now - lastPrint >= 1 {
            write(line + "\n")
            lastLine = line
            lastPrint = now
        }
    }

    func finish(_ c: Wait.Counts, elapsed: Double, complete: Bool) {
        if tty && drawn { update(c, elapsed: elapsed); write("\n") }
        if complete {
            write("all \(c.total) finished in \(formatDuration((elapsed * 10).rounded() / 10)): \(Self.summary(c))\n")
        } else {
            write("\(c.done)/\(c.total) finished (\(Self.summary(c))), \(c.running) running, \(c.queued) queued\n")
        }
    }
}
