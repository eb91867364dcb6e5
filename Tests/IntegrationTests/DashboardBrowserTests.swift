import Testing
import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The dashboard in a real headless Chromium, driven by Selenium (Python):
/// skipped, with a line saying so, when Chromium, chromedriver or Selenium is
/// missing. Screenshots of every page land in the scenario's directory, or in
/// $TASKQ_TEST_SCREENSHOTS to keep them.
@Suite struct DashboardBrowserTests {
    private static let chromium = "/usr/bin/chromium", driver = "/usr/bin/chromedriver"

    private static var available: Bool {
        guard access(chromium, X_OK) == 0, access(driver, X_OK) == 0 else {
            print("DashboardBrowserTests: skipped: no \(chromium) or \(driver) (apt-get install chromium chromium-driver)")
            return false
        }
        guard run("/usr/bin/env", ["python3", "-c", "import selenium"]).status == 0 else {
            print("DashboardBrowserTests: skipped: Python's selenium is not installed (pip install selenium)")
            return false
        }
        return true
    }

    private func browse(_ s: Scenario, _ d: DashboardProcess, mode: String, failed: Int64) -> RunResult {
        writeFile(s.dir + "/browse.py", Self.script)
        let shots = getenv("TASKQ_TEST_SCREENSHOTS").map { String(cString: $0) } ?? s.dir
        return run("/usr/bin/env", ["python3", s.dir + "/browse.py", "http://127.0.0.1:\(d.port)", mode, shots, Harness.taskq, s.db, String(failed)],
                   env: ["SE_OFFLINE": "true"], timeout: 120)
    }

    private func seeded() -> (Scenario, Int64) {
        let s = Scenario()
        s.enqueue("ok", "{\"n\":1}")
        let failed = s.enqueue("boom", "\"<script>alert(1)</script>\"", ["--max-attempts", "1"])
        let r = s.taskq(["supervise", "--workers", "1", "--until-empty", "--handler", "ok=cat", "--handler", "boom=echo broken >&2; exit 3"])
        precondition(r.status == 0, "\(r)")
        s.enqueue("later", "{\"user\":{\"id\":7}}", ["--queue", "other"])
        precondition(s.taskq(["map", "--group", "nightly", "--workers", "1", "--handler", "cat"], stdin: "a\nb\n").status == 0)
        precondition(s.taskq(["schedule", "add", "hourly-report", "--cron", "@hourly", "report"]).status == 0)
        return (s, failed)
    }

    @Test func pagesMatchTheCLIUpdateLiveAndShowPayloadsAsText() throws {
        guard Self.available else { return }
        let (s, failed) = seeded()
        defer { s.close() }
        let d = try #require(DashboardProcess(s))
        let r = browse(s, d, mode: "live", failed: failed)
        #expect(r.status == 0, "\(r)")
    }

    @Test func readOnlyShowsNoAction() throws {
        guard Self.available else { return }
        let (s, failed) = seeded()
        defer { s.close() }
        let d = try #require(DashboardProcess(s, ["--read-only"]))
        let r = browse(s, d, mode: "read-only", failed: failed)
        #expect(r.status == 0, "\(r)")
    }

    static let script = #"""
        import json, subprocess, sys, time
        from selenium import webdriver
        from selenium.common.exceptions import NoAlertPresentException
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.common.by import By

        url, mode, shots, taskq, db, failed = sys.argv[1:7]
        opts = Options()
        opts.binary_location = "/usr/bin/chromium"
        for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1100"]:
            opts.add_argument(a)
        browser = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
        problems = []

        def check(ok, what):
            if not ok:
                problems.append(what)

        def shot(name):
            browser.save_screenshot(f"{shots}/dashboard-{mode}-{name}.png")

        def no_alert():
            try:
                browser.switch_to.alert
                return False
            except NoAlertPresentException:
                return True

        try:
            browser.get(url + "/")
            # Finished counts come from a first pass over the table; the page updates itself after it.
            deadline = time.time() + 10
            while browser.find_elements(By.CSS_SELECTOR, ".counting") and time.time() < deadline:
                time.sleep(0.05)
            status = json.loads(subprocess.run([taskq, "status", "--json", "--db", db], capture_output=True, check=True).stdout)
            for q in status["queues"]:
                def cell(field):
                    return int(browser.find_element(By.CSS_SELECTOR, f'td[data-queue="{q["queue"]}"][data-field="{field}"]').text.replace(",", ""))
                check(cell("ready") + cell("delayed") == q["queued"], f"queued of {q['queue']}")
                for field in ["running", "succeeded", "failed", "cancelled"]:
                    check(cell(field) == q[field], f"{field} of {q['queue']}")
            check(not browser.find_elements(By.CSS_SELECTOR, "main script"), "a script element in main")
            shot("overview")
            browser.get(url + "/tasks")
            shot("tasks")
            for page in ["failures", "schedules", "maps"]:
                browser.get(url + "/" + page)
                shot(page)
            browser.get(url + f"/tasks/{failed}")
            payload = browser.find_element(By.CSS_SELECTOR, "pre.payload").text
            check("<script>alert(1)</script>" in payload, f"payload shown as text: {payload!r}")
            check(no_alert(), "an alert ran")
            shot("task")
            actions = browser.find_elements(By.CSS_SELECTOR, 'form[action="/actions"], a[href^="/tasks/confirm"]')
            if mode == "read-only":
                check(not actions, "read-only page offers an action")
                for page in ["/", "/tasks", "/tasks?state=failed", "/failures", "/schedules", "/maps"]:
                    browser.get(url + page)
                    check(not browser.find_elements(By.CSS_SELECTOR, 'form[action="/actions"], a[href^="/tasks/confirm"]'),
                          f"read-only {page} offers an action")
            else:
                check(actions, "no retry on a failed task")
                # Live: a task enqueued from the CLI shows up without a reload.
                browser.get(url + "/tasks")
                time.sleep(0.5)  # the event stream connects
                browser.execute_script("window.notReloaded = true")
                subprocess.run([taskq, "enqueue", "livekind", "{}", "--db", db], check=True, capture_output=True)
                start = time.time()
                seen = False
                while time.time() - start < 2.0:
                    if "livekind" in browser.find_element(By.ID, "main").text:
                        seen = True
                        break
                    time.sleep(0.05)
                check(seen, "the new task did not show within 2 s")
                check(browser.execute_script("return window.notReloaded === true"), "the page reloaded")
                shot("tasks-live")
        finally:
            browser.quit()
        if problems:
            print("\n".join(problems))
            sys.exit(1)
        print("ok")
        """#
}
