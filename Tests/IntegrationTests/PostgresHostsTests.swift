import Testing
import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Three "hosts" sharing one PostgreSQL queue: each a supervisor in its own UTS and PID
/// namespace (`unshare`) with its own host name, as three machines are. One is killed
/// outright (its PID namespace dies with every process in it), another has its workers
/// frozen past their lease and thawed; the queue still drains with every task
/// completed exactly once.
@Suite(.serialized, .enabled(if: PostgresServer.url != nil, Comment(rawValue: PostgresServer.skipReason)))
struct PostgresHostsTests {
    @Test(.enabled(if: HostIdentityTests.canUnshare, "needs unshare --uts --pid --fork --mount-proc (root); skipped"))
    func threeHostsDrainOneQueueThroughAKilledHostAndFrozenWorkers() throws {
        let s = Scenario("taskq-pghosts")
        defer { s.close() }
        let url = PostgresServer.freshSchema()!
        func sql(_ query: String) -> String { PostgresServer.psql(url, query).out }
        func int(_ query: String) -> Int { Int(sql(query)) ?? -1 }
        let total = 2000
        let enq = s.taskq(["enqueue", "t", "--lines", "--db", url], stdin: (0..<total).map { "\($0)\n" }.joined())
        #expect(enq.status == 0, "\(enq)")

        // Each run appends "id attempt" to its host's file (an execution on record), and
        // returns "host attempt". hostB's runs take a while, so that a frozen hostB worker
        // is most likely waiting for a handler that then finishes: a result held late.
        let handler = s.script("run.sh", """
            echo "$TASKQ_TASK_ID $TASKQ_ATTEMPT" >> "\(s.dir)/ran-$1.log"
            if [ "$1" = hostB ]; then sleep 0.2; fi
            echo "$1 $TASKQ_ATTEMPT"
            """)
        // Each host's connections name it (libpq's PGAPPNAME), for pg_stat_activity.
        func appName(_ name: String) -> String { "taskq-\(getpid())-\(name)" }
        func host(_ name: String) -> Child {
            s.start("/usr/bin/unshare", ["--uts", "--pid", "--fork", "--mount-proc", "--kill-child", "/bin/sh", "-c",
                                         #"hostname "$0" && exec "$@""#, name, Harness.taskq, "supervise", "--db", url,
                                         "--workers", "2", "--lease", "2", "--handler", "t=\(handler) \(name)"],
                    env: ["PGAPPNAME": appName(name)])
        }
        let a = host("hostA"), b = host("hostB"), c = host("hostC")
        func logs() -> String { "A: \(a.stderrSoFar)\nB: \(b.stderrSoFar)\nC: \(c.stderrSoFar)" }
        func running(on name: String) -> Int { int("SELECT count(*) FROM tasks WHERE state = 'running' AND worker_host = '\(name)'") }
        // The pid namespace's init: the supervisor (exec'd by the shell unshare forks).
        func initPid(_ h: Child) -> Int32? { childPids(of: h.pid).first }
        #expect(eventually(timeout: 60) { running(on: "hostA") > 0 && running(on: "hostB") > 0 && running(on: "hostC") > 0 }, "\(logs())")
        let initA = try #require(initPid(a)), initB = try #require(initPid(b))

        // hostA dies at once: its supervisor, its workers and their handlers.
        let processesOfA = sql("SELECT id FROM processes WHERE host = 'hostA' ORDER BY id").split(separator: "\n").map(String.init)
        #expect(processesOfA.count == 3, "\(processesOfA)")
        kill(initA, SIGKILL)
        #expect(a.wait(timeout: 30) != nil)

        // hostB's workers freeze, until their lease has run out and their tasks are
        // recovered. Frozen at a moment when one of them holds a task whose handler has
        // run (a late result), and none is in the middle of a transaction, else thawed
        // and frozen again. (A transaction frozen open holds its worker's row lock until
        // the server ends it, 10 s on: every recovery waits that long for it, and with
        // this 2 s lease the waiting supervisors would miss their own heartbeats.)
        func openTransactions() -> Int {
            int("""
                SELECT count(*) FROM pg_stat_activity WHERE application_name = '\(appName("hostB"))'
                AND state <> 'idle' AND clock_timestamp() - state_change > interval '100 ms'
                """)
        }
        var frozen: [(pid: Int32, nsPid: Int32)] = []
        var late: [(id: Int, attempt: Int)] = []
        for _ in 0..<20 where late.isEmpty {
            frozen = childPids(of: initB).filter { isWorker($0) }.compactMap { pid in nsPid(pid).map { (pid, $0) } }
            for w in frozen { kill(w.pid, SIGSTOP) }
            let frozenAt = System.monotonic()
            let caught = eventually(timeout: 0.8, every: 0.1) {
                let ran = Set(String(decoding: readAll(s.dir + "/ran-hostB.log"), as: UTF8.self).split(separator: "\n"))
                let held = sql("""
                    SELECT t.id || ' ' || t.attempts FROM tasks t JOIN processes p ON p.id = t.owner
                    WHERE t.state = 'running' AND p.host = 'hostB' AND p.pid IN (\(frozen.map { String($0.nsPid) }.joined(separator: ",")))
                    """).split(separator: "\n")
                late = held.filter { ran.contains($0) }.map { row in
                    let f = row.split(separator: " ")
                    return (Int(f[0])!, Int(f[1])!)
                }
                return !late.isEmpty && System.monotonic() - frozenAt > 0.2 && openTransactions() == 0
            }
            if !caught {
                late = []
                for w in frozen { kill(w.pid, SIGCONT) }
                _ = eventually(timeout: 2) { running(on: "hostB") > 0 }
            }
        }
        try #require(!late.isEmpty, "no frozen hostB worker held a finished run outside a transaction: \(logs())")
        let frozenList = frozen.map { String($0.nsPid) }.joined(separator: ",")
        #expect(eventually(timeout: 40) {
            int("SELECT count(*) FROM processes WHERE host = 'hostB' AND pid IN (\(frozenList))") == 0
                && int("SELECT count(*) FROM processes WHERE host = 'hostA'") == 0
        }, "\(logs())")
        #expect(frozen.allSatisfy { processAlive($0.pid) }, "the frozen workers are left to thaw")
        for w in frozen { kill(w.pid, SIGCONT) }
        #expect(eventually(timeout: 30) { frozen.allSatisfy { !processAlive($0.pid) } }, "\(logs())")

        #expect(eventually(timeout: 180) { int("SELECT count(*) FROM tasks WHERE state = 'succeeded' AND kind = 't'") == total },
                "\(sql("SELECT state, count(*) FROM tasks GROUP BY state"))\n\(logs())")
        let stop = s.taskq(["stop", "--wait", "--timeout", "60", "--db", url])
        #expect(stop.status == 0, "\(stop)")
        #expect(b.wait(timeout: 60) == 0, "\(logs())")
        #expect(c.wait(timeout: 60) == 0, "\(logs())")

        // Every task succeeded once: its row holds the run of its last attempt.
        #expect(int("SELECT count(*) FROM tasks WHERE kind = 't'") == total)
        var final: [Int: (attempt: Int, host: String)] = [:]
        for row in sql("""
            SELECT id, attempts, worker_host, convert_from(result, 'UTF8') = worker_host || ' ' || attempts || E'\\n'
            FROM tasks WHERE kind = 't'
            """).split(separator: "\n") {
            let f = row.split(separator: "|")
            #expect(f[3] == "t", "task \(f[0]): its result is not that of its attempt \(f[1]) on \(f[2])")
            final[Int(f[0])!] = (Int(f[1])!, String(f[2]))
        }
        // The attempts that did not win, each recovered from a dead or frozen worker.
        var recovered: [Int: Set<Int>] = [:]
        var recoveredFrom: [String: Int] = [:]
        var fromA: [Int] = []
        for row in sql("SELECT task_id, attempt, outcome, worker_host, error FROM task_attempts").split(separator: "\n") {
            let f = row.split(separator: "|", maxSplits: 4).map(String.init)
            #expect(f[2] == "crashed" && f[4].contains("stopped heartbeating"), "\(row)")
            #expect(recovered[Int(f[0])!, default: []].insert(Int(f[1])!).inserted, "recovered twice: \(row)")
            recoveredFrom[f[3], default: 0] += 1
            if f[3] == "hostA" { fromA.append(Int(f[0])!) }
        }
        // Executions: each attempt ran at most once; a task ran again only after an
        // attempt recovered on record; the winning attempt ran.
        var runs: [Int: [Int]] = [:]
        for name in ["hostA", "hostB", "hostC"] {
            for line in String(decoding: readAll(s.dir + "/ran-\(name).log"), as: UTF8.self).split(separator: "\n") {
                let f = line.split(separator: " ")
                runs[Int(f[0])!, default: []].append(Int(f[1])!)
            }
        }
        for (id, f) in final {
            let ran = runs[id] ?? []
            #expect(Set(ran).count == ran.count, "task \(id) ran attempts \(ran)")
            #expect(ran.contains(f.attempt), "task \(id): its winning attempt \(f.attempt) never ran (runs \(ran))")
            #expect(Set(ran.filter { $0 != f.attempt }).isSubset(of: recovered[id] ?? []),
                    "task \(id) ran attempts \(ran), won by \(f.attempt), recovered \(recovered[id] ?? [])")
            #expect((recovered[id] ?? []).allSatisfy { $0 < f.attempt })
        }
        #expect(runs.keys.allSatisfy { final[$0] != nil })
        // hostA's tasks were taken back by hostB or hostC, judged by lease (hostA's
        // processes are not theirs to look up); hostB's frozen ones too.
        #expect((recoveredFrom["hostA"] ?? 0) > 0 && (recoveredFrom["hostB"] ?? 0) > 0, "\(recoveredFrom)")
        #expect(fromA.allSatisfy { final[$0]?.host != "hostA" }, "\(fromA.map { ($0, final[$0]!) })")
        for id in processesOfA {
            #expect(b.stderrSoFar.contains("(process \(id)), which stopped heartbeating")
                    || c.stderrSoFar.contains("(process \(id)), which stopped heartbeating"), "process \(id) of hostA: \(logs())")
        }
        // The late results of the frozen workers were refused: those tasks won later.
        for t in late {
            #expect((recovered[t.id] ?? []).contains(t.attempt) && final[t.id]!.attempt > t.attempt,
                    "task \(t.id): attempt \(t.attempt) was held by a frozen worker; final \(final[t.id]!)")
        }
        // Each thawed worker found its lease gone and exited (status 3).
        for w in frozen {
            #expect(b.stderrSoFar.contains("taskq worker \(w.nsPid): lease lost"), "worker \(w.nsPid): \(b.stderrSoFar)")
        }
    }
}

/// The pids whose parent is `pid`.
private func childPids(of pid: Int32) -> [Int32] {
    listDirectory("/proc").compactMap { Int32($0) }.filter { parentPid($0) == pid && processAlive($0) }.sorted()
}

/// Whether `pid` runs a taskq worker (and is not a handler between fork and exec:
/// a worker leads its own session).
private func isWorker(_ pid: Int32) -> Bool {
    let cmd = String(decoding: readAll("/proc/\(pid)/cmdline"), as: UTF8.self)
    return cmd.contains("__taskq-worker") && getsid(pid) == pid
}

/// `pid` as its own PID namespace numbers it (the last of the NSpid line).
private func nsPid(_ pid: Int32) -> Int32? {
    let status = String(decoding: readAll("/proc/\(pid)/status"), as: UTF8.self)
    guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("NSpid:") }) else { return nil }
    return line.split(whereSeparator: { $0 == "\t" || $0 == " " }).last.flatMap { Int32($0) }
}
