import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

extension Bench {
    /// W1 and W1b as the harness runs them: `enqueue --lines` into a database made
    /// before the timing (its own `--report` time), one commit per line and per 100
    /// lines; beside the limit program's single-row and 100-row inserts, run
    /// alternately, medians of 3.
    func w1(_ n: Int) throws {
        say("W1: enqueue \(n) tasks, one durable commit per task, and in batches of 100")
        let exe = limitProgram()
        let lines = try payloadFile(n)
        for (batch, kase, name) in [(1, "insert1.normal", "W1"), (100, "insert100.normal", "W1b")] {
            var ours: [Double] = [], theirs: [Double] = []
            for rep in 0..<3 {
                let db = "\(tmp)/w1-\(batch)-\(rep).db"
                try runChecked(taskq, ["init", "--db", db])
                let r = try runChecked(taskq, ["enqueue", "bench-noop", "--lines", "--commit-every", String(batch),
                                               "--quiet", "--report", "--db", db], stdinFile: lines)
                ours.append(Double(n) / (try reportedSeconds(r.result.stdout, of: "taskq enqueue --lines")))
                if let exe { theirs.append(try limitRate(exe, kase, n)) }
            }
            let a = median(ours)
            if !theirs.isEmpty {
                let b = median(theirs)
                row("\(name) limit program, \(kase)", b, "rows/s")
                row("\(name) taskq enqueue --lines", a, "tasks/s", "\(percent(a / b)) of the limit",
                    batch == 1 ? "goal >= 85%" : "goal >= 70%")
            } else {
                row("\(name) taskq enqueue --lines", a, "tasks/s", "(no limit program: BENCH_DIR or cc missing)")
            }
        }
    }

    /// The harness's C limit program (../shared/bench/limit/limit.c beside the package,
    /// or $BENCH_DIR/limit/limit.c) compiled against the system's SQLite, or nil when
    /// the source or a compiler is missing or the compile fails.
    func limitProgram() -> String? {
        let benchDir = getenv("BENCH_DIR").map { String(cString: $0) } ?? "\(packageRoot)/../shared/bench"
        let src = "\(benchDir)/limit/limit.c"
        let exe = "\(tmp)/limit"
        guard access(src, R_OK) == 0, let cc = which("cc"),
              (try? runChecked(cc, ["-O2", "-o", exe, src, "-lsqlite3"])) != nil else { return nil }
        return exe
    }

    /// One run of the limit program's `kase` with `n` rows in a fresh directory: its
    /// rows/s (the fifth field of its line for that case).
    func limitRate(_ exe: String, _ kase: String, _ n: Int) throws -> Double {
        let dir = "\(tmp)/limit-\(kase)"
        Harness.remove(dir)
        mkdir(dir, 0o755)
        let out = try runChecked(exe, ["--dir", dir, "--n", String(n), "--max-seconds", "4", "--only", kase]).result.stdout
        for line in out.split(separator: "\n") {
            let f = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if f.count > 4 && f[1] == kase, let rate = Double(f[4]) { return rate }
        }
        throw BenchError("the limit program printed no \(kase) line: \(out)")
    }
}
