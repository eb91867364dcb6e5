import TaskQueue
#if canImport(Glibc)
import Glibc
#endif

// What the tests ask of live processes, read from /proc.

/// Whether `pid` is a live (not zombie) process.
public func processAlive(_ pid: Int32) -> Bool {
    guard let f = System.statFields(pid), let state = f.first else { return false }
    return state != "Z" && state != "X"
}

/// The parent pid of a live process.
public func parentPid(_ pid: Int32) -> Int32? {
    System.statFields(pid).flatMap { $0.count > 1 ? Int32($0[1]) : nil }
}

/// The worker processes of `supervisor`. (`Scenario.workerPids` alone can also list a
/// worker's child caught between posix_spawn's clone and its exec, which still shows
/// the worker's command line; a worker's parent is its supervisor.)
public func workers(of supervisor: Child, _ s: Scenario) -> [Int32] {
    s.workerPids.filter { parentPid($0) == supervisor.pid }.sorted()
}

/// Tasks in state running whose owner is not a registered, live process, as
/// "id:pid" (pid 0 when the owner has no row).
public func runningWithoutLiveOwner(_ s: Scenario) -> [String] {
    let rows = s.sql("""
        SELECT t.id || ':' || coalesce(p.pid, 0) FROM tasks t LEFT JOIN processes p ON p.id = t.owner
        WHERE t.state = 'running'
        """)
    return rows.split(separator: "\n").map(String.init).filter { row in
        let pid = Int32(row.split(separator: ":").last ?? "0") ?? 0
        return pid == 0 || !processAlive(pid)
    }
}
