import Testing
import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Command handlers as the README defines them: payload on stdin, the task in the
/// environment, stdout as the result byte for byte, failures with readable errors,
/// retries with backoff, timeouts that kill the whole process group.
@Suite struct HandlerTests {
    @Test func payloadEnvironmentAndWorkingDirectory() {
        let s = Scenario("taskq-handler")
        defer { s.close() }
        s.script("h.sh", """
            cat > "in.$TASKQ_TASK_ID"
            {
              echo "id=$TASKQ_TASK_ID"
              echo "kind=$TASKQ_KIND"
              echo "queue=$TASKQ_QUEUE"
              echo "attempt=$TASKQ_ATTEMPT"
              echo "db=$TASKQ_DB"
              echo "cwd=$(pwd -P)"
            } > "env.$TASKQ_TASK_ID"
            echo ok
            """)
        let small = #"{"name":"Zoë — ☃ 日本語 🚀","esc":"tab\t nl\n quote\" \u00e9 \ud83d\ude80","n":[1,2.5e3,null,true]}"#
        let big = "{\"blob\":\"" + String(repeating: "äb€𝄞 ", count: 30_000) + "\",\"end\":1}"  // ~330 KB, several pipe buffers
        #expect(big.utf8.count > 300_000)
        let a = s.enqueue("img.resize:v2", small, ["--queue", "q_1-x.y"])
        let rb = s.taskq(["enqueue", "img.resize:v2", "-"], stdin: big)
        #expect(rb.status == 0, "\(rb)")
        let b = Int64(rb.out) ?? -1
        // A handler that never reads its (large) stdin still succeeds.
        let ignored = s.taskq(["enqueue", "ignore", "-"], stdin: big)
        #expect(ignored.status == 0, "\(ignored)")
        // The supervisor's own TASKQ_* variables (a relative TASKQ_DB choosing the
        // database, stale task variables) do not leak into handlers as they are.
        let sup = s.supervise(["--workers", "2", "--handler", "img.resize:v2=./h.sh", "--handler", "ignore=echo ignored"],
                              env: ["TASKQ_DB": "taskq.db", "TASKQ_ATTEMPT": "99", "TASKQ_TASK_ID": "bogus", "TASKQ_QUEUE": "bogus"])
        #expect(eventually(timeout: 20) { s.count("succeeded") == 3 }, "\(sup.stderrSoFar)")
        #expect(s.sql("SELECT result FROM tasks WHERE id = \(ignored.out)") == "ignored\n")

        // The payload arrives on stdin byte for byte.
        #expect(readAll(s.dir + "/in.\(a)") == Array(small.utf8))
        #expect(readAll(s.dir + "/in.\(b)") == Array(big.utf8))
        // The task in the environment; the supervisor's working directory.
        let dir = physicalPath(s.dir)
        let env = String(decoding: readAll(s.dir + "/env.\(a)"), as: UTF8.self)
        #expect(env == """
            id=\(a)
            kind=img.resize:v2
            queue=q_1-x.y
            attempt=1
            db=\(dir)/taskq.db
            cwd=\(dir)

            """)
        let envB = String(decoding: readAll(s.dir + "/env.\(b)"), as: UTF8.self)
        #expect(envB.contains("id=\(b)\n") && envB.contains("queue=default\n") && envB.contains("attempt=1\n")
                && envB.contains("db=\(dir)/taskq.db\n"), "\(envB)")
        sup.signal(SIGTERM)
        #expect(sup.wait(timeout: 30) == 0)
    }

    @Test func handlersGetTheDatabasesCanonicalPath() {
        // --db through '..' and a symlink: workers and handlers use the real file
        // (the -wal they watch sits beside it).
        let s = Scenario("taskq-handler")
        defer { s.close() }
        mkdir(s.dir + "/sub", 0o755)
        #expect(s.taskq(["init"]).status == 0)
        symlink(s.dir + "/taskq.db", s.dir + "/link.db")
        let id = s.enqueue("e")
        let sup = s.supervise(["--db", "sub/../link.db", "--workers", "1", "--handler", "e=printf %s \"$TASKQ_DB\"", "--until-empty"])
        #expect(sup.wait(timeout: 30) == 0, "\(sup.stderrSoFar)")
        #expect(s.sql("SELECT result FROM tasks WHERE id = \(id)") == physicalPath(s.dir) + "/taskq.db")
    }

    /// stdout is the result, byte for byte: UTF-8 text (stored as TEXT, trailing
    /// whitespace kept), bytes with NULs (a BLOB), and a few MB of random bytes.
    @Test func stdoutIsStoredByteForByte() {
        let s = Scenario("taskq-handler")
        defer { s.close() }
        s.script("text.sh", #"cat > /dev/null; printf 'h\303\251llo \342\230\203 \360\237\232\200\n\n  tail\t'"#)
        s.script("bin.sh", #"cat > /dev/null; printf '\000\001\377abc\000'"#)
        s.script("big.sh", "cat > /dev/null; head -c 3000000 /dev/urandom | tee big.bin")
        let text = s.enqueue("text")
        let bin = s.enqueue("bin")
        let big = s.enqueue("big")
        let sup = s.supervise(["--workers", "2", "--handler", "text=./text.sh", "--handler", "bin=./bin.sh", "--handler", "big=./big.sh"])
        #expect(eventually(timeout: 30) { s.count("succeeded") == 3 }, "\(sup.stderrSoFar)")

        let expectedText = Array("héllo ☃ 🚀\n\n  tail\t".utf8)
        #expect(s.sql("SELECT typeof(result) || ':' || hex(result) FROM tasks WHERE id = \(text)")
                    == "text:" + hex(expectedText))
        let rt = s.taskq(["result", String(text)])
        #expect(rt.status == 0)
        #expect(rt.stdoutBytes == expectedText)

        let expectedBin: [UInt8] = [0, 1, 255, 97, 98, 99, 0]
        #expect(s.sql("SELECT typeof(result) || ':' || hex(result) FROM tasks WHERE id = \(bin)") == "blob:0001FF61626300")
        let rbin = s.taskq(["result", String(bin)])
        #expect(rbin.status == 0)
        #expect(rbin.stdoutBytes == expectedBin)

        let written = readAll(s.dir + "/big.bin")
        #expect(written.count == 3_000_000)
        #expect(s.sqlInt("SELECT length(result) FROM tasks WHERE id = \(big)") == 3_000_000)
        let rbig = s.taskq(["result", String(big)])
        #expect(rbig.status == 0)
        #expect(rbig.stdoutBytes == written)
        sup.signal(SIGTERM)
        #expect(sup.wait(timeout: 30) == 0)
    }

    /// A non-zero exit fails the attempt with "exit status N" and the tail of stderr;
    /// it is retried with backoff until max attempts, then the task is failed.
    @Test func nonZeroExitIsRetriedWithBackoffThenFails() {
        let s = Scenario("taskq-handler")
        defer { s.close() }
        s.script("h.sh", """
            cat > /dev/null
            date +%s.%N >> attempts
            echo "FIRST LINE" >&2
            head -c 10000 /dev/zero | tr '\\000' x >&2
            echo >&2
            echo "boom on attempt $TASKQ_ATTEMPT" >&2
            exit 3
            """)
        s.script("ok.sh", "cat")
        let id = s.enqueue("t", "{}", ["--max-attempts", "3"])
        let sup = s.supervise(["--workers", "1", "--handler", "t=./h.sh", "--handler", "ok=./ok.sh", "--backoff-base", "0.05"])
        #expect(eventually(timeout: 20) { s.sql("SELECT state FROM tasks WHERE id = \(id)") == "failed" }, "\(sup.stderrSoFar)")
        #expect(s.sql("SELECT attempts FROM tasks WHERE id = \(id)") == "3")
        let error = s.sql("SELECT last_error FROM tasks WHERE id = \(id)")
        #expect(error.hasPrefix("attempt 3/3: handler exit status 3"), "\(error)")
        #expect(error.contains("boom on attempt 3"), "\(error)")
        // Only the tail of stderr is kept.
        #expect(!error.contains("FIRST LINE"), "\(error.prefix(200))")
        #expect(error.count < 2300, "\(error.count) characters")
        // Three attempts, each after a backoff (base 0.05 s: ≥ 0.025 s, then ≥ 0.05 s).
        let times = String(decoding: readAll(s.dir + "/attempts"), as: UTF8.self).split(separator: "\n").compactMap { Double($0) }
        #expect(times.count == 3)
        if times.count == 3 {
            #expect(times[1] - times[0] >= 0.025, "\(times)")
            #expect(times[2] - times[1] >= 0.05, "\(times)")
        }
        let r = s.taskq(["result", String(id)])
        #expect(r.status == 1)
        #expect(r.stdout.isEmpty)
        #expect(r.stderr.contains("failed after 3 attempts"), "\(r)")
        #expect(r.stderr.contains("exit status 3"), "\(r)")
        // The worker is fine.
        let worker = workers(of: sup, s)
        let ok = s.enqueue("ok", "42")
        #expect(eventually(timeout: 10) { s.sql("SELECT state || ':' || result FROM tasks WHERE id = \(ok)") == "succeeded:42" })
        #expect(workers(of: sup, s) == worker)
        sup.signal(SIGTERM)
        #expect(sup.wait(timeout: 30) == 0)
    }

    @Test func handlerKilledBySignal() {
        let s = Scenario("taskq-handler")
        defer { s.close() }
        // Inline, so $$ is the handler shell itself (sh -c COMMAND), not a script it runs.
        let id = s.enqueue("t", "null", ["--max-attempts", "1"])
        let sup = s.supervise(["--workers", "1", "--handler", "t=cat > /dev/null; echo 'about to die' >&2; kill -9 $$"])
        #expect(eventually(timeout: 20) { s.sql("SELECT state FROM tasks WHERE id = \(id)") == "failed" }, "\(sup.stderrSoFar)")
        let error = s.sql("SELECT last_error FROM tasks WHERE id = \(id)")
        #expect(error.contains("killed by signal 9"), "\(error)")
        #expect(error.contains("about to die"), "\(error)")
        #expect(s.sql("SELECT attempts FROM tasks WHERE id = \(id)") == "1")
        sup.signal(SIGTERM)
        #expect(sup.wait(timeout: 30) == 0)
    }

    /// --timeout kills the handler's whole process group: the shell, its foreground
    /// child and a background grandchild.
    @Test func timeoutKillsTheWholeProcessGroup() {
        let s = Scenario("taskq-handler")
        defer { s.close() }
        s.script("h.sh", """
            cat > /dev/null
            sh -c 'echo $$ > bg.pid; exec \(s.longSleep)' &
            \(s.longSleep)
            """)
        let id = s.enqueue("t", "null", ["--timeout", "0.5", "--max-attempts", "1"])
        let start = System.monotonic()
        let sup = s.supervise(["--workers", "1", "--handler", "t=./h.sh"])
        #expect(eventually(timeout: 20) { s.sql("SELECT state FROM tasks WHERE id = \(id)") == "failed" }, "\(sup.stderrSoFar)")
        #expect(System.monotonic() - start < 15)
        let error = s.sql("SELECT last_error FROM tasks WHERE id = \(id)")
        #expect(error.contains("timed out"), "\(error)")
        let bg = Int32(String(decoding: readAll(s.dir + "/bg.pid"), as: UTF8.self).trimmingCharacters(in: " \n"))
        #expect(bg != nil, "the background grandchild started")
        #expect(eventually(timeout: 5) { pidsMatching(s.longSleep).isEmpty && !(bg.map(processAlive) ?? false) })
        #expect(!sup.exited)
        sup.signal(SIGTERM)
        #expect(sup.wait(timeout: 30) == 0)
    }

    /// A handler that leaves a daemon behind succeeds; the daemon dies with its group.
    @Test func daemonChildIsKilledWithTheGroup() {
        let s = Scenario("taskq-handler")
        defer { s.close() }
        s.script("h.sh", """
            cat > /dev/null
            (sh -c 'echo $$ > daemon.pid; exec \(s.longSleep)' &)
            while [ ! -s daemon.pid ]; do sleep 0.01; done
            echo ok
            """)
        let id = s.enqueue("t")
        let sup = s.supervise(["--workers", "1", "--handler", "t=./h.sh"])
        #expect(eventually(timeout: 20) { s.sql("SELECT state FROM tasks WHERE id = \(id)") == "succeeded" }, "\(sup.stderrSoFar)")
        #expect(s.sql("SELECT result FROM tasks WHERE id = \(id)") == "ok\n")
        let daemon = Int32(String(decoding: readAll(s.dir + "/daemon.pid"), as: UTF8.self).trimmingCharacters(in: " \n"))
        #expect(daemon != nil)
        #expect(eventually(timeout: 5) { pidsMatching(s.longSleep).isEmpty && !(daemon.map(processAlive) ?? false) })
        sup.signal(SIGTERM)
        #expect(sup.wait(timeout: 30) == 0)
    }

    /// More than 16 MiB on stdout fails the attempt (the result limit) at once: the
    /// handler's group is killed when it crosses the limit, even one that would write
    /// without end; the worker survives and its memory stays bounded.
    @Test(arguments: ["head -c 100000000 /dev/zero", "cat /dev/zero"])
    func outputOverTheResultLimitFailsTheAttempt(writer: String) {
        let s = Scenario("taskq-handler")
        defer { s.close() }
        // The pause keeps the task running long enough to be seen running (on a busy
        // machine the flood is over within one look otherwise).
        s.script("h.sh", "cat > /dev/null; sleep 1; \(writer)")
        let id = s.enqueue("t", "null", ["--max-attempts", "1"])
        let sup = s.supervise(["--workers", "1", "--handler", "t=./h.sh", "--handler", "ok=cat"])
        #expect(eventually { s.sql("SELECT state FROM tasks WHERE id = \(id)") == "running" })
        let worker = workers(of: sup, s)
        #expect(worker.count == 1)
        #expect(eventually(timeout: 30) { s.sql("SELECT state FROM tasks WHERE id = \(id)") == "failed" }, "\(sup.stderrSoFar)")
        let error = s.sql("SELECT last_error FROM tasks WHERE id = \(id)")
        #expect(error.contains("16 MiB"), "\(error)")
        #expect(s.sql("SELECT result IS NULL FROM tasks WHERE id = \(id)") == "1")
        // The worker's peak memory: the 16 MiB buffer and change, not the 100 MB written.
        let status = String(decoding: readAll("/proc/\(worker.first ?? 0)/status"), as: UTF8.self)
        let peakKB = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") }
            .flatMap { $0.split(separator: " ").dropFirst().first }.flatMap { Int($0) } ?? 0
        #expect(peakKB > 0 && peakKB < 80_000, "worker peak RSS \(peakKB) kB")
        // Same worker, still serving.
        #expect(workers(of: sup, s) == worker)
        let ok = s.enqueue("ok", "[1]")
        #expect(eventually(timeout: 10) { s.sql("SELECT state || ':' || result FROM tasks WHERE id = \(ok)") == "succeeded:[1]" })
        #expect(workers(of: sup, s) == worker)
        sup.signal(SIGTERM)
        #expect(sup.wait(timeout: 30) == 0)
    }

    /// A worker claims only kinds it has a handler for, and only the queues it serves.
    @Test func unhandledKindsAndUnservedQueuesStayQueued() {
        let s = Scenario("taskq-handler")
        defer { s.close() }
        s.script("h.sh", "cat")
        // Enqueued first, so a claim ignoring kind or queue would take them first.
        let otherKind = s.enqueue("other", "1", ["--queue", "a"])
        let otherQueue = s.enqueue("t", "2", ["--queue", "c"])
        let defaultQueue = s.enqueue("t", "3")
        let inA = s.enqueue("t", "4", ["--queue", "a"])
        let inB = s.enqueue("t", "5", ["--queue", "b"])
        let sup = s.supervise(["--workers", "2", "--handler", "t=./h.sh", "--queue", "a", "--queue", "b"])
        #expect(eventually(timeout: 20) {
            s.sql("SELECT group_concat(state) FROM tasks WHERE id IN (\(inA), \(inB))") == "succeeded,succeeded"
        }, "\(sup.stderrSoFar)")
        // One more round trip through the queue, so the workers have looked again.
        let last = s.enqueue("t", "6", ["--queue", "b"])
        #expect(eventually(timeout: 10) { s.sql("SELECT state FROM tasks WHERE id = \(last)") == "succeeded" })
        for id in [otherKind, otherQueue, defaultQueue] {
            #expect(s.sql("SELECT state || ':' || attempts || ':' || coalesce(last_error, '') FROM tasks WHERE id = \(id)") == "queued:0:")
        }
        sup.signal(SIGTERM)
        #expect(sup.wait(timeout: 30) == 0)
        // Another supervisor serving every queue with both handlers runs the rest.
        let all = s.supervise(["--workers", "1", "--handler", "t=./h.sh", "--handler", "other=./h.sh", "--until-empty"])
        #expect(all.wait(timeout: 30) == 0, "\(all.stderrSoFar)")
        #expect(s.count("succeeded") == 6)
    }
}

/// The path with symlinks resolved, as getcwd reports it.
private func physicalPath(_ path: String) -> String {
    guard let p = realpath(path, nil) else { return path }
    defer { free(p) }
    return String(cString: p)
}

private func hex(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789ABCDEF")
    return String(bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] })
}

