import CTaskQSystem
import TaskQueue
#if canImport(Glibc)
import Glibc
#endif

/// Test helpers that drive the real `taskq` binary (and the examples) as a user
/// would: spawn processes, signal them, wait on conditions with deadlines, and
/// read the database with the sqlite3 shell.
public enum Harness {
    /// The directory holding the built executables: the test bundle sits beside
    /// them on Linux. `TASKQ_BIN_DIR` overrides it for other layouts.
    public static var binDir: String {
        if let d = getenv("TASKQ_BIN_DIR") { return String(cString: d) }
        let exe = System.executablePath
        return String(exe[..<exe.lastIndex(of: "/")!])
    }

    /// Path of the `taskq` binary under test.
    public static var taskq: String { binDir + "/taskq" }

    /// A fresh empty directory under /tmp, removed by `cleanup()`.
    public static func tempDir(_ name: String = "taskq-test") -> String {
        var template = Array("/tmp/\(name)-XXXXXX".utf8CString)
        guard let p = mkdtemp(&template) else { fatalError("mkdtemp failed") }
        return String(cString: p)
    }

    /// Removes a directory tree (best effort).
    public static func remove(_ path: String) {
        _ = run("/bin/rm", ["-rf", path])
    }
}

/// What a finished command printed and how it ended.
public struct RunResult: CustomStringConvertible {
    public var status: Int32          // exit code, or 128+signal
    public var stdout: String
    public var stderr: String
    public var stdoutBytes: [UInt8]
    public var description: String { "exit \(status)\nstdout: \(stdout)\nstderr: \(stderr)" }
    /// stdout without the trailing newline.
    public var out: String { stdout.hasSuffix("\n") ? String(stdout.dropLast()) : stdout }
}

/// Runs `path args` to completion with `stdin` fed, returning its output. Output is
/// drained while the child runs (a chatty child cannot deadlock on a full pipe).
@discardableResult
public func run(_ path: String, _ args: [String], stdin: [UInt8]? = nil, env: [String: String] = [:],
                cwd: String? = nil, timeout: Double = 120) -> RunResult {
    let child = Child(path, args, env: env, cwd: cwd, stdinData: stdin, captureOutput: true)
    return child.finish(timeout: timeout)
}

/// Runs the taskq binary with `args` in `cwd`.
@discardableResult
public func taskq(_ args: [String], stdin: String? = nil, env: [String: String] = [:], cwd: String? = nil,
                  timeout: Double = 120) -> RunResult {
    run(Harness.taskq, args, stdin: stdin.map { Array($0.utf8) }, env: env, cwd: cwd, timeout: timeout)
}

/// Runs SQL with the sqlite3 shell (list mode, '|' separated), as a user would.
public func sqlite(_ db: String, _ sql: String) -> String {
    let r = run("/usr/bin/sqlite3", ["-batch", "-cmd", ".timeout 10000", db, sql])
    precondition(r.status == 0, "sqlite3 failed: \(r.stderr) for \(sql)")
    return r.out
}

/// The integer a single-value query returns.
public func sqliteInt(_ db: String, _ sql: String) -> Int {
    Int(sqlite(db, sql).trimmingCharacters(in: " \n")) ?? -1
}

/// Polls `condition` until it holds or `timeout` passes; true if it held.
@discardableResult
public func eventually(timeout: Double = 30, every: Double = 0.02, _ condition: () -> Bool) -> Bool {
    let deadline = System.monotonic() + timeout
    while true {
        if condition() { return true }
        if System.monotonic() > deadline { return false }
        usleep(UInt32(every * 1_000_000))
    }
}

/// A child process: spawned with a clean signal state, its output going to files
/// (or drained pipes), so tests can signal it, wait for it, and read what it said.
public final class Child {
    public let pid: pid_t
    private var outFile: String?
    private var errFile: String?
    private var status: Int32?
    private var outPipe: Int32 = -1, errPipe: Int32 = -1
    private var collected: ([UInt8], [UInt8]) = ([], [])

    /// Spawns `path args`. With `captureOutput`, stdout/stderr are pipes read by
    /// `finish`; otherwise they go to files under `logDir` (readable any time).
    /// Its stdin is `stdinData` (fed through a pipe), else the file `stdinFile`, else
    /// with `stdinWriter` a pipe the caller writes with `writeStdin` and ends with
    /// `closeStdin`, else /dev/null.
    public init(_ path: String, _ args: [String], env: [String: String] = [:], cwd: String? = nil,
                stdinData: [UInt8]? = nil, stdinFile: String? = nil, stdinWriter: Bool = false,
                captureOutput: Bool = false, logDir: String? = nil, newSession: Bool = false) {
        var environment = currentEnv()
        for (k, v) in env { environment[k] = v }
        let envList = environment.map { "\($0.key)=\($0.value)" }
        var inFD: Int32 = -1
        var inWrite: Int32 = -1
        if let data = stdinData {
            var p: [Int32] = [0, 0]
            taskq_pipe_cloexec(&p)
            inFD = p[0]; inWrite = p[1]
            _ = data  // written after spawn
        } else if let stdinFile {
            inFD = open(stdinFile, O_RDONLY | O_CLOEXEC)
            precondition(inFD >= 0, "cannot open \(stdinFile)")
        } else if stdinWriter {
            var p: [Int32] = [0, 0]
            taskq_pipe_cloexec(&p)
            inFD = p[0]; writerFD = p[1]
        } else {
            inFD = open("/dev/null", O_RDONLY | O_CLOEXEC)
        }
        var outFD: Int32 = -1, errFD: Int32 = -1
        if captureOutput {
            var o: [Int32] = [0, 0], e: [Int32] = [0, 0]
            taskq_pipe_cloexec(&o); taskq_pipe_cloexec(&e)
            outFD = o[1]; errFD = e[1]; outPipe = o[0]; errPipe = e[0]
        } else {
            let dir = logDir ?? "/tmp"
            let tag = "\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            outFile = "\(dir)/child-\(tag).out"
            errFile = "\(dir)/child-\(tag).err"
            outFD = open(outFile!, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            errFD = open(errFile!, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        }
        var argv = [path] + args
        if let cwd { argv = ["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", cwd] + argv }
        var pid: pid_t = 0
        let exe = argv[0]
        let rc = cStrings(argv) { a in cStrings(envList) { e in
            taskq_spawn(&pid, exe, a, e, newSession ? 1 : 0, 0, inFD, outFD, errFD, nil, 0)
        } }
        precondition(rc == 0, "spawn \(path) failed: \(rc)")
        self.pid = pid
        close(inFD)
        if outFD >= 0 { close(outFD) }
        if errFD >= 0 { close(errFD) }
        if let data = stdinData {
            // Feed stdin from a thread-free loop: small inputs fit the pipe; larger
            // ones are written while draining output in finish().
            pendingStdin = data
            stdinFD = inWrite
            _ = fcntl(inWrite, F_SETFL, fcntl(inWrite, F_GETFL) | O_NONBLOCK)
            pumpStdin()
        }
    }

    private var pendingStdin: [UInt8] = []
    private var stdinFD: Int32 = -1
    private var writerFD: Int32 = -1

    /// Writes `bytes` to the stdin of a child started with `stdinWriter` (blocking
    /// until the pipe takes them all). False if it is closed or the child is gone.
    @discardableResult
    public func writeStdin(_ bytes: [UInt8]) -> Bool {
        var done = 0
        while writerFD >= 0 && done < bytes.count {
            let n = bytes.withUnsafeBytes { write(writerFD, $0.baseAddress! + done, $0.count - done) }
            if n > 0 { done += n } else if n < 0 && errno == EINTR { continue } else { return false }
        }
        return writerFD >= 0
    }

    /// Ends the stdin of a child started with `stdinWriter` (it reads end of file).
    public func closeStdin() {
        if writerFD >= 0 { close(writerFD); writerFD = -1 }
    }

    private func pumpStdin() {
        while stdinFD >= 0 {
            if pendingStdin.isEmpty { close(stdinFD); stdinFD = -1; return }
            let n = pendingStdin.withUnsafeBytes { write(stdinFD, $0.baseAddress, $0.count) }
            if n > 0 { pendingStdin.removeFirst(n); continue }
            if n < 0 && errno == EAGAIN { return }
            close(stdinFD); stdinFD = -1
        }
    }

    /// Sends a signal.
    public func signal(_ sig: Int32) { kill(pid, sig) }

    /// Non-blocking: has it exited? (reaps it)
    public var exited: Bool {
        if status != nil { return true }
        var s: Int32 = 0
        if waitpid(pid, &s, WNOHANG) == pid { status = decode(s); return true }
        return false
    }

    /// Waits up to `timeout` for exit; returns the status, or nil on timeout.
    public func wait(timeout: Double) -> Int32? {
        let deadline = System.monotonic() + timeout
        while System.monotonic() < deadline {
            drainPipes(block: false)
            pumpStdin()
            if exited { return status }
            usleep(5000)
        }
        return nil
    }

    /// Waits up to `timeout` for exit, like `wait(timeout:)`, but woken by the exit
    /// itself (a pidfd) rather than by polling every few milliseconds: for timing a run.
    /// Output pipes are drained meanwhile; `finish()` then returns what it printed.
    public func waitExactly(timeout: Double) -> Int32? {
        if exited { return status }
        let pidfd = taskq_pidfd_open(pid)
        if pidfd < 0 { return wait(timeout: timeout) }
        defer { close(pidfd) }
        let deadline = System.monotonic() + timeout
        while true {
            pumpStdin()
            var fds = [pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)]
            if outPipe >= 0 { fds.append(pollfd(fd: outPipe, events: Int16(POLLIN), revents: 0)) }
            if errPipe >= 0 { fds.append(pollfd(fd: errPipe, events: Int16(POLLIN), revents: 0)) }
            if stdinFD >= 0 { fds.append(pollfd(fd: stdinFD, events: Int16(POLLOUT), revents: 0)) }
            let left = deadline - System.monotonic()
            if left <= 0 { return exited ? status : nil }
            _ = poll(&fds, nfds_t(fds.count), Int32(min(left, 1) * 1000) + 1)
            if fds[0].revents != 0 && exited { return status }
            drainPipes(block: false)
        }
    }

    /// Waits for exit (killing it after `timeout`) and returns what it printed.
    public func finish(timeout: Double = 120) -> RunResult {
        let deadline = System.monotonic() + timeout
        while !exited {
            pumpStdin()
            drainPipes(block: true)
            if System.monotonic() > deadline {
                kill(pid, SIGKILL)
                var s: Int32 = 0
                waitpid(pid, &s, 0)
                status = 124
            }
        }
        while drainPipes(block: false) {}
        closeStdin()
        if outPipe >= 0 { close(outPipe); outPipe = -1 }
        if errPipe >= 0 { close(errPipe); errPipe = -1 }
        let o = outFile.map { readAll($0) } ?? collected.0
        let e = errFile.map { readAll($0) } ?? collected.1
        return RunResult(status: status ?? -1, stdout: String(decoding: o, as: UTF8.self),
                         stderr: String(decoding: e, as: UTF8.self), stdoutBytes: o)
    }

    /// Kills it (SIGKILL) if still running and reaps it.
    public func kill9() {
        closeStdin()
        if !exited { kill(pid, SIGKILL); _ = wait(timeout: 10) }
    }

    /// What it has written to stderr so far (file mode only).
    public var stderrSoFar: String { errFile.map { String(decoding: readAll($0), as: UTF8.self) } ?? "" }
    /// What it has written to stdout so far (file mode only).
    public var stdoutSoFar: String { outFile.map { String(decoding: readAll($0), as: UTF8.self) } ?? "" }

    @discardableResult
    private func drainPipes(block: Bool) -> Bool {
        var fds: [pollfd] = []
        if outPipe >= 0 { fds.append(pollfd(fd: outPipe, events: Int16(POLLIN), revents: 0)) }
        if errPipe >= 0 { fds.append(pollfd(fd: errPipe, events: Int16(POLLIN), revents: 0)) }
        if fds.isEmpty { if block { usleep(2000) }; return false }
        if poll(&fds, nfds_t(fds.count), block ? 10 : 0) <= 0 { return false }
        var got = false
        var buf = [UInt8](repeating: 0, count: 65536)
        for f in fds where f.revents != 0 {
            let n = read(f.fd, &buf, buf.count)
            if n > 0 {
                got = true
                if f.fd == outPipe { collected.0 += buf[0..<n] } else { collected.1 += buf[0..<n] }
            } else if n == 0 {
                if f.fd == outPipe { close(outPipe); outPipe = -1 } else { close(errPipe); errPipe = -1 }
            }
        }
        return got
    }

    private func decode(_ s: Int32) -> Int32 {
        s & 0x7f == 0 ? (s >> 8) & 0xff : 128 + (s & 0x7f)
    }
}

/// Reads a whole file (empty if missing).
public func readAll(_ path: String) -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 { return [] }
    defer { close(fd) }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = read(fd, &buf, buf.count)
        if n <= 0 { break }
        out += buf[0..<n]
    }
    return out
}

/// Writes a file, optionally executable.
public func writeFile(_ path: String, _ text: String, executable: Bool = false) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, executable ? 0o755 : 0o644)
    precondition(fd >= 0, "cannot write \(path)")
    var t = text
    t.withUTF8 { _ = write(fd, $0.baseAddress, $0.count) }
    close(fd)
}

/// Names in a directory, sorted, without `.` and `..` (empty if it cannot be read).
public func listDirectory(_ path: String) -> [String] {
    guard let dir = opendir(path) else { return [] }
    defer { closedir(dir) }
    var out: [String] = []
    while let e = readdir(dir) {
        let name = withUnsafeBytes(of: e.pointee.d_name) { String(cString: $0.baseAddress!.assumingMemoryBound(to: CChar.self)) }
        if name != "." && name != ".." { out.append(name) }
    }
    return out.sorted()
}

/// Live pids whose command line contains `needle` (for orphan checks).
public func pidsMatching(_ needle: String) -> [Int32] {
    var out: [Int32] = []
    for name in listDirectory("/proc") {
        guard let pid = Int32(name), pid != getpid() else { continue }
        let cmd = readAll("/proc/\(pid)/cmdline").map { $0 == 0 ? UInt8(ascii: " ") : $0 }
        let stat = String(decoding: readAll("/proc/\(pid)/stat"), as: UTF8.self)
        if let close = stat.lastIndex(of: ")"), stat[stat.index(after: close)...].dropFirst().first == "Z" { continue }
        if String(decoding: cmd, as: UTF8.self).contains(needle) { out.append(pid) }
    }
    return out
}

private func currentEnv() -> [String: String] {
    var out: [String: String] = [:]
    var p = environ
    while let s = p.pointee {
        let str = String(cString: s)
        if let eq = str.firstIndex(of: "=") { out[String(str[..<eq])] = String(str[str.index(after: eq)...]) }
        p += 1
    }
    return out
}

private func cStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    var ptrs: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    ptrs.append(nil)
    defer { for p in ptrs { free(p) } }
    return ptrs.withUnsafeBufferPointer { body($0.baseAddress!) }
}
