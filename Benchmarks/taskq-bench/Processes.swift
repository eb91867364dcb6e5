import CTaskQSystem
import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A failed step: a command that exited non-zero, a wait that ran out, an
/// interrupt. The run stops, background processes are stopped, the temp dir removed.
struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The absolute path of `name` on $PATH, or nil (posix_spawn needs a path).
func which(_ name: String) -> String? {
    if name.contains("/") { return access(name, X_OK) == 0 ? name : nil }
    let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/bin:/bin"
    for dir in path.split(separator: ":") where access("\(dir)/\(name)", X_OK) == 0 {
        return "\(dir)/\(name)"
    }
    return nil
}

/// `which`, or a BenchError saying what is missing.
func required(_ name: String, _ hint: String = "") throws -> String {
    guard let p = which(name) else { throw BenchError("\(name) not found on PATH\(hint.isEmpty ? "" : " (\(hint))")") }
    return p
}

/// Throws once SIGINT or SIGTERM arrived (main installs flag handlers for both).
func checkInterrupted() throws {
    let flags = taskq_peek_signal_flags()
    if flags & (UInt64(1) << UInt64(SIGINT)) != 0 || flags & (UInt64(1) << UInt64(SIGTERM)) != 0 {
        throw BenchError("interrupted")
    }
}

/// Runs `path args` to completion (stdin from `stdinFile`, else /dev/null) and
/// returns what it printed and its wall time, from before the spawn to the exit
/// (woken by a pidfd, not by polling). Throws if it fails or outlives `timeout`.
@discardableResult
func runChecked(_ path: String, _ args: [String], stdinFile: String? = nil, env: [String: String] = [:],
                timeout: Double = 600) throws -> (result: RunResult, seconds: Double) {
    try checkInterrupted()
    let t0 = System.monotonic()
    let child = Child(path, args, env: env, stdinFile: stdinFile, captureOutput: true)
    let status = child.waitExactly(timeout: timeout)
    let seconds = System.monotonic() - t0
    if status == nil { child.kill9() }
    let r = child.finish(timeout: 10)
    guard let status else { throw BenchError("\(path) \(args.joined(separator: " ")) ran over \(Int(timeout)) s") }
    guard status == 0 else {
        throw BenchError("\(path) \(args.joined(separator: " ")) failed (exit \(status)): \(r.stderr)\(r.stdout)")
    }
    return (r, seconds)
}

/// Polls `condition` every 50 ms until it holds or `timeout` passes; true if it held.
func waitFor(_ timeout: Double, _ condition: () throws -> Bool) throws -> Bool {
    let deadline = System.monotonic() + timeout
    while true {
        try checkInterrupted()
        if try condition() { return true }
        if System.monotonic() > deadline { return false }
        sleepSeconds(0.05)
    }
}

/// Sleeps (shorter if a signal arrives).
func sleepSeconds(_ s: Double) {
    guard s > 0 else { return }
    var ts = timespec(tv_sec: Int(s), tv_nsec: Int((s - s.rounded(.down)) * 1e9))
    nanosleep(&ts, nil)
}

/// Wall-clock nanoseconds (CLOCK_REALTIME), as the payloads' enq_ns and the audit lines use.
func wallNanos() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}

// MARK: /proc

/// Pids whose parent is `pid`.
func children(of pid: Int32) -> [Int32] {
    listDirectory("/proc").compactMap { name in
        guard let p = Int32(name), let f = System.statFields(p), f.count > 1, Int32(f[1]) == pid else { return nil }
        return p
    }
}

/// A "Vm…:" line of /proc/PID/status in KiB (0 if the process is gone).
func statusKB(_ pid: Int32, _ field: String) -> Int {
    let text = String(decoding: readAll("/proc/\(pid)/status"), as: UTF8.self)
    for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
        // "VmRSS:\t   10860 kB"
        return Int(line.dropFirst(field.count + 1).split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? "") ?? 0
    }
    return 0
}

/// Resident set size in KiB.
func rssKB(_ pid: Int32) -> Int { statusKB(pid, "VmRSS") }

/// User + system CPU time in clock ticks (fields 14 and 15 of /proc/PID/stat).
func cpuTicks(_ pid: Int32) -> Int {
    guard let f = System.statFields(pid), f.count > 12 else { return 0 }
    return (Int(f[11]) ?? 0) + (Int(f[12]) ?? 0)
}

// MARK: files

/// Writes bytes to a new file.
func writeBytes(_ path: String, _ bytes: [UInt8]) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw BenchError("cannot write \(path)") }
    defer { close(fd) }
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
        guard n > 0 else { throw BenchError("cannot write \(path)") }
        done += n
    }
}

/// Copies a database (and its -wal file, if one is left) to `to`.
func copyDatabase(_ from: String, _ to: String) throws {
    try writeBytes(to, readAll(from))
    if access(from + "-wal", F_OK) == 0 { try writeBytes(to + "-wal", readAll(from + "-wal")) }
}

/// Removes a database file with its `-wal` and `-shm` (a copy no longer needed).
func removeDatabase(_ path: String) {
    for f in [path, path + "-wal", path + "-shm"] { unlink(f) }
}
