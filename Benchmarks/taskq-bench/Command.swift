import ArgumentParser
import CTaskQSystem
import TaskQueue
#if canImport(Glibc)
import Glibc
#endif

/// The command line: which rows, what sizes, where to write JSON.
struct TaskqBench: ParsableCommand {
    static let rowNames = ["w1", "w2", "w3", "w4", "cli", "memory", "scale", "dashboard"]

    static let configuration = CommandConfiguration(
        commandName: "taskq-bench",
        abstract: "taskq's own benchmark: every workload row (W1-W4, CLI, memory, scale, dashboard), against taskq alone.",
        discussion: """
            Prints one line per figure: name, value, unit, what it is compared with in the
            same run, and the goal. Figures vary with the machine's load: compare ratios
            from one run. Build and run (release, or the figures mean nothing):
              swift build -c release --static-swift-stdlib && .build/release/taskq-bench

            Rows (names for --only):
              w1      W1: enqueue 20,000 tasks with `taskq enqueue --lines`, one durable
                      commit per task, and W1b: one commit per 100; each beside the
                      harness's C limit program (../shared/bench/limit/limit.c beside the
                      package, or $BENCH_DIR/limit/limit.c; needs cc and libsqlite3-dev),
                      run alternately, medians of 3.
                      Goal: W1 >= 85%, W1b >= 70% of the limit.
              w2      W2: drain 20,000 queued no-op tasks (a Swift handler in
                      taskq-bench-worker) with 2 and with 4 workers.
                      Goal: >= 100,000 tasks/s.
              w3      W3: 1,000 tasks enqueued 2 ms apart (one commit each) into 2 idle
                      workers: enqueue-to-start latency. Goal: p50 <= 1 ms, p99 <= 5 ms.
              w4      W4: 2,000 shell tasks (`true`) through `taskq supervise --handler`
                      with 2 workers, against `xargs -P 2` running `sh -c true` and
                      task-spooler (`tsp`, if installed) with 2 slots.
                      Goal: <= 1.3x xargs, faster than tsp.
              cli     `taskq enqueue` of one task as a new process, median wall time of
                      200, against `sqlite3 FILE "INSERT ..."`. Goal: <= 2x sqlite3.
              memory  RSS of an idle supervisor and its 2 workers, the workers' CPU over
                      5 s, and the peak RSS of one worker draining 200,000 tasks alone.
                      Goal: worker <= 15 MiB, supervisor <= 20 MiB, CPU < 1% of a core.
              scale   W2 on a table holding 1,000,000 finished tasks (100,000 queued)
                      against a fresh table, 3 drains of each, alternating; then 1,000,000 tasks enqueued (rate per
                      tenth) and drained (rate per second), and RSS after.
                      Goal: >= 80% of fresh, flat rates (max/min near 1), RSS as above.
              dashboard  W2 with 2 workers while `taskq dashboard` serves the database,
                      an event stream open and /metrics and / fetched every second
                      (curl), against W2 alone; 3 runs each, alternating.
                      Goal: >= 95% of alone.

            --quick: W3 200 tasks, W4 500, CLI 30 runs, memory 50,000 tasks, scale
            100,000 finished + 20,000 queued and 100,000 through (W1, W2 as they are).

            taskq and taskq-bench-worker are taken from this executable's directory,
            or from $TASKQ_BIN_DIR. W1-W3 beside the peers (huey, persist-queue,
            litequeue, multiprocessing.Queue) come from ../shared/bench: see
            docs/performance.md.
            """)

    @Flag(help: "Smaller sizes (a minute or two).")
    var quick = false

    @Option(help: ArgumentHelp("Rows to run, comma-separated: w1,w2,w3,w4,cli,memory,scale,dashboard.", valueName: "rows"))
    var only = "w1,w2,w3,w4,cli,memory,scale,dashboard"

    @Option(help: ArgumentHelp("Also write the rows as JSON to this file.", valueName: "file"))
    var json: String?

    /// Runs of the CLI row (for the smoke test: a few instead of 30 or 200).
    @Option(help: .hidden)
    var reps: Int?

    func validate() throws {
        let unknown = only.split(separator: ",").map(String.init).filter { !Self.rowNames.contains($0) }
        if !unknown.isEmpty {
            throw ValidationError("unknown row \(unknown.joined(separator: ", ")) (rows: \(Self.rowNames.joined(separator: ",")))")
        }
        if let reps, reps < 1 { throw ValidationError("--reps must be at least 1") }
    }

    func run() throws {
        let selected = Set(only.split(separator: ",").map(String.init))
        let bin: String
        do { bin = try Bench.binaries() } catch {
            System.log("taskq-bench: \(error)")
            throw ExitCode(2)
        }
        #if DEBUG
        print("warning: taskq-bench is a debug build: its figures mean nothing (swift build -c release --static-swift-stdlib)")
        #endif
        signal(SIGPIPE, SIG_IGN)
        for sig in [SIGINT, SIGTERM] { taskq_install_flag_handler(sig) }
        let bench: Bench
        do { bench = try Bench(bin: bin, quick: quick) } catch {
            System.log("taskq-bench: \(error)")
            throw ExitCode.failure
        }
        defer { bench.cleanup() }
        do {
            bench.say("taskq benchmark, \(localTime()), \(sysconf(Int32(_SC_NPROCESSORS_ONLN))) CPUs, load \(fixed(loadAverage(), 2))")
            if selected.contains("w1") { try bench.w1(20_000) }
            if selected.contains("w2") { try bench.w2(20_000) }
            if selected.contains("w3") { try bench.w3(quick ? 200 : 1000) }
            if selected.contains("w4") { try bench.w4(quick ? 500 : 2000) }
            if selected.contains("cli") { try bench.cli(reps ?? (quick ? 30 : 200)) }
            if selected.contains("memory") {
                try bench.memoryIdle()
                try bench.memoryOneWorker(quick ? 50_000 : 200_000)
            }
            if selected.contains("scale") {
                if quick { try bench.scale(finished: 100_000, queued: 20_000, big: 100_000) }
                else { try bench.scale(finished: 1_000_000, queued: 100_000, big: 1_000_000) }
            }
            if selected.contains("dashboard") { try bench.dashboardW2(20_000) }
            bench.say("load at the end \(fixed(loadAverage(), 2))")
            if let json { try writeBytes(json, Array(bench.rowsJSON().utf8)) }
        } catch {
            System.log("taskq-bench: \(error)")
            throw ExitCode.failure
        }
    }
}

/// The 1-minute load average.
func loadAverage() -> Double {
    var load = [0.0, 0.0, 0.0]
    return getloadavg(&load, 3) > 0 ? load[0] : 0
}

/// Local time as "YYYY-MM-DD HH:MM".
func localTime() -> String {
    var now = time(nil)
    var parts = tm()
    localtime_r(&now, &parts)
    var buf = [CChar](repeating: 0, count: 32)
    strftime(&buf, buf.count, "%Y-%m-%d %H:%M", &parts)
    return String(cString: buf)
}
