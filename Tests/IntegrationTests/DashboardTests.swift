import Testing
import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `taskq dashboard` through the real binary on SQLite: the checks every store
/// passes (`DashboardChecks`), the safety rules, and read-only mode's promise
/// that the file stays as it was.
@Suite struct DashboardTests {
    @Test func apisPrintTheSameJSONAsTheCLI() throws { try DashboardChecks.apis(.sqlite) }
    @Test func overviewCountsAreStatusCounts() throws { try DashboardChecks.overviewCounts(.sqlite) }
    @Test func metricsAreValidPrometheusTextFromTheRows() throws { try DashboardChecks.metrics(.sqlite) }
    @Test func retryFromThePageChangesTheRowAndForgedPostsAreRefused() throws { try DashboardChecks.actions(.sqlite) }
    @Test func readOnlyHasNoActionAndHidePayloadsShowsNone() throws { try DashboardChecks.readOnly(.sqlite) }
    @Test func theEventStreamSaysWhenTheDatabaseChanges() throws { try DashboardChecks.events(.sqlite, within: 5) }
    @Test func schedulesAndMapGroups() throws { try DashboardChecks.schedulesAndMaps(.sqlite) }

    /// A filter that matches only an old task reads the newest 100,000 rows, not
    /// the whole table, and links on to the rows below them, where the task shows.
    @Test func aRareFilterReadsTheNewestRowsAndLinksFurtherBack() throws {
        let q = DashboardQueue(.sqlite)
        defer { q.close() }
        let rare = q.enqueue("rare", #"{"old":true}"#)
        let lines = String(repeating: "1\n", count: 100_010)
        #expect(q.taskq(["enqueue", "common", "--lines", "--commit-every", "5000", "--quiet"], stdin: lines).status == 0)
        let d = try #require(q.dashboard())
        let first = d.get("/tasks?kind=rare")
        #expect(first.status == 200 && first.body.contains("No tasks match"), "\(first)")
        let link = try #require(first.body.firstRange(of: "/tasks?kind=rare&amp;before=").map { r in
            String(first.body[r.lowerBound...].prefix { $0 != "\"" })
        }, "\(first)")
        let further = d.get(link.replacing("&amp;", with: "&"))
        #expect(further.status == 200 && further.body.contains("href=\"/tasks/\(rare)\""), "\(further)")
        // The API reads every row, as taskq list does.
        #expect(d.get("/api/tasks?kind=rare").body.contains("\"id\":\(rare)"))
    }

    /// The file's bytes and modification time.
    private func fingerprint(_ path: String) -> String {
        var st = stat()
        _ = stat(path, &st)
        return run("/usr/bin/sha256sum", [path]).out + " \(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)"
    }

    @Test func readOnlyLeavesTheFileAsItWas() throws {
        let (q, failed, _) = DashboardChecks.seeded(.sqlite)
        defer { q.close() }
        let before = fingerprint(q.db)
        try DashboardChecks.browseReadOnly(q, failed: failed)
        #expect(fingerprint(q.db) == before)
    }

    @Test func readOnlyRefusesAnOlderSchemaAndAMissingFileUntouched() throws {
        let q = DashboardQueue(.sqlite)
        defer { q.close() }
        q.enqueue("x")
        let version = q.sql("PRAGMA user_version")
        q.sql("PRAGMA user_version = \((Int(version) ?? 1) - 1)")
        let old = q.taskq(["dashboard", "--read-only", "--listen", "127.0.0.1:0"])
        #expect(old.status == 69 && old.stderr.contains("older than this taskq") && old.stderr.split(separator: "\n").count == 1, "\(old)")
        #expect(q.sql("PRAGMA user_version") == String((Int(version) ?? 1) - 1), "not migrated")
        let missing = q.s.taskq(["dashboard", "--read-only", "--db", q.s.dir + "/none.db", "--listen", "127.0.0.1:0"])
        #expect(missing.status == 66 && missing.stderr.split(separator: "\n").count == 1, "\(missing)")
        #expect(access(q.s.dir + "/none.db", F_OK) != 0)
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



    @Test func databaseTextIsEscaped() throws {
        let (q, failed, _) = DashboardChecks.seeded(.sqlite)
        defer { q.close() }
        let d = try #require(q.dashboard())
        for path in ["/tasks", "/tasks/\(failed)"] {
            let page = d.get(path)
            #expect(!page.body.contains("<script>alert"), "\(path)")
            #expect(page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "\(path)")
            #expect(page.headers["content-security-policy"]?.contains("default-src 'self'") == true)
        }
    }


}
