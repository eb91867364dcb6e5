import Testing
import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

private var bench: String { Harness.binDir + "/taskq-bench" }

/// taskq's benchmark executable (Benchmarks/taskq-bench) still runs and prints its
/// rows, so it never rots. Its debug build, with its cheapest row: the figures mean
/// nothing here, only that they are there.
@Suite(.serialized) struct BenchSmokeTests {
    /// The CLI row with 3 runs: exit 0, both rows with a number in ms, the
    /// comparison, and the same two rows in the --json file.
    @Test func cliRowPrintsNumbers() {
        guard access(bench, X_OK) == 0 else {
            Issue.record("\(bench) is not built")
            return
        }
        let dir = Harness.tempDir("taskq-bench-test")
        defer { Harness.remove(dir) }
        let r = run(bench, ["--only", "cli", "--reps", "3", "--json", dir + "/rows.json"], timeout: 60)
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout.contains("CLI: one enqueue as a new process, median of 3"), "\(r)")
        let names = ["CLI sqlite3 INSERT (new process)", "CLI taskq enqueue (new process)"]
        for name in names {
            guard let line = r.stdout.split(separator: "\n").first(where: { $0.hasPrefix("  " + name + " ") }) else {
                Issue.record("no row \"\(name)\" in\n\(r)")
                continue
            }
            let fields = line.dropFirst(2 + name.count).split(separator: " ")
            let value = fields.first.flatMap { Double($0.filter { $0 != "," }) }
            #expect(value.map { $0 > 0 } == true && fields.count > 1 && fields[1] == "ms", "\(line)")
            if name.contains("taskq") {
                #expect(fields.count > 2 && fields[2].hasSuffix("x") && Double(fields[2].dropLast()) != nil, "\(line)")
            }
        }
        let json = try? JSON.parse(String(decoding: readAll(dir + "/rows.json"), as: UTF8.self))
        #expect(json?.arrayValue?.compactMap { $0["row"]?.stringValue } == names, "\(String(describing: json))")
        #expect(json?.arrayValue?.allSatisfy { ($0["value"]?.doubleValue ?? 0) > 0 } == true)
    }

    /// Without the binaries it measures it fails and says how to build them; an
    /// unknown row is a usage error.
    @Test func missingBinariesAndUnknownRows() {
        guard access(bench, X_OK) == 0 else {
            Issue.record("\(bench) is not built")
            return
        }
        let empty = Harness.tempDir("taskq-bench-test")
        defer { Harness.remove(empty) }
        let r = run(bench, ["--only", "cli"], env: ["TASKQ_BIN_DIR": empty], timeout: 30)
        #expect(r.status != 0, "\(r)")
        #expect(r.stderr.contains("\(empty)/taskq and \(empty)/taskq-bench-worker not found"), "\(r)")
        #expect(r.stderr.contains("swift build -c release --static-swift-stdlib"), "\(r)")
        let bad = run(bench, ["--only", "w9"], timeout: 30)
        #expect(bad.status == 64, "\(bad)")
        #expect(bad.stderr.contains("unknown row w9"), "\(bad)")
    }
}
