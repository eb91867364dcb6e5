import Testing
import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The benchmarks' worker program (Benchmarks/taskq-bench-worker) drains the
/// harness's no-op tasks and writes its audit lines; the Swift worker example,
/// which teaches, has no benchmark handler.
@Suite struct BenchWorkerTests {
    @Test func drainsBenchNoopTasksWritingOneAuditLineEach() throws {
        let s = Scenario("taskq-bench-worker")
        defer { s.close() }
        let payloads = (1...3).map { "{\"seq\":\($0),\"enq_ns\":\(1000 + $0),\"pad\":\"x\"}" }
        let ids = s.taskq(["enqueue", "bench-noop", "--lines"], stdin: payloads.joined(separator: "\n") + "\n")
        #expect(ids.status == 0, "\(ids)")
        let audit = s.dir + "/audit"
        let r = run(Harness.binDir + "/taskq-bench-worker", ["--db", s.db, "--workers", "1", "--until-empty", "--report"],
                    env: ["BENCH_AUDIT_DIR": audit], cwd: s.dir, timeout: 60)
        #expect(r.status == 0, "\(r)")
        let report = try JSON.parse(r.out)
        #expect((report["elapsed_s"]?.doubleValue ?? -1) >= 0, "\(r.stdout)")
        #expect(s.sql("SELECT group_concat(result, ' ') FROM (SELECT result FROM tasks ORDER BY id)")
                == payloads.map { String($0.utf8.count) }.joined(separator: " "))
        // One tab-separated line per execution: seq, enq_ns, start ns, pid.
        let lines = listDirectory(audit).flatMap { String(decoding: readAll(audit + "/" + $0), as: UTF8.self).split(separator: "\n") }
        #expect(lines.map { $0.split(separator: "\t").prefix(2).joined(separator: " ") }.sorted() == ["1 1001", "2 1002", "3 1003"], "\(lines)")
    }

    @Test func theWorkerExampleTeachesOnly() {
        let r = run(Harness.binDir + "/taskq-example-worker", ["--report"], timeout: 30)
        #expect(r.status == 64, "the example has no benchmark flag: \(r)")
        var root = #filePath
        for _ in 0..<3 { root = String(root[..<root.lastIndex(of: "/")!]) }
        let example = root + "/examples/swift-worker"
        #expect(listDirectory(example) == ["main.swift"], "\(listDirectory(example))")
        let source = String(decoding: readAll(example + "/main.swift"), as: UTF8.self)
        #expect(!source.contains("bench"), "examples/swift-worker mentions the benchmark")
    }
}
