import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The package's root, from this file's path (Benchmarks/taskq-bench/Bench.swift):
/// the harness's limit program is looked for at ../shared/bench beside it.
let packageRoot: String = {
    var path = #filePath
    for _ in 0..<3 { path = String(path[..<path.lastIndex(of: "/")!]) }
    return path
}()

/// One printed figure: what it is, its value and unit, what it is compared with in
/// the same run, and a note (the goal, counts).
struct Row {
    var name: String
    var value: Double
    var unit: String
    var compared: String
    var note: String
}

/// One run of the benchmark: where the binaries are, its temporary directory, the
/// rows printed so far and the background processes to stop at the end.
final class Bench {
    let bin: String
    let tmp: String
    let quick: Bool
    let sqlite3: String
    private(set) var rows: [Row] = []
    private var background: [Child] = []

    var taskq: String { bin + "/taskq" }
    var worker: String { bin + "/taskq-bench-worker" }

    init(bin: String, quick: Bool) throws {
        self.bin = bin
        self.quick = quick
        sqlite3 = try required("sqlite3", "apt-get install sqlite3")
        tmp = Harness.tempDir("taskq-bench")
    }

    /// The directory holding `taskq` and `taskq-bench-worker`: $TASKQ_BIN_DIR, else
    /// this executable's own directory (.build/release beside a release build).
    static func binaries() throws -> String {
        let dir = Harness.binDir
        let missing = ["taskq", "taskq-bench-worker"].filter { access("\(dir)/\($0)", X_OK) != 0 }
        if !missing.isEmpty {
            throw BenchError("""
                \(missing.map { "\(dir)/\($0)" }.joined(separator: " and ")) not found. Build them with
                  swift build -c release --static-swift-stdlib
                in the package (then run .build/release/taskq-bench), or point TASKQ_BIN_DIR at them.
                """)
        }
        return dir
    }

    // MARK: output

    /// Prints a line at once (stdout may be a pipe or a file).
    func say(_ line: String) {
        print(line)
        fflush(stdout)
    }

    /// Records and prints a row: `  name value unit compared note`, as the Python driver did.
    func row(_ name: String, _ value: Double, _ unit: String, _ compared: String = "", _ note: String = "") {
        rows.append(Row(name: name, value: value, unit: unit, compared: compared, note: note))
        say("  \(padRight(name, 44)) \(padLeft(fixed(value, 2, grouped: true), 12)) \(padRight(unit, 8)) \(compared) \(note)")
    }

    /// The rows as a JSON list of {"row", "value", "unit", "compared", "note"} (indent 1).
    func rowsJSON() -> String {
        if rows.isEmpty { return "[]" }
        let items = rows.map { r in
            " {\n  \"row\": \(JSON.quote(r.name)),\n  \"value\": \(r.value.isFinite ? "\(r.value)" : "null"),\n"
                + "  \"unit\": \(JSON.quote(r.unit)),\n  \"compared\": \(JSON.quote(r.compared)),\n"
                + "  \"note\": \(JSON.quote(r.note))\n }"
        }
        return "[\n" + items.joined(separator: ",\n") + "\n]"
    }

    // MARK: processes

    /// Starts a long-running process (a supervisor) in its own session, output to
    /// files in the temp dir; stopped by `stop` or, failing that, by `cleanup`.
    func start(_ path: String, _ args: [String], env: [String: String] = [:]) -> Child {
        let c = Child(path, args, env: env, logDir: tmp, newSession: true)
        background.append(c)
        return c
    }

    /// Sends `sig` and waits up to `timeout` for the exit.
    func stop(_ c: Child, _ sig: Int32, timeout: Double) throws {
        c.signal(sig)
        if c.wait(timeout: timeout) == nil {
            c.kill9()
            throw BenchError("pid \(c.pid) did not stop within \(Int(timeout)) s of signal \(sig): \(c.stderrSoFar)")
        }
    }

    /// Stops whatever still runs (SIGTERM, then SIGKILL after 10 s; workers die with
    /// their supervisor) and removes the temp dir.
    func cleanup() {
        for c in background where !c.exited {
            c.signal(SIGTERM)
            if c.wait(timeout: 10) == nil { c.kill9() }
        }
        background = []
        Harness.remove(tmp)
    }

    // MARK: the database

    /// Runs SQL with the sqlite3 shell (waiting up to 10 s for locks); its output, trimmed.
    func sql(_ db: String, _ query: String) throws -> String {
        try runChecked(sqlite3, ["-cmd", ".timeout 10000", db, query]).result.out.trimmingCharacters(in: " \n")
    }

    /// How many tasks of `db` succeeded.
    func succeeded(_ db: String) throws -> Int {
        Int(try sql(db, "SELECT count(*) FROM tasks WHERE state='succeeded'")) ?? -1
    }

    /// Writes `n` payload lines (`{"seq":i,"enq_ns":now,"pad":"x…"}`, 50 pad bytes)
    /// for `enqueue --lines` to a file; returns its path.
    func payloadFile(_ n: Int, start: Int = 0) throws -> String {
        let path = "\(tmp)/lines-\(start)-\(n)"
        let pad = String(repeating: "x", count: 50)
        var out: [UInt8] = []
        out.reserveCapacity(n * 90)
        for i in start..<(start + n) {
            out += "{\"seq\":\(i),\"enq_ns\":\(wallNanos()),\"pad\":\"\(pad)\"}\n".utf8
        }
        try writeBytes(path, out)
        return path
    }

    /// `taskq enqueue bench-noop --lines` of `n` payloads, one commit per
    /// `commitEvery`; its wall time (the lines are written to a file before it starts).
    @discardableResult
    func enqueueLines(_ db: String, _ n: Int, commitEvery: Int = 100, start: Int = 0) throws -> Double {
        let lines = try payloadFile(n, start: start)
        defer { unlink(lines) }
        return try runChecked(taskq, ["enqueue", "bench-noop", "--lines", "--commit-every", String(commitEvery),
                                      "--quiet", "--db", db], stdinFile: lines).seconds
    }

    /// The elapsed_s of a `--report` line (the last line of `output`).
    func reportedSeconds(_ output: String, of what: String) throws -> Double {
        let last = output.split(separator: "\n").last.map(String.init) ?? ""
        guard let s = (try? JSON.parse(last))?["elapsed_s"]?.doubleValue, s > 0 else {
            throw BenchError("\(what) printed no report: \(output)")
        }
        return s
    }

    /// Drains `db` with `taskq-bench-worker --until-empty --report`: the seconds it reports.
    func drain(_ db: String, workers: Int) throws -> Double {
        let r = try runChecked(worker, ["--db", db, "--workers", String(workers), "--until-empty", "--report"])
        return try reportedSeconds(r.result.stdout, of: "taskq-bench-worker")
    }
}
