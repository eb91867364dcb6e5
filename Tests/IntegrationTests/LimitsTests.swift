import Testing
import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Supervisors with very many handlers or queues, or a very long handler command:
/// each must run and drain like a small one.
@Suite struct LimitsTests {
    /// 8,000 kinds: more than SQLite's expression depth (1,000), so the claim and the
    /// idle worker's next-run query must still prepare; a worker configuration over
    /// 128 KiB; and as many `--handler` options, which must parse in linear time (they
    /// took minutes). A task that fails its first attempt makes `--until-empty` wait
    /// for its retry (the next-run query, retries only).
    @Test func thousandsOfKindsDrainUntilEmpty() {
        let s = Scenario("taskq-limits")
        defer { s.close() }
        s.script("h.sh", "cat > /dev/null; [ \"$TASKQ_KIND\" != k600 ] || [ \"$TASKQ_ATTEMPT\" -gt 1 ]")
        let kinds = (1...8_000).map { "k\($0)" }
        for k in ["k1", "k600", "k8000"] { s.enqueue(k) }
        let other = s.enqueue("unhandled")
        let sup = s.supervise(["--until-empty", "--workers", "2", "--backoff-base", "0.1"]
                              + kinds.flatMap { ["--handler", "\($0)=./h.sh"] })
        #expect(sup.wait(timeout: 120) == 0, "\(sup.stderrSoFar.suffix(2000))")
        #expect(s.sql("SELECT kind || ':' || state || ':' || attempts FROM tasks WHERE kind <> 'unhandled' ORDER BY id")
                == "k1:succeeded:1\nk600:succeeded:2\nk8000:succeeded:1")
        #expect(s.sql("SELECT state FROM tasks WHERE id = \(other)") == "queued")
        #expect(s.workerPids.isEmpty)
        // The start line names a few kinds and counts the rest, not all 8,000.
        #expect(sup.stderrSoFar.contains("and 7990 more kinds"), "\(sup.stderrSoFar.prefix(600))")
    }

    /// The same with more queues than SQLite's expression depth.
    @Test func thousandsOfQueuesDrainUntilEmpty() {
        let s = Scenario("taskq-limits")
        defer { s.close() }
        s.script("h.sh", "cat > /dev/null; [ \"$TASKQ_QUEUE\" != q600 ] || [ \"$TASKQ_ATTEMPT\" -gt 1 ]")
        let queues = (1...1_200).map { "q\($0)" }
        for q in ["q1", "q600", "q1200"] { s.enqueue("t", "null", ["--queue", q]) }
        let other = s.enqueue("t", "null", ["--queue", "unserved"])
        let sup = s.supervise(["--until-empty", "--workers", "2", "--backoff-base", "0.1", "--handler", "t=./h.sh"]
                              + queues.flatMap { ["--queue", $0] })
        #expect(sup.wait(timeout: 120) == 0, "\(sup.stderrSoFar.suffix(2000))")
        #expect(s.sql("SELECT queue || ':' || state || ':' || attempts FROM tasks WHERE queue <> 'unserved' ORDER BY id")
                == "q1:succeeded:1\nq600:succeeded:2\nq1200:succeeded:1")
        #expect(s.sql("SELECT state FROM tasks WHERE id = \(other)") == "queued")
        #expect(s.workerPids.isEmpty)
    }

    /// Handlers whose commands add up to more than one command-line argument may
    /// hold (128 KiB): the worker's configuration reaches it through a descriptor,
    /// which its handlers do not inherit.
    @Test func workerConfigurationOver128KiB() {
        let s = Scenario("taskq-limits")
        defer { s.close() }
        // 300 handlers of 600 bytes each: 180 KB of configuration.
        let padding = String(repeating: "x", count: 560)
        let kinds = (1...300).map { "k\($0)" }
        let command = "ls -l /proc/$$/fd; : \(padding)"
        let ids = ["k1", "k150", "k300"].map { s.enqueue($0) }
        let sup = s.supervise(["--until-empty", "--workers", "2"] + kinds.flatMap { ["--handler", "\($0)=\(command)"] })
        #expect(sup.wait(timeout: 120) == 0, "\(sup.stderrSoFar.suffix(2000))")
        #expect(s.count("succeeded") == 3, "\(sup.stderrSoFar.suffix(2000))")
        for id in ids {
            let fds = s.sql("SELECT result FROM tasks WHERE id = \(id)")
            #expect(!fds.contains("memfd:"), "a handler inherited a worker's descriptor: \(fds)")
        }
    }

    /// One command whose JSON form is over 128 KiB (each `"` is written `\"`).
    @Test func handlerCommandWhoseConfigurationIsOver128KiB() {
        let s = Scenario("taskq-limits")
        defer { s.close() }
        let command = "cat; : '" + String(repeating: "\"", count: 100_000) + "'"
        let id = s.enqueue("t", "{\"n\":1}")
        let sup = s.supervise(["--until-empty", "--workers", "1", "--handler", "t=\(command)"])
        #expect(sup.wait(timeout: 60) == 0, "\(sup.stderrSoFar.suffix(2000))")
        #expect(s.sql("SELECT state || ':' || result FROM tasks WHERE id = \(id)") == "succeeded:{\"n\":1}")
    }
}
