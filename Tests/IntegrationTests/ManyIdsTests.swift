import Testing
import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// wait, cancel and retry with thousands of ids (on the command line and on
/// stdin), bad ids, repeated ids, and wait's --timeout counted from the start.
@Suite struct ManyIdsTests {
    @Test func a100000IdsOnStdinAnd20000OnTheCommandLineAreTakenInFull() {
        let s = Scenario()
        defer { s.close() }
        let n = 100_000
        let enqueued = s.taskq(["enqueue", "t", "--lines", "--quiet"], stdin: String(repeating: "null\n", count: n))
        #expect(enqueued.status == 0, "\(enqueued)")
        let ids = (1...n).map(String.init).joined(separator: "\n") + "\n"
        let first = (1...20_000).map(String.init)

        // 20,000 ids as arguments: wait times out on them (they are all queued).
        let waited = s.taskq(["wait", "--timeout", "0.2s", "--json"] + first, timeout: 120)
        #expect(waited.status == 75, "\(waited.stderr)")
        #expect(waited.out.contains("\"total\":20000"), "\(waited.out)")
        #expect(waited.out.contains("\"queued\":20000"), "\(waited.out)")

        let cancelled = s.taskq(["cancel"] + first, timeout: 120)
        #expect(cancelled.status == 0, "\(cancelled.stderr)")
        #expect(cancelled.stdout.hasSuffix("cancelled 20000 tasks\n"))
        #expect(s.count("cancelled") == 20_000)

        // All 100,000 on stdin, the 20,000 cancelled ones among them (a cancelled
        // task is left as it is: exit 1, and one line on stderr each).
        let all = s.taskq(["cancel", "-"], stdin: ids, timeout: 300)
        #expect(all.status == 1, "\(all.stderr.prefix(300))")
        #expect(all.stdout.hasSuffix("cancelled 80000 tasks\n"))
        #expect(s.count("cancelled") == n)

        let done = s.taskq(["wait", "--json", "-"], stdin: ids, timeout: 300)
        #expect(done.status == 1, "\(done.stderr)")
        #expect(done.out.contains("\"finished\":true,\"total\":100000,\"succeeded\":0,\"failed\":0,\"cancelled\":100000"), "\(done.out)")

        let retried = s.taskq(["retry", "-"], stdin: ids, timeout: 300)
        #expect(retried.status == 0, "\(retried.stderr.prefix(300))")
        #expect(retried.stdout.hasSuffix("retried 100000 tasks\n"))
        #expect(s.count("queued") == n)

        // Ids and "-" together, over several lines and with extra blanks.
        let mixed = s.taskq(["cancel", "5", "-", "7"], stdin: "  1\t2\n\n3 4  \n")
        #expect(mixed.status == 0, "\(mixed)")
        #expect(mixed.out.hasSuffix("cancelled 6 tasks"))
        #expect(s.sql("SELECT group_concat(id) FROM tasks WHERE state = 'cancelled'") == "1,2,3,4,5,7")
    }

    @Test func aBadIdAnywhereIsRefusedBeforeAnythingIsDone() {
        let s = Scenario()
        defer { s.close() }
        s.enqueue("t")
        s.enqueue("t")
        for command in ["cancel", "wait", "retry"] {
            let fromStdin = s.taskq([command, "-"], stdin: "1\n2 12x\n")
            #expect(fromStdin.status == 64, "\(command): \(fromStdin)")
            #expect(fromStdin.stderr == "taskq: task ids are positive integers, not '12x' (on stdin)\n", "\(command): \(fromStdin)")
            let inArguments = s.taskq([command, "1", "12x", "2"])
            #expect(inArguments.status == 64, "\(command): \(inArguments)")
            #expect(inArguments.stderr.hasPrefix("taskq: task ids are positive integers, not '12x'\n"), "\(command): \(inArguments)")
            let zero = s.taskq([command, "1", "0"])
            #expect(zero.status == 64, "\(command): \(zero)")
            #expect(zero.stderr.hasPrefix("taskq: task ids are positive integers, not '0'\n"), "\(command): \(zero)")
        }
        #expect(s.count("queued") == 2)
        let twice = s.taskq(["cancel", "-", "-"])
        #expect(twice.status == 64, "\(twice)")
        // Empty stdin: nothing to do.
        let none = s.taskq(["cancel", "-"], stdin: "")
        #expect(none.status == 0, "\(none)")
        #expect(none.out == "cancelled 0 tasks")
        #expect(s.count("queued") == 2)
    }

    @Test func aRepeatedIdCountsOnce() {
        let s = Scenario()
        defer { s.close() }
        let a = s.enqueue("t")
        let b = s.enqueue("t", "null", ["--after", String(a)])
        let once = s.taskq(["cancel", String(a), String(a)])
        #expect(once.status == 0, "\(once)")
        #expect(once.out == "cancelled task \(a) (was queued, now cancelled); cancelled with it, as it was to run after it: task \(b)")
        let retried = s.taskq(["retry", String(b), String(a), String(b), String(a)])
        #expect(retried.status == 0, "\(retried)")
        #expect(retried.out == """
            retried task \(b) (was cancelled, now queued)
            retried task \(a) (was cancelled, now queued)
            retried 2 tasks
            """)
        let waited = s.taskq(["wait", "--json", "--timeout", "0.1s", String(a), String(a), String(b)])
        #expect(waited.status == 75, "\(waited)")
        #expect(waited.out.contains("\"total\":2,"), "\(waited)")
        // A task and the task it runs after, named together: both cancelled as asked.
        let both = s.taskq(["cancel", String(a), String(b), String(a)])
        #expect(both.status == 0, "\(both)")
        #expect(both.out == """
            cancelled task \(a) (was queued, now cancelled)
            cancelled task \(b) (was queued, now cancelled)
            cancelled 2 tasks
            """)
    }

    @Test func waitTimeoutCountsFromTheStartOfTheCommand() {
        let s = Scenario()
        defer { s.close() }
        let id = s.enqueue("t")
        // Stopped before it has even parsed its arguments, and kept stopped past
        // its whole --timeout: once continued it must give up at its first look,
        // not wait the full 6 seconds again.
        let c = s.start(Harness.taskq, ["wait", String(id), "--timeout", "6s"])
        c.signal(SIGSTOP)
        let stopped = System.monotonic()
        #expect(eventually(timeout: 20) { System.monotonic() - stopped > 7 })
        c.signal(SIGCONT)
        #expect(c.wait(timeout: 4) == 75, "\(c.stderrSoFar)")
        #expect(c.stderrSoFar.contains("timed out after 6s"), "\(c.stderrSoFar)")
    }
}
