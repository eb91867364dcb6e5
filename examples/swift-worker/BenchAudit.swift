import TaskQueue
#if canImport(Glibc)
import Glibc
#endif

/// The benchmark harness's no-op task (see ../shared/bench/README.md): record that
/// this execution started, then return the payload's length as the result.
enum BenchAudit {
    /// One O_APPEND file per worker process in $BENCH_AUDIT_DIR, opened lazily.
    nonisolated(unsafe) static var fd: Int32 = -2

    static func noop(_ task: ClaimedTask) throws -> [UInt8] {
        if fd == -2 {
            if let dir = getenv("BENCH_AUDIT_DIR") {
                let d = String(cString: dir)
                mkdir(d, 0o755)
                fd = open("\(d)/\(getpid()).tsv", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
            } else {
                fd = -1
            }
        }
        if fd >= 0 {
            let p = try? JSON.parse(task.payload)
            var ts = timespec()
            clock_gettime(CLOCK_REALTIME, &ts)
            let start = Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
            var line = "\(p?["seq"]?.intValue ?? -1)\t\(p?["enq_ns"]?.intValue ?? -1)\t\(start)\t\(getpid())\n"
            line.withUTF8 { _ = write(fd, $0.baseAddress, $0.count) }
        }
        return Array(String(task.payload.utf8.count).utf8)
    }
}
