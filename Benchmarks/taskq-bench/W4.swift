import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

extension Bench {
    /// W4: `n` shell tasks (`true`) with 2 workers: `taskq enqueue --batch` then
    /// `taskq supervise --handler t=true --until-empty`, against `xargs -P 2` running
    /// `sh -c true` and against task-spooler (`tsp`, one call per task) with 2 slots.
    func w4(_ n: Int) throws {
        say("W4: \(n) shell tasks (`true`) with 2 workers")
        let db = "\(tmp)/w4.db"
        let lines = "\(tmp)/w4-lines"
        try writeBytes(lines, Array((0..<n).map { "{\"kind\":\"t\",\"payload\":\($0)}\n" }.joined().utf8))
        let t0 = System.monotonic()
        try runChecked(taskq, ["enqueue", "--batch", "--quiet", "--db", db], stdinFile: lines)
        let t1 = System.monotonic()
        try runChecked(taskq, ["supervise", "--db", db, "--workers", "2", "--handler", "t=true", "--until-empty"])
        let t2 = System.monotonic()
        let done = try succeeded(db)
        let xargs = try runChecked("/bin/sh", ["-c", "seq \(n) | xargs -P 2 -n 1 sh -c true"]).seconds
        row("W4 xargs -P 2 (sh -c true)", xargs, "s")
        row("W4 taskq enqueue --batch + supervise", t2 - t0, "s", "\(fixed((t2 - t0) / xargs, 2))x xargs",
            "drain alone \(fixed(t2 - t1, 2))s; \(done)/\(n) succeeded")
        if let tsp = which("tsp") {
            let env = ["TS_SOCKET": "\(tmp)/tsp.sock", "TS_MAXFINISHED": String(n + 10), "TS_SAVELIST": "", "TMPDIR": tmp]
            try runChecked(tsp, ["-S", "2"], env: env)
            let t4 = System.monotonic()
            for _ in 0..<n { try runChecked(tsp, ["sh", "-c", "true"], env: env) }
            _ = try? runChecked(tsp, ["-w"], env: env)   // the last job's status: not checked
            let spooler = System.monotonic() - t4
            _ = try? runChecked(tsp, ["-K"], env: env)
            row("W4 task-spooler, 2 slots (tsp per task)", spooler, "s", "taskq is \(fixed(spooler / (t2 - t0), 2))x faster")
        } else {
            say("  (tsp not installed: apt-get install task-spooler)")
        }
    }
}
