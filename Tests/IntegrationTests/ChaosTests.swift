import Testing
import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Break things on purpose, in a loop, and check the
/// invariants after every round.
///
/// - The kill loop: a supervisor with 4 workers runs tasks whose handler takes
///   0–50 ms and appends one audit line per execution; every 50–200 ms a random
///   worker is SIGKILLed, and at the end of every round (6–14 worker kills) the
///   supervisor itself, which is then restarted. After each round, while nothing is
///   running, the database and the audit log are checked; at the end, everything.
/// - Eight producer processes enqueue one task at a time while four workers drain:
///   every task runs exactly once.
///
/// The kill loop runs on a SQLite file and on PostgreSQL (skipped, saying why,
/// without a server).
///
/// Always on: ≥ 100 kills and ~500–2000 tasks; 8 × 250 tasks. Long mode
/// (`TASKQ_CHAOS_LONG=1`): 2000 kills and 8 × 5000 tasks; `TASKQ_CHAOS_KILLS=N`
/// sets the number of kills alone. Each test prints a summary line to quote
/// (docs/reliability.md).
@Suite(.serialized) struct ChaosTests {
    @Test func killLoop() {
        let s = Scenario("taskq-chaos")
        defer { s.close() }
        killLoop(s)
    }

    @Test(.enabled(if: PostgresServer.url != nil, Comment(rawValue: PostgresServer.server.skipReason)))
    func killLoopOnPostgreSQL() {
        let s = Scenario("taskq-chaos-pg", postgresURL: PostgresServer.freshSchema())
        defer { s.close() }
        killLoop(s)
    }

    func killLoop(_ s: Scenario) {
        let scale = ChaosScale.current
        let audit = s.dir + "/audit"
        // One audit line per execution, written in one write(2) (O_APPEND) once the
        // handler's work is done; the result names the attempt that produced it.
        let handler = s.script("h.sh", """
            read -r d || :
            sleep "$d"
            echo "$TASKQ_TASK_ID $TASKQ_ATTEMPT" >> \(audit)
            echo "$TASKQ_TASK_ID $TASKQ_ATTEMPT"
            """)
        let args = ["--workers", "4", "--handler", "t=\(handler)", "--backoff-base", "0.05", "--backoff-cap", "0.5"]
        var enqueued: [Int64] = []
        /// Enqueues `n` tasks in one batch: a random 0–50 ms sleep as the payload;
        /// every tenth task may only be tried twice, so some end `failed` after two
        /// interrupted attempts and the failed path is checked too.
        func feed(_ n: Int) {
            let lines = (0..<n).map { i -> String in
                let ms = Int.random(in: 0...50)
                let payload = ms == 0 ? "0" : "0.0" + (ms < 10 ? "0" : "") + String(ms)
                let maxAttempts = (enqueued.count + i) % 10 == 9 ? 2 : 50
                return "{\"kind\":\"t\",\"payload\":\(payload),\"max_attempts\":\(maxAttempts)}"
            }.joined(separator: "\n")
            let r = s.taskq(["enqueue", "--batch"], stdin: lines)
            #expect(r.status == 0, "\(r)")
            let ids = r.out.split(separator: "\n").compactMap { Int64($0) }
            #expect(ids.count == n, "\(r)")
            enqueued += ids
        }

        let started = System.monotonic()
        let deadline = started + scale.killPhaseLimit
        feed(300)
        var sup = s.supervise(args)
        var workerKills = 0, youngKills = 0, supervisorKills = 0, rounds = 0
        var maxRecovery = 0.0
        var problems: [String] = []
        var kills: Int { workerKills + supervisorKills }

        while (kills < scale.kills || enqueued.count < scale.minTasks) && System.monotonic() < deadline && problems.isEmpty {
            rounds += 1
            var seen = Set(workers(of: sup, s))
            let target = Int.random(in: 6...14)
            var killed = 0
            var youngAllowed = true
            while killed < target && System.monotonic() < deadline {
                usleep(UInt32.random(in: 50_000...200_000))
                let live = workers(of: sup, s).map { ($0, processAge($0)) }
                seen.formUnion(live.map(\.0))
                // The supervisor takes a worker that dies within 1 s of its start for a
                // crash loop and backs off before replacing it (up to 10 s); only the
                // death of an older worker resets that. So a worker younger than 1 s
                // (one still starting, registering, making its first claim) is killed
                // only right after an older one: the backoff never exceeds 0.2 s.
                let candidates = youngAllowed ? live : live.filter { $0.1 >= 1.1 }
                guard let (victim, age) = candidates.randomElement() else { continue }
                if kill(victim, SIGKILL) == 0 {
                    killed += 1
                    workerKills += 1
                    youngAllowed = age >= 1.1
                    if age < 1.1 { youngKills += 1 }
                }
            }
            let backlog = s.sqlInt("SELECT count(*) FROM tasks WHERE kind = 't' AND (state = 'queued' OR state = 'running')")
            if backlog < 200 && (kills < scale.kills || enqueued.count < scale.minTasks) { feed(200) }

            // The supervisor itself. Its workers and every handler must die with it.
            seen.formUnion(workers(of: sup, s))
            sup.signal(SIGKILL)
            supervisorKills += 1
            if sup.wait(timeout: 10) == nil { problems.append("round \(rounds): the supervisor survived SIGKILL") }
            if !eventually(timeout: 10, { s.workerPids.isEmpty && pidsInSessions(seen).isEmpty }) {
                problems.append("round \(rounds): orphans after the supervisor died: workers \(s.workerPids), in their sessions \(pidsInSessions(seen))")
            }
            // Nothing runs now: the database and the audit log hold still.
            // (A violation ends the loop after the restart below.)
            problems += checkInvariants(s, enqueued: enqueued, audit: audit, final: false).problems.map { "round \(rounds): \($0)" }

            // A new supervisor recovers what the dead one's workers held, at once.
            let restarted = System.monotonic()
            sup = s.supervise(args)
            let pid = sup.pid
            if !eventually(timeout: 10, { s.sqlInt("SELECT count(*) FROM processes WHERE role = 'supervisor' AND pid = \(pid)") == 1 }) {
                problems.append("round \(rounds): the new supervisor did not register within 10 s: \(sup.stderrSoFar)")
            }
            if eventually(timeout: 10, { runningWithoutLiveOwner(s).isEmpty }) {
                maxRecovery = max(maxRecovery, System.monotonic() - restarted)
            } else {
                problems.append("round \(rounds): tasks still running without a live owner 10 s after a restart: \(runningWithoutLiveOwner(s))")
            }
        }
        let killPhase = System.monotonic() - started
        #expect(kills >= scale.kills, "only \(kills) kills in \(Int(killPhase)) s (limit \(Int(scale.killPhaseLimit)) s)")
        #expect(enqueued.count >= scale.minTasks)

        // Let the last supervisor finish everything, then stop it by sentinel.
        let finished = eventually(timeout: scale.drainLimit, every: 0.2) {
            s.sqlInt("SELECT count(*) FROM tasks WHERE kind = 't' AND (state = 'succeeded' OR state = 'failed')") == enqueued.count
        }
        #expect(finished, "not finished: \(s.sql("SELECT state, count(*) FROM tasks GROUP BY state"))\n\(String(sup.stderrSoFar.suffix(3000)))")
        let stop = s.taskq(["stop", "--wait", "--timeout", "60"])
        #expect(stop.status == 0, "\(stop)")
        #expect(sup.wait(timeout: 30) == 0, "\(String(sup.stderrSoFar.suffix(3000)))")
        #expect(eventually(timeout: 10) { s.workerPids.isEmpty })

        let final = checkInvariants(s, enqueued: enqueued, audit: audit, final: true)
        problems += final.problems
        #expect(problems.isEmpty, "\(problems.count) invariant violations:\n\(problems.prefix(30).joined(separator: "\n"))")
        #expect(s.sqlInt("SELECT count(*) FROM processes") == 0, "processes left registered: \(s.sql("SELECT * FROM processes"))")
        // Both ways of interrupting an attempt happened (the loop proved something).
        #expect(s.sqlInt("SELECT count(*) FROM tasks WHERE last_error LIKE '%killed by signal 9%'") > 0)
        #expect(s.sqlInt("SELECT count(*) FROM tasks WHERE last_error LIKE '%exited without cleaning up%'") > 0)

        let f = final.figures
        print("""
            taskq chaos kill loop\(s.isPostgres ? " on PostgreSQL" : ""): kills \(kills) (workers \(workerKills), of which \(youngKills) in their first second; supervisors \(supervisorKills)) in \(rounds) rounds, \
            tasks \(f.tasks) (succeeded \(f.succeeded), failed after interrupted attempts \(f.failed)), lost \(f.lost), \
            completed twice \(f.completedTwice), executions \(f.executions), executions repeated after a kill \(f.repeated), \
            interrupted attempts \(f.interruptedAttempts), longest recovery after a supervisor restart \(ms(maxRecovery)), \
            invariant checks \(rounds + 1), violations \(problems.count), kill phase \(Int(killPhase)) s, \
            total \(Int(System.monotonic() - started)) s
            """)
    }

    /// Scenario 4: 8 producer processes enqueue one task at a time (the first ones
    /// each by its own `taskq enqueue` process, the rest through `--lines`, one
    /// commit per line) while 4 workers drain. Every task runs exactly once.
    @Test func eightProducersOneByOneWhileFourWorkersDrain() {
        let scale = ChaosScale.current
        let perProducer = scale.long ? 5000 : 250
        let asProcesses = scale.long ? 250 : 40
        let total = 8 * perProducer
        let s = Scenario("taskq-chaos")
        defer { s.close() }
        let audit = s.dir + "/audit"
        s.script("h.sh", "cat; echo \"$TASKQ_TASK_ID $TASKQ_ATTEMPT\" >> \(audit)")
        s.script("produce.sh", """
            p=$1
            i=1
            while [ $i -le \(asProcesses) ]; do
              "$TASKQ" enqueue t "{\\"p\\":$p,\\"i\\":$i}" >> "ids.$p" || exit 1
              i=$((i + 1))
            done
            while [ $i -le \(perProducer) ]; do
              echo "{\\"p\\":$p,\\"i\\":$i}"
              i=$((i + 1))
            done | "$TASKQ" enqueue t --lines >> "ids.$p" || exit 1
            """)
        let started = System.monotonic()
        let sup = s.supervise(["--workers", "4", "--handler", "t=./h.sh"])
        #expect(eventually { workers(of: sup, s).count == 4 })
        let producers = (1...8).map { p in s.start("/bin/sh", ["produce.sh", String(p)], env: ["TASKQ": Harness.taskq]) }
        for (i, p) in producers.enumerated() {
            #expect(p.wait(timeout: scale.long ? 1200 : 120) == 0, "producer \(i + 1): \(p.stderrSoFar)")
        }
        let produced = System.monotonic() - started
        var printed: [Int64] = []
        for p in 1...8 {
            let ids = String(decoding: readAll(s.dir + "/ids.\(p)"), as: UTF8.self).split(separator: "\n").compactMap { Int64($0) }
            #expect(ids.count == perProducer, "producer \(p) printed \(ids.count) ids")
            printed += ids
        }
        #expect(Set(printed).count == total)
        #expect(eventually(timeout: scale.long ? 1800 : 90, every: 0.2) { s.count("succeeded") == total },
                "\(s.count("succeeded")) of \(total) succeeded\n\(String(sup.stderrSoFar.suffix(3000)))")
        let drained = System.monotonic() - started

        let runs = String(decoding: readAll(audit), as: UTF8.self).split(separator: "\n")
        let ran = runs.compactMap { $0.split(separator: " ").first.flatMap { Int64($0) } }
        let repeated = ran.count - Set(ran).count
        #expect(ran.count == total)
        #expect(repeated == 0)
        #expect(Set(ran) == Set(printed))
        #expect(runs.allSatisfy { $0.hasSuffix(" 1") }, "every task ran at its first attempt")
        #expect(s.sqlInt("SELECT count(*) FROM tasks WHERE kind = 't'") == total)
        #expect(s.sqlInt("SELECT count(DISTINCT payload) FROM tasks WHERE kind = 't'") == total)
        #expect(s.sqlInt("""
            SELECT count(*) FROM tasks WHERE kind = 't' AND state = 'succeeded' AND attempts = 1
              AND last_error IS NULL AND CAST(result AS TEXT) = payload
            """) == total)
        // The workers drained while the producers were still producing.
        #expect(s.sqlInt("SELECT count(*) FROM tasks WHERE finished_at < (SELECT max(created_at) FROM tasks WHERE kind = 't')") > 0)
        #expect(s.sql("PRAGMA integrity_check; SELECT (SELECT user_version FROM pragma_user_version) = max(version) AND max(version) = count(*) FROM taskq_migrations") == "ok\n1")
        let stop = s.taskq(["stop", "--wait", "--timeout", "60"])
        #expect(stop.status == 0, "\(stop)")
        #expect(sup.wait(timeout: 30) == 0, "\(String(sup.stderrSoFar.suffix(3000)))")
        #expect(s.sqlInt("SELECT count(*) FROM processes") == 0)
        #expect(s.workerPids.isEmpty)
        print("""
            taskq chaos producers: 8 producers x \(perProducer) tasks one by one (\(8 * asProcesses) taskq enqueue processes, \
            \(total - 8 * asProcesses) --lines commits) = \(total) tasks, lost \(total - Set(ran).count), \
            ran exactly once \(Set(ran).count - repeated), repeated \(repeated), enqueued in \(Int(produced)) s, \
            all done in \(Int(drained)) s
            """)
    }
}

// MARK: - scale

private struct ChaosScale {
    /// Kills (worker + supervisor) before the loop ends.
    var kills: Int
    /// At least this many tasks are enqueued before the loop ends.
    var minTasks: Int
    /// TASKQ_CHAOS_LONG is set: full-size runs.
    var long: Bool
    /// Give up killing after this long (the test then fails on the kill count).
    var killPhaseLimit: Double { long || kills > 100 ? Double(kills) * 0.6 + 120 : 75 }
    var drainLimit: Double { long || kills > 100 ? 600 : 60 }

    static let current: ChaosScale = {
        func env(_ k: String) -> String? { getenv(k).map { String(cString: $0) } }
        let long = env("TASKQ_CHAOS_LONG").map { !$0.isEmpty && $0 != "0" } ?? false
        var kills = long ? 2000 : 100
        if let k = env("TASKQ_CHAOS_KILLS").flatMap({ Int($0) }), k > 0 { kills = k }
        return ChaosScale(kills: kills, minTasks: long ? 2000 : 500, long: long)
    }()
}

// MARK: - invariants

private struct Figures {
    var tasks = 0, succeeded = 0, failed = 0
    var executions = 0, repeated = 0, lost = 0, completedTwice = 0, interruptedAttempts = 0
}

/// Checks the queue's invariants against the database and the audit log; returns
/// what is violated (empty: all hold) and the figures for the summary.
///
/// - every enqueued id exists, and no other task appeared;
/// - a succeeded task holds exactly one result, the one its last attempt printed,
///   and that attempt's execution is in the audit log;
/// - a failed task used all its attempts and its error names the last one;
/// - every attempt after the first follows an interruption on record (last_error
///   names the worker killed by signal 9, or found dead by recovery);
/// - executions per task ≤ attempts, no attempt number executed twice;
/// - every failed attempt has its row in the attempt history (task_attempts);
/// - `PRAGMA integrity_check` is ok (SQLite), the schema version is the latest migration's;
/// - at the end (`final`), every task is succeeded or failed, none is running.
private func checkInvariants(_ s: Scenario, enqueued: [Int64], audit: String, final: Bool) -> (problems: [String], figures: Figures) {
    var problems: [String] = []
    var f = Figures()
    let (healthQuery, healthy) = s.isPostgres
        ? ("SELECT 'ok', max(version) = count(*) FROM taskq_migrations", "ok|t")
        : ("PRAGMA integrity_check; SELECT (SELECT user_version FROM pragma_user_version) = max(version) AND max(version) = count(*) FROM taskq_migrations",
           "ok\n1")
    let health = s.sql(healthQuery)
    if health != healthy { problems.append("integrity_check / schema version = latest migration: \(health)") }

    // One line per task, the checks that need its text done in SQL (the same SQL on
    // both stores but for the result's type: text on SQLite, bytea on PostgreSQL).
    let result = s.isPostgres ? "convert_from(result, 'UTF8')" : "result"
    let newline = s.isPostgres ? "chr(10)" : "char(10)"
    let rows = s.sql("""
        SELECT id, state, attempts, max_attempts,
               CASE WHEN \(result) = id || ' ' || attempts || \(newline) THEN 1 ELSE 0 END,
               CASE WHEN state = 'queued' OR state = 'failed' THEN attempts ELSE attempts - 1 END,
               CASE WHEN last_error LIKE '%while running task ' || id || ', attempt '
                        || (CASE WHEN state = 'queued' OR state = 'failed' THEN attempts ELSE attempts - 1 END)
                        || '/' || max_attempts || '%'
                        AND (last_error LIKE '%killed by signal 9%' OR last_error LIKE '%exited without cleaning up%')
                    THEN 1 ELSE 0 END
        FROM tasks WHERE kind = 't' ORDER BY id
        """)
    var executions: [Int64: [Int]] = [:]
    for line in String(decoding: readAll(audit), as: UTF8.self).split(separator: "\n") {
        let p = line.split(separator: " ")
        guard p.count == 2, let id = Int64(p[0]), let a = Int(p[1]) else {
            problems.append("audit line not understood: \(line)")
            continue
        }
        executions[id, default: []].append(a)
        f.executions += 1
    }
    var inDatabase = Set<Int64>()
    for row in rows.split(separator: "\n") {
        let c = row.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
        guard c.count == 7, let id = Int64(c[0]), let attempts = Int(c[2]), let maxAttempts = Int(c[3]),
              let lastFailed = Int(c[5]) else {
            problems.append("row not understood: \(row)")
            continue
        }
        let state = c[1], resultOK = c[4] == "1", errorOK = c[6] == "1"
        inDatabase.insert(id)
        f.tasks += 1
        let runs = executions[id] ?? []
        if Set(runs).count != runs.count || runs.count > attempts {
            f.completedTwice += 1
            problems.append("task \(id): executions \(runs) for \(attempts) attempts (\(state))")
        }
        if let bad = runs.first(where: { $0 < 1 || $0 > attempts }) {
            problems.append("task \(id): executed as attempt \(bad) but has \(attempts) attempts on record")
        }
        if lastFailed >= 1 && !errorOK {
            problems.append("task \(id) (\(state), attempt \(attempts)/\(maxAttempts)): attempt \(lastFailed) was not an interruption on record: \(s.sql("SELECT last_error FROM tasks WHERE id = \(id)"))")
        }
        switch state {
        case "succeeded":
            f.succeeded += 1
            f.interruptedAttempts += attempts - 1
            if !resultOK { problems.append("task \(id): result is not its last attempt's (\(attempts)): \(s.sql("SELECT \(result) FROM tasks WHERE id = \(id)"))") }
            if !runs.contains(attempts) { problems.append("task \(id): succeeded at attempt \(attempts), which never ran (audit \(runs))") }
        case "failed":
            f.failed += 1
            f.interruptedAttempts += attempts
            if attempts != maxAttempts { problems.append("task \(id): failed after \(attempts) of \(maxAttempts) attempts") }
        default:
            if final { problems.append("task \(id) is \(state) at the end") }
        }
    }
    // Every attempt that failed is in the history, not only the last one
    // (task_attempts; released attempts are not counted and may be there too).
    let unrecorded = s.sql("""
        SELECT t.id || ': ' || (SELECT count(DISTINCT a.attempt) FROM task_attempts a
                                 WHERE a.task_id = t.id AND a.outcome <> 'released')
               || ' of ' || (CASE WHEN t.state = 'queued' OR t.state = 'failed' THEN t.attempts ELSE t.attempts - 1 END)
        FROM tasks t WHERE t.kind = 't'
          AND (SELECT count(DISTINCT a.attempt) FROM task_attempts a WHERE a.task_id = t.id AND a.outcome <> 'released')
              <> (CASE WHEN t.state = 'queued' OR t.state = 'failed' THEN t.attempts ELSE t.attempts - 1 END)
        """)
    if !unrecorded.isEmpty { problems.append("failed attempts missing from task_attempts (task: recorded of failed): \(unrecorded.prefix(400))") }
    let missing = enqueued.filter { !inDatabase.contains($0) }
    f.lost = missing.count
    if !missing.isEmpty { problems.append("\(missing.count) enqueued tasks vanished: \(missing.prefix(20))") }
    let extra = inDatabase.subtracting(enqueued)
    if !extra.isEmpty { problems.append("tasks nobody enqueued: \(extra.sorted().prefix(20))") }
    let phantom = Set(executions.keys).subtracting(inDatabase)
    if !phantom.isEmpty { problems.append("executions of unknown tasks: \(phantom.sorted().prefix(20))") }
    f.repeated = f.executions - executions.count
    if final && s.sqlInt("SELECT count(*) FROM tasks WHERE state = 'running'") != 0 {
        problems.append("tasks running after the stop: \(s.sql("SELECT id, owner FROM tasks WHERE state = 'running'"))")
    }
    return (problems, f)
}

// MARK: - processes

private func ms(_ seconds: Double) -> String { "\(Int((seconds * 1000).rounded())) ms" }


/// Seconds since `pid` started (0 if unknown).
private func processAge(_ pid: Int32) -> Double {
    guard let f = System.statFields(pid), f.count > 19, let ticks = Double(f[19]) else { return 0 }
    let up = String(decoding: readAll("/proc/uptime"), as: UTF8.self).split(separator: " ").first.flatMap { Double($0) } ?? 0
    return up - ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// Live processes whose session is one of `sessions` (a worker's session holds the
/// worker and every handler process group it started).
private func pidsInSessions(_ sessions: Set<Int32>) -> [Int32] {
    guard !sessions.isEmpty else { return [] }
    var out: [Int32] = []
    for name in listDirectory("/proc") {
        guard let pid = Int32(name), let f = System.statFields(pid), f.count > 3 else { continue }
        if f[0] != "Z" && f[0] != "X", let sid = Int32(f[3]), sessions.contains(sid) { out.append(pid) }
    }
    return out
}

