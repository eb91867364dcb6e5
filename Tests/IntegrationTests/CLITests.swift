import Testing
import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The CLI's happy paths, as a user runs them from a shell.
@Suite struct CLITests {
    /// The file's permission bits, or nil if it does not exist.
    private func mode(_ path: String) -> mode_t? {
        var st = stat()
        return stat(path, &st) == 0 ? st.st_mode & 0o777 : nil
    }

    private func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// Parses a command's stdout as JSON (fails the test if it is not).
    private func json(_ r: RunResult) throws -> JSONValue {
        #expect(r.status == 0, "\(r)")
        return try JSON.parse(r.stdout)
    }

    private func isID(_ s: String) -> Bool { !s.isEmpty && s.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } }

    @Test func version() {
        let r = taskq(["--version"])
        #expect(r.status == 0)
        #expect(r.stderr.isEmpty)
        #expect(r.out.hasPrefix("taskq "), "\(r.stdout)")
        let parts = r.out.dropFirst("taskq ".count).split(separator: ".")
        #expect(parts.count == 3 && parts.allSatisfy { isID(String($0)) }, "not a version: \(r.stdout)")
    }

    @Test(arguments: [
        ([String](), ["enqueue", "supervise", "status", "result", "stop", "Exit status", "64", "75", "$TASKQ_DB"]),
        (["enqueue"], ["--queue", "--priority", "--delay", "--at", "--max-attempts", "--timeout", "--batch", "Examples", "1 MiB"]),
        (["supervise"], ["--workers", "--handler", "--queue", "--lease", "--shutdown-timeout", "--backoff-base", "--backoff-cap",
                         "--until-empty", "TASKQ_TASK_ID", "Examples"]),
        (["status"], ["--json", "\"supervisors\"", "\"waiting\"", "Examples"]),
        (["list"], ["--state", "--queue", "--kind", "--limit", "--json", "Examples"]),
        (["show"], ["--json", "\"payload\"", "\"error\"", "Examples"]),
        (["result"], ["--wait", "--timeout", "75", "66", "Examples"]),
        (["stop"], ["--now", "--wait", "taskq.stop", "Examples"]),
        (["init"], ["0600", "--db", "Examples"]),
    ])
    func helpTeaches(_ command: [String], _ mentions: [String]) {
        for args in [command + ["--help"], ["help"] + command] {
            let r = taskq(args)
            #expect(r.status == 0, "\(args): \(r)")
            #expect(r.stderr.isEmpty, "\(args): \(r.stderr)")
            #expect(r.stdout.contains("USAGE: taskq"), "\(args)")
            for m in mentions + ["--db"] { #expect(r.stdout.contains(m), "taskq \(args.joined(separator: " ")) does not mention \(m)") }
        }
    }

    @Test func enqueuePrintsOnlyTheIdAndCreatesTheDatabaseOwnerOnly() {
        let s = Scenario()
        defer { s.close() }
        #expect(!exists(s.db))
        let r = s.taskq(["enqueue", "resize", "{\"file\": \"a.png\"}"])
        #expect(r.status == 0, "\(r)")
        #expect(r.stderr.isEmpty)
        #expect(r.stdout.hasSuffix("\n") && isID(r.out) && !r.out.contains("\n"), "stdout must be the id and a newline: \(r.stdout)")
        #expect(mode(s.db) == 0o600, "database mode \(String(mode(s.db) ?? 0, radix: 8))")
        if exists(s.db + "-wal") { #expect(mode(s.db + "-wal") == 0o600) }
        #expect(s.sql("SELECT kind || ' ' || payload || ' ' || state FROM tasks WHERE id = \(r.out)") == "resize {\"file\": \"a.png\"} queued")
        let second = s.taskq(["enqueue", "resize", "{}"])
        #expect(Int(second.out) == Int(r.out)! + 1)
        #expect(s.taskq(["enqueue", "resize", "{}", "--quiet"]).stdout.isEmpty)
        #expect(s.sqlInt("SELECT count(*) FROM tasks") == 3)
    }

    @Test func databaseChosenByDbOptionThenEnvironmentThenDefault() {
        let s = Scenario()
        defer { s.close() }
        let fromEnv = s.taskq(["enqueue", "t", "1"], env: ["TASKQ_DB": "env.db"])
        #expect(fromEnv.status == 0, "\(fromEnv)")
        #expect(exists(s.dir + "/env.db") && !exists(s.db))
        let fromFlag = s.taskq(["enqueue", "t", "2", "--db", s.dir + "/flag.db"], env: ["TASKQ_DB": "env.db"])
        #expect(fromFlag.status == 0, "\(fromFlag)")
        #expect(mode(s.dir + "/flag.db") == 0o600)
        #expect(sqlite(s.dir + "/flag.db", "SELECT payload FROM tasks") == "2")
        #expect(sqlite(s.dir + "/env.db", "SELECT payload FROM tasks") == "1")
        // An empty $TASKQ_DB counts as unset.
        let fallback = s.taskq(["enqueue", "t", "3"], env: ["TASKQ_DB": ""])
        #expect(fallback.status == 0, "\(fallback)")
        #expect(s.sql("SELECT payload FROM tasks") == "3")
        // Read-only commands follow the same choice.
        #expect(s.taskq(["show", fromEnv.out, "--json"], env: ["TASKQ_DB": "env.db"]).stdout.contains("\"payload\":1"))
    }

    @Test func payloadFromDashFromPipedStdinAndNone() {
        let s = Scenario()
        defer { s.close() }
        let dash = s.taskq(["enqueue", "t", "-"], stdin: "  {\"n\": [1, 2]}\n")
        let piped = s.taskq(["enqueue", "t"], stdin: "\"piped\"\n")
        let none = s.taskq(["enqueue", "t"])              // stdin is /dev/null: null
        let unicode = s.taskq(["enqueue", "t", "{\"name\":\"Zoë 🚀\"}"])
        for r in [dash, piped, none, unicode] { #expect(r.status == 0 && isID(r.out), "\(r)") }
        #expect(s.sql("SELECT payload FROM tasks WHERE id = \(dash.out)") == "{\"n\": [1, 2]}")
        #expect(s.sql("SELECT payload FROM tasks WHERE id = \(piped.out)") == "\"piped\"")
        #expect(s.sql("SELECT payload FROM tasks WHERE id = \(none.out)") == "null")
        #expect(s.sql("SELECT payload FROM tasks WHERE id = \(unicode.out)") == "{\"name\":\"Zoë 🚀\"}")
        // Exactly at the limit is accepted.
        let big = "\"" + String(repeating: "a", count: Queue.maxPayloadBytes - 2) + "\""
        let atLimit = s.taskq(["enqueue", "t", "-"], stdin: big)
        #expect(atLimit.status == 0, "\(atLimit.stderr)")
        #expect(s.sqlInt("SELECT length(payload) FROM tasks WHERE id = \(atLimit.out)") == Queue.maxPayloadBytes)
    }

    @Test func theHandParsedEnqueueMatchesTheFullParser() {
        // Plain `enqueue KIND [PAYLOAD] [--db] [--queue] [--priority] [--json] [--quiet]`
        // is parsed by hand (main.swift); `--synchronous normal` (the default) sends
        // the same command through swift-argument-parser. Both must do the same.
        let s = Scenario()
        defer { s.close() }
        let shapes: [([String], String?)] = [
            (["enqueue", "k", "{\"a\": 1}"], nil),
            (["enqueue", "k", "--queue", "q1", "--priority", "-3", "[1,2]"], nil),
            (["enqueue", "--priority", "9", "k", "--db", s.db, "--json"], nil),
            (["enqueue", "k", "-"], "  \"from stdin\"\n"),
            (["enqueue", "k"], nil),
            (["enqueue", "k", "7", "--quiet"], nil),
        ]
        for (args, stdin) in shapes {
            let fast = s.taskq(args, stdin: stdin)
            let full = s.taskq(args + ["--synchronous", "normal"], stdin: stdin)
            #expect(fast.status == 0 && full.status == 0, "\(args): \(fast) / \(full)")
            #expect(fast.stderr == full.stderr)
            let ids = args.contains("--quiet") ? s.sql("SELECT (max(id) - 1) || ' ' || max(id) FROM tasks").split(separator: " ").map(String.init)
                : [fast.out, full.out].map { $0.replacing(#"{"id": "#, with: "").replacing(#", "existing": false}"#, with: "") }
            #expect(fast.stdout.replacing(ids[0], with: "N") == full.stdout.replacing(ids[1], with: "N"), "\(args)")
            let row = "SELECT kind, queue, priority, payload, max_attempts, timeout_s, on_crash, backoff_base_s, state FROM tasks WHERE id = "
            #expect(s.sql(row + ids[0]) == s.sql(row + ids[1]) && !s.sql(row + ids[0]).isEmpty, "\(args)")
        }
        // Errors are the full parser's, whichever path the command looked like.
        for bad in [["enqueue", "taskq.stop", "1"], ["enqueue", "k", "1", "--priority", "high"], ["enqueue", "k", "1", "2"],
                    ["enqueue", "k", "1", "--db", ""], ["enqueue", "k", "{"]] {
            let r = s.taskq(bad)
            #expect(r.status == 64 || r.status == 65, "\(bad): \(r)")
            #expect(r.stderr.hasPrefix("taskq: "), "\(bad): \(r)")
        }
    }

    @Test func optionsLandInTheRow() {
        let s = Scenario()
        defer { s.close() }
        let r = s.taskq(["enqueue", "report", "{}", "--queue", "nightly", "--priority", "-7", "--delay", "1h",
                         "--max-attempts", "5", "--timeout", "90s"])
        #expect(r.status == 0, "\(r)")
        #expect(s.sql("SELECT queue, priority, max_attempts, timeout_s, state, attempts FROM tasks WHERE id = \(r.out)")
                    == "nightly|-7|5|90.0|queued|0")
        let delay = s.sqlInt("SELECT CAST(round((julianday(run_at) - julianday(created_at)) * 86400) AS INTEGER) FROM tasks WHERE id = \(r.out)")
        #expect(delay == 3600)
        let defaults = s.taskq(["enqueue", "report", "{}"])
        // Without a delay, run_at is '': ready since created_at (migrations/0006).
        #expect(s.sql("SELECT queue, priority, max_attempts, ifnull(timeout_s, 'none'), run_at = '' FROM tasks WHERE id = \(defaults.out)")
                    == "default|0|3|none|1")
        let big = s.taskq(["enqueue", "report", "{}", "--priority", "9223372036854775807", "--delay", "250ms"])
        #expect(big.status == 0, "\(big)")
        #expect(s.sql("SELECT priority FROM tasks WHERE id = \(big.out)") == "9223372036854775807")
    }

    @Test(arguments: [
        ("2030-01-02T03:04:05Z", "2030-01-02T03:04:05.000Z"),
        ("2030-01-02T03:04:05.25Z", "2030-01-02T03:04:05.250Z"),
        ("2030-01-02T03:04:05+02:00", "2030-01-02T01:04:05.000Z"),
        ("2030-01-02T03:04:05-0530", "2030-01-02T08:34:05.000Z"),
        // Local time: TZ=XYZ-3 is UTC+3 (POSIX signs are reversed), no tz database needed.
        ("2030-01-02T03:04:05", "2030-01-02T00:04:05.000Z"),
        ("2030-01-02 03:04", "2030-01-02T00:04:00.000Z"),
        ("2030-01-02", "2030-01-01T21:00:00.000Z"),
    ])
    func atIsStoredAsUTC(_ at: String, _ utc: String) {
        let s = Scenario()
        defer { s.close() }
        let r = s.taskq(["enqueue", "t", "1", "--at", at], env: ["TZ": "XYZ-3"])
        #expect(r.status == 0, "\(r)")
        #expect(s.sql("SELECT run_at FROM tasks WHERE id = \(r.out)") == utc)
    }

    @Test func batchPrintsIdsAndLinesOverrideTheDefaults() {
        let s = Scenario()
        defer { s.close() }
        let lines = """
            {"payload": 1}

            {"kind": "k2", "payload": {"x": [1, "y"]}, "queue": "q9", "priority": 9, "max_attempts": 7, "timeout": 5, "delay": "1h"}
            {"payload": "s", "at": "2030-01-01T00:00:00+01:00"}
            """
        let r = s.taskq(["enqueue", "dflt", "--batch", "--queue", "qd", "--priority", "2", "--max-attempts", "4"], stdin: lines + "\n")
        #expect(r.status == 0, "\(r)")
        #expect(r.stderr.isEmpty)
        let ids = r.out.split(separator: "\n").map(String.init)
        #expect(ids.count == 3 && ids.allSatisfy(isID), "\(r.stdout)")
        guard ids.count == 3, let first = Int(ids[0]) else { return }
        #expect(ids == [String(first), String(first + 1), String(first + 2)])
        #expect(s.sql("SELECT kind, queue, priority, max_attempts, ifnull(timeout_s, '-'), payload FROM tasks WHERE id = \(ids[0])")
                    == "dflt|qd|2|4|-|1")
        #expect(s.sql("SELECT kind, queue, priority, max_attempts, timeout_s, payload FROM tasks WHERE id = \(ids[1])")
                    == "k2|q9|9|7|5.0|{\"x\":[1,\"y\"]}")
        #expect(s.sqlInt("SELECT CAST(round((julianday(run_at) - julianday(created_at)) * 86400) AS INTEGER) FROM tasks WHERE id = \(ids[1])") == 3600)
        #expect(s.sql("SELECT kind, queue, run_at, payload FROM tasks WHERE id = \(ids[2])") == "dflt|qd|2029-12-31T23:00:00.000Z|\"s\"")
        // --lines: one task of KIND per line, ids printed as they commit.
        let streamed = s.taskq(["enqueue", "sq", "--lines"], stdin: "1\n\n[2]\n{\"n\":3}")
        #expect(streamed.status == 0, "\(streamed)")
        #expect(streamed.out.split(separator: "\n").count == 3)
        #expect(s.sql("SELECT group_concat(payload, ' ') FROM (SELECT payload FROM tasks WHERE kind = 'sq' ORDER BY id)") == "1 [2] {\"n\":3}")
    }

    /// A queue with one succeeded, one failed and one queued task.
    private func finishedScenario() throws -> (Scenario, ok: String, failed: String, queued: String) {
        let s = Scenario()
        s.script("fail.sh", "cat > /dev/null; echo 'disk on fire' >&2; exit 3")
        let ok = s.taskq(["enqueue", "echo", "{\"v\": \"ok\"}"]).out
        let failed = s.taskq(["enqueue", "boom", "null", "--max-attempts", "1", "--queue", "risky"]).out
        let queued = s.taskq(["enqueue", "nobody-handles-this", "[]"]).out
        let sup = s.supervise(["--workers", "1", "--handler", "echo=cat", "--handler", "boom=./fail.sh", "--until-empty"])
        let code = sup.wait(timeout: 30)
        try #require(code == 0, "supervise --until-empty: \(String(describing: code)) \(sup.stderrSoFar)")
        try #require([ok, failed, queued].allSatisfy(isID))
        return (s, ok, failed, queued)
    }

    @Test func resultExitCodes() throws {
        let (s, ok, failed, queued) = try finishedScenario()
        defer { s.close() }
        let r0 = s.taskq(["result", ok])
        #expect(r0.status == 0, "\(r0)")
        #expect(r0.stdout == "{\"v\": \"ok\"}", "the handler's stdout, byte for byte")
        #expect(r0.stderr.isEmpty)
        let r1 = s.taskq(["result", failed])
        #expect(r1.status == 1, "\(r1)")
        #expect(r1.stdout.isEmpty)
        let line = r1.stderr.split(separator: "\n").first.map(String.init) ?? ""
        #expect(line.contains("task \(failed) failed after 1 attempt"), "\(line)")
        #expect(line.contains("exit status 3") && r1.stderr.contains("disk on fire"), "\(r1.stderr)")
        let r75 = s.taskq(["result", queued])
        #expect(r75.status == 75, "\(r75)")
        #expect(r75.stderr.contains("task \(queued) is queued, not finished yet"))
        let r66 = s.taskq(["result", "12345"])
        #expect(r66.status == 66, "\(r66)")
        #expect(r66.stderr.contains("no task 12345"))
        // --wait on a finished task answers at once.
        #expect(s.taskq(["result", ok, "--wait"], timeout: 10).status == 0)
    }

    @Test func resultWaitTimesOutWith75() {
        let s = Scenario()
        defer { s.close() }
        let id = s.enqueue("t")
        let start = System.monotonic()
        let r = s.taskq(["result", String(id), "--wait", "--timeout", "0.5"], timeout: 20)
        let took = System.monotonic() - start
        #expect(r.status == 75, "\(r)")
        #expect(r.stderr.hasPrefix("taskq: task \(id) is still queued after waiting"), "\(r.stderr)")
        #expect(took >= 0.5 && took < 3, "took \(took) s")
    }

    @Test func resultWaitReturnsWhenASupervisorFinishesTheTask() {
        let s = Scenario()
        defer { s.close() }
        s.script("h.sh", "read n; echo $((n * n))")
        let id = s.enqueue("square", "7")
        let waiter = Child(Harness.taskq, ["result", String(id), "--wait", "--timeout", "30"], cwd: s.dir, captureOutput: true)
        let sup = s.supervise(["--workers", "1", "--handler", "square=./h.sh", "--until-empty"])
        let r = waiter.finish(timeout: 40)
        #expect(r.status == 0, "\(r) \(sup.stderrSoFar)")
        #expect(r.stdout == "49\n")
        #expect(sup.wait(timeout: 30) == 0)
    }

    @Test func statusTextAndJSON() throws {
        let (s, _, _, _) = try finishedScenario()
        defer { s.close() }
        _ = s.taskq(["enqueue", "later", "1", "--queue", "risky", "--delay", "1h"])
        let text = s.taskq(["status"])
        #expect(text.status == 0, "\(text)")
        for w in ["QUEUE", "QUEUED", "SUCCEEDED", "FAILED", "WAITING", "default", "risky", "no supervisor is running"] {
            #expect(text.stdout.contains(w), "status lacks \(w): \(text.stdout)")
        }
        let v = try json(s.taskq(["status", "--json"]))
        #expect(v["database"]?.stringValue?.hasSuffix("taskq.db") == true)
        let queues = v["queues"]?.arrayValue ?? []
        #expect(queues.map { $0["queue"]?.stringValue ?? "?" } == ["default", "risky"])
        for q in queues {
            for k in ["queue", "queued", "waiting", "running", "succeeded", "failed", "cancelled"] {
                #expect(q[k] != nil, "queue object lacks \(k)")
            }
        }
        let risky = queues.first { $0["queue"]?.stringValue == "risky" }
        #expect(risky?["failed"]?.intValue == 1)
        #expect(risky?["queued"]?.intValue == 1)
        #expect(risky?["waiting"]?.intValue == 1)
        let totals = v["totals"]
        #expect(totals?["succeeded"]?.intValue == 1)
        #expect(totals?["failed"]?.intValue == 1)
        #expect(totals?["queued"]?.intValue == 2)
        #expect(totals?["running"]?.intValue == 0)
        #expect(v["supervisors"]?.arrayValue?.isEmpty == true)
    }

    @Test func statusJSONListsALiveSupervisorAndItsWorkers() throws {
        let s = Scenario()
        defer { s.close() }
        let sup = s.supervise(["--workers", "2", "--handler", "t=cat", "--queue", "q1"])
        var v: JSONValue = .null
        #expect(eventually(timeout: 20) {
            v = (try? JSON.parse(s.taskq(["status", "--json"]).stdout)) ?? .null
            return v["supervisors"]?.arrayValue?.first?["workers"]?.arrayValue?.count == 2
        }, "\(sup.stderrSoFar)")
        let sv = v["supervisors"]?.arrayValue?.first
        #expect(sv?["pid"]?.intValue == Int64(sup.pid))
        #expect(sv?["kinds"]?.arrayValue == [.string("t")])
        #expect(sv?["queues"]?.arrayValue == [.string("q1")])
        for k in ["id", "host", "started_at", "heartbeat_at"] { #expect(sv?[k] != nil, "supervisor lacks \(k)") }
        #expect(s.taskq(["status"]).stdout.contains("supervisor pid \(sup.pid)"))
        sup.signal(SIGTERM)
        #expect(sup.wait(timeout: 30) == 0)
    }

    @Test func listFiltersAndJSON() throws {
        let (s, ok, failed, queued) = try finishedScenario()
        defer { s.close() }
        let all = s.taskq(["list"])
        #expect(all.status == 0, "\(all)")
        let rows = all.out.split(separator: "\n")
        #expect(rows.first?.hasPrefix("ID") == true && rows.count == 4, "\(all.stdout)")
        // Newest first.
        #expect(rows.dropFirst().map { String($0.prefix { $0 != " " }) } == [queued, failed, ok])
        // The queued and succeeded rows have no error: no blanks after their last cell.
        #expect(!all.stdout.split(separator: "\n").contains { $0.hasSuffix(" ") }, "\(all.stdout)")
        let failedOnly = try json(s.taskq(["list", "--state", "failed", "--json"]))
        #expect(failedOnly.arrayValue?.map { $0["id"]?.intValue } == [Int64(failed)])
        #expect(failedOnly.arrayValue?.first?["error"]?.stringValue?.contains("disk on fire") == true)
        let two = try json(s.taskq(["list", "--state", "succeeded", "--state", "queued", "--json"]))
        #expect(two.arrayValue?.count == 2)
        #expect(try json(s.taskq(["list", "--queue", "risky", "--json"])).arrayValue?.count == 1)
        #expect(try json(s.taskq(["list", "--kind", "echo", "--json"])).arrayValue?.first?["result"]?.stringValue == "{\"v\": \"ok\"}")
        #expect(try json(s.taskq(["list", "--limit", "2", "--json"])).arrayValue?.count == 2)
        #expect(try json(s.taskq(["list", "--kind", "none-such", "--json"])).arrayValue == [])
        #expect(s.taskq(["list", "--kind", "none-such"]).out == "no tasks")
    }

    @Test func showTextAndJSON() throws {
        let (s, ok, failed, _) = try finishedScenario()
        defer { s.close() }
        let text = s.taskq(["show", ok])
        #expect(text.status == 0, "\(text)")
        for w in ["id:", "kind:", "echo", "state:", "succeeded", "attempts:", "1/3", "payload:", "result:"] {
            #expect(text.stdout.contains(w), "show lacks \(w): \(text.stdout)")
        }
        let v = try json(s.taskq(["show", ok, "--json"]))
        for k in ["id", "kind", "queue", "state", "priority", "payload", "run_at", "attempts", "max_attempts", "timeout", "owner",
                  "created_at", "started_at", "finished_at", "result", "error"] {
            #expect(v[k] != nil, "show --json lacks \(k)")
        }
        #expect(v["id"]?.intValue == Int64(ok))
        #expect(v["payload"]?["v"]?.stringValue == "ok", "payload is the JSON itself, not a string")
        #expect(v["state"]?.stringValue == "succeeded")
        #expect(v["result"]?.stringValue == "{\"v\": \"ok\"}")
        #expect(v["error"]?.isNull == true)
        #expect(v["timeout"]?.isNull == true)
        #expect(v["finished_at"]?.stringValue?.hasSuffix("Z") == true)
        let f = try json(s.taskq(["show", failed, "--json"]))
        #expect(f["state"]?.stringValue == "failed")
        #expect(f["error"]?.stringValue?.contains("exit status 3") == true)
        #expect(f["queue"]?.stringValue == "risky")
    }

    @Test func initCreatesAnOwnerOnlyDatabaseAndIsIdempotent() {
        let s = Scenario()
        defer { s.close() }
        let r = s.taskq(["init"])
        #expect(r.status == 0, "\(r)")
        #expect(r.out.hasPrefix("initialized") && r.out.contains("taskq.db"))
        #expect(mode(s.db) == 0o600)
        #expect(s.sql("SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('tasks', 'processes', 'taskq_migrations') ORDER BY name")
                    == "processes\ntaskq_migrations\ntasks")
        #expect(s.sql("PRAGMA journal_mode") == "wal")
        s.enqueue("t")
        let again = s.taskq(["init"])
        #expect(again.status == 0, "\(again)")
        #expect(s.sqlInt("SELECT count(*) FROM tasks") == 1, "init must not touch an existing queue")
        // Read-only commands work on what init made.
        #expect(s.taskq(["status"]).status == 0)
        let other = s.taskq(["init", "--db", s.dir + "/other.db", "--synchronous", "full"])
        #expect(other.status == 0, "\(other)")
        #expect(mode(s.dir + "/other.db") == 0o600)
    }
}
