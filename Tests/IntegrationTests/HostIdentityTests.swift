import Testing
import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Two "hosts" with one host name sharing a queue: supervisors in their own UTS and
/// PID namespaces (`unshare`), as two containers on the host network are. Neither may
/// judge the other's live processes by pid: a pid of one means nothing in the other.
@Suite struct HostIdentityTests {
    /// Whether this machine lets us make namespaces (root, or user namespaces).
    static let canUnshare: Bool = {
        let r = run("/usr/bin/unshare", ["--uts", "--pid", "--fork", "--mount-proc", "/bin/true"], timeout: 10)
        return r.status == 0
    }()

    @Test(.enabled(if: canUnshare, "needs unshare --uts --pid --fork --mount-proc (root); skipped"))
    func supervisorsInTwoContainersWithOneHostNameLeaveEachOtherAlone() {
        let s = Scenario("taskq-hosts")
        defer { s.close() }
        s.script("slow.sh", "cat >/dev/null; sleep 4; echo \"ran on $(hostname)\"")
        let id = s.enqueue("slow")
        func host(_ args: String) -> Child {
            s.start("/usr/bin/unshare", ["--uts", "--pid", "--fork", "--mount-proc", "--kill-child", "/bin/sh", "-c",
                                         "hostname twin && \(Harness.taskq) supervise --db \(s.db) --lease 2 \(args)"])
        }
        let a = host("--workers 1 --handler slow=./slow.sh")
        #expect(eventually(timeout: 20) { s.sql("SELECT state FROM tasks WHERE id = \(id)") == "running" }, "\(a.stderrSoFar)")
        // B has its own pids, and recovery every second: A's worker pid is not one of
        // its processes, and must not make A's worker dead in its eyes.
        let b = host("--workers 1 --handler other=true")
        #expect(eventually(timeout: 20) { s.sqlInt("SELECT count(*) FROM processes WHERE role = 'supervisor'") == 2 })
        #expect(s.sql("SELECT count(DISTINCT host) || ':' || count(DISTINCT boot_id) FROM processes") == "1:2",
                "one host name, two PID namespaces: \(s.sql("SELECT host, boot_id FROM processes"))")
        #expect(eventually(timeout: 30) { s.sql("SELECT state FROM tasks WHERE id = \(id)") == "succeeded" },
                "\(a.stderrSoFar)\n\(b.stderrSoFar)")
        #expect(s.sql("SELECT attempts || ':' || result FROM tasks WHERE id = \(id)") == "1:ran on twin\n")
        #expect(s.sqlInt("SELECT count(*) FROM task_attempts WHERE task_id = \(id)") == 0)
        #expect(!b.stderrSoFar.contains("recovered"), "\(b.stderrSoFar)")
        #expect(!a.stderrSoFar.contains("lease lost"), "\(a.stderrSoFar)")
        #expect(s.taskq(["stop", "--wait", "--timeout", "30"]).status == 0)
        #expect(a.wait(timeout: 30) == 0, "\(a.stderrSoFar)")
        #expect(b.wait(timeout: 30) == 0, "\(b.stderrSoFar)")
    }

    /// `TASKQ_HOST_ID` names the host in the processes table and in messages.
    @Test func hostIDNamesTheHost() {
        let s = Scenario("taskq-hostid")
        defer { s.close() }
        let id = s.enqueue("t")
        let r = s.taskq(["supervise", "--until-empty", "--workers", "1", "--handler", "t=echo $TASKQ_TASK_ID"],
                        env: ["TASKQ_HOST_ID": "blue-7"])
        #expect(r.status == 0, "\(r)")
        #expect(s.sql("SELECT worker_host FROM tasks WHERE id = \(id)") == "blue-7")
    }
}
