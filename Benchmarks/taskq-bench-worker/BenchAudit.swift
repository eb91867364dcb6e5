import TaskQueue
#if canImport(Glibc)
import Glibc
#endif

/// The benchmark harness's no-op task (see ../shared/bench/README.md): record that
/// this execution started, then return the payload's length as the result.
enum BenchAudit {
    /// One O_APPEND file per worker process in $BENCH_AUDIT_DIR, opened lazily.
    nonisolated(unsafe) static var fd: Int32 = -2
    /// This worker's pid, read once (getpid is a system call).
    nonisolated(unsafe) static var pid: Int64 = 0

    static func noop(_ task: ClaimedTask) throws -> [UInt8] {
        if fd == -2 {
            pid = Int64(getpid())
            if let dir = getenv("BENCH_AUDIT_DIR") {
                let d = String(cString: dir)
                mkdir(d, 0o755)
                fd = open("\(d)/\(pid).tsv", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
            } else {
                fd = -1
            }
        }
        if fd >= 0 {
            var ts = timespec()
            clock_gettime(CLOCK_REALTIME, &ts)
            let start = Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
            var seq: Int64 = -1, enq: Int64 = -1
            if let s = integerField("\"seq\":", in: task.payload), let e = integerField("\"enq_ns\":", in: task.payload) {
                (seq, enq) = (s, e)
            } else if let p = try? JSON.parse(task.payload) {
                (seq, enq) = (p["seq"]?.intValue ?? -1, p["enq_ns"]?.intValue ?? -1)
            }
            // The line is built in bytes and written with one write(), as the
            // harness asks; no String formatting per task.
            var line: [UInt8] = []
            line.reserveCapacity(80)
            appendDecimal(seq, to: &line)
            line.append(UInt8(ascii: "\t"))
            appendDecimal(enq, to: &line)
            line.append(UInt8(ascii: "\t"))
            appendDecimal(start, to: &line)
            line.append(UInt8(ascii: "\t"))
            appendDecimal(pid, to: &line)
            line.append(UInt8(ascii: "\n"))
            line.withUnsafeBytes { _ = write(fd, $0.baseAddress, $0.count) }
        }
        var result: [UInt8] = []
        appendDecimal(Int64(task.payload.utf8.count), to: &result)
        return result
    }

    /// The integer right after `key` in the harness's flat payload
    /// ({"seq":N,"enq_ns":N,"pad":"…"}), or nil (then the JSON parser decides).
    static func integerField(_ key: StaticString, in payload: String) -> Int64? {
        var payload = payload
        return payload.withUTF8 { p -> Int64? in
            let k = UnsafeBufferPointer(start: key.utf8Start, count: key.utf8CodeUnitCount)
            guard p.count >= k.count else { return nil }
            var i = 0
            while i + k.count <= p.count {
                if p[i] == k[0] && memcmp(p.baseAddress! + i, k.baseAddress!, k.count) == 0 {
                    var j = i + k.count, v: Int64 = 0
                    while j < p.count, p[j] >= 0x30, p[j] <= 0x39 {
                        let (times10, o1) = v.multipliedReportingOverflow(by: 10)
                        let (next, o2) = times10.addingReportingOverflow(Int64(p[j] - 0x30))
                        if o1 || o2 { return nil }   // too large for Int64
                        v = next
                        j += 1
                    }
                    return j > i + k.count ? v : nil
                }
                i += 1
            }
            return nil
        }
    }
}
