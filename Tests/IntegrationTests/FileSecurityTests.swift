import Testing
import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Who may read the files taskq creates, and where a payload may appear.
@Suite struct FileSecurityTests {
    init() {
        // A child that stops reading its stdin early must not kill the test runner.
        signal(SIGPIPE, SIG_IGN)
    }


    /// The database and its -wal and -shm files are created readable and writable by
    /// their owner only, even under umask 000.
    @Test func databaseAndWALAreOwnerOnly() {
        let s = Scenario("taskq-storage")
        defer { s.close() }
        let umask0 = ["-c", "umask 000; exec \"$0\" \"$@\""]
        let r = run("/bin/sh", umask0 + [Harness.taskq, "enqueue", "t", "1"], cwd: s.dir)
        #expect(r.status == 0, "\(r)")
        #expect(mode(s.db) == 0o600, "taskq.db is \(octal(mode(s.db)))")
        let i = run("/bin/sh", umask0 + [Harness.taskq, "init", "--db", "other.db"], cwd: s.dir)
        #expect(i.status == 0, "\(i)")
        #expect(mode(s.dir + "/other.db") == 0o600, "other.db is \(octal(mode(s.dir + "/other.db")))")
        // -wal and -shm exist while someone has the database open.
        let sup = s.start("/bin/sh", umask0 + [Harness.taskq, "supervise", "--workers", "1", "--handler", "t=cat"])
        #expect(eventually { s.count("succeeded") == 1 }, "\(sup.stderrSoFar)")
        for f in ["taskq.db", "taskq.db-wal", "taskq.db-shm"] {
            #expect(mode(s.dir + "/" + f) == 0o600, "\(f) is \(octal(mode(s.dir + "/" + f)))")
        }
        let stop = s.taskq(["stop", "--wait", "--timeout", "30"])
        #expect(stop.status == 0, "\(stop)")
        #expect(sup.wait(timeout: 30) == 0, "\(sup.stderrSoFar)")
    }

    /// A payload reaches its handler on stdin only: never in the handler's command
    /// line or environment, nor in its worker's or supervisor's. Quotes and SQL in it
    /// are data.
    @Test func payloadReachesTheHandlerOnlyOnStdin() {
        let s = Scenario("taskq-storage")
        defer { s.close() }
        let marker = "MARKER\(UInt64.random(in: 1...UInt64.max))"
        let payload = "{\"secret\":\"\(marker)\",\"sql\":\"x'); DROP TABLE tasks; --\",\"q\":\"\\\"\"}"
        // Sourced into the handler shell, so $$ is the handler and $PPID its worker.
        s.script("dump.sh", """
            payload=$(cat)
            printf 'STDIN %s\\n' "$payload"
            printf 'ARGV '; tr '\\000' ' ' < /proc/$$/cmdline; echo
            printf 'ENVIRON '; tr '\\000' ' ' < /proc/$$/environ; echo
            printf 'ENV '; env | tr '\\n' ' '; echo
            printf 'WORKER-ARGV '; tr '\\000' ' ' < /proc/$PPID/cmdline; echo
            printf 'WORKER-ENVIRON '; tr '\\000' ' ' < /proc/$PPID/environ; echo
            sup=$(cut -d' ' -f4 /proc/$PPID/stat)
            printf 'SUPERVISOR-ARGV '; tr '\\000' ' ' < /proc/$sup/cmdline; echo
            printf 'SUPERVISOR-ENVIRON '; tr '\\000' ' ' < /proc/$sup/environ; echo
            """)
        let r = s.taskq(["enqueue", "t", "-"], stdin: payload)
        #expect(r.status == 0, "\(r)")
        let id = r.out
        let sup = s.supervise(["--workers", "1", "--handler", "t=. ./dump.sh"])
        #expect(eventually { s.count("succeeded") == 1 }, "\(sup.stderrSoFar)")
        let result = s.taskq(["result", id]).stdout
        let lines = Dictionary(result.split(separator: "\n").map { l -> (String, String) in
            let sp = l.firstIndex(of: " ") ?? l.endIndex
            return (String(l[..<sp]), String(l[sp...]))
        }, uniquingKeysWith: { a, _ in a })
        #expect(lines["STDIN"] == " " + payload, "\(result)")
        #expect(lines["ARGV"]?.contains("dump.sh") == true, "\(result)")
        #expect(lines["ENVIRON"]?.contains("TASKQ_TASK_ID=\(id)") == true, "\(result)")
        #expect(lines["ENV"]?.contains("TASKQ_ATTEMPT=1") == true, "\(result)")
        #expect(lines["WORKER-ARGV"]?.contains("__taskq-worker") == true, "\(result)")
        #expect(lines["WORKER-ENVIRON"]?.isEmpty == false, "\(result)")
        #expect(lines["SUPERVISOR-ARGV"]?.contains("supervise") == true, "\(result)")
        #expect(lines["SUPERVISOR-ENVIRON"]?.isEmpty == false, "\(result)")
        for (k, v) in lines where k != "STDIN" {
            #expect(!v.contains(marker), "the payload leaked into \(k): \(v)")
        }
        #expect(result.split(separator: marker, omittingEmptySubsequences: false).count == 2, "the marker appears once, on stdin")
        #expect(s.sql("SELECT count(*) FROM tasks; SELECT payload = '\(payload.replacing("'", with: "''"))' FROM tasks WHERE id = \(id)") == "1\n1")
        sup.signal(SIGTERM)
        #expect(sup.wait(timeout: 30) == 0)
    }
}

private func mode(_ path: String) -> UInt32 {
    var st = stat()
    guard stat(path, &st) == 0 else { return 0o7777 }
    return UInt32(st.st_mode) & 0o777
}

private func octal(_ m: UInt32) -> String { "0" + String(m, radix: 8) }
