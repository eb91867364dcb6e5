import Testing
import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `taskq wait`: blocks until tasks finish; exit 0, 1 (failed) or 75 (timeout).
@Suite struct WaitTests {
    @Test func waitsForIdsThenSumsUp() {
        let s = Scenario("taskq-wait")
        defer { s.close() }
        s.script("h.sh", "cat > /dev/null; sleep 0.2; echo ok")
        let ids = (1...4).map { _ in String(s.enqueue("t")) }
        // Nothing runs yet: a short timeout ends 75 and says how far it got.
        let early = s.taskq(["wait"] + ids + ["--timeout", "0.3"])
        #expect(early.status == 75, "\(early)")
        #expect(early.stderr.hasPrefix("taskq: timed out after 300ms: 0 of 4 finished"), "\(early)")
        let w = s.start(Harness.taskq, ["wait"] + ids + ["--timeout", "60"])
        let sup = s.supervise(["--workers", "2", "--handler", "t=./h.sh"])
        #expect(w.wait(timeout: 60) == 0, "\(w.stderrSoFar) \(sup.stderrSoFar)")
        #expect(s.count("succeeded") == 4)
        // Not a terminal: plain lines, the last one a summary.
        let lines = w.stdoutSoFar.split(separator: "\n")
        #expect(lines.last?.hasPrefix("all 4 finished in ") == true, "\(w.stdoutSoFar)")
        #expect(lines.last?.hasSuffix(": 4 succeeded, 0 failed, 0 cancelled") == true)
        #expect(!w.stdoutSoFar.contains("\r"))
    }

    @Test func failedTaskMeansExitOneAndJSONSaysSo() {
        let s = Scenario("taskq-wait")
        defer { s.close() }
        let good = s.enqueue("t", "1")
        let bad = s.enqueue("t", "2", ["--max-attempts", "1"])
        let sup = s.supervise(["--workers", "1", "--handler", "t=test \"$(cat)\" = 1"])
        let r = s.taskq(["wait", String(good), String(bad), "--json", "--timeout", "60"])
        #expect(r.status == 1, "\(r) \(sup.stderrSoFar)")
        guard let v = try? JSON.parse(r.stdout) else { Issue.record("not JSON: \(r)"); return }
        #expect(v["finished"] == .bool(true))
        #expect(v["total"]?.intValue == 2 && v["succeeded"]?.intValue == 1 && v["failed"]?.intValue == 1)
        #expect(v["queued"]?.intValue == 0 && v["running"]?.intValue == 0 && v["elapsed_s"]?.doubleValue != nil)
    }

    @Test func waitsForAQueueToEmpty() {
        let s = Scenario("taskq-wait")
        defer { s.close() }
        for i in 1...5 { s.enqueue("t", "\(i)", ["--queue", "q1"]) }
        let other = s.enqueue("t", "0", ["--queue", "q2", "--delay", "1h"])
        let sup = s.supervise(["--workers", "2", "--handler", "t=cat", "--queue", "q1"])
        // q2's delayed task does not hold up a wait on q1.
        let r = s.taskq(["wait", "--queue", "q1", "--timeout", "60"])
        #expect(r.status == 0, "\(r) \(sup.stderrSoFar)")
        #expect(r.stdout.contains("all 5 finished") || r.stdout.contains("finished in"), "\(r)")
        #expect(s.sql("SELECT state FROM tasks WHERE id = \(other)") == "queued")
        // ...but a wait on everything does.
        let all = s.taskq(["wait", "--timeout", "0.5"])
        #expect(all.status == 75, "\(all)")
    }

    @Test func badArguments() {
        let s = Scenario("taskq-wait")
        defer { s.close() }
        let id = s.enqueue("t")
        #expect(s.taskq(["wait", "999"]).status == 66)
        #expect(s.taskq(["wait", String(id), "--queue", "default"]).status == 64)
        #expect(s.taskq(["wait", "0"]).status == 64)
        #expect(s.taskq(["wait", String(id), "--timeout", "soon"]).status == 64)
        #expect(taskq(["wait", "1"], cwd: s.dir + "/nowhere-\(getpid())").status != 0)
        #expect(s.taskq(["wait", "--help"]).stdout.contains("Exit status"))
    }
}

/// `taskq schedule`: cron occurrences enqueued exactly once by running supervisors.
/// The scheduler's clock is shifted with TASKQ_TEST_CLOCK_OFFSET (a test-only
/// variable) so that a `* * * * *` occurrence comes within two seconds.
@Suite struct ScheduleTests {
    /// An offset that puts the scheduler's clock 2 s before the next minute.
    private func offsetToNextMinute() -> Double {
        let ms = Timestamp.now().milliseconds
        let toNext = Double(60_000 - ms % 60_000) / 1000
        return toNext - 2
    }

    @Test func everyMinuteFiresOnceWithTwoSupervisorsAndAcrossRestarts() {
        let s = Scenario("taskq-schedule")
        defer { s.close() }
        let offset = offsetToNextMinute()
        let env = ["TASKQ_TEST_CLOCK_OFFSET": String(offset)]
        let add = s.taskq(["schedule", "add", "tick", "--cron", "* * * * *", "t", #"{"from":"cron"}"#, "--queue", "cron"], env: env)
        #expect(add.status == 0, "\(add)")
        let occurrence = s.sql("SELECT next_at FROM schedules WHERE name = 'tick'")
        #expect(occurrence.hasSuffix(":00.000Z"), "\(occurrence)")
        let a = s.supervise(["--workers", "1", "--handler", "t=cat"], env: env)
        let b = s.supervise(["--workers", "1", "--handler", "t=cat"], env: env)
        #expect(eventually(timeout: 20) { s.count("succeeded") == 1 }, "\(a.stderrSoFar) \(b.stderrSoFar)")
        // Within a second of its time (on the shifted clock), and once only.
        #expect(s.sqlInt("""
            SELECT count(*) FROM tasks t JOIN schedule_runs r ON r.task_id = t.id
            WHERE r.schedule = 'tick' AND r.occurrence = '\(occurrence)'
              AND (julianday(t.created_at) - julianday(r.occurrence)) * 86400 BETWEEN 0 AND 1
            """) == 1)
        #expect(s.sql("SELECT result FROM tasks WHERE kind = 't'") == #"{"from":"cron"}"#)
        #expect(s.sql("SELECT queue FROM tasks WHERE kind = 't'") == "cron")
        #expect(s.taskq(["stop", "--wait", "--timeout", "30"]).status == 0)
        #expect(a.wait(timeout: 30) == 0 && b.wait(timeout: 30) == 0)
        #expect(s.count("succeeded") == 1 && s.sqlInt("SELECT count(*) FROM schedule_runs") == 1)
        let listed = s.taskq(["schedule", "list", "--json"])
        guard case .array(let items)? = try? JSON.parse(listed.stdout), let item = items.first else {
            Issue.record("\(listed)"); return
        }
        #expect(item["last_at"]?.stringValue == occurrence)
        #expect(item["name"]?.stringValue == "tick" && item["cron"]?.stringValue == "* * * * *" && item["tz"]?.stringValue == "UTC")

        // Restarted 3 minutes later (on the shifted clock): the missed occurrences
        // collapse into the latest one, enqueued once.
        let later = ["TASKQ_TEST_CLOCK_OFFSET": String(offset + 180)]
        let c = s.supervise(["--workers", "1", "--handler", "t=cat"], env: later)
        #expect(eventually(timeout: 20) { s.count("succeeded") == 2 }, "\(c.stderrSoFar)")
        #expect(s.sqlInt("SELECT count(*) FROM schedule_runs") == 2)
        let second = s.sql("SELECT occurrence FROM schedule_runs ORDER BY occurrence DESC LIMIT 1")
        #expect(Timestamp(iso: second)!.seconds(since: Timestamp(iso: occurrence)!) == 180)
        #expect(s.taskq(["schedule", "remove", "tick"]).status == 0)
        #expect(s.taskq(["schedule", "list"]).out == "no schedules")
    }

    @Test func badExpressionIsRefusedNamingTheField() {
        let s = Scenario("taskq-schedule")
        defer { s.close() }
        for (expr, field) in [("61 * * * *", "minute field"), ("0 25 * * *", "hour field"), ("0 0 32 * *", "day-of-month field"),
                              ("0 0 * 0 *", "month field"), ("0 0 * * FUNDAY", "day-of-week field"), ("0 0 * *", "expected 5 fields")] {
            let r = s.taskq(["schedule", "add", "x", "--cron", expr, "t"])
            #expect(r.status == 64, "\(expr): \(r)")
            #expect(r.stderr.hasPrefix("taskq: cron expression \"\(expr)\": \(field)"), "\(r)")
        }
        let zone = s.taskq(["schedule", "add", "x", "--cron", "@daily", "t", "--tz", "Nowhere/Atlantis"])
        #expect(zone.status == 64 && zone.stderr.hasPrefix("taskq: unknown time zone"), "\(zone)")
        #expect(s.taskq(["schedule", "add", "x", "--cron", "@daily", "t", "{bad"]).status == 65)
        let ok = s.taskq(["schedule", "add", "x", "--cron", "0 9 * * MON-FRI", "t", "--tz", "Europe/Berlin"])
        #expect(ok.status == 0, "\(ok)")
        #expect(ok.out.contains("next: "))
        let again = s.taskq(["schedule", "add", "x", "--cron", "@daily", "t"])
        #expect(again.status == 1 && again.stderr.contains("exists already"), "\(again)")
        #expect(s.taskq(["schedule", "add", "x", "--cron", "@daily", "t", "--replace"]).status == 0)
        #expect(s.sql("SELECT cron || ' ' || tz FROM schedules") == "@daily UTC")
        #expect(s.taskq(["schedule", "remove", "nope"]).status == 66)
    }
}

/// `taskq map`: ordered, durable, resumable data-parallel runs.
@Suite struct MapTests {
    @Test func printsResultsInInputOrder() {
        let s = Scenario("taskq-map")
        defer { s.close() }
        // Later lines finish first: the output is still in input order.
        let input = (1...12).map(String.init).joined(separator: "\n") + "\n"
        let r = s.taskq(["map", "--workers", "4", "--handler", #"n=$(cat); sleep 0.$(( (13 - n) % 4 )); echo $((n * n))"#],
                        stdin: input, timeout: 60)
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout == (1...12).map { "\($0 * $0)\n" }.joined(), "\(r)")
        // Ordinary rows, kind map, with their order in task_groups.
        #expect(s.sqlInt("SELECT count(*) FROM tasks WHERE kind = 'map' AND state = 'succeeded'") == 12)
        #expect(s.sql("SELECT t.payload FROM task_groups g JOIN tasks t ON t.id = g.task_id WHERE g.position = 3") == "\"3\"")
        #expect(s.sqlInt("SELECT count(*) FROM processes") == 0)
        #expect(s.workerPids.isEmpty)
    }

    @Test func failuresNameTheirLineAndExitOne() {
        let s = Scenario("taskq-map")
        defer { s.close() }
        let r = s.taskq(["map", "--kind", "chk", "--workers", "2", "--handler", #"x=$(cat); [ "$x" != boom ] || { echo kaput >&2; exit 3; }; echo "<$x>""#],
                        stdin: "a\nboom\nc\n", timeout: 60)
        #expect(r.status == 1, "\(r)")
        #expect(r.stdout == "<a>\n<c>\n")
        #expect(r.stderr.contains("taskq: line 2 failed: "), "\(r)")
        #expect(r.stderr.contains("kaput"))
        #expect(s.sqlInt("SELECT count(*) FROM tasks WHERE kind = 'chk'") == 3)
    }

    @Test func jsonLinesAndABadLineWritesNothing() {
        let s = Scenario("taskq-map")
        defer { s.close() }
        let bad = s.taskq(["map", "--json", "--handler", "cat"], stdin: "{\"n\":1}\n[1,2]\n{oops\n")
        #expect(bad.status == 65, "\(bad)")
        #expect(bad.stderr.hasPrefix("taskq: line 3: not valid JSON"), "\(bad)")
        #expect(access(s.db, F_OK) != 0, "nothing written, not even the database")
        let ok = s.taskq(["map", "--json", "--handler", "jq -c .", "--workers", "2"], stdin: "{\"n\":1}\n[1,2]\n\"s\"\n", timeout: 60)
        #expect(ok.status == 0, "\(ok)")
        #expect(ok.stdout == "{\"n\":1}\n[1,2]\n\"s\"\n")
    }

    @Test func resumesAfterKillNineRunningOnlyWhatDidNotSucceed() {
        let s = Scenario("taskq-map")
        defer { s.close() }
        // Lines 1-4 finish; lines 5-8 hang until the gate file exists.
        s.script("h.sh", """
            n=$(cat)
            echo "$n" >> audit
            if [ "$n" -ge 5 ] && [ ! -e gate ]; then exec \(s.longSleep); fi
            echo "r$n"
            """)
        let input = (1...8).map(String.init).joined(separator: "\n") + "\n"
        #expect(s.taskq(["init"]).status == 0)   // so the sqlite3 looks below find the tables
        let first = Child(Harness.taskq, ["map", "--workers", "8", "--handler", "./h.sh", "--group", "g1"], cwd: s.dir,
                          stdinData: Array(input.utf8), logDir: s.dir)
        defer { first.kill9() }
        #expect(eventually(timeout: 30) { s.count("succeeded") == 4 && s.count("running") == 4 }, "\(first.stderrSoFar)")
        #expect(eventually(timeout: 10) { first.stdoutSoFar == "r1\nr2\nr3\nr4\n" }, "out: \(first.stdoutSoFar) err: \(first.stderrSoFar) \(s.sql("SELECT id, state, payload FROM tasks"))")
        // Lines 5-8 are running: their handlers have started (written to the audit).
        #expect(eventually(timeout: 30) {
            String(decoding: readAll(s.dir + "/audit"), as: UTF8.self).split(separator: "\n").count == 8
        }, "\(first.stderrSoFar)")
        first.kill9()
        #expect(eventually(timeout: 10) { pidsMatching(s.longSleep).isEmpty }, "the handlers die with their workers")
        writeFile(s.dir + "/gate", "")
        let again = s.taskq(["map", "--workers", "4", "--handler", "./h.sh", "--group", "g1"], stdin: input, timeout: 60)
        #expect(again.status == 0, "\(again)")
        #expect(again.stdout == (1...8).map { "r\($0)\n" }.joined())
        #expect(again.stderr.contains("taskq: 4 of 8 results replayed from an earlier run (map group g1, 4 failed lines run again); use --fresh to run them again"),
                "\(again)")
        // Lines 1-4 ran once; 5-8 twice (cut short, then run again).
        let audit = String(decoding: readAll(s.dir + "/audit"), as: UTF8.self).split(separator: "\n").map(String.init)
        for n in 1...4 { #expect(audit.filter { $0 == "\(n)" }.count == 1, "\(audit)") }
        for n in 5...8 { #expect(audit.filter { $0 == "\(n)" }.count == 2, "\(audit)") }
        // The same group name with other input is refused.
        let other = s.taskq(["map", "--handler", "./h.sh", "--group", "g1"], stdin: "1\n2\n")
        #expect(other.status == 65 && other.stderr.contains("different input") || other.stderr.contains("holds 8 lines"), "\(other)")
    }

    @Test func aRerunAfterPurgeRunsThePurgedLinesAgainAndPrintsEverything() {
        let s = Scenario("taskq-map")
        defer { s.close() }
        let input = (1...5).map(String.init).joined(separator: "\n") + "\n"
        let handler = #"n=$(cat); echo $((n * 10))"#
        let expected = (1...5).map { "\($0 * 10)\n" }.joined()
        let first = s.taskq(["map", "--workers", "2", "--handler", handler], stdin: input, timeout: 60)
        #expect(first.status == 0 && first.stdout == expected, "\(first)")
        // --retain (or purge) deletes finished tasks; the group's rows stay.
        #expect(s.taskq(["purge", "--older-than", "0s"]).status == 0)
        let left = s.sqlInt("SELECT count(*) FROM tasks WHERE kind = 'map'")
        #expect(left < 5)
        let again = s.taskq(["map", "--workers", "2", "--handler", handler], stdin: input, timeout: 60)
        #expect(again.status == 0 && again.stdout == expected, "\(again)")
        #expect(again.stderr.contains("\(5 - left) lines whose task was purged run again"), "\(again)")
        #expect(s.sqlInt("SELECT count(*) FROM task_groups g JOIN tasks t ON t.id = g.task_id WHERE t.state = 'succeeded'") == 5)
    }

    @Test func aRerunAppliesItsOwnTaskOptionsToTheLinesItRetries() {
        let s = Scenario("taskq-map")
        defer { s.close() }
        let handler = #"sleep 0.5; cat"#
        let first = s.taskq(["map", "--timeout", "0.1s", "--handler", handler], stdin: "1\n2\n", timeout: 60)
        #expect(first.status == 1 && first.stderr.contains("timed out"), "\(first)")
        // The obvious fix, more time, is what the retried lines get.
        let again = s.taskq(["map", "--timeout", "10s", "--max-attempts", "2", "--handler", handler], stdin: "1\n2\n", timeout: 60)
        #expect(again.status == 0 && again.stdout == "1\n2\n", "\(again)")
        #expect(s.sql("SELECT DISTINCT timeout_s || ' ' || max_attempts FROM tasks WHERE kind = 'map'") == "10.0 2")
    }

    @Test func aLinePurgedBeforeItsResultWasPrintedIsNamedAndTheMapEnds() {
        let s = Scenario("taskq-map")
        defer { s.close() }
        // Line 1 waits for a file; lines 2-5 finish, then are purged before line 1
        // lets the output move on.
        #expect(s.taskq(["init"]).status == 0)
        let m = Child(Harness.taskq, ["map", "--workers", "2", "--handler",
                                      #"n=$(cat); if [ "$n" = 1 ]; then while [ ! -e go ]; do sleep 0.02; done; fi; echo "r$n""#],
                      cwd: s.dir, stdinData: Array("1\n2\n3\n4\n5\n".utf8), logDir: s.dir)
        defer { m.kill9() }
        #expect(eventually(timeout: 30) { s.count("succeeded") == 4 })
        #expect(s.taskq(["purge", "--older-than", "0s"]).status == 0)
        #expect(s.sqlInt("SELECT count(*) FROM tasks WHERE kind = 'map'") == 1)
        creat(s.dir + "/go", 0o644)
        #expect(m.wait(timeout: 30) == 1, "\(m.stderrSoFar)")
        #expect(m.stdoutSoFar == "r1\n", "\(m.stdoutSoFar)")
        for line in 2...5 {
            #expect(m.stderrSoFar.contains("taskq: line \(line): its task was purged before its result was printed"), "\(m.stderrSoFar)")
        }
    }

    @Test func ctrlCStopsAndSaysHowToResume() {
        let s = Scenario("taskq-map")
        defer { s.close() }
        #expect(s.taskq(["init"]).status == 0)
        let m = Child(Harness.taskq, ["map", "--workers", "2", "--handler", "n=$(cat); [ \"$n\" = 1 ] && echo one || exec \(s.longSleep)"],
                      cwd: s.dir, stdinData: Array("1\n2\n3\n".utf8), logDir: s.dir)
        defer { m.kill9() }
        #expect(eventually(timeout: 30) { s.count("succeeded") == 1 && s.count("running") == 2 })
        let t0 = System.monotonic()
        m.signal(SIGINT)   // running lines get 2 s, then go back to the queue
        #expect(m.wait(timeout: 30) == 130, "\(m.stderrSoFar)")
        #expect(System.monotonic() - t0 < 8)
        #expect(m.stdoutSoFar == "one\n")
        #expect(m.stderrSoFar.contains("taskq: map interrupted: 1 of 3 lines finished; run the same command again to resume"), "\(m.stderrSoFar)")
        #expect(eventually(timeout: 10) { pidsMatching(s.longSleep).isEmpty })
        // Released, not failed: the lines are queued again for the next run.
        #expect(s.count("queued") == 2 && s.count("failed") == 0)
    }

    @Test func aSupervisorWithTheKindHelpsDrain() {
        let s = Scenario("taskq-map")
        defer { s.close() }
        // A supervisor that already serves kind 'map' runs the same work; its
        // handler gets a line as the JSON string it is stored as.
        let sup = s.supervise(["--workers", "2", "--handler", "map=jq -r . | tr a-z A-Z"])
        let r = s.taskq(["map", "--workers", "1", "--handler", "tr a-z A-Z"], stdin: "x\ny\nz\nw\n", timeout: 60)
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout == "X\nY\nZ\nW\n")
        #expect(s.taskq(["list", "--kind", "map", "--json"]).stdout.contains("\"state\":\"succeeded\""))
        _ = sup
    }
}

/// `taskq top` / `status --watch`, driven in a real terminal (tmux).
@Suite struct TopTests {
    static let tmux = "/usr/bin/tmux"

    @Test func snapshotWhenNotATerminal() {
        let s = Scenario("taskq-top")
        defer { s.close() }
        s.enqueue("t", "1")
        s.enqueue("t", "2", ["--max-attempts", "1"])
        let sup = s.supervise(["--workers", "1", "--handler", "t=test \"$(cat)\" = 1 || { echo nope >&2; exit 4; }"])
        #expect(eventually { s.count("succeeded") == 1 && s.count("failed") == 1 }, "\(sup.stderrSoFar)")
        let r = s.taskq(["top", "--iterations", "1"])
        #expect(r.status == 0, "\(r)")
        #expect(!r.stdout.contains("\u{1B}"), "no escape codes when not a terminal")
        #expect(r.stdout.contains("QUEUE") && r.stdout.contains("DONE/MIN"))
        #expect(r.stdout.contains("last minute: 2 finished (1 succeeded, 1 failed, 0 cancelled)"), "\(r.stdout)")
        #expect(r.stdout.contains("RECENT FAILURES") && r.stdout.contains("nope"))
        #expect(r.stdout.contains("supervisor pid \(sup.pid)"))
    }

    @Test(.enabled(if: access(TopTests.tmux, X_OK) == 0, "tmux is not installed (apt-get install tmux)"))
    func restoresTheTerminalOnCtrlC() {
        let s = Scenario("taskq-top")
        defer { s.close() }
        s.enqueue("t", "1")
        let sup = s.supervise(["--workers", "1", "--handler", "t=\(s.longSleep)"])
        #expect(eventually { s.count("running") == 1 }, "\(sup.stderrSoFar)")
        let sock = s.dir + "/tmux.sock"
        func tmux(_ args: [String]) -> RunResult { run(Self.tmux, ["-S", sock] + args) }
        defer { _ = tmux(["kill-server"]) }
        let started = tmux(["new-session", "-d", "-x", "110", "-y", "40", "-c", s.dir, "env PS1='READY$ ' /bin/sh"])
        #expect(started.status == 0, "\(started)")
        func screen() -> String { tmux(["capture-pane", "-p"]).stdout }
        func flag(_ name: String) -> String { tmux(["display-message", "-p", "#{\(name)}"]).out }
        #expect(eventually(timeout: 10) { screen().contains("READY$") })
        _ = tmux(["send-keys", "\(Harness.taskq) status --watch --db \(s.db)", "Enter"])
        #expect(eventually(timeout: 20) { screen().contains("RUNNING (1)") }, "\(screen())")
        #expect(screen().contains("taskq top - \(s.db)"))
        #expect(flag("alternate_on") == "1", "the alternate screen is in use")
        #expect(flag("cursor_flag") == "0", "the cursor is hidden")
        _ = tmux(["send-keys", "C-c"])
        #expect(eventually(timeout: 10) { flag("alternate_on") == "0" }, "\(screen())")
        #expect(eventually(timeout: 10) { flag("cursor_flag") == "1" })
        // Back on the shell: the command line is there and a fresh prompt after it.
        let after = screen().split(separator: "\n").map(String.init).filter { !$0.isEmpty }
        #expect(after.last == "READY$", "\(after)")
        #expect(after.contains { $0.contains("status --watch") })
        #expect(!after.contains { $0.contains("RUNNING (") })
    }
}
