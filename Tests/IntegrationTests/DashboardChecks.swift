import Testing
import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// What `taskq dashboard` must do on every store, run on SQLite by
/// `DashboardTests` and on PostgreSQL by `DashboardPostgresTests`: the JSON APIs
/// against the CLI's own --json, the overview against `status --json`, the
/// metrics text, the actions, read-only mode and the event stream.
enum DashboardChecks {
    /// A queue with one succeeded, one failed (payload `<script>…`) and one queued task.
    static func seeded(_ backend: DashboardBackend) -> (DashboardQueue, failed: Int64, queued: Int64) {
        let q = DashboardQueue(backend)
        q.enqueue("ok", "{\"n\":1}")
        let failed = q.enqueue("boom", "\"<script>alert(1)</script>\"", ["--max-attempts", "1"])
        let r = q.taskq(["supervise", "--workers", "1", "--until-empty", "--handler", "ok=cat", "--handler", "boom=echo broken >&2; exit 3"])
        precondition(r.status == 0, "\(r)")
        let queued = q.enqueue("later", "{\"user\":{\"id\":7}}", ["--queue", "other"])
        return (q, failed, queued)
    }

    static func apis(_ backend: DashboardBackend) throws {
        let (q, failed, _) = seeded(backend)
        defer { q.close() }
        let d = try #require(q.dashboard())
        #expect(d.get("/api/status").body == q.taskq(["status", "--json"]).stdout)
        #expect(d.get("/api/tasks/\(failed)").body == q.taskq(["show", String(failed), "--json"]).stdout)
        #expect(d.get("/api/tasks").body == q.taskq(["list", "--json"]).stdout)
        #expect(d.get("/api/tasks?state=failed").body == q.taskq(["list", "--state", "failed", "--json"]).stdout)
        #expect(d.get("/api/tasks?state=queued").body == q.taskq(["list", "--state", "queued", "--json"]).stdout)
        let groups = d.get("/api/failures").body
        #expect(groups.contains("\"kind\":\"boom\"") && groups.contains("\"count\":1"), "\(groups)")
        #expect(d.get("/api/tasks/999").status == 404)
        // Search in the payload by JSON path, and in the error text.
        let found = d.get("/api/tasks?path=%24.user.id&value=7").body
        #expect(found.contains("\"kind\":\"later\"") && !found.contains("\"kind\":\"ok\""), "\(found)")
        #expect(d.get("/api/tasks?error=broken").body.contains("\"id\":\(failed)"))
        d.child.signal(SIGTERM)
        #expect(d.child.wait(timeout: 10) == 0, "SIGTERM stops it cleanly")
    }

    /// The overview's counts per queue and state are `status --json`'s, also after
    /// a retry by another process (of a task whose range was already counted).
    static func overviewCounts(_ backend: DashboardBackend) throws {
        let (q, failed, queued) = seeded(backend)
        defer { q.close() }
        // Every task finished: their range is settled after the first pass.
        #expect(q.taskq(["cancel", String(queued)]).status == 0)
        let d = try #require(q.dashboard())
        func matchesStatus() throws {
            let status = q.taskq(["status", "--json"]).stdout
            for queue in ["default", "other"] {
                for (field, key) in [("ready", "queued"), ("running", "running"), ("succeeded", "succeeded"), ("failed", "failed"),
                                     ("cancelled", "cancelled")] {
                    let want = try #require(jsonNumber(status, queue: queue, key: key), "\(status)")
                    var page = ""
                    #expect(eventually(timeout: 20) {
                        page = d.get("/").body
                        return cell(page, queue: queue, field: field) == want
                    }, "\(queue) \(field): want \(want), page says \(cell(page, queue: queue, field: field) ?? -1)")
                }
            }
        }
        try matchesStatus()
        #expect(q.taskq(["retry", String(failed)]).status == 0)
        try matchesStatus()
        #expect(cell(d.get("/").body, queue: "default", field: "failed") == 0)
    }

    static func metrics(_ backend: DashboardBackend) throws {
        let (q, _, _) = seeded(backend)
        defer { q.close() }
        let d = try #require(q.dashboard())
        let m = d.get("/metrics")
        #expect(m.status == 200 && m.headers["content-type"]?.hasPrefix("text/plain; version=0.0.4") == true)
        var types: [String: String] = [:]
        var samples: [String: Double] = [:]
        for line in m.body.split(separator: "\n") {
            if line.hasPrefix("# TYPE ") {
                let f = line.split(separator: " ")
                types[String(f[2])] = String(f[3])
                continue
            }
            if line.hasPrefix("#") { continue }
            let parts = line.split(separator: " ")
            #expect(parts.count == 2, "\(line)")
            samples[String(parts[0])] = Double(parts[1])
            #expect(!line.contains("id=\"") && !line.contains("pid=\"") && !line.contains("broken"), "no ids or error texts as labels: \(line)")
        }
        for (name, type) in types where type == "counter" { #expect(name.hasSuffix("_total"), "\(name)") }
        #expect(samples["taskq_tasks{queue=\"default\",state=\"failed\"}"] == 1)
        #expect(samples["taskq_tasks{queue=\"other\",state=\"queued\"}"] == 1)
        #expect(samples["taskq_attempts_total{queue=\"default\",kind=\"boom\",outcome=\"failed\"}"] == 1)
        #expect(samples["taskq_attempts_total{queue=\"default\",kind=\"ok\",outcome=\"succeeded\"}"] == 1)
        #expect(samples["taskq_tasks_enqueued_total{queue=\"other\",kind=\"later\"}"] == 1)
        #expect(samples["taskq_attempt_duration_seconds_count{queue=\"default\",kind=\"ok\"}"] == 1)
        #expect(samples["taskq_attempt_duration_seconds_bucket{queue=\"default\",kind=\"ok\",le=\"+Inf\"}"] == 1)
        #expect(samples["taskq_task_wait_seconds_count{queue=\"default\"}"] == 2)
        #expect(samples["taskq_build_info{version=\"\(q.taskq(["--version"]).out.replacing("taskq ", with: ""))\"}"] == 1)
        if backend == .sqlite {
            #expect((samples["taskq_database_size_bytes{file=\"db\"}"] ?? 0) > 0, "\(m.body)")
        } else {
            #expect(types["taskq_database_size_bytes"] == nil, "no file to measure on PostgreSQL")
            #expect(samples.contains { $0.key.hasPrefix("taskq_postgres_database_size_bytes{database=") && $0.value > 0 }, "\(m.body)")
            #expect((samples["taskq_postgres_table_size_bytes{table=\"tasks\"}"] ?? 0) > 0, "\(m.body)")
        }
        // Counters come from the rows: a restarted dashboard publishes the same.
        d.child.signal(SIGTERM)
        _ = d.child.wait(timeout: 10)
        let again = try #require(q.dashboard())
        #expect(again.get("/metrics").body.contains("taskq_attempts_total{queue=\"default\",kind=\"boom\",outcome=\"failed\"} 1"))
        // A scrape counts what finished just before it, though nobody looked since.
        q.enqueue("ok", "{\"n\":2}")
        #expect(q.taskq(["supervise", "--workers", "1", "--until-empty", "--handler", "ok=cat"]).status == 0)
        #expect(again.get("/metrics").body.contains("taskq_attempts_total{queue=\"default\",kind=\"ok\",outcome=\"succeeded\"} 2"))
        let promtool = ["/usr/bin/promtool", "/usr/local/bin/promtool"].first { (path: String) in access(path, X_OK) == 0 }
        if let promtool {
            let r = run(promtool, ["check", "metrics"], stdin: Array(m.body.utf8))
            #expect(r.status == 0, "\(r)")
        } else {
            print("DashboardChecks: promtool not installed; skipped 'promtool check metrics' (apt-get install prometheus)")
        }
    }

    static func actions(_ backend: DashboardBackend) throws {
        let (q, failed, _) = seeded(backend)
        defer { q.close() }
        let d = try #require(q.dashboard())
        let page = d.get("/tasks/\(failed)")
        let csrf = try #require(csrfToken(in: page.body))
        let form = [("csrf", csrf), ("action", "retry"), ("id", String(failed)), ("back", "/tasks/\(failed)")]
        #expect(d.post("/actions", form: form).status == 403, "no Origin, no Sec-Fetch-Site")
        #expect(d.post("/actions", form: form, ["Origin": "http://evil.example"]).status == 403)
        #expect(d.post("/actions", form: form, ["Sec-Fetch-Site": "cross-site"]).status == 403)
        var forged = form
        forged[0].1 = "0000"
        #expect(d.post("/actions", form: forged, ["Origin": "http://127.0.0.1:\(d.port)"]).status == 403)
        #expect(q.sql("SELECT state FROM tasks WHERE id = \(failed)") == "failed")
        let done = d.post("/actions", form: form, ["Origin": "http://127.0.0.1:\(d.port)"])
        #expect(done.status == 303 && done.headers["location"]?.hasPrefix("/tasks/\(failed)?done=retried") == true, "\(done)")
        #expect(q.sql("SELECT state || ':' || attempts FROM tasks WHERE id = \(failed)") == "queued:0")
        #expect(d.get(done.headers["location"] ?? "/").body.contains("<p class=\"notice\">retried 1 task</p>"))
        #expect(eventually(timeout: 20) { cell(d.get("/").body, queue: "default", field: "failed") == 0 }, "the overview counts the retry")
        // Pause and resume a queue; cancel everything a filter matches.
        let pause = [("csrf", csrf), ("action", "pause"), ("queue", "other"), ("back", "/")]
        #expect(d.post("/actions", form: pause, ["Sec-Fetch-Site": "same-origin"]).status == 303)
        #expect(q.sql("SELECT count(*) FROM queues WHERE name = 'other' AND paused_at IS NOT NULL") == "1")
        let confirm = d.get("/tasks/confirm?action=cancel&state=queued")
        #expect(confirm.body.contains("data-count=\"2\""), "\(confirm)")
        let all = [("csrf", csrf), ("action", "cancel-matching"), ("state", "queued"), ("back", "/tasks")]
        #expect(d.post("/actions", form: all, ["Sec-Fetch-Site": "same-origin"]).status == 303)
        #expect(q.count("queued") == 0 && q.count("cancelled") == 2)
    }

    static func readOnly(_ backend: DashboardBackend) throws {
        let (q, failed, _) = seeded(backend)
        defer { q.close() }
        let d = try #require(q.dashboard(["--read-only", "--hide-payloads"]))
        for path in ["/", "/tasks", "/tasks/\(failed)", "/failures", "/tasks?state=failed"] {
            let page = d.get(path).body
            #expect(!page.contains("action=\"/actions\"") && !page.contains("name=\"csrf\""), "\(path) offers an action")
            #expect(!page.contains("alert(1)") && !page.contains("\"n\":1"), "\(path) shows a payload")
        }
        let answer = d.post("/actions", form: [("action", "retry"), ("id", String(failed))], ["Sec-Fetch-Site": "same-origin"])
        #expect(answer.status == 403)
        #expect(q.sql("SELECT state FROM tasks WHERE id = \(failed)") == "failed")
        #expect(d.get("/api/tasks/\(failed)").body.contains("\"payload\":null"))
    }

    /// Every page, API and the metrics, as a browser and a scraper would read them.
    /// A `--read-only` dashboard on `q`: every page, API and download opened, then
    /// stopped (the read-only tests compare the database before and after).
    static func browseReadOnly(_ q: DashboardQueue, failed: Int64) throws {
        let d = try #require(q.dashboard(["--read-only"]))
        browseEverything(d, task: failed)
        browseEverything(d, task: 1)
        #expect(d.get("/tasks/1/result").status == 200)
        d.child.signal(SIGTERM)
        #expect(d.child.wait(timeout: 10) == 0)
    }

    static func browseEverything(_ d: DashboardProcess, task: Int64) {
        for path in ["/", "/tasks", "/tasks?state=failed", "/tasks?state=queued", "/tasks/\(task)", "/failures",
                     "/schedules", "/maps", "/api/status", "/api/tasks", "/api/tasks/\(task)", "/api/failures", "/api/schedules",
                     "/api/maps", "/metrics"] {
            let a = d.get(path)
            #expect(a.status == 200, "\(path): \(a)")
        }
    }

    /// An enqueue, and a task finishing (which no PostgreSQL worker announces),
    /// each reach an open event stream within `within` seconds.
    static func events(_ backend: DashboardBackend, within: Double) throws {
        let q = DashboardQueue(backend)
        defer { q.close() }
        q.enqueue("x")
        let d = try #require(q.dashboard())
        let fd = d.openEvents()
        defer { close(fd) }
        var seen = ""
        #expect(eventually(timeout: 10) { seen += readAvailable(fd, timeout: 0.1); return seen.contains("retry: 1000") })
        if backend == .sqlite {
            // (On PostgreSQL the probe sees every transaction of the server, other tests' too.)
            #expect(!seen.contains("event: change"))
        }
        func changes() -> Int { seen.ranges(of: "event: change").count }
        q.enqueue("y")
        #expect(eventually(timeout: within) { seen += readAvailable(fd, timeout: 0.05); return seen.contains("event: change") }, "\(seen)")
        // A worker that finishes the tasks: the finishes are seen too.
        let sup = q.s.supervise(["--workers", "1", "--handler", "x=true", "--handler", "y=true"], env: ["TASKQ_DB": q.db])
        #expect(eventually(timeout: 30) { q.count("succeeded") == 2 })
        sup.signal(SIGTERM)
        #expect(sup.wait(timeout: 30) == 0)
        // Then, once all is quiet, a change by hand: no one announces it.
        _ = eventually(timeout: 3) { seen += readAvailable(fd, timeout: 0.05); return false }
        let before = changes()
        q.sql("UPDATE tasks SET priority = 5 WHERE kind = 'x'")
        #expect(eventually(timeout: within) { seen += readAvailable(fd, timeout: 0.05); return changes() > before }, "\(seen)")
    }

    static func schedulesAndMaps(_ backend: DashboardBackend) throws {
        let q = DashboardQueue(backend)
        defer { q.close() }
        let m = q.taskq(["map", "--group", "nightly", "--workers", "1", "--handler", "cat"], stdin: "a\nb\nc\n")
        #expect(m.status == 0, "\(m)")
        #expect(q.taskq(["schedule", "add", "hourly-report", "--cron", "@hourly", "report"]).status == 0)
        let d = try #require(q.dashboard())
        #expect(d.get("/api/schedules").body == q.taskq(["schedule", "list", "--json"]).stdout)
        let page = d.get("/schedules").body
        #expect(page.contains("hourly-report") && page.contains("never"), "\(page)")
        let maps = d.get("/api/maps").body
        #expect(maps.contains("\"group\":\"nightly\",\"lines\":3,\"queued\":0,\"running\":0,\"succeeded\":3"), "\(maps)")
        #expect(d.get("/maps").body.contains("nightly"))
    }

    /// The number in an overview cell (`data-queue`, `data-field`).
    static func cell(_ page: String, queue: String, field: String) -> Int? {
        guard let r = page.firstRange(of: "data-queue=\"\(queue)\" data-field=\"\(field)\">") else { return nil }
        let rest = page[r.upperBound...]
        let text = rest.hasPrefix("<a") ? rest.drop { $0 != ">" }.dropFirst() : rest
        return Int(text.prefix { $0.isNumber || $0 == "," }.filter(\.isNumber))
    }

    /// `key`'s number in `queue`'s object of `status --json`.
    static func jsonNumber(_ json: String, queue: String, key: String) -> Int? {
        guard let r = json.firstRange(of: "{\"queue\":\"\(queue)\"") else { return nil }
        let object = json[r.upperBound...].prefix { $0 != "}" }
        guard let k = object.firstRange(of: "\"\(key)\":") else { return nil }
        return Int(object[k.upperBound...].prefix { $0.isNumber })
    }
}
