import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

extension Bench {
    /// RSS of an idle supervisor (`taskq supervise`, 2 workers, shell handler) and
    /// of its workers after 2 s, and the workers' CPU over the next 5 s.
    func memoryIdle() throws {
        say("memory: idle supervisor and workers")
        let db = "\(tmp)/idle.db"
        let sup = start(taskq, ["supervise", "--db", db, "--workers", "2", "--handler", "t=true"])
        guard try waitFor(10, { children(of: sup.pid).count == 2 }) else {
            throw BenchError("taskq supervise did not start 2 workers in 10 s: \(sup.stderrSoFar)")
        }
        sleepSeconds(2)
        let ws = children(of: sup.pid)
        let cpu0 = ws.map(cpuTicks)
        sleepSeconds(5)
        try checkInterrupted()
        let cpu1 = ws.map(cpuTicks)
        let hz = Double(sysconf(Int32(_SC_CLK_TCK)))
        row("memory idle worker RSS (max)", Double(ws.map(rssKB).max() ?? 0) / 1024, "MiB", "goal <= 15")
        row("memory idle supervisor RSS", Double(rssKB(sup.pid)) / 1024, "MiB", "goal <= 20")
        let cpu = zip(cpu0, cpu1).map { Double($1 - $0) / hz / 5 * 100 }.max() ?? 0
        row("idle worker CPU (max over 5 s)", cpu, "% core", "goal < 1")
        try stop(sup, SIGTERM, timeout: 30)
    }

    /// Peak RSS of the one worker of `--workers 1` draining `n` tasks: with no other
    /// process committing, nothing empties its page cache, so it holds what it read.
    func memoryOneWorker(_ n: Int) throws {
        let db = "\(tmp)/one.db"
        for start in stride(from: 0, to: n, by: 100_000) {
            try enqueueLines(db, min(100_000, n - start), commitEvery: 1000, start: start)
        }
        let (peakKB, ownKB) = try peakRSS(worker, ["--db", db, "--workers", "1", "--until-empty"])
        // The figure includes the measuring process's own peak (see peakRSS): say so
        // if that, not the supervisor or its worker, could be what it shows.
        let note = ownKB >= peakKB ? "; at most the measuring process's own \(fixed(Double(ownKB) / 1024, 2)) MiB" : ""
        row("memory draining \(grouped(n)) with 1 worker: peak RSS", Double(peakKB) / 1024, "MiB", "goal <= 15\(note)")
    }

    /// Runs `path args` to completion and returns the largest peak RSS (KiB) of it and
    /// of every descendant it waited for, and the measuring process's own peak.
    ///
    /// How: this executable runs again as an intermediate (`__peak-rss`, see
    /// `peakRSSIntermediate`) whose only child is `path`. When a process is reaped
    /// its peak RSS and that of the children it reaped go into its parent's
    /// RUSAGE_CHILDREN maxrss, so the intermediate's is max(supervisor, worker).
    /// A fresh intermediate, not this process, because posix_spawn shares the
    /// parent's memory until exec (CLONE_VM) and the kernel records that memory's
    /// peak as the child's at exec: the supervisor's figure includes the peak of
    /// whoever spawned it. The intermediate's own peak is small (a few MiB, printed
    /// as the second number) where this process's grows with the payloads it wrote.
    /// Python's driver measured the same way, with a fresh Python process in between.
    func peakRSS(_ path: String, _ args: [String]) throws -> (Int, Int) {
        let out = try runChecked(System.executablePath, [peakRSSCommand, path] + args, timeout: 1200).result.out
        let f = out.split(separator: " ").compactMap { Int($0) }
        guard f.count == 2 else { throw BenchError("\(peakRSSCommand) printed \(out)") }
        return (f[0], f[1])
    }
}

/// The hidden first argument that makes this executable the intermediate of `peakRSS`.
let peakRSSCommand = "__peak-rss"

/// `taskq-bench __peak-rss PATH ARGS…`: runs PATH (output discarded, up to 20
/// minutes), then prints "<largest peak RSS of its children, KiB> <own peak, KiB>"
/// and exits with PATH's status.
func peakRSSIntermediate(_ argv: [String]) -> Never {
    guard argv.count > 2 else { System.log("usage: taskq-bench \(peakRSSCommand) PATH [ARGS...]"); exit(64) }
    let child = Child(argv[2], Array(argv.dropFirst(3)), captureOutput: true)
    let own = statusKB(getpid(), "VmHWM")   // after the spawn: at least what the child's exec recorded
    let r = child.finish(timeout: 1200)
    if r.status != 0 { System.log("\(argv[2]) failed: \(r)"); exit(r.status) }
    var usage = rusage()
    getrusage(RUSAGE_CHILDREN.rawValue, &usage)
    print("\(usage.ru_maxrss) \(own)")
    exit(0)
}
