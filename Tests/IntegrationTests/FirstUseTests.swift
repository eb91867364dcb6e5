import Testing
import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The places a new user following the README and --help would otherwise stop,
/// guess or lose work: tasks nobody will run, a handler that cannot run, a paused
/// queue, handler output, a payload that can never succeed.
@Suite struct FirstUseTests {
    // MARK: queued tasks no live supervisor runs

    @Test func statusTopAndWaitNameAKindNoSupervisorHandles() {
        let s = Scenario("taskq-firstuse")
        defer { s.close() }
        let ids = (1...3).map { s.enqueue("square", String($0)) }
        let none = s.taskq(["status"])
        #expect(none.status == 0 && none.stdout.contains("3 tasks of kind 'square' queued; no supervisor is running"), "\(none)")
        #expect(none.stdout.split(separator: "no supervisor is running", omittingEmptySubsequences: false).count == 2, "said once: \(none.stdout)")
        let topNone = s.taskq(["top", "--iterations", "1"])
        #expect(topNone.stdout.split(separator: "no supervisor is running", omittingEmptySubsequences: false).count == 2, "said once: \(topNone)")

        // A supervisor for another kind: the square tasks still wait, and every view says why.
        let sup = s.supervise(["--workers", "1", "--handler", "other=cat"])
        let message = "3 tasks of kind 'square' queued; no live supervisor has a handler for it"
        #expect(eventually(timeout: 20) { s.taskq(["status"]).stdout.contains(message) }, "\(s.taskq(["status"]))\n\(sup.stderrSoFar)")
        let json = s.taskq(["status", "--json"])
        #expect(json.stdout.contains(#""unserved":[{"queue":"default","kind":"square","queued":3,"reason":"no handler"}]"#), "\(json)")
        let top = s.taskq(["top", "--iterations", "1"])
        #expect(top.status == 0 && top.stdout.contains(message), "\(top)")

        // wait: the hint once, on stderr; stdout is the JSON object alone.
        let w = s.taskq(["wait"] + ids.map(String.init) + ["--timeout", "5", "--json"])
        #expect(w.status == 75, "\(w)")
        #expect(w.stdout.hasPrefix("{\"finished\":false") && w.stdout.split(separator: "\n").count == 1, "\(w)")
        #expect(w.stderr.components(message).count == 2, "\(w)")   // exactly one occurrence

        // Once served, the hint is gone.
        let other = s.enqueue("other", "1")
        #expect(eventually(timeout: 20) { s.sql("SELECT state FROM tasks WHERE id = \(other)") == "succeeded" })
        #expect(!s.taskq(["status"]).stdout.contains("kind 'other'"))
    }

    @Test func aSupervisorOfAnotherQueueDoesNotServeTheDefaultQueue() {
        let s = Scenario("taskq-firstuse")
        defer { s.close() }
        s.enqueue("square", "2")
        s.enqueue("square", "4", ["--delay", "1h"])   // delayed tasks count too
        let sup = s.supervise(["--workers", "1", "--handler", "square=cat", "--queue", "io"])
        let message = "2 tasks of kind 'square' queued; no live supervisor serves queue 'default' with a handler for it"
        #expect(eventually(timeout: 20) { s.taskq(["status"]).stdout.contains(message) }, "\(s.taskq(["status"]))\n\(sup.stderrSoFar)")
        // Its own queue is served: a task there runs and is never listed.
        let io = s.enqueue("square", "3", ["--queue", "io"])
        #expect(eventually(timeout: 20) { s.sql("SELECT state FROM tasks WHERE id = \(io)") == "succeeded" })
        #expect(!s.taskq(["status"]).stdout.contains("in queue 'io'"))
    }

    /// The README's "Wait, repeat, map" example runs as written: it starts a
    /// supervisor for the kind it enqueues, waits, and stops it.
    @Test func readmeWaitExampleRunsAsWritten() {
        let s = Scenario("taskq-firstuse")
        defer { s.close() }
        let block = readmeBlock(after: "**Wait, repeat, map.**")
        #expect(block.contains("taskq supervise") && block.contains("taskq wait $ids"), "\(block)")
        let r = run("/bin/bash", ["-e", "-c", block], env: ["PATH": Harness.binDir + ":/usr/bin:/bin"], cwd: s.dir, timeout: 120)
        #expect(r.status == 0, "\(block)\n\(r)")
        #expect(s.sqlInt("SELECT count(*) FROM tasks WHERE kind = 'square' AND state = 'succeeded' AND result = (payload * payload) || char(10)") == 50,
                "\(s.sql("SELECT id, state, result, last_error FROM tasks LIMIT 5"))")
        #expect(eventually(timeout: 30) { s.sqlInt("SELECT count(*) FROM processes") == 0 })
    }

    // MARK: a handler that cannot run

    @Test func superviseRefusesAHandlerThatSurelyCannotRun() {
        let s = Scenario("taskq-firstuse")
        defer { s.close() }
        writeFile(s.dir + "/notexec.sh", "#!/bin/sh\necho hi\n")
        mkdir(s.dir + "/adir", 0o755)
        let cases: [(String, String)] = [
            ("nx=./notexec.sh", "handler for kind nx cannot run: ./notexec.sh is not executable"),
            ("nx=./missing.sh --flag", "handler for kind nx cannot run: ./missing.sh not found"),
            ("nx=/no/such/tool", "handler for kind nx cannot run: /no/such/tool not found"),
            ("nx=./adir", "handler for kind nx cannot run: ./adir is a directory"),
            ("nx=no-such-command-here x", "handler for kind nx cannot run: command 'no-such-command-here' not found in PATH"),
        ]
        for (handler, message) in cases {
            let r = s.taskq(["supervise", "--handler", "ok=cat", "--handler", handler, "--until-empty"])
            #expect(r.status == 64 && r.stderr.hasPrefix("taskq: " + message) && r.stderr.split(separator: "\n").count == 1, "\(handler)\n\(r)")
        }
        // Refused before anything was written.
        #expect(access(s.db, F_OK) != 0)

        // What may run, or cannot be judged, is accepted: builtins, functions the
        // command defines, interpreters, quoting, assignments.
        s.script("ok.sh", "cat")
        for handler in ["a=cd . && ./ok.sh", "a=f() { cat; }; f", "a=sh ./notexec.sh", "a='./notexec.sh'",
                        "a=X=1 ./missing.sh", "a=$HOME/bin/tool", "a=exec cat", "a=cat"] {
            let r = s.taskq(["supervise", "--workers", "1", "--handler", handler, "--until-empty"])
            #expect(r.status == 0, "\(handler)\n\(r)")
        }
    }

    // MARK: paused queues

    @Test func pauseBeforeTheDatabaseExistsAndEnqueueIntoAPausedQueue() {
        let s = Scenario("taskq-firstuse")
        defer { s.close() }
        let p = s.taskq(["pause", "emails"])
        #expect(p.status == 0, "\(p)")
        #expect(s.sql("SELECT name FROM queues WHERE paused_at IS NOT NULL") == "emails")
        let r = s.taskq(["resume", "--db", s.dir + "/other.db", "emails"])
        #expect(r.status == 0 && r.stdout == "queue emails was not paused\n", "\(r)")

        // Enqueue into it: the id on stdout, exit 0, a warning on stderr.
        let e = s.taskq(["enqueue", "mail", "{}", "--queue", "emails"])
        #expect(e.status == 0 && Int64(e.out) != nil, "\(e)")
        #expect(e.stderr == "taskq: queue emails is paused: its tasks wait until 'taskq resume emails'\n", "\(e)")
        let batch = s.taskq(["enqueue", "--batch"], stdin: #"{"kind": "mail", "queue": "emails"}"# + "\n")
        #expect(batch.status == 0 && batch.stderr.contains("queue emails is paused"), "\(batch)")
        let lines = s.taskq(["enqueue", "mail", "--lines", "--queue", "emails"], stdin: "1\n2\n")
        #expect(lines.status == 0 && lines.stdout.split(separator: "\n").count == 2, "\(lines)")
        #expect(lines.stderr.components("is paused").count == 2, "\(lines)")
        // Another queue: no warning.
        let d = s.taskq(["enqueue", "mail", "{}"])
        #expect(d.status == 0 && d.stderr.isEmpty, "\(d)")

        // top marks paused queues as status does, one without tasks too.
        #expect(s.taskq(["pause", "idle"]).status == 0)
        let top = s.taskq(["top", "--iterations", "1"])
        #expect(top.stdout.contains("emails (paused)") && top.stdout.contains("idle (paused)"), "\(top)")
    }

    // MARK: handler output

    @Test func aSuccessfulAttemptKeepsTheEndOfItsStderr() {
        let s = Scenario("taskq-firstuse")
        defer { s.close() }
        let quiet = s.enqueue("h", #""quiet""#)
        let chatty = s.enqueue("h", #""chatty""#)
        let long = s.enqueue("h", #""long""#)
        s.script("h.sh", """
            p=$(cat)
            case "$p" in
              *chatty*) echo "warning: low disk" >&2; echo "second line" >&2 ;;
              *long*) head -c 5000 /dev/zero | tr '\\0' x >&2; echo "the end" >&2 ;;
            esac
            printf 'result %s' "$p"
            """)
        let r = s.taskq(["supervise", "--workers", "1", "--handler", "h=./h.sh", "--until-empty"])
        #expect(r.status == 0, "\(r)")
        #expect(s.sql("SELECT result FROM tasks WHERE id = \(chatty)") == "result \"chatty\"")
        #expect(s.sql("SELECT stderr FROM tasks WHERE id = \(chatty)") == "warning: low disk\nsecond line")
        #expect(s.sql("SELECT stderr IS NULL FROM tasks WHERE id = \(quiet)") == "1")
        let tail = s.sql("SELECT stderr FROM tasks WHERE id = \(long)")
        // Its last 2048 bytes, less the final newline, marked as cut.
        #expect(tail.hasPrefix("…xxx") && tail.hasSuffix("xxthe end") && tail.utf8.count == 2047 + "…".utf8.count, "\(tail.utf8.count)")
        // The history shows it: the attempts view and taskq show.
        #expect(s.sql("SELECT outcome || '|' || stderr FROM attempts WHERE task_id = \(chatty)") == "succeeded|warning: low disk\nsecond line")
        let show = s.taskq(["show", String(chatty)])
        #expect(show.stdout.contains("stderr:    warning: low disk\nsecond line\n")
                && show.stdout.contains("stderr: warning: low disk ⏎ second line"), "\(show)")
        let json = s.taskq(["show", String(chatty), "--json"])
        #expect(json.stdout.contains(#""stderr":"warning: low disk\nsecond line""#), "\(json)")
    }

    @Test func aFailedAttemptsStderrShowsInTheAttemptsView() {
        let s = Scenario("taskq-firstuse")
        defer { s.close() }
        let id = s.enqueue("f", "1", ["--max-attempts", "1"])
        let r = s.taskq(["supervise", "--workers", "1", "--handler", "f=echo broken >&2; exit 3", "--until-empty"])
        #expect(r.status == 0, "\(r)")
        #expect(s.sql("SELECT outcome || '|' || stderr FROM attempts WHERE task_id = \(id)") == "failed|broken")
    }

    /// The README's "four processes each print a number", with --log-output: every
    /// line reaches the supervisor's stderr, prefixed; results stay byte-exact.
    @Test func logOutputShowsWhatHandlersPrint() {
        let s = Scenario("taskq-firstuse")
        defer { s.close() }
        let block = readmeBlock(after: "**Where output goes.**")
        #expect(block.contains("--log-output"), "\(block)")
        let r = run("/bin/bash", ["-e", "-c", block], env: ["PATH": Harness.binDir + ":/usr/bin:/bin"], cwd: s.dir, timeout: 120)
        #expect(r.status == 0, "\(r)")
        for n in 1...4 { #expect(r.stderr.contains("[task \(n) show] number \(n)\n"), "\(r)") }
        #expect(s.sql("SELECT group_concat(result, '') FROM (SELECT result FROM tasks ORDER BY id)") == "number 1\nnumber 2\nnumber 3\nnumber 4\n")

        // Both streams, a last line without its newline, and a result that is not
        // line-shaped at all, stored as written.
        let id = s.enqueue("mixed", "null")
        let m = s.taskq(["supervise", "--workers", "1", "--log-output", "--until-empty", "--handler",
                         "mixed=printf 'out1\\nout2'; printf 'err1\\n' >&2; printf 'err2' >&2"])
        #expect(m.status == 0, "\(m)")
        for line in ["out1", "out2", "err1", "err2"] { #expect(m.stderr.contains("[task \(id) mixed] \(line)\n"), "\(m)") }
        #expect(s.sql("SELECT hex(result) FROM tasks WHERE id = \(id)") == "6F7574310A6F757432")
        // Without the flag nothing of it reaches the terminal.
        let quietID = s.enqueue("mixed", "null")
        let q = s.taskq(["supervise", "--workers", "1", "--until-empty", "--handler", "mixed=echo secret-out; echo secret-err >&2"])
        #expect(q.status == 0 && !q.stderr.contains("secret") && !q.stdout.contains("secret"), "\(q)")
        #expect(s.sql("SELECT stderr FROM tasks WHERE id = \(quietID)") == "secret-err")
    }

    // MARK: failing a task for good

    @Test func exit65FailsATaskForGoodOtherStatusesAreRetried() {
        let s = Scenario("taskq-firstuse")
        defer { s.close() }
        let bad = s.enqueue("h", #""bad""#)
        let flaky = s.enqueue("h", #""flaky""#, ["--max-attempts", "2", "--backoff-base", "0.05"])
        s.script("h.sh", """
            case "$(cat)" in
              *bad*) echo "no such customer" >&2; exit 65 ;;
              *) exit 66 ;;
            esac
            """)
        let r = s.taskq(["supervise", "--workers", "1", "--handler", "h=./h.sh", "--until-empty"])
        #expect(r.status == 0, "\(r)")
        #expect(s.sql("SELECT state || '|' || attempts || '|' || max_attempts || '|' || last_error FROM tasks WHERE id = \(bad)")
                == "failed|1|3|attempt 1/3: handler exit status 65 (bad data: failed for good, not retried); stderr: no such customer")
        #expect(s.sql("SELECT state || '|' || attempts FROM tasks WHERE id = \(flaky)") == "failed|2")
    }

    @Test func aSwiftHandlerThrowingBadDataFailsTheTaskForGood() {
        let s = Scenario("taskq-firstuse")
        defer { s.close() }
        let bad = s.enqueue("square", #"{"x": 1}"#)
        let good = s.enqueue("square", #"{"n": 4}"#)
        let w = run(Harness.binDir + "/taskq-example-worker", ["--db", s.db, "--workers", "1", "--until-empty"], cwd: s.dir, timeout: 60)
        #expect(w.status == 0, "\(w)")
        #expect(s.sql("SELECT state || '|' || attempts || '|' || last_error FROM tasks WHERE id = \(bad)")
                == "failed|1|attempt 1/3: handler threw: payload needs an integer \"n\" (bad data: failed for good, not retried)")
        #expect(s.sql("SELECT result FROM tasks WHERE id = \(good)") == "16\n")
    }
}

/// The repository's root, found from this file's path (Tests/IntegrationTests/…).
private let repoRoot: String = {
    var path = #filePath
    for _ in 0..<3 { path = String(path[..<path.lastIndex(of: "/")!]) }
    return path
}()

/// The first ```sh block of the README after the line that starts with `marker`.
private func readmeBlock(after marker: String) -> String {
    let readme = String(decoding: readAll(repoRoot + "/README.md"), as: UTF8.self)
    var lines: [Substring] = []
    var seen = false, inside = false
    for line in readme.split(separator: "\n", omittingEmptySubsequences: false) {
        if !seen { seen = line.hasPrefix(marker); continue }
        if !inside { inside = line == "```sh"; continue }
        if line.hasPrefix("```") { break }
        lines.append(line)
    }
    return lines.joined(separator: "\n")
}

private extension String {
    /// The pieces between occurrences of `separator` (count - 1 = occurrences).
    func components(_ separator: String) -> [Substring] {
        var out: [Substring] = []
        var rest = self[...]
        while let r = rest.firstRange(of: separator) {
            out.append(rest[..<r.lowerBound])
            rest = rest[r.upperBound...]
        }
        out.append(rest)
        return out
    }
}
