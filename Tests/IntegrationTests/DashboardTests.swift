import Testing
import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `taskq dashboard` through the real binary: the JSON APIs against the CLI's
/// own --json, the metrics text, the safety rules and the actions.
@Suite struct DashboardTests {
    /// A scenario with one succeeded, one failed (payload `<script>…`) and one queued task.
    private func seeded() -> (Scenario, failed: Int64, queued: Int64) {
        let s = Scenario()
        s.enqueue("ok", "{\"n\":1}")
        let failed = s.enqueue("boom", "\"<script>alert(1)</script>\"", ["--max-attempts", "1"])
        let r = s.taskq(["supervise", "--workers", "1", "--until-empty", "--handler", "ok=cat", "--handler", "boom=echo broken >&2; exit 3"])
        precondition(r.status == 0, "\(r)")
        let queued = s.enqueue("later", "{\"user\":{\"id\":7}}", ["--queue", "other"])
        return (s, failed, queued)
    }

    @Test func apisPrintTheSameJSONAsTheCLI() throws {
        let (s, failed, _) = seeded()
        defer { s.close() }
        let d = try #require(DashboardProcess(s))
        #expect(d.get("/api/status").body == s.taskq(["status", "--json", "--db", s.db]).stdout)
        #expect(d.get("/api/tasks/\(failed)").body == s.taskq(["show", String(failed), "--json"]).stdout)
        #expect(d.get("/api/tasks").body == s.taskq(["list", "--json"]).stdout)
        #expect(d.get("/api/tasks?state=failed").body == s.taskq(["list", "--state", "failed", "--json"]).stdout)
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

    @Test func metricsAreValidPrometheusTextFromTheRows() throws {
        let (s, _, _) = seeded()
        defer { s.close() }
        let d = try #require(DashboardProcess(s))
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
        #expect(samples["taskq_build_info{version=\"\(s.taskq(["--version"]).out.replacing("taskq ", with: ""))\"}"] == 1)
        // Counters come from the rows: a restarted dashboard publishes the same.
        d.child.signal(SIGTERM)
        _ = d.child.wait(timeout: 10)
        let again = try #require(DashboardProcess(s))
        #expect(again.get("/metrics").body.contains("taskq_attempts_total{queue=\"default\",kind=\"boom\",outcome=\"failed\"} 1"))
        let promtool = ["/usr/bin/promtool", "/usr/local/bin/promtool"].first { (path: String) in access(path, X_OK) == 0 }
        if let promtool {
            let r = run(promtool, ["check", "metrics"], stdin: Array(m.body.utf8))
            #expect(r.status == 0, "\(r)")
        } else {
            print("DashboardTests: promtool not installed; skipped 'promtool check metrics' (apt-get install prometheus)")
        }
    }

    @Test func offLoopbackNeedsATokenAndEveryRequestThenCarriesIt() throws {
        let s = Scenario()
        defer { s.close() }
        s.enqueue("secretkind")
        let r = s.taskq(["dashboard", "--listen", "0.0.0.0:0"])
        #expect(r.status == 64 && r.stderr.contains("--token-file"), "\(r)")
        writeFile(s.dir + "/token", "s3cret-token-value\n")
        let d = try #require(DashboardProcess(s, ["--token-file", s.dir + "/token"]))
        for path in ["/", "/tasks", "/tasks/1", "/api/status", "/api/tasks", "/metrics", "/events", "/failures"] {
            let a = d.get(path)
            #expect(a.status == 401, "\(path): \(a)")
            #expect(!a.body.contains("secretkind"), "\(path) leaks data without the token")
        }
        #expect(d.get("/api/status", ["Authorization": "Bearer wrong"]).status == 401)
        // The trailing newline of the file is not part of the token.
        let ok = d.get("/api/tasks", ["Authorization": "Bearer s3cret-token-value"])
        #expect(ok.status == 200 && ok.body.contains("secretkind"), "\(ok)")
        #expect(d.get("/metrics", ["Authorization": "Bearer s3cret-token-value"]).status == 200)
        // The login form sets an HttpOnly, SameSite=Strict cookie that opens the pages.
        let origin = ["Origin": "http://127.0.0.1:\(d.port)"]
        #expect(d.post("/login", form: [("token", "nope")], origin).status == 401)
        #expect(d.post("/login", form: [("token", "s3cret-token-value")]).status == 403, "a login without Origin is refused")
        let login = d.post("/login", form: [("token", "s3cret-token-value")], origin)
        #expect(login.status == 303, "\(login)")
        let cookie = try #require(login.headers["set-cookie"])
        #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "\(cookie)")
        let session = String(cookie.prefix { $0 != ";" })
        let page = d.get("/tasks", ["Cookie": session])
        #expect(page.status == 200 && page.body.contains("secretkind"))
    }

    @Test func hostHeaderMustBeLoopbackWithoutAToken() throws {
        let s = Scenario()
        defer { s.close() }
        s.enqueue("x")
        let d = try #require(DashboardProcess(s))
        #expect(d.get("/api/status", ["Host": "attacker.example:8080"]).status == 421)
        #expect(d.get("/api/status", ["Host": "localhost:\(d.port)"]).status == 200)
    }

    @Test func retryFromThePageChangesTheRowAndForgedPostsAreRefused() throws {
        let (s, failed, _) = seeded()
        defer { s.close() }
        let d = try #require(DashboardProcess(s))
        let page = d.get("/tasks/\(failed)")
        let csrf = try #require(csrfToken(in: page.body))
        let form = [("csrf", csrf), ("action", "retry"), ("id", String(failed)), ("back", "/tasks/\(failed)")]
        #expect(d.post("/actions", form: form).status == 403, "no Origin, no Sec-Fetch-Site")
        #expect(d.post("/actions", form: form, ["Origin": "http://evil.example"]).status == 403)
        #expect(d.post("/actions", form: form, ["Sec-Fetch-Site": "cross-site"]).status == 403)
        var forged = form
        forged[0].1 = "0000"
        #expect(d.post("/actions", form: forged, ["Origin": "http://127.0.0.1:\(d.port)"]).status == 403)
        #expect(s.sql("SELECT state FROM tasks WHERE id = \(failed)") == "failed")
        let done = d.post("/actions", form: form, ["Origin": "http://127.0.0.1:\(d.port)"])
        #expect(done.status == 303 && done.headers["location"]?.hasPrefix("/tasks/\(failed)?done=retried") == true, "\(done)")
        #expect(s.sql("SELECT state || ':' || attempts FROM tasks WHERE id = \(failed)") == "queued:0")
        #expect(d.get(done.headers["location"] ?? "/").body.contains("<p class=\"notice\">retried 1 task</p>"))
        // Pause and resume a queue; cancel everything a filter matches.
        let pause = [("csrf", csrf), ("action", "pause"), ("queue", "other"), ("back", "/")]
        #expect(d.post("/actions", form: pause, ["Sec-Fetch-Site": "same-origin"]).status == 303)
        #expect(s.sql("SELECT paused_at IS NOT NULL FROM queues WHERE name = 'other'") == "1")
        let confirm = d.get("/tasks/confirm?action=cancel&state=queued")
        #expect(confirm.body.contains("data-count=\"2\""), "\(confirm)")
        let all = [("csrf", csrf), ("action", "cancel-matching"), ("state", "queued"), ("back", "/tasks")]
        #expect(d.post("/actions", form: all, ["Sec-Fetch-Site": "same-origin"]).status == 303)
        #expect(s.count("queued") == 0 && s.count("cancelled") == 2)
    }

    @Test func readOnlyHasNoActionAndHidePayloadsShowsNone() throws {
        let (s, failed, _) = seeded()
        defer { s.close() }
        let d = try #require(DashboardProcess(s, ["--read-only", "--hide-payloads"]))
        for path in ["/", "/tasks", "/tasks/\(failed)", "/failures", "/tasks?state=failed"] {
            let page = d.get(path).body
            #expect(!page.contains("action=\"/actions\"") && !page.contains("name=\"csrf\""), "\(path) offers an action")
            #expect(!page.contains("alert(1)") && !page.contains("\"n\":1"), "\(path) shows a payload")
        }
        let answer = d.post("/actions", form: [("action", "retry"), ("id", String(failed))], ["Sec-Fetch-Site": "same-origin"])
        #expect(answer.status == 403)
        #expect(s.sql("SELECT state FROM tasks WHERE id = \(failed)") == "failed")
        #expect(d.get("/api/tasks/\(failed)").body.contains("\"payload\":null"))
    }

    @Test func databaseTextIsEscaped() throws {
        let (s, failed, _) = seeded()
        defer { s.close() }
        let d = try #require(DashboardProcess(s))
        for path in ["/tasks", "/tasks/\(failed)"] {
            let page = d.get(path)
            #expect(!page.body.contains("<script>alert"), "\(path)")
            #expect(page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "\(path)")
            #expect(page.headers["content-security-policy"]?.contains("default-src 'self'") == true)
        }
    }

    @Test func theEventStreamSaysWhenTheDatabaseChanges() throws {
        let s = Scenario()
        defer { s.close() }
        s.enqueue("x")
        let d = try #require(DashboardProcess(s))
        let fd = d.openEvents()
        defer { close(fd) }
        var seen = ""
        #expect(eventually(timeout: 10) { seen += readAvailable(fd, timeout: 0.1); return seen.contains("retry: 1000") })
        #expect(!seen.contains("event: change"))
        s.enqueue("y")
        #expect(eventually(timeout: 5) { seen += readAvailable(fd, timeout: 0.1); return seen.contains("event: change") }, "\(seen)")
    }

    @Test func schedulesAndMapGroups() throws {
        let s = Scenario()
        defer { s.close() }
        let m = s.taskq(["map", "--group", "nightly", "--workers", "1", "--handler", "cat"], stdin: "a\nb\nc\n")
        #expect(m.status == 0, "\(m)")
        #expect(s.taskq(["schedule", "add", "hourly-report", "--cron", "@hourly", "report"]).status == 0)
        let d = try #require(DashboardProcess(s))
        #expect(d.get("/api/schedules").body == s.taskq(["schedule", "list", "--json"]).stdout)
        let page = d.get("/schedules").body
        #expect(page.contains("hourly-report") && page.contains("never"), "\(page)")
        let maps = d.get("/api/maps").body
        #expect(maps.contains("\"group\":\"nightly\",\"lines\":3,\"queued\":0,\"running\":0,\"succeeded\":3"), "\(maps)")
        #expect(d.get("/maps").body.contains("nightly"))
    }
}
