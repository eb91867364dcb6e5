import Testing
import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The repository's root, found from this file's path (Tests/IntegrationTests/…).
private let repoRoot: String = {
    var path = #filePath
    for _ in 0..<3 { path = String(path[..<path.lastIndex(of: "/")!]) }
    return path
}()

private var producer: String { Harness.binDir + "/taskq-example-producer" }
private var swiftWorker: String { Harness.binDir + "/taskq-example-worker" }

/// SQL for "now" in the schema's timestamp format ('2026-11-26T12:44:16.123Z').
private let sqlNow = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"

/// The programs under examples/ run as the README says they do, so they never rot.
@Suite(.serialized) struct ExamplesTests {
    /// The Swift producer enqueues COUNT squares and a report delayed by 1 s; the
    /// Swift worker program (`--until-empty`) works them off with Swift handlers.
    @Test func swiftProducerThenSwiftWorkerUntilEmpty() {
        let s = Scenario("taskq-examples")
        defer { s.close() }
        let count = 12
        let p = run(producer, [s.db, String(count)], cwd: s.dir)
        #expect(p.status == 0, "\(p)")
        let ids = p.out.split(separator: "\n").compactMap { Int64($0) }
        #expect(ids.count == count + 1, "\(p)")
        guard let report = ids.last else { return }

        let w = run(swiftWorker, ["--db", s.db, "--workers", "2", "--until-empty"], cwd: s.dir, timeout: 60)
        #expect(w.status == 0, "\(w)")
        // Every square ran once and stored n*n (with the handler's newline).
        #expect(s.sqlInt("""
            SELECT count(*) FROM tasks WHERE kind = 'square' AND state = 'succeeded' AND attempts = 1
              AND result = (json_extract(payload, '$.n') * json_extract(payload, '$.n')) || char(10)
            """) == count, "\(s.sql("SELECT id, state, result, last_error FROM tasks"))")

        // The report is delayed by 1 s: --until-empty exits when nothing is ready,
        // so it may still be queued. Wait until it is due, then run the worker again.
        #expect(s.sql("SELECT queue || ':' || priority FROM tasks WHERE id = \(report)") == "reports:5")
        if s.sql("SELECT state FROM tasks WHERE id = \(report)") == "queued" {
            #expect(eventually(timeout: 10, every: 0.05) {
                s.sqlInt("SELECT run_at <= \(sqlNow) FROM tasks WHERE id = \(report)") == 1
            })
            let again = run(swiftWorker, ["--db", s.db, "--workers", "2", "--until-empty"], cwd: s.dir, timeout: 60)
            #expect(again.status == 0, "\(again)")
        }
        #expect(s.sql("SELECT state || '|' || attempts || '|' || result FROM tasks WHERE id = \(report)")
                    == "succeeded|1|report for {\"of\": \(count)}, attempt 1\n")
        // It did not start before its time.
        #expect(s.sqlInt("SELECT started_at >= run_at FROM tasks WHERE id = \(report)") == 1)
        #expect(s.sqlInt("SELECT count(*) FROM tasks WHERE state <> 'succeeded'") == 0)
        #expect(s.sqlInt("SELECT count(*) FROM processes") == 0)
        #expect(s.workerPids.isEmpty)
    }

    /// The Swift worker program as a long-running service: `taskq result --wait`
    /// sees the delayed report done, `taskq stop --wait` stops it cleanly.
    @Test func swiftWorkerRunsUntilTaskqStop() {
        let s = Scenario("taskq-examples")
        defer { s.close() }
        let p = run(producer, [s.db, "5"], cwd: s.dir)
        #expect(p.status == 0, "\(p)")
        guard let report = p.out.split(separator: "\n").last.flatMap({ Int64($0) }) else {
            Issue.record("producer printed no ids: \(p)")
            return
        }
        let worker = s.start(swiftWorker, ["--db", s.db, "--workers", "2"])
        let r = s.taskq(["result", String(report), "--wait", "--timeout", "30"])
        #expect(r.status == 0, "\(r)\n\(worker.stderrSoFar)")
        #expect(r.stdout == "report for {\"of\": 5}, attempt 1\n")
        #expect(s.sqlInt("SELECT count(*) FROM tasks WHERE kind = 'square' AND state = 'succeeded'") == 5)
        let stop = s.taskq(["stop", "--wait", "--timeout", "30"])
        #expect(stop.status == 0, "\(stop)")
        #expect(worker.wait(timeout: 30) == 0, "\(worker.stderrSoFar)")
        #expect(s.sql("SELECT state FROM tasks WHERE kind = 'taskq.stop'") == "succeeded")
        #expect(s.workerPids.isEmpty)
    }

    /// examples/shell/wordcount.sh through `taskq supervise --until-empty`: results on
    /// success, exit status and stderr in last_error on failure.
    @Test func shellHandlerThroughSupervise() {
        let s = Scenario("taskq-examples")
        defer { s.close() }
        writeFile(s.dir + "/a.txt", "the quick brown fox\njumps over\n")
        writeFile(s.dir + "/b.txt", "hello world\n")
        let a = s.enqueue("wordcount", #"{"file": "a.txt"}"#)
        let b = s.enqueue("wordcount", #"{"file":"b.txt"}"#)
        let missing = s.enqueue("wordcount", #"{"file":"missing.txt"}"#, ["--max-attempts", "1"])
        let bad = s.enqueue("wordcount", #"{"path":"a.txt"}"#, ["--max-attempts", "1"])
        let handler = repoRoot + "/examples/shell/wordcount.sh"
        let r = s.taskq(["supervise", "--workers", "2", "--handler", "wordcount=\(handler)", "--until-empty"], timeout: 60)
        #expect(r.status == 0, "\(r)")

        let ra = s.taskq(["result", String(a)])
        #expect(ra.status == 0 && ra.stdout == "{\"file\":\"a.txt\",\"words\":6,\"attempt\":1}\n", "\(ra)")
        #expect(s.sql("SELECT result FROM tasks WHERE id = \(b)") == "{\"file\":\"b.txt\",\"words\":2,\"attempt\":1}\n")
        #expect(s.sql("SELECT state || '|' || last_error FROM tasks WHERE id = \(missing)")
                    == "failed|attempt 1/1: handler exit status 66; stderr: cannot read missing.txt")
        let rb = s.taskq(["result", String(bad)])
        #expect(rb.status == 1, "\(rb)")
        #expect(rb.stderr.contains("exit status 65") && rb.stderr.contains("payload has no \"file\""), "\(rb)")
        #expect(s.workerPids.isEmpty)
    }

    /// The handler's fallback for machines without jq (a sed expression) gives the
    /// same answers.
    @Test func shellHandlerWorksWithoutJq() {
        let s = Scenario("taskq-examples")
        defer { s.close() }
        // A PATH holding only the tools the handler needs, and no jq.
        let bin = s.dir + "/bin"
        mkdir(bin, 0o755)
        for tool in ["cat", "sed", "wc", "tr"] {
            let found = run("/bin/sh", ["-c", "command -v \(tool)"]).out
            #expect(symlink(found, bin + "/" + tool) == 0, "no \(tool) at '\(found)'")
        }
        writeFile(s.dir + "/a b.txt", "one two three\n")
        let handler = repoRoot + "/examples/shell/wordcount.sh"
        let env = ["PATH": bin, "TASKQ_ATTEMPT": "2"]
        let ok = run("/bin/sh", [handler], stdin: Array(#"{"file" : "a b.txt", "x": 1}"#.utf8), env: env, cwd: s.dir)
        #expect(ok.status == 0 && ok.stdout == "{\"file\":\"a b.txt\",\"words\":3,\"attempt\":2}\n", "\(ok)")
        let bad = run("/bin/sh", [handler], stdin: Array(#"{"x": 1}"#.utf8), env: env, cwd: s.dir)
        #expect(bad.status == 65 && bad.stderr.contains("payload has no \"file\""), "\(bad)")
    }

    /// examples/systemd/taskq.service: a cheap static check of what matters for a
    /// graceful stop and a restart after a crash.
    @Test func systemdUnitIsSane() {
        let text = String(decoding: readAll(repoRoot + "/examples/systemd/taskq.service"), as: UTF8.self)
        var sections: [String] = []
        var keys: [String: [String]] = [:]
        for raw in text.split(separator: "\n") {
            let line = String(raw).trimmingCharacters(in: " \t")
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") { sections.append(line); continue }
            guard let eq = line.firstIndex(of: "=") else {
                Issue.record("not KEY=VALUE: \(line)")
                continue
            }
            keys[String(line[..<eq]), default: []].append(String(line[line.index(after: eq)...]))
        }
        #expect(sections == ["[Unit]", "[Service]", "[Install]"])
        let exec = keys["ExecStart"] ?? []
        #expect(exec.count == 1)
        let execStart = exec.first ?? ""
        #expect(execStart.hasPrefix("/") && execStart.contains("taskq supervise") && execStart.contains("--handler"), "\(execStart)")
        #expect(keys["KillSignal"] == ["SIGTERM"])
        #expect(keys["KillMode"] == ["mixed"])
        #expect(keys["Restart"] == ["on-failure"])
        #expect(keys["ExecStop"] == nil)
        #expect(keys["WorkingDirectory"]?.first?.hasPrefix("/") == true)
        #expect(keys["Environment"]?.contains { $0.hasPrefix("TASKQ_DB=/") } == true)
        // systemd must wait longer than taskq's own shutdown timeout before SIGKILL.
        let words = execStart.split(separator: " ")
        let shutdown = words.firstIndex(of: "--shutdown-timeout").flatMap { i in
            i + 1 < words.count ? Double(words[i + 1]) : nil
        } ?? 30
        let stopSec = keys["TimeoutStopSec"]?.first.flatMap { Double($0.trimmingCharacters(in: "s")) }
        #expect(stopSec != nil && stopSec! > shutdown, "TimeoutStopSec \(String(describing: stopSec)) vs --shutdown-timeout \(shutdown)")
    }

    /// The README's first command is a bash script: it must at least parse.
    @Test func quickstartScriptParses() {
        let path = repoRoot + "/examples/quickstart.sh"
        let r = run("/bin/bash", ["-n", path])
        #expect(r.status == 0, "\(r)")
        #expect(access(path, X_OK) == 0, "\(path) is not executable")
        let text = String(decoding: readAll(path), as: UTF8.self)
        #expect(text.hasPrefix("#!/usr/bin/env bash\n"))
        #expect(text.contains("set -euo pipefail"))
    }

    /// Every ```sql block in the README runs as pasted against a real queue, and the
    /// README names the two commands.
    @Test func readmeSQLRecipesRun() {
        let readme = String(decoding: readAll(repoRoot + "/README.md"), as: UTF8.self)
        #expect(readme.contains("./examples/quickstart.sh"))
        #expect(readme.contains("swift test"))
        let blocks = fencedBlocks(readme, "sql")
        #expect(blocks.count >= 5, "expected the sqlite3 recipes in README.md")

        let s = Scenario("taskq-examples")
        defer { s.close() }
        s.enqueue("t", "1")
        s.enqueue("t", "2", ["--max-attempts", "1"])
        s.enqueue("t", "3", ["--delay", "1h"])
        s.script("h.sh", "read x; [ \"$x\" = 1 ]")
        #expect(s.taskq(["supervise", "--workers", "1", "--handler", "t=./h.sh", "--until-empty"]).status == 0)
        // The refused UPDATEs shown as a console session (task 42 failed, task 7
        // succeeded) give exactly the errors shown: run them on failed task 2 and
        // succeeded task 1.
        var refused = 0
        for block in fencedBlocks(readme, "console") {
            let lines = block.split(separator: "\n").map(String.init)
            for (i, line) in lines.enumerated() where line.hasPrefix("$ sqlite3 taskq.db \"") && line.hasSuffix("\"") {
                let sql = replacing(replacing(String(line.dropFirst(20).dropLast()), "id = 42", with: "id = 2"), "id = 7", with: "id = 1")
                let r = run("/usr/bin/sqlite3", [s.db, sql])
                #expect(r.status != 0 && i + 1 < lines.count && r.stderr == lines[i + 1] + "\n", "\(line)\n\(r)")
                refused += 1
            }
        }
        #expect(refused == 2)
        #expect(s.sql("SELECT group_concat(state) FROM (SELECT state FROM tasks ORDER BY id)") == "succeeded,failed,queued")

        // The recipes name task 42 (a failed task to retry) and 43 (a queued task to
        // cancel): point them at this queue's failed task 2 and delayed task 3.
        for block in blocks {
            let sql = replacing(replacing(block, "id = 42", with: "id = 2"), "id = 43", with: "id = 3")
            let r = run("/usr/bin/sqlite3", ["-batch", "-bail", s.db], stdin: Array(sql.utf8))
            #expect(r.status == 0 && r.stderr.isEmpty, "README SQL failed:\n\(block)\n\(r)")
        }
        // The hand retry made failed task 2 runnable again; the hand cancel ended task 3.
        #expect(s.sql("SELECT state, finished_at IS NULL, run_at <= \(sqlNow) FROM tasks WHERE id = 2") == "queued|1|1")
        #expect(s.sql("SELECT state, finished_at IS NOT NULL FROM tasks WHERE id = 3") == "cancelled|1")
    }
}

/// The contents of every ```LANG fenced block in a Markdown text.
private func fencedBlocks(_ markdown: String, _ lang: String) -> [String] {
    var blocks: [String] = []
    var current: [Substring]?
    for line in markdown.split(separator: "\n", omittingEmptySubsequences: false) {
        if current == nil { if line == "```" + lang { current = [] }; continue }
        if line.hasPrefix("```") { blocks.append(current!.joined(separator: "\n")); current = nil; continue }
        current?.append(line)
    }
    return blocks
}

/// `text` with every occurrence of `target` replaced (no Foundation here).
private func replacing(_ text: String, _ target: String, with replacement: String) -> String {
    var out = ""
    var rest = Substring(text)
    while let r = rest.firstRange(of: target) {
        out += rest[..<r.lowerBound] + replacement
        rest = rest[r.upperBound...]
    }
    return out + rest
}
